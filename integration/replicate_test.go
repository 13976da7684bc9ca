package integration

import (
	"encoding/json"
	"fmt"
	"regexp"

	"sort"
	"strings"
	"testing"
)

// replResult is one slave's outcome in `rollout --json replicate`.
type replResult struct {
	Slave     string   `json:"slave"`
	Mode      string   `json:"mode"`
	Base      string   `json:"base"`
	Target    string   `json:"target"`
	Bytes     int64    `json:"bytes"`
	Error     string   `json:"error"`
	Resumed   []string `json:"resumed"`
	Discarded []string `json:"discarded"`
	Completed []string `json:"completed"`
	Shared    []string `json:"shared_with"`
	Mounted   []string `json:"mounted"`
}

// replPlan is one slave's plan in `rollout --json replicate --dry-run`.
type replPlan struct {
	Slave          string   `json:"slave"`
	Mode           string   `json:"mode"`
	Base           string   `json:"base"`
	Target         string   `json:"target"`
	EstimatedBytes int64    `json:"estimated_bytes"`
	Send           []string `json:"send"`
	Receive        []string `json:"receive"`
}

// replSetup gives master and each slave a fresh pool, writes the master's rollout.toml naming
// the slaves (reached through the host's loopback, host keys checked against the lab's
// known_hosts), and makes the prototype with its first snapshot @1.
func replSetup(t *testing.T, slaves ...string) (*guest, []*guest) {
	t.Helper()
	m := freshPool(t, "master")
	var gs []*guest
	cfg := baseConfig
	for _, n := range slaves {
		s := freshPool(t, n)
		gs = append(gs, s)
		cfg += fmt.Sprintf("[slave.%s]\naddress = \"10.0.2.2\"\nport = %s\nidentity = \"/root/.ssh/id_ed25519\"\nknown_hosts = \"/root/.ssh/known_hosts\"\npool = \"zpool\"\n", n, s.port())
	}
	m.writeFile("/usr/local/etc/rollout.toml", cfg)
	m.makeProto("1")
	if r := m.rollout("snapshot"); r.code != 0 {
		t.Fatalf("snapshot: %+v", r)
	}
	return m, gs
}

// snapGUIDs maps every snapshot below the pool's proto to its guid, named without the pool
// ("proto@1", "proto/etc@1"), so that master and slave listings compare directly.
func snapGUIDs(g *guest) map[string]string {
	g.t.Helper()
	r := g.run("zfs", "list", "-H", "-p", "-t", "snapshot", "-o", "name,guid", "-r", "zpool/proto")
	if r.code != 0 {
		if strings.Contains(r.stderr, "does not exist") {
			return map[string]string{}
		}
		g.t.Fatalf("%s: zfs list: %s", g.name, r.stderr)
	}
	out := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if f := strings.Fields(l); len(f) == 2 {
			out[strings.TrimPrefix(f[0], "zpool/")] = f[1]
		}
	}
	return out
}

func keys(m map[string]string) string {
	k := make([]string, 0, len(m))
	for x := range m {
		k = append(k, x)
	}
	sort.Strings(k)
	return strings.Join(k, " ")
}

// sameSnapshots fails unless the slave has exactly the master's snapshots, guid for guid.
func sameSnapshots(t *testing.T, m, s *guest) {
	t.Helper()
	mg, sg := snapGUIDs(m), snapGUIDs(s)
	if len(mg) == 0 || keys(mg) != keys(sg) {
		t.Fatalf("%s has [%s], master has [%s]", s.name, keys(sg), keys(mg))
	}
	for k, v := range mg {
		if sg[k] != v {
			t.Errorf("%s: %s guid %s, master %s", s.name, k, sg[k], v)
		}
	}
}

// state is everything replication may change on a guest: datasets, snapshots with guids,
// resume tokens. Two equal states mean nothing was changed.
func state(g *guest) string {
	g.t.Helper()
	return g.must("zfs", "list", "-H", "-p", "-t", "all", "-o", "name,guid,receive_resume_token", "-r", "zpool")
}

