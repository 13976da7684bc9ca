package main

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rollout-dev/rollout/proto/command"
	"github.com/rollout-dev/rollout/rollout/config"
)

// The completion scripts are static, but for one function, _rollout_spec, that rollout
// generates from its own command tree when it prints them: the commands, subcommands, flags
// and arguments of whatever this binary is, so the scripts cannot drift from the CLI. What
// depends on the host (vhosts, snapshots, slaves) each script asks of `rollout completion
// __complete KIND` at the moment the user presses TAB.
var (
	//go:embed completion/rollout.bash
	bashCompletion string
	//go:embed completion/_rollout.zsh
	zshCompletion string
)

const specMarker = "#@SPEC@\n"

// completionZFS and completionRunner are what `completion __complete snapshots` runs; tests
// replace them.
var (
	completionZFS                   = "/sbin/zfs"
	completionRunner command.Runner = command.Local{Logger: slog.New(slog.DiscardHandler)}
	// completionTimeout bounds the zfs list a TAB waits for.
	completionTimeout = 5 * time.Second
)

// completionCommand is `rollout completion bash|zsh` and the hidden `rollout completion
// __complete vhosts|snapshots|slaves` that the scripts call.
func completionCommand() *cli.Command {
	script := func(shell, tmpl string) *cli.Command {
		return &cli.Command{
			Name:      shell,
			Usage:     "print the " + shell + " completion script",
			ArgsUsage: " ",
			Action: func(c *cli.Context) error {
				if c.NArg() > 0 {
					return usagef("completion %s: unexpected argument %q", shell, c.Args().First())
				}
				s, err := completionScript(c.App, shell, tmpl)
				if err != nil {
					return err
				}
				_, err = io.WriteString(c.App.Writer, s)
				return err
			},
		}
	}
	return &cli.Command{
		Name:  "completion",
		Usage: "print a shell completion script: rollout completion bash|zsh",
		Description: "bash: source <(rollout completion bash), or install it as\n" +
			"/usr/local/share/bash-completion/completions/rollout.\n" +
			"zsh: install it as _rollout in a directory of $fpath (/usr/local/share/zsh/site-functions).",
		ArgsUsage: "bash|zsh",
		Subcommands: []*cli.Command{
			script("bash", bashCompletion),
			script("zsh", zshCompletion),
			{
				Name:      "__complete",
				Hidden:    true,
				Usage:     "print the configuration's vhosts, snapshots or slaves, one a line, for the completion scripts",
				ArgsUsage: "vhosts|snapshots|slaves",
				// A shell's TAB must never show an error: no config, a broken config, zfs
				// failing or an unknown word all print nothing and exit 0.
				Action: func(c *cli.Context) error {
					for _, w := range completionWords(c.Context, c.String("config"), c.Args().First()) {
						fmt.Fprintln(c.App.Writer, w)
					}
					return nil
				},
			},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return usagef("completion: needs bash or zsh")
			}
			return usagef("completion: unknown shell %q: bash or zsh", c.Args().First())
		},
	}
}

// completionWords returns the vhosts, snapshots (proto@N) or slaves of the configuration
// file, or nothing at all when it cannot.
func completionWords(ctx context.Context, file, kind string) []string {
	if file == "" {
		file = config.DefaultPath
	}
	cfg, err := config.Load(file)
	if err != nil {
		return nil
	}
	switch kind {
	case "vhosts":
		return cfg.VhostNames()
	case "slaves":
		n := make([]string, 0, len(cfg.Slaves))
		for k := range cfg.Slaves {
			n = append(n, k)
		}
		sort.Strings(n)
		return n
	case "snapshots":
		if ctx == nil {
			ctx = context.Background()
		}
		ctx, cancel := context.WithTimeout(ctx, completionTimeout)
		defer cancel()
		ds := cfg.Proto.Dataset
		out, err := command.Output(ctx, completionRunner, completionZFS, "list", "-H", "-o", "name", "-t", "snapshot", "-d", "1", ds)
		if err != nil {
			return nil
		}
		// zpool/proto@3 -> proto@3, as the commands take them
		base := ds[strings.LastIndex(ds, "/")+1:]
		var snaps []string
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			d, name, ok := strings.Cut(strings.TrimSpace(sc.Text()), "@")
			if ok && d == ds && name != "" {
				snaps = append(snaps, base+"@"+name)
			}
		}
		return snaps
	}
	return nil
}

