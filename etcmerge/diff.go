package etcmerge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"

	"golang.org/x/sys/unix"
)

// Kinds of Change.
const (
	Edited    = "edited"    // in the live /etc, different from what base+overlay gives
	Added     = "added"     // in the live /etc only
	Removed   = "removed"   // in base+overlay, not in the live /etc
	Overrides = "overrides" // the overlay replaces base's entry, and the live /etc agrees
)

// Change is one difference between the live /etc and base+overlay. Path is relative to /etc.
type Change struct {
	Path string
	Kind string
}

// Diff compares the live /etc with what Build makes of base and overlay: type, content, mode,
// owner and symlink target; not times. Each path appears once: Edited, Added or Removed, else
// Overrides. Every path under an added directory is listed; a removed directory is listed alone.
// The root of a UFS memory disk's ".snap" directory is ignored.
func Diff(ctx context.Context, base, overlay, live string) ([]Change, error) {
	b, o, m, err := openSources(base, overlay)
	if err != nil {
		return nil, err
	}
	defer closeAll(b, o)
	l, err := openRoot(live)
	if err != nil {
		return nil, fmt.Errorf("etc diff: %w", err)
	}
	defer l.Close()
	d := &differ{ctx: ctx, m: m}
	if err := d.dir("", b, o, l); err != nil {
		return nil, fmt.Errorf("etc diff %s: %w", live, err)
	}
	sort.Slice(d.out, func(i, j int) bool { return d.out[i].Path < d.out[j].Path })
	return d.out, nil
}

type differ struct {
	ctx context.Context
	m   *merger
	out []Change
	buf [2][]byte
}

func (d *differ) add(p, kind string) { d.out = append(d.out, Change{Path: p, Kind: kind}) }

func (d *differ) dir(rel string, b, o, l *os.File) error {
	items, err := d.m.list(rel, b, o)
	if err != nil {
		return err
	}
	lives, err := readDir(l)
	if err != nil {
		return err
	}
	live := make(map[string]*ent, len(lives))
	for i := range lives {
		live[lives[i].name] = &lives[i]
	}
	for _, it := range items {
		if err := d.ctx.Err(); err != nil {
			return err
		}
		p := path.Join(rel, it.name)
		le, ok := live[it.name]
		delete(live, it.name)
		want := &it.win
		if !ok {
			// Build never puts a FIFO or socket of base or /cfg into /etc: its absence is no
			// removal, and must not make etc save delete the tenant's entry from /cfg
			if t := want.typ(); t != unix.S_IFIFO && t != unix.S_IFSOCK {
				d.add(p, Removed)
			}
			continue
		}
		if want.typ() != le.typ() {
			d.add(p, Edited)
			if le.typ() == unix.S_IFDIR {
				if err := d.added(p, le); err != nil {
					return err
				}
			}
			continue
		}
		same, err := d.same(want, le)
		if err != nil {
			return err
		}
		switch {
		case !same:
			d.add(p, Edited)
		case it.overrides:
			d.add(p, Overrides)
		}
		if want.typ() == unix.S_IFDIR {
			bb, oo, err := openSides(it)
			if err != nil {
				return err
			}
			ll, err := openDir(l, it.name)
			if err == nil {
				err = d.dir(p, bb, oo, ll)
				ll.Close()
			}
			closeAll(bb, oo)
			if err != nil {
				return err
			}
		}
	}
	for _, le := range lives {
		if _, ok := live[le.name]; !ok || rel == "" && le.name == ".snap" && le.typ() == unix.S_IFDIR {
			continue
		}
		p := path.Join(rel, le.name)
		d.add(p, Added)
		if le.typ() == unix.S_IFDIR {
			if err := d.added(p, &le); err != nil {
				return err
			}
		}
	}
	return nil
}

// added lists everything below the live directory e as added.
func (d *differ) added(rel string, e *ent) error {
	dir, err := openDir(e.dir, e.name)
	if err != nil {
		return err
	}
	defer dir.Close()
	es, err := readDir(dir)
	if err != nil {
		return err
	}
	for i := range es {
		p := path.Join(rel, es[i].name)
		d.add(p, Added)
		if es[i].typ() == unix.S_IFDIR {
			if err := d.added(p, &es[i]); err != nil {
				return err
			}
		}
	}
	return nil
}

// same compares two entries of the same type, but not their times.
func (d *differ) same(a, b *ent) (bool, error) {
	if a.st.Uid != b.st.Uid || a.st.Gid != b.st.Gid {
		return false, nil
	}
	switch a.typ() {
	case unix.S_IFLNK:
		// a symlink's own mode means nothing on Linux and is rarely set on FreeBSD
		ta, err := readlinkAt(a.dir, a.name)
		if err != nil {
			return false, err
		}
		tb, err := readlinkAt(b.dir, b.name)
		return err == nil && ta == tb, err
	case unix.S_IFREG:
		if a.perm() != b.perm() || a.st.Size != b.st.Size {
			return false, nil
		}
		return d.sameContent(a, b)
	}
	return a.perm() == b.perm(), nil
}

func (d *differ) sameContent(a, b *ent) (bool, error) {
	fa, err := openFile(a)
	if err != nil {
		return false, err
	}
	defer fa.Close()
	fb, err := openFile(b)
	if err != nil {
		return false, err
	}
	defer fb.Close()
	if d.buf[0] == nil {
		d.buf = [2][]byte{make([]byte, 64<<10), make([]byte, 64<<10)}
	}
	for {
		na, erra := io.ReadFull(fa, d.buf[0])
		nb, errb := io.ReadFull(fb, d.buf[1])
		if na != nb || !bytes.Equal(d.buf[0][:na], d.buf[1][:nb]) {
			return false, nil
		}
		if errors.Is(erra, io.EOF) || errors.Is(erra, io.ErrUnexpectedEOF) {
			return errors.Is(errb, io.EOF) || errors.Is(errb, io.ErrUnexpectedEOF), nil
		}
		if erra != nil {
			return false, erra
		}
		if errb != nil {
			return false, errb
		}
	}
}
