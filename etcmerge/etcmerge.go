// Package etcmerge builds a jail's /etc from two trees, as the paper's jail_etc_init does: the
// prototype snapshot's /etc (base, /jail/vhost1/conf/base/etc), then the vhost's /cfg (overlay,
// /jail/vhost1/cfg) on top, into the jail's freshly made memory file system (/jail/vhost1/etc).
// Diff and Save are the paper's cfgsync: the live /etc is lost at every restart, so edits made
// there must be shown and saved to /cfg.
//
// Merge rules. A file or symlink in the overlay replaces base's entry at the same path; a
// directory in the overlay merges into base's directory (and its owner, mode and times win); an
// entry of one type replaces one of another type whole. Modes (setuid, setgid, sticky
// included), owners and access and modification times are kept; symlinks are copied as
// symlinks and never followed, neither in the sources nor in the destination. Hard links become
// separate copies. FIFOs and sockets are skipped with a warning; a device node is an error.
//
// Removing a base file for one jail: list it in the overlay's root file .rollout-remove
// (/cfg/.rollout-remove), one path relative to /etc per line; blank lines and lines starting
// with '#' are ignored. A listed path, and everything below it when it is a directory, is left
// out of base; the overlay's own entries are still copied, so a listed directory that also
// exists in the overlay holds only the overlay's contents. The list itself is not copied.
// Absolute paths and paths with ".." are refused.
package etcmerge

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/rollout-dev/rollout/proto/atomicfile"
)

// WhiteoutFile, in the overlay's root, lists base paths to leave out.
const WhiteoutFile = ".rollout-remove"

const tempPrefix = atomicfile.TempPrefix

// Stats counts what Build wrote, or what Measure found Build would write.
type Stats struct {
	Files, Dirs, Symlinks int
	Bytes                 int64
	Removed               int // base entries left out because of the whiteout list
	// Need estimates the bytes a fresh file system needs to hold the tree; see addFile.
	Need int64
}

// What a file system spends on each object, for Stats.Need. Need is an estimate, made to be
// compared with the size of the jail's /etc memory disk before a jail is stopped, not an exact
// figure for any one file system. The constants fit both backends: 4 KiB is the fragment of a
// UFS2 from newfs(8) (its smallest allocation: a non-empty file or a directory takes at least
// one) and tmpfs's page (its unit for file data); 512 bytes covers a UFS2 inode (256 bytes)
// plus the entry naming it in its directory (8 bytes + the name, rounded to 4), and tmpfs's
// node and directory entry in kernel memory. Not counted: UFS's own overhead (superblocks,
// cylinder groups, the inode table newfs preallocates, the 8% minfree reserve that root may
// use) and indirect blocks of files above a few hundred KiB; compare with a margin.
const (
	needBlock = 4096
	needInode = 512
	// UFS2 keeps a symlink's target in the inode up to this length (MAXSYMLINKLEN_UFS2);
	// a longer target takes a block
	shortSymlink = 120
)

func roundBlocks(n int64) int64 { return (n + needBlock - 1) / needBlock * needBlock }

func (s *Stats) addFile(size int64) {
	s.Files++
	s.Bytes += size
	s.Need += roundBlocks(size) + needInode
}

func (s *Stats) addDir() {
	s.Dirs++
	s.Need += needBlock + needInode
}

// addSymlink takes the target's length, which lstat reports as the symlink's size.
func (s *Stats) addSymlink(targetLen int64) {
	s.Symlinks++
	s.Need += needInode
	if targetLen >= shortSymlink {
		s.Need += roundBlocks(targetLen)
	}
}

// deviceError refuses a device node: /etc has none, and copying one into a jail would hand
// the jail a device the host did not mean to give it.
func deviceError(e *ent) error {
	return fmt.Errorf("%s: device node (mode %#o) does not belong in /etc", e.path(), e.st.Mode)
}

