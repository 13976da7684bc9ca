package main

// Tests of the fleet commands (status --hosts, promote --host, promote --hosts) with the
// slaves' rollout answered by fakeRun: what the slaves are asked, in what order, and what the
// master makes of their reports.

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/rollout-dev/rollout/proto/command"
	"github.com/rollout-dev/rollout/rollout"
	"github.com/rollout-dev/rollout/rollout/config"
	"github.com/rollout-dev/rollout/rollout/fleet"
	"github.com/rollout-dev/rollout/rollout/jsonreport"
)

// reportJSON is what rollout --json on a slave prints.
func reportJSON(t *testing.T, command string, err string, exit int, results any) string {
	t.Helper()
	b, jerr := json.Marshal(jsonreport.Report{Command: command, OK: err == "", Exit: exit, Error: err, Results: results})
	if jerr != nil {
		t.Fatal(jerr)
	}
	return string(b)
}

func vhostAt(name, snap string) rollout.VhostStatus {
	return rollout.VhostStatus{Kind: "vhost", Vhost: name, Dataset: "tank/" + name, Exists: true, Snapshot: snap, Running: true, Held: true, Attention: []string{}}
}

// sequence records the commands of every host in the one order they ran.
type sequence struct {
	mu  sync.Mutex
	ran []string
}

// seqRunner is a fakeRun whose commands also go to a sequence.
type seqRunner struct {
	*fakeRun
	seq *sequence
}

func (r seqRunner) Run(ctx context.Context, c command.Cmd) error {
	r.seq.mu.Lock()
	r.seq.ran = append(r.seq.ran, r.name+": "+command.Quote(c.Argv))
	r.seq.mu.Unlock()
	return r.fakeRun.Run(ctx, c)
}

// dialFakes connects each slave to its fake; a slave with an error in refuse is refused with it.
func dialFakes(seq *sequence, fakes map[string]*fakeRun, refuse map[string]error) dialer {
	return func(_ context.Context, s *config.Slave) (command.Runner, func(), error) {
		if err := refuse[s.Name]; err != nil {
			return nil, nil, err
		}
		f, ok := fakes[s.Name]
		if !ok {
			return nil, nil, fmt.Errorf("%s: connect: no route to host", s.Name)
		}
		return seqRunner{f, seq}, func() {}, nil
	}
}

