package etcmerge

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Everything here works relative to open directory descriptors and never follows a symlink:
// /cfg and a running jail's /etc are writable by the jail's root, who could otherwise swap a
// directory for a symlink to the host's files between a check and its use.

// ent is one directory entry of a source tree.
type ent struct {
	dir  *os.File // its parent directory
	name string
	st   unix.Stat_t
}

func (e *ent) typ() uint32  { return uint32(e.st.Mode) & unix.S_IFMT }
func (e *ent) perm() uint32 { return uint32(e.st.Mode) & 0o7777 }
func (e *ent) path() string { return filepath.Join(e.dir.Name(), e.name) }

// item is one entry of the merged tree base+overlay.
type item struct {
	name string
	win  ent // what the result holds: the overlay's entry if it has one, else base's
	// overrides: the overlay replaces an entry of base (directories merging are not overrides).
	overrides bool
	// for a directory: the directories whose contents merge into it (either may be nil)
	baseDir, overDir *ent
}

// merger lists the merged tree one directory at a time.
type merger struct {
	whiteout map[string]bool // relative paths of base entries to leave out
	removed  int
}

func isDir(e *ent) bool { return e != nil && e.typ() == unix.S_IFDIR }

func openRoot(p string) (*os.File, error) {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	return os.NewFile(uintptr(fd), p), nil
}

// openDir opens the directory name in parent, refusing a symlink.
func openDir(parent *os.File, name string) (*os.File, error) {
	fd, err := unix.Openat(int(parent.Fd()), name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: filepath.Join(parent.Name(), name), Err: err}
	}
	return os.NewFile(uintptr(fd), filepath.Join(parent.Name(), name)), nil
}

func lstatAt(dir *os.File, name string) (ent, error) {
	e := ent{dir: dir, name: name}
	if err := unix.Fstatat(int(dir.Fd()), name, &e.st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return e, &os.PathError{Op: "lstat", Path: e.path(), Err: err}
	}
	return e, nil
}

// readDir lists dir's entries with their lstat, sorted by name.
func readDir(dir *os.File) ([]ent, error) {
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dir.Name(), err)
	}
	sort.Strings(names)
	es := make([]ent, 0, len(names))
	for _, n := range names {
		e, err := lstatAt(dir, n)
		if errors.Is(err, unix.ENOENT) {
			continue // removed while we looked
		}
		if err != nil {
			return nil, err
		}
		es = append(es, e)
	}
	return es, nil
}

// list merges the directory rel of base (b) and overlay (o); either may be nil.
func (m *merger) list(rel string, b, o *os.File) ([]*item, error) {
	var bes, oes []ent
	var err error
	if b != nil {
		if bes, err = readDir(b); err != nil {
			return nil, err
		}
	}
	if o != nil {
		if oes, err = readDir(o); err != nil {
			return nil, err
		}
	}
	byName := make(map[string]*item, len(bes)+len(oes))
	items := make([]*item, 0, len(bes)+len(oes))
	for _, e := range bes {
		if m.whiteout[path.Join(rel, e.name)] {
			m.removed++
			continue
		}
		it := &item{name: e.name, win: e}
		if isDir(&e) {
			it.baseDir = &e
		}
		items = append(items, it)
		byName[e.name] = it
	}
	for _, e := range oes {
		if rel == "" && (e.name == WhiteoutFile || e.name == MergedFile) || strings.HasPrefix(e.name, tempPrefix) {
			continue
		}
		it, ok := byName[e.name]
		if !ok {
			it = &item{name: e.name}
			items = append(items, it)
		} else if !isDir(it.baseDir) || !isDir(&e) {
			it.baseDir, it.overrides = nil, true
		}
		it.win = e
		if isDir(&e) {
			it.overDir = &e
		}
	}
	sort.Slice(items, func(i, j int) bool { return items[i].name < items[j].name })
	return items, nil
}

