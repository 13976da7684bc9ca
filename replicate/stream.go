package replicate

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"
)

// ChunkSize is the unit the send stream is moved in: large writes keep SSH's per-write cost low.
const ChunkSize = 1 << 20

// ErrNoReceivers is returned by Tee.Write when every receiver has failed.
var ErrNoReceivers = errors.New("every receiver failed")

// Tee copies one stream to several receivers, in parallel (each receiver's SSH session encrypts
// on its own core). A receiver whose write fails is dropped and its error kept, and the others
// get every byte; a slow receiver slows the others, since the send cannot run ahead unbounded.
type Tee struct {
	outs []*teeOut
}

type teeOut struct {
	name string
	w    io.Writer
	err  error
}

// Add adds a receiver.
func (t *Tee) Add(name string, w io.Writer) { t.outs = append(t.outs, &teeOut{name: name, w: w}) }

// Err returns why the named receiver was dropped, or nil.
func (t *Tee) Err(name string) error {
	for _, o := range t.outs {
		if o.name == name {
			return o.err
		}
	}
	return nil
}

// Write implements io.Writer. It fails only when no receiver is left.
func (t *Tee) Write(p []byte) (int, error) {
	var live []*teeOut
	for _, o := range t.outs {
		if o.err == nil {
			live = append(live, o)
		}
	}
	write := func(o *teeOut) {
		n, err := o.w.Write(p)
		if err == nil && n < len(p) {
			err = io.ErrShortWrite
		}
		o.err = err
	}
	if len(live) == 1 {
		write(live[0])
	} else {
		var wg sync.WaitGroup
		for _, o := range live {
			wg.Add(1)
			go func() { defer wg.Done(); write(o) }()
		}
		wg.Wait()
	}
	for _, o := range live {
		if o.err == nil {
			return len(p), nil
		}
	}
	return 0, ErrNoReceivers
}

// copyChunks moves r to w in ChunkSize writes: a pipe hands out at most its buffer (64 KiB) per
// read, so reads are gathered into full chunks.
func copyChunks(w io.Writer, r io.Reader) (int64, error) {
	buf := make([]byte, ChunkSize)
	var total int64
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return total, werr
			}
			total += int64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// rateLimiter is a token bucket: bytes/s with a burst of a quarter second.
type rateLimiter struct {
	ctx    context.Context
	r      io.Reader
	rate   float64
	burst  int
	tokens float64
	last   time.Time
}

// LimitReader returns r read at no more than rate bytes per second (0: r itself). Waiting ends
// early, with ctx's error, when ctx is done.
func LimitReader(ctx context.Context, r io.Reader, rate int64) io.Reader {
	if rate <= 0 {
		return r
	}
	burst := max(int(rate/4), 16<<10)
	return &rateLimiter{ctx: ctx, r: r, rate: float64(rate), burst: burst, tokens: float64(burst), last: time.Now()}
}

func (l *rateLimiter) Read(p []byte) (int, error) {
	if len(p) > l.burst {
		p = p[:l.burst]
	}
	n, err := l.r.Read(p)
	now := time.Now()
	l.tokens = min(l.tokens+now.Sub(l.last).Seconds()*l.rate, float64(l.burst))
	l.last = now
	l.tokens -= float64(n)
	if l.tokens < 0 {
		t := time.NewTimer(time.Duration(-l.tokens / l.rate * float64(time.Second)))
		defer t.Stop()
		select {
		case <-t.C:
		case <-l.ctx.Done():
			return n, l.ctx.Err()
		}
	}
	return n, err
}

// countingReader reports every byte read to a progress line.
type countingReader struct {
	r    io.Reader
	line *Line
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.line.add(n)
	return n, err
}

// errEarlyExit is given to a receiver's pipe when its command ended before the stream did.
var errEarlyExit = errors.New("zfs receive exited before the end of the stream")