// completionScript is tmpl with its _rollout_spec generated from app's command tree.
func completionScript(app *cli.App, shell, tmpl string) (string, error) {
	before, after, ok := strings.Cut(tmpl, specMarker)
	if !ok {
		return "", fmt.Errorf("completion %s: template has no %q line", shell, strings.TrimSpace(specMarker))
	}
	var b strings.Builder
	b.WriteString(before)
	writeSpec(&b, app, shell == "zsh")
	b.WriteString(after)
	return b.String(), nil
}

// cmdSpec is what a completion script knows of one command (the root is path "").
type cmdSpec struct {
	path  string
	subs  []*cli.Command
	flags []flagSpec
	args  []string // argument kinds: vhost, snapshot, slave, file, none; "..." suffix repeats
}

type flagSpec struct {
	names []string // --dry-run, -n
	kind  string   // "" for a boolean; else what its value is: config, file, vhost, snapshot, slave, none
	usage string
}

// completionSpecs walks the app's visible commands, depth first.
func completionSpecs(app *cli.App) []cmdSpec {
	var specs []cmdSpec
	var walk func(path string, subs []*cli.Command, flags []cli.Flag, argsUsage string)
	walk = func(path string, subs []*cli.Command, flags []cli.Flag, argsUsage string) {
		s := cmdSpec{path: path, flags: flagSpecs(path, flags), args: argKinds(argsUsage)}
		for _, c := range subs {
			// urfave/cli's help command: only rollout's own (rollout help [COMMAND])
			if !c.Hidden && (c.Name != "help" || path == "") {
				s.subs = append(s.subs, c)
			}
		}
		specs = append(specs, s)
		for _, c := range s.subs {
			p := c.Name
			if path != "" {
				p = path + " " + c.Name
			}
			walk(p, c.Subcommands, c.Flags, c.ArgsUsage)
		}
	}
	walk("", app.Commands, app.Flags, "")
	return specs
}

func flagSpecs(path string, flags []cli.Flag) []flagSpec {
	var out []flagSpec
	help := false
	for _, f := range flags {
		if vf, ok := f.(cli.VisibleFlag); ok && !vf.IsVisible() {
			continue
		}
		fs := flagSpec{}
		for _, n := range f.Names() {
			if n == "help" {
				help = true
			}
			if len(n) == 1 {
				fs.names = append(fs.names, "-"+n)
			} else {
				fs.names = append(fs.names, "--"+n)
			}
		}
		if df, ok := f.(cli.DocGenerationFlag); ok {
			placeholder, usage := unquoteUsage(df.GetUsage())
			fs.usage = usage
			if df.TakesValue() {
				fs.kind = valueKind(f.Names()[0], placeholder, usage)
			}
		}
		out = append(out, fs)
	}
	if !help {
		out = append(out, flagSpec{names: []string{"--help", "-h"}, usage: "show help"})
	}
	return out
}

// valueKind says what a flag's value is, from its name and its usage's `PLACEHOLDER`.
func valueKind(name, placeholder, usage string) string {
	switch {
	case name == "config":
		return "config"
	case strings.Contains(placeholder, "proto@") || strings.Contains(placeholder, "SNAPSHOT"):
		return "snapshot"
	case strings.Contains(placeholder, "VHOST"):
		return "vhost"
	case strings.Contains(placeholder, "SLAVE") || strings.Contains(strings.ToLower(usage), "slave") && placeholder == "NAME":
		return "slave"
	case strings.Contains(placeholder, "FILE") || strings.Contains(placeholder, "DIR"):
		return "file"
	}
	return "none"
}

