package etcmerge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/rollout-dev/rollout/proto/atomicfile"
)

// Save copies paths of the live /etc (relative to /etc) into the overlay with their owner, mode
// and times, each file atomically, so that Build gives back what is live. A directory path also
// saves every change below it. A path missing from the live /etc is removed from the overlay
// and, when base has it, added to the whiteout list. With no paths, every Edited, Added and
// Removed path of Diff is saved; then an empty live /etc is refused, as it means the jail's /etc
// is not mounted rather than that the admin deleted everything. Save returns the paths saved.
func Save(ctx context.Context, base, overlay, live string, paths []string, log *slog.Logger) ([]string, error) {
	if log == nil {
		log = slog.Default()
	}
	want, err := savePaths(ctx, base, overlay, live, paths, log)
	if err != nil {
		return nil, err
	}
	b, o, m, err := openSources(base, overlay)
	if err != nil {
		return nil, err
	}
	defer closeAll(b, o)
	l, err := openRoot(live)
	if err != nil {
		return nil, fmt.Errorf("etc save: %w", err)
	}
	defer l.Close()
	s := &saver{b: b, o: o, l: l, m: m, log: log}
	var saved []string
	for _, p := range want {
		if err := ctx.Err(); err != nil {
			return saved, err
		}
		ok, err := s.save(p)
		if err != nil {
			return saved, fmt.Errorf("etc save %s to %s: %w", p, overlay, err)
		}
		if ok {
			saved = append(saved, p)
		}
	}
	if err := s.finish(); err != nil {
		return saved, fmt.Errorf("etc save to %s: %w", overlay, err)
	}
	return saved, nil
}

// savePaths checks the requested paths and adds the changes below them.
func savePaths(ctx context.Context, base, overlay, live string, paths []string, log *slog.Logger) ([]string, error) {
	changes, err := Diff(ctx, base, overlay, live)
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	if len(paths) == 0 {
		if empty, err := isEmpty(live); err != nil || empty {
			if err == nil {
				err = fmt.Errorf("live /etc %s is empty: is the jail's /etc mounted?", live)
			}
			return nil, fmt.Errorf("etc save: %w", err)
		}
		for _, c := range changes {
			if c.Path == WhiteoutFile || c.Path == MergedFile {
				log.Warn("etc save: not saving a live file named like rollout's own files in /cfg", "path", filepath.Join(live, c.Path))
				continue
			}
			if c.Kind != Overrides {
				set[c.Path] = true
			}
		}
	}
	for _, p := range paths {
		c, err := cleanRel(p)
		if err != nil {
			return nil, fmt.Errorf("etc save: %w", err)
		}
		if c == WhiteoutFile || c == MergedFile {
			return nil, fmt.Errorf("etc save: %q is rollout's own file in /cfg, not a file of /etc", p)
		}
		set[c] = true
		for _, ch := range changes {
			if ch.Kind != Overrides && strings.HasPrefix(ch.Path, c+"/") {
				set[ch.Path] = true
			}
		}
	}
	want := make([]string, 0, len(set))
	for p := range set {
		want = append(want, p)
	}
	// parents before their children
	sort.Strings(want)
	return want, nil
}

func isEmpty(dir string) (bool, error) {
	es, err := os.ReadDir(dir)
	if err != nil {
		return false, err
	}
	for _, e := range es {
		if e.Name() != ".snap" {
			return false, nil
		}
	}
	return true, nil
}

type saver struct {
	b, o, l  *os.File
	m        *merger
	log      *slog.Logger
	removed  []string // removed in this run: their descendants need nothing more
	whiteout []string // to add to the list
	dirs     []dirTime
}

// dirTime is an overlay directory whose times are set at the end, after its contents changed.
type dirTime struct {
	rel string
	src ent
}

