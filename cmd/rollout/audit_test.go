package main

// Tests of what goes to syslog and of rollout status's verdict, with rollout's packages run
// against a scripted zfs (fakeRun) and a jail host that needs no FreeBSD (fakeJails).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rollout-dev/rollout/proto/command"
	"github.com/rollout-dev/rollout/replicate"
	"github.com/rollout-dev/rollout/rollout"
	"github.com/rollout-dev/rollout/rollout/audit"
	"github.com/rollout-dev/rollout/rollout/config"
	"github.com/rollout-dev/rollout/rollout/host"
)

var _ audit.Writer = (*capture)(nil)

// capture is an audit.Writer that keeps the lines, with their priority.
type capture struct {
	mu    sync.Mutex
	lines []string
}

func (c *capture) Info(l string) error { return c.add("info: " + l) }
func (c *capture) Err(l string) error  { return c.add("err: " + l) }
func (c *capture) add(l string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lines = append(c.lines, l)
	return nil
}

// fakeRun is a command.Runner: the answer of the longest key contained in the quoted command
// line ("ERR:..." fails with that stderr, "EXIT:N:..." prints ... and exits N); anything else succeeds silently. It drains stdin, as
// zfs receive does, and records every command.
type fakeRun struct {
	name string
	out  map[string]string
	then map[string]string // merged into out once a zfs receive succeeds
	mu   sync.Mutex
	ran  []string
}

// batchedGet answers the one `zfs get -r` of every vhost's state (rollout.World) from the
// per-dataset answers ("all DATASET": "property\tvalue" lines), and lists the prototype.
func (f *fakeRun) batchedGet() string {
	var b strings.Builder
	for _, ds := range []string{"zpool/proto", "zpool/proto/etc"} {
		fmt.Fprintf(&b, "%s\trollout:snapshot\t-\t-\n", ds)
	}
	for _, k := range slices.Sorted(maps.Keys(f.out)) {
		ds, ok := strings.CutPrefix(k, "all ")
		if !ok {
			continue
		}
		fmt.Fprintf(&b, "%s\trollout:boot\t-\t-\n", ds)
		for _, c := range []string{"cfg", "var", "home"} {
			fmt.Fprintf(&b, "%s/%s\trollout:boot\t-\t-\n", ds, c)
		}
		for _, l := range strings.Split(strings.TrimSpace(f.out[k]), "\n") {
			if prop, val, ok := strings.Cut(l, "\t"); ok {
				fmt.Fprintf(&b, "%s\t%s\t%s\tlocal\n", ds, prop, val)
			}
		}
	}
	return b.String()
}

func (f *fakeRun) Host() string { return f.name }

func (f *fakeRun) Run(_ context.Context, c command.Cmd) error {
	q := command.Quote(c.Argv)
	f.mu.Lock()
	f.ran = append(f.ran, q)
	key := ""
	for k := range f.out {
		if strings.Contains(q, k) && len(k) > len(key) {
			key = k
		}
	}
	ans := f.out[key]
	if strings.Contains(q, "get -H -p -r -t filesystem -o name,property,value,source") {
		ans = f.batchedGet()
	}
	f.mu.Unlock()
	if c.Stdin != nil {
		_, _ = io.Copy(io.Discard, c.Stdin)
	}
	if msg, ok := strings.CutPrefix(ans, "ERR:"); ok {
		return &command.Error{Host: f.name, Argv: c.Argv, ExitCode: 1, Stderr: msg, Err: errors.New("exit status 1")}
	}
	// "EXIT:N:OUTPUT" prints OUTPUT and exits N, as rollout --json does when it fails
	if rest, ok := strings.CutPrefix(ans, "EXIT:"); ok {
		code, out, _ := strings.Cut(rest, ":")
		if c.Stdout != nil {
			_, _ = io.WriteString(c.Stdout, out)
		}
		return &command.Error{Host: f.name, Argv: c.Argv, ExitCode: int(code[0] - '0'), Err: errors.New("exit status " + code)}
	}
	if c.Stdout != nil {
		_, _ = io.WriteString(c.Stdout, ans)
	}
	if strings.Contains(q, "zfs receive") {
		f.mu.Lock()
		maps.Copy(f.out, f.then)
		f.mu.Unlock()
	}
	return nil
}

func (f *fakeRun) commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.ran)
}

// fakeJails is a host.Host whose jails run when running says so; the prototype's snapshot
// directories are one directory with the mount points a jail needs.
type fakeJails struct {
	host.Host // anything else panics: not expected here
	dir       string
	running   map[string]bool
}

