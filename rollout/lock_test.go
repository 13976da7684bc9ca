package rollout

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Issue 8, finding 1: two acquisitions exclude each other; the second names the holder.
func TestLockExcludes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	l, err := AcquireLock(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := AcquireLock(dir); err == nil || !strings.Contains(err.Error(), "another rollout is running (pid "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("second acquisition: %v; want it refused, naming pid %d", err, os.Getpid())
	}
	l.Release()
	l2, err := AcquireLock(dir)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	l2.Release()
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("state_dir made with mode %v (%v), want 0700", fi.Mode().Perm(), err)
	}
}

// Issue 8, finding 1: a symbolic link planted at state_dir/lock was followed and its target
// truncated (rollout runs as root).
func TestLockRefusesSymlink(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "state")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(tmp, "precious")
	if err := os.WriteFile(target, []byte("do not truncate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(dir, "lock")); err != nil {
		t.Fatal(err)
	}
	// the refusal names the cause: open's own ELOOP reads "too many levels of symbolic links"
	if l, err := AcquireLock(dir); err == nil || !strings.Contains(err.Error(), "is a symbolic link; refusing") {
		l.Release()
		t.Fatalf("lock through a symlink: %v; want it refused", err)
	}
	if b, err := os.ReadFile(target); err != nil || string(b) != "do not truncate\n" {
		t.Errorf("the symlink's target became %q (%v)", b, err)
	}
	// a FIFO there must neither block nor be used
	if err := os.Remove(filepath.Join(dir, "lock")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(dir, "lock"), 0o600); err != nil {
		t.Fatal(err)
	}
	if l, err := AcquireLock(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		l.Release()
		t.Fatalf("lock on a FIFO: %v; want it refused", err)
	}
}

// Issue 8, finding 1: a state directory others may write to is refused (they could swap the
// lock file between runs).
func TestLockRefusesWritableStateDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if l, err := AcquireLock(dir); err == nil || !strings.Contains(err.Error(), "writable by group or others") {
		l.Release()
		t.Fatalf("world-writable state_dir: %v; want it refused", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "lock")); err == nil {
		t.Error("a lock file was made in the refused directory")
	}
}
