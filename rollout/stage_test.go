package rollout

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rollout-dev/rollout/proto/command"
	"github.com/rollout-dev/rollout/rollout/config"
	"github.com/rollout-dev/rollout/rollout/host"
)

// mdTable is the host's md(4) units and mounts behind the recorder: mdconfig -a/-d/-l -v,
// mount DEV DIR, umount DIR and mount -p change and read it as FreeBSD would.
type mdTable struct {
	mu     sync.Mutex
	units  map[string]string // md8 -> label
	mounts [][2]string       // device, mount point, in mount order
	fixed  string            // other lines of mount -p
	next   int
	// fail, when set, is asked before each command and may fail it
	fail func(argv []string) error
}

func newMDTable(fixed string) *mdTable {
	return &mdTable{units: map[string]string{}, fixed: fixed, next: 8}
}

func (t *mdTable) hook(_ context.Context, c command.Cmd) (bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	a := c.Argv
	if t.fail != nil {
		if err := t.fail(a); err != nil {
			return true, err
		}
	}
	write := func(s string) {
		if c.Stdout != nil {
			_, _ = c.Stdout.Write([]byte(s))
		}
	}
	switch {
	case len(a) == 2 && a[0] == "/sbin/mount" && a[1] == "-p":
		write(t.fixed)
		for _, m := range t.mounts {
			write(m[0] + "\t" + m[1] + "\tufs\trw\t0 0\n")
		}
	case len(a) == 3 && a[0] == "/sbin/mount":
		t.mounts = append(t.mounts, [2]string{a[1], a[2]})
	case len(a) == 2 && a[0] == "/sbin/umount":
		for i := len(t.mounts) - 1; i >= 0; i-- {
			if t.mounts[i][1] == a[1] {
				t.mounts = slices.Delete(t.mounts, i, i+1)
				return true, nil
			}
		}
		return true, &command.Error{Argv: a, ExitCode: 1, Stderr: "umount: " + a[1] + ": not a file system root directory"}
	case a[0] == "/sbin/mdconfig" && a[1] == "-l":
		var us []string
		for u := range t.units {
			us = append(us, u)
		}
		sort.Strings(us)
		for _, u := range us {
			write(u + "\tswap\t    32M\t-\t" + t.units[u] + "\t\n")
		}
	case a[0] == "/sbin/mdconfig" && a[1] == "-a":
		u := fmt.Sprintf("md%d", t.next)
		t.next++
		t.units[u] = a[len(a)-1]
		write(u + "\n")
	case a[0] == "/sbin/mdconfig" && a[1] == "-d":
		delete(t.units, "md"+a[3])
	default:
		return false, nil
	}
	return true, nil
}

// stageHost is the fake host with an md table; vhost1 runs with its /cfg (a real directory
// here) mounted from ZFS, and its fstab points at snapshot snap.
func stageHost(t *testing.T, n int, snap string) (*fakeHost, *mdTable) {
	t.Helper()
	fh := newFakeHost(t, n)
	v := fh.m.Cfg.Vhosts["vhost1"]
	cfg := filepath.Join(v.Path, "cfg")
	mustMkdir(t, filepath.Join(cfg, "ssh"), filepath.Join(v.Path, "conf", "base", "etc"), filepath.Join(v.Path, "etc"))
	mustWrite(t, filepath.Join(cfg, "rc.conf"), filepath.Join(cfg, "ssh", "sshd_config"), filepath.Join(v.Path, "conf", "base", "etc", "motd"))
	tab := newMDTable("zpool/vhost1/cfg\t" + cfg + "\tzfs\trw\t0 0\n")
	fh.r.hook = tab.hook
	setFstab(t, fh, snap)
	return fh, tab
}

