package etcmerge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/rollout-dev/rollout/proto/atomicfile"
)

// States of a merged file.
const (
	MergeClean     = "clean"     // merged without conflict; /cfg gets the result
	MergeConflict  = "conflict"  // both sides changed the same lines, or not mergeable (Reason)
	MergeUnchanged = "unchanged" // the merge gives /cfg's file as it is: only the record changes
	MergeResolved  = "resolved"  // marked merged by hand (MergeOptions.Resolved)
)

// maxMergeSize caps each of the three versions of a merged file: /etc holds small text files.
const maxMergeSize = 1 << 20

// MergeOptions says what Merge merges and how it labels conflicts.
type MergeOptions struct {
	Labels Labels
	// Paths limits the merge to these paths relative to /etc (and what is below them).
	Paths []string
	// DryRun computes every result and writes nothing.
	DryRun bool
	// Resolved records the drifted files (of Paths, which must be given) as merged against
	// the new base without changing them: for conflicts resolved by hand in /cfg, and for
	// files the new base removed, once the admin has decided to keep them.
	Resolved bool
}

// MergeResult is what Merge did, or would do, with one drifted file.
type MergeResult struct {
	Path   string `json:"path"` // relative to /etc
	Base   string `json:"base"` // the Drift kind
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"` // why a conflict could not be merged at all
	// Result is the merged file, conflict markers included (empty when not mergeable);
	// Current is /cfg's file as it was read. Neither is in the JSON: they are tenant content.
	Result  []byte `json:"-"`
	Current []byte `json:"-"`
	Written bool   `json:"written"`
}

// ErrConflicts is Merge's error when a file has conflicts: then nothing was written.
var ErrConflicts = errors.New("conflicts")

// Merge merges, for each drifted file of overlay (see ListDrift), the change from oldBase to
// newBase into the overlay's file, line by line (diff3). Nothing is half-written: every
// result is computed first; if any file conflicts or cannot be merged (binary, over 1 MiB,
// removed from the base), nothing is written and the error wraps ErrConflicts; else each
// changed file is replaced atomically (same owner and mode, set-id bits dropped), and every
// merged file is recorded in MergedFile so that it no longer drifts. A /cfg file that changes
// while it is merged fails the merge of that file.
func Merge(ctx context.Context, oldBase, newBase, overlay string, o MergeOptions) ([]MergeResult, error) {
	only := make([]string, 0, len(o.Paths))
	for _, p := range o.Paths {
		c, err := cleanRel(strings.TrimPrefix(p, "/etc/"))
		if err != nil {
			return nil, fmt.Errorf("etc merge: %w", err)
		}
		only = append(only, c)
	}
	if o.Resolved && len(only) == 0 {
		return nil, errors.New("etc merge: marking files resolved needs the files named")
	}
	t, err := openTrees(oldBase, newBase, overlay)
	if err != nil {
		return nil, err
	}
	defer t.close()
	drift, err := t.drift(ctx, only)
	if err != nil {
		return nil, err
	}
	var res []MergeResult
	record := map[string]string{}
	if o.Resolved {
		for _, d := range drift {
			res = append(res, MergeResult{Path: d.Path, Base: d.Kind, State: MergeResolved})
			record[d.Path] = d.newID
		}
		if o.DryRun {
			return res, nil
		}
		if err := writeMerged(t.cfg, record); err != nil {
			return res, fmt.Errorf("etc merge %s: %w", overlay, err)
		}
		return res, nil
	}
	var conflicts []string
	for _, d := range drift {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		r, err := t.merge(d, o.Labels)
		if err != nil {
			return nil, fmt.Errorf("etc merge %s: %w", Escape(path.Join(overlay, d.Path)), err)
		}
		if r.State == MergeConflict {
			conflicts = append(conflicts, Escape(d.Path))
		}
		res = append(res, r)
	}
	if o.DryRun {
		return res, nil
	}
	if len(conflicts) > 0 {
		return res, fmt.Errorf("etc merge %s: %w in %s: nothing written", overlay, ErrConflicts, strings.Join(conflicts, ", "))
	}
	for i := range res {
		r := &res[i]
		if r.State == MergeClean {
			if err := t.write(r); err != nil {
				// what is written stays recorded: each file is whole, old or new
				if rerr := writeMerged(t.cfg, record); rerr != nil {
					err = errors.Join(err, rerr)
				}
				return res, fmt.Errorf("etc merge %s: %w", Escape(path.Join(overlay, r.Path)), err)
			}
			r.Written = true
		}
		record[r.Path] = drift[i].newID // res[i] is drift[i]'s
	}
	if err := writeMerged(t.cfg, record); err != nil {
		return res, fmt.Errorf("etc merge %s: %w", overlay, err)
	}
	return res, nil
}