func (g *guest) sha(path string) string {
	g.t.Helper()
	return strings.Fields(g.must("sha256sum", path))[0]
}

// replReport is `rollout --json replicate`: the one JSON shape of every command, with the
// slaves' results, or (--dry-run) their plans.
type replReport struct {
	Command string       `json:"command"`
	OK      bool         `json:"ok"`
	Exit    int          `json:"exit"`
	Error   string       `json:"error"`
	Results []replResult `json:"results"`
	Plan    *struct {
		Slaves []replPlan `json:"slaves"`
	} `json:"plan"`
}

func decodeReport(t *testing.T, r result) replReport {
	t.Helper()
	var rep replReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || rep.Command != "replicate" || rep.Exit != r.code || rep.OK != (r.code == 0) {
		t.Fatalf("replicate --json: %v\nstdout: %s\nstderr: %s", err, r.stdout, r.stderr)
	}
	return rep
}

func decodeResults(t *testing.T, r result) []replResult {
	t.Helper()
	return decodeReport(t, r).Results
}

func oneLineError(t *testing.T, what string, r result, want ...string) {
	t.Helper()
	msg := strings.TrimSpace(r.stderr)
	if r.code == 0 || strings.Contains(msg, "\n") {
		t.Errorf("%s: exit %d, want non-zero and one line on stderr: %q", what, r.code, msg)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("%s: stderr %q lacks %q", what, msg, w)
		}
	}
}

func TestReplicateFullThenIncremental(t *testing.T) {
	m, ss := replSetup(t, "slave1")
	s := ss[0]

	r := m.rollout("replicate", "--to", "slave1")
	if r.code != 0 || !strings.Contains(r.stdout, "slave1: full zpool/proto@1") {
		t.Fatalf("first replicate: %+v", r)
	}
	sameSnapshots(t, m, s)
	if got := strings.TrimSpace(s.must("zfs", "get", "-H", "-o", "value", "readonly", "zpool/proto")); got != "on" {
		t.Errorf("slave proto readonly=%s", got)
	}
	// the replica is mounted where the slave's jails expect it, with its snapshots reachable
	if got := s.must("cat", "/jail/proto/.zfs/snapshot/1/VERSION"); got != "1\n" {
		t.Errorf("slave /jail/proto/.zfs/snapshot/1/VERSION = %q", got)
	}
	if got := s.must("cat", "/jail/proto/etc/.zfs/snapshot/1/resolv.conf"); got != "nameserver 192.0.2.53\n" {
		t.Errorf("slave etc snapshot: %q", got)
	}

	for _, v := range []string{"2", "3"} {
		m.sh(fmt.Sprintf("echo %s > /jail/proto/VERSION; echo 'nameserver 192.0.2.%s' > /jail/proto/etc/resolv.conf; head -c 3M /dev/urandom > /jail/proto/bin/blob", v, v))
		if r := m.rollout("snapshot"); r.code != 0 {
			t.Fatalf("snapshot %s: %+v", v, r)
		}
		r := m.rollout("replicate", "--to", "slave1")
		prev := fmt.Sprint(int(v[0]-'0') - 1)
		if r.code != 0 || !strings.Contains(r.stdout, "slave1: incremental zpool/proto@"+prev+" -> zpool/proto@"+v) {
			t.Fatalf("replicate @%s: %+v", v, r)
		}
		sameSnapshots(t, m, s)
		for _, f := range []string{"/jail/proto/.zfs/snapshot/" + v + "/bin/blob", "/jail/proto/.zfs/snapshot/" + v + "/VERSION", "/jail/proto/etc/.zfs/snapshot/" + v + "/resolv.conf"} {
			if ms, sl := m.sha(f), s.sha(f); ms != sl {
				t.Errorf("%s differs: master %s, slave %s", f, ms, sl)
			}
		}
	}
	if got := s.must("cat", "/jail/proto/VERSION"); got != "3\n" {
		t.Errorf("slave's mounted proto VERSION = %q, want the newest received", got)
	}
	for _, ds := range []string{"zpool/proto", "zpool/proto/etc"} {
		if got := strings.TrimSpace(s.must("zfs", "get", "-H", "-o", "value", "readonly,mounted", ds)); got != "on\nyes" {
			t.Errorf("slave %s readonly,mounted = %q", ds, got)
		}
	}

	before := state(s)
	r = m.rollout("replicate", "--to", "slave1")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "slave1: up to date at zpool/proto@3" {
		t.Errorf("second run: %+v", r)
	}
	if after := state(s); after != before {
		t.Errorf("an up-to-date run changed the slave:\n%s\n%s", before, after)
	}
}

