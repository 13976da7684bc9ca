package sshx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/rollout-dev/rollout/proto/command"
)

// ChunkSize is how much of a command's standard input is written to the channel at a time.
// Large writes keep the per-write overhead of x/crypto/ssh's channel small next to the cipher
// (measured: replicate/bench/ssh-throughput.sh).
const ChunkSize = 1 << 20

// maxStderr bounds the stderr kept for an error message; zfs says what matters in a line or two.
const maxStderr = 64 << 10

// Runner runs commands on the slave, one SSH session each. It implements command.Runner.
type Runner struct {
	c *Client
}

// Runner returns a command.Runner over this connection.
func (c *Client) Runner() *Runner { return &Runner{c: c} }

// Host implements command.Runner: the slave's name.
func (r *Runner) Host() string { return r.c.cfg.Name }

// Run implements command.Runner. Every argument is quoted for the remote shell (the SSH protocol
// carries one command line, which the remote user's shell splits again). Cancelling ctx sends
// SIGTERM to the remote command and closes the session. A Stdin reader that is still blocked when
// the command ends is not waited for: the caller owns it and should close it.
func (r *Runner) Run(ctx context.Context, c command.Cmd) error {
	if len(c.Argv) == 0 {
		return errors.New("sshx: empty argv")
	}
	host := r.Host()
	fail := func(code int, stderr string, err error) error {
		if dead := r.c.dead(); dead != nil {
			err = fmt.Errorf("%w (%w)", dead, err)
		} else if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return &command.Error{Host: host, Argv: c.Argv, ExitCode: code, Stderr: stderr, Err: err}
	}
	start := time.Now()
	sess, err := r.c.conn.NewSession()
	if err != nil {
		return fail(-1, "", fmt.Errorf("ssh session: %w", err))
	}
	defer sess.Close()

	stderr := &limitedBuffer{max: maxStderr}
	sess.Stdout = c.Stdout
	sess.Stderr = stderr
	if c.Stderr != nil {
		sess.Stderr = io.MultiWriter(c.Stderr, stderr)
	}
	var stdinMu sync.Mutex
	var stdinErr error // set by the copying goroutine
	getStdinErr := func() error { stdinMu.Lock(); defer stdinMu.Unlock(); return stdinErr }
	var stdinDone chan struct{}
	copyStdin := func() {}
	if c.Stdin != nil {
		w, err := sess.StdinPipe()
		if err != nil {
			return fail(-1, "", fmt.Errorf("ssh stdin: %w", err))
		}
		copyStdin = func() {
			stdinDone = make(chan struct{})
			go func() {
				defer close(stdinDone)
				_, err := io.CopyBuffer(onlyWriter{w}, onlyReader{c.Stdin}, make([]byte, ChunkSize))
				if err != nil && !errors.Is(err, io.EOF) {
					// the data did not all arrive (the sender failed, or the command stopped reading);
					// end the session rather than send EOF, so the command cannot take a truncated
					// stream for a whole one
					stdinMu.Lock()
					stdinErr = err
					stdinMu.Unlock()
					_ = sess.Signal(ssh.SIGTERM)
					sess.Close()
					return
				}
				w.Close()
			}()
		}
	}
	line := command.Quote(c.Argv)
	if err := sess.Start(line); err != nil {
		return fail(-1, "", fmt.Errorf("ssh exec: %w", err))
	}
	// only now: a stdin failure closes the session, which must not race the exec request
	copyStdin()
	waited := make(chan error, 1)
	go func() { waited <- sess.Wait() }()
	select {
	case err = <-waited:
	case <-ctx.Done():
		_ = sess.Signal(ssh.SIGTERM)
		sess.Close()
		err = <-waited
		if err == nil {
			err = ctx.Err()
		}
	}
	if err == nil && stdinDone != nil {
		// exit 0: the copy has ended or fails on its next write; its error, if any, matters
		select {
		case <-stdinDone:
			if se := getStdinErr(); se != nil {
				err = fmt.Errorf("stdin: %w", se)
			}
		case <-time.After(time.Second):
		}
	}
	r.c.log.Debug("exec", "host", host, "cmd", line, "duration", time.Since(start), "err", err)
	if err == nil {
		return nil
	}
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		if se := getStdinErr(); se != nil {
			return fail(ee.ExitStatus(), stderr.String(), fmt.Errorf("stdin: %w (%w)", se, err))
		}
		return fail(ee.ExitStatus(), stderr.String(), err)
	}
	if se := getStdinErr(); se != nil {
		err = fmt.Errorf("stdin: %w (%w)", se, err)
	}
	return fail(-1, stderr.String(), err)
}

// onlyWriter and onlyReader hide ReadFrom/WriteTo so that io.CopyBuffer uses the 1 MiB buffer.
type onlyWriter struct{ io.Writer }
type onlyReader struct{ io.Reader }

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
