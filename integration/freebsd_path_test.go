package integration

// Tests of rollout's one host, FreeBSD's, run end to end on the lab's emulated jail userland.
// Each pins a defect of the FreeBSD path that the earlier Linux stand-in could not show; the
// comment says which finding of issue 7 it is.

import (
	"context"
	"sort"
	"strings"
	"testing"
	"time"
)

// jailPids lists the processes whose root is the vhost's path: the jail's processes. A restart
// changes them all.
func (g *guest) jailPids(vhost string) string {
	g.t.Helper()
	out := g.sh(`for p in /proc/[0-9]*; do [ "$(readlink $p/root 2>/dev/null)" = /jail/` + vhost + ` ] && echo ${p#/proc/}; done; true`)
	f := strings.Fields(out)
	sort.Strings(f)
	return strings.Join(f, " ")
}

// powercut resets the guest at once (no sync, no unmount), boots it and imports its pools.
func (g *guest) powercut() {
	g.t.Helper()
	c := theLab.cmd(context.Background(), "powercut", g.name)
	if out, err := c.CombinedOutput(); err != nil {
		g.t.Fatalf("lab powercut %s: %v\n%s", g.name, err, out)
	}
}

// snapshot2 makes @2 of the prototype, with /VERSION 2.
func (g *guest) snapshot2() {
	g.t.Helper()
	g.sh(`echo 2 > /jail/proto/VERSION`)
	g.mustRollout("snapshot")
}

// Finding 1: without exec.consolelog jail(8) hands its own stderr to exec.start, and a daemon
// of the jail's rc that keeps fd 2 kept rollout waiting for as long as it lived. rollout now
// writes exec.consolelog (and bounds what it reads): promote returns while the daemon runs,
// and the daemon's output lands in the console log.
func TestDaemonKeepingStderrDoesNotHoldPromote(t *testing.T) {
	g := setUpVhosts(t)
	g.sh(`echo 2 > /jail/proto/VERSION
cat > /jail/proto/etc/rc <<'RC'
#!/bin/sh
cat /VERSION > /var/started-version
( /bin/sleep 2; echo daemon-still-here >&2; exec /bin/sleep 1000000 ) &
RC`)
	g.mustRollout("snapshot")
	start := time.Now()
	r := g.rollout("promote", "proto@2", "vhost1")
	if r.code != 0 {
		t.Fatalf("promote: exit %d: %s", r.code, r.stderr)
	}
	// the daemon lives on; promote did not wait for it (under emulation a switch takes
	// seconds; a minute means it waited)
	if d := time.Since(start); d > time.Minute {
		t.Errorf("promote took %s: it waited for the jail's daemon", d)
	}
	if g.jailVersion("vhost1") != "2" {
		t.Error("vhost1 does not run @2")
	}
	conf := g.must("cat", "/etc/jail.conf.d/vhost1.conf")
	for _, want := range []string{"exec.consolelog = \"/var/log/jail_vhost1_console.log\";", "exec.clean;"} {
		if !strings.Contains(conf, want) {
			t.Errorf("jail.conf lacks %q:\n%s", want, conf)
		}
	}
	g.sh(`for i in $(seq 60); do grep -q daemon-still-here /var/log/jail_vhost1_console.log 2>/dev/null && exit 0; sleep 1; done
echo "the daemon's output is not in the console log" >&2; cat /var/log/jail_vhost1_console.log >&2; exit 1`)
}

// Finding 2: root's cron runs with PATH=/usr/bin:/bin, where zfs, jail, jls, jexec, mdconfig,
// newfs and mount are not. Every program is named by absolute path.
func TestRunsWithCronPath(t *testing.T) {
	g := setUpVhosts(t)
	g.snapshot2()
	cron := func(args ...string) result {
		return g.run(append([]string{"env", "-i", "PATH=/usr/bin:/bin", "/usr/local/sbin/rollout", "--config", "/usr/local/etc/rollout.toml"}, args...)...)
	}
	// FreeBSD's jail userland is not on that PATH in the lab either (Debian's zfs is in
	// /usr/bin too, FreeBSD's only in /sbin)
	if r := g.run("env", "-i", "PATH=/usr/bin:/bin", "sh", "-c", "command -v jail || command -v jls || command -v jexec || command -v mdconfig || command -v newfs"); r.code == 0 {
		t.Fatalf("the cron PATH finds %s: the test would prove nothing", r.stdout)
	}
	for _, args := range [][]string{{"status"}, {"promote", "proto@2", "vhost1"}, {"rollback", "vhost1"}, {"snapshot"}, {"prune", "--keep", "1"}} {
		if r := cron(args...); r.code != 0 {
			t.Fatalf("rollout %s with PATH=/usr/bin:/bin: exit %d: %s", strings.Join(args, " "), r.code, r.stderr)
		}
	}
	if g.jailVersion("vhost1") != "1" {
		t.Error("vhost1 is not back on @1")
	}
}