// interrupt starts a rate-limited replication in the master and interrupts it (SIGINT, as ^C
// would) after the given seconds, while the stream is on the wire.
func interrupt(t *testing.T, m *guest, seconds int) result {
	t.Helper()
	return m.run("bash", "-c", fmt.Sprintf(`rollout --config /usr/local/etc/rollout.toml replicate --to slave1 --bwlimit 4m & pid=$!
sleep %d; kill -INT $pid; wait $pid`, seconds))
}

// tokens lists the slave's datasets that hold a receive_resume_token.
func tokens(s *guest) []string {
	s.t.Helper()
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(s.must("zfs", "get", "-H", "-o", "name,value", "-r", "receive_resume_token", "zpool")), "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[1] != "-" {
			out = append(out, f[0])
		}
	}
	return out
}

func TestReplicateResumeAndStaleToken(t *testing.T) {
	m, ss := replSetup(t, "slave1")
	s := ss[0]
	if r := m.rollout("replicate", "--to", "slave1"); r.code != 0 {
		t.Fatalf("first replicate: %+v", r)
	}
	m.sh("head -c 80M /dev/urandom > /jail/proto/big; echo 2 > /jail/proto/etc/version")
	m.must("rollout", "--config", "/usr/local/etc/rollout.toml", "snapshot")

	// cut midway: the slave keeps the partial receive and a token
	r := interrupt(t, m, 10)
	if r.code == 0 {
		t.Fatalf("interrupted replicate exited 0: %+v", r)
	}
	tok := tokens(s)
	if len(tok) == 0 {
		t.Fatalf("no receive_resume_token on the slave after the interruption: %+v", r)
	}
	t.Logf("interrupted: %s; tokens on %v", strings.TrimSpace(r.stderr), tok)

	r = m.rollout("--json", "--verbose", "replicate", "--to", "slave1")
	res := decodeResults(t, r)
	if r.code != 0 || len(res) != 1 || res[0].Error != "" {
		t.Fatalf("resumed run: %+v", r)
	}
	if strings.Join(res[0].Resumed, " ") != strings.Join(tok, " ") {
		t.Errorf("resumed %v, tokens were on %v", res[0].Resumed, tok)
	}
	// the resumed stream came from the token (zfs send -t), not from a new full increment of @2
	if !strings.Contains(r.stderr, `cmd="/sbin/zfs send -t 1-`) {
		t.Errorf("no zfs send -t in the verbose log:\n%s", r.stderr)
	}
	// only the rest: what had arrived is not sent again (the increment is 80 MiB and more)
	if res[0].Bytes >= 80<<20 || strings.Contains(noSendFlags(r.stderr), `cmd="/sbin/zfs send -R -I @1 zpool/proto@2"`) {
		t.Errorf("the increment was sent again (%d bytes this run)", res[0].Bytes)
	}
	t.Logf("resumed %v, completed %v, %d bytes", res[0].Resumed, res[0].Completed, res[0].Bytes)
	if tk := tokens(s); len(tk) != 0 {
		t.Errorf("tokens left on %v", tk)
	}
	sameSnapshots(t, m, s)
	if m.sha("/jail/proto/.zfs/snapshot/2/big") != s.sha("/jail/proto/.zfs/snapshot/2/big") {
		t.Error("big file differs after the resume")
	}
	if got := s.must("cat", "/jail/proto/etc/.zfs/snapshot/2/version"); got != "2\n" {
		t.Errorf("etc@2 on the slave: %q", got)
	}

	// a stale token: cut the next increment, then the snapshot it was sending is destroyed on
	// the master. The partial receive is discarded (receive -A) and the slave gets the new one.
	m.sh("head -c 64M /dev/urandom > /jail/proto/big")
	m.must("rollout", "--config", "/usr/local/etc/rollout.toml", "snapshot")
	if r := interrupt(t, m, 8); r.code == 0 {
		t.Fatalf("second interrupted replicate exited 0: %+v", r)
	}
	tok = tokens(s)
	if len(tok) == 0 {
		t.Fatal("no token after the second interruption")
	}
	m.must("zfs", "destroy", "-r", "zpool/proto@3")
	m.sh("echo 4 > /jail/proto/VERSION")
	m.must("rollout", "--config", "/usr/local/etc/rollout.toml", "snapshot", "--name", "4")
	r = m.rollout("--json", "replicate", "--to", "slave1")
	res = decodeResults(t, r)
	if r.code != 0 || len(res) != 1 || res[0].Error != "" {
		t.Fatalf("run after the stale token: %+v", r)
	}
	if strings.Join(res[0].Discarded, " ") != strings.Join(tok, " ") || len(res[0].Resumed) != 0 {
		t.Errorf("discarded %v resumed %v, tokens were on %v", res[0].Discarded, res[0].Resumed, tok)
	}
	if res[0].Mode != "incremental" || res[0].Base != "zpool/proto@2" || res[0].Target != "zpool/proto@4" {
		t.Errorf("after discarding: %+v", res[0])
	}
	if tk := tokens(s); len(tk) != 0 {
		t.Errorf("tokens left on %v", tk)
	}
	sameSnapshots(t, m, s)
	if got := s.must("cat", "/jail/proto/.zfs/snapshot/4/VERSION"); got != "4\n" {
		t.Errorf("slave @4 VERSION %q", got)
	}
}

