package replicate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"
)

func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{7})
	r.Read(b)
	return b
}

// One send feeding three receivers, one of which fails part-way: the other two get every byte,
// and the failure is recorded for the one that failed.
func TestTeeFanOutSurvivesFailedReceiver(t *testing.T) {
	src := randomBytes(20<<20 + 123)
	want := sha256.Sum256(src)

	var tee Tee
	type rcv struct {
		name string
		sum  [32]byte
		n    int
	}
	rcvs := []*rcv{{name: "slave1"}, {name: "bad"}, {name: "slave3"}}
	var wg sync.WaitGroup
	for _, r := range rcvs {
		pr, pw := io.Pipe()
		tee.Add(r.name, pw)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r.name == "bad" {
				buf := make([]byte, 3<<20)
				n, _ := io.ReadFull(pr, buf)
				r.n = n
				pr.CloseWithError(errors.New("connection reset"))
				return
			}
			h := sha256.New()
			n, _ := io.Copy(h, pr)
			r.n = int(n)
			copy(r.sum[:], h.Sum(nil))
		}()
		defer pw.Close()
	}
	n, err := copyChunks(&tee, bytes.NewReader(src))
	if err != nil || n != int64(len(src)) {
		t.Fatalf("copy: %d bytes, %v", n, err)
	}
	for _, o := range tee.outs {
		o.w.(*io.PipeWriter).Close()
	}
	wg.Wait()
	for _, r := range rcvs {
		if r.name == "bad" {
			if err := tee.Err("bad"); err == nil || !strings.Contains(err.Error(), "connection reset") {
				t.Errorf("bad receiver's error: %v", err)
			}
			continue
		}
		if r.n != len(src) || r.sum != want {
			t.Errorf("%s got %d bytes (want %d), checksum match %v", r.name, r.n, len(src), r.sum == want)
		}
		if tee.Err(r.name) != nil {
			t.Errorf("%s: %v", r.name, tee.Err(r.name))
		}
	}
}

func TestTeeAllFailed(t *testing.T) {
	var tee Tee
	pr, pw := io.Pipe()
	pr.CloseWithError(errors.New("gone"))
	tee.Add("a", pw)
	if _, err := tee.Write([]byte("x")); !errors.Is(err, ErrNoReceivers) {
		t.Errorf("error %v, want ErrNoReceivers", err)
	}
}

// writeSizes records the size of every write.
type writeSizes struct {
	mu    sync.Mutex
	sizes []int
}

func (w *writeSizes) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sizes = append(w.sizes, len(p))
	return len(p), nil
}

func TestCopyChunksWritesWholeChunks(t *testing.T) {
	pr, pw := io.Pipe()
	go func() {
		src := randomBytes(3<<20 + 5)
		for len(src) > 0 { // small writes, as a pipe delivers them
			n := min(len(src), 60000)
			pw.Write(src[:n])
			src = src[n:]
		}
		pw.Close()
	}()
	var w writeSizes
	if _, err := copyChunks(&w, pr); err != nil {
		t.Fatal(err)
	}
	if got := w.sizes; len(got) != 4 || got[0] != ChunkSize || got[2] != ChunkSize || got[3] != 5 {
		t.Errorf("write sizes %v, want 3 x 1 MiB then 5", got)
	}
}

// A stream that ends on a chunk boundary, or is empty, ends without an empty write: the tee
// would hand it to every receiver, and one that has exited 0 after the last byte would fail it.
func TestCopyChunksNoEmptyWrite(t *testing.T) {
	for _, n := range []int{0, 2 * ChunkSize} {
		var w writeSizes
		total, err := copyChunks(&w, bytes.NewReader(randomBytes(n)))
		if err != nil || total != int64(n) || len(w.sizes) != n/ChunkSize {
			t.Errorf("%d bytes: copied %d, %v, write sizes %v; want %d writes of 1 MiB", n, total, err, w.sizes, n/ChunkSize)
		}
	}
}

