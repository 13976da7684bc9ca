// Package command runs external programs. Every zfs, mount, jail or mdconfig invocation goes
// through a Runner, which carries the context, logs the command with its duration, and returns
// an error that names the command, the host and the program's own message.
package command

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"strings"
	"time"
)

// Cmd is one program invocation. Argv[0] is the program.
type Cmd struct {
	Argv   []string
	Stdin  io.Reader
	Stdout io.Writer // nil: discarded (use Output to collect it)
	Stderr io.Writer // nil: collected into the *Error on failure
}

// Runner runs commands somewhere: on this host (Local) or on a remote one over SSH.
type Runner interface {
	Run(ctx context.Context, c Cmd) error
	// Host names where the commands run, for errors and logs ("local", "slave2").
	Host() string
}

// Error is a command that could not start or exited non-zero.
type Error struct {
	Host     string
	Argv     []string
	ExitCode int // -1 when the program did not run to an exit
	Stderr   string
	Err      error
}

func (e *Error) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	if msg == "" {
		msg = e.Err.Error()
	}
	// zfs and friends print multi-line messages; an error must fit one line
	msg = strings.Join(strings.Fields(strings.ReplaceAll(msg, "\n", "; ")), " ")
	return fmt.Sprintf("%s: %s", Quote(e.Argv), msg)
}

func (e *Error) Unwrap() error { return e.Err }

// ExitCode returns the exit status of a failed command, or -1 when err is not from a command.
func ExitCode(err error) int {
	var ce *Error
	if errors.As(err, &ce) {
		return ce.ExitCode
	}
	return -1
}

// Output runs argv and returns its standard output.
func Output(ctx context.Context, r Runner, argv ...string) ([]byte, error) {
	var out bytes.Buffer
	err := r.Run(ctx, Cmd{Argv: argv, Stdout: &out})
	return out.Bytes(), err
}

// Local runs commands on this host.
type Local struct {
	Logger *slog.Logger // nil: slog.Default()
	Env    []string     // nil: the process environment
	// WaitDelay bounds how long Run waits, once the program has exited or its context is
	// done, for the program's children to let go of its output before closing the pipes
	// (and, for a cancelled command, before killing the program). 0: DefaultWaitDelay.
	WaitDelay time.Duration
}

// Host implements Runner.
func (l Local) Host() string { return "local" }

// Run implements Runner.
//
// The program gets a process group of its own, so that a cancelled context (a deadline, or
// SIGINT/SIGTERM to rollout) signals everything it started, not just the program itself. And a
// child that outlives the program while still holding our pipe (a daemon started by a jail's
// rc that keeps fd 2: usr.sbin/jail/command.c hands jail(8)'s own fds to exec.start when
// there is no exec.consolelog) cannot hold rollout: after WaitDelay the pipes are closed.
func (l Local) Run(ctx context.Context, c Cmd) error {
	if len(c.Argv) == 0 {
		return errors.New("command: empty argv")
	}
	log := l.Logger
	if log == nil {
		log = slog.Default()
	}
	cmd := exec.CommandContext(ctx, c.Argv[0], c.Argv[1:]...)
	cmd.Env = l.Env
	cmd.Stdin = c.Stdin
	cmd.Stdout = c.Stdout
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if c.Stderr != nil {
		cmd.Stderr = io.MultiWriter(c.Stderr, &stderr)
	}
	setProcessGroup(cmd)
	cmd.WaitDelay = l.WaitDelay
	if cmd.WaitDelay <= 0 {
		cmd.WaitDelay = DefaultWaitDelay
	}
	start := time.Now()
	err := cmd.Run()
	if errors.Is(err, exec.ErrWaitDelay) && ctx.Err() == nil {
		// the program itself exited 0; only a child of it kept the pipe
		log.Warn("a child process kept the output of a finished command open; stopped reading it",
			"host", "local", "cmd", Quote(c.Argv), "after", cmd.WaitDelay)
		err = nil
	}
	log.Debug("exec", "host", "local", "cmd", Quote(c.Argv), "duration", time.Since(start), "err", err)
	if err != nil {
		code := -1
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return &Error{Host: "local", Argv: c.Argv, ExitCode: code, Stderr: stderr.String(), Err: err}
	}
	return nil
}

// DefaultWaitDelay is Local's WaitDelay unless it sets one.
const DefaultWaitDelay = 5 * time.Second

// Quote renders argv as one POSIX sh command line: words that need it are single-quoted.
// It is what remote commands are built from, and what --dry-run shows.
func Quote(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = QuoteWord(a)
	}
	return strings.Join(q, " ")
}

// QuoteWord quotes one word for a POSIX shell.
func QuoteWord(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("@%+=:,./_-", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
