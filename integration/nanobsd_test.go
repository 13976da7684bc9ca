package integration

// A NanoBSD host keeps /etc and /var on memory disks: at every boot rollout's jail.conf.d files
// and fstabs are gone, and only the pool remembers which snapshot each vhost runs on. These
// tests give the guest such an /etc (tmpfs on /etc/jail.conf.d and on fstab_dir), cut its power,
// and check that `rollout boot`, run as rc.d/rollout runs it, brings every vhost back on its
// committed snapshot, unattended.

import (
	"strings"
	"testing"
)

// nanoConfig keeps the fstabs in a directory that, like NanoBSD's /etc, does not survive a boot.
const nanoConfig = `pool = "zpool"
jail_root = "/jail"
fstab_dir = "/etc/fstabs"
[proto]
dataset = "zpool/proto"
mountpoint = "/jail/proto"

[vhost.vhost1]
hostname = "vhost1.domain.local"

[vhost.vhost2]
hostname = "vhost2.domain.local"
`

// memoryEtc mounts tmpfs on the directories a NanoBSD host loses at a reboot.
func (g *guest) memoryEtc() {
	g.t.Helper()
	g.sh(`for d in /etc/jail.conf.d /etc/fstabs; do mkdir -p $d; mountpoint -q $d || mount -t tmpfs -o size=1m tmpfs $d; done`)
	g.t.Cleanup(func() { g.run("sh", "-c", "umount /etc/jail.conf.d /etc/fstabs 2>/dev/null; true") })
}

// bootAsRC runs `rollout boot` as rc.d/rollout does at boot: from /, with rc's PATH.
func (g *guest) bootAsRC() string {
	g.t.Helper()
	return g.sh(`cd / && env -i PATH=/sbin:/bin:/usr/sbin:/usr/bin /usr/local/sbin/rollout --config /usr/local/etc/rollout.toml boot`)
}

func setUpNano(t *testing.T) *guest {
	g := freshPool(t, "master")
	g.memoryEtc()
	g.writeFile("/usr/local/etc/rollout.toml", nanoConfig)
	g.jailProto("1")
	g.mustRollout("snapshot")
	g.mustRollout("create", "vhost1", "proto@1")
	g.mustRollout("create", "vhost2", "proto@1")
	return g
}

// waitForStart waits, in the guest, until the vhost's jail runs its rc on snapshot version: the
// promote in the background has stopped the old jail and is starting the new one.
func (g *guest) waitForStart(vhost, version string) {
	g.t.Helper()
	r := g.run("sh", "-c", `for i in $(seq 900); do grep -qx "$2" /jail/$1/var/started-version 2>/dev/null && exit 0; sleep 0.2; done; exit 1`, "sh", vhost, version)
	if r.code != 0 {
		g.t.Fatalf("the promote never reached %s's start on @%s: %s", vhost, version, g.must("cat", "/tmp/promote.log"))
	}
}

// after a boot: each vhost runs (or not) on the snapshot its state names, nothing unfinished,
// its fstab written again, its snapshot held.
func (g *guest) checkBooted(want map[string]string) {
	g.t.Helper()
	st := g.status()
	for v, snap := range want {
		s := st[v]
		if snap == "" {
			if s.Running {
				g.t.Errorf("%s runs, but was stopped before the power cut: %+v", v, s)
			}
			continue
		}
		if s.Snapshot != "zpool/proto@"+snap || s.Pending != "" || !s.Running || s.Fstab != snap || s.FstabProblem != "" || !s.Held {
			g.t.Errorf("%s after boot: %+v", v, s)
		}
		if got := g.jailVersion(v); got != snap {
			g.t.Errorf("%s's processes run on @%s, its state says @%s", v, got, snap)
		}
	}
}

// Idle: vhost1 on @2 and running, vhost2 stopped by the admin. After the power cut jail.conf.d
// and the fstabs are empty; boot writes them again, starts vhost1 on @2 and leaves vhost2 down.
func TestNanoBSDPowerCutIdle(t *testing.T) {
	g := setUpNano(t)
	g.sh(`echo 2 > /jail/proto/VERSION`)
	g.mustRollout("snapshot")
	g.mustRollout("promote", "proto@2", "vhost1")
	g.mustRollout("stop", "vhost2")
	g.powercut()
	if out := g.sh(`ls -A /etc/jail.conf.d /etc/fstabs 2>/dev/null || true`); strings.Contains(out, "vhost") {
		t.Fatalf("the lab's memory /etc survived the power cut: %s", out)
	}
	g.memoryEtc()
	out := g.bootAsRC()
	t.Logf("boot: %s", strings.TrimSpace(out))
	g.checkBooted(map[string]string{"vhost1": "2", "vhost2": ""})
	if st := g.status()["vhost2"]; st.Snapshot != "zpool/proto@1" || st.FstabProblem != "" {
		t.Errorf("vhost2 after boot: %+v", st)
	}
	// a second boot finds nothing to do and changes nothing
	pids := g.jailPids("vhost1")
	g.bootAsRC()
	if g.jailPids("vhost1") != pids {
		t.Error("a second boot restarted vhost1")
	}
}

// Mid-promote: the power goes while vhost1's jail is starting on @2 (its rc is slow). The journal
// on vhost1's dataset says so; boot repairs it: vhost1 comes back on its committed @1, vhost2 is
// untouched, nothing is left unfinished and @2 is no longer held.
func TestNanoBSDPowerCutMidPromote(t *testing.T) {
	g := setUpNano(t)
	g.sh(`echo 2 > /jail/proto/VERSION
cat > /jail/proto/etc/rc <<'RC'
#!/bin/sh
cat /VERSION > /var/started-version
/bin/sleep 600
/bin/sleep 1000000 &
RC`)
	g.mustRollout("snapshot")
	// (setsid -f: a plain `setsid X &` keeps the ssh session, and so this call, until X ends)
	g.sh(`cd / && setsid -f /usr/local/sbin/rollout --config /usr/local/etc/rollout.toml promote proto@2 vhost1 </dev/null >/tmp/promote.log 2>&1`)
	// wait until vhost1's new jail is starting: its rc has run on @2
	g.waitForStart("vhost1", "2")
	if p := g.must("zfs", "get", "-H", "-o", "value", "rollout:pending", "zpool/vhost1"); !strings.Contains(p, "op=promote") {
		t.Fatalf("no journal during the promote: %q", p)
	}
	g.powercut()
	g.memoryEtc()
	out := g.bootAsRC()
	t.Logf("boot: %s", strings.TrimSpace(out))
	g.checkBooted(map[string]string{"vhost1": "1", "vhost2": "1"})
	if h := g.must("zfs", "holds", "-H", "-r", "zpool/proto@2"); strings.Contains(h, "rollout") {
		t.Errorf("@2 is still held though no vhost uses it: %s", h)
	}
}