// Finding 3: jail(8)'s check_path lstats every component below the jail's path and refuses a
// symbolic link; rollout's preflight followed it, so a bsdinstall-style /home -> usr/home passed
// and the jail failed to start after it was stopped. Now the promote is refused before
// anything stops, naming the path.
func TestSymlinkMountpointRefusedBeforeStop(t *testing.T) {
	g := setUpVhosts(t)
	g.sh(`echo 2 > /jail/proto/VERSION; mkdir -p /jail/proto/usr/home; rmdir /jail/proto/home; ln -s usr/home /jail/proto/home`)
	g.mustRollout("snapshot")
	before, fp := g.jailPids("vhost1"), g.stateFingerprint()
	r := g.rollout("promote", "proto@2", "vhost1")
	if r.code == 0 || !strings.Contains(r.stderr, "/home is a symbolic link") {
		t.Fatalf("promote onto a snapshot with /home -> usr/home: exit %d: %s", r.code, r.stderr)
	}
	if after := g.jailPids("vhost1"); after != before || after == "" {
		t.Errorf("vhost1 was restarted (processes %q, then %q)", before, after)
	}
	if g.stateFingerprint() != fp {
		t.Error("a refused promote changed state")
	}
}

// Finding 4: a relative --config went into exec.prestart; jail(8) runs the hook from its own
// cwd, and rc.d runs from /, so the jail did not come back after a reboot.
func TestRelativeConfigSurvivesReboot(t *testing.T) {
	g := freshPool(t, "master")
	g.writeFile("/usr/local/etc/rollout.toml", jailConfig)
	g.jailProto("1")
	g.mustRollout("snapshot")
	g.sh(`cd /usr/local/etc && /usr/local/sbin/rollout --config ./rollout.toml create vhost1 proto@1`)
	if conf := g.must("cat", "/etc/jail.conf.d/vhost1.conf"); !strings.Contains(conf, "--config /usr/local/etc/rollout.toml etc init vhost1") {
		t.Fatalf("the hook does not name the config by absolute path:\n%s", conf)
	}
	g.reboot()
	// what rc.d/rollout does at boot, from /
	g.sh(`cd / && env -i PATH=/sbin:/bin:/usr/sbin:/usr/bin /usr/local/sbin/rollout --config /usr/local/etc/rollout.toml boot`)
	if g.jailVersion("vhost1") != "1" {
		t.Error("vhost1 did not come back after the reboot")
	}
}

// Finding 7: jail(8) removes the jail and goes on when exec.poststop fails, then exits 1 with
// the /etc disk and the root still mounted. rollout took the failure for a jail still running
// and left everything in place. Here the poststop hook fails because something outside the
// jail briefly holds its /etc; the jail is gone, so rollout cleans up and the switch succeeds.
func TestFailingJailRemoveIsCleanedUp(t *testing.T) {
	g := setUpVhosts(t)
	g.snapshot2()
	// a process of the host sits in the jail's /etc while the jail exists and for two seconds
	// after it is removed: jail(8)'s exec.poststop (rollout etc cleanup) finds /etc busy
	g.sh(`cd /jail/vhost1/etc && setsid -f sh -c 'while /usr/sbin/jls -j vhost1 >/dev/null 2>&1; do sleep 0.2; done; sleep 2' </dev/null >/dev/null 2>&1`)
	r := g.rollout("promote", "proto@2", "vhost1")
	if r.code != 0 {
		t.Fatalf("promote after a failed jail -r: exit %d: %s", r.code, r.stderr)
	}
	if g.jailVersion("vhost1") != "2" {
		t.Error("vhost1 does not run @2")
	}
	// exactly one md(4) /etc per running vhost: none leaked
	if n := strings.Count(g.must("/sbin/mdconfig", "-l", "-v"), "rollout:"); n != 2 {
		t.Errorf("%d /etc disks for 2 running vhosts:\n%s", n, g.must("/sbin/mdconfig", "-l", "-v"))
	}
}