func (h *fakeJails) ConfFile(j host.Jail) string { return filepath.Join(h.dir, "conf", j.Name+".conf") }
func (h *fakeJails) RenderConf(j host.Jail) ([]byte, error) {
	return []byte("jail " + j.Name + "\n"), nil
}
func (h *fakeJails) StopArgv(host.Jail) [][]string  { return [][]string{{"/usr/sbin/jail", "-r"}} }
func (h *fakeJails) StartArgv(host.Jail) [][]string { return [][]string{{"/usr/sbin/jail", "-c"}} }
func (h *fakeJails) Running(_ context.Context, n string) (bool, error) {
	return h.running[n], nil
}
func (h *fakeJails) Root(context.Context, string) (string, bool, error) {
	return "", false, errors.New("fake: no /etc to compare")
}
func (h *fakeJails) Mounted(context.Context, string) (string, bool, error) { return "", false, nil }
func (h *fakeJails) Jails(context.Context) (map[string]bool, error) {
	out := map[string]bool{}
	for n, r := range h.running {
		if r {
			out[n] = true
		}
	}
	return out, nil
}
func (h *fakeJails) MountTypes(context.Context, []string) (map[string]string, error) {
	return map[string]string{}, nil
}
func (h *fakeJails) SnapshotDir(context.Context, string, string, string) (string, func(), error) {
	return filepath.Join(h.dir, "snap"), func() {}, nil
}

const protoSnaps = "zpool/proto@1\t1001\t1\t1700000000\t0\t1\nzpool/proto@2\t1002\t2\t1700000100\t0\t1\n" +
	"zpool/proto/etc@1\t2001\t1\t1700000000\t0\t1\nzpool/proto/etc@2\t2002\t2\t1700000100\t0\t1\n"

