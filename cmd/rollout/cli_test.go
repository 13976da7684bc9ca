package main

// These tests run the CLI in-process, never needing zfs: a command line is refused before any
// zfs call, or the temporary config's pool does not exist (nor, on the machines this is
// developed on, /sbin/zfs), so that the command fails at its first zfs call.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rollout-dev/rollout/proto"
	"github.com/rollout-dev/rollout/proto/command"
	"github.com/rollout-dev/rollout/proto/zfs"
	"github.com/rollout-dev/rollout/rollout"
)

const testPool = "rollouttestnopool"

// testConfig writes a config whose pool does not exist; state_dir (the lock) is in the
// returned directory.
func testConfig(t *testing.T) (file, dir string) {
	t.Helper()
	dir = t.TempDir()
	file = filepath.Join(dir, "rollout.toml")
	cfg := fmt.Sprintf(`pool = %q
state_dir = %q
jail_root = %q
[vhost.vhost1]
[vhost.vhost2]
[slave.slave1]
address = "127.0.0.1"
port = 1
identity = %q
known_hosts = %q
`, testPool, filepath.Join(dir, "state"), filepath.Join(dir, "jail"), filepath.Join(dir, "id"), filepath.Join(dir, "known_hosts"))
	if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return file, dir
}

// run runs rollout with args in-process and returns its output and exit status.
func run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	err := newApp(&o, &e).RunContext(context.Background(), append([]string{"rollout"}, args...))
	code = exitCode(err, &e)
	return o.String(), e.String(), code
}

const noConfig = "/nonexistent/rollout.toml"

// Defect 1: -v printed the version and exited 0 without running the command.
func TestVerboseIsNotVersion(t *testing.T) {
	out, errOut, code := run(t, "-v", "replicate", "--all", "--config", noConfig)
	if code != 1 || strings.Contains(out, "version") || !strings.Contains(errOut, "config "+noConfig) {
		t.Errorf("-v replicate --all: exit %d, stdout %q, stderr %q; want the command run (and fail on the config)", code, out, errOut)
	}
	if out, _, code := run(t, "--version"); code != 0 || !strings.HasPrefix(out, "rollout version ") {
		t.Errorf("--version: exit %d, %q", code, out)
	}
	file, _ := testConfig(t)
	// verbose: a debug line for every command run, also after the subcommand
	for _, args := range [][]string{{"-v", "status"}, {"status", "--verbose"}} {
		_, errOut, code := run(t, append(args, "--config", file)...)
		if code != 1 || !strings.Contains(errOut, "level=DEBUG msg=exec") || !strings.Contains(errOut, "zfs") {
			t.Errorf("%v: exit %d, stderr %q; want a debug line per command", args, code, errOut)
		}
	}
	// quiet: only errors
	for _, args := range [][]string{{"-q", "status"}, {"status", "--quiet"}} {
		out, errOut, code := run(t, append(args, "--config", file)...)
		if code != 1 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, testPool) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want one error line", args, code, out, errOut)
		}
	}
	if _, errOut, code := run(t, "-v", "-q", "status", "--config", file); code != 2 {
		t.Errorf("-v -q: exit %d, %q", code, errOut)
	}
}

