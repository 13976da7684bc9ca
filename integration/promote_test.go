package integration

import (
	"encoding/json"
	"strings"
	"testing"
)

// jailConfig is the paper's set-up with two vhosts; their health check fails on a snapshot
// whose /VERSION says "unhealthy".
const jailConfig = baseConfig + `
[vhost.vhost1]
hostname = "vhost1.domain.local"
health = ["/bin/sh", "-c", "test \"$(cat /VERSION)\" != unhealthy"]

[vhost.vhost2]
hostname = "vhost2.domain.local"
`

// jailProto makes the prototype a tiny userland that can run as a jail: /etc/rc starts a
// long-running process from the snapshot and records the version it started on in /var.
func (g *guest) jailProto(version string) {
	g.t.Helper()
	g.makeProto(version)
	g.sh(`
cat > /jail/proto/etc/rc <<'RC'
#!/bin/sh
cat /VERSION > /var/started-version
/bin/sleep 1000000 &
RC
echo 'proto motd' > /jail/proto/etc/motd
printf '#!/bin/sh\n' > /jail/proto/etc/rc.shutdown
`)
}

type statusJSON struct {
	Vhost        string   `json:"vhost"`
	Snapshot     string   `json:"snapshot"`
	Previous     string   `json:"previous"`
	History      []string `json:"history"`
	Running      bool     `json:"running"`
	Fstab        string   `json:"fstab"`
	FstabProblem string   `json:"fstab_problem"`
	Pending      string   `json:"pending"`
	UnsavedEtc   []string `json:"unsaved_etc"`
	Held         bool     `json:"held"`
	Kind         string   `json:"kind"`
	Attention    []string `json:"attention"`
}