// Every word of the remote command line is quoted: the slave's shell gives rollout exactly the
// words the master meant, whatever they hold; and "--" keeps a name that looks like a flag a name.
func TestRemoteArgvQuoted(t *testing.T) {
	hostile := []string{"vhost1; touch /tmp/pwned", "$(reboot)", "`id`", "it's", "-n", "a\nb", ""}
	f := &fakeRun{name: "slave1", out: map[string]string{"promote": reportJSON(t, "promote", "", 0, []rollout.VhostResult{})}}
	r := &fleet.Remote{Host: "slave1", Runner: f, Rollout: "/usr/local/sbin/rollout", Config: "/usr/local/etc/my rollout.toml"}
	if _, _, err := r.Promote(context.Background(), "proto@2", hostile, fleet.PromoteOptions{SwitchOptions: rollout.SwitchOptions{Parallel: 3, Strict: true}}); err != nil {
		t.Fatal(err)
	}
	ran := f.commands()
	if len(ran) != 1 {
		t.Fatalf("ran %q", ran)
	}
	want := append([]string{"/usr/local/sbin/rollout", "--json", "--config", "/usr/local/etc/my rollout.toml", "promote", "--parallel", "3", "--strict", "--", "proto@2"}, hostile...)
	if ran[0] != command.Quote(want) {
		t.Fatalf("remote command line\n  %s\nwant\n  %s", ran[0], command.Quote(want))
	}
	// what a POSIX shell makes of that line: the same words, one by one, nothing run
	line := strings.Replace(ran[0], "/usr/local/sbin/rollout", "printf '%s\\0'", 1)
	out, err := exec.Command("/bin/sh", "-c", line).Output()
	if err != nil {
		t.Fatalf("sh -c %q: %v", line, err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	if !slices.Equal(got, want[1:]) {
		t.Errorf("the slave's shell splits it into %q, want %q", got, want[1:])
	}
}

// A slave's report is decoded into the types rollout prints: results with a success, the
// error (naming the slave, with its exit status) with a failure; a slave whose rollout printed
// no report is an error that names it.
func TestRemoteReports(t *testing.T) {
	ctx := context.Background()
	ok := []rollout.VhostResult{{Vhost: "vhost5", From: "tank/proto@1", To: "tank/proto@2", OK: true}}
	attention := vhostAt("vhost5", "tank/proto@1")
	attention.Attention = []string{"unfinished operation: op=promote"}
	for _, c := range []struct {
		name, answer string
		exit         int    // of the *fleet.Error; 0: none
		err          string // in the error
		vhosts       int    // status: vhosts decoded
	}{
		{"promote ok", reportJSON(t, "promote", "", 0, ok), 0, "", 0},
		{"promote failed", "EXIT:3:" + reportJSON(t, "promote", "vhost vhost6: start failed: jail: exit 1", 3, ok), 3, "slave2: vhost vhost6: start failed", 0},
		{"usage on the slave", "EXIT:2:" + reportJSON(t, "promote", "promote: unknown vhost \"vhost9\"", 2, []struct{}{}), 2, `slave2: promote: unknown vhost "vhost9"`, 0},
		{"no rollout there", "ERR:sh: /usr/local/sbin/rollout: not found", -1, "slave2: /usr/local/sbin/rollout --json", 0},
		{"not a report", "rollout version 0.1\n", -1, "slave2: /usr/local/sbin/rollout printed no report", 0},
		{"status needs attention", "EXIT:1:" + reportJSON(t, "status", "status: vhost5: needs attention (see NOTES)", 1, []any{attention, slaveStatus{Kind: "slave", Slave: "x"}}), 1, "slave2: status: vhost5: needs attention", 1},
		{"status ok", reportJSON(t, "status", "", 0, []any{vhostAt("vhost5", "tank/proto@2"), vhostAt("vhost6", "tank/proto@2")}), 0, "", 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := &fakeRun{name: "slave2", out: map[string]string{"--json": c.answer}}
			r := &fleet.Remote{Host: "slave2", Runner: f, Rollout: "/usr/local/sbin/rollout"}
			var err error
			if strings.HasPrefix(c.name, "status") {
				var st []rollout.VhostStatus
				st, err = r.Status(ctx, rollout.StatusOptions{})
				if len(st) != c.vhosts || c.vhosts > 0 && st[0].Vhost != "vhost5" {
					t.Errorf("status: %+v, want %d vhosts", st, c.vhosts)
				}
				if c.exit == 1 && (len(st) != 1 || len(st[0].Attention) != 1) {
					t.Errorf("attention lost: %+v", st)
				}
			} else {
				var res []rollout.VhostResult
				res, _, err = r.Promote(ctx, "2", []string{"vhost5"}, fleet.PromoteOptions{})
				if c.exit == 0 || c.exit == 3 {
					if len(res) != 1 || !res[0].OK || res[0].To != "tank/proto@2" {
						t.Errorf("results %+v", res)
					}
				}
			}
			var fe *fleet.Error
			switch {
			case c.err == "" && err != nil:
				t.Fatalf("error %v", err)
			case c.err == "":
			case err == nil || !strings.Contains(err.Error(), c.err) || strings.Contains(err.Error(), "\n"):
				t.Fatalf("error %v, want one line with %q", err, c.err)
			case c.exit > 0 && (!errors.As(err, &fe) || fe.Exit != c.exit || fe.Host != "slave2"):
				t.Fatalf("error %#v, want a *fleet.Error exit %d", err, c.exit)
			case c.exit < 0 && errors.As(err, &fe):
				t.Fatalf("error %v is a report, but none was printed", err)
			}
		})
	}
}

// status --hosts: one table, a row per vhost of every host; a slave that cannot be reached (a
// changed host key) is a row with its error, the others still print, and the exit status is 1.
func TestFleetStatusUnreachableHost(t *testing.T) {
	e, m, _, _, _, out := testManager(t, map[string]string{
		"all zpool/vhost1":                  stateOf("zpool/proto@2"),
		"all zpool/vhost2":                  stateOf("zpool/proto@1"),
		"zfs holds":                         "zpool/proto@2\trollout\tThu Nov 23 10:00 2026\nzpool/proto@1\trollout\tThu Nov 23 10:00 2026\n",
		"-o property,value all zpool/proto": "rollout:replicated:slave1\t1700000100 zpool/proto@2 1002\n",
	})
	seq := &sequence{}
	s1 := &fakeRun{name: "slave1", out: map[string]string{
		"--json status": reportJSON(t, "status", "", 0, []any{vhostAt("vhost5", "tank/proto@2"), vhostAt("vhost6", "tank/proto@1")}),
	}}
	e.dial = dialFakes(seq, map[string]*fakeRun{"slave1": s1}, map[string]error{
		"Slave2": errors.New("Slave2: HOST KEY CHANGED for 192.0.2.2:22: server offered ssh-ed25519 SHA256:x but /root/.ssh/known_hosts:3 has ssh-ed25519 SHA256:y; if the slave was reinstalled, verify the new key and replace that line, otherwise suspect an attack"),
	})
	hosts, err := e.fleetHosts("all")
	if err != nil || !slices.Equal(hosts, []string{"local", "Slave2", "slave1"}) {
		t.Fatalf("hosts %q %v", hosts, err)
	}
	err = e.fleetStatus(context.Background(), m, hosts, rollout.StatusOptions{})
	if codeOf(err) != exitFailed || !strings.Contains(err.Error(), "Slave2") || strings.Contains(err.Error(), "slave1") {
		t.Fatalf("status --hosts all: %v, want exit 1 naming Slave2 only", err)
	}
	for _, row := range []string{
		`HOST\s+VHOST\s+SNAPSHOT\s+PREVIOUS\s+RUNNING\s+LAST REPLICATION\s+NOTES`,
		`local\s+vhost1\s+zpool/proto@2\s.*`,
		`local\s+vhost2\s+zpool/proto@1\s.*`,
		`Slave2\s+-\s+-\s+-\s+-\s+never\s+error: Slave2: HOST KEY CHANGED .*`,
		`slave1\s+vhost5\s+tank/proto@2\s+-\s+yes\s+zpool/proto@2 \S+\s*`,
		`slave1\s+vhost6\s+tank/proto@1\s.*`,
	} {
		if !regexpLine(out.String(), row) {
			t.Errorf("table lacks %s:\n%s", row, out)
		}
	}
	b, _ := json.Marshal(e.rep.Results)
	var res []hostStatus
	if json.Unmarshal(b, &res) != nil || len(res) != 3 || res[1].OK || res[1].Error == "" || !res[2].OK ||
		len(res[2].Vhosts) != 2 || res[2].LastReplication == nil || res[2].LastReplication.Snapshot != "zpool/proto@2" || len(res[0].Vhosts) != 2 {
		t.Errorf("results %s", b)
	}
	if got := s1.commands(); len(got) != 1 || got[0] != "/usr/local/sbin/rollout --json status" {
		t.Errorf("slave1 ran %q", got)
	}
}

// fleetSetup is a master (vhost1, vhost2 on @1) and two slaves: slave1 has @2, its vhost5
// and vhost8 are on @1, vhost6 on @2; Slave2 has only @1, its vhost7 on @1, and its promote fails.
func fleetSetup(t *testing.T) (*env, *rollout.Manager, *fakeRun, map[string]*fakeRun, *sequence) {
	t.Helper()
	e, m, local, _, _, _ := testManager(t, map[string]string{
		"all zpool/vhost1": stateOf("zpool/proto@1"),
		"all zpool/vhost2": stateOf("zpool/proto@1"),
		"zfs send -R":      "STREAM",
		"zfs send -n":      "size\t6\n",
		"zfs set 'rollout": "",
	})
	both := "tank/proto@1\t1001\t1\t1700000000\t0\t0\ntank/proto/etc@1\t2001\t1\t1700000000\t0\t0\n" +
		"tank/proto@2\t1002\t2\t1700000100\t0\t0\ntank/proto/etc@2\t2002\t2\t1700000100\t0\t0\n"
	one := "tank/proto@1\t1001\t1\t1700000000\t0\t0\ntank/proto/etc@1\t2001\t1\t1700000000\t0\t0\n"
	okPromote := func(v string) string {
		return reportJSON(t, "promote", "", 0, []rollout.VhostResult{{Vhost: v, From: "tank/proto@1", To: "tank/proto@2", OK: true}})
	}
	slaves := map[string]*fakeRun{
		"slave1": {name: "slave1", out: map[string]string{
			"list -H -p -t snapshot": both,
			"--json status": reportJSON(t, "status", "", 0, []any{vhostAt("vhost5", "tank/proto@1"),
				vhostAt("vhost6", "tank/proto@2"), vhostAt("vhost8", "tank/proto@1")}),
			"promote -- 2 vhost5":       okPromote("vhost5"),
			"promote -- 2 vhost8":       okPromote("vhost8"),
			"promote -- proto@2 vhost5": okPromote("vhost5"),
		}},
		"Slave2": {name: "Slave2", out: map[string]string{
			"list -H -p -t snapshot": one,
			"--json status":          reportJSON(t, "status", "", 0, []any{vhostAt("vhost7", "tank/proto@1")}),
			"promote -- 2 vhost7": "EXIT:1:" + reportJSON(t, "promote", "vhost vhost7: health check failed; back on tank/proto@1", 1,
				[]rollout.VhostResult{{Vhost: "vhost7", From: "tank/proto@1", To: "tank/proto@2", Error: "health check failed", RolledBack: true}}),
		}, then: map[string]string{"list -H -p -t snapshot": both}},
	}
	seq := &sequence{}
	e.dial = dialFakes(seq, slaves, nil)
	for _, s := range e.cfg.Slaves {
		s.Pool = "tank"
	}
	return e, m, local, slaves, seq
}

// A fleet promote replicates to the slave that lacks the snapshot, promotes the canary alone,
// then host by host; the first host that fails stops it, and the hosts after it are not touched.
func TestFleetPromoteCanaryFirstStopsOnFailure(t *testing.T) {
	e, m, local, _, seq := fleetSetup(t)
	err := e.fleetPromote(context.Background(), m, "slave1,Slave2,local", "proto@2", "slave1/vhost5", rollout.SwitchOptions{Parallel: 1}, false)
	if codeOf(err) != exitPartial || !strings.Contains(err.Error(), "Slave2") || !strings.Contains(err.Error(), "1 later steps not started") {
		t.Fatalf("fleet promote: %v (exit %d), want Slave2 to fail and stop it", err, codeOf(err))
	}
	var order []string
	seq.mu.Lock()
	for _, c := range seq.ran {
		switch {
		case strings.Contains(c, "zfs receive"), strings.Contains(c, " promote "):
			order = append(order, c)
		}
	}
	seq.mu.Unlock()
	want := []string{
		"Slave2: /sbin/zfs receive",
		"slave1: /usr/local/sbin/rollout --json promote -- 2 vhost5",
		"slave1: /usr/local/sbin/rollout --json promote -- 2 vhost8",
		"Slave2: /usr/local/sbin/rollout --json promote -- 2 vhost7",
	}
	if len(order) != len(want) {
		t.Fatalf("ran, in order:\n  %s\nwant:\n  %s", strings.Join(order, "\n  "), strings.Join(want, "\n  "))
	}
	for i := range want {
		if !strings.HasPrefix(order[i], want[i]) {
			t.Errorf("step %d: %s, want %s", i, order[i], want[i])
		}
	}
	// the master's own vhosts came after the failing host: untouched
	for _, c := range local.commands() {
		if strings.Contains(c, "/usr/sbin/jail") || strings.Contains(c, " set ") && !strings.Contains(c, "rollout:replicated:slave2") || strings.Contains(c, " hold ") {
			t.Errorf("local ran %s after Slave2 failed", c)
		}
	}
	res, _ := e.rep.Results.([]fleet.Result)
	var states []string
	for _, r := range res {
		states = append(states, r.Phase+" "+r.Host+" "+r.State)
	}
	wantStates := []string{"replicate Slave2 done", "canary slave1 done", "promote slave1 done", "promote Slave2 failed", "promote local not started"}
	if !slices.Equal(states, wantStates) {
		t.Errorf("results %q, want %q", states, wantStates)
	}
	if len(res) == 5 && (len(res[3].Results) != 1 || !res[3].Results[0].RolledBack || !strings.Contains(res[3].Error, "Slave2: vhost vhost7: health check failed")) {
		t.Errorf("Slave2's result %+v", res[3])
	}
}

// The dry run plans the same steps and runs nothing that changes anything, here or on a slave:
// status and zfs list, no promote, no receive, no zfs set.
func TestFleetPromoteDryRun(t *testing.T) {
	e, m, local, slaves, seq := fleetSetup(t)
	var out strings.Builder
	e.out = &out
	if err := e.fleetPromote(context.Background(), m, "all", "2", "slave1/vhost5", rollout.SwitchOptions{Parallel: 1}, true); err != nil {
		t.Fatal(err)
	}
	seq.mu.Lock()
	remote := slices.Clone(seq.ran)
	seq.mu.Unlock()
	for _, c := range append(remote, local.commands()...) {
		for _, bad := range []string{" promote", "receive -s", " set ", " hold ", "jail", " destroy "} {
			if strings.Contains(c, bad) {
				t.Errorf("dry run ran %s", c)
			}
		}
	}
	if len(slaves["slave1"].commands()) == 0 || len(slaves["Slave2"].commands()) == 0 {
		t.Errorf("the slaves were not asked")
	}
	plan, _ := e.rep.Plan.(*fleet.Plan)
	if plan == nil {
		t.Fatalf("plan %#v", e.rep.Plan)
	}
	var steps []string
	for _, s := range plan.Steps {
		steps = append(steps, s.Phase+" "+s.Host+" "+strings.Join(s.Vhosts, ","))
	}
	want := []string{"replicate Slave2 ", "canary slave1 vhost5", "promote slave1 vhost8", "promote local vhost1,vhost2", "promote Slave2 vhost7"}
	if !slices.Equal(steps, want) {
		t.Errorf("plan %q, want %q", steps, want)
	}
	for _, s := range []string{"1. replicate to Slave2: incremental from zpool/proto@1 to zpool/proto@2", "2. canary slave1/vhost5 alone", "note: slave1/vhost6: already on @2"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("printed plan lacks %q:\n%s", s, out.String())
		}
	}
}

