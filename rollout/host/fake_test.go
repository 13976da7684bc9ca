package host

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/rollout-dev/rollout/proto/command"
)

// resp is a scripted answer of the fake runner.
type resp struct {
	out, stderr string
	code        int
}

func fail(code int, stderr string) resp { return resp{stderr: stderr, code: code} }
func ok(out string) resp                { return resp{out: out} }

// fakeRunner records every argv and answers from a script keyed by the quoted command line.
// A key's answers are used in turn, the last one again and again; unscripted commands
// succeed silently. hook, if set, runs first and may answer instead (for state changes).
type fakeRunner struct {
	mu     sync.Mutex
	script map[string][]resp
	calls  []string
	hook   func(argv []string) (resp, bool)
}

func newFake() *fakeRunner { return &fakeRunner{script: map[string][]resp{}} }

func (f *fakeRunner) on(cmd string, rs ...resp) *fakeRunner {
	f.script[cmd] = append(f.script[cmd], rs...)
	return f
}

func (f *fakeRunner) Host() string { return "fake" }

func (f *fakeRunner) Run(_ context.Context, c command.Cmd) error {
	f.mu.Lock()
	key := command.Quote(c.Argv)
	f.calls = append(f.calls, key)
	var r resp
	handled := false
	if f.hook != nil {
		r, handled = f.hook(c.Argv)
	}
	if !handled {
		if rs := f.script[key]; len(rs) > 0 {
			r = rs[0]
			if len(rs) > 1 {
				f.script[key] = rs[1:]
			}
		}
	}
	f.mu.Unlock()
	if c.Stdout != nil {
		_, _ = io.WriteString(c.Stdout, r.out)
	}
	if c.Stderr != nil {
		_, _ = io.WriteString(c.Stderr, r.stderr)
	}
	if r.code != 0 {
		return &command.Error{Host: "fake", Argv: c.Argv, ExitCode: r.code, Stderr: r.stderr, Err: fmt.Errorf("exit status %d", r.code)}
	}
	return nil
}

func (f *fakeRunner) want(t *testing.T, want ...string) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if strings.Join(f.calls, "\n") != strings.Join(want, "\n") {
		t.Fatalf("commands run:\n  %s\nwant:\n  %s", strings.Join(f.calls, "\n  "), strings.Join(want, "\n  "))
	}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func quoteAll(argvs [][]string) []string {
	var s []string
	for _, a := range argvs {
		s = append(s, command.Quote(a))
	}
	return s
}
