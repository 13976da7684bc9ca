package etcmerge

import (
	"context"
	"fmt"
	"os"
	"path"

	"golang.org/x/sys/unix"
)

// Measure walks base with overlay on top exactly as Build decides what to copy (the same merge
// rules, whiteout list and refusals) and returns the Stats Build would return, Need included,
// without writing anything. It is the pre-flight check of a jail's /etc: does the new tree fit
// the memory disk? It opens directories only (and the whiteout list, see readWhiteoutRaw);
// every other entry is only lstat()ed, so a FIFO placed in the overlay cannot block it, and
// it never follows a symlink. FIFOs and sockets are skipped as Build skips them, without the
// warning: Build gives that when the jail starts. An empty overlay means none: base alone,
// as Build with an empty overlay directory (a stopped jail's /cfg is not mounted).
func Measure(ctx context.Context, base, overlay string) (Stats, error) {
	b, o, m, err := measureSources(base, overlay)
	if err != nil {
		return Stats{}, err
	}
	defer closeAll(b, o)
	w := &measurer{ctx: ctx, m: m}
	if err := w.dir("", b, o); err != nil {
		return w.st, fmt.Errorf("etc measure %s: %w", base, err) // err names the path
	}
	w.st.Removed = m.removed
	return w.st, nil
}

// measureSources is openSources, with overlay "" meaning no overlay (o nil, no whiteouts).
func measureSources(base, overlay string) (b, o *os.File, m *merger, err error) {
	if overlay != "" {
		return openSources(base, overlay)
	}
	if b, err = openRoot(base); err != nil {
		return nil, nil, nil, fmt.Errorf("etc base: %w", err)
	}
	return b, nil, &merger{}, nil
}

type measurer struct {
	ctx context.Context
	m   *merger
	st  Stats
}

// dir counts the merged directory rel of b and o (either may be nil).
func (w *measurer) dir(rel string, b, o *os.File) error {
	items, err := w.m.list(rel, b, o)
	if err != nil {
		return err
	}
	for _, it := range items {
		if err := w.ctx.Err(); err != nil {
			return err
		}
		if err := w.entry(path.Join(rel, it.name), it); err != nil {
			return err
		}
	}
	return nil
}

// entry counts it as Build's entry copies it.
func (w *measurer) entry(rel string, it *item) error {
	src := &it.win
	switch src.typ() {
	case unix.S_IFDIR:
		bb, oo, err := openSides(it)
		if err != nil {
			return err
		}
		err = w.dir(rel, bb, oo)
		closeAll(bb, oo)
		if err != nil {
			return err
		}
		w.st.addDir()
	case unix.S_IFREG:
		w.st.addFile(src.st.Size)
	case unix.S_IFLNK:
		w.st.addSymlink(src.st.Size)
	case unix.S_IFIFO, unix.S_IFSOCK:
	default:
		return deviceError(src)
	}
	return nil
}