func setFstab(t *testing.T, fh *fakeHost, snap string) {
	t.Helper()
	v := fh.m.Cfg.Vhosts["vhost1"]
	b, err := fh.m.RenderFstab(v, snap)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fh.m.Cfg.FstabPath(v), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func stepNames(s []Step) string {
	var n []string
	for _, x := range s {
		n = append(n, x.Name)
	}
	return strings.Join(n, " ")
}

// promote and rollback stage the /etc of a running vhost on the md backend, after the journal
// and the conf and before the stop, with these exact commands; not of a stopped vhost, not
// with the tmpfs backend (jail(8) mounts that from the fstab), not when /cfg is not mounted.
func TestPlanStagesEtc(t *testing.T) {
	ctx := context.Background()
	fh, tab := stageHost(t, 2, "zpool/proto@1")
	m := fh.m
	p, err := m.PlanPromote(ctx, "proto@2", []string{"vhost1", "vhost2"}, SwitchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := stepNames(p.Vhosts[0].Steps); got != "hold journal conf stage stop fstab start commit" {
		t.Errorf("running vhost1: steps %s", got)
	}
	if got := stepNames(p.Vhosts[1].Steps); got != "hold journal conf fstab commit" {
		t.Errorf("stopped vhost2: steps %s", got)
	}
	v := m.Cfg.Vhosts["vhost1"]
	mnt := filepath.Join(m.Cfg.StateDir, "stage.vhost1", "etc")
	want := []string{
		"/sbin/mdconfig -a -t swap -s 32m -L rollout:stage:vhost1",
		"/sbin/newfs -U /dev/mdN",
		"/sbin/mount /dev/mdN " + mnt,
		"fingerprint " + filepath.Join(v.Path, "cfg"),
		"build /etc from zpool/proto/etc@2 plus " + filepath.Join(v.Path, "cfg") + " into " + mnt,
		"/sbin/umount " + mnt,
		"write " + filepath.Join(m.Cfg.StateDir, "stage.vhost1.json") + " (atomic rename)",
		"on failure: free the disk; /sbin/zfs set rollout:pending=none zpool/vhost1 (the jail was not stopped)",
	}
	if got := p.Vhosts[0].Steps[3].Cmds; !reflect.DeepEqual(got, want) {
		t.Errorf("stage commands:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := stepNames(p.Vhosts[0].Undo); strings.Contains(got, "stage") {
		t.Errorf("undo stages: %s", got)
	}
	p, err = m.PlanRollback(ctx, []string{"vhost1"}, "proto@2", SwitchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := stepNames(p.Vhosts[0].Steps); got != "hold journal conf stage stop fstab start commit" {
		t.Errorf("rollback: steps %s", got)
	}
	m.Cfg.Etc.Backend = "tmpfs"
	if p, err = m.PlanPromote(ctx, "proto@2", []string{"vhost1"}, SwitchOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := stepNames(p.Vhosts[0].Steps); got != "hold journal conf stop fstab start commit" {
		t.Errorf("tmpfs backend: steps %s", got)
	}
	m.Cfg.Etc.Backend = "md"
	tab.fixed = ""
	if p, err = m.PlanPromote(ctx, "proto@2", []string{"vhost1"}, SwitchOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := stepNames(p.Vhosts[0].Steps); got != "hold journal conf stop fstab start commit" {
		t.Errorf("/cfg not mounted: steps %s", got)
	}
}

// stage runs vhost1's stage step for zpool/proto@2 and checks what it leaves: a staged disk
// mounted nowhere, its record, no staging directory.
func stage(t *testing.T, fh *fakeHost, tab *mdTable) *stageRecord {
	t.Helper()
	m := fh.m
	v := m.Cfg.Vhosts["vhost1"]
	if err := m.stageStep(v, "zpool/proto@1", "zpool/proto@2").run(context.Background()); err != nil {
		t.Fatal(err)
	}
	rec, err := m.readStageRecord("vhost1")
	if err != nil || rec == nil {
		t.Fatalf("record: %+v, %v", rec, err)
	}
	if rec.Unit != "md8" || rec.Snapshot != "zpool/proto@2" || rec.Vhost != "vhost1" || len(rec.Cfg) != 64 || rec.Stats.Files != 2 {
		t.Fatalf("record %+v", rec)
	}
	if tab.units["md8"] != "rollout:stage:vhost1" || len(tab.mounts) != 0 {
		t.Fatalf("after the stage: units %v, mounts %v", tab.units, tab.mounts)
	}
	if fi, err := os.Stat(m.stageRecordFile("vhost1")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("record file: %v %v", fi, err)
	}
	if _, err := os.Lstat(m.stageDir("vhost1")); !os.IsNotExist(err) {
		t.Fatalf("staging directory left: %v", err)
	}
	return rec
}

// promote reports the /etc part of a jail's downtime from the last `etc init` of that vhost,
// if it is recent: nothing recorded, a record over an hour old or one that is not JSON is 0.
func TestLastEtcBuild(t *testing.T) {
	m := &Manager{Cfg: &config.Config{StateDir: filepath.Join(t.TempDir(), "state")}}
	if d := m.lastEtcBuild("vhost1"); d != 0 {
		t.Errorf("nothing recorded: %s", d)
	}
	m.recordEtcTiming("vhost1", 3*time.Second, 12)
	if d, d2 := m.lastEtcBuild("vhost1"), m.lastEtcBuild("vhost2"); d != 3*time.Second || d2 != 0 {
		t.Errorf("recorded 3s for vhost1: vhost1 %s, vhost2 %s", d, d2)
	}
	old, err := json.Marshal(etcTiming{Vhost: "vhost1", Duration: 3 * time.Second, Files: 12, At: time.Now().Add(-2 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range [][]byte{old, []byte("{")} {
		if err := os.WriteFile(m.etcTimingFile("vhost1"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		if d := m.lastEtcBuild("vhost1"); d != 0 {
			t.Errorf("record %s: %s", b, d)
		}
	}
}

// The start after a stage, everything matching: `etc init` runs one mount of the staged disk,
// and uses the record up.
func TestEtcInitUsesStaged(t *testing.T) {
	fh, tab := stageHost(t, 1, "zpool/proto@1")
	rec := stage(t, fh, tab)
	// the switch: stop, new fstab, start
	setFstab(t, fh, "zpool/proto@2")
	fh.reset()
	v := fh.m.Cfg.Vhosts["vhost1"]
	live := filepath.Join(v.Path, "etc")
	st, staged, err := fh.m.EtcInit(context.Background(), "vhost1")
	if err != nil || !staged || st != rec.Stats {
		t.Fatalf("EtcInit = %+v, %v, %v", st, staged, err)
	}
	want := []string{"/sbin/mdconfig -l -v", "/sbin/mount -p", "/sbin/mount /dev/md8 " + live}
	if got := fh.calls(); !reflect.DeepEqual(got, want) {
		t.Fatalf("commands:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if r, err := fh.m.readStageRecord("vhost1"); r != nil || err != nil {
		t.Fatalf("record not used up: %+v %v", r, err)
	}
	// the poststop of this /etc frees the staged disk it is
	if err := fh.m.EtcCleanup(context.Background(), "vhost1"); err != nil {
		t.Fatal(err)
	}
	if len(tab.units) != 0 || len(tab.mounts) != 0 {
		t.Fatalf("after cleanup: units %v, mounts %v", tab.units, tab.mounts)
	}
}

// Whenever the record does not describe this start, `etc init` frees the staged disk (if it
// is mounted nowhere), drops the record and builds /etc as without staging.
func TestEtcInitRebuildsWhenStagedDoesNotFit(t *testing.T) {
	for _, c := range []struct {
		name  string
		edit  func(t *testing.T, fh *fakeHost, tab *mdTable)
		freed bool // the staged md8 is freed
	}{
		{"cfg changed", func(t *testing.T, fh *fakeHost, _ *mdTable) {
			time.Sleep(20 * time.Millisecond)
			mustWrite(t, filepath.Join(fh.m.Cfg.Vhosts["vhost1"].Path, "cfg", "ssh", "sshd_config"))
		}, true},
		{"other snapshot", func(t *testing.T, fh *fakeHost, _ *mdTable) { setFstab(t, fh, "zpool/proto@1") }, true},
		{"unit gone", func(_ *testing.T, _ *fakeHost, tab *mdTable) { delete(tab.units, "md8") }, false},
		{"unit mounted", func(_ *testing.T, _ *fakeHost, tab *mdTable) {
			tab.mounts = append(tab.mounts, [2]string{"/dev/md8", "/mnt"})
		}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			fh, tab := stageHost(t, 1, "zpool/proto@1")
			stage(t, fh, tab)
			setFstab(t, fh, "zpool/proto@2")
			c.edit(t, fh, tab)
			fh.reset()
			v := fh.m.Cfg.Vhosts["vhost1"]
			live := filepath.Join(v.Path, "etc")
			st, staged, err := fh.m.EtcInit(context.Background(), "vhost1")
			if err != nil || staged || st.Files != 3 {
				t.Fatalf("EtcInit = %+v, %v, %v", st, staged, err)
			}
			calls := strings.Join(fh.calls(), "\n")
			if got := strings.Contains(calls, "/sbin/mdconfig -d -u 8"); got != c.freed {
				t.Errorf("staged disk freed: %v, want %v:\n%s", got, c.freed, calls)
			}
			for _, w := range []string{"/sbin/mdconfig -a -t swap -s 32m -L rollout:vhost1", "/sbin/newfs -U /dev/md9", "/sbin/mount /dev/md9 " + live} {
				if !strings.Contains(calls, w) {
					t.Errorf("no %s:\n%s", w, calls)
				}
			}
			if strings.Contains(calls, "/sbin/mount /dev/md8") {
				t.Errorf("the staged disk was mounted:\n%s", calls)
			}
			if _, err := os.Stat(filepath.Join(live, "ssh", "sshd_config")); err != nil {
				t.Errorf("/etc not built: %v", err)
			}
			if r, err := fh.m.readStageRecord("vhost1"); r != nil || err != nil {
				t.Errorf("record left: %+v %v", r, err)
			}
		})
	}
}

// A stage that fails after making its disk frees it and leaves no record or directory; the
// jail was not touched, and the journal is closed.
func TestStageFailureFreesDisk(t *testing.T) {
	fh, tab := stageHost(t, 1, "zpool/proto@1")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// the build is cut short: the context ends once the disk is made
	tab.fail = func(argv []string) error {
		if argv[0] == "/sbin/newfs" {
			cancel()
		}
		return nil
	}
	v := fh.m.Cfg.Vhosts["vhost1"]
	err := fh.m.stageStep(v, "zpool/proto@1", "zpool/proto@2").run(ctx)
	if err == nil || !strings.Contains(err.Error(), "vhost vhost1") || !strings.Contains(err.Error(), "the jail was not stopped (still on zpool/proto@1)") {
		t.Fatalf("err = %v", err)
	}
	// the vhost runs on as before: its journal is closed, no repair needed
	if calls := fh.calls(); calls[len(calls)-1] != "/sbin/zfs set rollout:pending=none zpool/vhost1" {
		t.Errorf("last command %q, want the journal closed", calls[len(calls)-1])
	}
	if len(tab.units) != 0 || len(tab.mounts) != 0 {
		t.Fatalf("left: units %v, mounts %v", tab.units, tab.mounts)
	}
	if r, _ := fh.m.readStageRecord("vhost1"); r != nil {
		t.Fatalf("record %+v", r)
	}
	if _, err := os.Lstat(fh.m.stageDir("vhost1")); !os.IsNotExist(err) {
		t.Fatalf("staging directory left: %v", err)
	}
	for _, c := range fh.calls() {
		if strings.HasPrefix(c, "/usr/sbin/jail") {
			t.Errorf("the stage touched the jail: %s", c)
		}
	}
}

// repair's orphans step, after a crash between the stage and the start: the record goes, the
// staged disk is freed; one killed mid-stage (still mounted in state_dir) is unmounted first.
func TestOrphansStepFreesStaged(t *testing.T) {
	fh, tab := stageHost(t, 1, "zpool/proto@1")
	stage(t, fh, tab)
	// a second vhost's stage killed while its disk was mounted in state_dir
	dir := filepath.Join(fh.m.Cfg.StateDir, "stage.vhost2")
	mustMkdir(t, filepath.Join(dir, "etc"))
	tab.units["md20"] = "rollout:stage:vhost2"
	tab.mounts = append(tab.mounts, [2]string{"/dev/md20", filepath.Join(dir, "etc")})
	fh.m.Out = &strings.Builder{}
	if err := fh.m.orphansStep().run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(tab.units) != 0 || len(tab.mounts) != 0 {
		t.Fatalf("left: units %v, mounts %v", tab.units, tab.mounts)
	}
	left, _ := os.ReadDir(fh.m.Cfg.StateDir)
	for _, e := range left {
		if strings.HasPrefix(e.Name(), stagePrefix) {
			t.Errorf("left in state_dir: %s", e.Name())
		}
	}
}

// state_dir reached through a symbolic link (Debian's /var/run -> /run): the staging mount is
// made, and looked up in the mount table, by the real path, as mount(8) records it.
func TestStageDirResolvesStateDirLinks(t *testing.T) {
	real := t.TempDir()
	link := filepath.Join(t.TempDir(), "run")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	m := &Manager{Cfg: &config.Config{StateDir: filepath.Join(link)}}
	if got, want := m.stageDir("vhost1"), filepath.Join(real, "stage.vhost1"); got != want {
		t.Errorf("stageDir = %s, want %s", got, want)
	}
	m.Cfg.StateDir = filepath.Join(link, "absent") // not made yet: as configured
	if got := m.stageDir("vhost1"); got != filepath.Join(link, "absent", "stage.vhost1") {
		t.Errorf("stageDir of a state_dir not made yet = %s", got)
	}
}

// What a fresh /etc holds: newfs on md(4) keeps about a tenth for its metadata, tmpfs nothing.
func TestUsable(t *testing.T) {
	for _, c := range []struct {
		size    int64
		backend string
		want    int64
	}{
		{64 << 20, host.BackendMD, 64 << 20 / 10 * 9},
		{1000, host.BackendMD, 900},
		{1009, host.BackendMD, 900}, // whole tenths: rounding down errs on the side of refusing
		{64 << 20, host.BackendTmpfs, 64 << 20},
	} {
		if got := usable(c.size, c.backend); got != c.want {
			t.Errorf("usable(%d, %s) = %d, want %d", c.size, c.backend, got, c.want)
		}
	}
}