// testManager is a Manager of two vhosts and two slaves on the fakes, with its env writing
// syslog lines to the returned capture.
func testManager(t *testing.T, local map[string]string) (*env, *rollout.Manager, *fakeRun, *fakeJails, *capture, *bytes.Buffer) {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{"snap/conf/base/etc", "snap/etc", "snap/dev", "snap/cfg", "snap/var", "snap/home", "fstab"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.Parse("test.toml", []byte(fmt.Sprintf(`pool = "zpool"
state_dir = %q
jail_root = %q
fstab_dir = %q
[proto]
mountpoint = %q
[vhost.vhost1]
[vhost.vhost2]
[slave.slave1]
address = "192.0.2.1"
identity = "/root/.ssh/id"
[slave.Slave2]
address = "192.0.2.2"
identity = "/root/.ssh/id"
`, filepath.Join(dir, "state"), filepath.Join(dir, "jail"), filepath.Join(dir, "fstab"), filepath.Join(dir, "proto"))))
	if err != nil {
		t.Fatal(err)
	}
	r := &fakeRun{name: "local", out: map[string]string{
		"list -H -o name -t filesystem -r zpool/proto": "zpool/proto\nzpool/proto/etc\n",
		"list -H -p -t snapshot":                       protoSnaps,
	}}
	for k, v := range local {
		r.out[k] = v
	}
	h := &fakeJails{dir: dir, running: map[string]bool{}}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var out bytes.Buffer
	capt := &capture{}
	e := &env{cfg: cfg, out: &out, msg: &out, errOut: io.Discard, log: log, local: r, rep: &report{}, audit: capt}
	m := &rollout.Manager{Cfg: cfg, R: r, Host: h, Log: log, Out: &out, Self: "/usr/local/bin/rollout"}
	return e, m, r, h, capt, &out
}

func stateOf(snapshot string, more ...string) string {
	return strings.Join(append([]string{"rollout:snapshot\t" + snapshot, "rollout:pending\tnone"}, more...), "\n") + "\n"
}

// A promote writes one line per vhost to syslog: what, from, to, the outcome; the failed one at
// priority err. The dry run writes nothing.
func TestSyslogPromote(t *testing.T) {
	e, m, r, _, capt, _ := testManager(t, map[string]string{
		"all zpool/vhost1": stateOf("zpool/proto@1"),
		"all zpool/vhost2": stateOf("zpool/proto@1"),
		// vhost2's journal cannot be written
		"running=false' zpool/vhost2": "ERR:cannot set property for 'zpool/vhost2': out of space",
	})
	ctx := context.Background()
	plan, err := m.PlanPromote(ctx, "proto@2", []string{"vhost1", "vhost2"}, rollout.SwitchOptions{Parallel: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.execPlan(ctx, "promote", true, m, plan); err != nil || len(capt.lines) != 0 {
		t.Fatalf("dry run: %v, syslog %q", err, capt.lines)
	}
	for _, c := range r.commands() {
		if strings.Contains(c, " set ") || strings.Contains(c, " hold ") {
			t.Fatalf("dry run ran %s", c)
		}
	}
	err = e.execPlan(ctx, "promote", false, m, plan)
	if codeOf(err) != exitPartial {
		t.Fatalf("promote: %v (exit %d), want vhost2 to fail", err, codeOf(err))
	}
	want := []string{
		"info: promote vhost1 zpool/proto@1 -> zpool/proto@2: ok",
		"err: promote vhost2 zpool/proto@1 -> zpool/proto@2: failed: zpool/vhost2: /sbin/zfs set 'rollout:pending=op=promote from=zpool/proto@1 to=zpool/proto@2 step=switch running=false' zpool/vhost2: cannot set property for 'zpool/vhost2': out of space",
	}
	if strings.Join(capt.lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("syslog:\n  %s\nwant:\n  %s", strings.Join(capt.lines, "\n  "), strings.Join(want, "\n  "))
	}
}

// A replicate writes one line per slave, the slave that failed with its error; the master
// records the one that received the snapshot (rollout:replicated:SLAVE), and the dry run shows
// that zfs set and records and logs nothing.
func TestSyslogReplicate(t *testing.T) {
	e, _, local, _, capt, out := testManager(t, map[string]string{
		"zfs send -R":      "STREAM",
		"zfs send -n":      "size\t6\n",
		"zfs set 'rollout": "",
	})
	slave := func(name, receive string) *fakeRun {
		return &fakeRun{name: name, out: map[string]string{
			"list -H -p -t snapshot": "ERR:cannot open 'tank/proto': dataset does not exist",
			"receive_resume_token":   "ERR:cannot open 'tank/proto': dataset does not exist",
			"zfs receive":            receive,
		}, then: map[string]string{
			"list -H -p -t snapshot": "tank/proto@2\t1002\t2\t1700000100\t0\t0\ntank/proto/etc@2\t2002\t2\t1700000100\t0\t0\n",
		}}
	}
	s1, s2 := slave("slave1", ""), slave("Slave2", "ERR:cannot receive new filesystem stream: out of space")
	targets := []replicate.Slave{{Name: "slave1", Runner: s1, Pool: "tank"}, {Name: "Slave2", Runner: s2, Pool: "tank"}}
	rep := &replicate.Replicator{Local: local, Dataset: "zpool/proto", Log: e.log}
	ctx := context.Background()

	if err := e.replicateTo(ctx, rep, targets, nil, nil, replicate.Options{}, true); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"slave1", "slave2"} {
		if !strings.Contains(out.String(), "local:  /sbin/zfs set 'rollout:replicated:"+s+"=") {
			t.Errorf("dry run plan lacks the record of %s:\n%s", s, out)
		}
	}
	if len(capt.lines) != 0 || slices.ContainsFunc(local.commands(), func(c string) bool { return strings.Contains(c, " set ") }) {
		t.Fatalf("dry run: syslog %q, commands %q", capt.lines, local.commands())
	}

	err := e.replicateTo(ctx, rep, targets, nil, nil, replicate.Options{}, false)
	if codeOf(err) != exitPartial {
		t.Fatalf("replicate: %v, want Slave2 to fail", err)
	}
	want := []string{
		"info: replicate slave1 - -> zpool/proto@2: ok (full, 6B)",
		"err: replicate Slave2 - -> zpool/proto@2: failed: Slave2: /sbin/zfs receive -s -u -o readonly=on -d tank: cannot receive new filesystem stream: out of space",
	}
	if strings.Join(capt.lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("syslog:\n  %s\nwant:\n  %s", strings.Join(capt.lines, "\n  "), strings.Join(want, "\n  "))
	}
	var records []string
	for _, c := range local.commands() {
		if strings.Contains(c, "rollout:replicated:") {
			records = append(records, c)
		}
	}
	if len(records) != 1 || !strings.HasPrefix(records[0], "/sbin/zfs set 'rollout:replicated:slave1=") || !strings.HasSuffix(records[0], " zpool/proto@2 1002' zpool/proto") {
		t.Errorf("records %q, want slave1's only", records)
	}
}

// status exits 1 for each thing that needs attention, naming it in the table and in each
// result's attention; 0 when all is well. It lists each slave's last replication.
func TestStatusAttention(t *testing.T) {
	held := "zpool/proto@2\trollout\tThu Nov 23 10:00 2026\n"
	for _, c := range []struct {
		name    string
		state   string // vhost1's properties
		holds   string
		running bool
		fstab   string // the snapshot vhost1's fstab is written for; "" none
		want    string // in vhost1's attention; "" none
	}{
		{"clean", stateOf("zpool/proto@2"), held, true, "zpool/proto@2", ""},
		{"stopped on purpose", stateOf("zpool/proto@2", "rollout:boot\toff"), held, false, "zpool/proto@2", ""},
		{"journal", stateOf("zpool/proto@2", "rollout:pending\top=promote from=zpool/proto@1 to=zpool/proto@2 step=switch running=true"), held, true, "zpool/proto@2", "unfinished operation: op=promote"},
		{"not held", stateOf("zpool/proto@2"), "", true, "zpool/proto@2", "snapshot zpool/proto@2 is not held"},
		{"fstab elsewhere", stateOf("zpool/proto@2"), held, true, "zpool/proto@1", "fstab points at @1, state says zpool/proto@2"},
		{"fstab missing", stateOf("zpool/proto@2"), held, true, "", "fstab missing"},
		{"not running", stateOf("zpool/proto@2"), held, false, "zpool/proto@2", "not running, but to run"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e, m, _, h, _, out := testManager(t, map[string]string{
				"all zpool/vhost1":                  c.state,
				"all zpool/vhost2":                  "",
				"zfs holds":                         c.holds,
				"-o property,value all zpool/proto": "rollout:replicated:slave1\t1700000100 zpool/proto@2 1002\n",
			})
			// (a journal's rollout:pending comes after stateOf's "none": the last line wins)
			h.running["vhost1"] = c.running
			if c.fstab != "" {
				b, err := m.RenderFstab(e.cfg.Vhosts["vhost1"], c.fstab)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(e.cfg.FstabPath(e.cfg.Vhosts["vhost1"]), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			err := e.status(context.Background(), m, nil, rollout.StatusOptions{})
			if c.want == "" && err != nil || c.want != "" && (codeOf(err) != exitFailed || !strings.Contains(err.Error(), "vhost1")) {
				t.Fatalf("status: %v, want attention %q", err, c.want)
			}
			b, jerr := json.Marshal(e.rep.Results)
			var res []map[string]any
			if jerr != nil || json.Unmarshal(b, &res) != nil || len(res) != 4 {
				t.Fatalf("results %s %v", b, jerr)
			}
			att, _ := res[0]["attention"].([]any)
			if res[0]["kind"] != "vhost" || res[0]["vhost"] != "vhost1" || (c.want == "") != (len(att) == 0) ||
				c.want != "" && !strings.Contains(fmt.Sprint(att), c.want) {
				t.Errorf("vhost1 %v, want attention %q", res[0], c.want)
			}
			if c.want != "" && !strings.Contains(out.String(), c.want) {
				t.Errorf("table lacks %q:\n%s", c.want, out)
			}
			// slaves: the recorded one with its time and snapshot; the other never
			when := time.Unix(1700000100, 0).Local().Format(time.RFC3339)
			if res[2]["kind"] != "slave" || res[2]["slave"] != "Slave2" || res[2]["replicated"] != false ||
				res[3]["slave"] != "slave1" || res[3]["snapshot"] != "zpool/proto@2" || res[3]["guid"] != "1002" {
				t.Errorf("slaves %v %v", res[2], res[3])
			}
			if !regexpLine(out.String(), `slave1\s+`+regexp.QuoteMeta(when)+`\s+zpool/proto@2`) || !regexpLine(out.String(), `Slave2\s+never\s+-`) {
				t.Errorf("slave table:\n%s", out)
			}
		})
	}
}

func regexpLine(text, pattern string) bool {
	return regexp.MustCompile(`(?m)^` + pattern + `$`).MatchString(text)
}

// Through the command line: a change that fails is logged, a dry run and a command that fails
// before changing anything are not.
func TestSyslogFromCommandLine(t *testing.T) {
	file, _ := testConfig(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"snapshot"}, "err: snapshot " + testPool + "/proto: failed: "},
		{[]string{"snapshot", "-n"}, ""},
		{[]string{"promote", "proto@2", "vhost1"}, ""},
		{[]string{"replicate", "--all", "-n"}, ""},
	} {
		capt := &capture{}
		a := newApp(io.Discard, io.Discard)
		a.Metadata[auditKey] = capt
		err := a.RunContext(context.Background(), append([]string{"rollout", "--config", file}, c.args...))
		if err == nil {
			t.Fatalf("%q: succeeded without zfs", c.args)
		}
		got := strings.Join(capt.lines, "\n")
		if c.want == "" && got != "" || c.want != "" && (len(capt.lines) != 1 || !strings.HasPrefix(got, c.want)) {
			t.Errorf("%q: syslog %q, want %q", c.args, got, c.want)
		}
	}
}