// Build writes base with overlay on top into dst, an existing directory (the mount point of the
// jail's /etc memory file system), whose own owner, mode and times are then set from base's
// root. Entries already in dst are replaced; others are left alone.
func Build(ctx context.Context, base, overlay, dst string, log *slog.Logger) (Stats, error) {
	var st Stats
	if log == nil {
		log = slog.Default()
	}
	b, o, m, err := openSources(base, overlay)
	if err != nil {
		return st, err
	}
	defer closeAll(b, o)
	d, err := openRoot(dst)
	if err != nil {
		return st, fmt.Errorf("etc: %w", err)
	}
	defer d.Close()
	w := &builder{ctx: ctx, m: m, log: log, buf: make([]byte, 128<<10)}
	if err := w.dir("", b, o, d); err != nil {
		return w.st, fmt.Errorf("etc %s: %w", dst, err)
	}
	root := ent{dir: b, name: "."}
	if err := unix.Fstat(int(b.Fd()), &root.st); err != nil {
		return w.st, fmt.Errorf("etc %s: stat %s: %w", dst, base, err)
	}
	if err := setMeta(d, ".", int(d.Fd()), &root); err != nil {
		return w.st, fmt.Errorf("etc %s: %w", dst, err)
	}
	w.st.Removed = m.removed
	log.Debug("etc built", "dst", dst, "base", base, "overlay", overlay, "files", w.st.Files, "dirs", w.st.Dirs,
		"symlinks", w.st.Symlinks, "bytes", w.st.Bytes, "removed", w.st.Removed, "need", w.st.Need)
	return w.st, nil
}

// openSources opens both roots and reads the overlay's whiteout list.
func openSources(base, overlay string) (b, o *os.File, m *merger, err error) {
	if b, err = openRoot(base); err != nil {
		return nil, nil, nil, fmt.Errorf("etc base: %w", err)
	}
	if o, err = openRoot(overlay); err != nil {
		b.Close()
		return nil, nil, nil, fmt.Errorf("etc overlay: %w", err)
	}
	wo, err := readWhiteout(o)
	if err != nil {
		closeAll(b, o)
		return nil, nil, nil, err
	}
	return b, o, &merger{whiteout: wo}, nil
}

// readWhiteout reads .rollout-remove from the open overlay root; a missing file is an empty list.
func readWhiteout(o *os.File) (map[string]bool, error) {
	data, err := readWhiteoutRaw(o)
	if err != nil {
		return nil, err
	}
	wo := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		p, err := cleanRel(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", filepath.Join(o.Name(), WhiteoutFile), n, err)
		}
		wo[p] = true
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(o.Name(), WhiteoutFile), err)
	}
	return wo, nil
}

