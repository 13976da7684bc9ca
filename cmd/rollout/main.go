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
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/rollout-dev/rollout/proto/command"
	"github.com/rollout-dev/rollout/rollout/config"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// stdPath is FreeBSD's _PATH_STDPATH (paths.h) and the ports' bin directories. rollout names
// every program it runs by absolute path, but go-zfs looks zpool(8) up in PATH, and root's
// cron gives only /usr/bin:/bin.
const stdPath = "/usr/bin:/bin:/usr/sbin:/sbin:/usr/local/bin:/usr/local/sbin"

func main() {
	_ = os.Setenv("PATH", stdPath)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newApp(os.Stdout, os.Stderr).RunContext(ctx, os.Args)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// exitCode prints err on one line and returns the exit status: 0 ok, 1 failure, 2 usage.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	code := 1
	var ue usageError
	if errors.As(err, &ue) {
		code = 2
	}
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		code = ec.ExitCode()
	}
	msg := strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
	if msg != "" {
		fmt.Fprintf(stderr, "rollout: %s\n", msg)
	}
	return code
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// env is what every command gets: the configuration, where to print, how to run commands.
type env struct {
	cfg    *config.Config
	out    io.Writer
	errOut io.Writer
	json   bool
	log    *slog.Logger
	local  command.Runner
}

func newApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:    "rollout",
		Usage:   "upgrade and roll back jails that run on snapshots of a prototype jail",
		Version: version,
		Writer:  stdout, ErrWriter: stderr,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Value: config.DefaultPath, Usage: "configuration `FILE`", EnvVars: []string{"ROLLOUT_CONFIG"}},
			&cli.BoolFlag{Name: "json", Usage: "print results as JSON, for scripts"},
			&cli.BoolFlag{Name: "verbose", Usage: "log every command run, with its duration"},
		},
		Commands:        commands(),
		HideHelpCommand: true,
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usagef("%v", err)
		},
		ExitErrHandler: func(*cli.Context, error) {}, // main prints errors, once
		CommandNotFound: func(c *cli.Context, name string) {
			fmt.Fprintf(c.App.ErrWriter, "rollout: unknown command %q (see rollout --help)\n", name)
			os.Exit(2)
		},
	}
}

func commands() []*cli.Command {
	cmds := []*cli.Command{
		snapshotCommand(),
		snapshotsCommand(),
		replicateCommand(),
	}
	cmds = append(cmds, jailCommands()...)
	for _, c := range cmds {
		setUsageError(c)
	}
	return cmds
}

// setUsageError makes flag errors exit 2 with one line, in every command and subcommand.
func setUsageError(c *cli.Command) {
	c.OnUsageError = func(_ *cli.Context, err error, _ bool) error { return usagef("%s: %v", c.Name, err) }
	c.HideHelpCommand = true
	for _, s := range c.Subcommands {
		setUsageError(s)
	}
}

// setup loads the configuration and builds the env for a command.
func setup(c *cli.Context) (*env, error) {
	level := slog.LevelWarn
	if c.Bool("verbose") {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: level}))
	cfg, err := config.Load(c.String("config"))
	if err != nil {
		return nil, err
	}
	return &env{cfg: cfg, out: c.App.Writer, errOut: c.App.ErrWriter, json: c.Bool("json"), log: log,
		local: command.Local{Logger: log}}, nil
}

func (e *env) printJSON(v any) error {
	enc := json.NewEncoder(e.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// noArgs refuses extra arguments, naming them.
func noArgs(c *cli.Context) error {
	if c.Args().Len() > 0 {
		return usagef("%s: unexpected argument %q", c.Command.Name, c.Args().First())
	}
	return nil
}