// Finding 6: the trial /etc went to state_dir and was never compared with etc.size: an /etc
// bigger than the memory disk passed the preflight and failed after the stop. Now it is
// measured (nothing copied) and refused before anything stops.
func TestEtcBiggerThanItsDiskRefusedBeforeStop(t *testing.T) {
	g := setUpVhosts(t)
	g.sh(`echo 2 > /jail/proto/VERSION; head -c 40000000 /dev/urandom > /jail/proto/etc/big.db`)
	g.mustRollout("snapshot")
	before, fp := g.jailPids("vhost1"), g.stateFingerprint()
	r := g.rollout("promote", "proto@2", "vhost1")
	if r.code == 0 || !strings.Contains(r.stderr, "raise etc.size") || !strings.Contains(r.stderr, `etc.size = "32m"`) {
		t.Fatalf("promote with a 40 MB file in /etc and etc.size 32m: exit %d: %s", r.code, r.stderr)
	}
	if after := g.jailPids("vhost1"); after != before {
		t.Errorf("vhost1 was restarted (processes %q, then %q)", before, after)
	}
	if g.stateFingerprint() != fp {
		t.Error("a refused promote changed state")
	}
	// nothing of the trial is left in the state directory
	if out := g.sh(`ls -A /var/run/rollout 2>/dev/null | grep -v '^lock$' | grep -v '^etc-.*\.json$' || true`); strings.TrimSpace(out) != "" {
		t.Errorf("state_dir holds %q", out)
	}
}

// Finding 8 and 9: a size without a unit (mdconfig -s 32 is 32 sectors) and a '$' in a jail
// parameter were accepted by the config check; the '$' was refused only when jail.conf was
// written, after the journal, so the vhost needed repair for nothing. Both are refused when
// the config loads.
func TestConfigRefusedWhenItLoads(t *testing.T) {
	g := setUpVhosts(t)
	g.snapshot2()
	fp := g.stateFingerprint()
	for _, c := range []struct{ extra, want string }{
		{"\n[vhost.vhost1.params]\n\"host.domainname\" = \"$HOME\"\n", "host.domainname"},
		{"\n[etc]\nsize = \"32\"\n", "etc.size"},
	} {
		g.writeFile("/usr/local/etc/rollout.toml", jailConfig+c.extra)
		r := g.rollout("promote", "proto@2", "vhost1")
		if r.code == 0 || !strings.Contains(r.stderr, c.want) || !strings.Contains(r.stderr, "/usr/local/etc/rollout.toml:") {
			t.Errorf("config with %q: exit %d: %s", c.extra, r.code, r.stderr)
		}
		if g.stateFingerprint() != fp {
			t.Errorf("config with %q: state changed", c.extra)
		}
	}
	g.writeFile("/usr/local/etc/rollout.toml", jailConfig)
	if s := g.status()["vhost1"]; s.Pending != "" {
		t.Errorf("a journal was left: %+v", s)
	}
}

// hostFingerprint is what a dry run must not change: the mount table (without the snapshots
// ZFS itself automounts under .zfs, which reading a snapshot does on FreeBSD too), md units,
// emulated jails, rollout's files and every ZFS property and hold.
func (g *guest) hostFingerprint() string {
	g.t.Helper()
	return g.sh(`/sbin/mount -p | grep -v '/\.zfs/snapshot/' | sort
/sbin/mdconfig -l -v
/usr/sbin/jls jid name path
{ find /etc/jail.conf.d /etc/fstab.* /var/run/rollout /var/log/jail_* /jail /run/bsdemu -xdev -maxdepth 2 -printf '%p %T@ %s\n' 2>/dev/null || true; } | sort
zfs get -H -r -o name,property,value all zpool | { grep -v -E '\s(used|referenced|written|logicalused|logicalreferenced|usedbydataset|usedbychildren|usedbysnapshots|available|compressratio|refcompressratio)\s' || true; }
zfs holds -H -r $(zfs list -H -t snapshot -o name -r zpool) 2>/dev/null || true`)
}

// Finding 11: a dry run on the lab host ran mount and left directories behind. No command's
// dry run changes anything: mounts, md units, jails, files, ZFS.
func TestDryRunsChangeNothing(t *testing.T) {
	g := setUpVhosts(t)
	g.snapshot2()
	g.mustRollout("promote", "proto@2", "vhost2")
	g.writeFile("/usr/local/etc/rollout.toml", jailConfig+"\n[vhost.vhost3]\nhostname = \"vhost3.domain.local\"\n")
	before := g.hostFingerprint()
	for _, args := range [][]string{
		{"promote", "--dry-run", "proto@2", "vhost1"},
		{"rollback", "--dry-run", "vhost2"},
		{"create", "--dry-run", "vhost3", "proto@2"},
		{"repair", "--dry-run"},
		{"prune", "--dry-run", "--keep", "1"},
		{"start", "--dry-run", "vhost1"},
		{"stop", "--dry-run", "vhost1"},
		{"boot", "--dry-run"},
		{"shutdown", "--dry-run"},
	} {
		if r := g.rollout(args...); r.code != 0 {
			t.Errorf("rollout %s: exit %d: %s", strings.Join(args, " "), r.code, r.stderr)
		}
	}
	if after := g.hostFingerprint(); after != before {
		t.Errorf("dry runs changed the host:\n%s", diffLines(before, after))
	}
}

