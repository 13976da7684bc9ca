package etcmerge

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/rollout-dev/rollout/proto/atomicfile"
)

// Drift: a file of /cfg overrides a base file that changed between the base the vhost runs on
// and the one it is about to run on, so the vhost would keep its copy of the old base's file
// (an old sshd_config over a new base) without anyone noticing. Only regular files of /cfg are
// looked at: a symlink, FIFO or socket in /cfg is never opened, a directory only walked.

// Kinds of Drift: what happened to the base file between the old base and the new.
const (
	BaseChanged = "changed" // in both, with different content (or type)
	BaseRemoved = "removed" // in the old base only
	BaseAdded   = "added"   // in the new base only; /cfg already had a file there
)

// MergedFile, in the overlay's root, records which drifted files were merged (or marked
// resolved) against which new base. See readMerged.
const MergedFile = ".rollout-merged"

// Drift is one file of /cfg whose base changed. Path is relative to /etc, as found on disk:
// print it with Escape.
type Drift struct {
	Path string `json:"path"`
	Kind string `json:"base"`
	// newID identifies the new base's entry (see baseID): what a merge is recorded against.
	newID string
}

// ListDrift lists the regular files of overlay that override a base file that differs between
// oldBase and newBase (the /etc of the vhost's snapshot and of the target), leaving out those
// recorded as merged against newBase's version (see readMerged).
func ListDrift(ctx context.Context, oldBase, newBase, overlay string) ([]Drift, error) {
	t, err := openTrees(oldBase, newBase, overlay)
	if err != nil {
		return nil, err
	}
	defer t.close()
	return t.drift(ctx, nil)
}

// trees are the three roots of a drift listing or merge, open.
type trees struct {
	old, new, cfg *os.File
	merged        map[string]string // path -> new base's id it was merged against
}

func openTrees(oldBase, newBase, overlay string) (*trees, error) {
	t := &trees{}
	var err error
	if t.old, err = openRoot(oldBase); err != nil {
		return nil, fmt.Errorf("etc old base: %w", err)
	}
	if t.new, err = openRoot(newBase); err != nil {
		t.close()
		return nil, fmt.Errorf("etc new base: %w", err)
	}
	if t.cfg, err = openRoot(overlay); err != nil {
		t.close()
		return nil, fmt.Errorf("etc overlay: %w", err)
	}
	if t.merged, err = readMerged(t.cfg); err != nil {
		t.close()
		return nil, err
	}
	return t, nil
}

func (t *trees) close() { closeAll(t.old, t.new, t.cfg) }

