// Command rollout upgrades and rolls back FreeBSD jails that run on snapshots of a prototype
// jail, and replicates those snapshots to other hosts. This package is the CLI only: it parses
// flags and prints; the work is done by the packages under proto/, rollout/ and replicate/.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/rollout-dev/rollout/etcmerge"
	"github.com/rollout-dev/rollout/proto/command"
	"github.com/rollout-dev/rollout/rollout/audit"
	"github.com/rollout-dev/rollout/rollout/config"
	"github.com/rollout-dev/rollout/rollout/failpoint"
	"github.com/rollout-dev/rollout/rollout/jsonreport"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// stdPath is FreeBSD's _PATH_STDPATH (paths.h) and the ports' bin directories. rollout names
// every program it runs by absolute path, but go-zfs looks zpool(8) up in PATH, and root's
// cron gives only /usr/bin:/bin.
const stdPath = "/usr/bin:/bin:/usr/sbin:/sbin:/usr/local/bin:/usr/local/sbin"

// exampleConfig is where the port installs the example configuration.
const exampleConfig = "/usr/local/share/examples/rollout/rollout.toml.sample"

func main() {
	_ = os.Setenv("PATH", stdPath)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newApp(os.Stdout, os.Stderr).RunContext(ctx, os.Args)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// The exit statuses: rollout's own, never a child program's.
const (
	exitOK      = 0
	exitFailed  = 1
	exitUsage   = 2
	exitPartial = 3 // some vhosts or slaves were done, others failed
)

// exitCode prints err on one line and returns the exit status (see codeOf).
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	if msg := oneLine(err); msg != "" {
		fmt.Fprintf(stderr, "rollout: %s\n", msg)
	}
	return codeOf(err)
}

// codeOf maps an error to rollout's exit status: 2 for usage errors, 3 when the command was
// partly done, else 1. An exit status carried by the error of a child program (a
// *command.Error, an *exec.ExitError) is never passed on: that is a failure, 1.
func codeOf(err error) int {
	var ue usageError
	var pe partialError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &pe):
		return exitPartial
	}
	return exitFailed
}