// walk opens the directory rel below root, component by component, never following a symlink.
func walk(root *os.File, rel string) (*os.File, error) {
	d, err := openDir(root, ".")
	if err != nil || rel == "." || rel == "" {
		return d, err
	}
	for _, c := range strings.Split(rel, "/") {
		next, err := openDir(d, c)
		d.Close()
		if err != nil {
			return nil, err
		}
		d = next
	}
	return d, nil
}

func (s *saver) save(p string) (bool, error) {
	for _, r := range s.removed {
		if strings.HasPrefix(p, r+"/") {
			return false, nil
		}
	}
	dir, name := path.Split(p)
	dir = strings.TrimSuffix(dir, "/")
	lp, err := walk(s.l, dir)
	var le ent
	if err == nil {
		defer lp.Close()
		le, err = lstatAt(lp, name)
	}
	if errors.Is(err, unix.ENOENT) {
		return true, s.remove(p, dir, name)
	}
	if err != nil {
		return false, err
	}
	if t := le.typ(); t == unix.S_IFIFO || t == unix.S_IFSOCK {
		s.log.Warn("etc save: skipping FIFO or socket", "path", le.path())
		return false, nil
	} else if t != unix.S_IFREG && t != unix.S_IFDIR && t != unix.S_IFLNK {
		return false, fmt.Errorf("%s: device node (mode %#o) does not belong in /etc", le.path(), le.st.Mode)
	}
	op, err := s.overlayDir(dir)
	if err != nil {
		return false, err
	}
	defer op.Close()
	switch le.typ() {
	case unix.S_IFREG:
		return true, saveFile(&le, op, name)
	case unix.S_IFLNK:
		return true, saveSymlink(&le, op, name)
	}
	if err := mkdirAt(op, name); err != nil {
		return false, err
	}
	od, err := openDir(op, name)
	if err != nil {
		return false, err
	}
	defer od.Close()
	if err := setMeta(op, name, int(od.Fd()), &le); err != nil {
		return false, err
	}
	s.dirs = append(s.dirs, dirTime{rel: p, src: le})
	return true, nil
}

// overlayDir opens the overlay's directory rel, making missing directories like the live ones.
func (s *saver) overlayDir(rel string) (*os.File, error) {
	od, err := openDir(s.o, ".")
	if err != nil || rel == "" {
		return od, err
	}
	ld, err := openDir(s.l, ".")
	if err != nil {
		od.Close()
		return nil, err
	}
	defer func() { ld.Close() }()
	cur := ""
	for _, c := range strings.Split(rel, "/") {
		cur = path.Join(cur, c)
		le, err := lstatAt(ld, c)
		if err == nil && le.typ() != unix.S_IFDIR {
			err = fmt.Errorf("%s is not a directory", le.path())
		}
		created := false
		if err == nil {
			var oe ent
			if oe, err = lstatAt(od, c); err != nil || oe.typ() != unix.S_IFDIR {
				created = true
				// missing, or a file or symlink where the live /etc has a directory
				if err = mkdirAt(od, c); err == nil {
					err = setMeta(od, c, -1, &le)
					s.dirs = append(s.dirs, dirTime{rel: cur, src: le})
				}
			}
		}
		var nextO, nextL *os.File
		if err == nil {
			nextO, err = openDir(od, c)
		}
		if err == nil {
			if nextL, err = openDir(ld, c); err != nil {
				nextO.Close()
			}
		}
		od.Close()
		if err != nil {
			return nil, err
		}
		ld.Close()
		od, ld = nextO, nextL
		if created {
			// setMeta above had no descriptor to chmod through
			if err := unix.Fchmod(int(od.Fd()), le.perm()); err != nil {
				od.Close()
				return nil, &os.PathError{Op: "chmod", Path: od.Name(), Err: err}
			}
		}
	}
	return od, nil
}

