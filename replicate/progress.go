package replicate

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/term"
)

// Progress shows transfers: on a terminal one line per slave, redrawn every 250 ms; otherwise a
// plain line at the start, at every 10 %, and at the end (for logs and cron mail).
type Progress struct {
	out  io.Writer
	tty  bool
	stop chan struct{}
	wg   sync.WaitGroup

	mu    sync.Mutex
	lines []*Line
	drawn int // lines on screen from the last redraw
}

// Line is one transfer's progress.
type Line struct {
	p      *Progress
	Slave  string
	Label  string
	Total  int64 // estimate; -1 unknown
	start  time.Time
	n      atomic.Int64
	decile int // last 10 % step printed (plain output)
	done   bool
	final  string
}

// NewProgress writes to out; it redraws in place when out is a terminal.
func NewProgress(out io.Writer) *Progress {
	p := &Progress{out: out, stop: make(chan struct{})}
	if f, ok := out.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.tty = true
	}
	p.wg.Add(1)
	go p.loop()
	return p
}

// Close stops redrawing, after a last redraw.
func (p *Progress) Close() {
	close(p.stop)
	p.wg.Wait()
}

func (p *Progress) loop() {
	defer p.wg.Done()
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			p.tick()
			return
		case <-t.C:
			p.tick()
		}
	}
}

// Start begins a line for a transfer of about total bytes.
func (p *Progress) Start(slave, label string, total int64) *Line {
	l := &Line{p: p, Slave: slave, Label: label, Total: total, start: time.Now()}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lines = append(p.lines, l)
	if !p.tty {
		fmt.Fprintf(p.out, "%s: %s%s\n", slave, label, sizeNote(total))
	}
	return l
}

func (l *Line) add(n int) { l.n.Add(int64(n)) }

// Bytes is how much has gone through.
func (l *Line) Bytes() int64 { return l.n.Load() }

// Done ends the line with its result.
func (l *Line) Done(err error) {
	p := l.p
	p.mu.Lock()
	defer p.mu.Unlock()
	l.done = true
	l.final = FormatDone(l.Slave, l.n.Load(), time.Since(l.start), err)
	if !p.tty {
		fmt.Fprintln(p.out, l.final)
	}
}

func (p *Progress) tick() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.tty {
		for _, l := range p.lines {
			if l.done || l.Total <= 0 {
				continue
			}
			n := l.n.Load()
			if d := int(n * 10 / l.Total); d > l.decile && d < 10 {
				l.decile = d
				fmt.Fprintln(p.out, FormatProgress(l.Slave, n, l.Total, time.Since(l.start)))
			}
		}
		return
	}
	// move up over the last drawing, then rewrite every line
	if p.drawn > 0 {
		fmt.Fprintf(p.out, "\x1b[%dA", p.drawn)
	}
	for _, l := range p.lines {
		s := l.final
		if !l.done {
			s = FormatProgress(l.Slave, l.n.Load(), l.Total, time.Since(l.start))
		}
		fmt.Fprintf(p.out, "\r\x1b[K%s\n", s)
	}
	p.drawn = len(p.lines)
}

// FormatProgress is one progress line: "slave2  1.2G / 3.4G  35%  85.3M/s  ETA 0:26".
func FormatProgress(slave string, n, total int64, elapsed time.Duration) string {
	rate := 0.0
	if elapsed > 0 {
		rate = float64(n) / elapsed.Seconds()
	}
	if total <= 0 {
		return fmt.Sprintf("%s  %s  %s/s", slave, HumanBytes(n), HumanBytes(int64(rate)))
	}
	pct := min(n*100/total, 99) // estimates can be short; 100 % is for Done
	eta := "?"
	if rate > 0 && n < total {
		eta = formatDuration(time.Duration(float64(total-n) / rate * float64(time.Second)))
	}
	return fmt.Sprintf("%s  %s / %s  %d%%  %s/s  ETA %s", slave, HumanBytes(n), HumanBytes(total), pct, HumanBytes(int64(rate)), eta)
}

// FormatDone is a transfer's last line.
func FormatDone(slave string, n int64, elapsed time.Duration, err error) string {
	if err != nil {
		return fmt.Sprintf("%s: failed after %s: %v", slave, HumanBytes(n), err)
	}
	rate := int64(0)
	if elapsed > 0 {
		rate = int64(float64(n) / elapsed.Seconds())
	}
	return fmt.Sprintf("%s: done, %s in %s (%s/s)", slave, HumanBytes(n), formatDuration(elapsed), HumanBytes(rate))
}

// formatDuration prints m:ss, or h:mm:ss from an hour on.
func formatDuration(d time.Duration) string {
	s := int64(d.Round(time.Second).Seconds())
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}
