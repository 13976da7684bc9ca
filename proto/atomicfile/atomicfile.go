// Package atomicfile replaces files so that a reader (or a crash) sees either the old content or
// the new, never a mix: write a temporary file in the same directory, fsync it, rename it over
// the target, fsync the directory so the rename itself is durable.
package atomicfile

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// TempPrefix begins the name of every temporary file, so leftovers of a crash can be recognised.
const TempPrefix = ".rollout-tmp-"

// Write replaces path with data, mode perm. The old content stays in place if anything fails,
// and no temporary file is left behind.
func Write(path string, data []byte, perm os.FileMode) error {
	dir, err := os.OpenFile(filepath.Dir(path), os.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer dir.Close()
	f, err := CreateIn(dir, filepath.Base(path), perm)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer f.Abort()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Commit(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// File is a temporary file that replaces Name in its directory on Commit. Write to it through
// the embedded *os.File; call Abort (idempotent, also after Commit) on every path.
type File struct {
	*os.File
	dir  *os.File
	name string
	tmp  string
	done bool
}

// CreateIn starts replacing name inside the open directory dir. Working relative to a
// directory descriptor means a symlink swapped into the path cannot redirect the write.
func CreateIn(dir *os.File, name string, perm os.FileMode) (*File, error) {
	if name == "" || name == "." || name == ".." || filepath.Base(name) != name {
		return nil, fmt.Errorf("atomicfile: %q is not a file name", name)
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	tmp := TempPrefix + hex.EncodeToString(b[:])
	fd, err := unix.Openat(int(dir.Fd()), tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, &os.PathError{Op: "create", Path: filepath.Join(dir.Name(), tmp), Err: err}
	}
	f := &File{File: os.NewFile(uintptr(fd), filepath.Join(dir.Name(), tmp)), dir: dir, name: name, tmp: tmp}
	// O_CREAT's mode is filtered by the umask; the caller asked for exactly perm
	if err := f.Chmod(perm); err != nil {
		f.Abort()
		return nil, err
	}
	return f, nil
}

// Chtimes sets the temporary file's access and modification times; call it after the last
// write, since writing updates mtime.
func (f *File) Chtimes(atime, mtime time.Time) error {
	ts := []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
	if err := unix.UtimesNanoAt(int(f.dir.Fd()), f.tmp, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "chtimes", Path: f.File.Name(), Err: err}
	}
	return nil
}

// Commit makes the new content durable and puts it in place of the target.
func (f *File) Commit() error {
	if f.done {
		return errors.New("atomicfile: already committed or aborted")
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	dfd := int(f.dir.Fd())
	if err := unix.Renameat(dfd, f.tmp, dfd, f.name); err != nil {
		return &os.LinkError{Op: "rename", Old: f.tmp, New: filepath.Join(f.dir.Name(), f.name), Err: err}
	}
	f.done = true
	// without this a crash can forget the rename although the data is on disk
	if err := unix.Fsync(dfd); err != nil {
		return &os.PathError{Op: "fsync", Path: f.dir.Name(), Err: err}
	}
	return nil
}

// Abort removes the temporary file unless Commit renamed it into place.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.Close()
	_ = unix.Unlinkat(int(f.dir.Fd()), f.tmp, 0)
}