// oneLine is err on one line. Errors can carry names a tenant chose (a file in a jail's
// /etc): a line with anything a terminal would act on is escaped as etcmerge.Escape does.
func oneLine(err error) string {
	s := strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
	if etcmerge.NeedsEscape(strings.ReplaceAll(s, `\`, "")) {
		s = etcmerge.Escape(s)
	}
	return s
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// partialError is a command that did some of its work (some vhosts or slaves) and failed on
// the rest: exit status 3.
type partialError struct{ err error }

func (e partialError) Error() string { return e.err.Error() }
func (e partialError) Unwrap() error { return e.err }

// partly marks err as partial when some of the work was done.
func partly(err error, someDone bool) error {
	if err != nil && someDone {
		return partialError{err}
	}
	return err
}

// report is the one JSON shape every command prints with --json.
type report = jsonreport.Report

const reportKey = "rollout.report"

// auditKey in the app's Metadata replaces syslog (tests read what would be written).
const auditKey = "rollout.audit"

// env is what every command gets: the configuration, where to print, how to run commands.
type env struct {
	cfg    *config.Config
	out    io.Writer // what the command was asked for: tables, plans, fstabs (not with --json)
	msg    io.Writer // what it did: progress, "wrote ..." (not with --json or --quiet)
	errOut io.Writer // progress meters (not with --quiet)
	json   bool
	quiet  bool
	log    *slog.Logger
	local  command.Runner
	rep    *report
	crash  *failpoint.Point // the crash tests' failpoint; nil unless ROLLOUT_FAILPOINT is set
	audit  audit.Writer     // syslog, opened at the first change; see record
	dial   dialer           // connects to a slave; nil: over SSH (sshDial)
}

// app is the urfave/cli application with rollout's argument handling around it: flags are
// accepted anywhere (see arrange), and --json prints one report whatever happened.
type app struct {
	*cli.App
	stdout io.Writer
}

func newApp(stdout, stderr io.Writer) *app {
	globals := []cli.Flag{
		&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Value: config.DefaultPath, Usage: "configuration `FILE`", EnvVars: []string{"ROLLOUT_CONFIG"}},
		&cli.BoolFlag{Name: "json", Usage: "print one JSON object for scripts: command, ok, exit, error, results, plan", DisableDefaultText: true},
		&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "log every command run, with its duration", DisableDefaultText: true},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only errors (and what a listing or --dry-run was asked for)", DisableDefaultText: true},
		&cli.BoolFlag{Name: "version", Usage: "print the version and exit", DisableDefaultText: true},
	}
	a := &cli.App{
		Name:  "rollout",
		Usage: "upgrade and roll back jails that run on snapshots of a prototype jail",
		Description: "Flags may come before or after the arguments; -- ends them. Exit status: 0 done,\n" +
			"1 failed (status: a vhost needs attention), 2 usage error, 3 partly done (some vhosts or\n" +
			"slaves done, others failed). Every change is also logged to syslog, one line per vhost, slave\n" +
			"or snapshot.",
		Version:     version,
		HideVersion: true, // --version is ours: urfave's -v alias would shadow --verbose
		Writer:      stdout, ErrWriter: stderr,
		Flags:    globals,
		Commands: commands(),
		Action: func(c *cli.Context) error {
			if c.Bool("version") {
				fmt.Fprintf(c.App.Writer, "rollout version %s\n", version)
				return nil
			}
			if c.Args().Present() {
				return usagef("unknown command %q (rollout help lists them)", c.Args().First())
			}
			return usagef("no command given (rollout help lists them)")
		},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usagef("%v", err)
		},
		ExitErrHandler: func(*cli.Context, error) {}, // main prints errors, once
		Metadata:       map[string]any{},
	}
	for _, c := range a.Commands {
		setupCommand(c, nil, globals)
	}
	return &app{App: a, stdout: stdout}
}

// RunContext runs the command line argv (argv[0] is the program) and, with --json, prints the
// report, errors included.
func (a *app) RunContext(ctx context.Context, argv []string) error {
	rep := &report{}
	a.Metadata[reportKey] = rep
	ar, err := arrange(a.App, argv)
	rep.Command = strings.Join(ar.path, " ")
	if err == nil {
		if ar.version && len(ar.path) > 0 {
			err = usagef("--version takes no command")
		} else {
			err = a.App.RunContext(ctx, ar.argv)
		}
	}
	if ar.json && !ar.help && !ar.version {
		rep.Exit = codeOf(err)
		rep.OK = err == nil
		if err != nil {
			rep.Error = oneLine(err)
		}
		if rv := reflect.ValueOf(rep.Results); !rv.IsValid() || (rv.Kind() == reflect.Slice && rv.IsNil()) {
			rep.Results = []struct{}{}
		}
		if jerr := printJSON(a.stdout, rep); jerr != nil && err == nil {
			err = jerr
		}
	}
	return err
}

func commands() []*cli.Command {
	cmds := []*cli.Command{
		snapshotCommand(),
		snapshotsCommand(),
		replicateCommand(),
	}
	cmds = append(cmds, jailCommands()...)
	return append(cmds, checkCommand(), completionCommand())
}

// setupCommand makes flag errors exit 2 with one line, and shows the global flags in the
// help of every command and subcommand.
func setupCommand(c *cli.Command, parents []string, globals []cli.Flag) {
	path := append(append([]string(nil), parents...), c.Name)
	name := strings.Join(path, " ")
	c.OnUsageError = func(_ *cli.Context, err error, _ bool) error { return usagef("%s: %v", name, err) }
	c.HideHelpCommand = true
	var g strings.Builder
	g.WriteString("\nGLOBAL OPTIONS (before or after the arguments):")
	for _, f := range globals {
		if f.Names()[0] != "version" {
			fmt.Fprintf(&g, "\n   %s", f)
		}
	}
	g.WriteString("\n")
	tmpl := cli.CommandHelpTemplate
	if len(c.Subcommands) > 0 {
		tmpl = cli.SubcommandHelpTemplate
	}
	c.CustomHelpTemplate = tmpl + strings.ReplaceAll(g.String(), "{{", "{{`{{`}}")
	for _, s := range c.Subcommands {
		setupCommand(s, path, globals)
	}
}

// setup checks the global flags, loads the configuration and builds the env for a command.
func setup(c *cli.Context) (*env, error) {
	if c.Bool("verbose") && c.Bool("quiet") {
		return nil, usagef("--verbose and --quiet exclude each other")
	}
	rep, _ := c.App.Metadata[reportKey].(*report)
	if rep == nil {
		rep = &report{}
	}
	e := &env{out: c.App.Writer, msg: c.App.Writer, errOut: c.App.ErrWriter, json: c.Bool("json"), quiet: c.Bool("quiet"), rep: rep}
	level := slog.LevelWarn
	switch {
	case c.Bool("verbose"):
		level = slog.LevelDebug
	case e.quiet:
		level = slog.LevelError
	}
	if e.json {
		e.out, e.msg = io.Discard, io.Discard
	}
	if e.quiet {
		e.msg, e.errOut = io.Discard, io.Discard
	}
	e.log = slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: level}))
	e.local = command.Local{Logger: e.log}
	crash, err := failpoint.Parse(os.Getenv(failpoint.Env))
	if err != nil {
		return nil, err
	}
	e.crash = crash
	file := c.String("config")
	cfg, err := config.Load(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("config %s: no such file; copy %s there or name one with --config FILE", file, exampleConfig)
	}
	if err != nil {
		return nil, err
	}
	e.cfg = cfg
	if w, ok := c.App.Metadata[auditKey].(audit.Writer); ok {
		e.audit = w
	}
	return e, nil
}

// record writes one change to syslog (unless [log] syslog = false). Syslog is opened at the
// first change, so commands that change nothing never connect to it.
func (e *env) record(c audit.Change) {
	if e.audit == nil {
		e.audit = audit.Discard{}
		if e.cfg != nil && e.cfg.Log.Syslog {
			e.audit = audit.Open(e.log)
		}
	}
	audit.Write(e.audit, c)
}

// errOf turns an error message kept in a result back into an error, for record.
func errOf(msg string) error {
	if msg == "" {
		return nil
	}
	return errors.New(msg)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// cmdPath is the command's full name under rollout: "promote", "etc init".
func cmdPath(c *cli.Context) string {
	var names []string
	for _, x := range c.Lineage() {
		if x.Command != nil && x.Command.Name != "" && x.Command.Name != c.App.Name {
			names = append([]string{x.Command.Name}, names...)
		}
	}
	if len(names) == 0 {
		return c.Command.Name
	}
	return strings.Join(names, " ")
}