// withNewHostKey gives the slave a new sshd host key (as a reinstall would) until the test
// ends; the master's known_hosts keeps the old one. The swap and the restore go through the
// master (without host key checking, for this one maintenance step only), so the lab's own
// verified connection to the slave is never needed while the key differs.
func withNewHostKey(t *testing.T, m, s *guest) {
	t.Helper()
	ssh := fmt.Sprintf("ssh -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -p %s root@10.0.2.2", s.port())
	// sshd re-executes itself on reload: wait until it serves the expected key, or a connection
	// in that moment fails for another reason (handshake EOF) than the one tested
	served := func(pub string) {
		m.sh(fmt.Sprintf(`for i in $(seq 100); do ssh-keyscan -t ed25519 -p %s 10.0.2.2 2>/dev/null | grep -qF %q && exit 0; sleep 0.2; done; echo "sshd does not serve its key" >&2; exit 1`, s.port(), pub))
	}
	keys := strings.Fields(m.sh(ssh + ` 'set -e; cd /etc/ssh; cp -p ssh_host_ed25519_key /root/hk.orig; cp -p ssh_host_ed25519_key.pub /root/hk.orig.pub
rm -f ssh_host_ed25519_key ssh_host_ed25519_key.pub; ssh-keygen -q -t ed25519 -N "" -C new -f ssh_host_ed25519_key; systemctl reload ssh
cut -d" " -f2 /root/hk.orig.pub; cut -d" " -f2 ssh_host_ed25519_key.pub'`))
	if len(keys) != 2 || keys[0] == keys[1] {
		t.Fatalf("host keys %q", keys)
	}
	t.Cleanup(func() {
		m.sh(ssh + ` 'set -e; cd /etc/ssh; cp -p /root/hk.orig ssh_host_ed25519_key; cp -p /root/hk.orig.pub ssh_host_ed25519_key.pub; systemctl reload ssh'`)
		served(keys[0])
	})
	served(keys[1])
}

