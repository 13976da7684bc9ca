package config

import (
	"strings"
	"testing"
	"time"
)

// The edges of every numeric and character rule: the last value accepted and the first refused.
func TestBoundaries(t *testing.T) {
	slave := func(extra string) string {
		return "pool = \"zpool\"\n[slave.s]\naddress = \"h\"\nagent = true\n" + extra
	}
	vhost := func(extra string) string { return "pool = \"zpool\"\n[vhost.v]\n" + extra }
	good := map[string]string{
		"port 1":               slave("port = 1\n"),
		"port 65535":           slave("port = 65535\n"),
		"bwlimit 50m":          slave("bwlimit = \"50m\"\n"),
		"bwlimit 50M":          slave("bwlimit = \"50M\"\n"),
		"bwlimit 0":            slave("bwlimit = \"0\"\n"),
		"bwlimit 9t":           slave("bwlimit = \"9t\"\n"),
		"15-character iface":   vhost("ip4 = [\"abcdefghijklm09|10.0.0.1\"]\n"),
		"iface edges":          vhost("ip4 = [\"aAzZ09._-|10.0.0.1\"]\n"),
		"path edges":           "pool = \"zpool\"\njail_root = \"/aAzZ09._-+:@\"\n",
		"etc size 1k":          "pool = \"zpool\"\n[etc]\nsize = \"1k\"\n",
		"etc size 4294967295t": "pool = \"zpool\"\n[etc]\nsize = \"4294967295T\"\n",
		"term just below stop": "pool = \"zpool\"\n[timeouts]\nstop = \"31s\"\nterm = \"30s\"\n",
	}
	for name, toml := range good {
		if _, err := Parse("ok.toml", []byte(toml)); err != nil {
			t.Errorf("%s: refused: %v", name, err)
		}
	}
	bad := []struct{ name, toml, want string }{
		{"port -1", slave("port = -1\n"), "bad.toml:5: slave.s.port: -1 is not a TCP port"},
		{"port 65536", slave("port = 65536\n"), "bad.toml:5: slave.s.port: 65536 is not a TCP port"},
		{"bwlimit two units", slave("bwlimit = \"5mm\"\n"), `bad.toml:5: slave.s.bwlimit: "5mm"`},
		{"bwlimit unit only", slave("bwlimit = \"m\"\n"), `bad.toml:5: slave.s.bwlimit: "m"`},
		{"bwlimit /", slave("bwlimit = \"5/\"\n"), `bad.toml:5: slave.s.bwlimit: "5/"`},
		{"bwlimit :", slave("bwlimit = \"5:\"\n"), `bad.toml:5: slave.s.bwlimit: "5:"`},
		{"16-character iface", vhost("ip4 = [\"abcdefghijklm012|10.0.0.1\"]\n"), `bad.toml:3: vhost.v.ip4: "abcdefghijklm012|10.0.0.1": "abcdefghijklm012" is not an interface name`},
		{"iface `", vhost("ip4 = [\"em`|10.0.0.1\"]\n"), "bad.toml:3: vhost.v.ip4: "},
		{"iface {", vhost("ip4 = [\"em{|10.0.0.1\"]\n"), "bad.toml:3: vhost.v.ip4: "},
		{"iface @", vhost("ip4 = [\"em@|10.0.0.1\"]\n"), "bad.toml:3: vhost.v.ip4: "},
		{"iface [", vhost("ip4 = [\"em[|10.0.0.1\"]\n"), "bad.toml:3: vhost.v.ip4: "},
		{"iface /", vhost("ip4 = [\"em/|10.0.0.1\"]\n"), "bad.toml:3: vhost.v.ip4: "},
		{"iface :", vhost("ip4 = [\"em:|10.0.0.1\"]\n"), "bad.toml:3: vhost.v.ip4: "},
		{"path `", "pool = \"zpool\"\njail_root = \"/a`\"\n", "bad.toml:2: jail_root: \"/a`\": character '`' not allowed"},
		{"path {", "pool = \"zpool\"\njail_root = \"/a{\"\n", "bad.toml:2: jail_root: "},
		{"path [", "pool = \"zpool\"\njail_root = \"/a[\"\n", "bad.toml:2: jail_root: "},
		{"path ?", "pool = \"zpool\"\njail_root = \"/a?\"\n", "bad.toml:2: jail_root: "},
		{"path space", "pool = \"zpool\"\njail_root = \"/a b\"\n", "bad.toml:2: jail_root: "},
		{"etc size 4294967296k", "pool = \"zpool\"\n[etc]\nsize = \"4294967296k\"\n", `bad.toml:3: etc.size: "4294967296k"`},
		{"term equals stop", "pool = \"zpool\"\n[timeouts]\nstop = \"30s\"\nterm = \"30s\"\n", "bad.toml:4: timeouts.term: 30s must be less than timeouts.stop (30s)"},
		{"zero health", "pool = \"zpool\"\n[timeouts]\nhealth = \"0s\"\n", `bad.toml:3: timeouts.health: "0s": must be more than zero`},
	}
	for _, c := range bad {
		if msg := parseErr(t, c.name, c.toml); !strings.HasPrefix(msg, c.want) {
			t.Errorf("%s: error %q, want it to start with %q", c.name, msg, c.want)
		}
	}
	c, err := Parse("ok.toml", []byte(good["term just below stop"]))
	if err != nil || c.Timeouts.Stop != 31*time.Second || c.Timeouts.Term != 30*time.Second {
		t.Errorf("timeouts %+v, %v", c.Timeouts, err)
	}
}

// An error without a line has no ":0".
func TestErrorWithoutLine(t *testing.T) {
	if got := (&Error{File: "r.toml", Msg: "pool: missing"}).Error(); got != "r.toml: pool: missing" {
		t.Errorf("no line: %q", got)
	}
	if got := (&Error{File: "r.toml", Line: 1, Msg: "x"}).Error(); got != "r.toml:1: x" {
		t.Errorf("line 1: %q", got)
	}
}

// An error in the file's first key is on line 1, not line 0 or without a line.
func TestErrorOnFirstKey(t *testing.T) {
	if msg := parseErr(t, "first key", "pool = \"9pool\"\n"); !strings.HasPrefix(msg, "bad.toml:1: pool: ") {
		t.Errorf("first key: %q", msg)
	}
}

// A slave's identity and known_hosts, when set, are absolute clean paths.
func TestSlaveKeyPaths(t *testing.T) {
	for key, val := range map[string]string{"identity": "id_ed25519", "known_hosts": "/root/.ssh/../known_hosts"} {
		toml := "pool = \"zpool\"\n[slave.s]\naddress = \"h\"\nagent = true\n" + key + " = \"" + val + "\"\n"
		if msg := parseErr(t, key, toml); !strings.HasPrefix(msg, "bad.toml:5: slave.s."+key+": \""+val+"\"") {
			t.Errorf("%s %q: %q", key, val, msg)
		}
	}
	c, err := Parse("ok.toml", []byte("pool = \"zpool\"\n[slave.s]\naddress = \"h\"\nidentity = \"/root/.ssh/id\"\nknown_hosts = \"/root/.ssh/kh\"\n"))
	if err != nil || c.Slaves["s"].Identity != "/root/.ssh/id" || c.Slaves["s"].KnownHosts != "/root/.ssh/kh" {
		t.Errorf("absolute key paths: %+v, %v", c, err)
	}
}
