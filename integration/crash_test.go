package integration

// The crash table (README "Crashes"): every mutating command is killed with -9 at every
// boundary between the steps of its plan, by the failpoints of rollout/failpoint
// (ROLLOUT_FAILPOINT=before:STEP, which SIGKILLs rollout there), and at the boundaries where a
// power cut differs from a kill, the guest is reset while rollout is frozen there
// (ROLLOUT_FAILPOINT=...=pause). After each crash one `rollout repair` (after a power cut:
// `rollout boot`, as rc.d does, then repair) must leave every vhost on its old or its new
// snapshot, running if it ran, fstab = state = what the jail runs, rollout's holds exactly on
// the snapshots in use, no journal, and no leaked /etc disk, mount or file in state_dir.

import (
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// rolloutAt runs rollout with a failpoint armed and checks that it died there.
func (g *guest) rolloutAt(point string, args ...string) {
	g.t.Helper()
	r := g.run(append([]string{"env", "ROLLOUT_FAILPOINT=" + point, "rollout", "--config", "/usr/local/etc/rollout.toml"}, args...)...)
	if r.code == 0 || !strings.Contains(r.stderr, "failpoint") {
		g.t.Fatalf("rollout %s with failpoint %s was not killed there: exit %d\n%s%s", strings.Join(args, " "), point, r.code, r.stdout, r.stderr)
	}
}

// settled checks the crash table's outcome on every vhost: want maps a vhost to the versions
// it may be on after the crash and repair ("" for not created), running to whether it must run.
// Two calls into the guest: status, and one script for the rest (the table has many cells).
func (g *guest) settled(cell string, want map[string][]string, running map[string]bool) map[string]statusJSON {
	g.t.Helper()
	st := g.status()
	facts := g.sh(`echo "md $(/sbin/mdconfig -l -v | grep -c rollout: || true)"
for s in $(zfs list -H -t snapshot -o name -d 1 zpool/proto); do zfs holds -H "$s"; done | awk '$2 == "rollout" {print "held", $1}'
ls -A /var/run/rollout 2>/dev/null | sed 's/^/file /'
/sbin/mount -p | awk '{print "mount", $2}'
for p in /proc/[0-9]*; do
  r=$(readlink $p/root 2>/dev/null) || continue
  case "$r" in /jail/*) grep -q '^/bin/sleep' $p/cmdline 2>/dev/null && echo "runs ${r#/jail/} $(cat $p/root/VERSION)";; esac
done; true`)
	held, runs, mounts := map[string]bool{}, map[string]map[string]bool{}, map[string]int{}
	mds := -1
	var extra []string
	for _, line := range strings.Split(facts, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "md":
			mds, _ = strconv.Atoi(f[1])
		case len(f) == 2 && f[0] == "held":
			held[f[1]] = true
		case len(f) == 2 && f[0] == "file":
			if f[1] != "lock" && !(strings.HasPrefix(f[1], "etc-") && strings.HasSuffix(f[1], ".json")) {
				extra = append(extra, f[1])
			}
		case len(f) == 2 && f[0] == "mount" && strings.HasPrefix(f[1], "/jail/"):
			mounts[strings.Split(strings.TrimPrefix(f[1], "/jail/"), "/")[0]]++
		case len(f) == 3 && f[0] == "runs":
			if runs[f[1]] == nil {
				runs[f[1]] = map[string]bool{}
			}
			runs[f[1]][f[2]] = true
		}
	}
	needed := map[string]bool{}
	nrunning := 0
	for v, allowed := range want {
		s := st[v]
		ver := strings.TrimPrefix(s.Snapshot, "zpool/proto@")
		if !slices.Contains(allowed, ver) || s.Pending != "" || s.Running != running[v] {
			g.t.Errorf("%s: %s is %+v; want on one of %v, running=%v, no journal", cell, v, s, allowed, running[v])
			continue
		}
		if ver == "" {
			continue
		}
		needed[s.Snapshot] = true
		if s.Previous != "" && s.Previous != "-" {
			needed[s.Previous] = true
		}
		if !running[v] {
			if mounts[v] > 0 || len(runs[v]) > 0 {
				g.t.Errorf("%s: %s is stopped, but %d mounts and processes on %v are left", cell, v, mounts[v], runs[v])
			}
			continue
		}
		nrunning++
		if s.Fstab != ver || s.FstabProblem != "" || !s.Held {
			g.t.Errorf("%s: %s: fstab %q (%s), held %v; state says @%s", cell, v, s.Fstab, s.FstabProblem, s.Held, ver)
		}
		if len(runs[v]) != 1 || !runs[v][ver] {
			g.t.Errorf("%s: %s's processes run on %v, its state says @%s", cell, v, runs[v], ver)
		}
	}
	// rollout's holds: exactly on the snapshots a vhost runs on or would roll back to
	for s := range needed {
		if !held[s] {
			g.t.Errorf("%s: %s is in use and not held", cell, s)
		}
	}
	for s := range held {
		if !needed[s] {
			g.t.Errorf("%s: %s is held and no vhost needs it", cell, s)
		}
	}
	if mds != nrunning {
		g.t.Errorf("%s: %d /etc disks for %d running vhosts", cell, mds, nrunning)
	}
	if len(extra) > 0 {
		g.t.Errorf("%s: left in state_dir: %v", cell, extra)
	}
	return st
}

