package rollout

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Lock keeps two rollout runs that change things apart. It is an flock(2) on a file in the
// state directory: the kernel drops it when the process dies, so a crash never leaves a stale lock.
type Lock struct{ f *os.File }

// AcquireLock takes the lock or fails at once, naming the process that holds it.
//
// rollout runs as root, so the lock file is opened as a planted file would hurt most: never
// through a symbolic link (O_NOFOLLOW: truncating the lock would truncate the link's target),
// never blocking on a FIFO (O_NONBLOCK), not inherited by jail(8) and the other children
// (O_CLOEXEC), and only a regular file with one link is used. The state directory is made
// 0700, and one that others could write to is refused: they could swap the lock file.
func AcquireLock(dir string) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	if err := checkStateDir(dir); err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	name := filepath.Join(dir, "lock")
	fd, err := unix.Open(name, unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0o600)
	if err != nil {
		if fi, lerr := os.Lstat(name); lerr == nil && fi.Mode()&os.ModeSymlink != 0 {
			return nil, fmt.Errorf("lock %s: is a symbolic link; refusing to use it (remove it)", name)
		}
		return nil, fmt.Errorf("lock: %w", &os.PathError{Op: "open", Path: name, Err: err})
	}
	f := os.NewFile(uintptr(fd), name)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock: %w", &os.PathError{Op: "fstat", Path: name, Err: err})
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || uint64(st.Nlink) != 1 {
		f.Close()
		return nil, fmt.Errorf("lock %s: not a regular file with a single link (mode %#o, %d links); refusing to use it (remove it)", name, st.Mode, st.Nlink)
	}
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		holder := "unknown"
		b := make([]byte, 32)
		if n, _ := f.ReadAt(b, 0); n > 0 {
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b[:n]))); perr == nil {
				holder = strconv.Itoa(pid)
			}
		}
		f.Close()
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("lock %s: %w", name, err)
		}
		return nil, fmt.Errorf("another rollout is running (pid %s, lock %s)", holder, name)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &Lock{f: f}, nil
}

// checkStateDir refuses a state directory that is not a directory owned by this user, or that
// group or others may write to.
func checkStateDir(dir string) error {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return &os.PathError{Op: "stat", Path: dir, Err: err}
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		return fmt.Errorf("state_dir %s is not a directory", dir)
	case int(st.Uid) != os.Geteuid():
		return fmt.Errorf("state_dir %s is owned by uid %d, not by uid %d running rollout", dir, st.Uid, os.Geteuid())
	case st.Mode&0o022 != 0:
		return fmt.Errorf("state_dir %s is writable by group or others (mode %#o); chmod go-w it", dir, st.Mode&0o7777)
	}
	return nil
}

// Release gives the lock up.
func (l *Lock) Release() {
	if l != nil && l.f != nil {
		_ = unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
		l.f.Close()
	}
}