// merge computes one file's result.
func (t *trees) merge(d Drift, l Labels) (MergeResult, error) {
	r := MergeResult{Path: d.Path, Base: d.Kind}
	notMergeable := func(why string) (MergeResult, error) {
		r.State, r.Reason = MergeConflict, why
		return r, nil
	}
	mine, ok, err := readVersion(t.cfg, d.Path)
	if err != nil {
		return r, err
	}
	r.Current = mine
	if !ok {
		return notMergeable("no longer a regular file in /cfg")
	}
	if d.Kind == BaseRemoved {
		return notMergeable("the new base has no such file: keep /cfg's (etc merge --resolved) or remove it")
	}
	old, oldOK, err := readVersion(t.old, d.Path)
	if err != nil {
		return r, err
	}
	newer, newOK, err := readVersion(t.new, d.Path)
	if err != nil {
		return r, err
	}
	if d.Kind == BaseAdded {
		old, oldOK = nil, true
	}
	switch {
	case !oldOK || !newOK:
		return notMergeable("the base's entry is not a regular file")
	case len(mine) > maxMergeSize || len(old) > maxMergeSize || len(newer) > maxMergeSize:
		return notMergeable("over 1 MiB")
	case isBinary(mine) || isBinary(old) || isBinary(newer):
		return notMergeable("binary (holds NUL bytes)")
	}
	out, n, err := merge3(old, mine, newer, l)
	if errors.Is(err, errTooDifferent) {
		return notMergeable(err.Error())
	}
	if err != nil {
		return r, err
	}
	r.Result = out
	switch {
	case n > 0:
		r.State = MergeConflict
	case bytes.Equal(out, mine):
		r.State = MergeUnchanged
	default:
		r.State = MergeClean
	}
	return r, nil
}

func isBinary(b []byte) bool { return bytes.IndexByte(b, 0) >= 0 }

// readVersion reads the regular file rel of root, up to one byte over maxMergeSize; ok is
// false when it is missing or not a regular file.
func readVersion(root *os.File, rel string) ([]byte, bool, error) {
	dir, name := path.Split(rel)
	d, err := walk(root, strings.TrimSuffix(dir, "/"))
	if isGone(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer d.Close()
	f, _, err := openRegular(d, name)
	if isGone(err) {
		return nil, false, nil
	}
	if err != nil {
		if e, lerr := lstatAt(d, name); lerr == nil && e.typ() != unix.S_IFREG {
			return nil, false, nil
		}
		return nil, false, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxMergeSize+1))
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w", Escape(f.Name()), err)
	}
	return b, true, nil
}