// Defect 2: flags after the arguments (and global flags anywhere) were refused or taken for
// arguments; "--" was taken for a vhost name.
func TestFlagsAfterArguments(t *testing.T) {
	file, _ := testConfig(t)
	for _, args := range [][]string{
		{"promote", "proto@2", "vhost1", "--dry-run"},
		{"promote", "proto@2", "vhost1", "-n", "--parallel", "2"},
		{"fstab", "vhost1", "--write"},
		{"rollback", "vhost1", "--to", "proto@1"},
		{"promote", "proto@2", "--", "vhost1"},
		{"status", "vhost1", "-v"},
		{"status", "vhost1", "--etc"},
		{"etc", "diff", "vhost1", "-q"},
	} {
		// --config last: a global flag after everything (but before "--", which ends the flags)
		argv := append(args, "--config", file)
		if args[2] == "--" {
			argv = append([]string{"--config", file}, args...)
		}
		_, errOut, code := run(t, argv...)
		// the command got as far as zfs (which fails: no such pool, or no zfs at all)
		if code != 1 || !strings.Contains(errOut, testPool) && !strings.Contains(errOut, "/sbin/mount") {
			t.Errorf("%v: exit %d, stderr %q; want it to reach zfs", args, code, errOut)
		}
		for _, f := range []string{`"--dry-run"`, `"--write"`, `"--to"`, `"--"`, "flag provided"} {
			if strings.Contains(errOut, f) {
				t.Errorf("%v: a flag was taken for an argument: %q", args, errOut)
			}
		}
	}
	out, errOut, code := run(t, "status", "--json", "--config", file)
	var rep map[string]any
	if code != 1 || json.Unmarshal([]byte(out), &rep) != nil || rep["command"] != "status" {
		t.Errorf("status --json: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// a word that looks like a flag but is none: a usage error naming it
	if _, errOut, code := run(t, "status", "vhost1", "--frob", "--config", file); code != 2 || !strings.Contains(errOut, "--frob") {
		t.Errorf("--frob: exit %d, %q", code, errOut)
	}
	// after --, a word that looks like a flag is an argument (and here an invalid vhost name)
	if _, errOut, code := run(t, "start", "--config", file, "--", "--dry-run"); code != 2 || !strings.Contains(errOut, `invalid vhost name "--dry-run"`) {
		t.Errorf("start -- --dry-run: exit %d, %q", code, errOut)
	}
}

func exitErr(t *testing.T, code int) error {
	t.Helper()
	err := exec.Command("sh", "-c", fmt.Sprintf("exit %d", code)).Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("sh -c exit %d: %v", code, err)
	}
	return err
}

// Defect 3: rollout's exit status was a failed child's (zfs exiting 2 made status exit 2,
// rollout's usage code; a failed mount made it exit 32).
func TestExitStatusIsNeverAChilds(t *testing.T) {
	for _, c := range []int{2, 3, 32} {
		ce := &command.Error{Host: "local", Argv: []string{"/sbin/zfs", "list"}, ExitCode: c, Err: exitErr(t, c)}
		for _, err := range []error{ce, fmt.Errorf("vhost v: %w", ce), exitErr(t, c)} {
			if got := exitCode(err, &bytes.Buffer{}); got != 1 {
				t.Errorf("child exiting %d (%v): rollout exits %d, want 1", c, err, got)
			}
		}
	}
}

// Defect 4: repair -n printed an empty plan and exited 0 when it could not read the state.
func TestRepairDryRunFailsWhenStateUnreadable(t *testing.T) {
	file, _ := testConfig(t)
	out, errOut, code := run(t, "--config", file, "repair", "-n")
	if code != 1 || strings.Contains(out, "plan:") || !strings.Contains(errOut, testPool) {
		t.Errorf("repair -n with zfs failing: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// Defect 5: usage errors were found only after the config loaded, with varying codes; the
// missing config said nothing of --config; replicate read known_hosts before it looked at
// its snapshot argument.
func TestUsageErrorsBeforeConfig(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"promote", "proto@2", "vhost1", "--parallel", "0"}, "--parallel 0"},
		{[]string{"rollback", "vhost1", "--parallel", "0"}, "--parallel 0"},
		{[]string{"prune", "--keep", "0"}, "--keep 0"},
		{[]string{"promote", "proto@a;b", "vhost1"}, `';'`},
		{[]string{"promote", "proto@" + strings.Repeat("a", 300), "vhost1"}, "300 characters"},
		{[]string{"rollback", "vhost1", "--to", "proto@x y"}, "--to"},
		{[]string{"promote", "proto@2", ""}, "promote: VHOST argument is empty"},
		{[]string{"promote", "proto@2"}, "promote: needs VHOST"},
		{[]string{"create", "vhost1"}, "create: needs proto@N"},
		{[]string{"replicate", "--to", "slave1", "--bwlimit", "fast"}, "--bwlimit"},
		{[]string{"replicate", "proto@1"}, "--to NAME or --all"},
		{[]string{"snapshot", "--name", "a b"}, "--name"},
		{[]string{"fstab", "vhost1", "proto@1", "--write"}, "takes no snapshot"},
		{[]string{"status", "--parallel", "2"}, "--parallel"},
		{[]string{"frob"}, `unknown command "frob"`},
		{[]string{"try", "vhost1"}, "try: needs VHOST (rollout try proto@N VHOST)"},
		{[]string{"try", "--end"}, "try: needs VHOST (rollout try VHOST)"},
		{[]string{"try", "--end", "vhost1", "proto@2"}, `try: unexpected argument "proto@2"`},
		{[]string{"try", "--keep", "--end", "vhost1"}, "--keep and --end exclude each other"},
		{[]string{"try", "proto@a;b", "vhost1"}, `';'`},
	} {
		_, errOut, code := run(t, append(c.args, "--config", noConfig)...)
		if code != 2 || !strings.Contains(errOut, c.want) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%q: exit %d, stderr %q; want exit 2 and %q", c.args, code, errOut, c.want)
		}
	}
	_, errOut, code := run(t, "status", "--config", noConfig)
	want := "rollout: config " + noConfig + ": no such file; copy /usr/local/share/examples/rollout/rollout.toml.sample there or name one with --config FILE\n"
	if code != 1 || errOut != want {
		t.Errorf("missing config: exit %d, %q\nwant %q", code, errOut, want)
	}
	// replicate's snapshot argument is checked before any slave (or its known_hosts) is looked at
	file, _ := testConfig(t)
	for _, ref := range []string{"proto@x;y", "other@3"} {
		_, errOut, code := run(t, "replicate", "--to", "slave1", ref, "--config", file)
		if code != 2 || strings.Contains(errOut, "known_hosts") || !strings.Contains(errOut, ref) {
			t.Errorf("replicate %s: exit %d, %q", ref, code, errOut)
		}
	}
}

