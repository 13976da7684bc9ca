package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/rollout-dev/rollout/proto/zfs"
	"github.com/urfave/cli/v2"
)

// arranged is a command line put in the order urfave/cli v2 parses: it stops at the first
// argument that is not a flag, and a command parses only its own flags.
type arranged struct {
	argv    []string // program, global flags, command path, its flags, "--", arguments
	path    []string // the command path found: "promote", or "etc", "save"
	json    bool     // --json was given
	version bool     // --version was given
	help    bool     // help was asked for (-h, --help, rollout help)
}

// arrange lets flags stand anywhere, as zfs and bastille users write them: `rollout promote
// proto@2 vhost1 --dry-run`, `rollout status --json`. It finds the command path, then moves
// the global flags (with their values) before it and the command's flags after it, ahead of
// the positional arguments; "--" ends the flags (what follows is arguments, even "-x").
// Combined short booleans are split (-nv is -n -v). A word that looks like a flag and is none
// of the global flags or the command's is a usage error naming it, as is an unknown command.
func arrange(app *cli.App, argv []string) (arranged, error) {
	var ar arranged
	if len(argv) == 0 {
		return ar, nil
	}
	var global, local, args []string
	var cmd *cli.Command
	level := app.Commands
	where := func() string { return strings.Join(ar.path, " ") }
	rest := argv[1:]
	for i := 0; i < len(rest); i++ {
		w := rest[i]
		if w == "--" {
			args = append(args, rest[i+1:]...)
			break
		}
		if len(w) < 2 || w[0] != '-' { // a word: the command path, then arguments
			if len(args) == 0 && (cmd == nil || len(cmd.Subcommands) > 0) {
				if w == "help" && len(ar.path) == 0 {
					// rollout help etc save is rollout etc save --help
					ar.help = true
					for _, t := range rest[i+1:] {
						if strings.HasPrefix(t, "-") {
							continue
						}
						next := find(level, t)
						if next == nil {
							return ar, usagef("help: unknown command %q (rollout help lists them)", strings.Join(append(ar.path, t), " "))
						}
						ar.path = append(ar.path, next.Name)
						level = next.Subcommands
					}
					local = append(local, "--help")
					break
				}
				next := find(level, w)
				if next == nil && cmd != nil && cmd.Action != nil {
					args = append(args, w) // the command's own action takes it
					continue
				}
				if next == nil {
					if cmd == nil {
						return ar, usagef("unknown command %q (rollout help lists them)", w)
					}
					return ar, usagef("%s: unknown command %q (rollout help %s lists them)", where(), w, where())
				}
				cmd, level = next, next.Subcommands
				ar.path = append(ar.path, next.Name)
				continue
			}
			args = append(args, w)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(w, "-"), "-"), "=")
		var own []cli.Flag
		if cmd != nil {
			own = cmd.Flags
		}
		dst := &local
		f := lookup(app.Flags, name)
		if f != nil {
			dst = &global
		} else {
			f = lookup(own, name)
		}
		if f == nil && (name == "h" || name == "help") {
			ar.help = true
			local = append(local, w)
			continue
		}
		if f == nil {
			split, ok := splitShort(w, app.Flags, own)
			if !ok {
				hint := strings.Join(append([]string{"rollout", "help"}, ar.path...), " ")
				if len(ar.path) == 0 {
					return ar, usagef("unknown flag %s (%s lists the flags)", w, hint)
				}
				return ar, usagef("%s: unknown flag %s (%s lists the flags)", where(), w, hint)
			}
			rest = append(append(append([]string(nil), rest[:i]...), split...), rest[i+1:]...)
			i--
			continue
		}
		*dst = append(*dst, w)
		takes := takesValue(f)
		if takes && !hasValue && i+1 < len(rest) {
			i++
			value = rest[i]
			*dst = append(*dst, value)
		}
		on := !takes && (!hasValue || parseBool(value))
		switch f.Names()[0] {
		case "json":
			ar.json = on
		case "version":
			ar.version = on
		}
	}
	if cmd != nil && len(cmd.Subcommands) > 0 && cmd.Action == nil && !ar.help {
		var names []string
		for _, s := range cmd.Subcommands {
			if !s.Hidden {
				names = append(names, s.Name)
			}
		}
		return ar, usagef("%s: needs a command: %s", where(), strings.Join(names, ", "))
	}
	ar.argv = append([]string{argv[0]}, global...)
	ar.argv = append(ar.argv, ar.path...)
	ar.argv = append(ar.argv, local...)
	if len(args) > 0 {
		ar.argv = append(append(ar.argv, "--"), args...)
	}
	return ar, nil
}