func other(v string) string {
	if v == "1" {
		return "2"
	}
	return "1"
}

// version is the snapshot version a vhost's state names ("" when it has none).
func (g *guest) version(vhost string) string {
	g.t.Helper()
	return strings.TrimPrefix(g.status()[vhost].Snapshot, "zpool/proto@")
}

// ciCells are the cells `make test` runs: under the lab's emulated CPU a cell takes about a
// minute, and the whole table (`make crash`, ROLLOUT_CRASH_TABLE=full) most of an hour. Power
// cuts in `make test` are TestNanoBSDPowerCutIdle and TestNanoBSDPowerCutMidPromote.
var ciCells = map[string]bool{
	"promote before:fstab@vhost1": true, "promote before:commit@vhost1": true,
	"undo before:undo-start@vhost1": true, "repair before:start@vhost1": true,
	"create after:commit@vhost3": true, "promote after:stage@vhost1": true,
}

// cells is the part of a row of the crash table this run takes: ROLLOUT_CRASH_TABLE=full
// takes all, another value is a regular expression over "ROW POINT" (re-running some cells),
// unset the ciCells.
func cells(row string, points ...string) []string {
	sel := os.Getenv("ROLLOUT_CRASH_TABLE")
	if sel == "full" {
		return points
	}
	var out []string
	for _, p := range points {
		if sel == "" && ciCells[row+" "+p] || sel != "" && regexp.MustCompile(sel).MatchString(row+" "+p) {
			out = append(out, p)
		}
	}
	return out
}

// the boundaries of a switch of a running vhost with a health check, in plan order; after the
// last vhost step comes the plan's finally (release), which has no vhost. Around the stage
// step (the next /etc built before the stop, md backend): repair restarts the vhost on its
// old snapshot and frees the staged disk.
var switchPoints = []string{"before:hold@vhost1", "before:journal@vhost1", "before:conf@vhost1",
	"before:stage@vhost1", "after:stage@vhost1", "before:stop@vhost1", "before:fstab@vhost1", "before:start@vhost1", "before:health@vhost1",
	"before:commit@vhost1", "before:release", "after:release"}

