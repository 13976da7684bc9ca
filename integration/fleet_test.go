package integration

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// fleetHost is one host's part of `rollout --json status --hosts`.
type fleetHost struct {
	Host            string          `json:"host"`
	OK              bool            `json:"ok"`
	Error           string          `json:"error"`
	LastReplication json.RawMessage `json:"last_replication"`
	Vhosts          []statusJSON    `json:"vhosts"`
}

// fleetStep is one step's outcome in `rollout --json promote --hosts`.
type fleetStep struct {
	Phase  string   `json:"phase"`
	Host   string   `json:"host"`
	Vhosts []string `json:"vhosts"`
	State  string   `json:"state"`
	Error  string   `json:"error"`
}

func fleetStatus(t *testing.T, m *guest, hosts string) (map[string]fleetHost, result) {
	t.Helper()
	r := m.rollout("--json", "status", "--hosts", hosts)
	var rep struct {
		Command string      `json:"command"`
		Exit    int         `json:"exit"`
		Results []fleetHost `json:"results"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || rep.Exit != r.code {
		t.Fatalf("status --hosts %s --json: %v: %+v", hosts, err, r)
	}
	out := map[string]fleetHost{}
	for _, h := range rep.Results {
		out[h.Host] = h
	}
	return out, r
}

func snapOf(h fleetHost, vhost string) string {
	for _, s := range h.Vhosts {
		if s.Vhost == vhost {
			return strings.TrimPrefix(s.Snapshot, "zpool/proto@")
		}
	}
	return "?"
}

// TestFleetPromoteCanaryFirstStopsOnFailure is issue 11's fleet maintenance window: master
// (vhost1, vhost2) and two slaves with their own rollout and configuration (slave1: vhost3,
// slave2: vhost5, whose health check fails on @2). One `promote --hosts` from the master
// replicates @2, promotes the canary, then host by host, and stops at slave2; `status --hosts
// all` shows the outcome; a slave whose host key changed is refused.
func TestFleetPromoteCanaryFirstStopsOnFailure(t *testing.T) {
	long(t)
	m := freshPool(t, "master")
	s1, s2 := freshPool(t, "slave1"), freshPool(t, "slave2")
	cfg := jailConfig
	for _, s := range []*guest{s1, s2} {
		cfg += fmt.Sprintf("[slave.%s]\naddress = \"10.0.2.2\"\nport = %s\nidentity = \"/root/.ssh/id_ed25519\"\nknown_hosts = \"/root/.ssh/known_hosts\"\npool = \"zpool\"\n", s.name, s.port())
	}
	m.writeFile("/usr/local/etc/rollout.toml", cfg)
	m.jailProto("1")
	m.mustRollout("snapshot")
	for _, v := range []string{"vhost1", "vhost2"} {
		m.mustRollout("create", v, "proto@1")
	}
	m.mustRollout("replicate", "--to", "slave1", "--to", "slave2")
	s1.writeFile("/usr/local/etc/rollout.toml", baseConfig+"[vhost.vhost3]\n")
	s2.writeFile("/usr/local/etc/rollout.toml", baseConfig+"[vhost.vhost5]\nhealth = [\"/bin/sh\", \"-c\", \"test \\\"$(cat /VERSION)\\\" != 2\"]\n")
	s1.mustRollout("create", "vhost3", "proto@1")
	s2.mustRollout("create", "vhost5", "proto@1")

	m.sh(`echo 2 > /jail/proto/VERSION`)
	m.mustRollout("snapshot")

	// the dry run plans replication, canary, hosts, and changes nothing anywhere
	dry := m.mustRollout("promote", "--dry-run", "--hosts", "local,slave2,slave1", "--canary", "local/vhost1", "proto@2")
	for _, w := range []string{"slave1", "slave2", "local/vhost1"} {
		if !strings.Contains(dry, w) {
			t.Errorf("fleet dry run lacks %q:\n%s", w, dry)
		}
	}
	if st, _ := fleetStatus(t, m, "all"); snapOf(st["local"], "vhost1") != "1" || snapOf(st["slave1"], "vhost3") != "1" || snapOf(st["slave2"], "vhost5") != "1" {
		t.Fatalf("the dry run changed something: %+v", st)
	}
	if r := s1.run("zfs", "list", "zpool/proto@2"); r.code == 0 {
		t.Fatal("the dry run replicated @2")
	}

	// slave2 before slave1: slave2 fails, slave1 is not started
	r := m.rollout("--json", "promote", "--hosts", "local,slave2,slave1", "--canary", "local/vhost1", "proto@2")
	if r.code == 0 {
		t.Fatalf("fleet promote with a failing host exited 0: %s", r.stdout)
	}
	var rep struct {
		Results []fleetStep `json:"results"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("fleet promote --json: %v: %+v", err, r)
	}
	var order []string
	for _, s := range rep.Results {
		order = append(order, s.Phase+":"+s.Host+":"+s.State)
	}
	t.Logf("fleet promote: %v", order)
	got := strings.Join(order, " ")
	// replication first (both slaves), the canary alone, then local's other vhost, slave2 fails,
	// slave1 is never started
	want := []string{"replicate:slave2:done", "replicate:slave1:done", "canary:local:done", "promote:local:done", "promote:slave2:failed", "promote:slave1:not started"}
	pos := -1
	for _, w := range want {
		i := strings.Index(got, w)
		if i < 0 || i < pos {
			t.Fatalf("fleet promote steps %v; want in this order %v", order, want)
		}
		pos = i
	}

	st, sr := fleetStatus(t, m, "all")
	t.Logf("status --hosts all: exit %d", sr.code)
	for _, c := range []struct{ host, vhost, want string }{
		{"local", "vhost1", "2"}, {"local", "vhost2", "2"}, {"slave2", "vhost5", "1"}, {"slave1", "vhost3", "1"},
	} {
		if got := snapOf(st[c.host], c.vhost); got != c.want {
			t.Errorf("status --hosts all: %s/%s on @%s, want @%s", c.host, c.vhost, got, c.want)
		}
	}
	if len(st["slave1"].LastReplication) == 0 || !strings.Contains(string(st["slave1"].LastReplication), "@2") {
		t.Errorf("slave1's last replication: %s", st["slave1"].LastReplication)
	}
	if v := s1.must("zfs", "list", "-H", "-o", "name", "zpool/proto@2"); v != "zpool/proto@2\n" {
		t.Error("slave1 did not get @2")
	}
	tbl := m.rollout("status", "--hosts", "all")
	for _, w := range []string{"HOST", "slave2", "vhost5", "vhost3"} {
		if !strings.Contains(tbl.stdout, w) {
			t.Errorf("status --hosts all table lacks %q:\n%s", w, tbl.stdout)
		}
	}

	// one slave alone, by --host; then slave1's host key changes: refused, nothing changes
	m.mustRollout("promote", "--host", "slave1", "proto@2", "vhost3")
	if st, _ := fleetStatus(t, m, "slave1"); snapOf(st["slave1"], "vhost3") != "2" {
		t.Errorf("promote --host slave1: vhost3 on @%s", snapOf(st["slave1"], "vhost3"))
	}
	withNewHostKey(t, m, s1)
	r = m.rollout("promote", "--host", "slave1", "proto@1", "vhost3")
	oneLineError(t, "promote --host with a changed host key", r, "HOST KEY CHANGED")
	st, sr = fleetStatus(t, m, "all")
	if sr.code == 0 || !strings.Contains(st["slave1"].Error, "HOST KEY CHANGED") || snapOf(st["slave2"], "vhost5") != "1" {
		t.Errorf("status --hosts all with slave1's key changed: exit %d %+v", sr.code, st)
	}
	if got := strings.TrimSpace(s1.must("zfs", "get", "-H", "-o", "value", "rollout:snapshot", "zpool/vhost3")); got != "zpool/proto@2" {
		t.Errorf("slave1's vhost3 changed although its host key was refused: %s", got)
	}
}