func (g *guest) status() map[string]statusJSON {
	g.t.Helper()
	r := g.rollout("--json", "status")
	// exit 1 (and ok false) when, and only when, some vhost needs attention
	if r.code != 0 && r.code != 1 {
		g.t.Fatalf("status: %+v", r)
	}
	// the one JSON shape of every command: {"command", "ok", "exit", "error", "results", "plan"}
	var rep struct {
		Command string       `json:"command"`
		OK      bool         `json:"ok"`
		Exit    int          `json:"exit"`
		Results []statusJSON `json:"results"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || rep.Command != "status" || rep.OK != (r.code == 0) || rep.Exit != r.code {
		g.t.Fatalf("status --json: %v: %s", err, r.stdout)
	}
	m := map[string]statusJSON{}
	attention := false
	for _, s := range rep.Results {
		if s.Kind == "vhost" {
			m[s.Vhost] = s
			attention = attention || len(s.Attention) > 0
		}
	}
	if attention != (r.code == 1) {
		g.t.Fatalf("status exit %d, but attention %v: %s", r.code, attention, r.stdout)
	}
	return m
}

// jailVersion is /VERSION as the jail's own long-running process sees it: read through that
// process's root, so it proves which snapshot the jail really runs from.
func (g *guest) jailVersion(vhost string) string {
	g.t.Helper()
	return strings.TrimSpace(g.sh(`
for p in /proc/[0-9]*; do
  if [ "$(readlink $p/root 2>/dev/null)" = /jail/` + vhost + ` ] && grep -q '^/bin/sleep' $p/cmdline 2>/dev/null; then
    cat $p/root/VERSION; exit 0
  fi
done
echo "no process of ` + vhost + `" >&2; exit 1`))
}

func (g *guest) mustRollout(args ...string) string {
	g.t.Helper()
	r := g.rollout(args...)
	if r.code != 0 {
		g.t.Fatalf("rollout %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// setUpVhosts: proto@1, vhost1 and vhost2 running on it, each with its own rc.conf in /cfg.
func setUpVhosts(t *testing.T) *guest {
	g := freshPool(t, "master")
	g.writeFile("/usr/local/etc/rollout.toml", jailConfig)
	g.jailProto("1")
	g.mustRollout("snapshot")
	for _, v := range []string{"vhost1", "vhost2"} {
		g.mustRollout("create", "--no-start", v, "proto@1")
		// its /cfg is the dataset, mounted only while the jail runs
		g.sh(`mkdir -p /tmp/cfg && mount -t zfs zpool/` + v + `/cfg /tmp/cfg && printf 'hostname="%s.domain.local"\n' ` + v + ` > /tmp/cfg/rc.conf && umount /tmp/cfg`)
		g.mustRollout("start", v)
	}
	return g
}

func TestPromoteAndRollback(t *testing.T) {
	g := setUpVhosts(t)
	if g.jailVersion("vhost1") != "1" || g.jailVersion("vhost2") != "1" {
		t.Fatal("vhosts do not run on @1")
	}
	if got := g.must("cat", "/jail/vhost1/etc/rc.conf"); !strings.Contains(got, "vhost1.domain.local") {
		t.Fatalf("vhost1's /cfg override not in its /etc: %q", got)
	}

	// upgrade the prototype and freeze it
	g.sh(`echo 2 > /jail/proto/VERSION; echo 'motd of 2' > /jail/proto/etc/motd`)
	if out := g.mustRollout("snapshot"); !strings.Contains(out, "zpool/proto@2") {
		t.Fatalf("snapshot: %s", out)
	}

	// the dry run says what it will do and does nothing
	dry := g.mustRollout("promote", "--dry-run", "proto@2", "vhost1")
	for _, want := range []string{"vhost vhost1: zpool/proto@1 -> zpool/proto@2", "zfs hold -r rollout zpool/proto@2", "write /etc/fstab.vhost1", "jexec vhost1"} {
		if !strings.Contains(dry, want) {
			t.Errorf("dry run lacks %q:\n%s", want, dry)
		}
	}
	if g.status()["vhost1"].Snapshot != "zpool/proto@1" || g.jailVersion("vhost1") != "1" {
		t.Fatal("dry run changed something")
	}

	out := g.mustRollout("promote", "proto@2", "vhost1")
	if !strings.Contains(out, "vhost1: now on zpool/proto@2; downtime") {
		t.Errorf("promote output: %s", out)
	}
	t.Logf("promote: %s", strings.TrimSpace(out))
	if v := g.must("cat", "/jail/vhost1/VERSION"); v != "2\n" {
		t.Errorf("vhost1 root /VERSION = %q", v)
	}
	if g.jailVersion("vhost1") != "2" {
		t.Error("vhost1's process does not run from @2")
	}
	if g.must("cat", "/jail/vhost1/var/started-version") != "2\n" {
		t.Error("vhost1's rc did not run on @2")
	}
	// its /etc is @2's /etc plus its own /cfg
	if g.must("cat", "/jail/vhost1/etc/motd") != "motd of 2\n" || !strings.Contains(g.must("cat", "/jail/vhost1/etc/rc.conf"), "vhost1.domain.local") {
		t.Error("vhost1's /etc is not @2's /etc with its /cfg on top")
	}
	// ... built before the stop: the disk mounted there is the one staged while @1 still ran
	// (labelled rollout:stage:vhost1), and nothing staged is left over
	staged := g.sh(`dev=$(findmnt -n -o SOURCE /jail/vhost1/etc); mdconfig -l -v | awk -v d="${dev#/dev/}" '$1 == d {print $NF}'; ls /var/run/rollout | grep '^stage' || true`)
	if strings.TrimSpace(staged) != "rollout:stage:vhost1" {
		t.Errorf("vhost1's /etc after promote is not the staged disk, or something staged is left: %q", staged)
	}
	if g.jailVersion("vhost2") != "1" || g.must("cat", "/jail/vhost2/etc/motd") != "proto motd\n" {
		t.Error("vhost2 changed")
	}
	st := g.status()
	if s := st["vhost1"]; s.Snapshot != "zpool/proto@2" || s.Previous != "zpool/proto@1" || !s.Running || s.Fstab != "2" || s.FstabProblem != "" || !s.Held {
		t.Errorf("vhost1 status: %+v", s)
	}

	// @1 is in use (vhost2 runs on it, vhost1 would roll back to it): ZFS refuses to destroy it
	if r := g.run("zfs", "destroy", "zpool/proto@1"); r.code == 0 {
		t.Fatal("zfs destroy of a snapshot in use succeeded")
	}
	// prune never removes it
	g.sh(`echo 3 > /jail/proto/VERSION`)
	g.mustRollout("snapshot")
	g.sh(`echo 4 > /jail/proto/VERSION`)
	g.mustRollout("snapshot")
	pr := g.mustRollout("prune", "--keep", "1", "--dry-run")
	if !strings.Contains(pr, "keep    zpool/proto@1 (a vhost runs on it") || !strings.Contains(pr, "destroy zpool/proto@3") {
		t.Errorf("prune --dry-run:\n%s", pr)
	}
	g.mustRollout("prune", "--keep", "1")
	snaps := g.must("zfs", "list", "-H", "-o", "name", "-t", "snapshot", "-r", "zpool/proto")
	if !strings.Contains(snaps, "zpool/proto@1\n") || !strings.Contains(snaps, "zpool/proto@2\n") || strings.Contains(snaps, "zpool/proto@3\n") || !strings.Contains(snaps, "zpool/proto@4\n") {
		t.Errorf("after prune --keep 1: %s", snaps)
	}

	// rollback goes to the previous snapshot without being told which
	out = g.mustRollout("rollback", "vhost1")
	if !strings.Contains(out, "vhost1: now on zpool/proto@1") || g.jailVersion("vhost1") != "1" {
		t.Errorf("rollback: %s", out)
	}
	if s := g.status()["vhost1"]; s.Snapshot != "zpool/proto@1" || s.Previous != "zpool/proto@2" {
		t.Errorf("after rollback: %+v", s)
	}
}

func TestFailedStartAndHealthKeepOldSnapshot(t *testing.T) {
	g := setUpVhosts(t)
	// @2: the jail cannot start (its rc fails)
	g.sh(`echo 2 > /jail/proto/VERSION; printf '#!/bin/sh\nexit 1\n' > /jail/proto/etc/rc`)
	g.mustRollout("snapshot")
	r := g.rollout("promote", "proto@2", "vhost1")
	if r.code != 1 || !strings.Contains(r.stderr, "vhost vhost1: start failed") || !strings.Contains(r.stderr, "back on zpool/proto@1") {
		t.Errorf("failed start: exit %d, %s", r.code, r.stderr)
	}
	if g.jailVersion("vhost1") != "1" {
		t.Error("vhost1 is not running on @1 after a failed start")
	}
	if s := g.status()["vhost1"]; s.Snapshot != "zpool/proto@1" || s.Pending != "" || s.Fstab != "1" || !s.Running {
		t.Errorf("after failed start: %+v", s)
	}
	// @3: starts, but the health check fails
	g.sh(`echo unhealthy > /jail/proto/VERSION; printf '#!/bin/sh\ncat /VERSION > /var/started-version\n/bin/sleep 1000000 &\n' > /jail/proto/etc/rc`)
	g.mustRollout("snapshot")
	r = g.rollout("promote", "proto@3", "vhost1", "vhost2")
	if r.code != 1 || !strings.Contains(r.stderr, "health failed") || !strings.Contains(r.stderr, "back on zpool/proto@1") {
		t.Errorf("failed health: exit %d, %s", r.code, r.stderr)
	}
	if g.jailVersion("vhost1") != "1" || g.jailVersion("vhost2") != "1" {
		t.Error("a failed canary must leave vhost1 on @1 and vhost2 untouched")
	}
	// the holds of snapshots nobody uses are released
	if h := g.must("zfs", "holds", "-H", "zpool/proto@3"); strings.Contains(h, "rollout") {
		t.Errorf("@3 still held: %s", h)
	}
}

// snapshotOfState returns the things bad input must not change: fstabs, properties, holds.
func (g *guest) stateFingerprint() string {
	g.t.Helper()
	return g.sh(`cat /etc/fstab.vhost1 /etc/fstab.vhost2; zfs get -H -s local -o name,property,value all zpool/vhost1 zpool/vhost2 | grep rollout:; zfs holds -H -r zpool/proto@1 zpool/proto@2 2>&1; zfs list -H -t snapshot -o name -r zpool`)
}

func TestBadInputChangesNothing(t *testing.T) {
	g := setUpVhosts(t)
	g.sh(`echo 2 > /jail/proto/VERSION`)
	g.mustRollout("snapshot")
	before := g.stateFingerprint()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"promote", "proto@2", "vhost9"}, `unknown vhost "vhost9"`},
		{[]string{"promote", "proto@99", "vhost1"}, "snapshot zpool/proto@99 does not exist"},
		{[]string{"promote", "proto@2;reboot", "vhost1"}, `invalid snapshot name "2;reboot"`},
		{[]string{"promote", "proto@2", "../etc"}, `"../etc"`},
		{[]string{"promote", "tank/other@2", "vhost1"}, "is not of the prototype"},
		{[]string{"rollback", "vhost1"}, "vhost vhost1 has no previous snapshot"},
		{[]string{"rollback", "--to", "proto@2 x", "vhost1"}, `invalid snapshot name "2 x"`},
		{[]string{"rollback", "vhost1", "--too", "proto@2"}, "rollback: unknown flag --too"},
		{[]string{"create", "vhost1", "proto@2"}, "vhost vhost1 already exists"},
		{[]string{"fstab", "vhost1", "proto@$(id)"}, `invalid snapshot name "$(id)"`},
		{[]string{"prune", "--keep", "0"}, "keep at least 1"},
	}
	for _, c := range cases {
		r := g.rollout(c.args...)
		if r.code == 0 || !strings.Contains(r.stderr, c.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
			t.Errorf("rollout %s: exit %d, stderr %q; want one line with %q", strings.Join(c.args, " "), r.code, r.stderr, c.want)
		}
	}
	if after := g.stateFingerprint(); after != before {
		t.Errorf("bad input changed state:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	// an fstab edited by hand is refused
	g.sh(`sed -i 's/rw 0 0/rw,noatime 0 0/' /etc/fstab.vhost1`)
	before = g.stateFingerprint()
	r := g.rollout("promote", "proto@2", "vhost1")
	if r.code == 0 || !strings.Contains(r.stderr, "/etc/fstab.vhost1 was edited by hand") {
		t.Errorf("hand-edited fstab: %+v", r)
	}
	if after := g.stateFingerprint(); after != before {
		t.Errorf("bad input changed state:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if s := g.status()["vhost1"]; s.FstabProblem != "edited by hand" {
		t.Errorf("status does not flag the edit: %+v", s)
	}
	g.mustRollout("fstab", "--write", "vhost1")
	if s := g.status()["vhost1"]; s.FstabProblem != "" {
		t.Errorf("fstab --write did not repair: %+v", s)
	}
}

// A NanoBSD host's /etc and /var are memory disks: after a reboot only the pool remembers which
// snapshot each vhost runs on. rollout keeps that in ZFS properties, so status still knows it
// and start regenerates the fstab and jail configuration from it.
func TestStateSurvivesReboot(t *testing.T) {
	g := setUpVhosts(t)
	g.sh(`echo 2 > /jail/proto/VERSION`)
	g.mustRollout("snapshot")
	g.mustRollout("promote", "proto@2", "vhost1")
	g.reboot()
	// what a memory /etc and /var would have lost
	g.sh(`rm -f /etc/fstab.vhost1 /etc/fstab.vhost2; rm -rf /var/run/rollout`)
	st := g.status()
	if s := st["vhost1"]; s.Snapshot != "zpool/proto@2" || s.Previous != "zpool/proto@1" || s.Running || !s.Held || !strings.Contains(s.FstabProblem, "missing") {
		t.Errorf("vhost1 after reboot: %+v", s)
	}
	if s := st["vhost2"]; s.Snapshot != "zpool/proto@1" || s.Running {
		t.Errorf("vhost2 after reboot: %+v", s)
	}
	g.mustRollout("start", "vhost1", "vhost2")
	if g.jailVersion("vhost1") != "2" || g.jailVersion("vhost2") != "1" {
		t.Error("vhosts did not come back on their snapshots")
	}
	if !strings.Contains(g.must("cat", "/jail/vhost1/etc/rc.conf"), "vhost1.domain.local") {
		t.Error("vhost1's /cfg is not in its /etc after the reboot")
	}
	// the history survives too: rollback still knows where to go
	out := g.mustRollout("rollback", "vhost1")
	if !strings.Contains(out, "vhost1: now on zpool/proto@1") {
		t.Errorf("rollback after reboot: %s", out)
	}
}