func find(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

func lookup(flags []cli.Flag, name string) cli.Flag {
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return f
			}
		}
	}
	return nil
}

func takesValue(f cli.Flag) bool {
	if t, ok := f.(interface{ TakesValue() bool }); ok {
		return t.TakesValue()
	}
	return false
}

func parseBool(s string) bool {
	b, err := strconv.ParseBool(s)
	return err != nil || b // a bad value is urfave's to refuse; count it as given
}

// splitShort splits "-nv" into "-n", "-v" when each letter is a boolean flag.
func splitShort(w string, sets ...[]cli.Flag) ([]string, bool) {
	if strings.HasPrefix(w, "--") || strings.Contains(w, "=") || len(w) < 3 {
		return nil, false
	}
	var out []string
	for _, r := range w[1:] {
		var f cli.Flag
		for _, s := range sets {
			if f = lookup(s, string(r)); f != nil {
				break
			}
		}
		if f == nil || takesValue(f) {
			return nil, false
		}
		out = append(out, "-"+string(r))
	}
	return out, true
}

// argSpec is one positional argument of a command, from its ArgsUsage ("proto@N VHOST [VHOST...]").
type argSpec struct {
	name     string
	optional bool
	repeat   bool
}

func parseArgsUsage(s string) []argSpec {
	var out []argSpec
	for _, t := range strings.Fields(s) {
		a := argSpec{name: t}
		if strings.HasPrefix(t, "[") {
			a.optional, a.name = true, strings.Trim(t, "[]")
		}
		if strings.HasSuffix(a.name, "...") {
			a.repeat, a.name = true, strings.TrimSuffix(a.name, "...")
		}
		out = append(out, a)
	}
	return out
}

// checkArgs checks the positional arguments against the command's ArgsUsage, before the
// config loads: their count, none empty, snapshot arguments (proto@N) shaped like one and vhost
// names shaped like a name.
func checkArgs(c *cli.Context) error {
	usage := c.Command.ArgsUsage
	if c.Command.Name == "try" && c.Bool("end") {
		usage = "VHOST" // rollout try --end VHOST
	}
	spec := parseArgsUsage(usage)
	args := c.Args().Slice()
	path := cmdPath(c)
	i := 0
	for _, s := range spec {
		if i >= len(args) {
			if !s.optional {
				return usagef("%s: needs %s (rollout %s %s)", path, s.name, path, strings.TrimSpace(usage))
			}
			break
		}
		for ; i < len(args); i++ {
			if err := checkArg(s.name, args[i]); err != nil {
				return usagef("%s: %v", path, err)
			}
			if !s.repeat {
				i++
				break
			}
		}
	}
	if i < len(args) {
		return usagef("%s: unexpected argument %q", path, args[i])
	}
	return nil
}

func checkArg(kind, a string) error {
	if a == "" {
		return fmt.Errorf("%s argument is empty", kind)
	}
	switch {
	case strings.HasPrefix(kind, "proto@"):
		return checkSnapshotArg(a)
	case kind == "VHOST":
		return zfs.ValidateComponent("vhost name", a)
	}
	return nil
}

// checkSnapshotArg checks what an admin typed for a snapshot ("3", "proto@3",
// "zpool/proto@3") by ZFS's name rules, without knowing the prototype yet.
func checkSnapshotArg(a string) error {
	if !strings.Contains(a, "@") {
		return zfs.ValidateSnapshotName(a)
	}
	_, _, err := zfs.SplitSnapshot(a)
	return err
}
