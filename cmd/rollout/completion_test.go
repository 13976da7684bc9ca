package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/rollout-dev/rollout/proto/command"
)

// completionApp is the app as main builds it, with the completion command even before it is
// registered in commands(), so that the completion code is tested on its own.
func completionApp(stdout, stderr *bytes.Buffer) *app {
	a := newApp(stdout, stderr)
	if findCommand(a.Commands, "completion") == nil {
		a.Commands = append(a.Commands, completionCommand())
	}
	return a
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// runCompletionApp runs rollout in process: stdout, stderr, exit status.
func runCompletionApp(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	err := completionApp(&out, &errb).RunContext(context.Background(), append([]string{"rollout"}, args...))
	code := exitCode(err, &errb)
	return out.String(), errb.String(), code
}

func TestCompletionRegistered(t *testing.T) {
	var out, errb bytes.Buffer
	if findCommand(newApp(&out, &errb).Commands, "completion") == nil {
		t.Fatal("`rollout completion` is not in commands(): add completionCommand() to its list")
	}
}

const completionTestConfig = `pool = "zpool"
[vhost.vhost1]
[vhost.vhost2]
[vhost.web3]
[slave.slave2]
address = "slave2.example.org"
identity = "/root/.ssh/id_ed25519"
[slave.sxb]
address = "sxb.example.org"
agent = true
`

func writeCompletionConfig(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "rollout.toml")
	if err := os.WriteFile(p, []byte(completionTestConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// visibleCommandPaths lists "promote", "etc", "etc save", ... with each command's flags.
func visibleCommandPaths(cmds []*cli.Command, prefix string, fn func(path string, c *cli.Command)) {
	for _, c := range cmds {
		if c.Hidden || c.Name == "help" && prefix != "" {
			continue
		}
		p := strings.TrimSpace(prefix + " " + c.Name)
		fn(p, c)
		visibleCommandPaths(c.Subcommands, p, fn)
	}
}

// The scripts are generated from the app: every command, subcommand and flag is in them.
func TestCompletionScriptsNameEveryCommandAndFlag(t *testing.T) {
	var o, e bytes.Buffer
	app := completionApp(&o, &e)
	for _, shell := range []string{"bash", "zsh"} {
		script, stderr, code := runCompletionApp(t, "completion", shell)
		if code != 0 || stderr != "" {
			t.Fatalf("completion %s: exit %d, stderr %q", shell, code, stderr)
		}
		specs := script[strings.Index(script, "_rollout_spec()"):]
		visibleCommandPaths(app.Commands, "", func(path string, c *cli.Command) {
			if !strings.Contains(specs, "\t'"+path+"')\n") {
				t.Errorf("%s script: no case for command %q", shell, path)
			}
			last := path[strings.LastIndex(path, " ")+1:]
			if !regexpWord(specs, last) {
				t.Errorf("%s script: command %q not offered", shell, last)
			}
			for _, f := range c.Flags {
				for _, n := range f.Names() {
					dash := "--"
					if len(n) == 1 {
						dash = "-"
					}
					if !strings.Contains(specs, dash+n) {
						t.Errorf("%s script: %s's flag %s%s missing", shell, path, dash, n)
					}
				}
			}
		})
		for _, f := range app.Flags {
			if !strings.Contains(specs, "--"+f.Names()[0]) {
				t.Errorf("%s script: global flag --%s missing", shell, f.Names()[0])
			}
		}
		if strings.Contains(script, "__complete'") || strings.Contains(specs, "'completion')\n\t\t_rollout_subs='bash zsh __complete") {
			t.Errorf("%s script offers the hidden __complete", shell)
		}
		sh := shell
		if _, err := exec.LookPath(sh); err != nil {
			continue
		}
		cmd := exec.Command(sh, "-n")
		cmd.Stdin = strings.NewReader(script)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s -n: %v\n%s", sh, err, out)
		}
	}
	if _, stderr, code := runCompletionApp(t, "completion", "fish"); code != 2 || stderr == "" {
		t.Errorf("completion fish: exit %d, stderr %q; want a usage error (2)", code, stderr)
	}
}

func regexpWord(s, w string) bool {
	for _, sep := range []string{"'" + w + " ", " " + w + " ", " " + w + "'", "'" + w + "'", "'" + w + ":"} {
		if strings.Contains(s, sep) {
			return true
		}
	}
	return false
}

func TestArgKinds(t *testing.T) {
	for in, want := range map[string][]string{
		"proto@N VHOST [VHOST...]": {"snapshot", "vhost", "vhost..."},
		"VHOST [proto@N]":          {"vhost", "snapshot"},
		"VHOST [FILE...]":          {"vhost", "file..."},
		"[VHOST...]":               {"vhost..."},
		"[proto@N]":                {"snapshot"},
		" ":                        nil,
	} {
		if got := argKinds(in); !reflect.DeepEqual(got, want) {
			t.Errorf("argKinds(%q) = %q, want %q", in, got, want)
		}
	}
}

type fakeZFS struct {
	argv []string
	out  string
	err  error
}

func (f *fakeZFS) Host() string { return "local" }
func (f *fakeZFS) Run(_ context.Context, c command.Cmd) error {
	f.argv = c.Argv
	if c.Stdout != nil {
		_, _ = c.Stdout.Write([]byte(f.out))
	}
	return f.err
}

func TestCompleteWords(t *testing.T) {
	cfg := writeCompletionConfig(t)
	fake := &fakeZFS{out: "zpool/proto@1\nzpool/proto@2\nzpool/proto@pre-14.2\n"}
	defer func(r command.Runner) { completionRunner = r }(completionRunner)
	completionRunner = fake

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--config", cfg, "completion", "__complete", "vhosts"}, "vhost1\nvhost2\nweb3\n"},
		{[]string{"-c", cfg, "completion", "__complete", "slaves"}, "slave2\nsxb\n"},
		{[]string{"--config", cfg, "completion", "__complete", "snapshots"}, "proto@1\nproto@2\nproto@pre-14.2\n"},
		{[]string{"--config", cfg, "completion", "__complete", "nonsense"}, ""},
		{[]string{"--config", cfg, "completion", "__complete"}, ""},
		{[]string{"--config", filepath.Join(t.TempDir(), "missing.toml"), "completion", "__complete", "vhosts"}, ""},
	} {
		out, stderr, code := runCompletionApp(t, tc.args...)
		if out != tc.want || stderr != "" || code != 0 {
			t.Errorf("rollout %q: stdout %q stderr %q exit %d; want %q, nothing, 0", tc.args, out, stderr, code, tc.want)
		}
	}
	want := []string{"/sbin/zfs", "list", "-H", "-o", "name", "-t", "snapshot", "-d", "1", "zpool/proto"}
	if !slices.Equal(fake.argv, want) {
		t.Errorf("zfs argv %q, want %q", fake.argv, want)
	}

	t.Setenv("ROLLOUT_CONFIG", cfg)
	if out, _, _ := runCompletionApp(t, "completion", "__complete", "vhosts"); out != "vhost1\nvhost2\nweb3\n" {
		t.Errorf("ROLLOUT_CONFIG: vhosts %q", out)
	}

	// zfs failing, a broken config: nothing, exit 0, no error for the shell to show
	fake.err = errors.New("zfs: pool I/O is currently suspended")
	if out, stderr, code := runCompletionApp(t, "completion", "__complete", "snapshots"); out != "" || stderr != "" || code != 0 {
		t.Errorf("zfs failing: stdout %q stderr %q exit %d", out, stderr, code)
	}
	bad := filepath.Join(t.TempDir(), "bad.toml")
	if err := os.WriteFile(bad, []byte("pool = \nnonsense"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, stderr, code := runCompletionApp(t, "-c", bad, "completion", "__complete", "vhosts"); out != "" || stderr != "" || code != 0 {
		t.Errorf("broken config: stdout %q stderr %q exit %d", out, stderr, code)
	}
}

// buildRollout builds this package into a temporary directory as `rollout`.
func buildRollout(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go") // go test puts GOROOT/bin first in PATH
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out, err := exec.Command(goBin, "build", "-o", filepath.Join(dir, "rollout"), ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if out, err := exec.Command(filepath.Join(dir, "rollout"), "completion", "bash").CombinedOutput(); err != nil {
		t.Fatalf("the built rollout has no completion command (add completionCommand() to commands()): %v\n%s", err, out)
	}
	return dir
}

func shellWords(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = shq(w)
	}
	return strings.Join(q, " ")
}

// Runs the real scripts in the real shells against a built rollout, as a user's TAB would.
func TestShellCompletion(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	dir := buildRollout(t)
	cfg := writeCompletionConfig(t)
	missing := filepath.Join(t.TempDir(), "missing.toml")
	etcDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(etcDir, "rc.conf"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"), "ROLLOUT_CONFIG="+missing)

	cases := []struct {
		words []string // the last is the word being completed
		env   string   // extra environment
		want  []string // exactly, in bash (zsh: contained)
		zsh   []string // for zsh, when it differs
	}{
		{words: []string{"rollout", "pr"}, want: []string{"promote", "prune"}},
		{words: []string{"rollout", "pro"}, want: []string{"promote"}},
		{words: []string{"rollout", "-v", "--config=" + cfg, "re"}, want: []string{"repair", "replicate"}},
		{words: []string{"rollout", "--config", cfg, "promote", "proto@2", "v"}, want: []string{"vhost1", "vhost2"}},
		{words: []string{"rollout", "promote", "-n", "proto@2", "vhost1", "w"}, env: "ROLLOUT_CONFIG=" + cfg, want: []string{"web3"}},
		{words: []string{"rollout", "promote", "proto@2", ""}, want: nil}, // no config: nothing, and no error
		{words: []string{"rollout", "-c", cfg, "create", ""}, want: []string{"vhost1", "vhost2", "web3"}},
		{words: []string{"rollout", "-c", cfg, "replicate", "--to", "s"}, want: []string{"slave2", "sxb"}},
		{words: []string{"rollout", "-c", cfg, "replicate", "--to", "slave2", "--to", "sx"}, want: []string{"sxb"}},
		{words: []string{"rollout", "-c", cfg, "etc", "save", ""}, want: []string{"vhost1", "vhost2", "web3"}},
		{words: []string{"rollout", "-c", cfg, "fstab", "vhost1", ""}, want: nil}, // snapshots: no zfs here
		{words: []string{"rollout", "etc", ""}, want: []string{"cleanup", "diff", "init", "merge", "save"}},
		{words: []string{"rollout", "completion", ""}, want: []string{"bash", "zsh"}},
		{words: []string{"rollout", "promote", "--dry"}, want: []string{"--dry-run"}},
		{words: []string{"rollout", "status", "--js"}, want: []string{"--json"}},
		{words: []string{"rollout", "snapshots", ""}, want: nil},
		{words: []string{"rollout", "--config", "=", cfg, "create", ""}, want: []string{"vhost1", "vhost2", "web3"}}, // bash splits at '='
		{words: []string{"rollout", "-c", cfg, "rollback", "--to", ""}, want: nil},                                   // snapshots: no zfs here
		{words: []string{"rollout", "-c", cfg, "etc", "save", "vhost1", etcDir + "/rc"}, want: []string{etcDir + "/rc.conf"}, zsh: []string{"FILES"}},
		{words: []string{"rollout", "-c", etcDir + "/rc"}, want: []string{etcDir + "/rc.conf"}, zsh: []string{"FILES"}},
	}

	t.Run("bash", func(t *testing.T) {
		for _, tc := range cases {
			script := `source <(rollout completion bash) || exit 1
COMP_WORDS=(` + shellWords(tc.words) + `); COMP_CWORD=` + strconv.Itoa(len(tc.words)-1) + `
_rollout
printf '%s\n' "${COMPREPLY[@]}"`
			cmd := exec.Command("bash", "--norc", "--noprofile", "-c", script)
			cmd.Env = env
			if tc.env != "" {
				cmd.Env = append(cmd.Env, tc.env)
			}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil || stderr.Len() > 0 {
				t.Errorf("%q: %v, stderr %q", tc.words, err, stderr.String())
				continue
			}
			got := strings.Fields(string(out))
			slices.Sort(got)
			if !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
				t.Errorf("%q: completes to %q, want %q", tc.words, got, tc.want)
			}
		}
	})

	t.Run("zsh", func(t *testing.T) {
		if _, err := exec.LookPath("zsh"); err != nil {
			t.Skip("no zsh")
		}
		// compadd, _describe and _files only work inside a completion widget: stand-ins that
		// print what would be offered (unfiltered: compadd matches the prefix itself)
		const stubs = `compadd() { [[ $1 == -a ]] && print -rl -- ${(P)2} }
_describe() { local -a a; a=(${(P)4}); print -rl -- ${a%%:*} }
_files() { print -r -- FILES }
compset() { : }
`
		for _, tc := range cases {
			words := zshWords(tc.words)
			script := stubs + `source <(rollout completion zsh) || exit 1
words=(` + shellWords(words) + `); CURRENT=` + strconv.Itoa(len(words)) + `
_rollout`
			cmd := exec.Command("zsh", "-f", "-c", script)
			cmd.Env = env
			if tc.env != "" {
				cmd.Env = append(cmd.Env, tc.env)
			}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if stderr.Len() > 0 {
				t.Errorf("%q: stderr %q", tc.words, stderr.String())
				continue
			}
			_ = err // _rollout returns 1 when there is nothing to offer
			got := strings.Fields(string(out))
			want := tc.want
			if tc.zsh != nil {
				want = tc.zsh
			}
			for _, w := range want {
				if !slices.Contains(got, w) {
					t.Errorf("%q: offers %q, which lacks %q", tc.words, got, w)
				}
			}
			if len(want) == 0 && len(got) > 0 && !strings.HasPrefix(tc.words[len(tc.words)-1], "-") {
				t.Errorf("%q: offers %q, want nothing", tc.words, got)
			}
		}
	})
}

// zshWords joins what bash splits at '=' (COMP_WORDBREAKS): zsh keeps --config=FILE one word.
func zshWords(words []string) []string {
	var out []string
	for i := 0; i < len(words); i++ {
		if words[i] == "=" && len(out) > 0 && i+1 < len(words) {
			out[len(out)-1] += "=" + words[i+1]
			i++
			continue
		}
		out = append(out, words[i])
	}
	return out
}