func TestLimitReader(t *testing.T) {
	const rate = 4 << 20
	r := LimitReader(context.Background(), bytes.NewReader(make([]byte, 3<<20)), rate)
	start := time.Now()
	n, err := io.Copy(io.Discard, r)
	d := time.Since(start)
	if err != nil || n != 3<<20 {
		t.Fatalf("read %d, %v", n, err)
	}
	// 3 MiB at 4 MiB/s with a 1 MiB burst: about 0.5 s
	if d < 400*time.Millisecond || d > 2*time.Second {
		t.Errorf("3 MiB at 4 MiB/s took %s", d)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	r = LimitReader(ctx, bytes.NewReader(make([]byte, 10<<20)), 1<<20)
	if _, err := io.Copy(io.Discard, r); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("cancelled limited read: %v", err)
	}
	if LimitReader(ctx, r, 0) != r {
		t.Error("rate 0 should not wrap")
	}
}

// A read the burst covers does not wait, so it returns its bytes even when ctx is done: only a
// wait ends early. (A whole burst leaves no token over; reading it must still not wait.)
func TestLimitReaderBurstDoesNotWait(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for range 32 { // had it waited, each read would fail half the time or more
		r := LimitReader(ctx, bytes.NewReader(make([]byte, 1<<20)), 1<<20) // burst: 256 KiB
		if n, err := r.Read(make([]byte, 256<<10)); n != 256<<10 || err != nil {
			t.Fatalf("read %d, %v; want the whole burst", n, err)
		}
	}
}

func TestFormatProgress(t *testing.T) {
	cases := []struct {
		n, total int64
		el       time.Duration
		want     string
	}{
		{1 << 30, 4 << 30, 10 * time.Second, "slave2  1.0G / 4.0G  25%  102.4M/s  ETA 0:30"},
		{5 << 20, -1, 2 * time.Second, "slave2  5.0M  2.5M/s"},
		{5 << 30, 4 << 30, 50 * time.Second, "slave2  5.0G / 4.0G  99%  102.4M/s  ETA ?"},
		{1 << 20, 100 << 30, time.Second, "slave2  1.0M / 100.0G  0%  1.0M/s  ETA 28:26:39"},
		{1 << 20, 4 << 30, 0, "slave2  1.0M / 4.0G  0%  0B/s  ETA ?"}, // no time yet: no rate, no ETA
		{4 << 30, 4 << 30, 40 * time.Second, "slave2  4.0G / 4.0G  99%  102.4M/s  ETA ?"},
		{5 << 20, 0, 2 * time.Second, "slave2  5.0M  2.5M/s"}, // an estimate of 0: no percentage
	}
	for _, c := range cases {
		if got := FormatProgress("slave2", c.n, c.total, c.el); got != c.want {
			t.Errorf("FormatProgress(%d, %d, %s) = %q, want %q", c.n, c.total, c.el, got, c.want)
		}
	}
	if got := FormatDone("slave2", 3<<30, 30*time.Second, nil); got != "slave2: done, 3.0G in 0:30 (102.4M/s)" {
		t.Errorf("FormatDone = %q", got)
	}
	if got := FormatDone("slave2", 1<<20, 0, nil); got != "slave2: done, 1.0M in 0:00 (0B/s)" {
		t.Errorf("FormatDone = %q", got)
	}
	if got := FormatDone("slave2", 3600<<20, time.Hour, nil); got != "slave2: done, 3.5G in 1:00:00 (1.0M/s)" {
		t.Errorf("FormatDone = %q", got)
	}
	if got := FormatDone("slave2", 1<<20, time.Second, errors.New("boom")); got != "slave2: failed after 1.0M: boom" {
		t.Errorf("FormatDone = %q", got)
	}
}

// Plain output (not a terminal): a line at the start, at each 10 %, and at the end.
func TestProgressPlainLines(t *testing.T) {
	var out syncBuffer
	p := NewProgress(&out)
	l := p.Start("slave2", "incremental zpool/proto@2 -> zpool/proto@3", 1000)
	// the ticks by hand, not by sleeping past the ticker: a loaded machine (a lab beside it)
	// delays a sleeping test's ticks past its next add
	l.add(150)
	p.tick()
	l.add(100)
	p.tick()
	l.add(750)
	l.Done(nil)
	p.Close()
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("lines %q", lines)
	}
	if lines[0] != "slave2: incremental zpool/proto@2 -> zpool/proto@3, about 1000B" ||
		!strings.HasPrefix(lines[1], "slave2  150B / 1000B  15%") ||
		!strings.HasPrefix(lines[2], "slave2  250B / 1000B  25%") ||
		!strings.HasPrefix(lines[3], "slave2: done, 1000B in 0:0") {
		t.Errorf("lines %q", lines)
	}
}

