package config

import (
	"reflect"
	"strings"
	"testing"
)

// rctl rules and zfs sizes: what rctl(8) and zfs(8) accept loads; anything else is refused
// with the file, line, key and value.
func TestLimits(t *testing.T) {
	limits := func(extra string) string { return "pool = \"zpool\"\n[vhost.v.limits]\n" + extra }
	space := func(table, extra string) string {
		return "pool = \"zpool\"\n[vhost.v." + table + "]\n" + extra
	}
	good := map[string]string{
		"memoryuse deny":        limits("memoryuse = \"deny=512M\"\n"),
		"pcpu deny":             limits("pcpu = \"deny=50\"\n"),
		"pcpu two cpus":         limits("pcpu = \"deny=200\"\n"),
		"maxproc deny":          limits("maxproc = \"deny=200\"\n"),
		"openfiles sigterm":     limits("openfiles = \"sigterm=1000\"\n"),
		"cputime log":           limits("cputime = \"log=3600\"\n"),
		"wallclock devctl":      limits("wallclock = \"devctl=86400\"\n"),
		"readbps throttle":      limits("readbps = \"throttle=10m\"\n"),
		"vmemoryuse 1e":         limits("vmemoryuse = \"deny=7e\"\n"),
		"int64 max":             limits("nthr = \"deny=9223372036854775807\"\n"),
		"cputime largest":       limits("cputime = \"log=9223372036854\"\n"),
		"quota":                 space("quota", "var = \"10G\"\nhome = \"none\"\n"),
		"refquota fraction":     space("refquota", "cfg = \"1.5G\"\n"),
		"reservation GiB":       space("reservation", "var = \"2GiB\"\n"),
		"reservation bytes":     space("reservation", "var = \"1048576\"\n"),
		"quota lower case unit": space("quota", "var = \"512mb\"\n"),
		"quota 15E":             space("quota", "var = \"15E\"\n"),
	}
	for name, toml := range good {
		if _, err := Parse("ok.toml", []byte(toml)); err != nil {
			t.Errorf("%s: refused: %v", name, err)
		}
	}
	bad := []struct{ name, toml, want string }{
		{"unknown resource", limits("memory = \"deny=1g\"\n"), `bad.toml:3: vhost.v.limits.memory: unknown rctl resource "memory"`},
		{"no action", limits("memoryuse = \"512m\"\n"), `bad.toml:3: vhost.v.limits.memoryuse: "512m": must be ACTION=AMOUNT`},
		{"unknown action", limits("memoryuse = \"refuse=512m\"\n"), `bad.toml:3: vhost.v.limits.memoryuse: "refuse=512m": unknown action "refuse"`},
		{"undeniable", limits("cputime = \"deny=10\"\n"), `bad.toml:3: vhost.v.limits.cputime: "deny=10": cputime cannot be denied`},
		{"throttle memory", limits("memoryuse = \"throttle=1g\"\n"), `bad.toml:3: vhost.v.limits.memoryuse: "throttle=1g": only readbps`},
		{"throttle pcpu", limits("pcpu = \"throttle=50\"\n"), `bad.toml:3: vhost.v.limits.pcpu: "throttle=50": only readbps`},
		{"pcpu suffix", limits("pcpu = \"deny=1k\"\n"), `bad.toml:3: vhost.v.limits.pcpu: "deny=1k": pcpu is a percentage`},
		{"two suffixes", limits("memoryuse = \"deny=1gg\"\n"), `bad.toml:3: vhost.v.limits.memoryuse: "deny=1gg": amount "1gg"`},
		{"fraction", limits("memoryuse = \"deny=1.5g\"\n"), `bad.toml:3: vhost.v.limits.memoryuse: "deny=1.5g": amount "1.5g"`},
		{"negative", limits("maxproc = \"deny=-1\"\n"), `bad.toml:3: vhost.v.limits.maxproc: "deny=-1": amount "-1"`},
		{"per", limits("maxproc = \"deny=10/process\"\n"), `bad.toml:3: vhost.v.limits.maxproc: "deny=10/process": amount "10/process"`},
		{"empty amount", limits("maxproc = \"deny=\"\n"), `bad.toml:3: vhost.v.limits.maxproc: "deny=": amount ""`},
		{"over int64", limits("nthr = \"deny=9223372036854775808\"\n"), `bad.toml:3: vhost.v.limits.nthr: "deny=9223372036854775808": amount "9223372036854775808" is too large`},
		{"8e", limits("vmemoryuse = \"deny=8e\"\n"), `bad.toml:3: vhost.v.limits.vmemoryuse: "deny=8e": amount "8e" is too large`},
		{"cputime millions", limits("cputime = \"log=9223372036855\"\n"), `bad.toml:3: vhost.v.limits.cputime: "log=9223372036855": amount "9223372036855" is too large`},
		{"quota unknown dataset", space("quota", "www = \"1G\"\n"), `bad.toml:3: vhost.v.quota.www: "www" is not one of the vhost's datasets`},
		{"quota word", space("quota", "var = \"lots\"\n"), `bad.toml:3: vhost.v.quota.var: "lots": must be a size`},
		{"quota two units", space("refquota", "var = \"1GG\"\n"), `bad.toml:3: vhost.v.refquota.var: "1GG": must be a size`},
		{"quota fraction no unit", space("reservation", "var = \"1.5\"\n"), `bad.toml:3: vhost.v.reservation.var: "1.5": must be a size`},
		{"quota 16E", space("quota", "var = \"16E\"\n"), `bad.toml:3: vhost.v.quota.var: "16E": must be a size`},
		{"quota negative", space("quota", "var = \"-1G\"\n"), `bad.toml:3: vhost.v.quota.var: "-1G": must be a size`},
		{"limit not a string", limits("maxproc = 10\n"), `bad.toml:3: `},
	}
	for _, c := range bad {
		if msg := parseErr(t, c.name, c.toml); !strings.HasPrefix(msg, c.want) {
			t.Errorf("%s: error %q, want it to start with %q", c.name, msg, c.want)
		}
	}
}

