package etcmerge

import (
	"context"
	"crypto/sha256"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The tests of Measure run without root: the trees belong to the user running them.

// longTarget is a symlink target too long for a UFS2 inode (more than 120 bytes).
var longTarget = "../" + strings.Repeat("x", 150)

// measureTree makes a base and an overlay owned by the caller, and an empty dst. Every file's
// atime is set before its mtime, so that reading it would change its atime (relatime).
func measureTree(t *testing.T) dirs {
	t.Helper()
	top := t.TempDir()
	d := dirs{filepath.Join(top, "base"), filepath.Join(top, "cfg"), filepath.Join(top, "etc")}
	files := map[string]int{ // path: size
		"base/a.conf": 100, "base/big": 5000, "base/empty": 0, "base/d/x": 10, "base/motd": 7, "base/gone/f": 1,
		"cfg/a.conf": 200, "cfg/d/y": 4096,
	}
	for _, p := range []string{"base/d", "base/gone", "cfg/d", "cfg/n", "etc"} {
		if err := os.MkdirAll(filepath.Join(top, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for p, n := range files {
		if err := os.WriteFile(filepath.Join(top, p), []byte(strings.Repeat("z", n)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for p, target := range map[string]string{"base/l": "a.conf", "cfg/long": longTarget} {
		if err := os.Symlink(target, filepath.Join(top, p)); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(d.overlay, "p"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d.overlay, WhiteoutFile), []byte("motd\ngone\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for p := range files {
		if err := os.Chtimes(filepath.Join(top, p), t0, t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// measureTreeStats is what Build writes of measureTree: a.conf (the overlay's), big, empty, d/x,
// d/y; the directories d and n; the symlinks l and long. The FIFO p is skipped; motd and gone
// are removed by the whiteout list.
var measureTreeStats = Stats{Files: 5, Dirs: 2, Symlinks: 2, Removed: 2,
	Bytes: 200 + 5000 + 0 + 10 + 4096,
	Need: (1+2+0+1+1)*4096 + 5*512 + // files: blocks and inodes
		2*(4096+512) + // directories
		2*512 + 4096, // symlinks: inodes, and a block for the long target
}

func TestMeasureCounts(t *testing.T) {
	d := measureTree(t)
	st, err := Measure(context.Background(), d.base, d.overlay)
	if err != nil {
		t.Fatal(err)
	}
	if st != measureTreeStats {
		t.Errorf("Measure = %+v, want %+v", st, measureTreeStats)
	}
}

// No overlay ("") is base alone: what Build makes of base and an empty overlay directory.
func TestMeasureNoOverlay(t *testing.T) {
	d := measureTree(t)
	ctx := context.Background()
	st, err := Measure(ctx, d.base, "")
	if err != nil {
		t.Fatal(err)
	}
	// a.conf 100, big 5000, empty, d/x 10, motd 7, gone/f 1; d and gone; l
	want := Stats{Files: 6, Dirs: 2, Symlinks: 1, Bytes: 100 + 5000 + 0 + 10 + 7 + 1,
		Need: (1+2+0+1+1+1)*4096 + 6*512 + 2*(4096+512) + 512}
	if st != want {
		t.Errorf("Measure(base, \"\") = %+v, want %+v", st, want)
	}
	empty := t.TempDir()
	b, err := Build(ctx, d.base, empty, d.dst, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if b != st {
		t.Errorf("Build with an empty overlay = %+v, Measure(base, \"\") = %+v", b, st)
	}
	if _, err := Measure(ctx, filepath.Join(d.base, "nope"), ""); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("missing base: %v", err)
	}
}

// The whiteout list leaves base entries out of the count as out of the copy.
func TestMeasureWhiteoutReducesCounts(t *testing.T) {
	d := measureTree(t)
	ctx := context.Background()
	with, err := Measure(ctx, d.base, d.overlay)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(d.overlay, WhiteoutFile)); err != nil {
		t.Fatal(err)
	}
	without, err := Measure(ctx, d.base, d.overlay)
	if err != nil {
		t.Fatal(err)
	}
	// motd (7 bytes) and gone/f (1 byte), and the directory gone
	want := with
	want.Files += 2
	want.Dirs++
	want.Bytes += 7 + 1
	want.Need += 2*(4096+512) + 4096 + 512
	want.Removed = 0
	if without != want {
		t.Errorf("without whiteouts: %+v, want %+v", without, want)
	}
	if with.Removed != 2 || with.Files >= without.Files || with.Dirs >= without.Dirs {
		t.Errorf("whiteouts did not reduce the counts: with %+v, without %+v", with, without)
	}
}

// Measure returns what Build returns: on a tree of the caller's own (no root needed) and on
// Build's fixture (root, for its owners).
func TestMeasureMatchesBuild(t *testing.T) {
	check := func(t *testing.T, d dirs) {
		ctx := context.Background()
		m, err := Measure(ctx, d.base, d.overlay)
		if err != nil {
			t.Fatal(err)
		}
		b, err := Build(ctx, d.base, d.overlay, d.dst, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		if m != b {
			t.Errorf("Measure = %+v, Build = %+v", m, b)
		}
	}
	t.Run("own tree", func(t *testing.T) { check(t, measureTree(t)) })
	t.Run("fixture", func(t *testing.T) { check(t, fixture(t)) })
}

// withTimeout fails the test if f has not returned within a few seconds: a FIFO opened for
// reading waits for a writer forever.
func withTimeout(t *testing.T, what string, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("%s blocked", what)
		return nil
	}
}

func TestMeasureFIFODoesNotBlock(t *testing.T) {
	d := measureTree(t)
	ctx := context.Background()
	// a FIFO deeper down, and one in place of base's directory d
	if err := syscall.Mkfifo(filepath.Join(d.overlay, "n", "q"), 0o644); err != nil {
		t.Fatal(err)
	}
	var st Stats
	err := withTimeout(t, "Measure", func() (err error) { st, err = Measure(ctx, d.base, d.overlay); return err })
	if err != nil || st != measureTreeStats {
		t.Errorf("FIFOs: Measure = %+v, %v; want %+v", st, err, measureTreeStats)
	}
	if err := os.RemoveAll(filepath.Join(d.overlay, "d")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(d.overlay, "d"), 0o644); err != nil {
		t.Fatal(err)
	}
	err = withTimeout(t, "Measure", func() (err error) { st, err = Measure(ctx, d.base, d.overlay); return err })
	if err != nil || st.Files != measureTreeStats.Files-2 || st.Dirs != measureTreeStats.Dirs-1 {
		t.Errorf("FIFO over a directory: Measure = %+v, %v; want d and its files skipped", st, err)
	}
	// the whiteout list itself: refused, by Measure and by Build, rather than waited on
	wo := filepath.Join(d.overlay, WhiteoutFile)
	if err := os.Remove(wo); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(wo, 0o644); err != nil {
		t.Fatal(err)
	}
	err = withTimeout(t, "Measure", func() error { _, err := Measure(ctx, d.base, d.overlay); return err })
	if err == nil || !strings.Contains(err.Error(), WhiteoutFile) || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("FIFO as the whiteout list: Measure err = %v", err)
	}
	err = withTimeout(t, "Build", func() error {
		_, err := Build(ctx, d.base, d.overlay, d.dst, slog.New(slog.DiscardHandler))
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("FIFO as the whiteout list: Build err = %v", err)
	}
}

func TestMeasureRefusesDeviceNode(t *testing.T) {
	for _, side := range []string{"base", "overlay"} {
		d := measureTree(t)
		dir := map[string]string{"base": d.base, "overlay": d.overlay}[side]
		node := filepath.Join(dir, "d", "null")
		if err := syscall.Mknod(node, syscall.S_IFCHR|0o666, 0x103); err != nil {
			t.Skipf("mknod (needs root): %v", err)
		}
		_, err := Measure(context.Background(), d.base, d.overlay)
		if err == nil || !strings.Contains(err.Error(), node) || !strings.Contains(err.Error(), "device node") {
			t.Errorf("device node in %s: err = %v, want an error naming %s", side, err, node)
		}
	}
}

func TestMeasureCanceled(t *testing.T) {
	d := measureTree(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Measure(ctx, d.base, d.overlay); err == nil {
		t.Error("Measure with a canceled context succeeded")
	}
}

// meta is what lstat tells of one path: anything written, chmod, chown or utimes would change
// it, and so would reading a file (atime) on a file system that records access times.
type fsMeta struct {
	Mode                fs.FileMode
	UID, GID            uint32
	Size                int64
	Ino                 uint64
	Atime, Mtime, Ctime unix.Timespec
	Target              string // symlinks
}

// metaOf lstats every path under root; it opens directories only, so a FIFO does not block it.
// Directories' atimes are left out: listing them is what Measure does.
func metaOf(t *testing.T, root string) map[string]fsMeta {
	t.Helper()
	m := map[string]fsMeta{}
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		// readlink first: it sets the symlink's atime, which the lstat below is to see as is
		target, _ := os.Readlink(p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		var st unix.Stat_t // x/sys names the times alike on Linux and FreeBSD
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		e := fsMeta{Mode: fi.Mode(), UID: st.Uid, GID: st.Gid, Size: st.Size, Ino: uint64(st.Ino), Mtime: st.Mtim, Ctime: st.Ctim}
		if !fi.IsDir() && fi.Name() != WhiteoutFile { // Measure reads the whiteout list
			e.Atime = st.Atim
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			e.Target = target
		}
		m[p] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// contentOf is the checksum of every regular file under root.
func contentOf(t *testing.T, root string) map[string][32]byte {
	t.Helper()
	m := map[string][32]byte{}
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil || !e.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		m[p] = sha256.Sum256(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Measure writes nothing: under the test's temporary directory every file's content and every
// entry's metadata are unchanged, no entry is new, and no file but the whiteout list was read.
func TestMeasureWritesNothing(t *testing.T) {
	d := measureTree(t)
	root := filepath.Dir(d.base)
	content := contentOf(t, root)
	// reading the files for their checksums set their atimes: put them behind the mtimes
	// again, so that a read by Measure would move them (relatime)
	for p := range content {
		if err := os.Chtimes(p, t0, t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	before := metaOf(t, root)
	if err := withTimeout(t, "Measure", func() error { _, err := Measure(context.Background(), d.base, d.overlay); return err }); err != nil {
		t.Fatal(err)
	}
	after := metaOf(t, root)
	for p, b := range before {
		if a, ok := after[p]; !ok {
			t.Errorf("%s: gone", p)
		} else if a != b {
			t.Errorf("%s: changed:\n%+v\n%+v", p, b, a)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s: new", p)
		}
	}
	got := contentOf(t, root)
	if len(got) != len(content) {
		t.Errorf("%d files, want %d", len(got), len(content))
	}
	for p, sum := range content {
		if got[p] != sum {
			t.Errorf("%s: content changed", p)
		}
	}
}
