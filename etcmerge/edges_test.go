package etcmerge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Directories that appear in the live /etc are listed whole, and the walk goes on after them:
// a file replaced by a directory, nested added directories, entries after them. The root's
// .snap directory (UFS snapshots) is left out; a .snap elsewhere, or one that is not a
// directory, is the admin's.
func TestDiffLiveDirectories(t *testing.T) {
	d := fixture(t)
	ctx := context.Background()
	if _, err := Build(ctx, d.base, d.overlay, d.dst, nil); err != nil {
		t.Fatal(err)
	}
	live := func(p string) string { return filepath.Join(d.dst, p) }
	must(t, os.Remove(live("rc.conf")))
	must(t, os.Mkdir(live("rc.conf"), 0o755))
	must(t, os.WriteFile(live("rc.conf/inner"), []byte("x"), 0o644))
	must(t, syscall.Chmod(live("suid"), 0o755))
	must(t, os.MkdirAll(live("aaa/b"), 0o755))
	must(t, os.WriteFile(live("aaa/b/c"), []byte("c"), 0o644))
	must(t, os.WriteFile(live("aaa/z"), []byte("z"), 0o644))
	must(t, os.WriteFile(live("zzz"), []byte("z"), 0o644))
	must(t, os.MkdirAll(live(".snap/s1"), 0o755))
	must(t, os.MkdirAll(live("local/.snap"), 0o755))
	must(t, os.WriteFile(live("local/.snap/f"), []byte("f"), 0o644))

	changes, err := Diff(ctx, d.base, d.overlay, d.dst)
	if err != nil {
		t.Fatal(err)
	}
	want := []Change{
		{"aaa", Added},
		{"aaa/b", Added},
		{"aaa/b/c", Added},
		{"aaa/z", Added},
		{"local/.snap", Added},
		{"local/.snap/f", Added},
		{"local/nginx.conf", Overrides},
		{"rc.conf", Edited},
		{"rc.conf/inner", Added},
		{"suid", Edited},
		{"x.d", Overrides},
		{"y", Overrides},
		{"zzz", Added},
	}
	if !reflect.DeepEqual(changes, want) {
		t.Errorf("Diff =\n%v\nwant\n%v", changes, want)
	}

	// a root .snap that is a file is an added file like any other
	must(t, os.RemoveAll(live(".snap")))
	must(t, os.WriteFile(live(".snap"), []byte("not UFS's"), 0o644))
	changes, err = Diff(ctx, d.base, d.overlay, d.dst)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != len(want)+1 || changes[0] != (Change{".snap", Added}) {
		t.Errorf("with a file .snap: Diff = %v, want .snap added first", changes)
	}
}