// TestCrashTableKill: promote and rollback (every boundary, the undo's included), repair
// itself, start, stop, boot, create and prune, each killed with -9, then one repair.
func TestCrashTableKill(t *testing.T) {
	g := setUpVhosts(t)
	g.snapshot2()
	g.writeFile("/usr/local/etc/rollout.toml", jailConfig+"\n[vhost.vhost3]\nhostname = \"vhost3.domain.local\"\n")
	all := map[string]bool{"vhost1": true, "vhost2": true}
	vhost2 := g.jailPids("vhost2")
	cur := "1"
	check := func(cell string, v1 []string, running map[string]bool) {
		t.Helper()
		g.mustRollout("repair")
		st := g.settled(cell, map[string][]string{"vhost1": v1, "vhost2": {"1"}, "vhost3": {""}}, running)
		cur = strings.TrimPrefix(st["vhost1"].Snapshot, "zpool/proto@")
	}
	for _, point := range cells("promote", switchPoints...) {
		to := other(cur)
		g.rolloutAt(point, "promote", "proto@"+to, "vhost1")
		check("promote "+point, []string{cur, to}, all)
	}
	for _, point := range cells("rollback", "before:stop@vhost1", "before:start@vhost1", "before:commit@vhost1") {
		if g.status()["vhost1"].Previous == "" {
			g.mustRollout("promote", "proto@"+other(cur), "vhost1")
			cur = g.version("vhost1")
		}
		from := cur
		g.rolloutAt(point, "rollback", "vhost1")
		check("rollback "+point, []string{from, other(from)}, all)
	}

	// the undo after a failed health check: @3 is unhealthy
	g.sh(`echo unhealthy > /jail/proto/VERSION`)
	g.mustRollout("snapshot")
	for _, point := range cells("undo", "before:undo-stop@vhost1", "before:undo-fstab@vhost1", "before:undo-start@vhost1",
		"before:undo-journal@vhost1", "after:undo-journal@vhost1") {
		from := cur
		g.rolloutAt(point, "promote", "proto@3", "vhost1")
		check("promote, failed health, "+point, []string{from}, all)
	}

	// repair itself, killed while it restarts vhost1 on its committed snapshot
	for _, point := range cells("repair", "before:start@vhost1", "before:journal@vhost1", "before:orphans") {
		from := cur
		g.rolloutAt("before:fstab@vhost1", "promote", "proto@"+other(from), "vhost1")
		g.rolloutAt(point, "repair")
		check("repair "+point, []string{from}, all)
	}

	// stop and start
	for _, point := range cells("stop", "before:stop@vhost1", "before:boot@vhost1", "after:boot@vhost1") {
		g.rolloutAt(point, "stop", "vhost1")
		g.mustRollout("repair")
		r := g.status()["vhost1"].Running
		g.settled("stop "+point, map[string][]string{"vhost1": {cur}, "vhost2": {"1"}, "vhost3": {""}},
			map[string]bool{"vhost1": r, "vhost2": true})
		if r && point != "before:stop@vhost1" {
			t.Errorf("stop %s: vhost1 still runs after its stop step", point)
		}
		g.mustRollout("start", "vhost1")
	}
	startCells := cells("start", "before:conf@vhost1", "before:fstab@vhost1", "before:start@vhost1", "after:start@vhost1")
	if len(startCells) > 0 {
		g.mustRollout("stop", "vhost1")
	}
	for _, point := range startCells {
		g.rolloutAt(point, "start", "vhost1")
		g.mustRollout("repair")
		r := g.status()["vhost1"].Running
		g.settled("start "+point, map[string][]string{"vhost1": {cur}, "vhost2": {"1"}, "vhost3": {""}},
			map[string]bool{"vhost1": r, "vhost2": true})
		g.mustRollout("stop", "vhost1")
	}
	if len(startCells) > 0 {
		g.mustRollout("start", "vhost1")
	}

	// boot itself: vhost1 stopped behind rollout's back (as at a host's start: rollout:boot
	// stays on), `rollout boot` killed at each boundary; repair leaves it consistent, stopped
	// or started, and the next boot (rc.d runs it at every start) starts it
	for _, point := range cells("boot", "before:conf@vhost1", "before:fstab@vhost1", "before:start@vhost1",
		"after:start@vhost1", "before:orphans", "before:release") {
		g.must("jail", "-f", "/etc/jail.conf.d/vhost1.conf", "-r", "vhost1")
		g.rolloutAt(point, "boot")
		g.mustRollout("repair")
		r := g.status()["vhost1"].Running
		g.settled("boot "+point, map[string][]string{"vhost1": {cur}, "vhost2": {"1"}, "vhost3": {""}},
			map[string]bool{"vhost1": r, "vhost2": true})
		if !r && point != "before:conf@vhost1" && point != "before:fstab@vhost1" && point != "before:start@vhost1" {
			t.Errorf("boot %s: vhost1 not running after its start step", point)
		}
		g.mustRollout("boot")
		g.settled("boot "+point+", then boot again", map[string][]string{"vhost1": {cur}, "vhost2": {"1"}, "vhost3": {""}}, all)
	}

	// create: killed at each boundary, the vhost either does not exist yet or exists on @2;
	// the next create (or start) finishes it
	for _, point := range cells("create", "after:datasets@vhost3", "after:hold@vhost3", "after:conf@vhost3",
		"after:fstab@vhost3", "after:commit@vhost3", "after:boot@vhost3", "after:start@vhost3") {
		g.rolloutAt(point, "create", "vhost3", "proto@2")
		g.mustRollout("repair")
		s := g.status()["vhost3"]
		g.settled("create "+point, map[string][]string{"vhost1": {cur}, "vhost2": {"1"}, "vhost3": {"", "2"}},
			map[string]bool{"vhost1": true, "vhost2": true, "vhost3": s.Running})
		if s.Snapshot == "" {
			g.mustRollout("create", "vhost3", "proto@2")
		} else if !s.Running {
			g.mustRollout("start", "vhost3")
		}
		g.settled("create "+point+", then again", map[string][]string{"vhost1": {cur}, "vhost2": {"1"}, "vhost3": {"2"}},
			map[string]bool{"vhost1": true, "vhost2": true, "vhost3": true})
		// gone again for the next cell
		g.mustRollout("stop", "vhost3")
		g.sh(`zfs release -r rollout zpool/proto@2 2>/dev/null || true; zfs destroy -r zpool/vhost3; rm -f /etc/fstab.vhost3 /etc/jail.conf.d/vhost3.conf`)
		g.mustRollout("repair") // puts back the holds the vhosts need
	}

	if g.jailPids("vhost2") != vhost2 {
		t.Error("the crashes or repairs of vhost1 and vhost3 restarted vhost2")
	}

	// prune: killed between two destroys; the next prune finishes
	if len(cells("prune", "after:destroy")) == 0 {
		return
	}
	for _, n := range []string{"4", "5"} {
		g.sh(`echo ` + n + ` > /jail/proto/VERSION`)
		g.mustRollout("snapshot")
	}
	g.rolloutAt("after:destroy", "prune", "--keep", "1")
	g.mustRollout("repair")
	g.mustRollout("prune", "--keep", "1")
	left := strings.Fields(g.must("zfs", "list", "-H", "-t", "snapshot", "-o", "name", "-d", "1", "zpool/proto"))
	g.settled("prune after:destroy", map[string][]string{"vhost1": {cur}, "vhost2": {"1"}, "vhost3": {""}}, all)
	if len(left) < 2 || len(left) > 4 || left[len(left)-1] != "zpool/proto@5" {
		t.Errorf("after the crashed and the repeated prune: %v", left)
	}
}

