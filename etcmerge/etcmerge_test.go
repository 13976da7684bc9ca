package etcmerge

import (
	"bytes"
	"context"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

// meta is what Build must keep of one entry.
type meta struct {
	Type     fs.FileMode // fs.ModeDir, fs.ModeSymlink or 0
	Perm     uint32      // incl. setuid, setgid, sticky
	UID, GID uint32
	Data     string // content or symlink target
	Mtime    time.Time
}

// tree describes a directory tree as seen without following symlinks.
func tree(t *testing.T, root string) map[string]meta {
	t.Helper()
	m := map[string]meta{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." || rel == ".snap" {
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		e := meta{Type: fi.Mode().Type(), Perm: uint32(st.Mode) & 0o7777, UID: st.Uid, GID: st.Gid, Mtime: fi.ModTime()}
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			e.Data = string(b)
		case fi.Mode()&fs.ModeSymlink != 0:
			e.Data, _ = os.Readlink(p)
			e.Perm = 0
		}
		m[rel] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

var t0 = time.Date(2010, 3, 11, 9, 30, 0, 123456789, time.UTC)

type spec struct {
	path     string
	typ      byte // 'f', 'd', 'l'
	perm     os.FileMode
	data     string
	uid, gid int
}

// mk creates entries in order (parents first), then sets all times to t0+i minutes, deepest
// first, so every entry has a distinct mtime to check.
func mk(t *testing.T, root string, specs ...spec) {
	t.Helper()
	for _, s := range specs {
		p := filepath.Join(root, s.path)
		var err error
		switch s.typ {
		case 'f':
			err = os.WriteFile(p, []byte(s.data), 0o600)
		case 'd':
			err = os.Mkdir(p, 0o700)
		case 'l':
			err = os.Symlink(s.data, p)
		}
		if err == nil {
			err = os.Lchown(p, s.uid, s.gid)
		}
		if err == nil && s.typ != 'l' {
			err = syscall.Chmod(p, uint32(s.perm)) // raw bits: os.Chmod drops 04000 and 01000
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := len(specs) - 1; i >= 0; i-- {
		tm := t0.Add(time.Duration(i) * time.Minute)
		if err := lutimes(filepath.Join(root, specs[i].path), tm); err != nil {
			t.Fatal(err)
		}
	}
}

// must stops the test (or benchmark) at an error of its set-up.
func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mustRoot(t testing.TB) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for chown")
	}
}

type dirs struct{ base, overlay, dst string }

// fixture is a small /etc and a /cfg exercising every merge rule.
func fixture(t *testing.T) dirs {
	t.Helper()
	mustRoot(t)
	top := t.TempDir()
	d := dirs{filepath.Join(top, "base"), filepath.Join(top, "cfg"), filepath.Join(top, "etc")}
	for _, p := range []string{d.base, d.overlay, d.dst} {
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mk(t, d.base,
		spec{"rc.conf", 'f', 0o644, "hostname=proto\n", 0, 0},
		spec{"master.passwd", 'f', 0o600, "root:*:0:0::0:0:Charlie &:/root:/bin/csh\n", 0, 0},
		spec{"motd", 'f', 0o644, "FreeBSD\n", 0, 0},
		spec{"suid", 'f', 0o4755, "#!/bin/sh\n", 0, 5},
		spec{"localtime", 'l', 0, "/usr/share/zoneinfo/Europe/Amsterdam", 0, 0},
		spec{"local", 'd', 0o755, "", 0, 0},
		spec{"local/nginx.conf", 'f', 0o640, "worker_processes 1;\n", 80, 80},
		spec{"local/apache", 'd', 0o750, "", 80, 80},
		spec{"local/apache/httpd.conf", 'f', 0o644, "Listen 80\n", 0, 0},
		spec{"spool", 'd', 0o1777, "", 0, 0},
		spec{"gone", 'd', 0o755, "", 0, 0},
		spec{"gone/file", 'f', 0o644, "x", 0, 0},
		spec{"x.d", 'd', 0o755, "", 0, 0},
		spec{"x.d/1", 'f', 0o644, "one", 0, 0},
		spec{"y", 'f', 0o644, "was a file", 0, 0},
	)
	mk(t, d.overlay,
		spec{WhiteoutFile, 'f', 0o644, "# deleted for this jail\nmotd\n\ngone/\n", 0, 0},
		spec{"rc.conf", 'f', 0o640, "hostname=vhost1\n", 0, 0},
		spec{"local", 'd', 0o775, "", 0, 80},
		spec{"local/nginx.conf", 'f', 0o600, "worker_processes 4;\n", 80, 80},
		spec{"local/my.cnf", 'f', 0o644, "[mysqld]\n", 88, 88},
		spec{"local/apache", 'd', 0o750, "", 80, 80},
		spec{"local/apache/extra.conf", 'f', 0o644, "KeepAlive On\n", 0, 0},
		spec{"x.d", 'f', 0o644, "now a file", 0, 0},
		spec{"y", 'd', 0o700, "", 0, 0},
		spec{"y/z", 'l', 0, "../rc.conf", 88, 88}, // a symlink's owner is set too (lchown)
	)
	return d
}

func TestBuild(t *testing.T) {
	d := fixture(t)
	st, err := Build(context.Background(), d.base, d.overlay, d.dst, nil)
	if err != nil {
		t.Fatal(err)
	}
	base, over, got := tree(t, d.base), tree(t, d.overlay), tree(t, d.dst)
	want := map[string]meta{}
	for _, p := range []string{"master.passwd", "suid", "localtime", "local/apache/httpd.conf", "spool"} {
		want[p] = base[p]
	}
	for _, p := range []string{"rc.conf", "local", "local/nginx.conf", "local/my.cnf", "local/apache", "local/apache/extra.conf", "x.d", "y", "y/z"} {
		want[p] = over[p]
	}
	if !reflect.DeepEqual(got, want) {
		for p := range union(got, want) {
			if !reflect.DeepEqual(got[p], want[p]) {
				t.Errorf("%s: got %+v, want %+v", p, got[p], want[p])
			}
		}
	}
	if got["suid"].Perm != 0o4755 || got["spool"].Perm != 0o1777 || got["local/nginx.conf"].UID != 80 {
		t.Errorf("setuid, sticky or owner lost: %+v %+v %+v", got["suid"], got["spool"], got["local/nginx.conf"])
	}
	wantSt := Stats{Files: 8, Dirs: 4, Symlinks: 2, Removed: 2,
		Bytes: int64(len(got["rc.conf"].Data + got["master.passwd"].Data + got["suid"].Data + got["local/nginx.conf"].Data +
			got["local/my.cnf"].Data + got["local/apache/httpd.conf"].Data + got["local/apache/extra.conf"].Data + got["x.d"].Data)),
		// every file is under one 4 KiB block; both symlink targets fit in the inode
		Need: 8*(4096+512) + 4*(4096+512) + 2*512}
	if st != wantSt {
		t.Errorf("Stats = %+v, want %+v", st, wantSt)
	}
	// the root takes base root's owner, mode and time
	bi, _ := os.Stat(d.base)
	di, _ := os.Stat(d.dst)
	if di.Mode() != bi.Mode() || !di.ModTime().Equal(bi.ModTime()) {
		t.Errorf("root: %v %v, want %v %v", di.Mode(), di.ModTime(), bi.Mode(), bi.ModTime())
	}
}

func union(a, b map[string]meta) map[string]bool {
	u := map[string]bool{}
	for k := range a {
		u[k] = true
	}
	for k := range b {
		u[k] = true
	}
	return u
}

// A destination that already holds symlinks is written beside them, never through them.
func TestBuildDoesNotFollowDestinationSymlinks(t *testing.T) {
	d := fixture(t)
	outside := t.TempDir()
	victim := filepath.Join(outside, "victim")
	if err := os.WriteFile(victim, []byte("host file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"rc.conf": victim, "local": outside, "master.passwd": victim} {
		if err := os.Symlink(target, filepath.Join(d.dst, name)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Build(context.Background(), d.base, d.overlay, d.dst, nil); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "host file\n" {
		t.Errorf("victim overwritten: %q", b)
	}
	if es, _ := os.ReadDir(outside); len(es) != 1 {
		t.Errorf("files written into the symlinked directory: %v", es)
	}
	if fi, err := os.Lstat(filepath.Join(d.dst, "local")); err != nil || !fi.IsDir() {
		t.Errorf("local is %v, %v; want a directory", fi.Mode(), err)
	}
}

// An overlay symlink replacing a base directory is copied as a symlink, not followed.
func TestBuildOverlaySymlinkOverDir(t *testing.T) {
	d := fixture(t)
	outside := t.TempDir()
	if err := os.RemoveAll(filepath.Join(d.overlay, "local")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(d.overlay, "local")); err != nil {
		t.Fatal(err)
	}
	if _, err := Build(context.Background(), d.base, d.overlay, d.dst, nil); err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(filepath.Join(d.dst, "local")); err != nil || target != outside {
		t.Errorf("local: %q, %v; want symlink to %s", target, err, outside)
	}
	if es, _ := os.ReadDir(outside); len(es) != 0 {
		t.Errorf("wrote through the symlink: %v", es)
	}
}

func TestWhiteoutEscapesRefused(t *testing.T) {
	for _, line := range []string{"../passwd", "/etc/passwd", "local/../../x", ".", "a/.."} {
		d := fixture(t)
		if err := os.WriteFile(filepath.Join(d.overlay, WhiteoutFile), []byte("motd\n"+line+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Build(context.Background(), d.base, d.overlay, d.dst, nil)
		if err == nil || !strings.Contains(err.Error(), WhiteoutFile+":2:") || !strings.Contains(err.Error(), line) || strings.Contains(err.Error(), "\n") {
			t.Errorf("whiteout %q: err = %v, want a one-line error naming line 2 and the path", line, err)
		}
		if _, err := Diff(context.Background(), d.base, d.overlay, d.dst); err == nil {
			t.Errorf("whiteout %q: Diff accepted it", line)
		}
	}
}

func TestSpecialFiles(t *testing.T) {
	d := fixture(t)
	if err := syscall.Mkfifo(filepath.Join(d.overlay, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	if _, err := Build(context.Background(), d.base, d.overlay, d.dst, log); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(d.dst, "fifo")); !os.IsNotExist(err) {
		t.Errorf("fifo copied: %v", err)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "fifo") {
		t.Errorf("no warning for the fifo: %s", logs.String())
	}
	if err := syscall.Mknod(filepath.Join(d.base, "null"), syscall.S_IFCHR|0o666, 0x103); err != nil {
		t.Skipf("mknod: %v", err)
	}
	if _, err := Build(context.Background(), d.base, d.overlay, t.TempDir(), log); err == nil || !strings.Contains(err.Error(), "null") {
		t.Errorf("device node: err = %v, want an error naming it", err)
	}
}

func TestBuildCanceled(t *testing.T) {
	d := fixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Build(ctx, d.base, d.overlay, d.dst, nil); err == nil {
		t.Error("Build with a canceled context succeeded")
	}
}

// liveEdits does to a built /etc what an admin would.
func liveEdits(t *testing.T, live string) {
	t.Helper()
	must(t, os.WriteFile(filepath.Join(live, "master.passwd"), []byte("root:$6$x:0:0::0:0:Charlie &:/root:/bin/sh\n"), 0o600))
	must(t, syscall.Chmod(filepath.Join(live, "suid"), 0o755))
	must(t, os.Chown(filepath.Join(live, "local/nginx.conf"), 80, 0))
	must(t, os.WriteFile(filepath.Join(live, "resolv.conf"), []byte("nameserver 192.0.2.1\n"), 0o644))
	must(t, os.MkdirAll(filepath.Join(live, "local/newapp/conf.d"), 0o750))
	must(t, os.WriteFile(filepath.Join(live, "local/newapp/conf.d/a.conf"), []byte("a\n"), 0o640))
	must(t, os.Symlink("a.conf", filepath.Join(live, "local/newapp/conf.d/b.conf")))
	must(t, os.Remove(filepath.Join(live, "localtime")))
	must(t, os.RemoveAll(filepath.Join(live, "local/apache")))
	must(t, os.Remove(filepath.Join(live, "y/z")))
	must(t, os.Symlink("/etc/other", filepath.Join(live, "y/z")))
	must(t, lutimes(filepath.Join(live, "master.passwd"), t0.Add(time.Hour)))
}

func TestDiff(t *testing.T) {
	d := fixture(t)
	ctx := context.Background()
	if _, err := Build(ctx, d.base, d.overlay, d.dst, nil); err != nil {
		t.Fatal(err)
	}
	changes, err := Diff(ctx, d.base, d.overlay, d.dst)
	if err != nil {
		t.Fatal(err)
	}
	want := []Change{{"local/nginx.conf", Overrides}, {"rc.conf", Overrides}, {"x.d", Overrides}, {"y", Overrides}}
	if !reflect.DeepEqual(changes, want) {
		t.Errorf("Diff after Build = %v, want %v", changes, want)
	}
	liveEdits(t, d.dst)
	if err := os.WriteFile(filepath.Join(d.dst, "rc.conf"), []byte("hostname=edited\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	changes, err = Diff(ctx, d.base, d.overlay, d.dst)
	if err != nil {
		t.Fatal(err)
	}
	want = []Change{
		{"local/apache", Removed},
		{"local/newapp", Added},
		{"local/newapp/conf.d", Added},
		{"local/newapp/conf.d/a.conf", Added},
		{"local/newapp/conf.d/b.conf", Added},
		{"local/nginx.conf", Edited},
		{"localtime", Removed},
		{"master.passwd", Edited},
		{"rc.conf", Edited},
		{"resolv.conf", Added},
		{"suid", Edited},
		{"x.d", Overrides},
		{"y", Overrides},
		{"y/z", Edited},
	}
	if !reflect.DeepEqual(changes, want) {
		t.Errorf("Diff =\n%v\nwant\n%v", changes, want)
	}
}

func TestSaveThenBuildReproducesLive(t *testing.T) {
	d := fixture(t)
	ctx := context.Background()
	if _, err := Build(ctx, d.base, d.overlay, d.dst, nil); err != nil {
		t.Fatal(err)
	}
	liveEdits(t, d.dst)
	saved, err := Save(ctx, d.base, d.overlay, d.dst, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(saved) != 11 {
		t.Errorf("saved %d paths: %v", len(saved), saved)
	}
	changes, err := Diff(ctx, d.base, d.overlay, d.dst)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range changes {
		if c.Kind != Overrides {
			t.Errorf("Diff after Save: %v; want only overrides", c)
		}
	}
	wo, err := os.ReadFile(filepath.Join(d.overlay, WhiteoutFile))
	if err != nil || !strings.HasSuffix(string(wo), "gone/\nlocal/apache\nlocaltime\n") || !strings.HasPrefix(string(wo), "# deleted") {
		t.Errorf("whiteout list after Save: %q, %v", wo, err)
	}
	rebuilt := filepath.Join(t.TempDir(), "etc")
	if err := os.Mkdir(rebuilt, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Build(ctx, d.base, d.overlay, rebuilt, nil); err != nil {
		t.Fatal(err)
	}
	live, got := tree(t, d.dst), tree(t, rebuilt)
	for p := range union(live, got) {
		l, g := live[p], got[p]
		if l.Type == fs.ModeDir {
			// directories' mtimes changed when the edits were made; Build gives Save's copy
			l.Mtime, g.Mtime = time.Time{}, time.Time{}
		}
		if !reflect.DeepEqual(l, g) {
			t.Errorf("%s: rebuilt %+v, live %+v", p, g, l)
		}
	}
	if es, _ := os.ReadDir(d.overlay); len(es) == 0 {
		t.Fatal("overlay empty")
	}
	filepath.WalkDir(d.overlay, func(p string, e fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(e.Name(), tempPrefix) {
			t.Errorf("temporary file left: %s", p)
		}
		return nil
	})
}

func TestSaveSelectedPaths(t *testing.T) {
	d := fixture(t)
	ctx := context.Background()
	if _, err := Build(ctx, d.base, d.overlay, d.dst, nil); err != nil {
		t.Fatal(err)
	}
	liveEdits(t, d.dst)
	saved, err := Save(ctx, d.base, d.overlay, d.dst, []string{"local/newapp", "./resolv.conf"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"local/newapp", "local/newapp/conf.d", "local/newapp/conf.d/a.conf", "local/newapp/conf.d/b.conf", "resolv.conf"}
	if !reflect.DeepEqual(saved, want) {
		t.Errorf("saved %v, want %v", saved, want)
	}
	if b, err := os.ReadFile(filepath.Join(d.overlay, "resolv.conf")); err != nil || string(b) != "nameserver 192.0.2.1\n" {
		t.Errorf("resolv.conf in overlay: %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(d.overlay, "master.passwd")); !os.IsNotExist(err) {
		t.Errorf("master.passwd saved although not asked for: %v", err)
	}
	for _, bad := range []string{"../etc/passwd", "/etc/passwd", "local/../../x", "", WhiteoutFile} {
		if _, err := Save(ctx, d.base, d.overlay, d.dst, []string{bad}, nil); err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("Save(%q) = %v, want a one-line error", bad, err)
		}
	}
	empty := t.TempDir()
	if _, err := Save(ctx, d.base, d.overlay, empty, nil, nil); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("Save from an empty live /etc: %v", err)
	}
}

// A symlink planted in the overlay is replaced by Save, not written through.
func TestSaveDoesNotFollowOverlaySymlinks(t *testing.T) {
	d := fixture(t)
	ctx := context.Background()
	if _, err := Build(ctx, d.base, d.overlay, d.dst, nil); err != nil {
		t.Fatal(err)
	}
	outside := t.TempDir()
	victim := filepath.Join(outside, "victim")
	if err := os.WriteFile(victim, []byte("host\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(d.overlay, "rc.conf"))
	if err := os.Symlink(victim, filepath.Join(d.overlay, "rc.conf")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(d.overlay, "newdir")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(d.dst, "newdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d.dst, "newdir/f"), []byte("f"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Save(ctx, d.base, d.overlay, d.dst, []string{"rc.conf", "newdir"}, nil); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "host\n" {
		t.Errorf("victim overwritten: %q", b)
	}
	if es, _ := os.ReadDir(outside); len(es) != 1 {
		t.Errorf("wrote into the symlinked directory: %v", es)
	}
	if b, err := os.ReadFile(filepath.Join(d.overlay, "newdir/f")); err != nil || string(b) != "f" {
		t.Errorf("newdir/f in overlay: %q, %v", b, err)
	}
}