// drift walks the overlay; only (cleaned relative paths) limits it to those paths and below.
func (t *trees) drift(ctx context.Context, only []string) ([]Drift, error) {
	var out []Drift
	err := walkFiles(ctx, t.cfg, func(rel string) error {
		if len(only) > 0 && !underAny(rel, only) {
			return nil
		}
		oldID, err := baseID(t.old, rel)
		if err != nil {
			return err
		}
		newID, err := baseID(t.new, rel)
		if err != nil {
			return err
		}
		if oldID == newID {
			return nil
		}
		d := Drift{Path: rel, Kind: BaseChanged, newID: newID}
		switch {
		case oldID == "":
			d.Kind = BaseAdded
		case newID == "":
			d.Kind, d.newID = BaseRemoved, removedID
		}
		if t.merged[rel] == d.newID {
			return nil
		}
		out = append(out, d)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("etc drift %s: %w", t.cfg.Name(), err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

func underAny(p string, dirs []string) bool {
	for _, d := range dirs {
		if p == d || strings.HasPrefix(p, d+"/") {
			return true
		}
	}
	return false
}

// walkFiles calls fn with the path of every regular file below the open directory d (the
// root of /cfg), skipping rollout's own files in the root and temporary files.
func walkFiles(ctx context.Context, d *os.File, fn func(string) error) error {
	return walkTree(ctx, d, "", func(p string, e *ent) (bool, error) {
		if p == WhiteoutFile || p == MergedFile || strings.HasPrefix(e.name, tempPrefix) {
			return true, nil
		}
		if e.typ() == unix.S_IFREG {
			return false, fn(p)
		}
		return false, nil
	})
}

// removedID stands for a base entry that is gone.
const removedID = "-"

// baseID identifies the entry rel of a base tree by type and content: "" when there is none,
// "sha256:HEX" for a regular file, "symlink:HEX" (of the target) for a symlink, "dir" for a
// directory, "type:MODE" for anything else.
func baseID(root *os.File, rel string) (string, error) {
	dir, name := path.Split(rel)
	d, err := walk(root, strings.TrimSuffix(dir, "/"))
	if isGone(err) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	defer d.Close()
	e, err := lstatAt(d, name)
	if isGone(err) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	switch e.typ() {
	case unix.S_IFREG:
		f, _, err := openRegular(d, name)
		if err != nil {
			return "", err
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return "", fmt.Errorf("read %s: %w", f.Name(), err)
		}
		return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
	case unix.S_IFLNK:
		target, err := readlinkAt(d, name)
		if err != nil {
			return "", err
		}
		sum := sha256.Sum256([]byte(target))
		return "symlink:" + hex.EncodeToString(sum[:]), nil
	case unix.S_IFDIR:
		return "dir", nil
	}
	return fmt.Sprintf("type:%o", e.typ()), nil
}

// isGone: a path, or a directory on the way to it, is missing, or is not a directory (or is
// a symlink, which is never followed: O_NOFOLLOW fails with ELOOP on Linux, EMLINK on FreeBSD).
func isGone(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EMLINK)
}

// openRegular opens name in d for reading, without following a symlink and without waiting
// on a FIFO (O_NONBLOCK), and refuses anything but a regular file once it is open: what lstat
// said a moment before may have been swapped since.
func openRegular(d *os.File, name string) (*os.File, unix.Stat_t, error) {
	var st unix.Stat_t
	p := filepath.Join(d.Name(), name)
	fd, err := unix.Openat(int(d.Fd()), name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, st, &os.PathError{Op: "open", Path: p, Err: err}
	}
	f := os.NewFile(uintptr(fd), p)
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return nil, st, &os.PathError{Op: "stat", Path: p, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		f.Close()
		return nil, st, fmt.Errorf("%s: not a regular file (mode %#o)", Escape(p), st.Mode)
	}
	return f, st, nil
}

// readMerged reads /cfg/.rollout-merged: one line per merged file, "ID PATH", ID being the
// new base's entry as baseID gives it ("-" when the new base has none) and PATH quoted as Go
// quotes strings (tenant file names may hold any byte but NUL and '/'). A drifted file whose
// new base entry is the one recorded was merged against it, and is not listed again; once the
// base changes again, the ID differs and the file drifts anew. The record is in the tenant's
// /cfg, so a tenant can hide drift of its own files from these warnings, and nothing more: it is
// read with the whiteout list's care and never copied into the jail's /etc. A missing record is
// an empty one.
func readMerged(o *os.File) (map[string]string, error) {
	data, err := readRootFile(o, MergedFile)
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		id, q, ok := strings.Cut(line, " ")
		p, err := strconv.Unquote(q)
		if !ok || err != nil {
			return nil, fmt.Errorf("%s:%d: not \"ID \\\"PATH\\\"\"", filepath.Join(o.Name(), MergedFile), n)
		}
		m[p] = id
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(o.Name(), MergedFile), err)
	}
	return m, nil
}

// writeMerged records the paths of add (path -> new base id) on top of what is recorded,
// replacing the record atomically.
func writeMerged(o *os.File, add map[string]string) error {
	if len(add) == 0 {
		return nil
	}
	m, err := readMerged(o)
	if err != nil {
		return err
	}
	for p, id := range add {
		m[p] = id
	}
	paths := make([]string, 0, len(m))
	for p := range m {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var b bytes.Buffer
	b.WriteString("# written by rollout etc merge: the new base each file was merged against\n")
	for _, p := range paths {
		fmt.Fprintf(&b, "%s %s\n", m[p], strconv.Quote(p))
	}
	f, err := atomicfile.CreateIn(o, MergedFile, 0o644)
	if err != nil {
		return err
	}
	defer f.Abort()
	if _, err := f.Write(b.Bytes()); err != nil {
		return err
	}
	return f.Commit()
}

// readRootFile reads name in the open overlay root, as readWhiteoutRaw reads the whiteout list.
func readRootFile(o *os.File, name string) ([]byte, error) {
	f, _, err := openRegular(o, name)
	if errors.Is(err, unix.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 1<<20))
}