// diffLines shows the lines only one side has.
func diffLines(a, b string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	ia, ib := in(a), in(b)
	var out []string
	for _, l := range strings.Split(a, "\n") {
		if !ib[l] {
			out = append(out, "- "+l)
		}
	}
	for _, l := range strings.Split(b, "\n") {
		if !ia[l] {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}

// Deadlines: a jail whose rc never finishes cannot hold rollout, or its lock, forever. The start
// gives up after timeouts.start and the vhost goes back to its old snapshot.
func TestStartDeadline(t *testing.T) {
	g := setUpVhosts(t)
	g.writeFile("/usr/local/etc/rollout.toml", jailConfig+"\n[timeouts]\nstart = \"20s\"\n")
	g.sh(`echo 2 > /jail/proto/VERSION; printf '#!/bin/sh\nexec /bin/sleep 1000000\n' > /jail/proto/etc/rc`)
	g.mustRollout("snapshot")
	start := time.Now()
	r := g.rollout("promote", "proto@2", "vhost1")
	d := time.Since(start)
	if r.code != 1 || !strings.Contains(r.stderr, "start failed") || !strings.Contains(r.stderr, "back on zpool/proto@1") {
		t.Fatalf("promote onto a jail whose rc hangs: exit %d after %s: %s", r.code, d, r.stderr)
	}
	if d > 5*time.Minute {
		t.Errorf("promote took %s with timeouts.start = 20s", d)
	}
	if g.jailVersion("vhost1") != "1" {
		t.Error("vhost1 is not back on @1")
	}
	if s := g.status()["vhost1"]; s.Pending != "" || s.Snapshot != "zpool/proto@1" {
		t.Errorf("after the deadline: %+v", s)
	}
	// the lock was released: the next command runs
	g.mustRollout("start", "vhost2")
}

// Finding 5 (repair): rollout killed with -9 while vhost1's new jail starts; the host then loses
// jail.conf.d (as a NanoBSD host does at a reboot). `jail -f MISSING -r` fails in load_config,
// so repair writes the conf first; it puts vhost1 back on its committed @1, running, with no
// journal, no leaked /etc disk and no hold left on @2.
func TestRepairAfterKill(t *testing.T) {
	g := setUpVhosts(t)
	g.sh(`echo 2 > /jail/proto/VERSION
cat > /jail/proto/etc/rc <<'RC'
#!/bin/sh
cat /VERSION > /var/started-version
/bin/sleep 20
/bin/sleep 1000000 &
RC`)
	g.mustRollout("snapshot")
	vhost2 := g.jailPids("vhost2")
	// (setsid -f: a plain `setsid X &` keeps the ssh session, and so this call, until X ends)
	g.sh(`cd / && setsid -f /usr/local/sbin/rollout --config /usr/local/etc/rollout.toml promote proto@2 vhost1 </dev/null >/tmp/promote.log 2>&1`)
	g.waitForStart("vhost1", "2")
	// kill -9 rollout alone: jail(8), in its own process group, finishes the start
	// ([r] and [j]: the patterns must not match this script's own command line)
	g.sh(`pkill -9 -f '[r]ollout --config /usr/local/etc/rollout.toml promote'
for i in $(seq 120); do pgrep -f '[j]ail -f /etc/jail.conf.d/vhost1.conf -c' >/dev/null || exit 0; sleep 1; done; exit 1`)
	if s := g.status()["vhost1"]; s.Pending == "" || s.Snapshot != "zpool/proto@1" {
		t.Fatalf("after kill -9: %+v", s)
	}
	g.sh(`rm -f /etc/jail.conf.d/vhost1.conf /etc/jail.conf.d/vhost2.conf`)
	out := g.mustRollout("repair")
	t.Logf("repair: %s", strings.TrimSpace(out))
	s := g.status()["vhost1"]
	if s.Pending != "" || s.Snapshot != "zpool/proto@1" || !s.Running || s.Fstab != "1" || !s.Held {
		t.Errorf("vhost1 after repair: %+v", s)
	}
	if g.jailVersion("vhost1") != "1" {
		t.Error("vhost1 does not run @1 after repair")
	}
	if g.jailPids("vhost2") != vhost2 {
		t.Error("repair restarted vhost2")
	}
	if n := strings.Count(g.must("/sbin/mdconfig", "-l", "-v"), "rollout:"); n != 2 {
		t.Errorf("%d /etc disks for 2 running vhosts", n)
	}
	if h := g.must("zfs", "holds", "-H", "-r", "zpool/proto@2"); strings.Contains(h, "rollout") {
		t.Errorf("@2 still held: %s", h)
	}
}
