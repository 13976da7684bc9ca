package etcmerge

import (
	"context"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

var testLabels = Labels{Mine: "/cfg (vhost)", Old: "proto@1", New: "proto@2"}

func lines(ls ...string) []byte {
	if len(ls) == 0 {
		return nil
	}
	return []byte(strings.Join(ls, "\n") + "\n")
}

func TestMerge3(t *testing.T) {
	for _, c := range []struct {
		name           string
		old, mine, new []byte
		want           []byte
		conflicts      int
	}{
		{"only the base changed", lines("a", "b", "c"), lines("a", "b", "c"), lines("a", "B", "c"), lines("a", "B", "c"), 0},
		{"only /cfg changed", lines("a", "b", "c"), lines("a", "b", "C"), lines("a", "b", "c"), lines("a", "b", "C"), 0},
		{"both, apart", lines("a", "b", "c", "d", "e"), lines("A", "b", "c", "d", "e"), lines("a", "b", "c", "d", "E"),
			lines("A", "b", "c", "d", "E"), 0},
		{"same change on both sides", lines("a", "b", "c"), lines("a", "X", "c"), lines("a", "X", "c"), lines("a", "X", "c"), 0},
		{"insertion at the start and at the end", lines("a", "b"), lines("top", "a", "b"), lines("a", "b", "bottom"),
			lines("top", "a", "b", "bottom"), 0},
		{"removal by the base, edit by /cfg elsewhere", lines("a", "b", "c", "d"), lines("a", "b", "c", "D"), lines("b", "c", "d"),
			lines("b", "c", "D"), 0},
		{"removal by /cfg, base unchanged there", lines("a", "b", "c", "d"), lines("a", "c", "d"), lines("a", "b", "c", "d", "e"),
			lines("a", "c", "d", "e"), 0},
		{"everything removed by the base", lines("a", "b"), lines("a", "b"), nil, nil, 0},
		{"conflict", lines("a", "PermitRootLogin no", "c"), lines("a", "PermitRootLogin yes", "c"), lines("a", "PermitRootLogin prohibit-password", "c"),
			lines("a", "<<<<<<< /cfg (vhost)", "PermitRootLogin yes", "||||||| proto@1", "PermitRootLogin no", "=======",
				"PermitRootLogin prohibit-password", ">>>>>>> proto@2", "c"), 1},
		{"both added a file (no old)", nil, lines("x"), lines("y"),
			lines("<<<<<<< /cfg (vhost)", "x", "||||||| proto@1", "=======", "y", ">>>>>>> proto@2"), 1},
		{"both added the same file", nil, lines("x", "y"), lines("x", "y"), lines("x", "y"), 0},
		{"conflict on a last line without newline", []byte("a\nb"), []byte("a\nmine"), []byte("a\nnew"),
			lines("a", "<<<<<<< /cfg (vhost)", "mine", "||||||| proto@1", "b", "=======", "new", ">>>>>>> proto@2"), 1},
		{"two conflicts and a clean change", lines("1", "2", "3", "4", "5", "6", "7"), lines("1x", "2", "3", "4", "5", "6", "7y"),
			lines("1z", "2", "3", "4new", "5", "6", "7w"),
			lines("<<<<<<< /cfg (vhost)", "1x", "||||||| proto@1", "1", "=======", "1z", ">>>>>>> proto@2", "2", "3", "4new", "5", "6",
				"<<<<<<< /cfg (vhost)", "7y", "||||||| proto@1", "7", "=======", "7w", ">>>>>>> proto@2"), 2},
		// a line one side removed and the other changed, before a line both kept as the other
		// side's first: the conflict stops at that kept line, and what follows merges cleanly
		{"/cfg removed what the base changed, before /cfg's first line", lines("p", "x", "q"), lines("x", "Q"), lines("P", "x", "q"),
			lines("<<<<<<< /cfg (vhost)", "||||||| proto@1", "p", "=======", "P", ">>>>>>> proto@2", "x", "Q"), 1},
		{"the base removed what /cfg changed, before the base's first line", lines("p", "x", "q"), lines("P", "x", "q"), lines("x", "Q"),
			lines("<<<<<<< /cfg (vhost)", "P", "||||||| proto@1", "p", "=======", ">>>>>>> proto@2", "x", "Q"), 1},
	} {
		got, n, err := merge3(c.old, c.mine, c.new, testLabels)
		if err != nil || string(got) != string(c.want) || n != c.conflicts {
			t.Errorf("%s: merge3 = %d conflicts, %v:\n%s\nwant %d:\n%s", c.name, n, err, got, c.conflicts, c.want)
		}
	}
}

// Properties that hold for any three versions: with one side unchanged the result is the
// other side; merging identical changes gives them.
func TestMerge3Properties(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	gen := func() []byte {
		var ls []string
		for range r.Intn(12) {
			ls = append(ls, string(rune('a'+r.Intn(4))))
		}
		return lines(ls...)
	}
	for range 2000 {
		o, a, b := gen(), gen(), gen()
		if got, n, err := merge3(o, o, b, testLabels); err != nil || n != 0 || string(got) != string(b) {
			t.Fatalf("mine unchanged: merge3(%q, %q, %q) = %q, %d, %v", o, o, b, got, n, err)
		}
		if got, n, err := merge3(o, a, o, testLabels); err != nil || n != 0 || string(got) != string(a) {
			t.Fatalf("base unchanged: merge3(%q, %q, %q) = %q, %d, %v", o, a, o, got, n, err)
		}
		if got, n, err := merge3(o, a, a, testLabels); err != nil || n != 0 || string(got) != string(a) {
			t.Fatalf("same change: merge3(%q, %q, %q) = %q, %d, %v", o, a, a, got, n, err)
		}
		// the matching is a common subsequence
		ol, al := splitLines(o), splitLines(a)
		m, err := matchLines(ol, al)
		if err != nil {
			t.Fatal(err)
		}
		last := -1
		for i, j := range m {
			if j >= 0 && (j <= last || ol[i] != al[j]) {
				t.Fatalf("matchLines(%q, %q) = %v: not an increasing match", o, a, m)
			}
			if j >= 0 {
				last = j
			}
		}
	}
}

func TestUnifiedDiff(t *testing.T) {
	got, err := UnifiedDiff(lines("a", "b", "c", "d", "e", "f", "g", "h", "i", "j"), lines("a", "b", "c", "d", "E", "f", "g", "h", "i", "j", "k"), "old", "new")
	want := "--- old\n+++ new\n@@ -2,9 +2,10 @@\n b\n c\n d\n-e\n+E\n f\n g\n h\n i\n j\n+k\n"
	if err != nil || got != want {
		t.Errorf("UnifiedDiff:\n%s\nwant\n%s", got, want)
	}
	got, _ = UnifiedDiff([]byte("a\n"), []byte("a\x1b]0;pwned\x07\tb\xff"), "x", "y")
	if want := "--- x\n+++ y\n@@ -1 +1 @@\n-a\n+a\\x1b]0;pwned\\x07\tb\\xff\n\\ No newline at end of file\n"; got != want {
		t.Errorf("escapes:\n%q\nwant\n%q", got, want)
	}
	if got, _ := UnifiedDiff(lines("a"), lines("a"), "x", "y"); got != "" {
		t.Errorf("no change: %q", got)
	}
}

// driftTrees: an old base, a new base and a /cfg, with every kind of drift and things that
// are not drift.
func driftTrees(t *testing.T) (oldB, newB, cfg string) {
	t.Helper()
	root := t.TempDir()
	oldB, newB, cfg = filepath.Join(root, "old"), filepath.Join(root, "new"), filepath.Join(root, "cfg")
	write := func(dir, rel, data string) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	base := "Port 22\nPermitRootLogin no\nUseDNS no\n"
	write(oldB, "ssh/sshd_config", base)
	write(newB, "ssh/sshd_config", "Port 22\nPermitRootLogin no\nUseDNS no\nKbdInteractiveAuthentication no\n")
	write(cfg, "ssh/sshd_config", "Port 2222\nPermitRootLogin no\nUseDNS no\n")
	// unchanged base: not drift
	write(oldB, "hosts", "127.0.0.1 localhost\n")
	write(newB, "hosts", "127.0.0.1 localhost\n")
	write(cfg, "hosts", "127.0.0.1 localhost vhost1\n")
	// removed from the new base
	write(oldB, "old.conf", "x\n")
	write(cfg, "old.conf", "x\ny\n")
	// new in the new base, /cfg had one
	write(newB, "new.conf", "from base\n")
	write(cfg, "new.conf", "mine\n")
	// changed in base, not in /cfg: not an override, not drift
	write(oldB, "rc.conf", "a\n")
	write(newB, "rc.conf", "b\n")
	// a /cfg-only file: not drift
	write(cfg, "local.conf", "mine\n")
	return oldB, newB, cfg
}

func driftPaths(ds []Drift) string {
	var s []string
	for _, d := range ds {
		s = append(s, d.Kind+" "+d.Path)
	}
	return strings.Join(s, ", ")
}

func TestListDrift(t *testing.T) {
	oldB, newB, cfg := driftTrees(t)
	ctx := context.Background()
	ds, err := ListDrift(ctx, oldB, newB, cfg)
	want := "added new.conf, removed old.conf, changed ssh/sshd_config"
	if err != nil || driftPaths(ds) != want {
		t.Fatalf("ListDrift = %q, %v; want %q", driftPaths(ds), err, want)
	}
	// the other way round (a rollback): added and removed swap
	ds, err = ListDrift(ctx, newB, oldB, cfg)
	if want := "removed new.conf, added old.conf, changed ssh/sshd_config"; err != nil || driftPaths(ds) != want {
		t.Errorf("ListDrift reversed = %q, %v; want %q", driftPaths(ds), err, want)
	}
	// a symlink and a FIFO in /cfg over changed base files: not opened, not followed, not listed
	if err := os.WriteFile(filepath.Join(oldB, "fifo.conf"), []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(newB, "fifo.conf"), []byte("2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(cfg, "fifo.conf"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(cfg, "rc.conf")); err != nil {
		t.Fatal(err)
	}
	// a /cfg directory that is a symlink to the base: not walked
	if err := os.Symlink(filepath.Join(cfg, "ssh"), filepath.Join(cfg, "ssh2")); err != nil {
		t.Fatal(err)
	}
	err = withTimeout(t, "ListDrift", func() (err error) { ds, err = ListDrift(ctx, oldB, newB, cfg); return err })
	if err != nil || driftPaths(ds) != want {
		t.Errorf("with a FIFO and symlinks in /cfg: ListDrift = %q, %v; want %q", driftPaths(ds), err, want)
	}
	// a FIFO as the merge record is refused, not waited on
	if err := syscall.Mkfifo(filepath.Join(cfg, MergedFile), 0o644); err != nil {
		t.Fatal(err)
	}
	err = withTimeout(t, "ListDrift", func() (err error) { _, err = ListDrift(ctx, oldB, newB, cfg); return err })
	if err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("FIFO as %s: %v", MergedFile, err)
	}
}

func TestMergeAllOrNothing(t *testing.T) {
	oldB, newB, cfg := driftTrees(t)
	ctx := context.Background()
	before := tree(t, cfg)
	// new.conf conflicts (both added), old.conf was removed from the base: nothing is written
	res, err := Merge(ctx, oldB, newB, cfg, MergeOptions{Labels: testLabels})
	if !errors.Is(err, ErrConflicts) || !strings.Contains(err.Error(), "new.conf, old.conf") {
		t.Fatalf("Merge with conflicts: %v", err)
	}
	if len(res) != 3 || res[2].State != MergeClean || res[2].Written || res[0].State != MergeConflict || res[1].Reason == "" {
		t.Errorf("results %+v", res)
	}
	if after := tree(t, cfg); !equalTrees(before, after) {
		t.Errorf("a merge with conflicts changed /cfg:\n%v\n%v", before, after)
	}
	// a dry run writes nothing either, and shows the merged file
	res, err = Merge(ctx, oldB, newB, cfg, MergeOptions{Labels: testLabels, DryRun: true, Paths: []string{"ssh"}})
	if err != nil || len(res) != 1 || string(res[0].Result) != "Port 2222\nPermitRootLogin no\nUseDNS no\nKbdInteractiveAuthentication no\n" {
		t.Fatalf("dry run: %+v, %v", res, err)
	}
	if after := tree(t, cfg); !equalTrees(before, after) {
		t.Errorf("a dry run changed /cfg")
	}
	// the clean file alone: written, with its mode (set-id bits dropped) and recorded
	p := filepath.Join(cfg, "ssh", "sshd_config")
	if err := os.Chmod(p, 0o4640); err != nil {
		t.Fatal(err)
	}
	res, err = Merge(ctx, oldB, newB, cfg, MergeOptions{Labels: testLabels, Paths: []string{"/etc/ssh/sshd_config"}})
	if err != nil || len(res) != 1 || !res[0].Written {
		t.Fatalf("clean merge: %+v, %v", res, err)
	}
	fi, err := os.Lstat(p)
	if err != nil || fi.Mode() != 0o640 {
		t.Errorf("merged file mode %v, %v; want 0640, no setuid", fi.Mode(), err)
	}
	if b, _ := os.ReadFile(p); string(b) != string(res[0].Result) {
		t.Errorf("merged file holds %q", b)
	}
	noTemp(t, filepath.Join(cfg, "ssh"))
	ds, err := ListDrift(ctx, oldB, newB, cfg)
	if want := "added new.conf, removed old.conf"; err != nil || driftPaths(ds) != want {
		t.Errorf("after the merge: drift %q, %v; want %q", driftPaths(ds), err, want)
	}
	// the record is not part of the jail's /etc
	if _, err := os.Stat(filepath.Join(cfg, MergedFile)); err != nil {
		t.Errorf("no record: %v", err)
	}
	if st, err := Measure(ctx, newB, cfg); err != nil || st.Files != 6 {
		t.Errorf("Measure with the record: %+v, %v; want 6 files (4 of base, 2 of /cfg only)", st, err)
	}
	// the base changes again: the file drifts anew
	if err := os.WriteFile(filepath.Join(newB, "ssh", "sshd_config"), []byte("Port 22\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if ds, _ := ListDrift(ctx, oldB, newB, cfg); len(ds) != 3 {
		t.Errorf("after a new base change: drift %q", driftPaths(ds))
	}
	// conflicts resolved by hand, marked resolved: no drift left, files untouched
	if _, err := Merge(ctx, oldB, newB, cfg, MergeOptions{Resolved: true}); err == nil {
		t.Error("--resolved without files accepted")
	}
	res, err = Merge(ctx, oldB, newB, cfg, MergeOptions{Resolved: true, Paths: []string{"new.conf", "old.conf", "ssh"}})
	if err != nil || len(res) != 3 || res[0].State != MergeResolved {
		t.Fatalf("resolved: %+v, %v", res, err)
	}
	if ds, _ := ListDrift(ctx, oldB, newB, cfg); len(ds) != 0 {
		t.Errorf("after resolving: drift %q", driftPaths(ds))
	}
	if b, _ := os.ReadFile(filepath.Join(cfg, "new.conf")); string(b) != "mine\n" {
		t.Errorf("resolved file changed: %q", b)
	}
}

// A /cfg file replaced by a symlink between the listing and the write is not written through.
func TestMergeDoesNotWriteThroughSymlink(t *testing.T) {
	oldB, newB, cfg := driftTrees(t)
	ctx := context.Background()
	res, err := Merge(ctx, oldB, newB, cfg, MergeOptions{Labels: testLabels, DryRun: true, Paths: []string{"ssh/sshd_config"}})
	if err != nil || len(res) != 1 {
		t.Fatal(res, err)
	}
	target := filepath.Join(t.TempDir(), "host-file")
	if err := os.WriteFile(target, res[0].Current, 0o644); err != nil {
		t.Fatal(err)
	}
	tr, err := openTrees(oldB, newB, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.close()
	p := filepath.Join(cfg, "ssh", "sshd_config")
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
	if err := tr.write(&res[0]); err == nil {
		t.Error("write through a symlink succeeded")
	}
	if b, _ := os.ReadFile(target); string(b) != string(res[0].Current) {
		t.Errorf("the symlink's target was written: %q", b)
	}
	// a tenant edit made since the merge read the file is not overwritten
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("edited meanwhile\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := tr.write(&res[0]); err == nil || !strings.Contains(err.Error(), "changed while") {
		t.Errorf("write over a changed file: %v", err)
	}
}

func TestMergeRefusesBinaryAndLarge(t *testing.T) {
	oldB, newB, cfg := driftTrees(t)
	ctx := context.Background()
	big := strings.Repeat("x\n", maxMergeSize/2+1)
	for _, c := range []struct{ old, new, mine, reason string }{
		{"a\x00\n", "b\n", "c\n", "binary"},
		{"a\n", big, "a\n", "over 1 MiB"},
	} {
		for dir, data := range map[string]string{oldB: c.old, newB: c.new, cfg: c.mine} {
			if err := os.WriteFile(filepath.Join(dir, "f"), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		res, err := Merge(ctx, oldB, newB, cfg, MergeOptions{Labels: testLabels, Paths: []string{"f"}})
		if !errors.Is(err, ErrConflicts) || len(res) != 1 || !strings.Contains(res[0].Reason, c.reason) {
			t.Errorf("%s: %+v, %v", c.reason, res, err)
		}
	}
}

func equalTrees(a, b map[string]meta) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func noTemp(t *testing.T, dir string) {
	t.Helper()
	es, _ := os.ReadDir(dir)
	for _, e := range es {
		if strings.HasPrefix(e.Name(), tempPrefix) {
			t.Errorf("temporary file %s left in %s", e.Name(), dir)
		}
	}
}