// Rules and Space come out sorted and complete, whatever the order in the file.
func TestRulesAndSpace(t *testing.T) {
	c, err := Parse("ok.toml", []byte("pool = \"zpool\"\n[vhost.v]\ndatasets = [\"var\", \"cfg\"]\n"+
		"[vhost.v.limits]\npcpu = \"deny=50\"\nmemoryuse = \"deny=512m\"\n"+
		"[vhost.v.reservation]\nvar = \"1G\"\n[vhost.v.quota]\nvar = \"10G\"\ncfg = \"none\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	v := c.Vhosts["v"]
	if got, want := v.Rules(), []string{"memoryuse:deny=512m", "pcpu:deny=50"}; !reflect.DeepEqual(got, want) {
		t.Errorf("rules %q, want %q", got, want)
	}
	want := []DatasetProp{
		{"zpool/v/var", "quota", "10G"}, {"zpool/v/var", "reservation", "1G"},
		{"zpool/v/cfg", "quota", "none"},
	}
	if got := v.Space(); !reflect.DeepEqual(got, want) {
		t.Errorf("space %+v, want %+v", got, want)
	}
	if got := c.Vhosts["v"]; len((&Vhost{}).Rules()) != 0 || (&Vhost{}).Space() != nil || got == nil {
		t.Errorf("a vhost without limits has rules or space")
	}
}

// SpaceBytes is what `zfs get -p` prints for the size once set.
func TestSpaceBytes(t *testing.T) {
	for s, want := range map[string]uint64{
		"none": 0, "0": 0, "1048576": 1 << 20, "10G": 10 << 30, "10g": 10 << 30, "2GiB": 2 << 30,
		"512mb": 512 << 20, "1.5G": 3 << 29, "0.5K": 512, "100B": 100, "15E": 15 << 60,
	} {
		if got, ok := SpaceBytes(s); !ok || got != want {
			t.Errorf("SpaceBytes(%q) = %d, %v; want %d", s, got, ok, want)
		}
	}
	for _, s := range []string{"", "G", "1.5", "16E", "1Z", "-1", "1 G", "1GG", "none "} {
		if n, ok := SpaceBytes(s); ok {
			t.Errorf("SpaceBytes(%q) = %d, accepted", s, n)
		}
	}
}