// envelope is the one JSON shape of every command.
type envelope struct {
	Command string            `json:"command"`
	OK      bool              `json:"ok"`
	Exit    int               `json:"exit"`
	Error   string            `json:"error"`
	Results []json.RawMessage `json:"results"`
	Plan    json.RawMessage   `json:"plan"`
}

func decodeEnvelope(t *testing.T, args []string, out string) envelope {
	t.Helper()
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatalf("%q --json: %v: %q", args, err, out)
	}
	for k := range raw {
		switch k {
		case "command", "ok", "exit", "error", "results", "plan":
		default:
			t.Errorf("%q --json: unexpected key %q", args, k)
		}
	}
	if string(raw["results"]) == "null" || raw["results"] == nil {
		t.Errorf("%q --json: results %s, want a list", args, raw["results"])
	}
	var env envelope
	if err := json.Unmarshal([]byte(out), &env); err != nil {
		t.Fatalf("%q --json: %v", args, err)
	}
	return env
}

// Defect 6: --json was ignored by start, stop, fstab, etc save, snapshot...; each command had
// its own shape; errors never appeared in the JSON; guids were JSON numbers.
func TestJSONOneShapeWithErrors(t *testing.T) {
	file, _ := testConfig(t)
	for _, args := range [][]string{
		{"start", "vhost1"}, {"stop", "vhost1"}, {"fstab", "vhost1"}, {"fstab", "vhost1", "--write"},
		{"etc", "save", "vhost1"}, {"etc", "diff", "vhost1"}, {"etc", "init", "vhost1"}, {"etc", "cleanup", "vhost1"},
		{"snapshot"}, {"snapshots"}, {"status"}, {"repair"}, {"prune"}, {"prune", "-n"}, {"boot"}, {"shutdown"},
		{"create", "vhost1", "proto@1"}, {"promote", "proto@1", "vhost1"}, {"rollback", "vhost1"},
		{"promote", "proto@1", "vhost1", "-n"}, {"replicate", "--to", "slave1"}, {"replicate", "--all", "-n"},
		{"try", "proto@1", "vhost1"}, {"try", "proto@1", "vhost1", "-n"}, {"try", "--end", "vhost1"},
	} {
		out, errOut, code := run(t, append(append([]string{"--json"}, args...), "--config", file)...)
		env := decodeEnvelope(t, args, out)
		path := strings.Join(args[:1], "")
		if args[0] == "etc" {
			path = "etc " + args[1]
		}
		if code != 1 || env.Command != path || env.OK || env.Exit != 1 || env.Error == "" || !strings.Contains(errOut, env.Error) {
			t.Errorf("%q --json: exit %d, %+v, stderr %q", args, code, env, errOut)
		}
	}
	// usage and config errors are in the JSON too
	for _, c := range []struct {
		args []string
		exit int
	}{{[]string{"promote", "proto@1", "--config", file}, 2}, {[]string{"status", "--config", noConfig}, 1}, {[]string{"frob"}, 2}} {
		out, _, code := run(t, append([]string{"--json"}, c.args...)...)
		env := decodeEnvelope(t, c.args, out)
		if code != c.exit || env.Exit != c.exit || env.OK || env.Error == "" {
			t.Errorf("%q --json: exit %d, %+v", c.args, code, env)
		}
	}
	// guids as strings, as zfs list -j prints them
	b, err := json.Marshal(versionJSON(proto.Version{Snapshot: zfs.Snapshot{Dataset: "zpool/proto", Name: "1", GUID: 18446744073709551615}}))
	if err != nil || !strings.Contains(string(b), `"guid":"18446744073709551615"`) {
		t.Errorf("guid: %s %v", b, err)
	}
	// a plan has no null lists
	if b, _ := json.Marshal(&rollout.Plan{Op: "stop", Vhosts: []*rollout.VhostPlan{{Vhost: "v"}}}); strings.Contains(string(b), "null") {
		t.Errorf("plan JSON has null: %s", b)
	}
}