// argKinds reads a command's ArgsUsage ("proto@N VHOST [VHOST...]") as argument kinds.
func argKinds(argsUsage string) []string {
	var kinds []string
	for _, w := range strings.Fields(argsUsage) {
		w = strings.Trim(w, "[]")
		rep := ""
		if strings.HasSuffix(w, "...") {
			rep = "..."
			w = strings.TrimSuffix(w, "...")
		}
		k := "none"
		switch {
		case strings.Contains(w, "VHOST"):
			k = "vhost"
		case strings.Contains(w, "proto@") || strings.Contains(w, "SNAPSHOT"):
			k = "snapshot"
		case strings.Contains(w, "SLAVE"):
			k = "slave"
		case strings.Contains(w, "FILE"):
			k = "file"
		}
		kinds = append(kinds, k+rep)
	}
	return kinds
}

// unquoteUsage splits "configuration `FILE`" into FILE and "configuration FILE", as urfave/cli
// shows it.
func unquoteUsage(usage string) (string, string) {
	if i := strings.IndexByte(usage, '`'); i >= 0 {
		if j := strings.IndexByte(usage[i+1:], '`'); j >= 0 {
			name := usage[i+1 : i+1+j]
			return name, usage[:i] + name + usage[i+1+j+1:]
		}
	}
	return "", usage
}

func shq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// writeSpec writes _rollout_spec PATH, which sets _rollout_subs, _rollout_flags (every flag),
// _rollout_vflags (FLAG:KIND for the flags that take a value) and _rollout_args (argument
// kinds) for the command PATH ("" for rollout itself, "etc save" for a subcommand); for zsh
// also _rollout_sdescs and _rollout_fdescs, "NAME:description" arrays for _describe.
func writeSpec(b *strings.Builder, app *cli.App, zsh bool) {
	b.WriteString("# generated by `rollout completion` from its command tree\n")
	b.WriteString("_rollout_spec()\n{\n\tcase $1 in\n")
	for _, s := range completionSpecs(app) {
		var subs, flags, vflags, sdescs, fdescs []string
		for _, c := range s.subs {
			subs = append(subs, c.Name)
			sdescs = append(sdescs, shq(c.Name+":"+c.Usage))
		}
		for _, f := range s.flags {
			for _, n := range f.names {
				flags = append(flags, n)
				fdescs = append(fdescs, shq(n+":"+f.usage))
				if f.kind != "" {
					vflags = append(vflags, n+":"+f.kind)
				}
			}
		}
		fmt.Fprintf(b, "\t%s)\n", shq(s.path))
		fmt.Fprintf(b, "\t\t_rollout_subs=%s\n", shq(strings.Join(subs, " ")))
		fmt.Fprintf(b, "\t\t_rollout_flags=%s\n", shq(strings.Join(flags, " ")))
		fmt.Fprintf(b, "\t\t_rollout_vflags=%s\n", shq(strings.Join(vflags, " ")))
		fmt.Fprintf(b, "\t\t_rollout_args=%s\n", shq(strings.Join(s.args, " ")))
		if zsh {
			fmt.Fprintf(b, "\t\t_rollout_sdescs=(%s)\n", strings.Join(sdescs, " "))
			fmt.Fprintf(b, "\t\t_rollout_fdescs=(%s)\n", strings.Join(fdescs, " "))
		}
		b.WriteString("\t\t;;\n")
	}
	b.WriteString("\t*)\n\t\t_rollout_subs='' _rollout_flags='' _rollout_vflags='' _rollout_args=''\n")
	if zsh {
		b.WriteString("\t\t_rollout_sdescs=() _rollout_fdescs=()\n")
	}
	b.WriteString("\t\t;;\n\tesac\n}\n")
}
