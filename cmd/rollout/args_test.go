package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/rollout-dev/rollout/rollout"
)

// Defect 2: arrange puts a command line in the order urfave/cli v2 parses.
func TestArrange(t *testing.T) {
	a := newApp(io.Discard, io.Discard)
	for _, c := range []struct{ in, want string }{
		{"promote proto@2 vhost1 --dry-run", "promote --dry-run -- proto@2 vhost1"},
		{"promote proto@2 vhost1 vhost2 --parallel 2 -n", "promote --parallel 2 -n -- proto@2 vhost1 vhost2"},
		{"promote --parallel=3 proto@2 vhost1", "promote --parallel=3 -- proto@2 vhost1"},
		{"status --json", "--json status"},
		{"status vhost1 --config /x.toml -v", "--config /x.toml -v status -- vhost1"},
		{"-c /x.toml status", "-c /x.toml status"},
		{"fstab vhost1 --write", "fstab --write -- vhost1"},
		{"rollback vhost1 --to proto@1", "rollback --to proto@1 -- vhost1"},
		{"promote proto@2 -- vhost1", "promote -- proto@2 vhost1"},
		{"promote proto@2 -- --dry-run", "promote -- proto@2 --dry-run"},
		{"etc save vhost1 rc.conf -n --json", "--json etc save -n -- vhost1 rc.conf"},
		{"-q replicate --to slave1 --bwlimit 5m proto@3", "-q replicate --to slave1 --bwlimit 5m -- proto@3"},
		{"replicate --all -nv", "-v replicate --all -n"},
		{"help", "--help"},
		{"help etc save", "etc save --help"},
		{"--version", "--version"},
		{"status --json=false", "--json=false status"},
	} {
		ar, err := arrange(a.App, append([]string{"rollout"}, strings.Fields(c.in)...))
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if got := strings.Join(ar.argv[1:], " "); got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.in, got, c.want)
		}
	}
	for _, c := range []struct{ in, want string }{
		{"status --frob", "status: unknown flag --frob"},
		{"--frob status", "unknown flag --frob"},
		{"promote proto@2 vhost1 --keep 3", "promote: unknown flag --keep"},
		{"frob", `unknown command "frob"`},
		{"etc frob vhost1", `etc: unknown command "frob"`},
		{"etc", "etc: needs a command: init, cleanup, diff, save"},
	} {
		_, err := arrange(a.App, append([]string{"rollout"}, strings.Fields(c.in)...))
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want a usage error with %q", c.in, err, c.want)
		}
	}
	ar, _ := arrange(a.App, strings.Fields("rollout status vhost1 --json"))
	if !ar.json || strings.Join(ar.path, " ") != "status" {
		t.Errorf("arranged %+v", ar)
	}
	ar, _ = arrange(a.App, strings.Fields("rollout etc diff vhost1 --json=false"))
	if ar.json || strings.Join(ar.path, " ") != "etc diff" {
		t.Errorf("arranged %+v", ar)
	}
}

// Defect 3: one exit-code contract; 3 when some of the work was done.
func TestExitCodes(t *testing.T) {
	fail := errors.New("vhost vhost2: start failed")
	for _, c := range []struct {
		err  error
		want int
	}{
		{nil, 0}, {fail, 1}, {usagef("promote: needs VHOST"), 2},
		{partly(fail, true), 3}, {partly(fail, false), 1}, {partly(nil, true), 0},
		{cli.Exit("x", 7), 1}, // no ExitCoder decides rollout's status
	} {
		if got := codeOf(c.err); got != c.want {
			t.Errorf("codeOf(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}

// Defect 7: a command that succeeds with nothing to do says so.
func TestNothingToDoSaysSo(t *testing.T) {
	var out bytes.Buffer
	e := &env{out: &out, msg: &out, rep: &report{}}
	set := flag.NewFlagSet("stop", flag.ContinueOnError)
	set.Bool("dry-run", false, "")
	c := cli.NewContext(cli.NewApp(), set, nil)
	c.Context = context.Background()
	m := &rollout.Manager{Out: &out}
	if err := e.runPlan(c, m, &rollout.Plan{Op: "shutdown", Independent: true}); err != nil || !strings.Contains(out.String(), "nothing to do") {
		t.Errorf("empty plan: %v, printed %q", err, out.String())
	}
}

// Defect 5: arguments are checked by their ArgsUsage before the config loads.
func TestParseArgsUsage(t *testing.T) {
	got := parseArgsUsage("proto@N VHOST [VHOST...]")
	want := []argSpec{{name: "proto@N"}, {name: "VHOST"}, {name: "VHOST", optional: true, repeat: true}}
	if len(got) != len(want) {
		t.Fatalf("%+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%d: %+v, want %+v", i, got[i], want[i])
		}
	}
	for _, ok := range []string{"3", "proto@3", "zpool/proto@3", "proto@pre_upgrade.1"} {
		if err := checkSnapshotArg(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"proto@", "@3", "proto@3;reboot", "proto@a/b", "-x", "proto@" + strings.Repeat("9", 300), "zpool/../x@1"} {
		if checkSnapshotArg(bad) == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}
