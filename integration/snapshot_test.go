package integration

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

type snapJSON struct {
	Name      string   `json:"name"`
	Snapshot  string   `json:"snapshot"`
	GUID      uint64   `json:"guid,string"` // a string, as zfs list -j prints it
	CreateTXG uint64   `json:"createtxg"`
	Datasets  int      `json:"datasets"`
	Complete  bool     `json:"complete"`
	Missing   []string `json:"missing"`
}

func TestLabHasOpenZFS(t *testing.T) {
	g := newGuest(t, "master")
	out := g.must("zfs", "version")
	if !strings.HasPrefix(out, "zfs-2.") {
		t.Fatalf("zfs version: %q", out)
	}
	// arguments reach the guest exactly as given, and exit codes come back
	if got := g.must("printf", "%s|", "a b", "it's", "$HOME;x"); got != "a b|it's|$HOME;x|" {
		t.Fatalf("quoting through lab exec: %q", got)
	}
	if r := g.run("sh", "-c", "exit 7"); r.code != 7 {
		t.Fatalf("exit code: %d", r.code)
	}
}

func TestSnapshotNumberingAndListing(t *testing.T) {
	g := freshPool(t, "master")
	g.writeFile("/usr/local/etc/rollout.toml", baseConfig)
	g.makeProto("1")

	r := g.rollout("snapshot")
	if r.code != 0 || !strings.Contains(r.stdout, "created zpool/proto@1 on 2 datasets") {
		t.Fatalf("first snapshot: %+v", r)
	}
	g.sh("echo 2 > /jail/proto/VERSION")
	r = g.rollout("snapshot")
	if r.code != 0 || !strings.Contains(r.stdout, "created zpool/proto@2") {
		t.Fatalf("second snapshot: %+v", r)
	}
	// both datasets have both snapshots, made atomically: one createtxg per snapshot
	lines := g.must("zfs", "list", "-H", "-p", "-t", "snapshot", "-o", "name,createtxg", "-s", "createtxg", "-r", "zpool/proto")
	txg := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(lines), "\n") {
		f := strings.Fields(l)
		name, snap, _ := strings.Cut(f[0], "@")
		if name != "zpool/proto" && name != "zpool/proto/etc" {
			t.Fatalf("unexpected snapshot %s", f[0])
		}
		if prev, ok := txg[snap]; ok && prev != f[1] {
			t.Fatalf("@%s: createtxg differs between datasets (%s, %s)", snap, prev, f[1])
		}
		txg[snap] = f[1]
	}
	if len(txg) != 2 || txg["1"] == txg["2"] {
		t.Fatalf("snapshots: %v", txg)
	}
	if g.must("cat", "/jail/proto/.zfs/snapshot/1/VERSION") != "1\n" || g.must("cat", "/jail/proto/.zfs/snapshot/2/VERSION") != "2\n" {
		t.Fatal("snapshot contents")
	}

	// listing: creation order, guids as zfs reports them, complete on both datasets
	r = g.rollout("--json", "snapshots")
	if r.code != 0 {
		t.Fatalf("snapshots: %+v", r)
	}
	var rep struct {
		Command string     `json:"command"`
		OK      bool       `json:"ok"`
		Results []snapJSON `json:"results"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || rep.Command != "snapshots" || !rep.OK {
		t.Fatalf("snapshots --json: %v\n%s", err, r.stdout)
	}
	list := rep.Results
	if len(list) != 2 || list[0].Name != "1" || list[1].Name != "2" {
		t.Fatalf("listing: %+v", list)
	}
	for _, s := range list {
		guid := strings.TrimSpace(g.must("zfs", "get", "-H", "-p", "-o", "value", "guid", s.Snapshot))
		if guid != strconv.FormatUint(s.GUID, 10) {
			t.Errorf("%s: guid %d, zfs says %s", s.Snapshot, s.GUID, guid)
		}
		if !s.Complete || s.Datasets != 2 || s.CreateTXG == 0 {
			t.Errorf("%s: %+v", s.Snapshot, s)
		}
	}
	// the table for people names the same snapshots and guids
	table := g.rollout("snapshots")
	for _, s := range list {
		if !strings.Contains(table.stdout, s.Snapshot) || !strings.Contains(table.stdout, strconv.FormatUint(s.GUID, 10)) {
			t.Errorf("table lacks %s/%d:\n%s", s.Snapshot, s.GUID, table.stdout)
		}
	}

	// a snapshot missing on the child is reported as incomplete
	g.must("zfs", "snapshot", "zpool/proto@partial")
	r = g.rollout("snapshots")
	if !strings.Contains(r.stdout, "missing on [zpool/proto/etc]") {
		t.Errorf("incomplete snapshot not reported:\n%s", r.stdout)
	}
	// numbering continues from the highest number, ignoring non-numeric names
	r = g.rollout("snapshot")
	if !strings.Contains(r.stdout, "created zpool/proto@3") {
		t.Errorf("third snapshot: %+v", r)
	}
}

func TestSnapshotRefusals(t *testing.T) {
	g := freshPool(t, "master")
	g.writeFile("/usr/local/etc/rollout.toml", baseConfig)
	g.makeProto("1")
	g.must("rollout", "--config", "/usr/local/etc/rollout.toml", "snapshot", "--name", "1")

	before := g.must("zfs", "list", "-H", "-t", "snapshot", "-o", "name", "-r", "zpool")
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"second --name 1", []string{"snapshot", "--name", "1"}, "snapshot zpool/proto@1 already exists"},
		{"shell metacharacters", []string{"snapshot", "--name", "2;reboot"}, `invalid snapshot name "2;reboot"`},
		{"slash", []string{"snapshot", "--name", "a/b"}, `invalid snapshot name "a/b"`},
		{"dotdot", []string{"snapshot", "--name", ".."}, `".."`},
		{"space", []string{"snapshot", "--name", "a b"}, `invalid snapshot name "a b"`},
	}
	for _, c := range cases {
		r := g.rollout(c.args...)
		if r.code == 0 || !strings.Contains(r.stderr, c.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("%s: exit %d, stderr %q; want one line containing %q", c.name, r.code, r.stderr, c.want)
		}
	}
	if after := g.must("zfs", "list", "-H", "-t", "snapshot", "-o", "name", "-r", "zpool"); after != before {
		t.Errorf("refused commands changed snapshots:\nbefore %s\nafter %s", before, after)
	}
}

func TestMissingPoolAndDataset(t *testing.T) {
	g := freshPool(t, "master")
	g.writeFile("/usr/local/etc/rollout.toml", strings.Replace(baseConfig, `pool = "zpool"`, `pool = "nopool"`, 1)+"")
	// proto.dataset defaults to <pool>/proto only when not set; set both consistently
	g.writeFile("/usr/local/etc/rollout.toml", "pool = \"nopool\"\n[proto]\ndataset = \"nopool/proto\"\n")
	r := g.rollout("snapshot")
	if r.code == 0 || !strings.Contains(r.stderr, `pool "nopool"`) {
		t.Errorf("missing pool: %+v", r)
	}
	g.writeFile("/usr/local/etc/rollout.toml", "pool = \"zpool\"\n[proto]\ndataset = \"zpool/nosuch\"\n")
	for _, cmd := range []string{"snapshot", "snapshots"} {
		r = g.rollout(cmd)
		if r.code == 0 || !strings.Contains(r.stderr, `prototype dataset "zpool/nosuch" does not exist`) {
			t.Errorf("%s with a missing dataset: %+v", cmd, r)
		}
	}
	if out := g.must("zfs", "list", "-H", "-t", "all", "-o", "name", "-r", "zpool"); strings.TrimSpace(out) != "zpool" {
		t.Errorf("pool changed: %q", out)
	}
	// a malformed config is refused with file and line, and nothing runs
	g.writeFile("/usr/local/etc/rollout.toml", "pool = \"zpool\"\n[proto]\ndataset = zpool/proto\n")
	r = g.rollout("snapshot")
	if r.code == 0 || !strings.Contains(r.stderr, "/usr/local/etc/rollout.toml:3:") {
		t.Errorf("malformed config: %+v", r)
	}
}
