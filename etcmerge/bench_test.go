package etcmerge

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// synthEtc writes a /etc-like tree: 150 directories, 3,000 files mostly 100 B-8 KiB with a few
// of 100 KiB, 60 symlinks; and a /cfg of 60 files, a third of them overriding base files.
// Some files belong to another user, as in a real /etc: that needs root.
func synthEtc(b *testing.B) dirs {
	b.Helper()
	mustRoot(b)
	return synthTree(b, true)
}

// synthTree is synthEtc's tree; chown: give some files to uid 80 (root only).
func synthTree(b *testing.B, chown bool) dirs {
	b.Helper()
	top := b.TempDir()
	d := dirs{filepath.Join(top, "base"), filepath.Join(top, "cfg"), filepath.Join(top, "etc")}
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 100<<10)
	for i := range buf {
		buf[i] = byte('a' + r.IntN(26))
	}
	var dirNames []string
	for i := range 150 {
		p := fmt.Sprintf("d%03d", i)
		if i >= 30 { // two levels, like rc.d, mail, ssh, local/...
			p = filepath.Join(dirNames[i%30], fmt.Sprintf("s%03d", i))
		}
		dirNames = append(dirNames, p)
		must(b, os.MkdirAll(filepath.Join(d.base, p), 0o755))
	}
	for i := range 3000 {
		size := 100 + r.IntN(8<<10-100)
		if i%300 == 0 {
			size = 100 << 10
		}
		p := filepath.Join(d.base, dirNames[i%150], fmt.Sprintf("f%04d.conf", i))
		must(b, os.WriteFile(p, buf[:size], 0o644))
		if chown && i%50 == 0 {
			must(b, os.Chown(p, 80, 80))
		}
	}
	for i := range 60 {
		must(b, os.Symlink(fmt.Sprintf("f%04d.conf", i), filepath.Join(d.base, dirNames[i%150], fmt.Sprintf("l%04d", i))))
	}
	for i := range 60 {
		dir := dirNames[(i*7)%150]
		must(b, os.MkdirAll(filepath.Join(d.overlay, dir), 0o755))
		name := fmt.Sprintf("c%04d.conf", i)
		if i%3 == 0 {
			name = fmt.Sprintf("f%04d.conf", (i*7)%150)
		}
		must(b, os.WriteFile(filepath.Join(d.overlay, dir, name), buf[:500+i*10], 0o640))
	}
	must(b, os.Mkdir(d.dst, 0o755))
	return d
}

func emptyDst(b *testing.B, dst string) {
	b.StopTimer()
	if err := os.RemoveAll(dst); err != nil {
		b.Fatal(err)
	}
	if err := os.Mkdir(dst, 0o755); err != nil {
		b.Fatal(err)
	}
	b.StartTimer()
}

func BenchmarkBuild(b *testing.B) {
	d := synthEtc(b)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	b.ResetTimer()
	for range b.N {
		emptyDst(b, d.dst)
		if _, err := Build(context.Background(), d.base, d.overlay, d.dst, log); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMeasure is the pre-flight check of the same tree: what Build would write, nothing
// written. It needs no root.
func BenchmarkMeasure(b *testing.B) {
	d := synthTree(b, os.Geteuid() == 0)
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		st, err := Measure(ctx, d.base, d.overlay)
		if err != nil {
			b.Fatal(err)
		}
		if st.Files != 3040 {
			b.Fatalf("Measure counted %d files, want 3,040", st.Files)
		}
	}
}

// BenchmarkCpA is what the paper's jail_etc_init does, for comparison.
func BenchmarkCpA(b *testing.B) {
	d := synthEtc(b)
	b.ResetTimer()
	for range b.N {
		emptyDst(b, d.dst)
		for _, src := range []string{d.base, d.overlay} {
			if out, err := exec.Command("cp", "-a", src+"/.", d.dst+"/").CombinedOutput(); err != nil {
				b.Fatalf("cp -a: %v: %s", err, out)
			}
		}
	}
}