// Defect 7: snapshot, fstab --write and etc save had no --dry-run; a dry run takes no lock.
func TestDryRunEverywhere(t *testing.T) {
	file, dir := testConfig(t)
	for _, args := range [][]string{
		{"snapshot", "--dry-run"}, {"fstab", "vhost1", "--write", "--dry-run"}, {"etc", "save", "vhost1", "-n"},
		{"promote", "proto@2", "vhost1", "-n"}, {"start", "vhost1", "-n"}, {"stop", "vhost1", "-n"}, {"prune", "-n"},
		{"repair", "-n"}, {"create", "vhost1", "proto@1", "-n"}, {"rollback", "vhost1", "-n"},
		{"try", "proto@2", "vhost1", "-n"}, {"try", "--end", "vhost1", "-n"},
	} {
		_, errOut, code := run(t, append(args, "--config", file)...)
		if code != 1 || strings.Contains(errOut, "flag") {
			t.Errorf("%v: exit %d, %q; want it to reach zfs", args, code, errOut)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "state")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a dry run made the state directory (the lock): %v", err)
	}
}

// Defect 8: rollout help was unknown; subcommand help lacked the global flags; placeholders
// were "value"; booleans showed "(default: false)"; etc init said "init: needs VHOST".
func TestHelp(t *testing.T) {
	out, _, code := run(t, "help")
	if code != 0 || !strings.Contains(out, "COMMANDS:") || !strings.Contains(out, "promote") {
		t.Errorf("help: exit %d, %q", code, out)
	}
	for _, args := range [][]string{{"help", "promote"}, {"promote", "--help"}, {"help", "etc", "save"}, {"etc", "save", "-h"}} {
		out, _, code := run(t, args...)
		if code != 0 || !strings.Contains(out, "GLOBAL OPTIONS") || !strings.Contains(out, "--json") || !strings.Contains(out, "--config FILE") {
			t.Errorf("%v: exit %d, %q", args, code, out)
		}
	}
	if out, _, _ := run(t, "help", "etc", "save"); !strings.Contains(out, "rollout etc save") {
		t.Errorf("help etc save: %q", out)
	}
	for _, c := range append(commands(), etcCommand().Subcommands...) {
		out, _, code := run(t, "help", c.Name)
		if c.Name == "init" || c.Name == "cleanup" || c.Name == "diff" || c.Name == "save" || c.Name == "merge" {
			out, _, code = run(t, "help", "etc", c.Name)
		}
		if code != 0 || strings.Contains(out, "(default: false)") || strings.Contains(out, " value") {
			t.Errorf("help %s: exit %d:\n%s", c.Name, code, out)
		}
	}
	if out, _, _ := run(t, "help", "replicate"); !strings.Contains(out, "--bwlimit RATE") {
		t.Errorf("help replicate: %q", out)
	}
	if _, errOut, code := run(t, "etc", "init", "--config", noConfig); code != 2 || !strings.HasPrefix(errOut, "rollout: etc init: needs VHOST") {
		t.Errorf("etc init: exit %d, %q", code, errOut)
	}
	if _, errOut, code := run(t, "help", "frob"); code != 2 || !strings.Contains(errOut, "frob") {
		t.Errorf("help frob: exit %d, %q", code, errOut)
	}
}