// walkTree calls fn with every entry below the open directory d (at rel), depth first in
// name order, and the entry's path relative to the walk's root; skip leaves a directory's
// contents out. Directories are opened with O_NOFOLLOW|O_DIRECTORY, nothing else is opened,
// so a FIFO cannot block the walk and no symlink is followed.
func walkTree(ctx context.Context, d *os.File, rel string, fn func(p string, e *ent) (skip bool, err error)) error {
	es, err := readDir(d)
	if err != nil {
		return err
	}
	for i := range es {
		if err := ctx.Err(); err != nil {
			return err
		}
		e := &es[i]
		p := path.Join(rel, e.name)
		skip, err := fn(p, e)
		if err != nil {
			return err
		}
		if skip || e.typ() != unix.S_IFDIR {
			continue
		}
		sub, err := openDir(d, e.name)
		if err != nil {
			return err
		}
		err = walkTree(ctx, sub, p, fn)
		sub.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// openSides opens the directories that merge into the directory it.
func openSides(it *item) (b, o *os.File, err error) {
	if it.baseDir != nil {
		if b, err = openDir(it.baseDir.dir, it.baseDir.name); err != nil {
			return nil, nil, err
		}
	}
	if it.overDir != nil {
		if o, err = openDir(it.overDir.dir, it.overDir.name); err != nil {
			closeAll(b)
			return nil, nil, err
		}
	}
	return b, o, nil
}

func closeAll(fs ...*os.File) {
	for _, f := range fs {
		if f != nil {
			f.Close()
		}
	}
}

// removeAt removes name from dir, recursively, without following symlinks.
func removeAt(dir *os.File, name string) error {
	e, err := lstatAt(dir, name)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return err
	}
	if e.typ() == unix.S_IFDIR {
		d, err := openDir(dir, name)
		if err != nil {
			return err
		}
		names, err := d.Readdirnames(-1)
		for _, n := range names {
			if err == nil {
				err = removeAt(d, n)
			}
		}
		d.Close()
		if err != nil {
			return err
		}
		if err := unix.Unlinkat(int(dir.Fd()), name, unix.AT_REMOVEDIR); err != nil {
			return &os.PathError{Op: "remove", Path: e.path(), Err: err}
		}
		return nil
	}
	if err := unix.Unlinkat(int(dir.Fd()), name, 0); err != nil {
		return &os.PathError{Op: "remove", Path: e.path(), Err: err}
	}
	return nil
}

func readlinkAt(dir *os.File, name string) (string, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Readlinkat(int(dir.Fd()), name, buf)
		if err != nil {
			return "", &os.PathError{Op: "readlink", Path: filepath.Join(dir.Name(), name), Err: err}
		}
		if n < len(buf) {
			return string(buf[:n]), nil
		}
		buf = make([]byte, 2*len(buf))
	}
}

// setMeta gives name in dir the owner, mode and times of src. The owner comes first because
// chown clears setuid and setgid bits.
func setMeta(dir *os.File, name string, fd int, src *ent) error {
	p := filepath.Join(dir.Name(), name)
	if fd >= 0 {
		if err := unix.Fchown(fd, int(src.st.Uid), int(src.st.Gid)); err != nil {
			return &os.PathError{Op: "chown", Path: p, Err: err}
		}
		if err := unix.Fchmod(fd, src.perm()); err != nil {
			return &os.PathError{Op: "chmod", Path: p, Err: err}
		}
	} else if err := unix.Fchownat(int(dir.Fd()), name, int(src.st.Uid), int(src.st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "lchown", Path: p, Err: err}
	}
	return setTimes(dir, name, src)
}

func setTimes(dir *os.File, name string, src *ent) error {
	ts := []unix.Timespec{src.st.Atim, src.st.Mtim}
	if err := unix.UtimesNanoAt(int(dir.Fd()), name, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "chtimes", Path: filepath.Join(dir.Name(), name), Err: err}
	}
	return nil
}

// cleanRel checks a path relative to /etc: no '..', not absolute, not empty.
func cleanRel(p string) (string, error) {
	if strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("%q is absolute, want a path relative to /etc", p)
	}
	c := path.Clean(p)
	if c == "." || c == "" {
		return "", fmt.Errorf("%q names /etc itself", p)
	}
	for _, part := range strings.Split(c, "/") {
		if part == ".." {
			return "", fmt.Errorf("%q leaves /etc", p)
		}
	}
	if strings.ContainsAny(c, "\x00\n") {
		return "", fmt.Errorf("%q contains a NUL or newline", p)
	}
	return c, nil
}

func timeOf(ts unix.Timespec) time.Time { return time.Unix(ts.Unix()) }