func TestReplicateRefusesChangedHostKey(t *testing.T) {
	m, ss := replSetup(t, "slave1")
	s := ss[0]
	if r := m.rollout("replicate", "--to", "slave1"); r.code != 0 {
		t.Fatalf("first replicate: %+v", r)
	}
	m.sh("echo 2 > /jail/proto/VERSION")
	m.must("rollout", "--config", "/usr/local/etc/rollout.toml", "snapshot")
	before := state(s)

	withNewHostKey(t, m, s)
	r := m.rollout("replicate", "--to", "slave1")
	oneLineError(t, "changed host key", r, "slave1: HOST KEY CHANGED for 10.0.2.2:"+s.port(), "/root/.ssh/known_hosts:", "suspect an attack")
	r = m.rollout("replicate", "--to", "slave1", "--dry-run")
	oneLineError(t, "changed host key, dry run", r, "HOST KEY CHANGED")
	if after := state(s); after != before {
		t.Errorf("slave changed although its host key was refused:\n%s\n%s", before, after)
	}
}

func TestReplicateDivergedAndInUse(t *testing.T) {
	m, ss := replSetup(t, "slave1")
	s := ss[0]
	if r := m.rollout("replicate", "--to", "slave1"); r.code != 0 {
		t.Fatalf("first replicate: %+v", r)
	}
	m.sh("echo 2 > /jail/proto/VERSION")
	m.must("rollout", "--config", "/usr/local/etc/rollout.toml", "snapshot")

	// a snapshot made on the slave, which the master lacks
	s.must("zfs", "snapshot", "-r", "zpool/proto@local")
	before := state(s)
	r := m.rollout("replicate", "--to", "slave1")
	oneLineError(t, "slave-only snapshot", r, "slave1: refusing to replicate", "zpool/proto has snapshots newer than the base that the master lacks: @local", "--force")
	if after := state(s); after != before {
		t.Errorf("refused run changed the slave:\n%s\n%s", before, after)
	}
	r = m.rollout("replicate", "--to", "slave1", "--force")
	if r.code != 0 || !strings.Contains(r.stdout, "slave1: incremental zpool/proto@1 -> zpool/proto@2") {
		t.Fatalf("--force: %+v", r)
	}
	sameSnapshots(t, m, s) // @local is gone, @2 is there
	if got := s.must("cat", "/jail/proto/.zfs/snapshot/2/VERSION"); got != "2\n" {
		t.Errorf("slave @2 VERSION %q", got)
	}

	// a slave vhost runs on @1; the master prunes @1 and moves on to @3
	s.must("zfs", "create", "-o", "mountpoint=none", "-o", "rollout:snapshot=zpool/proto@1", "zpool/vhost1")
	m.must("zfs", "destroy", "-r", "zpool/proto@1")
	m.sh("echo 3 > /jail/proto/VERSION")
	m.must("rollout", "--config", "/usr/local/etc/rollout.toml", "snapshot")
	// a plain incremental keeps @1: nothing to refuse, with or without --force
	r = m.rollout("replicate", "--to", "slave1", "--force")
	if r.code != 0 || !strings.Contains(r.stdout, "slave1: incremental zpool/proto@2 -> zpool/proto@3") {
		t.Fatalf("replicate past a pruned snapshot in use: %+v", r)
	}
	if got := keys(snapGUIDs(s)); got != "proto/etc@1 proto/etc@2 proto/etc@3 proto@1 proto@2 proto@3" {
		t.Errorf("slave snapshots after the prune: %s", got)
	}

	// now the slave also has a snapshot of its own, so only receive -F would do; -F would
	// destroy the @1 that vhost1 runs on: refused, even with --force
	s.must("zfs", "snapshot", "-r", "zpool/proto@local2")
	m.sh("echo 4 > /jail/proto/VERSION")
	m.must("rollout", "--config", "/usr/local/etc/rollout.toml", "snapshot")
	before = state(s)
	r = m.rollout("replicate", "--to", "slave1")
	oneLineError(t, "slave-only snapshot with a vhost on a pruned one", r, "@local2", "--force")
	r = m.rollout("replicate", "--to", "slave1", "--force")
	oneLineError(t, "--force over a snapshot in use", r, "zpool/proto@1 (used by zpool/vhost1)", "never, even with --force")
	if after := state(s); after != before {
		t.Errorf("refused run changed the slave:\n%s\n%s", before, after)
	}
	if got := s.must("cat", "/jail/proto/.zfs/snapshot/1/VERSION"); got != "1\n" {
		t.Errorf("slave @1 VERSION %q", got)
	}
}