// A fleet promote is refused before anything runs when a slave cannot be reached or the canary
// is not a vhost of its host.
func TestFleetPromoteRefusals(t *testing.T) {
	e, m, _, slaves, _ := fleetSetup(t)
	ctx := context.Background()
	e.dial = dialFakes(&sequence{}, slaves, map[string]error{"Slave2": errors.New("Slave2: HOST KEY CHANGED for 192.0.2.2:22")})
	err := e.fleetPromote(ctx, m, "all", "2", "slave1/vhost5", rollout.SwitchOptions{Parallel: 1}, false)
	if err == nil || !strings.Contains(err.Error(), "Slave2: HOST KEY CHANGED") || codeOf(err) != exitFailed {
		t.Fatalf("changed host key: %v", err)
	}
	if len(slaves["slave1"].commands()) != 0 {
		t.Errorf("slave1 was asked %q although Slave2 was refused", slaves["slave1"].commands())
	}
	e.dial = dialFakes(&sequence{}, slaves, nil)
	if err := e.fleetPromote(ctx, m, "all", "2", "slave1/vhost9", rollout.SwitchOptions{Parallel: 1}, false); err == nil || !strings.Contains(err.Error(), "has no vhost vhost9") {
		t.Fatalf("unknown canary: %v", err)
	}
	for _, c := range slaves["slave1"].commands() {
		if strings.Contains(c, "promote") {
			t.Errorf("ran %s", c)
		}
	}
	// usage: flags that do not go together, before the config is read
	for _, args := range [][]string{
		{"promote", "--hosts", "all", "proto@2"},
		{"promote", "--hosts", "all", "--canary", "local/vhost1", "proto@2", "vhost1"},
		{"promote", "--host", "slave1", "--hosts", "all", "--canary", "local/vhost1", "proto@2"},
		{"promote", "--canary", "local/vhost1", "proto@2", "vhost1"},
		{"promote", "proto@2"},
		{"status", "--hosts", "all", "vhost1"},
	} {
		if _, errOut, code := run(t, append(args, "--config", noConfig)...); code != exitUsage {
			t.Errorf("%q: exit %d, %q; want a usage error", args, code, errOut)
		}
	}
}

