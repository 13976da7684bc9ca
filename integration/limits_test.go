package integration

import (
	"strings"
	"testing"
)

// limitsConfig is one vhost with an rctl memory limit and ZFS space settings.
const limitsConfig = baseConfig + `
[vhost.vhost1]
[vhost.vhost1.limits]
memoryuse = "deny=64M"
maxproc = "deny=100"
[vhost.vhost1.quota]
var = "1G"
[vhost.vhost1.refquota]
home = "512M"
[vhost.vhost1.reservation]
var = "16M"
`

// A vhost with limits and quotas, through rollout: create sets the quotas, the jail's
// exec.created adds the rctl rules, an allocation past memoryuse fails in the jail, stop takes
// the rules off, and a quota changed in the config is set at the next start.
func TestLimitsAndQuotas(t *testing.T) {
	g := freshPool(t, "master")
	g.writeFile("/usr/local/etc/rollout.toml", limitsConfig)
	g.jailProto("1")
	g.mustRollout("snapshot")
	g.mustRollout("create", "vhost1", "proto@1")

	got := g.must("zfs", "get", "-H", "-p", "-o", "name,property,value", "quota,refquota,reservation", "zpool/vhost1/var", "zpool/vhost1/home")
	for _, want := range []string{"zpool/vhost1/var\tquota\t1073741824", "zpool/vhost1/var\treservation\t16777216", "zpool/vhost1/home\trefquota\t536870912"} {
		if !strings.Contains(got, want) {
			t.Errorf("zfs get lacks %q:\n%s", want, got)
		}
	}
	conf := g.must("cat", "/etc/jail.conf.d/vhost1.conf")
	if !strings.Contains(conf, `exec.created += "/usr/bin/rctl -a jail:vhost1:memoryuse:deny=64M";`) {
		t.Errorf("jail.conf without the memoryuse rule:\n%s", conf)
	}
	// newest first, as the kernel lists them (kern_rctl.c rctl_racct_add_rule)
	if got := g.must("rctl", "jail:vhost1"); got != "jail:vhost1:memoryuse:deny=67108864\njail:vhost1:maxproc:deny=100\n" {
		t.Errorf("rctl jail:vhost1 = %q", got)
	}
	alloc := func(size string) result { return g.allocIn("vhost1", size) }
	if r := alloc("8M"); r.code != 0 {
		t.Errorf("8M in the jail: exit %d %s", r.code, r.stderr)
	}
	if r := alloc("128M"); r.code == 0 {
		t.Error("128M allocated in a jail with memoryuse deny=64M")
	}

	g.mustRollout("stop", "vhost1")
	if got := g.must("rctl", "jail:vhost1"); got != "" {
		t.Errorf("rules left after stop: %q", got)
	}

	// a changed quota is set at the next start, and only it
	g.writeFile("/usr/local/etc/rollout.toml", strings.Replace(limitsConfig, `var = "1G"`, `var = "2G"`, 1))
	plan := g.mustRollout("start", "--dry-run", "vhost1")
	if !strings.Contains(plan, "/sbin/zfs set quota=2G zpool/vhost1/var") || strings.Contains(plan, "refquota=") {
		t.Errorf("start's plan:\n%s", plan)
	}
	g.mustRollout("start", "vhost1")
	if got := strings.TrimSpace(g.must("zfs", "get", "-H", "-p", "-o", "value", "quota", "zpool/vhost1/var")); got != "2147483648" {
		t.Errorf("quota after start = %s, want 2147483648", got)
	}
	g.mustRollout("stop", "vhost1")
}

// allocIn has a process in the jail allocate size at once (dd's buffer), for memory limits.
func (g *guest) allocIn(jail, size string) result {
	g.t.Helper()
	return g.run("jexec", jail, "/bin/busybox", "dd", "if=/dev/zero", "of=/dev/null", "bs="+size, "count=1")
}