// write replaces /cfg's file with the merged result, relative to its open directory: the
// file is opened again and must still hold what was merged, so a tenant's edit made since is
// not lost; the new file gets the old one's owner and permissions without set-id bits.
func (t *trees) write(r *MergeResult) error {
	dir, name := path.Split(r.Path)
	d, err := walk(t.cfg, strings.TrimSuffix(dir, "/"))
	if err != nil {
		return err
	}
	defer d.Close()
	cur, st, err := openRegular(d, name)
	if err != nil {
		return err
	}
	now, err := io.ReadAll(io.LimitReader(cur, maxMergeSize+1))
	cur.Close()
	if err != nil {
		return err
	}
	if !bytes.Equal(now, r.Current) {
		return errors.New("changed while it was merged; run etc merge again")
	}
	f, err := atomicfile.CreateIn(d, name, 0o600)
	if err != nil {
		return err
	}
	defer f.Abort()
	if _, err := f.Write(r.Result); err != nil {
		return err
	}
	fd := int(f.Fd())
	if err := unix.Fchown(fd, int(st.Uid), int(st.Gid)); err != nil {
		return &os.PathError{Op: "chown", Path: f.Name(), Err: err}
	}
	// after the chown, which may clear set-id bits; they are dropped anyway
	if err := unix.Fchmod(fd, uint32(st.Mode)&0o1777); err != nil {
		return &os.PathError{Op: "chmod", Path: f.Name(), Err: err}
	}
	return f.Commit()
}

// UnifiedDiff is a unified diff (3 lines of context) from a to b, for showing a merge to
// people: control characters but tab (a tenant's file may hold terminal escapes) and bytes
// that are not UTF-8 are shown as \xNN.
func UnifiedDiff(a, b []byte, nameA, nameB string) (string, error) {
	al, bl := splitLines(a), splitLines(b)
	m, err := matchLines(al, bl)
	if err != nil {
		return "", err
	}
	type op struct {
		kind byte // ' ', '-', '+'
		line string
		ai   int // lines of a and b before this one
		bi   int
	}
	var ops []op
	j := 0
	for i, l := range al {
		if m[i] < 0 {
			ops = append(ops, op{'-', l, i, j})
			continue
		}
		for ; j < m[i]; j++ {
			ops = append(ops, op{'+', bl[j], i, j})
		}
		ops = append(ops, op{' ', l, i, j})
		j++
	}
	for ; j < len(bl); j++ {
		ops = append(ops, op{'+', bl[j], len(al), j})
	}
	const ctxLines = 3
	var out strings.Builder
	for i := 0; i < len(ops); {
		if ops[i].kind == ' ' {
			i++
			continue
		}
		start := max(i-ctxLines, 0)
		// extend while the next change is within 2*ctxLines of unchanged lines
		end, same := i, 0
		for k := i; k < len(ops); k++ {
			if ops[k].kind == ' ' {
				same++
				if same > 2*ctxLines {
					break
				}
			} else {
				same, end = 0, k
			}
		}
		stop := min(end+1+ctxLines, len(ops))
		if out.Len() == 0 {
			fmt.Fprintf(&out, "--- %s\n+++ %s\n", nameA, nameB)
		}
		na, nb := 0, 0
		for _, o := range ops[start:stop] {
			if o.kind != '+' {
				na++
			}
			if o.kind != '-' {
				nb++
			}
		}
		fmt.Fprintf(&out, "@@ -%s +%s @@\n", hunkRange(ops[start].ai, na), hunkRange(ops[start].bi, nb))
		for _, o := range ops[start:stop] {
			out.WriteByte(o.kind)
			l, nl := strings.CutSuffix(o.line, "\n")
			out.WriteString(escapeControls(l))
			out.WriteByte('\n')
			if !nl {
				out.WriteString("\\ No newline at end of file\n")
			}
		}
		i = stop
	}
	return out.String(), nil
}

// hunkRange is a unified diff's "start,count": the first line is 1; an empty range names the
// line before it.
func hunkRange(before, n int) string {
	if n == 0 {
		return fmt.Sprintf("%d,0", before)
	}
	if n == 1 {
		return fmt.Sprintf("%d", before+1)
	}
	return fmt.Sprintf("%d,%d", before+1, n)
}

// escapeControls writes control characters (tab excepted) and invalid UTF-8 as \xNN.
func escapeControls(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1, r != '\t' && (r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0):
			for _, c := range []byte(s[i : i+n]) {
				fmt.Fprintf(&b, "\\x%02x", c)
			}
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}
