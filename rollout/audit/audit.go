// Package audit writes one line per change (a vhost promoted, a slave replicated, a snapshot
// taken) to syslog, where FreeBSD admins look first (/var/log/messages). It is only called
// from the command line layer, which knows each vhost's and slave's outcome.
package audit

import (
	"fmt"
	"log/slog"
	"log/syslog"
	"strings"
)

// Tag is the syslog tag of every line: "rollout[PID]: ...".
const Tag = "rollout"

// Writer takes finished lines: Info for what went well, Err for what failed.
type Writer interface {
	Info(line string) error
	Err(line string) error
}

// Discard writes nothing: dry runs, [log] syslog = false, no syslogd.
type Discard struct{}

func (Discard) Info(string) error { return nil }
func (Discard) Err(string) error  { return nil }

// Open connects to the local syslogd (/dev/log, /var/run/syslog or FreeBSD's /var/run/log)
// with facility daemon. Without one it returns Discard and says so at debug level: no command
// fails for want of syslog.
func Open(log *slog.Logger) Writer {
	w, err := syslog.New(syslog.LOG_NOTICE|syslog.LOG_DAEMON, Tag)
	if err != nil {
		log.Debug("no syslog; changes are not logged there", "err", err)
		return Discard{}
	}
	return &sysWriter{w: w, log: log}
}

type sysWriter struct {
	w   *syslog.Writer
	log *slog.Logger
}

func (s *sysWriter) Info(line string) error { return s.check(s.w.Notice(line)) }
func (s *sysWriter) Err(line string) error  { return s.check(s.w.Err(line)) }

// check keeps a lost syslogd from failing a command; log/syslog reconnects on the next line.
func (s *sysWriter) check(err error) error {
	if err != nil {
		s.log.Debug("syslog write failed", "err", err)
	}
	return nil
}

// Change is one thing changed, as one line: "promote vhost1 zpool/proto@1 -> zpool/proto@2: ok".
type Change struct {
	Op      string // promote, replicate, snapshot, etc save ...
	Subject string // the vhost, slave or snapshot
	From    string // "" when there was nothing before, or when it stays where it is
	To      string
	Note    string // after "ok": "nothing to do: already on zpool/proto@2"
	Skipped string // not attempted, and why (the canary failed)
	Err     error  // nil: ok (or skipped)
}

// Line renders the change on one line, control characters replaced: a syslog line must not be
// split or carry terminal escapes, whatever an error message quotes.
func (c Change) Line() string {
	var b strings.Builder
	b.WriteString(c.Op)
	if c.Subject != "" {
		b.WriteString(" " + c.Subject)
	}
	switch {
	case c.From != "" && c.To != "" && c.From != c.To:
		fmt.Fprintf(&b, " %s -> %s", c.From, c.To)
	case c.To != "" && c.From == "":
		fmt.Fprintf(&b, " - -> %s", c.To)
	case c.To != "":
		fmt.Fprintf(&b, " on %s", c.To)
	}
	switch {
	case c.Err != nil:
		b.WriteString(": failed: " + c.Err.Error())
	case c.Skipped != "":
		b.WriteString(": skipped: " + c.Skipped)
	default:
		b.WriteString(": ok")
		if c.Note != "" {
			b.WriteString(" (" + c.Note + ")")
		}
	}
	return clean(b.String())
}

// Write sends the change to w at the priority its outcome calls for.
func Write(w Writer, c Change) {
	if c.Err != nil {
		_ = w.Err(c.Line())
		return
	}
	_ = w.Info(c.Line())
}

func clean(s string) string {
	s = strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return '?'
		}
		return r
	}, s)
}