func TestReplicateTwoSlavesOneSend(t *testing.T) {
	m, ss := replSetup(t, "slave1", "slave2")
	m.sh("head -c 8M /dev/urandom > /jail/proto/bin/blob")
	m.must("rollout", "--config", "/usr/local/etc/rollout.toml", "snapshot") // @2

	// --dry-run: base, target, size and the exact commands, for both; nothing changes
	before := []string{state(ss[0]), state(ss[1])}
	r := m.rollout("replicate", "--to", "slave1", "--to", "slave2", "--dry-run")
	if r.code != 0 {
		t.Fatalf("dry run: %+v", r)
	}
	for _, n := range []string{"slave1", "slave2"} {
		for _, w := range []string{n + ": full send of zpool/proto@2, about ", "local:  /sbin/zfs send -R zpool/proto@2\n",
			n + ": /sbin/zfs receive -s -u -o readonly=on -d zpool\n", n + ": /sbin/zfs set readonly=on zpool/proto\n"} {
			if !strings.Contains(noSendFlags(r.stdout), w) {
				t.Errorf("dry run lacks %q:\n%s", w, r.stdout)
			}
		}
	}
	r = m.rollout("--json", "replicate", "--to", "slave1", "--to", "slave2", "--dry-run")
	rep := decodeReport(t, r)
	if rep.Plan == nil || len(rep.Plan.Slaves) != 2 || len(rep.Results) != 0 {
		t.Fatalf("dry run --json: %+v", r)
	}
	plans := rep.Plan.Slaves
	for _, p := range plans {
		if p.Mode != "full" || p.Target != "zpool/proto@2" || p.EstimatedBytes < 8<<20 || noSendFlags(strings.Join(p.Send, " ")) != "/sbin/zfs send -R zpool/proto@2" {
			t.Errorf("plan %+v", p)
		}
	}
	for i, s := range ss {
		if state(s) != before[i] {
			t.Errorf("dry run changed %s", s.name)
		}
	}

	// both are fresh: one full send feeds both
	r = m.rollout("--json", "--verbose", "replicate", "--to", "slave1", "--to", "slave2")
	checkShared(t, r, "/sbin/zfs send -R zpool/proto@2")
	for _, s := range ss {
		sameSnapshots(t, m, s)
		if got := s.must("cat", "/jail/proto/.zfs/snapshot/2/VERSION"); got != "1\n" {
			t.Errorf("%s: VERSION %q", s.name, got)
		}
	}

	// both at @2: one incremental send feeds both
	m.sh("echo 3 > /jail/proto/VERSION; head -c 4M /dev/urandom > /jail/proto/bin/blob")
	m.must("rollout", "--config", "/usr/local/etc/rollout.toml", "snapshot")
	r = m.rollout("--json", "--verbose", "replicate", "--to", "slave1", "--to", "slave2")
	checkShared(t, r, "/sbin/zfs send -R -I @2 zpool/proto@3")
	for _, s := range ss {
		sameSnapshots(t, m, s)
	}

	// different bases: two sends (slave2 is held back at @3)
	m.must("rollout", "--config", "/usr/local/etc/rollout.toml", "snapshot")
	if r := m.rollout("replicate", "--to", "slave1"); r.code != 0 {
		t.Fatal(r)
	}
	m.must("rollout", "--config", "/usr/local/etc/rollout.toml", "snapshot") // @5
	r = m.rollout("--json", "--verbose", "replicate", "--to", "slave1", "--to", "slave2")
	if n := sends(r.stderr); n != 2 || len(decodeResults(t, r)[0].Shared) != 0 {
		t.Errorf("different bases: %d sends, want 2\n%s", n, r.stderr)
	}
	for _, s := range ss {
		sameSnapshots(t, m, s)
	}
}

