package etcmerge

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Every kind of change a tenant can make to /cfg moves the fingerprint; reading it twice
// without a change does not.
func TestFingerprintChanges(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"ssh", "rc.conf.d"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"rc.conf", "ssh/sshd_config", "rc.conf.d/sshd"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x=1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	fp := func() string {
		t.Helper()
		s, err := Fingerprint(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	last := fp()
	if again := fp(); again != last || len(last) != 64 {
		t.Fatalf("unchanged tree: %q then %q", last, again)
	}
	for _, c := range []struct {
		what string
		do   func() error
	}{
		// same size: only the times tell
		{"content edit", func() error { return os.WriteFile(filepath.Join(dir, "ssh/sshd_config"), []byte("x=2\n"), 0o644) }},
		{"rename", func() error {
			return os.Rename(filepath.Join(dir, "rc.conf.d/sshd"), filepath.Join(dir, "rc.conf.d/sshd2"))
		}},
		{"chmod", func() error { return os.Chmod(filepath.Join(dir, "rc.conf"), 0o600) }},
		{"new file", func() error { return os.WriteFile(filepath.Join(dir, WhiteoutFile), []byte("motd\n"), 0o644) }},
		{"symlink retargeted", func() error {
			if err := os.Remove(filepath.Join(dir, "link")); err != nil {
				return err
			}
			return os.Symlink("/etc/group", filepath.Join(dir, "link"))
		}},
		{"removal", func() error { return os.Remove(filepath.Join(dir, "rc.conf")) }},
	} {
		// file times come from a clock that ticks every few ms on some systems
		time.Sleep(20 * time.Millisecond)
		if err := c.do(); err != nil {
			t.Fatal(err)
		}
		now := fp()
		if now == last {
			t.Errorf("%s: fingerprint unchanged", c.what)
		}
		last = now
	}
}

// A FIFO in /cfg is lstat()ed, never opened: the fingerprint does not wait for a writer.
func TestFingerprintFIFODoesNotBlock(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"p", "sub/q", WhiteoutFile} {
		if err := syscall.Mkfifo(filepath.Join(dir, p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var a, b string
	if err := withTimeout(t, "Fingerprint", func() (err error) { a, err = Fingerprint(context.Background(), dir); return err }); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	if err := os.Remove(filepath.Join(dir, "sub/q")); err != nil {
		t.Fatal(err)
	}
	if err := withTimeout(t, "Fingerprint", func() (err error) { b, err = Fingerprint(context.Background(), dir); return err }); err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Error("removing a FIFO did not change the fingerprint")
	}
}

// The root itself must be a directory, not a symlink to one.
func TestFingerprintRefusesSymlinkRoot(t *testing.T) {
	tmp := t.TempDir()
	if err := os.Symlink(t.TempDir(), filepath.Join(tmp, "cfg")); err != nil {
		t.Fatal(err)
	}
	if _, err := Fingerprint(context.Background(), filepath.Join(tmp, "cfg")); err == nil {
		t.Fatal("a symlinked root was followed")
	}
}