// remove handles a path missing from the live /etc.
func (s *saver) remove(p, dir, name string) error {
	s.removed = append(s.removed, p)
	if od, err := walk(s.o, dir); err == nil {
		err = removeAt(od, name)
		od.Close()
		if err != nil {
			return err
		}
	} else if !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENOTDIR) && !errors.Is(err, unix.ELOOP) {
		return err
	}
	for q := p; q != "."; q = path.Dir(q) {
		if s.m.whiteout[q] {
			return nil // base's entry is already hidden
		}
	}
	bd, err := walk(s.b, dir)
	if err != nil {
		return nil // base has no such directory
	}
	defer bd.Close()
	if _, err := lstatAt(bd, name); err == nil {
		s.whiteout = append(s.whiteout, p)
	}
	return nil
}

func saveFile(le *ent, od *os.File, name string) error {
	in, err := openFile(le)
	if err != nil {
		return err
	}
	defer in.Close()
	if oe, err := lstatAt(od, name); err == nil && oe.typ() == unix.S_IFDIR {
		if err := removeAt(od, name); err != nil {
			return err
		}
	}
	f, err := atomicfile.CreateIn(od, name, 0o600)
	if err != nil {
		return err
	}
	defer f.Abort()
	if _, err := copyData(f.File, in, le.st.Size, make([]byte, 64<<10)); err != nil {
		return err
	}
	fd := int(f.Fd())
	if err := unix.Fchown(fd, int(le.st.Uid), int(le.st.Gid)); err != nil {
		return &os.PathError{Op: "chown", Path: f.Name(), Err: err}
	}
	if err := unix.Fchmod(fd, le.perm()); err != nil {
		return &os.PathError{Op: "chmod", Path: f.Name(), Err: err}
	}
	if err := f.Chtimes(timeOf(le.st.Atim), timeOf(le.st.Mtim)); err != nil {
		return err
	}
	return f.Commit()
}

func saveSymlink(le *ent, od *os.File, name string) error {
	target, err := readlinkAt(le.dir, le.name)
	if err != nil {
		return err
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return err
	}
	tmp := tempPrefix + hex.EncodeToString(b[:])
	ofd := int(od.Fd())
	if err := unix.Symlinkat(target, ofd, tmp); err != nil {
		return &os.PathError{Op: "symlink", Path: filepath.Join(od.Name(), tmp), Err: err}
	}
	err = setMeta(od, tmp, -1, le)
	if oe, lerr := lstatAt(od, name); err == nil && lerr == nil && oe.typ() == unix.S_IFDIR {
		err = removeAt(od, name)
	}
	if err == nil {
		if err = unix.Renameat(ofd, tmp, ofd, name); err != nil {
			err = &os.PathError{Op: "rename", Path: filepath.Join(od.Name(), name), Err: err}
		}
	}
	if err != nil {
		_ = unix.Unlinkat(ofd, tmp, 0)
		return err
	}
	return unix.Fsync(ofd)
}

// finish appends to the whiteout list and sets the times of the directories written to.
func (s *saver) finish() error {
	if len(s.whiteout) > 0 {
		old, err := readWhiteoutRaw(s.o)
		if err != nil {
			return err
		}
		if len(old) > 0 && old[len(old)-1] != '\n' {
			old = append(old, '\n')
		}
		f, err := atomicfile.CreateIn(s.o, WhiteoutFile, 0o644)
		if err != nil {
			return err
		}
		defer f.Abort()
		if _, err := f.Write(append(old, strings.Join(s.whiteout, "\n")+"\n"...)); err != nil {
			return err
		}
		if err := f.Commit(); err != nil {
			return err
		}
	}
	// deepest first: setting a directory's times does not change its parent's
	sort.Slice(s.dirs, func(i, j int) bool { return s.dirs[i].rel > s.dirs[j].rel })
	for _, d := range s.dirs {
		dir, name := path.Split(d.rel)
		od, err := walk(s.o, strings.TrimSuffix(dir, "/"))
		if err != nil {
			return err
		}
		err = setTimes(od, name, &d.src)
		od.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
