package config

import (
	"bytes"
	"errors"
	"os"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/rollout-dev/rollout/proto/zfs"
)

// FuzzParse runs the whole of Parse, decoding and every check, on arbitrary files. What it
// accepts must obey the rules the rest of rollout relies on without checking again; what it
// refuses must be refused with one line naming the file, the same line every time; and what
// it accepts must encode back to TOML that is accepted as the same configuration.
func FuzzParse(f *testing.F) {
	example, err := os.ReadFile("../../examples/rollout.toml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	f.Add([]byte("pool = \"tank\"\n[vhost.web]\n"))
	f.Add([]byte("pool = \"zpool\"\n[vhost.a]\n[vhost.b]\npath = \"/jail/a\"\n"))
	f.Add([]byte("pool = \"zpool\"\n[slave.s1]\naddress = \"h;x\"\nagent = true\n[slave.s2]\naddress = \"h\"\nport = 0\nagent = true\n"))
	f.Add([]byte("pool = \"zpool\"\n[timeouts]\nstop = \"10s\"\nterm = \"10s\"\n"))
	f.Add([]byte("pool = \"zpool\"\n[vhost.v]\nip4 = [\"em0|10.0.0.1/24\"]\n[vhost.v.params]\n\"allow.raw_sockets\" = \"1\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("f.toml", data)
		_, err2 := Parse("f.toml", data)
		if (err == nil) != (err2 == nil) || err != nil && err.Error() != err2.Error() {
			t.Fatalf("Parse is not deterministic: %v, then %v", err, err2)
		}
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) || ce.File != "f.toml" {
				t.Fatalf("error %q (%T) is not a config error naming the file", err, err)
			}
			if msg := err.Error(); strings.ContainsAny(msg, "\n\r") || !strings.HasPrefix(msg, "f.toml") {
				t.Fatalf("error %q is not one line beginning with the file", msg)
			}
			return
		}
		checkAccepted(t, c)

		// what was accepted encodes back to a file that gives the same configuration
		again, err := Parse("f.toml", encode(t, c))
		if err != nil {
			t.Fatalf("re-encoded configuration refused: %v\n%s", err, encode(t, c))
		}
		if a, b := encode(t, c), encode(t, again); !bytes.Equal(a, b) || c.Timeouts != again.Timeouts {
			t.Fatalf("round trip changed the configuration:\n%s\n%+v\nthen\n%s\n%+v", a, c.Timeouts, b, again.Timeouts)
		}
	})
}

// checkAccepted states the rules of rollout.toml(5) independently of check().
func checkAccepted(t *testing.T, c *Config) {
	t.Helper()
	cleanAbs := func(what, p string) {
		if !strings.HasPrefix(p, "/") || path.Clean(p) != p || strings.ContainsAny(p, " \t\n\r'\"`$;&|<>()*?[]\\#!~{}=,") {
			t.Fatalf("accepted %s %q: not an absolute clean path safe in fstab, jail.conf and sh", what, p)
		}
	}
	if zfs.ValidatePool(c.Pool) != nil || zfs.ValidateDataset(c.Proto.Dataset) != nil || !strings.HasPrefix(c.Proto.Dataset, c.Pool+"/") {
		t.Fatalf("accepted pool %q with prototype %q", c.Pool, c.Proto.Dataset)
	}
	if zfs.ValidateComponent("", c.Proto.EtcChild) != nil {
		t.Fatalf("accepted etc_child %q", c.Proto.EtcChild)
	}
	for what, p := range map[string]string{"jail_root": c.JailRoot, "state_dir": c.StateDir, "fstab_dir": c.FstabDir, "proto.mountpoint": c.Proto.Mountpoint} {
		cleanAbs(what, p)
	}
	if c.Etc.Backend != "md" && c.Etc.Backend != "tmpfs" {
		t.Fatalf("accepted etc backend %q", c.Etc.Backend)
	}
	paths := map[string]bool{c.Proto.Mountpoint: true}
	for name, v := range c.Vhosts {
		if v.Name != name || zfs.ValidateComponent("", name) != nil || strings.ContainsAny(name, ".:") {
			t.Fatalf("accepted vhost name %q (Name %q)", name, v.Name)
		}
		if zfs.ValidateDataset(v.Dataset) != nil || v.Dataset == c.Proto.Dataset ||
			strings.HasPrefix(v.Dataset, c.Proto.Dataset+"/") || strings.HasPrefix(c.Proto.Dataset, v.Dataset+"/") {
			t.Fatalf("accepted vhost %s dataset %q with prototype %q", name, v.Dataset, c.Proto.Dataset)
		}
		for _, d := range v.Datasets {
			if zfs.ValidateComponent("", d) != nil || d == "etc" || d == "dev" || d == "conf" {
				t.Fatalf("accepted vhost %s child dataset %q", name, d)
			}
		}
		// rctl rules go into jail.conf and an rctl(8) argv: lower-case words, '=', a number
		for res, rule := range v.Limits {
			if !regexp.MustCompile(`^[a-z]+$`).MatchString(res) || !regexp.MustCompile(`^[a-z0-9]+=[0-9]+[kmgtpeKMGTPE]?$`).MatchString(rule) {
				t.Fatalf("accepted vhost %s limit %q = %q", name, res, rule)
			}
		}
		for _, p := range v.Space() {
			if !slices.Contains(v.Datasets, strings.TrimPrefix(p.Dataset, v.Dataset+"/")) || strings.ContainsAny(p.Value, " \t\n=,'\"") {
				t.Fatalf("accepted vhost %s %s %q on %s", name, p.Prop, p.Value, p.Dataset)
			}
		}
		cleanAbs("vhost path", v.Path)
		if paths[v.Path] {
			t.Fatalf("accepted vhost %s path %q twice", name, v.Path)
		}
		paths[v.Path] = true
		for _, s := range append([]string{v.Hostname, v.ExecStart, v.ExecStop, v.Interface}, v.IP4...) {
			// jail.conf(5) reads '\' and '$' even inside double quotes
			if strings.ContainsAny(s, "\"\\$;") || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
				t.Fatalf("accepted jail.conf value %q for vhost %s", s, name)
			}
		}
	}
	for name, s := range c.Slaves {
		if s.Name != name || zfs.ValidateComponent("", name) != nil || s.Port < 1 || s.Port > 65535 ||
			s.Address == "" || strings.ContainsAny(s.Address, " \t\n/@;'\"`$[]") || zfs.ValidatePool(s.Pool) != nil {
			t.Fatalf("accepted slave %q: %+v", name, s)
		}
		if s.Identity == "" && !s.Agent {
			t.Fatalf("accepted slave %q without a way to authenticate", name)
		}
		cleanAbs("known_hosts", s.KnownHosts)
	}
	to := c.Timeouts
	if to.Start <= 0 || to.Stop <= 0 || to.Term <= 0 || to.Health <= 0 || to.Term >= to.Stop ||
		to.Start%time.Second != 0 || to.Term%time.Second != 0 {
		t.Fatalf("accepted timeouts %+v", to)
	}
}

// encode writes c as a rollout.toml, timeouts included.
func encode(t *testing.T, c *Config) []byte {
	t.Helper()
	str := func(d time.Duration) *string { s := d.String(); return &s }
	doc := document{Config: *c, Timeouts: rawTimeouts{
		Start: str(c.Timeouts.Start), Stop: str(c.Timeouts.Stop), Term: str(c.Timeouts.Term), Health: str(c.Timeouts.Health),
	}}
	b, err := toml.Marshal(doc)
	if err != nil {
		t.Fatalf("encode %+v: %v", c, err)
	}
	return b
}