// readWhiteoutRaw reads the list. O_NONBLOCK: the overlay is the jail's to write, and opening a
// FIFO planted there as the list would otherwise wait for a writer forever; it has no effect on
// a regular file, and anything else is refused before it is read.
func readWhiteoutRaw(o *os.File) ([]byte, error) {
	p := filepath.Join(o.Name(), WhiteoutFile)
	fd, err := unix.Openat(int(o.Fd()), WhiteoutFile, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &os.PathError{Op: "stat", Path: p, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("%s: not a regular file (mode %#o)", p, st.Mode)
	}
	return io.ReadAll(io.LimitReader(f, 1<<20))
}

type builder struct {
	ctx context.Context
	m   *merger
	log *slog.Logger
	st  Stats
	buf []byte
}

// dir fills d, the destination of directory rel, from b and o.
func (w *builder) dir(rel string, b, o, d *os.File) error {
	items, err := w.m.list(rel, b, o)
	if err != nil {
		return err
	}
	for _, it := range items {
		if err := w.ctx.Err(); err != nil {
			return err
		}
		if err := w.entry(path.Join(rel, it.name), it, d); err != nil {
			return err
		}
	}
	return nil
}

func (w *builder) entry(rel string, it *item, d *os.File) error {
	src := &it.win
	dfd := int(d.Fd())
	switch src.typ() {
	case unix.S_IFDIR:
		if err := mkdirAt(d, it.name); err != nil {
			return err
		}
		dd, err := openDir(d, it.name)
		if err != nil {
			return err
		}
		defer dd.Close()
		bb, oo, err := openSides(it)
		if err != nil {
			return err
		}
		err = w.dir(rel, bb, oo, dd)
		closeAll(bb, oo)
		if err != nil {
			return err
		}
		// after the contents, which change the directory's mtime
		if err := setMeta(d, it.name, int(dd.Fd()), src); err != nil {
			return err
		}
		w.st.addDir()
	case unix.S_IFREG:
		n, err := w.copyFile(src, d, it.name)
		if err != nil {
			return err
		}
		w.st.addFile(n)
	case unix.S_IFLNK:
		target, err := readlinkAt(src.dir, src.name)
		if err != nil {
			return err
		}
		err = unix.Symlinkat(target, dfd, it.name)
		if errors.Is(err, unix.EEXIST) {
			if err = removeAt(d, it.name); err == nil {
				err = unix.Symlinkat(target, dfd, it.name)
			}
		}
		if err != nil {
			return &os.PathError{Op: "symlink", Path: filepath.Join(d.Name(), it.name), Err: err}
		}
		if err := setMeta(d, it.name, -1, src); err != nil {
			return err
		}
		w.st.addSymlink(int64(len(target)))
	case unix.S_IFIFO, unix.S_IFSOCK:
		w.log.Warn("etc: skipping FIFO or socket", "path", src.path())
	default:
		return deviceError(src)
	}
	return nil
}

// mkdirAt makes name a directory in d, replacing whatever else is there.
func mkdirAt(d *os.File, name string) error {
	err := unix.Mkdirat(int(d.Fd()), name, 0o700)
	if errors.Is(err, unix.EEXIST) {
		e, serr := lstatAt(d, name)
		if serr == nil && e.typ() == unix.S_IFDIR {
			return nil
		}
		if err = removeAt(d, name); err == nil {
			err = unix.Mkdirat(int(d.Fd()), name, 0o700)
		}
	}
	if err != nil {
		return &os.PathError{Op: "mkdir", Path: filepath.Join(d.Name(), name), Err: err}
	}
	return nil
}

func openFile(e *ent) (*os.File, error) {
	fd, err := unix.Openat(int(e.dir.Fd()), e.name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: e.path(), Err: err}
	}
	return os.NewFile(uintptr(fd), e.path()), nil
}

// copyFile copies the regular file src to name in d, with src's owner, mode and times.
func (w *builder) copyFile(src *ent, d *os.File, name string) (int64, error) {
	in, err := openFile(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	const flags = unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Openat(int(d.Fd()), name, flags, 0o600)
	if errors.Is(err, unix.EEXIST) {
		// O_EXCL: whatever is there, a symlink included, is removed rather than written through
		if err = removeAt(d, name); err == nil {
			fd, err = unix.Openat(int(d.Fd()), name, flags, 0o600)
		}
	}
	if err != nil {
		return 0, &os.PathError{Op: "create", Path: filepath.Join(d.Name(), name), Err: err}
	}
	out := os.NewFile(uintptr(fd), filepath.Join(d.Name(), name))
	n, err := copyData(out, in, src.st.Size, w.buf)
	if err == nil {
		err = setMeta(d, name, fd, src)
	}
	if cerr := out.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("copy %s: %w", src.path(), err)
	}
	return n, nil
}

// copyData copies in to out. Small files, nearly all of /etc, take one read and one write;
// larger ones go through io.Copy, which uses copy_file_range(2) where the kernel has it.
func copyData(out, in *os.File, size int64, buf []byte) (int64, error) {
	if size >= int64(len(buf)) {
		return io.Copy(out, in)
	}
	var n int64
	for {
		r, err := in.Read(buf)
		if r > 0 {
			if _, werr := out.Write(buf[:r]); werr != nil {
				return n, werr
			}
			n += int64(r)
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}
