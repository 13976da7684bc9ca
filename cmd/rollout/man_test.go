package main

import (
	"bytes"
	"os"
	"os/exec"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/rollout-dev/rollout/rollout/config"
)

// rollout(8) documents every command and every flag the app has, so that a new one cannot
// ship without its man page.
func TestManPageCoversEveryCommandAndFlag(t *testing.T) {
	b, err := os.ReadFile("man/rollout.8")
	if err != nil {
		t.Fatal(err)
	}
	man := string(b)
	var o, e bytes.Buffer
	a := completionApp(&o, &e)
	flagDoc := func(where string, f cli.Flag) {
		if vf, ok := f.(cli.VisibleFlag); ok && !vf.IsVisible() {
			return
		}
		for _, n := range f.Names() {
			mdoc := "Fl " + n // -n
			if len(n) > 1 {
				mdoc = "Fl -" + n // --dry-run
			}
			if !regexp.MustCompile(`(^|[\s.])` + regexp.QuoteMeta(mdoc) + `(\s|$)`).MatchString(man) {
				t.Errorf("rollout.8 does not document %s's flag %q (as .%s)", where, n, mdoc)
			}
		}
	}
	for _, f := range a.Flags {
		flagDoc("rollout", f)
	}
	visibleCommandPaths(a.Commands, "", func(path string, c *cli.Command) {
		// the synopsis and the command list both name it: .Cm promote, .Cm etc save
		re := regexp.MustCompile(`(?m)^\.(It )?(Nm )?Cm ` + regexp.QuoteMeta(path) + `(\s|$)`)
		leaf := regexp.MustCompile(`\sCm ` + regexp.QuoteMeta(c.Name) + `\s`) // .Cm completion Cm bash | zsh
		if len(re.FindAllString(man, -1)) < 2 && path != "etc" && !(strings.Contains(path, " ") && leaf.MatchString(man)) {
			t.Errorf("rollout.8 does not list command %q in SYNOPSIS and DESCRIPTION", path)
		}
		for _, f := range c.Flags {
			flagDoc(path, f)
		}
	})
}

// rollout.toml(5) documents every key the configuration reads.
func TestManPageCoversEveryConfigKey(t *testing.T) {
	b, err := os.ReadFile("man/rollout.toml.5")
	if err != nil {
		t.Fatal(err)
	}
	man := string(b)
	keys := func(v any) []string {
		var out []string
		rt := reflect.TypeOf(v)
		for i := range rt.NumField() {
			if k := strings.Split(rt.Field(i).Tag.Get("toml"), ",")[0]; k != "" && k != "-" {
				out = append(out, k)
			}
		}
		return out
	}
	sections := map[string][]string{
		"Top-level keys":    keys(config.Config{}),
		"Table [proto]":     keys(config.Proto{}),
		"Table [etc]":       keys(config.Etc{}),
		"Table [timeouts]":  {"start", "stop", "term", "health"}, // a table of strings; see config.rawTimeouts
		"Table [log]":       keys(config.Log{}),
		"Table [replicate]": keys(config.Replicate{}),
		"Tables [vhost.":    keys(config.Vhost{}),
		"Tables [slave.":    keys(config.Slave{}),
	}
	for sec, ks := range sections {
		i := strings.Index(man, ".Ss "+sec)
		if i < 0 {
			t.Errorf("rollout.toml.5: no section %q", sec)
			continue
		}
		body := man[i+4:]
		if j := strings.Index(body, "\n.Ss "); j >= 0 {
			body = body[:j]
		}
		if j := strings.Index(body, "\n.Sh "); j >= 0 {
			body = body[:j]
		}
		for _, k := range ks {
			if sec == "Top-level keys" && (k == "proto" || k == "etc" || k == "log" || k == "replicate" || k == "vhost" || k == "slave") {
				continue // the tables
			}
			if !regexp.MustCompile(`(?m)^\.It Cm ` + regexp.QuoteMeta(k) + `(\s|$)`).MatchString(body) {
				t.Errorf("rollout.toml.5, %s: key %q is not documented (as .It Cm %s)", sec, k, k)
			}
		}
	}
}

// mandoc, when installed, finds nothing to warn about (make man-lint is the gate).
func TestManPagesLint(t *testing.T) {
	if _, err := exec.LookPath("mandoc"); err != nil {
		t.Skip("no mandoc (Debian package mandoc)")
	}
	out, err := exec.Command("mandoc", "-T", "lint", "-W", "warning", "man/rollout.8", "man/rollout.toml.5").CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("mandoc -T lint -W warning: %v\n%s", err, out)
	}
}

// The example configuration that rollout's missing-config error names is one the port and make
// install install.
func TestExampleConfigIsInstalled(t *testing.T) {
	b, err := os.ReadFile("../../examples/port/sysutils/rollout/pkg-plist")
	if err != nil {
		t.Fatal(err)
	}
	r := strings.NewReplacer("@sample ", "", "%%PORTEXAMPLES%%", "", "%%EXAMPLESDIR%%", "share/examples/rollout")
	for _, line := range strings.Split(string(b), "\n") {
		if "/usr/local/"+r.Replace(strings.TrimSpace(line)) == exampleConfig {
			return
		}
	}
	t.Errorf("the error for a missing config names %s, which pkg-plist (and make install) does not install", exampleConfig)
}
