package config

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
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