// Files larger than Diff's 64 KiB read buffer are compared whole: the same content over
// several buffers is no change, a difference past the first buffer is one.
func TestDiffLargeFiles(t *testing.T) {
	d := fixture(t)
	ctx := context.Background()
	big := bytes.Repeat([]byte("0123456789abcdef"), 10<<10) // 160 KiB: two full buffers and a part
	if err := os.WriteFile(filepath.Join(d.base, "big"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Build(ctx, d.base, d.overlay, d.dst, nil); err != nil {
		t.Fatal(err)
	}
	changes, err := Diff(ctx, d.base, d.overlay, d.dst)
	if err != nil || len(changes) != 4 || changes[0].Path == "big" {
		t.Fatalf("Diff with an unchanged large file: %v, %v; want the 4 overrides", changes, err)
	}
	for _, at := range []int{70 << 10, len(big) - 1} {
		edited := bytes.Clone(big)
		edited[at] = 'X'
		if err := os.WriteFile(filepath.Join(d.dst, "big"), edited, 0o644); err != nil {
			t.Fatal(err)
		}
		changes, err := Diff(ctx, d.base, d.overlay, d.dst)
		if err != nil || len(changes) != 5 || changes[0] != (Change{"big", Edited}) {
			t.Errorf("byte %d changed: Diff = %v, %v; want big edited", at, changes, err)
		}
	}
}

// Empty lines are lines: a change next to one is shown as that line alone.
func TestUnifiedDiffEmptyLines(t *testing.T) {
	got, err := UnifiedDiff([]byte("a\n\nb\n\n"), []byte("a\n\nc\n\n"), "x", "y")
	if want := "--- x\n+++ y\n@@ -1,4 +1,4 @@\n a\n \n-b\n+c\n \n"; err != nil || got != want {
		t.Errorf("UnifiedDiff = %q, %v; want %q", got, err, want)
	}
}

// The escaping of a shown diff at the edges of the ranges it escapes: C0 controls but tab,
// DEL, C1 controls; not space, '~', U+00A0 or later.
func TestUnifiedDiffEscapeEdges(t *testing.T) {
	for in, want := range map[string]string{
		"\x1f":   `\x1f`,
		" x ~":   " x ~",
		"\x7f":   `\x7f`,
		"\u0080": `\xc2\x80`,
		"\u009f": `\xc2\x9f`,
		"\u00a0": "\u00a0",
		"\t":     "\t",
		"\x00":   `\x00`,
	} {
		got, err := UnifiedDiff(nil, []byte(in+"\n"), "x", "y")
		if w := "--- x\n+++ y\n@@ -0,0 +1 @@\n+" + want + "\n"; err != nil || got != w {
			t.Errorf("line %q: %q, %v; want %q", in, got, err, w)
		}
	}
}

// Two changes 6 unchanged lines apart share a hunk; 7 apart, they get one each.
func TestUnifiedDiffHunks(t *testing.T) {
	mk := func(gap int, changed bool) []byte {
		ls := []string{"a"}
		if changed {
			ls[0] = "A"
		}
		for i := range gap {
			ls = append(ls, fmt.Sprint(i))
		}
		if changed {
			return lines(append(ls, "Z")...)
		}
		return lines(append(ls, "z")...)
	}
	got, err := UnifiedDiff(mk(6, false), mk(6, true), "x", "y")
	if want := "--- x\n+++ y\n@@ -1,8 +1,8 @@\n-a\n+A\n 0\n 1\n 2\n 3\n 4\n 5\n-z\n+Z\n"; err != nil || got != want {
		t.Errorf("6 apart: %q, %v; want %q", got, err, want)
	}
	got, err = UnifiedDiff(mk(7, false), mk(7, true), "x", "y")
	if want := "--- x\n+++ y\n@@ -1,4 +1,4 @@\n-a\n+A\n 0\n 1\n 2\n@@ -6,4 +6,4 @@\n 4\n 5\n 6\n-z\n+Z\n"; err != nil || got != want {
		t.Errorf("7 apart: %q, %v; want %q", got, err, want)
	}
}

// Symlink targets longer than readlinkAt's first buffer are copied whole, and a target of
// exactly 120 bytes (too long for a UFS2 inode) is counted with a block.
func TestLongSymlinkTargets(t *testing.T) {
	d := measureTree(t)
	ctx := context.Background()
	long := "../" + strings.Repeat("t", 297) // 300 bytes
	edge := strings.Repeat("e", shortSymlink)
	for name, target := range map[string]string{"long300": long, "edge": edge, "under": edge[1:]} {
		if err := os.Symlink(target, filepath.Join(d.overlay, name)); err != nil {
			t.Fatal(err)
		}
	}
	st, err := Build(ctx, d.base, d.overlay, d.dst, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"long300": long, "edge": edge, "under": edge[1:]} {
		if got, err := os.Readlink(filepath.Join(d.dst, name)); err != nil || got != target {
			t.Errorf("%s: target of %d bytes, %v; want %d", name, len(got), err, len(target))
		}
	}
	want := measureTreeStats
	want.Symlinks += 3
	want.Need += 3*512 + 4096 + 4096 // inodes; a block for long300 and one for edge, none for under
	if st != want {
		t.Errorf("Build = %+v, want %+v", st, want)
	}
	// the FIFO p in /cfg, which Build skips, is no difference: the live /etc never had it
	want2 := []Change{{"a.conf", Overrides}}
	if changes, err := Diff(ctx, d.base, d.overlay, d.dst); err != nil || !reflect.DeepEqual(changes, want2) {
		t.Errorf("Diff after Build = %v, %v; want %v", changes, err, want2)
	}
	// so a plain etc save leaves it in /cfg (it used to delete it as "removed")
	saved, err := Save(ctx, d.base, d.overlay, d.dst, nil, slog.New(slog.DiscardHandler))
	if err != nil || len(saved) != 0 {
		t.Errorf("Save after Build = %v, %v; want nothing saved", saved, err)
	}
	if fi, err := os.Lstat(filepath.Join(d.overlay, "p")); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("the FIFO p in /cfg after a plain save: %v, %v", fi, err)
	}
}

// Save and what it must not copy or lose: a FIFO or socket in the live /etc is skipped, a
// device node refused; the whiteout list gets a removed base path once, on its own line, and
// nothing for a path an entry of the list already hides or base does not have; directories
// Save has to make in the overlay get the live ones' owner, mode and times.
func TestSaveEdges(t *testing.T) {
	d := fixture(t)
	ctx := context.Background()
	if _, err := Build(ctx, d.base, d.overlay, d.dst, nil); err != nil {
		t.Fatal(err)
	}
	live := func(p string) string { return filepath.Join(d.dst, p) }
	// the list without its last newline
	must(t, os.WriteFile(filepath.Join(d.overlay, WhiteoutFile), []byte("motd\ngone"), 0o644))
	must(t, syscall.Mkfifo(live("fifo"), 0o644))
	must(t, os.MkdirAll(live("local/newapp/conf.d"), 0o700))
	must(t, os.WriteFile(live("local/newapp/conf.d/a.conf"), []byte("a\n"), 0o640))
	must(t, os.Chown(live("local/newapp"), 80, 80))
	must(t, syscall.Chmod(live("local/newapp"), 0o751))
	must(t, syscall.Chmod(live("local/newapp/conf.d"), 0o705))
	must(t, os.Remove(live("localtime")))
	must(t, lutimes(live("local/newapp/conf.d"), t0))
	must(t, lutimes(live("local/newapp"), t0.Add(time.Minute)))

	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	saved, err := Save(ctx, d.base, d.overlay, d.dst, []string{"fifo", "local/newapp/conf.d/a.conf", "localtime", "gone/file", "nothere"}, log)
	if want := []string{"gone/file", "local/newapp/conf.d/a.conf", "localtime", "nothere"}; err != nil || !reflect.DeepEqual(saved, want) {
		t.Fatalf("Save = %v, %v; want %v", saved, err, want)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "fifo") {
		t.Errorf("no warning for the FIFO: %s", logs.String())
	}
	if _, err := os.Lstat(filepath.Join(d.overlay, "fifo")); !os.IsNotExist(err) {
		t.Errorf("FIFO saved: %v", err)
	}
	if wo, err := os.ReadFile(filepath.Join(d.overlay, WhiteoutFile)); err != nil || string(wo) != "motd\ngone\nlocaltime\n" {
		t.Errorf("whiteout list %q, %v; want localtime added on its own line", wo, err)
	}
	over := tree(t, d.overlay)
	for p, want := range map[string]meta{
		"local/newapp":        {Type: fs.ModeDir, Perm: 0o751, UID: 80, GID: 80, Mtime: t0.Add(time.Minute)},
		"local/newapp/conf.d": {Type: fs.ModeDir, Perm: 0o705, Mtime: t0},
	} {
		got := over[p]
		if got.Mtime.Equal(want.Mtime) {
			got.Mtime = want.Mtime
		}
		if got != want {
			t.Errorf("overlay %s: %+v, want %+v", p, got, want)
		}
	}

	// a device node in the live /etc is refused, by name
	if err := syscall.Mknod(live("null"), syscall.S_IFCHR|0o666, 0x103); err != nil {
		t.Skipf("mknod: %v", err)
	}
	if _, err := Save(ctx, d.base, d.overlay, d.dst, []string{"null"}, log); err == nil || !strings.Contains(err.Error(), "null: device node") {
		t.Errorf("Save of a device node: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(d.overlay, "null")); !os.IsNotExist(err) {
		t.Errorf("device node saved: %v", err)
	}
}

// Without a whiteout list, Save makes one for a removed base file.
func TestSaveCreatesWhiteoutList(t *testing.T) {
	d := fixture(t)
	ctx := context.Background()
	if err := os.Remove(filepath.Join(d.overlay, WhiteoutFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := Build(ctx, d.base, d.overlay, d.dst, nil); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(d.dst, "motd")); err != nil {
		t.Fatal(err)
	}
	if _, err := Save(ctx, d.base, d.overlay, d.dst, []string{"motd"}, nil); err != nil {
		t.Fatal(err)
	}
	if wo, err := os.ReadFile(filepath.Join(d.overlay, WhiteoutFile)); err != nil || string(wo) != "motd\n" {
		t.Errorf("whiteout list %q, %v; want \"motd\\n\"", wo, err)
	}
}

// Build into an /etc that already holds a tree (a second Build, or leftovers): every entry of
// base+overlay replaces what is there, whatever its type; entries of neither are left alone.
func TestBuildOverExistingTree(t *testing.T) {
	d := fixture(t)
	ctx := context.Background()
	first := filepath.Join(t.TempDir(), "etc")
	if err := os.Mkdir(first, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Build(ctx, d.base, d.overlay, first, nil); err != nil {
		t.Fatal(err)
	}
	want := tree(t, first)
	if _, err := Build(ctx, d.base, d.overlay, d.dst, nil); err != nil {
		t.Fatal(err)
	}
	dst := func(p string) string { return filepath.Join(d.dst, p) }
	must(t, os.Remove(dst("localtime"))) // a symlink's place: a file
	must(t, os.WriteFile(dst("localtime"), []byte("UTC"), 0o644))
	must(t, os.Remove(dst("y/z"))) // a symlink's place: a directory tree
	must(t, os.MkdirAll(dst("y/z/sub"), 0o755))
	must(t, os.WriteFile(dst("y/z/sub/f"), []byte("f"), 0o644))
	must(t, os.WriteFile(dst("y/z/g"), []byte("g"), 0o644)) // removal reads all of a directory's names
	must(t, os.WriteFile(dst("rc.conf"), []byte("stale\n"), 0o600))
	must(t, os.WriteFile(dst("local/keep.conf"), []byte("not ours\n"), 0o644))
	st, err := Build(ctx, d.base, d.overlay, d.dst, nil)
	if err != nil {
		t.Fatalf("Build over an existing tree: %v", err)
	}
	if st.Files != 8 || st.Symlinks != 2 {
		t.Errorf("Stats %+v", st)
	}
	got := tree(t, d.dst)
	if k := got["local/keep.conf"]; k.Data != "not ours\n" {
		t.Errorf("an entry of neither tree was not left alone: %+v", k)
	}
	delete(got, "local/keep.conf")
	for p := range union(got, want) {
		g, w := got[p], want[p]
		if p == "local" { // its mtime: keep.conf was written into it before the second Build's setMeta
			g.Mtime, w.Mtime = time.Time{}, time.Time{}
		}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("%s: %+v, want %+v", p, g, w)
		}
	}
}

// What Merge can merge, at the edges: a NUL as the very first byte is binary; versions of
// exactly 1 MiB are merged, one byte more is not.
func TestMergeEdges(t *testing.T) {
	oldB, newB, cfg := driftTrees(t)
	ctx := context.Background()
	body := strings.Repeat("x\n", maxMergeSize/2-1) // 1 MiB - 2
	for _, c := range []struct{ name, old, new, mine, reason string }{
		{"NUL first in old", "\x00a\n", "b\n", "c\n", "binary"},
		{"NUL first in new", "a\n", "\x00b\n", "c\n", "binary"},
		{"NUL first in /cfg", "a\n", "b\n", "\x00c\n", "binary"},
		{"1 MiB", "a\n" + body, "b\n" + body, "a\n" + body[:len(body)-2] + "c\n", ""},
		{"old over 1 MiB", "a\n" + body + "x", "b\n" + body, "a\n" + body, "over 1 MiB"},
		{"new over 1 MiB", "a\n" + body, "b\n" + body + "x", "a\n" + body, "over 1 MiB"},
		{"/cfg over 1 MiB", "a\n" + body, "b\n" + body, "a\n" + body + "x", "over 1 MiB"},
	} {
		for dir, data := range map[string]string{oldB: c.old, newB: c.new, cfg: c.mine} {
			if err := os.WriteFile(filepath.Join(dir, "f"), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		res, err := Merge(ctx, oldB, newB, cfg, MergeOptions{Labels: testLabels, Paths: []string{"f"}, DryRun: true})
		if err != nil || len(res) != 1 {
			t.Fatalf("%s: %+v, %v", c.name, res, err)
		}
		if c.reason == "" {
			if want := "b\n" + body[:len(body)-2] + "c\n"; res[0].State != MergeClean || string(res[0].Result) != want {
				t.Errorf("%s: state %s (%s), %d bytes; want clean", c.name, res[0].State, res[0].Reason, len(res[0].Result))
			}
			// and written: the check that /cfg's file did not change meanwhile reads all of it
			res, err = Merge(ctx, oldB, newB, cfg, MergeOptions{Labels: testLabels, Paths: []string{"f"}})
			if err != nil || len(res) != 1 || !res[0].Written {
				t.Errorf("%s: Merge = %d results, %v; want one, written", c.name, len(res), err)
			}
			if err := os.Remove(filepath.Join(cfg, MergedFile)); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if res[0].State != MergeConflict || !strings.Contains(res[0].Reason, c.reason) {
			t.Errorf("%s: state %s, reason %q; want a conflict: %s", c.name, res[0].State, res[0].Reason, c.reason)
		}
	}
}

// Files that share no line are merged up to maxEdits edits (4000: 2000 lines replaced by
// 2000 others) and refused above it, as too different; Merge reports that as the reason.
func TestMergeTooDifferent(t *testing.T) {
	distinct := func(prefix string, n int) []string {
		ls := make([]string, n)
		for i := range ls {
			ls[i] = fmt.Sprintf("%s%d\n", prefix, i)
		}
		return ls
	}
	if m, err := matchLines(distinct("a", 2000), distinct("b", 2000)); err != nil || len(m) != 2000 || m[0] != -1 || m[1999] != -1 {
		t.Errorf("4000 edits: %v", err)
	}
	if _, err := matchLines(distinct("a", 2001), distinct("b", 2000)); !errors.Is(err, errTooDifferent) {
		t.Errorf("4001 edits: %v, want %v", err, errTooDifferent)
	}
	oldB, newB, cfg := driftTrees(t)
	for dir, data := range map[string]string{oldB: strings.Join(distinct("a", 2001), ""), newB: strings.Join(distinct("b", 2000), ""), cfg: "c\n"} {
		if err := os.WriteFile(filepath.Join(dir, "f"), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	res, err := Merge(context.Background(), oldB, newB, cfg, MergeOptions{Labels: testLabels, Paths: []string{"f"}})
	if !errors.Is(err, ErrConflicts) || len(res) != 1 || res[0].Reason != errTooDifferent.Error() {
		t.Errorf("Merge of files too different: %+v, %v", res, err)
	}
}

// matchLines finds a longest common subsequence, not just a common one: on random inputs
// over a small alphabet (many ties), its matches are as many as the dynamic programming
// answer, and each pairs equal lines in increasing order.
func TestMatchLinesLongest(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	gen := func() []string {
		ls := make([]string, r.Intn(14))
		for i := range ls {
			ls[i] = string(rune('a'+r.Intn(3))) + "\n"
		}
		return ls
	}
	lcs := func(a, b []string) int {
		dp := make([][]int, len(a)+1)
		for i := range dp {
			dp[i] = make([]int, len(b)+1)
		}
		for i := len(a) - 1; i >= 0; i-- {
			for j := len(b) - 1; j >= 0; j-- {
				if a[i] == b[j] {
					dp[i][j] = dp[i+1][j+1] + 1
				} else {
					dp[i][j] = max(dp[i+1][j], dp[i][j+1])
				}
			}
		}
		return dp[0][0]
	}
	for range 3000 {
		a, b := gen(), gen()
		m, err := matchLines(a, b)
		if err != nil {
			t.Fatal(err)
		}
		n, last := 0, -1
		for i, j := range m {
			if j < 0 {
				continue
			}
			if j <= last || a[i] != b[j] {
				t.Fatalf("matchLines(%q, %q) = %v: not an increasing match of equal lines", a, b, m)
			}
			last = j
			n++
		}
		if want := lcs(a, b); n != want {
			t.Fatalf("matchLines(%q, %q) = %v: %d matches, the longest has %d", a, b, m, n, want)
		}
	}
}

// The merge record: an unreadable line is named by its number (comments and blank lines
// count), and a base symlink is told apart from a file and from a symlink to elsewhere.
func TestMergedRecordAndBaseSymlinks(t *testing.T) {
	oldB, newB, cfg := driftTrees(t)
	ctx := context.Background()
	rec := filepath.Join(cfg, MergedFile)
	if err := os.WriteFile(rec, []byte("# comment\n\n- \"old.conf\"\nsha256:1 notquoted\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ListDrift(ctx, oldB, newB, cfg)
	if want := MergedFile + ":4: "; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("bad record line: %v; want %q", err, want)
	}
	// blank lines and comments are skipped, and a recorded removal is not listed again
	if err := os.WriteFile(rec, []byte("# comment\n\n- \"old.conf\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ds, err := ListDrift(ctx, oldB, newB, cfg)
	if want := "added new.conf, changed ssh/sshd_config"; err != nil || driftPaths(ds) != want {
		t.Errorf("with a record: ListDrift = %q, %v; want %q", driftPaths(ds), err, want)
	}
	if err := os.Remove(rec); err != nil {
		t.Fatal(err)
	}
	// base symlinks under /cfg files: a symlink that became a file, one retargeted, one kept
	for _, l := range []struct{ name, old, new string }{
		{"l1", "a", ""}, {"l2", "a", "b"}, {"l3", "a", "a"},
	} {
		if err := os.Symlink(l.old, filepath.Join(oldB, l.name)); err != nil {
			t.Fatal(err)
		}
		var err error
		if l.new == "" {
			err = os.WriteFile(filepath.Join(newB, l.name), []byte("a"), 0o644)
		} else {
			err = os.Symlink(l.new, filepath.Join(newB, l.name))
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(cfg, l.name), []byte("mine\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ds, err = ListDrift(ctx, oldB, newB, cfg)
	if want := "changed l1, changed l2, added new.conf, removed old.conf, changed ssh/sshd_config"; err != nil || driftPaths(ds) != want {
		t.Errorf("base symlinks: ListDrift = %q, %v; want %q", driftPaths(ds), err, want)
	}
}

// Build takes a directory's entries in name order, base's and the overlay's together: the
// FIFO warnings (and so the first error) come in the order ls shows them.
func TestBuildNameOrder(t *testing.T) {
	oldB, _, cfg := driftTrees(t)
	for _, p := range []string{filepath.Join(oldB, "p1"), filepath.Join(cfg, "p0"), filepath.Join(cfg, "p2")} {
		if err := syscall.Mkfifo(p, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	if _, err := Build(context.Background(), oldB, cfg, t.TempDir(), log); err != nil {
		t.Fatal(err)
	}
	i0, i1, i2 := strings.Index(logs.String(), "/p0"), strings.Index(logs.String(), "/p1"), strings.Index(logs.String(), "/p2")
	if i0 < 0 || i0 > i1 || i1 > i2 {
		t.Errorf("warnings not in name order p0, p1, p2:\n%s", logs.String())
	}
}

// openFDs counts the process's open descriptors; -1 where it cannot tell.
func openFDs() int {
	for _, d := range []string{"/proc/self/fd", "/dev/fd"} {
		if es, err := os.ReadDir(d); err == nil {
			return len(es)
		}
	}
	return -1
}

// Every walk closes the directories it opened: a descriptor left open on the jail's /etc
// memory disk or /cfg would keep it busy (umount fails) for as long as rollout runs.
func TestNoDescriptorLeft(t *testing.T) {
	oldB, newB, cfg := driftTrees(t)
	ctx := context.Background()
	before := openFDs()
	f, err := os.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n := openFDs()
	f.Close()
	if before < 0 || n != before+1 {
		t.Skip("no count of open descriptors (/proc/self/fd, or /dev/fd with fdescfs)")
	}
	dst := t.TempDir()
	for _, c := range []struct {
		what string
		run  func() error
	}{
		{"Build", func() error { _, err := Build(ctx, oldB, cfg, dst, nil); return err }},
		{"Measure", func() error { _, err := Measure(ctx, newB, cfg); return err }},
		{"Measure without overlay", func() error { _, err := Measure(ctx, newB, ""); return err }},
		{"ListDrift", func() error { _, err := ListDrift(ctx, oldB, newB, cfg); return err }},
		{"Fingerprint", func() error { _, err := Fingerprint(ctx, cfg); return err }},
		{"Diff", func() error { _, err := Diff(ctx, oldB, cfg, dst); return err }},
	} {
		if err := c.run(); err != nil {
			t.Fatalf("%s: %v", c.what, err)
		}
		if n := openFDs(); n != before {
			t.Errorf("%s: %d descriptors open after, %d before", c.what, n, before)
		}
	}
}

// copyData copies the whole file even when it grew since its lstat (the overlay is the
// tenant's to write): the size only picks the way, never how much is copied.
func TestCopyDataGrownFile(t *testing.T) {
	dir := t.TempDir()
	data := []byte("0123456789")
	if err := os.WriteFile(filepath.Join(dir, "in"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(filepath.Join(dir, "in"))
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	n, err := copyData(out, in, 3, make([]byte, 4)) // lstat said 3 bytes; 4 fit the buffer
	got, _ := os.ReadFile(filepath.Join(dir, "out"))
	if err != nil || n != int64(len(data)) || !bytes.Equal(got, data) {
		t.Errorf("copyData = %d, %v, wrote %q; want %d, %q", n, err, got, len(data), data)
	}
}

// A base entry that is not a regular file (here a directory in the new base, a FIFO in the
// old) is no version to merge: the file is a conflict with that reason, not an error.
func TestMergeBaseNotRegular(t *testing.T) {
	oldB, newB, cfg := driftTrees(t)
	ctx := context.Background()
	must(t, os.WriteFile(filepath.Join(oldB, "f"), []byte("a\n"), 0o644))
	must(t, os.MkdirAll(filepath.Join(newB, "f", "sub"), 0o755))
	must(t, os.WriteFile(filepath.Join(cfg, "f"), []byte("b\n"), 0o644))
	must(t, syscall.Mkfifo(filepath.Join(oldB, "p"), 0o644))
	must(t, os.WriteFile(filepath.Join(newB, "p"), []byte("a\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(cfg, "p"), []byte("b\n"), 0o644))
	var res []MergeResult
	err := withTimeout(t, "Merge", func() (err error) {
		res, err = Merge(ctx, oldB, newB, cfg, MergeOptions{Labels: testLabels, Paths: []string{"f", "p"}, DryRun: true})
		return err
	})
	if err != nil || len(res) != 2 {
		t.Fatalf("Merge = %+v, %v", res, err)
	}
	for _, r := range res {
		if r.State != MergeConflict || r.Reason != "the base's entry is not a regular file" {
			t.Errorf("%s: state %s, reason %q; want a conflict: not a regular file", r.Path, r.State, r.Reason)
		}
	}
}

// saveTrees is a base, an overlay and a live /etc owned by the caller: Save tests that need
// no chown run without root.
func saveTrees(t *testing.T) dirs {
	t.Helper()
	top := t.TempDir()
	d := dirs{filepath.Join(top, "base"), filepath.Join(top, "cfg"), filepath.Join(top, "etc")}
	for _, p := range []string{d.base, d.overlay, d.dst} {
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// A save that removes nothing leaves the whiteout list as it is, and an overlay directory that
// already exists keeps its own mode: only directories Save makes get the live ones'.
func TestSaveLeavesListAndExistingDirs(t *testing.T) {
	d := saveTrees(t)
	list := "# mine\nold\n"
	must(t, os.WriteFile(filepath.Join(d.overlay, WhiteoutFile), []byte(list), 0o644))
	must(t, os.Mkdir(filepath.Join(d.overlay, "d"), 0o700))
	must(t, syscall.Chmod(filepath.Join(d.overlay, "d"), 0o750))
	must(t, os.Mkdir(filepath.Join(d.dst, "d"), 0o755))
	must(t, os.WriteFile(filepath.Join(d.dst, "d", "f"), []byte("live\n"), 0o644))
	saved, err := Save(context.Background(), d.base, d.overlay, d.dst, []string{"d/f"}, nil)
	if err != nil || !reflect.DeepEqual(saved, []string{"d/f"}) {
		t.Fatalf("Save = %v, %v", saved, err)
	}
	if b, err := os.ReadFile(filepath.Join(d.overlay, "d", "f")); err != nil || string(b) != "live\n" {
		t.Errorf("saved file %q, %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(d.overlay, WhiteoutFile)); err != nil || string(b) != list {
		t.Errorf("whiteout list %q, %v; want it unchanged, %q", b, err, list)
	}
	if fi, err := os.Lstat(filepath.Join(d.overlay, "d")); err != nil || fi.Mode().Perm() != 0o750 {
		t.Errorf("overlay directory d: %v, %v; want its mode 0750 kept", fi.Mode(), err)
	}
}

// A live file or symlink where the overlay has a directory replaces that directory.
func TestSaveOverOverlayDirectory(t *testing.T) {
	d := saveTrees(t)
	for _, p := range []string{"f/sub", "l/sub"} {
		must(t, os.MkdirAll(filepath.Join(d.overlay, p), 0o755))
	}
	must(t, os.WriteFile(filepath.Join(d.dst, "f"), []byte("file\n"), 0o644))
	must(t, os.Symlink("target", filepath.Join(d.dst, "l")))
	saved, err := Save(context.Background(), d.base, d.overlay, d.dst, []string{"f", "l"}, nil)
	if err != nil || len(saved) != 2 {
		t.Fatalf("Save = %v, %v", saved, err)
	}
	if b, err := os.ReadFile(filepath.Join(d.overlay, "f")); err != nil || string(b) != "file\n" {
		t.Errorf("overlay f: %q, %v; want the live file", b, err)
	}
	if got, err := os.Readlink(filepath.Join(d.overlay, "l")); err != nil || got != "target" {
		t.Errorf("overlay l: %q, %v; want the live symlink", got, err)
	}
	noTemp(t, d.overlay)
}

// A saved symlink gets the live one's owner (lchown of the new link, not a descriptor).
func TestSaveSymlinkOwner(t *testing.T) {
	mustRoot(t)
	d := saveTrees(t)
	l := filepath.Join(d.dst, "l")
	if err := os.Symlink("target", l); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(l, 88, 89); err != nil {
		t.Fatal(err)
	}
	if _, err := Save(context.Background(), d.base, d.overlay, d.dst, []string{"l"}, nil); err != nil {
		t.Fatal(err)
	}
	if m := tree(t, d.overlay)["l"]; m.Type != fs.ModeSymlink || m.Data != "target" || m.UID != 88 || m.GID != 89 {
		t.Errorf("overlay l: %+v; want a symlink to target owned by 88:89", m)
	}
}
