package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// entries lists dir, failing the test if a temporary file was left behind.
func noTemps(t *testing.T, dir string) {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if strings.HasPrefix(e.Name(), TempPrefix) {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

func TestWriteReplaces(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "fstab.vhost1")
	if err := os.WriteFile(p, []byte("old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Write(p, []byte("new\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(p)
	if err != nil || string(got) != "new\n" {
		t.Fatalf("content %q, %v", got, err)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644 regardless of umask", fi.Mode())
	}
	noTemps(t, dir)
}

// A failure while the content is written leaves the old file untouched.
func TestAbortKeepsOld(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	f, err := CreateIn(d, "f", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("half"); err != nil {
		t.Fatal(err)
	}
	f.Abort() // what a caller does when the rest of its data fails to arrive
	f.Abort()
	if got, _ := os.ReadFile(p); string(got) != "old\n" {
		t.Errorf("content %q after abort, want old", got)
	}
	if err := f.Commit(); err == nil {
		t.Error("Commit after Abort succeeded")
	}
	noTemps(t, dir)
}

// A failing rename (target is a non-empty directory) is reported and cleans up.
func TestWriteFailsCleanly(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "target")
	if err := os.MkdirAll(filepath.Join(p, "keep"), 0o755); err != nil {
		t.Fatal(err)
	}
	err := Write(p, []byte("x"), 0o644)
	if err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("Write over a directory: %v, want an error naming %s", err, p)
	}
	if _, err := os.Stat(filepath.Join(p, "keep")); err != nil {
		t.Errorf("old content gone: %v", err)
	}
	noTemps(t, dir)
	if err := Write(filepath.Join(dir, "missing", "f"), []byte("x"), 0o644); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Write into a missing directory: %v", err)
	}
}

// A symlink at the target is replaced, never written through.
func TestWriteDoesNotFollowSymlink(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "link")
	if err := os.Symlink(victim, p); err != nil {
		t.Fatal(err)
	}
	if err := Write(p, []byte("new\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(victim); string(got) != "secret\n" {
		t.Errorf("symlink target overwritten: %q", got)
	}
	if fi, err := os.Lstat(p); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("target is %v, %v; want a regular file", fi.Mode(), err)
	}
}

func TestChtimes(t *testing.T) {
	dir := t.TempDir()
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	f, err := CreateIn(d, "f", 0o640)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Abort()
	f.WriteString("x")
	mt := time.Date(2010, 3, 11, 12, 0, 0, 123456789, time.UTC)
	if err := f.Chtimes(mt, mt); err != nil {
		t.Fatal(err)
	}
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "f"))
	if err != nil || !fi.ModTime().Equal(mt) || fi.Mode().Perm() != 0o640 {
		t.Errorf("after commit: %v %v %v, want mtime %v mode 0640", fi.ModTime(), fi.Mode(), err, mt)
	}
	if _, err := CreateIn(d, "../x", 0o644); err == nil {
		t.Error("CreateIn accepted ../x")
	}
}