// etc diff --against, etc merge and promote --strict: usage errors exit 2 before the config
// loads; otherwise the command gets as far as zfs (exit 1), in the JSON envelope too.
func TestEtcDriftCommands(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"etc", "merge", "vhost1"}, "etc merge: needs proto@N"},
		{[]string{"etc", "merge", "vhost1", "proto@a;b"}, `';'`},
		{[]string{"etc", "merge", "vhost1", "proto@2", "--resolved"}, "name the FILEs"},
		{[]string{"etc", "diff", "vhost1", "--against", "proto@x y"}, "--against"},
		{[]string{"promote", "proto@2", "vhost1", "--strict=maybe"}, "strict"},
	} {
		_, errOut, code := run(t, append(c.args, "--config", noConfig)...)
		if code != 2 || !strings.Contains(errOut, c.want) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%q: exit %d, stderr %q; want exit 2 and %q", c.args, code, errOut, c.want)
		}
	}
	file, dir := testConfig(t)
	for _, args := range [][]string{
		{"etc", "diff", "vhost1", "--against", "proto@2"}, {"etc", "merge", "vhost1", "proto@2"},
		{"etc", "merge", "-n", "vhost1", "proto@2", "ssh/sshd_config"}, {"etc", "merge", "vhost1", "proto@2", "ssh", "--resolved"},
		{"promote", "--strict", "proto@2", "vhost1"}, {"promote", "proto@2", "vhost1", "--strict", "-n"},
	} {
		out, errOut, code := run(t, append(append([]string{"--json"}, args...), "--config", file)...)
		env := decodeEnvelope(t, args, out)
		if code != 1 || env.Exit != 1 || env.OK || !strings.Contains(errOut, testPool) {
			t.Errorf("%q: exit %d, %+v, stderr %q; want it to reach zfs", args, code, env, errOut)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "state")); err != nil {
		t.Errorf("etc merge (not a dry run) took no lock: %v", err)
	}
}

// Issue 8, finding 1: snapshot, etc save and replicate took no lock, so they could run during
// a promote or a prune (which could destroy the snapshot being sent). Their dry runs take none.
func TestLockedCommandsRefuseWhileLockHeld(t *testing.T) {
	file, dir := testConfig(t)
	l, err := rollout.AcquireLock(filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	for _, args := range [][]string{{"snapshot"}, {"snapshot", "--name", "x"}, {"etc", "save", "vhost1"}, {"etc", "save", "vhost1", "hosts"},
		{"replicate", "--to", "slave1"}, {"replicate", "--all", "proto@1"}, {"promote", "proto@2", "vhost1"}} {
		_, errOut, code := run(t, append(args, "--config", file)...)
		if code != 1 || !strings.Contains(errOut, "another rollout is running") {
			t.Errorf("%q while the lock is held: exit %d, %q; want it refused", args, code, errOut)
		}
	}
	for _, args := range [][]string{{"snapshot", "-n"}, {"etc", "save", "vhost1", "-n"}, {"replicate", "--to", "slave1", "-n"}} {
		_, errOut, _ := run(t, append(args, "--config", file)...)
		if strings.Contains(errOut, "another rollout is running") {
			t.Errorf("%q: a dry run waited for the lock: %q", args, errOut)
		}
	}
}

// A try name that is a vhost's is refused when the config is read: one line naming the file and
// line, exit 1, before anything runs.
func TestTryCollisionRefusedAtLoad(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "rollout.toml")
	cfg := fmt.Sprintf("pool = %q\nstate_dir = %q\n[vhost.vhost1]\n[vhost.vhost2]\n[vhost.vhost2.try]\nname = \"vhost1\"\n", testPool, filepath.Join(dir, "state"))
	if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := run(t, "try", "proto@2", "vhost2", "--config", file)
	want := "rollout: " + file + `:6: vhost.vhost2.try.name: "vhost1" is the name of vhost vhost1` + "\n"
	if code != 1 || errOut != want {
		t.Errorf("exit %d, %q\nwant %q", code, errOut, want)
	}
}
