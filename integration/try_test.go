package integration

import (
	"strings"
	"testing"
)

// prodFacts is what must not change in production while a try comes and goes: the pid and
// root of vhost1's long-running process, what its /etc and /cfg hold, its state.
func (g *guest) prodFacts() string {
	g.t.Helper()
	return g.sh(`for p in /proc/[0-9]*; do
  r=$(readlink $p/root 2>/dev/null) || continue
  case "$r" in /jail/vhost1|/jail/vhost2) grep -q '^/bin/sleep' $p/cmdline && echo "$r ${p#/proc/} $(cat $p/root/VERSION)";; esac
done | sort
md5sum /jail/vhost1/etc/rc.conf /jail/vhost1/cfg/rc.conf
zfs get -H -o name,property,value rollout:snapshot,rollout:previous zpool/vhost1 zpool/vhost2`)
}

// tryLeftovers lists whatever of vhost1's try exists: datasets, snapshots of the vhost's own
// datasets, holds on the prototype, mounts, /etc disks, the jail, its files.
func (g *guest) tryLeftovers() string {
	g.t.Helper()
	return strings.TrimSpace(g.sh(`zfs list -H -o name -t all -r zpool | grep -E 'try' || true
for s in $(zfs list -H -t snapshot -o name -r zpool/proto); do zfs holds -H "$s"; done | awk '$2 ~ /try/ {print "hold", $1, $2}'
/sbin/mount -p | awk '$2 ~ /try/ {print "mount", $2}'
/sbin/mdconfig -l -v | grep try || true
jls name | grep try || true
ls -d /jail/vhost1-try /etc/fstab.vhost1-try /etc/jail.conf.d/vhost1-try.conf 2>/dev/null || true
zfs get -H -o value rollout:try zpool/vhost1 | grep -v '^-$' | grep -v '^none$' || true`))
}

// TestTryLeavesProductionAlone is issue 11's "rollout try": the test jail runs on the new
// snapshot with clones of the vhost's datasets and passes its health check while production
// keeps running (same process, no restart); --end leaves nothing; a crash is repaired.
func TestTryLeavesProductionAlone(t *testing.T) {
	long(t)
	g := setUpVhosts(t)
	g.sh(`echo 2 > /jail/proto/VERSION; echo 'motd of 2' > /jail/proto/etc/motd`)
	g.mustRollout("snapshot")
	before := g.prodFacts()

	// the dry run shows the clones and the start, and changes nothing
	dry := g.mustRollout("try", "--dry-run", "proto@2", "vhost1")
	for _, w := range []string{"zfs snapshot zpool/vhost1/cfg@rollout-try-", "zfs clone -o mountpoint=legacy zpool/vhost1/cfg@rollout-try-",
		"zfs hold -r rollout:try:vhost1-try zpool/proto@2", "jail -f /etc/jail.conf.d/vhost1-try.conf -c vhost1-try"} {
		if !strings.Contains(dry, w) {
			t.Errorf("try --dry-run lacks %q:\n%s", w, dry)
		}
	}
	if l := g.tryLeftovers(); l != "" {
		t.Fatalf("the dry run made something:\n%s", l)
	}

	out := g.mustRollout("try", "--keep", "proto@2", "vhost1")
	t.Logf("try --keep: %s", strings.TrimSpace(out))
	if v := g.jailVersion("vhost1-try"); v != "2" {
		t.Errorf("the try runs on @%s, not @2", v)
	}
	// its /etc is @2's with vhost1's /cfg on top (from the clone), its /var a clone of vhost1's
	if g.must("cat", "/jail/vhost1-try/etc/motd") != "motd of 2\n" || !strings.Contains(g.must("cat", "/jail/vhost1-try/etc/rc.conf"), "vhost1.domain.local") {
		t.Error("the try's /etc is not @2's /etc with vhost1's /cfg on top")
	}
	if o := strings.TrimSpace(g.must("zfs", "get", "-H", "-o", "value", "origin", "zpool/vhost1-try/var")); !strings.HasPrefix(o, "zpool/vhost1/var@rollout-try-") {
		t.Errorf("the try's var is not a clone of vhost1's: origin %q", o)
	}
	if h := g.must("zfs", "holds", "-H", "zpool/proto@2"); !strings.Contains(h, "rollout:try:vhost1-try") {
		t.Errorf("proto@2 is not held for the try: %q", h)
	}
	// a write in the try does not reach production
	g.must("jexec", "vhost1-try", "/bin/sh", "-c", "echo try > /var/written-by-try")
	if r := g.run("test", "-e", "/jail/vhost1/var/written-by-try"); r.code == 0 {
		t.Error("a file written in the try appeared in production's /var")
	}
	if after := g.prodFacts(); after != before {
		t.Errorf("production changed during the try:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	// a newer snapshot: @2 is then kept only because the try runs on it
	g.mustRollout("snapshot")
	if pr := g.mustRollout("prune", "--keep", "1", "--dry-run"); !strings.Contains(pr, "zpool/proto@2 (in use by the try vhost1-try") {
		t.Errorf("prune would not keep the try's snapshot:\n%s", pr)
	}
	if r := g.rollout("try", "proto@2", "vhost1"); r.code == 0 || !strings.Contains(r.stderr, "already has a try") {
		t.Errorf("a second try: %+v", r)
	}

	g.mustRollout("try", "--end", "vhost1")
	if l := g.tryLeftovers(); l != "" {
		t.Errorf("left after try --end:\n%s", l)
	}
	if r := g.rollout("try", "--end", "vhost1"); r.code != 1 || !strings.Contains(r.stderr, "vhost vhost1 has no try") {
		t.Errorf("try --end without a try: %+v", r)
	}

	// without --keep: started, checked, ended
	out = g.mustRollout("try", "proto@2", "vhost1")
	if !strings.Contains(out, "passed its health check; ended again") {
		t.Errorf("try: %s", out)
	}
	if l := g.tryLeftovers(); l != "" {
		t.Errorf("left after a try without --keep:\n%s", l)
	}

	// killed while making it (before its start, before its health check) and while ending it
	// (before the clones are destroyed): one repair tears it down
	for _, c := range []struct {
		point string
		args  []string
	}{
		{"before:start@vhost1-try", []string{"try", "--keep", "proto@2", "vhost1"}},
		{"before:health@vhost1-try", []string{"try", "--keep", "proto@2", "vhost1"}},
		{"before:destroy@vhost1-try", []string{"try", "--end", "vhost1"}},
	} {
		if c.args[1] == "--end" {
			g.mustRollout("try", "--keep", "proto@2", "vhost1")
		}
		g.rolloutAt(c.point, c.args...)
		if l := g.tryLeftovers(); l == "" {
			t.Fatalf("%s: nothing of the try is there to repair", c.point)
		}
		g.mustRollout("repair")
		if l := g.tryLeftovers(); l != "" {
			t.Errorf("%s: left after repair:\n%s", c.point, l)
		}
	}
	if after := g.prodFacts(); after != before {
		t.Errorf("production changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}
