package config

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestExampleConfig(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	c, err := Load(filepath.Join(filepath.Dir(file), "..", "..", "examples", "rollout.toml"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := c.Vhost("vhost1")
	if err != nil {
		t.Fatal(err)
	}
	if c.Proto.Dataset != "zpool/proto" || c.Proto.EtcDataset() != "zpool/proto/etc" ||
		c.Proto.EtcMountpoint() != "/jail/proto/etc" || v.Dataset != "zpool/vhost1" ||
		strings.Join(v.Datasets, ",") != "cfg,var,home" || v.Path != "/jail/vhost1" || c.Etc.Backend != "md" {
		t.Fatalf("unexpected config %+v %+v", c, v)
	}
	if want := (Timeouts{Start: 5 * time.Minute, Stop: 2 * time.Minute, Term: 10 * time.Second, Health: time.Minute}); c.Timeouts != want {
		t.Errorf("example timeouts %+v, want %+v", c.Timeouts, want)
	}
	s, err := c.Slave("slave2")
	if err != nil || s.Port != 22 || s.Pool != "zpool" {
		t.Fatalf("slave2 = %+v, %v", s, err)
	}
}

func TestDefaults(t *testing.T) {
	c, err := Parse("min.toml", []byte("pool = \"tank\"\n[vhost.web]\n"))
	if err != nil {
		t.Fatal(err)
	}
	v := c.Vhosts["web"]
	if c.Proto.Dataset != "tank/proto" || c.Proto.Mountpoint != "/jail/proto" || v.Dataset != "tank/web" ||
		v.Path != "/jail/web" || v.Hostname != "web" || c.Etc.Size != "32m" {
		t.Fatalf("defaults: %+v %+v", c, v)
	}
}

func TestBadConfigs(t *testing.T) {
	cases := []struct{ name, toml, want string }{
		{"syntax", "pool = \n", "bad.toml:1: "},
		{"unknown key", "pool = \"zpool\"\n\n[vhost.vhost1]\ndataste = \"x\"\n", `bad.toml:4: unknown key "vhost.vhost1.dataste"`},
		{"wrong type", "pool = \"zpool\"\n[slave.s]\naddress = \"h\"\nport = \"22\"\nagent = true\n", "bad.toml:4: "},
		{"duplicate", "pool = \"a\"\npool = \"b\"\n", "bad.toml:2: "},
		{"no pool", "jail_root = \"/jail\"\n", "bad.toml: pool: missing"},
		{"bracketed address", "pool = \"zpool\"\n[slave.s]\naddress = \"[::1]\"\nagent = true\n", `bad.toml:3: slave.s.address: "[::1]" is not a host name or address`},
		{"bad dataset", "pool = \"zpool\"\n[proto]\ndataset = \"zpool/pro to\"\n", `bad.toml:3: proto.dataset: invalid dataset "zpool/pro to"`},
		{"dotdot dataset", "pool = \"zpool\"\n[vhost.v]\ndataset = \"zpool/../etc\"\n", `bad.toml:3: vhost.v.dataset: invalid dataset "zpool/../etc"`},
		{"proto outside pool", "pool = \"zpool\"\n[proto]\ndataset = \"tank/proto\"\n", "bad.toml:3: proto.dataset: \"tank/proto\" is not in pool"},
		{"relative path", "pool = \"zpool\"\njail_root = \"jail\"\n", "bad.toml:2: jail_root: \"jail\" is not an absolute path"},
		{"dotdot path", "pool = \"zpool\"\n[vhost.v]\npath = \"/jail/../etc\"\n", "bad.toml:3: vhost.v.path"},
		{"space path", "pool = \"zpool\"\n[proto]\nmountpoint = \"/jail/my proto\"\n", "bad.toml:3: proto.mountpoint"},
		{"bad vhost name", "pool = \"zpool\"\n[vhost.\"v;reboot\"]\n", `bad.toml:2: vhost.v;reboot: invalid vhost name "v;reboot"`},
		{"slash vhost name", "pool = \"zpool\"\n[vhost.\"a/b\"]\n", `invalid vhost name "a/b"`},
		{"dotdot vhost", "pool = \"zpool\"\n[vhost.\"..\"]\n", `invalid vhost name ".."`},
		{"bad backend", "pool = \"zpool\"\n[etc]\nbackend = \"ramdisk\"\n", `bad.toml:3: etc.backend: "ramdisk"`},
		{"bad size", "pool = \"zpool\"\n[etc]\nsize = \"32 MB\"\n", "bad.toml:3: etc.size"},
		{"shell in exec", "pool = \"zpool\"\n[vhost.v]\nexec_start = \"/bin/sh /etc/rc; reboot\"\n", "bad.toml:3: vhost.v.exec_start"},
		{"slave no key", "pool = \"zpool\"\n[slave.s2]\naddress = \"s2\"\n", "bad.toml:2: slave.s2: needs identity"},
		{"slave bad port", "pool = \"zpool\"\n[slave.s2]\naddress = \"s2\"\nport = 70000\nagent = true\n", "bad.toml:4: slave.s2.port"},
		{"slave named local", "pool = \"zpool\"\n[slave.local]\naddress = \"s2\"\nagent = true\n", `bad.toml:2: slave.local: "local" is this host's name in --hosts`},
		{"slave named all", "pool = \"zpool\"\n[slave.all]\naddress = \"s2\"\nagent = true\n", `bad.toml:2: slave.all: "all" means every host in --hosts; rename the slave`},
		{"slave bad address", "pool = \"zpool\"\n[slave.s2]\naddress = \"s2;id\"\nagent = true\n", "bad.toml:3: slave.s2.address"},
		{"same path", "pool = \"zpool\"\n[vhost.a]\npath = \"/jail/x\"\n[vhost.b]\npath = \"/jail/x\"\n", "already used by"},
		{"dataset etc", "pool = \"zpool\"\n[vhost.a]\ndatasets = [\"cfg\", \"etc\"]\n", "bad.toml:3: vhost.a.datasets"},
		{"vhost is proto", "pool = \"zpool\"\n[vhost.a]\ndataset = \"zpool/proto/x\"\n", "overlaps the prototype"},
	}
	for _, c := range cases {
		_, err := Parse("bad.toml", []byte(c.toml))
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q, want it to contain %q", c.name, err, c.want)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error is not one line: %q", c.name, err)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.toml"))
	if err == nil || !strings.Contains(err.Error(), "nope.toml") {
		t.Fatalf("got %v", err)
	}
}

func TestLookups(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "r.toml")
	if err := os.WriteFile(f, []byte("pool = \"zpool\"\n[vhost.vhost1]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(f)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Vhost("vhost9"); err == nil || !strings.Contains(err.Error(), `unknown vhost "vhost9"`) {
		t.Errorf("unknown vhost: %v", err)
	}
	if _, err := c.Vhost("../etc"); err == nil || !strings.Contains(err.Error(), `"../etc"`) {
		t.Errorf("bad vhost name: %v", err)
	}
	if _, err := c.Slave("nope"); err == nil {
		t.Error("unknown slave accepted")
	}
}

// parseErr parses toml as bad.toml and returns its error, failing if it was accepted.
func parseErr(t *testing.T, name, toml string) string {
	t.Helper()
	_, err := Parse("bad.toml", []byte(toml))
	if err == nil {
		t.Errorf("%s: accepted:\n%s", name, toml)
		return ""
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("%s: error is not one line: %q", name, err)
	}
	return err.Error()
}

// etc.size without a unit is 32 sectors to mdconfig and 32 bytes to tmpfs: refused.
func TestEtcSizeNeedsUnit(t *testing.T) {
	for _, size := range []string{"32", "0m", "m", "32mb", "-1m", "32 m", "+32m"} {
		msg := parseErr(t, size, "pool = \"zpool\"\n[etc]\nsize = \""+size+"\"\n")
		if want := "bad.toml:3: etc.size: \"" + size + "\": "; !strings.HasPrefix(msg, want) {
			t.Errorf("size %q: error %q, want it to start with %q", size, msg, want)
		}
	}
	if msg := parseErr(t, "32", "pool = \"zpool\"\n[etc]\nsize = \"32\"\n"); !strings.Contains(msg, "unit") {
		t.Errorf("size \"32\": error %q does not say a unit is needed", msg)
	}
	for _, size := range []string{"32m", "32M", "1g", "1G", "65536k", "65536K", "1t"} {
		c, err := Parse("ok.toml", []byte("pool = \"zpool\"\n[etc]\nsize = \""+size+"\"\n"))
		if err != nil || c.Etc.Size != size {
			t.Errorf("size %q: %v", size, err)
		}
	}
}

// Every value that goes into jail.conf is checked with the host's rule when the file loads:
// jail(8) expands $variables even inside double quotes.
func TestJailConfValuesRefusedAtLoad(t *testing.T) {
	cases := []struct{ name, vhost, want string }{
		{"exec_start $", "exec_start = \"/bin/sh /etc/rc $HOME\"\n", "bad.toml:3: vhost.v.exec_start: "},
		{"exec_stop $", "exec_stop = \"/bin/sh ${x}\"\n", "bad.toml:3: vhost.v.exec_stop: "},
		{"interface $", "interface = \"em$0\"\n", "bad.toml:3: vhost.v.interface: "},
		{"ip4 $", "ip4 = [\"192.168.0.1\", \"$ip\"]\n", "bad.toml:3: vhost.v.ip4: "},
		{"params $", "[vhost.v.params]\n\"allow.mount\" = \"$x\"\n", "bad.toml:4: vhost.v.params.allow.mount: "},
		{"params tab", "[vhost.v.params]\n\"osrelease\" = \"14.1\\t\"\n", "bad.toml:4: vhost.v.params.osrelease: "},
		{"exec_start control", "exec_start = \"/bin/sh\\u0007\"\n", "bad.toml:3: vhost.v.exec_start: "},
		{"exec_start backslash", "exec_start = \"/bin/sh \\\\n\"\n", "bad.toml:3: vhost.v.exec_start: "},
	}
	for _, c := range cases {
		msg := parseErr(t, c.name, "pool = \"zpool\"\n[vhost.v]\n"+c.vhost)
		if !strings.HasPrefix(msg, c.want) {
			t.Errorf("%s: error %q, want it to start with %q", c.name, msg, c.want)
		}
	}
	// the hostname goes through the same rule: '$' never reaches jail.conf
	if msg := parseErr(t, "hostname $", "pool = \"zpool\"\n[vhost.v]\nhostname = \"a$b\"\n"); !strings.HasPrefix(msg, "bad.toml:3: vhost.v.hostname: ") {
		t.Errorf("hostname: error %q", msg)
	}
	// and Load, which the CLI calls, refuses it too
	f := filepath.Join(t.TempDir(), "r.toml")
	if err := os.WriteFile(f, []byte("pool = \"zpool\"\n[vhost.v]\nexec_start = \"/bin/sh $x\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(f); err == nil || !strings.Contains(err.Error(), "r.toml:3: vhost.v.exec_start") || !strings.Contains(err.Error(), "$") {
		t.Errorf("Load: %v", err)
	}
}

// ip4 entries are IPv4 addresses in the forms jail(8) reads in ip4.addr.
func TestIP4Addresses(t *testing.T) {
	for _, ip := range []string{"999.1.1.1", "192.168.0", "192.168.0.011", "::1", "::ffff:192.168.0.1", "host.example",
		"192.168.0.1/33", "192.168.0.1/", "em0|999.1.1.1", "|192.168.0.1", "em 0|192.168.0.1", "waytoolonginterface0|10.0.0.1",
		"em0|lo0|10.0.0.1", ""} {
		msg := parseErr(t, ip, "pool = \"zpool\"\n[vhost.v]\nip4 = [\""+ip+"\"]\n")
		if want := "bad.toml:3: vhost.v.ip4: "; !strings.HasPrefix(msg, want) {
			t.Errorf("ip4 %q: error %q, want it to start with %q", ip, msg, want)
		}
	}
	for _, ip := range []string{"192.168.0.11", "10.0.0.1/24", "igb0|192.168.0.11", "lagg0.100|10.0.0.1/32", "epair0a|0.0.0.0"} {
		if _, err := Parse("ok.toml", []byte("pool = \"zpool\"\n[vhost.v]\nip4 = [\""+ip+"\"]\n")); err != nil {
			t.Errorf("ip4 %q refused: %v", ip, err)
		}
	}
}

// A relative --config must not reach jail.conf's exec.prestart hook: jail(8) runs hooks from its
// own working directory.
func TestLoadMakesPathAbsolute(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rollout.toml"), []byte("pool = \"zpool\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	want, err := os.Stat(filepath.Join(dir, "rollout.toml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, rel := range []string{"rollout.toml", "./rollout.toml", "sub/../rollout.toml", "sub//..//./rollout.toml"} {
		c, err := Load(rel)
		if err != nil {
			t.Fatalf("Load(%q): %v", rel, err)
		}
		if !filepath.IsAbs(c.Path) || filepath.Clean(c.Path) != c.Path {
			t.Errorf("Load(%q).Path = %q, want an absolute clean path", rel, c.Path)
			continue
		}
		if got, err := os.Stat(c.Path); err != nil || !os.SameFile(got, want) {
			t.Errorf("Load(%q).Path = %q names another file (%v)", rel, c.Path, err)
		}
	}
}

func TestTimeoutDefaults(t *testing.T) {
	c, err := Parse("min.toml", []byte("pool = \"tank\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := Timeouts{Start: 5 * time.Minute, Stop: 2 * time.Minute, Term: 10 * time.Second, Health: time.Minute}
	if c.Timeouts != want {
		t.Errorf("Timeouts = %+v, want %+v", c.Timeouts, want)
	}
}

func TestTimeoutsParsed(t *testing.T) {
	c, err := Parse("t.toml", []byte("pool = \"tank\"\n[timeouts]\nstart = \"10m\"\nstop = \"90s\"\nterm = \"30s\"\nhealth = \"1m30s\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := Timeouts{Start: 10 * time.Minute, Stop: 90 * time.Second, Term: 30 * time.Second, Health: 90 * time.Second}
	if c.Timeouts != want {
		t.Errorf("Timeouts = %+v, want %+v", c.Timeouts, want)
	}
	// one key set, the others keep their defaults
	c, err = Parse("t.toml", []byte("pool = \"tank\"\n[timeouts]\nhealth = \"5s\"\n"))
	if err != nil || c.Timeouts.Health != 5*time.Second || c.Timeouts.Start != 5*time.Minute || c.Timeouts.Term != 10*time.Second {
		t.Errorf("health only: %+v, %v", c.Timeouts, err)
	}
}

func TestBadTimeouts(t *testing.T) {
	cases := []struct{ name, table, want string }{
		{"zero start", "start = \"0s\"\n", "bad.toml:3: timeouts.start: \"0s\""},
		{"zero no unit", "stop = \"0\"\n", "bad.toml:3: timeouts.stop: \"0\""},
		{"negative", "health = \"-1m\"\n", "bad.toml:3: timeouts.health: \"-1m\""},
		{"unparseable", "start = \"5 minutes\"\n", "bad.toml:3: timeouts.start: \"5 minutes\""},
		{"no unit", "health = \"60\"\n", "bad.toml:3: timeouts.health: \"60\""},
		{"empty", "term = \"\"\n", "bad.toml:3: timeouts.term: \"\""},
		{"term not below stop", "stop = \"30s\"\nterm = \"30s\"\n", "bad.toml:4: timeouts.term: "},
		{"term above default stop", "term = \"3m\"\n", "bad.toml:3: timeouts.term: "},
		{"start in fractions", "start = \"1.5s\"\n", "bad.toml:3: timeouts.start: \"1.5s\""},
		{"term in fractions", "term = \"500ms\"\n", "bad.toml:3: timeouts.term: \"500ms\""},
		{"number", "start = 300\n", "bad.toml:3: "},
		{"unknown key", "kill = \"1s\"\n", `bad.toml:3: unknown key "timeouts.kill"`},
	}
	for _, c := range cases {
		msg := parseErr(t, c.name, "pool = \"zpool\"\n[timeouts]\n"+c.table)
		if !strings.HasPrefix(msg, c.want) {
			t.Errorf("%s: error %q, want it to start with %q", c.name, msg, c.want)
		}
	}
}

// A value of the wrong type is named by its key and what it must be, not by Go's struct field
// and type ("struct field config.Slave.Port of type int").
func TestTypeErrorsInTOMLWords(t *testing.T) {
	cases := []struct{ toml, want string }{
		{"pool = \"zpool\"\n[slave.x]\naddress = \"h\"\nport = \"22\"\n", "bad.toml:4: slave.x.port: must be an integer"},
		{"pool = 3\n", "bad.toml:1: pool: must be a string"},
		{"pool = \"z\"\n[slave.s]\naddress = \"h\"\nagent = \"yes\"\n", "bad.toml:4: slave.s.agent: must be true or false"},
		{"pool = \"z\"\n[vhost.v]\ndatasets = \"cfg\"\n", "bad.toml:3: vhost.v.datasets: must be a list of strings"},
		{"pool = \"z\"\nvhost = 3\n", "bad.toml:2: vhost: must be a table"},
	}
	for _, c := range cases {
		_, err := Parse("bad.toml", []byte(c.toml))
		if err == nil || err.Error() != c.want {
			t.Errorf("%q: got %v, want %s", c.toml, err, c.want)
		}
		if err != nil && (strings.Contains(err.Error(), "struct field") || strings.Contains(err.Error(), "config.")) {
			t.Errorf("%q: Go internals in %q", c.toml, err)
		}
	}
}

// Issue 8, finding 3: vhosts that overlap were accepted: a shared dataset, nested jail paths, a
// jail path inside the prototype's mountpoint (or the prototype inside a jail), a dataset inside
// another vhost's. Each is refused on one line naming both.
func TestOverlappingVhostsRefused(t *testing.T) {
	for _, c := range []struct{ name, toml, want string }{
		{"shared dataset", "[vhost.a]\n[vhost.b]\ndataset = \"zpool/a\"\n",
			`bad.toml:4: vhost.b.dataset: "zpool/a" is already vhost a's dataset`},
		{"nested paths", "[vhost.a]\npath = \"/jail/a\"\n[vhost.b]\npath = \"/jail/a/var/b\"\n",
			`bad.toml:5: vhost.b.path: "/jail/a/var/b" is inside vhost a's path "/jail/a"`},
		{"nested paths, outer second", "[vhost.a]\npath = \"/jail/b/var/a\"\n[vhost.b]\npath = \"/jail/b\"\n",
			`bad.toml:5: vhost.b.path: "/jail/b" contains vhost a's path "/jail/b/var/a"`},
		{"path under the prototype", "[vhost.a]\npath = \"/jail/proto/a\"\n",
			`bad.toml:3: vhost.a.path: "/jail/proto/a" is inside the prototype's mountpoint "/jail/proto" (proto.mountpoint)`},
		{"prototype under a path", "[proto]\nmountpoint = \"/jail/a/proto\"\n[vhost.a]\n",
			`bad.toml:4: vhost.a.path: "/jail/a" contains the prototype's mountpoint "/jail/a/proto" (proto.mountpoint)`},
		{"path is the prototype's", "[vhost.a]\npath = \"/jail/proto\"\n",
			`bad.toml:3: vhost.a.path: "/jail/proto" is the prototype's mountpoint`},
		{"path is /", "[vhost.a]\npath = \"/\"\n", `bad.toml:3: vhost.a.path: "/" contains the prototype's mountpoint`},
		{"dataset inside another's", "[vhost.a]\n[vhost.b]\ndataset = \"zpool/a/x\"\n",
			`bad.toml:4: vhost.b.dataset: "zpool/a/x" is inside vhost a's dataset "zpool/a"`},
		{"dataset containing another's", "[vhost.a]\ndataset = \"zpool/b/a\"\n[vhost.b]\n",
			`bad.toml:4: vhost.b.dataset: "zpool/b" contains vhost a's dataset "zpool/b/a"`},
		{"dataset is another's child", "[vhost.a]\n[vhost.b]\ndataset = \"zpool/a/cfg\"\n",
			`vhost.b.dataset: "zpool/a/cfg" is inside vhost a's dataset "zpool/a"`},
	} {
		msg := parseErr(t, c.name, "pool = \"zpool\"\n"+c.toml)
		if !strings.Contains(msg, c.want) {
			t.Errorf("%s: error %q, want %q", c.name, msg, c.want)
		}
	}
	// neighbours that only share a name prefix are fine
	if _, err := Parse("ok.toml", []byte("pool = \"zpool\"\n[vhost.a]\n[vhost.ab]\npath = \"/jail/ab\"\n[vhost.b]\ndataset = \"zpool/ab2\"\npath = \"/jail/proto2\"\n")); err != nil {
		t.Errorf("vhosts sharing only a name prefix: %v", err)
	}
}

// Syslog is on unless [log] says otherwise; two slaves whose names differ only in case would
// share one rollout:replicated property and are refused.
func TestLogAndSlaveCase(t *testing.T) {
	for _, c := range []struct {
		toml string
		want bool
	}{{"", true}, {"[log]\n", true}, {"[log]\nsyslog = true\n", true}, {"[log]\nsyslog = false\n", false}} {
		cfg, err := Parse("t.toml", []byte("pool = \"tank\"\n"+c.toml))
		if err != nil || cfg.Log.Syslog != c.want {
			t.Errorf("%q: syslog %v, %v; want %v", c.toml, cfg != nil && cfg.Log.Syslog, err, c.want)
		}
	}
	if msg := parseErr(t, "t.toml", "pool = \"tank\"\n[log]\nsyslog = \"no\"\n"); !strings.Contains(msg, "syslog") {
		t.Errorf("syslog = \"no\": %s", msg)
	}
	slave := "address = \"192.0.2.1\"\nidentity = \"/root/.ssh/id\"\n"
	msg := parseErr(t, "t.toml", "pool = \"tank\"\n[slave.Slave2]\n"+slave+"[slave.slave2]\n"+slave)
	if !strings.Contains(msg, `slave.slave2: differs from slave "Slave2" only in case`) {
		t.Errorf("slaves differing in case: %s", msg)
	}
}

// A quoted key with an escape is decoded into a copy of its bytes; finding its line from that
// copy panicked (found by FuzzParse). The error must still name the key's line.
func TestEscapedKeyLine(t *testing.T) {
	data := make([]byte, 0, 200) // capacity beyond the file's length, as os.ReadFile gives
	data = append(data, "pool = \"zpool\"\n[vhost.web.params]\n\"allow.\\u0072aw_sockets\" = \"$x\"\n"...)
	for _, d := range [][]byte{data, bytes.Clone(data)} {
		_, err := Parse("esc.toml", d)
		if err == nil || !strings.HasPrefix(err.Error(), "esc.toml:3: vhost.web.params.allow.raw_sockets:") {
			t.Errorf("Parse = %v, want an error on line 3 naming the parameter", err)
		}
	}
}

// send_flags defaults to auto and takes only auto, none or some of -c -L -e -w: the value ends
// up in zfs send's argv.
func TestReplicateSendFlags(t *testing.T) {
	for in, want := range map[string]string{"": "auto", "[replicate]\n": "auto", "[replicate]\nsend_flags = \"none\"\n": "none",
		"[replicate]\nsend_flags = \"-L -c\"\n": "-L -c", "[replicate]\nsend_flags = \"auto\"\n": "auto"} {
		c, err := Parse("t.toml", []byte("pool = \"tank\"\n"+in))
		if err != nil || c.Replicate.SendFlags != want {
			t.Errorf("%q: send_flags %q, %v; want %q", in, c.Replicate.SendFlags, err, want)
		}
	}
	for _, bad := range []string{"-c -R", "-c;id", "-c -c", "all", "-Lc", "--raw"} {
		msg := parseErr(t, "t.toml", "pool = \"tank\"\n[replicate]\nsend_flags = \""+bad+"\"\n")
		if !strings.Contains(msg, "bad.toml:3: replicate.send_flags: \""+bad+"\": must be") {
			t.Errorf("send_flags %q: %s", bad, msg)
		}
	}
}

// The indexed overlap check finds an overlap exactly when some pair of vhosts overlaps by the
// pairwise rule (within, or equal), over random configs of nested names.
func TestOverlapIndexMatchesPairwise(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	comp := []string{"a", "b", "ab"}
	name := func(root string) string {
		p := root
		for range 1 + rng.IntN(3) {
			p += "/" + comp[rng.IntN(len(comp))]
		}
		return p
	}
	for range 2000 {
		n := 2 + rng.IntN(4)
		vs := make([]*Vhost, n)
		for i := range vs {
			vs[i] = &Vhost{Name: fmt.Sprintf("v%d", i), Path: name(""), Dataset: name("zpool")}
		}
		pairwise := false
		for i := range vs {
			for j := range i {
				a, b := vs[i], vs[j]
				pairwise = pairwise || a.Path == b.Path || within(a.Path, b.Path) || within(b.Path, a.Path) ||
					a.Dataset == b.Dataset || within(a.Dataset, b.Dataset) || within(b.Dataset, a.Dataset)
			}
		}
		c := &Config{Proto: Proto{Mountpoint: "/proto"}}
		seen := newOverlapIndex()
		found := false
		for _, v := range vs {
			if c.checkOverlap("vhost."+v.Name, v, seen) != nil {
				found = true
				break
			}
			seen.add(v)
		}
		if found != pairwise {
			var desc []string
			for _, v := range vs {
				desc = append(desc, v.Path+" "+v.Dataset)
			}
			t.Fatalf("indexed %v, pairwise %v: %q", found, pairwise, desc)
		}
	}
}

// A vhost's try defaults to NAME-try beside it, with its own host name and no address; it keeps
// the vhost's programs and parameters but not those that name production's addresses.
func TestTryDefaults(t *testing.T) {
	c, err := Parse("t.toml", []byte(`pool = "tank"
[vhost.web]
hostname = "www.example.org"
ip4 = ["192.0.2.1"]
interface = "em0"
health = ["/bin/true"]
[vhost.web.params]
"allow.raw_sockets" = "1"
"ip4.saddrsel" = "0"
"host.hostuuid" = "x"
[vhost.db]
[vhost.db.try]
name = "dbtest"
hostname = "dbtest.example.org"
ip4 = ["192.0.2.9"]
`))
	if err != nil {
		t.Fatal(err)
	}
	w, err := c.Jail("web-try")
	if err != nil {
		t.Fatal(err)
	}
	if w.TryOf != "web" || w.Dataset != "tank/web-try" || w.Path != "/jail/web-try" || w.Hostname != "try.www.example.org" ||
		len(w.IP4) != 0 || w.Interface != "em0" || strings.Join(w.Health, " ") != "/bin/true" ||
		len(w.Params) != 1 || w.Params["allow.raw_sockets"] != "1" || strings.Join(w.Datasets, ",") != "cfg,var,home" {
		t.Errorf("web's try: %+v", w)
	}
	d := c.Tries["dbtest"]
	if d == nil || d.TryOf != "db" || d.Dataset != "tank/dbtest" || d.Hostname != "dbtest.example.org" || strings.Join(d.IP4, ",") != "192.0.2.9" {
		t.Errorf("db's try: %+v", d)
	}
	if _, err := c.Jail("nosuch"); err == nil {
		t.Error("an unknown jail was found")
	}
}

// A try name that collides with a vhost, another try, the prototype, or that is no jail name,
// is refused with its line.
func TestTryNameCollisions(t *testing.T) {
	for _, c := range []struct{ toml, want string }{
		{"[vhost.a]\n[vhost.b]\n[vhost.b.try]\nname = \"a\"\n", `t.toml:5: vhost.b.try.name: "a" is the name of vhost a`},
		{"[vhost.a]\n[vhost.a-try]\n", `vhost.a.try.name: "a-try" is the name of vhost a-try`},
		{"[vhost.a]\n[vhost.a.try]\nname = \"x\"\n[vhost.b]\n[vhost.b.try]\nname = \"x\"\n", `t.toml:7: vhost.b.try.name: "x" is already the try of vhost a`},
		{"[vhost.a]\n[vhost.a.try]\nname = \"proto\"\n", `t.toml:4: vhost.a.try.name: "proto" is the prototype's name`},
		{"[vhost.a]\n[vhost.a.try]\nname = \"a.b\"\n", `vhost.a.try.name: invalid try name "a.b"`},
		{"[vhost.a]\n[vhost.a.try]\nname = \"a;b\"\n", `t.toml:4: vhost.a.try.name: `},
		{"[vhost.a]\n[vhost.a.try]\nip4 = [\"300.1.1.1\"]\n", `t.toml:4: vhost.a.try.ip4: "300.1.1.1"`},
		{"[vhost.a]\n[vhost.a.try]\nhostname = \"$x\"\n", `t.toml:4: vhost.a.try.hostname`},
		{"[vhost.a]\n[vhost.a.try]\nname = \"b\"\n[vhost.b-x]\npath = \"/jail/b\"\n", `vhost.a.try.path: "/jail/b" is already used by b-x`},
	} {
		_, err := Parse("t.toml", []byte("pool = \"zpool\"\n"+c.toml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.toml, err, c.want)
		}
	}
}