// promote --host runs the promote on the slave and prints and logs its results.
func TestRemotePromote(t *testing.T) {
	e, _, _, slaves, _ := fleetSetup(t)
	var out strings.Builder
	e.msg = &out
	err := e.remotePromote(context.Background(), "slave1", "proto@2", []string{"vhost5"}, fleet.PromoteOptions{SwitchOptions: rollout.SwitchOptions{Parallel: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if got := slaves["slave1"].commands(); len(got) != 1 || got[0] != "/usr/local/sbin/rollout --json promote -- proto@2 vhost5" {
		t.Errorf("slave1 ran %q", got)
	}
	if !strings.Contains(out.String(), "slave1/vhost5: tank/proto@1 -> tank/proto@2") {
		t.Errorf("printed %q", out.String())
	}
	err = e.remotePromote(context.Background(), "Slave2", "2", []string{"vhost7"}, fleet.PromoteOptions{SwitchOptions: rollout.SwitchOptions{Parallel: 1}})
	if codeOf(err) != exitFailed || !strings.HasPrefix(err.Error(), "Slave2: vhost vhost7: health check failed") {
		t.Errorf("failing promote: %v (exit %d)", err, codeOf(err))
	}
}

// A slave whose host key changed is refused by status --hosts and promote --host, over the
// real SSH transport, with the one-line message that names it; nothing is run there.
func TestFleetChangedHostKeyRefused(t *testing.T) {
	file, dir := testConfig(t)
	newSigner := func() (ssh.Signer, ed25519.PrivateKey) {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		s, err := ssh.NewSignerFromKey(priv)
		if err != nil {
			t.Fatal(err)
		}
		return s, priv
	}
	offered, _ := newSigner()
	recorded, _ := newSigner()
	_, clientKey := newSigner()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var execs sync.Map
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				cfg := &ssh.ServerConfig{NoClientAuth: true}
				cfg.AddHostKey(offered)
				_, chans, _, err := ssh.NewServerConn(c, cfg)
				if err == nil {
					for ch := range chans {
						execs.Store(ch.ChannelType(), true)
						_ = ch.Reject(ssh.Prohibited, "test")
					}
				}
			}()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	blk, err := ssh.MarshalPrivateKey(clientKey, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "id"), pem.EncodeToMemory(blk), 0o600); err != nil {
		t.Fatal(err)
	}
	line := knownhosts.Line([]string{knownhosts.Normalize(net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))}, recorded.PublicKey())
	if err := os.WriteFile(filepath.Join(dir, "known_hosts"), []byte(line+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(strings.Replace(string(b), "port = 1\n", fmt.Sprintf("port = %d\n", port), 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := run(t, "status", "--hosts", "slave1", "--config", file)
	if code != exitFailed || !regexpLine(out, `slave1\s+-\s+-\s+-\s+-\s+\S+\s+error: slave1: HOST KEY CHANGED for .*`) || !strings.Contains(errOut, "slave1: could not be asked") {
		t.Errorf("status --hosts slave1: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	_, errOut, code = run(t, "promote", "--host", "slave1", "proto@2", "vhost1", "--config", file)
	if code != exitFailed || !strings.HasPrefix(errOut, "rollout: slave1: HOST KEY CHANGED for ") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("promote --host slave1: exit %d, stderr %q", code, errOut)
	}
	execs.Range(func(k, _ any) bool {
		t.Errorf("a channel (%v) was opened to the slave with the changed key", k)
		return true
	})
}