// An estimate of 0 bytes (an empty increment) or none (-1) has no 10 % steps: no line between
// the first and the last, and no division by it.
func TestProgressPlainNoSteps(t *testing.T) {
	for _, total := range []int64{0, -1} {
		var out syncBuffer
		p := NewProgress(&out)
		l := p.Start("slave2", "incremental zpool/proto@2 -> zpool/proto@3", total)
		l.add(500)
		p.tick()
		l.add(2000)
		p.tick()
		l.Done(nil)
		p.Close()
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[0], "slave2: incremental zpool/proto@2 -> zpool/proto@3") ||
			!strings.HasPrefix(lines[1], "slave2: done, 2.4K in ") {
			t.Errorf("total %d: lines %q", total, lines)
		}
	}
}

// Plain output prints a line only when a new 10 % step is reached below 100 %: not for the
// same step again, not once the estimate is passed (an estimate can be short).
func TestProgressPlainSteps(t *testing.T) {
	var out syncBuffer
	p := NewProgress(&out)
	l := p.Start("slave2", "full zpool/proto@3", 1000)
	for _, n := range []int{50, 10, 150, 10, 790, 500} { // 5 %, 6 %, 21 %, 22 %, 100 %, 150 %
		l.add(n)
		p.tick()
	}
	l.Done(nil)
	p.Close()
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "slave2  210B / 1000B  21%") || !strings.HasPrefix(lines[2], "slave2: done, 1.5K in ") {
		t.Errorf("lines %q", lines)
	}
}

// On a terminal every tick redraws each line in place: up over what the last tick drew, then
// each line cleared and written again.
func TestProgressTerminalRedraw(t *testing.T) {
	var out syncBuffer
	p := &Progress{out: &out, tty: true}
	a := p.Start("slave1", "full zpool/proto@3", -1)
	p.Start("slave2", "full zpool/proto@3", -1)
	if out.String() != "" {
		t.Errorf("Start printed %q on a terminal", out.String())
	}
	p.tick()
	first := out.String()
	a.add(1 << 20)
	a.Done(nil)
	p.tick()
	second := strings.TrimPrefix(out.String(), first)
	if !strings.HasPrefix(first, "\r\x1b[Kslave1  0B  ") || strings.Count(first, "\r\x1b[K") != 2 || strings.Contains(first, "\x1b[2A") {
		t.Errorf("first drawing %q", first)
	}
	if !strings.HasPrefix(second, "\x1b[2A\r\x1b[Kslave1: done, 1.0M in ") || strings.Count(second, "\r\x1b[K") != 2 {
		t.Errorf("second drawing %q", second)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestParseSendSize(t *testing.T) {
	out := "incremental\t2\tzpool/proto@3\t4608\nincremental\t2\tzpool/proto/etc@3\t1024\nsize\t5632\n"
	if n, err := ParseSendSize([]byte(out)); err != nil || n != 5632 {
		t.Errorf("ParseSendSize = %d, %v", n, err)
	}
	if _, err := ParseSendSize([]byte("full\tzpool/proto@1\t100\n")); err == nil {
		t.Error("no size line accepted")
	}
	// an empty increment is an estimate of 0 bytes, not a missing one
	if n, err := ParseSendSize([]byte("incremental\t3\tzpool/proto@3\t0\nsize\t0\n")); err != nil || n != 0 {
		t.Errorf("size 0: %d, %v", n, err)
	}
	// a failed read is -1 (unknown) with the error, whatever came before it
	for in, want := range map[string]string{
		"size\t12\nsize\t1x\n":                    `bad size line "size\t1x"`,
		"size\t12\n" + strings.Repeat("x", 2<<20): "token too long",
	} {
		if n, err := ParseSendSize([]byte(in)); n != -1 || err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%.20q: %d, %v; want -1 and %q", in, n, err, want)
		}
	}
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]int64{"": 0, "0": 0, "1000": 1000, "50m": 50 << 20, "50M": 50 << 20, "2g": 2 << 30, "512k": 512 << 10, "10MB/s": 10 << 20} {
		if got, err := ParseRate(in); err != nil || got != want {
			t.Errorf("ParseRate(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"fast", "-5m", "5x"} {
		if _, err := ParseRate(bad); err == nil {
			t.Errorf("ParseRate(%q) accepted", bad)
		}
	}
}