// sendFlags matches zfs send's stream flags ([replicate] send_flags, auto by default: what the
// lab's pools support) and, in a dry run, the note on them after the command.
var sendFlags = regexp.MustCompile(`/sbin/zfs send((?: -[cLew])*) ([^\n"]*?)(?:   \(flags: [^\n]*\))?(\n|"|$)`)

// noSendFlags takes the stream flags out of every zfs send command line in s, so that the
// commands can be compared whatever the lab's pools support.
func noSendFlags(s string) string { return sendFlags.ReplaceAllString(s, "/sbin/zfs send $2$3") }

// sends counts the zfs send processes the master ran (the dry runs for size estimates excluded),
// from rollout's --verbose log, which has a line for every command run.
func sends(log string) int {
	n := 0
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "msg=exec host=local") && strings.Contains(l, `cmd="/sbin/zfs send`) && !strings.Contains(l, "zfs send -n") {
			n++
		}
	}
	return n
}

func checkShared(t *testing.T, r result, send string) {
	t.Helper()
	res := decodeResults(t, r)
	if r.code != 0 || len(res) != 2 {
		t.Fatalf("replicate to both: %+v", r)
	}
	if n := sends(r.stderr); n != 1 || !strings.Contains(noSendFlags(r.stderr), `cmd="`+send+`"`) {
		t.Errorf("%d zfs send runs, want one %q:\n%s", n, send, r.stderr)
	}
	receives := 0
	for _, l := range strings.Split(r.stderr, "\n") {
		if strings.Contains(l, "msg=exec host=slave") && strings.Contains(l, `cmd="/sbin/zfs receive`) {
			receives++
		}
	}
	if receives != 2 {
		t.Errorf("%d receives, want 2:\n%s", receives, r.stderr)
	}
	if strings.Join(res[0].Shared, ",") != res[1].Slave || strings.Join(res[1].Shared, ",") != res[0].Slave {
		t.Errorf("shared_with: %+v", res)
	}
	for _, x := range res {
		if x.Bytes == 0 || x.Bytes != res[0].Bytes {
			t.Errorf("bytes: %+v", res)
		}
	}
}

func TestReplicateBadInput(t *testing.T) {
	m, ss := replSetup(t, "slave1")
	before := []string{state(m), state(ss[0])}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown slave", []string{"replicate", "--to", "nosuch"}, "nosuch"},
		{"shell metacharacters", []string{"replicate", "--to", "slave1", "proto@2;reboot"}, `"proto@2;reboot"`},
		{"missing snapshot", []string{"replicate", "--to", "slave1", "proto@7"}, "7"},
		{"no destination", []string{"replicate"}, "--to NAME or --all"},
		{"bad bwlimit", []string{"replicate", "--to", "slave1", "--bwlimit", "fast"}, "--bwlimit"},
	}
	for _, c := range cases {
		oneLineError(t, c.name, m.rollout(c.args...), c.want)
	}
	if state(m) != before[0] || state(ss[0]) != before[1] {
		t.Error("refused commands changed a pool")
	}
}