// TestCrashTablePowerCut: the boundaries of promote where a power cut differs from a kill
// (the jail stopped, the new one started, committed but holds not yet released): rollout is
// frozen there and the guest reset; at boot rc.d runs `rollout boot`, then one repair.
func TestCrashTablePowerCut(t *testing.T) {
	points := cells("power", "before:fstab@vhost1", "before:start@vhost1", "before:health@vhost1", "before:release")
	if len(points) == 0 {
		t.Skip("the power-cut cells run in make crash (ROLLOUT_CRASH_TABLE=full)")
	}
	g := setUpVhosts(t)
	g.snapshot2()
	// the test's own files (rollout.toml) on disk, as an admin's long would be: a reset within
	// ext4's writeback delay lost the config ("pool: missing" at boot)
	g.sh("sync")
	cur := "1"
	for _, point := range points {
		to := other(cur)
		g.sh(`cd / && setsid -f env ROLLOUT_FAILPOINT=` + point + `=pause /usr/local/sbin/rollout --config /usr/local/etc/rollout.toml promote proto@` + to + ` vhost1 </dev/null >/tmp/promote.log 2>&1
# (by process name: a pattern on the command line would match this script too)
for i in $(seq 600); do
  for p in $(pgrep -x rollout || true); do
    [ "$(awk '{print $3}' /proc/$p/stat 2>/dev/null)" = T ] && exit 0
  done
  sleep 0.2
done
cat /tmp/promote.log >&2; exit 1`)
		g.powercut()
		g.bootAsRC()
		g.mustRollout("repair")
		cell := "promote " + point + " (power cut)"
		st := g.settled(cell, map[string][]string{"vhost1": {cur, to}, "vhost2": {"1"}}, map[string]bool{"vhost1": true, "vhost2": true})
		cur = strings.TrimPrefix(st["vhost1"].Snapshot, "zpool/proto@")
	}
}
