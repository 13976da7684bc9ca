package rollout

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rollout-dev/rollout/rollout/config"
	"github.com/rollout-dev/rollout/rollout/host"
)

// The commands one read of the host runs, as the recorder sees them (prefixes).
const (
	zfsGetAll   = "/sbin/zfs get -H -p -r -t filesystem -o name,property,value,source rollout:snapshot,rollout:previous,rollout:history,rollout:pending,rollout:boot,rollout:try,rollout:try-of"
	zfsListSnap = "/sbin/zfs list -H -p -t snapshot"
	zfsHolds    = "/sbin/zfs holds -H"
	jlsAll      = "/usr/sbin/jls jid name"
)

// fakeHost builds a host of n vhosts (vhost1..vhostN) in pool zpool: every vhost on
// zpool/proto@1 (held), the odd ones running; vhostN+1 is configured but has no dataset. The
// prototype's snapshots 1 and 2 exist below proto.mountpoint, so promote's checks pass.
type fakeHost struct {
	m       *Manager
	r       *recorder
	n       int
	running map[string]bool
}

// confDirHost is the FreeBSD host with its jail.conf files in a temporary directory.
type confDirHost struct {
	host.Host
	dir string
}

func (h confDirHost) ConfFile(j host.Jail) string { return filepath.Join(h.dir, j.Name+".conf") }

func newFakeHost(t testing.TB, n int) *fakeHost {
	t.Helper()
	dir := t.TempDir()
	var toml strings.Builder
	fmt.Fprintf(&toml, "pool = \"zpool\"\nstate_dir = %q\njail_root = %q\nfstab_dir = %q\n[proto]\nmountpoint = %q\n",
		filepath.Join(dir, "state"), filepath.Join(dir, "jail"), dir, filepath.Join(dir, "proto"))
	for i := 1; i <= n+1; i++ {
		fmt.Fprintf(&toml, "[vhost.vhost%d]\n", i)
	}
	cfg, err := config.Parse(filepath.Join(dir, "rollout.toml"), []byte(toml.String()))
	if err != nil {
		t.Fatal(err)
	}
	for _, snap := range []string{"1", "2"} {
		root := filepath.Join(dir, "proto", ".zfs", "snapshot", snap)
		for _, d := range []string{"conf/base/etc", "etc", "dev", "cfg", "var", "home"} {
			if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		etc := filepath.Join(dir, "proto", "etc", ".zfs", "snapshot", snap)
		if err := os.MkdirAll(etc, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(etc, "rc.conf"), []byte("sshd_enable=YES\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var get, jls strings.Builder
	props := func(ds string, snapshot string) {
		src := "local"
		if snapshot == "-" {
			src = "-"
		}
		fmt.Fprintf(&get, "%s\trollout:snapshot\t%s\t%s\n", ds, snapshot, src)
		fmt.Fprintf(&get, "%s\trollout:previous\t-\t-\n%s\trollout:history\t-\t-\n", ds, ds)
		fmt.Fprintf(&get, "%s\trollout:pending\t%s\t%s\n", ds, map[bool]string{true: "-", false: "none"}[src == "-"], src)
		fmt.Fprintf(&get, "%s\trollout:boot\t-\t-\n", ds)
	}
	props("zpool", "-")
	props("zpool/proto", "-")
	props("zpool/proto/etc", "-")
	fh := &fakeHost{n: n, running: map[string]bool{}}
	for i := 1; i <= n; i++ {
		ds := fmt.Sprintf("zpool/vhost%d", i)
		props(ds, "zpool/proto@1")
		for _, c := range []string{"cfg", "var", "home"} {
			// the vhost's state is inherited by its children: not theirs
			fmt.Fprintf(&get, "%s/%s\trollout:snapshot\tzpool/proto@1\tinherited from %s\n", ds, c, ds)
			fmt.Fprintf(&get, "%s/%s\trollout:previous\t-\t-\n", ds, c)
		}
		if i%2 == 1 {
			fh.running[fmt.Sprintf("vhost%d", i)] = true
			fmt.Fprintf(&jls, "%d vhost%d\n", i, i)
		}
	}
	fmt.Fprintf(&jls, "%d some other jail\n", n+100)
	fh.r = &recorder{out: map[string]string{
		zfsGetAll: get.String(),
		zfsListSnap: "zpool/proto@1\t111\t10\t1764000000\t0\t1\nzpool/proto/etc@1\t112\t10\t1764000000\t0\t1\n" +
			"zpool/proto@2\t221\t20\t1764100000\t0\t0\nzpool/proto/etc@2\t222\t20\t1764100000\t0\t0\n",
		zfsHolds: "zpool/proto@1\trollout\tThu Nov 26 10:00 2026\n",
		jlsAll:   jls.String(),
	}}
	fh.m = &Manager{Cfg: cfg, R: fh.r, Log: quietLog(), Self: "/usr/local/sbin/rollout",
		Host: confDirHost{Host: host.NewFreeBSD(fh.r, quietLog()), dir: filepath.Join(dir, "jail.conf.d")}}
	return fh
}

func (fh *fakeHost) calls() []string {
	fh.r.mu.Lock()
	defer fh.r.mu.Unlock()
	return append([]string(nil), fh.r.calls...)
}

func (fh *fakeHost) reset() {
	fh.r.mu.Lock()
	fh.r.calls = nil
	fh.r.mu.Unlock()
}

func vhostNames(from, to int) []string {
	var names []string
	for i := from; i <= to; i++ {
		names = append(names, fmt.Sprintf("vhost%d", i))
	}
	return names
}

// status runs the same four processes for 1, 10 or 100 vhosts, and reports each vhost from them.
func TestStatusReadsOnce(t *testing.T) {
	want := []string{zfsGetAll + " zpool", jlsAll, zfsListSnap, zfsHolds + " zpool/proto@1"}
	for _, n := range []int{1, 10, 100} {
		fh := newFakeHost(t, n)
		st, err := fh.m.Status(context.Background(), nil, StatusOptions{})
		if err != nil {
			t.Fatalf("%d vhosts: %v", n, err)
		}
		calls := fh.calls()
		if len(calls) != len(want) {
			t.Fatalf("%d vhosts: %d processes, want %d:\n%s", n, len(calls), len(want), strings.Join(calls, "\n"))
		}
		for i, w := range want {
			if !strings.HasPrefix(calls[i], w) {
				t.Errorf("%d vhosts: process %d is %q, want %q...", n, i, calls[i], w)
			}
		}
		if len(st) != n+1 {
			t.Fatalf("%d vhosts: %d statuses", n, len(st))
		}
		byName := map[string]VhostStatus{}
		for _, s := range st {
			byName[s.Vhost] = s
		}
		for i := 1; i <= n; i++ {
			name := fmt.Sprintf("vhost%d", i)
			s := byName[name]
			if s.Vhost != name || !s.Exists || s.Snapshot != "zpool/proto@1" || !s.Held || s.Running != fh.running[name] || s.Pending != "" {
				t.Errorf("%d vhosts: status %+v", n, s)
			}
		}
		if s := byName[fmt.Sprintf("vhost%d", n+1)]; s.Vhost == "" || s.Exists || s.Running || s.Snapshot != "" {
			t.Errorf("vhost without a dataset: %+v", s)
		}
	}
}

// --etc compares the live /etc of each running vhost (here: finds it not mounted, and says
// nothing); without it no vhost's /etc is looked at.
func TestStatusEtcOnRequest(t *testing.T) {
	fh := newFakeHost(t, 10)
	if _, err := fh.m.Status(context.Background(), nil, StatusOptions{}); err != nil {
		t.Fatal(err)
	}
	if c := strings.Join(fh.calls(), "\n"); strings.Contains(c, "/sbin/mount -p") {
		t.Fatalf("status without --etc looked at /etc:\n%s", c)
	}
	fh.reset()
	st, err := fh.m.Status(context.Background(), nil, StatusOptions{Etc: true})
	if err != nil {
		t.Fatal(err)
	}
	// requireEtcMounted reads the mount table once per running vhost, then gives up
	if got := strings.Count(strings.Join(fh.calls(), "\n"), "/sbin/mount -p"); got != len(fh.running) {
		t.Fatalf("--etc: %d mount table reads, want one per running vhost (%d)", got, len(fh.running))
	}
	for _, s := range st {
		if s.UnsavedEtc != nil {
			t.Errorf("%s: %v from an /etc that is not mounted", s.Vhost, s.UnsavedEtc)
		}
	}
}

// Planning a promote reads the host once whatever the number of vhosts; executing it adds
// only each vhost's switch commands (the vhosts here are stopped: hold, journal, commit).
func TestPromoteReadsOnce(t *testing.T) {
	var planReads int
	for _, n := range []int{1, 10, 100} {
		fh := newFakeHost(t, n)
		p, err := fh.m.PlanPromote(context.Background(), "proto@2", vhostNames(1, n), SwitchOptions{Parallel: 4})
		if err != nil {
			t.Fatalf("%d vhosts: %v", n, err)
		}
		calls := fh.calls()
		// zfs get, jls, mount -p, zfs list, zfs holds
		if planReads == 0 {
			planReads = len(calls)
		}
		if len(calls) != planReads || len(calls) != 5 {
			t.Fatalf("%d vhosts: planning ran %d processes, want 5 as for 1 vhost:\n%s", n, len(calls), strings.Join(calls, "\n"))
		}
		if len(p.Vhosts) != n || p.Vhosts[0].To != "zpool/proto@2" || !p.Vhosts[0].Running || len(p.Vhosts) > 1 && p.Vhosts[1].Running {
			t.Fatalf("%d vhosts: plan %+v", n, p.Vhosts[0])
		}
		if n == 1 {
			continue
		}
		// the stopped vhosts only; the release at the end reads the host once more
		fh = newFakeHost(t, n)
		var stopped []string
		for i := 2; i <= n; i += 2 {
			stopped = append(stopped, fmt.Sprintf("vhost%d", i))
		}
		if p, err = fh.m.PlanPromote(context.Background(), "proto@2", stopped, SwitchOptions{Parallel: 4}); err != nil {
			t.Fatal(err)
		}
		fh.reset()
		if _, err := fh.m.Execute(context.Background(), p); err != nil {
			t.Fatalf("%d vhosts: %v", n, err)
		}
		var perVhost, reads int
		for _, c := range fh.calls() {
			switch {
			case strings.HasPrefix(c, "/sbin/zfs hold -r rollout zpool/proto@2"), strings.HasPrefix(c, "/sbin/zfs set 'rollout:pending=op=promote"),
				strings.HasPrefix(c, "/sbin/zfs set rollout:history=none rollout:pending=none rollout:previous=zpool/proto@1 rollout:snapshot=zpool/proto@2"):
				perVhost++
			default:
				reads++
			}
		}
		if perVhost != 3*len(stopped) || reads != 3 {
			t.Fatalf("%d vhosts: %d switch commands (want %d) and %d others (want the 3 of the release):\n%s",
				n, perVhost, 3*len(stopped), reads, strings.Join(fh.calls(), "\n"))
		}
	}
}

// Planning a rollback, repair, boot, start or stop, or a prune, reads the host a fixed
// number of times whatever the number of vhosts.
func TestPlannersReadOnce(t *testing.T) {
	ctx := context.Background()
	plans := map[string]func(fh *fakeHost) error{
		"rollback": func(fh *fakeHost) error {
			_, err := fh.m.PlanRollback(ctx, vhostNames(1, fh.n), "proto@2", SwitchOptions{})
			return err
		},
		"repair": func(fh *fakeHost) error { _, err := fh.m.PlanRepair(ctx, nil); return err },
		"boot":   func(fh *fakeHost) error { _, err := fh.m.PlanBoot(ctx); return err },
		"start":  func(fh *fakeHost) error { _, err := fh.m.PlanStart(ctx, vhostNames(1, fh.n)); return err },
		"stop":   func(fh *fakeHost) error { _, err := fh.m.PlanStop(ctx, vhostNames(1, fh.n)); return err },
		"prune":  func(fh *fakeHost) error { _, err := fh.m.Prune(ctx, 1, true); return err },
	}
	for name, plan := range plans {
		var first int
		for _, n := range []int{1, 10, 100} {
			fh := newFakeHost(t, n)
			if err := plan(fh); err != nil {
				t.Fatalf("%s of %d vhosts: %v", name, n, err)
			}
			if n == 1 {
				first = len(fh.calls())
			}
			if got := len(fh.calls()); got != first || got > 5 {
				t.Errorf("%s of %d vhosts ran %d processes (1 vhost: %d):\n%s", name, n, got, first, strings.Join(fh.calls(), "\n"))
			}
		}
	}
}

func TestParseProps(t *testing.T) {
	out := "zpool/vhost1\trollout:snapshot\tzpool/proto@2\tlocal\n" +
		"zpool/vhost1\trollout:boot\t-\t-\n" +
		"zpool/vhost1/cfg\trollout:snapshot\tzpool/proto@2\tinherited from zpool/vhost1\n"
	p, err := parseProps([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if len(p) != 2 || p["zpool/vhost1"][propSnapshot] != "zpool/proto@2" || len(p["zpool/vhost1/cfg"]) != 0 {
		t.Fatalf("parseProps = %v", p)
	}
	for bad, want := range map[string]string{
		"zpool/vhost1\trollout:snapshot\tzpool/proto@2\n":          "3 fields, want 4",
		"zpool/vhost1\trollout:snapshot\tx\ty\tlocal\n":            "5 fields, want 4",
		"zpool/vhost1\tcompression\tlz4\tlocal\n":                  `zpool/vhost1: unexpected property "compression"`,
		"zpool/proto@1\trollout:snapshot\t-\t-\n":                  "is not a file system",
		"\trollout:snapshot\t-\t-\n":                               "is not a file system",
		"zpool/vhost1\trollout:snapshot\tzpool/proto@2\tlocal\n\n": "",
	} {
		_, err := parseProps([]byte(bad))
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("parseProps(%q): err = %v, want %q", bad, err, want)
		}
	}
}

// A corrupt state names the vhost and its dataset; a parent that does not exist means its
// vhosts' datasets do not, any other failure of zfs get is an error naming what was read.
func TestWorldErrors(t *testing.T) {
	fh := newFakeHost(t, 3)
	fh.r.out[zfsGetAll] = strings.Replace(fh.r.out[zfsGetAll], "zpool/vhost2\trollout:snapshot\tzpool/proto@1", "zpool/vhost2\trollout:snapshot\tzpool/proto@1;reboot", 1)
	if _, err := fh.m.Status(context.Background(), nil, StatusOptions{}); err == nil || !strings.Contains(err.Error(), "vhost vhost2: rollout:snapshot on zpool/vhost2") {
		t.Fatalf("corrupt state: %v", err)
	}

	fh = newFakeHost(t, 1)
	fh.m.Cfg.Vhosts["vhost1"].Dataset = "tank/jails/vhost1"
	fh.r.fail = map[string]string{zfsGetAll: "cannot open 'tank/jails': dataset does not exist\n"}
	st, err := fh.m.Status(context.Background(), nil, StatusOptions{})
	if err != nil || st[0].Exists {
		t.Fatalf("missing parent: %v %+v", err, st)
	}
	if c := fh.calls()[0]; !strings.HasSuffix(c, " tank/jails zpool") {
		t.Errorf("roots: %q", c)
	}
	fh.r.fail = map[string]string{zfsGetAll: "cannot open 'zpool': pool I/O is currently suspended\n"}
	if _, err := fh.m.Status(context.Background(), nil, StatusOptions{}); err == nil || !strings.Contains(err.Error(), "tank/jails zpool: ") {
		t.Fatalf("zfs get failed: %v", err)
	}
	// no prototype: status still reports, promote says what is missing
	fh = newFakeHost(t, 1)
	fh.r.out[zfsGetAll] = strings.ReplaceAll(fh.r.out[zfsGetAll], "zpool/proto", "zpool/other")
	if _, err := fh.m.Status(context.Background(), nil, StatusOptions{}); err != nil {
		t.Fatalf("status without a prototype: %v", err)
	}
	if _, err := fh.m.PlanPromote(context.Background(), "proto@2", []string{"vhost1"}, SwitchOptions{}); err == nil || !strings.Contains(err.Error(), "zpool/proto: does not exist") {
		t.Fatalf("promote without a prototype: %v", err)
	}
}

func TestRoots(t *testing.T) {
	got := roots([]string{"zpool/jails", "zpool", "tank/a/b", "tank/a", "zpool", "tank/ab"})
	if strings.Join(got, " ") != "tank/a tank/ab zpool" {
		t.Fatalf("roots = %v", got)
	}
}

// The cost of status's planning (parsing one read of the host) as vhosts grow.
func BenchmarkStatus(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("vhosts-%d", n), func(b *testing.B) {
			fh := newFakeHost(b, n)
			b.ResetTimer()
			for b.Loop() {
				if _, err := fh.m.Status(context.Background(), nil, StatusOptions{}); err != nil {
					b.Fatal(err)
				}
				fh.reset()
			}
		})
	}
}

// The cost of promote's planning (one read of the host, then each vhost's checks) as vhosts
// grow, every vhost promoted at once.
func BenchmarkPlanPromote(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("vhosts-%d", n), func(b *testing.B) {
			fh := newFakeHost(b, n)
			names := make([]string, n) // vhost1..n exist; the fake's last configured one does not
			for i := range names {
				names[i] = fmt.Sprintf("vhost%d", i+1)
			}
			b.ResetTimer()
			for b.Loop() {
				if _, err := fh.m.PlanPromote(context.Background(), "proto@2", names, SwitchOptions{}); err != nil {
					b.Fatal(err)
				}
				fh.reset()
			}
		})
	}
}

// status names what is wrong with each vhost's fstab: missing (only when the vhost has a
// snapshot to point at), not rollout's, edited, unreadable, or on another snapshot than its
// state; an fstab rollout wrote for the state's snapshot is no problem.
func TestStatusFstab(t *testing.T) {
	fh := newFakeHost(t, 1) // vhost1 on zpool/proto@1, vhost2 without a dataset
	v1, v2 := fh.m.Cfg.Vhosts["vhost1"], fh.m.Cfg.Vhosts["vhost2"]
	write := func(v *config.Vhost, snap string, edit func(string) string) {
		b, err := fh.m.RenderFstab(v, snap)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(fh.m.Cfg.FstabPath(v), []byte(edit(string(b))), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	same := func(s string) string { return s }
	for _, c := range []struct {
		name           string
		setup          func()
		fstab, problem string // vhost1's
	}{
		{"none", func() {}, "", "missing (rollout fstab --write vhost1)"},
		{"rollout's", func() { write(v1, "zpool/proto@1", same) }, "1", ""},
		{"another snapshot", func() { write(v1, "zpool/proto@2", same) }, "2", "points at @2, state says zpool/proto@1"},
		{"edited", func() {
			write(v1, "zpool/proto@1", func(s string) string { return strings.Replace(s, "zfs    rw 0 0", "zfs    rw,noexec 0 0", 1) })
		}, "1", "edited by hand"},
		{"not rollout's", func() {
			write(v1, "zpool/proto@1", func(s string) string { _, rest, _ := strings.Cut(s, "\n"); return rest })
		}, "1", "not written by rollout"},
		{"unreadable", func() {
			if err := os.Mkdir(fh.m.Cfg.FstabPath(v1), 0o755); err != nil {
				t.Fatal(err)
			}
		}, "", "vhost vhost1: read " + fh.m.Cfg.FstabPath(v1) + ": is a directory"},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, v := range []*config.Vhost{v1, v2} {
				if err := os.Remove(fh.m.Cfg.FstabPath(v)); err != nil && !os.IsNotExist(err) {
					t.Fatal(err)
				}
			}
			c.setup()
			// vhost2 has no snapshot: no fstab is no problem, nor is one on any snapshot
			if c.name == "rollout's" {
				write(v2, "zpool/proto@2", same)
			}
			st, err := fh.m.Status(context.Background(), nil, StatusOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if st[0].Fstab != c.fstab || st[0].FstabProblem != c.problem {
				t.Errorf("vhost1: fstab %q, problem %q; want %q, %q", st[0].Fstab, st[0].FstabProblem, c.fstab, c.problem)
			}
			if c.problem != "" && !slices.Contains(st[0].Attention, "fstab "+c.problem) {
				t.Errorf("vhost1: attention %q, want it to name the fstab", st[0].Attention)
			}
			if st[1].FstabProblem != "" {
				t.Errorf("vhost2 (no snapshot): fstab problem %q", st[1].FstabProblem)
			}
		})
	}
}

// With the running jail's /etc and /cfg mounted, etc diff lists the live edits and what /cfg
// overrides, status --etc shows the edits alone, and etc save copies them into /cfg.
func TestEtcDiffSaveAndStatus(t *testing.T) {
	fh := newFakeHost(t, 1) // vhost1 runs
	v := fh.m.Cfg.Vhosts["vhost1"]
	base, overlay, live := etcDirs(v)
	for p, data := range map[string]string{
		filepath.Join(base, "rc.conf"): "base\n", filepath.Join(base, "motd"): "base\n",
		filepath.Join(overlay, "motd"): "mine\n",
		filepath.Join(live, "rc.conf"): "edited live\n", filepath.Join(live, "motd"): "mine\n",
	} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fh.r.out["/sbin/mount -p"] = "zpool/vhost1/cfg\t" + overlay + "\tzfs\trw\t0 0\n/dev/md3\t" + live + "\tufs\trw\t0 0\n"
	ctx := context.Background()
	ch, err := fh.m.EtcDiff(ctx, "vhost1")
	if err != nil || fmt.Sprint(ch) != "[{motd overrides} {rc.conf edited}]" {
		t.Errorf("etc diff: %v, %v", ch, err)
	}
	st, err := fh.m.Status(ctx, []string{"vhost1"}, StatusOptions{Etc: true})
	if err != nil || !slices.Equal(st[0].UnsavedEtc, []string{"edited rc.conf"}) {
		t.Errorf("status --etc: %+v, %v", st, err)
	}
	saved, err := fh.m.EtcSave(ctx, "vhost1", nil)
	if err != nil || !slices.Equal(saved, []string{"rc.conf"}) {
		t.Errorf("etc save: %q, %v", saved, err)
	}
	if b, err := os.ReadFile(filepath.Join(overlay, "rc.conf")); err != nil || string(b) != "edited live\n" {
		t.Errorf("/cfg/rc.conf after save: %q, %v", b, err)
	}
	// /cfg not mounted: neither compares nor saves (an empty mount point reads as all removed)
	fh.r.out["/sbin/mount -p"] = "/dev/md3\t" + live + "\tufs\trw\t0 0\n"
	if _, err := fh.m.EtcDiff(ctx, "vhost1"); err == nil || !strings.Contains(err.Error(), overlay+" is not mounted") {
		t.Errorf("etc diff without /cfg: %v", err)
	}
	if _, err := fh.m.EtcSave(ctx, "vhost1", nil); err == nil || !strings.Contains(err.Error(), overlay+" is not mounted") {
		t.Errorf("etc save without /cfg: %v", err)
	}
}

// fstab --write writes the fstab and jail.conf a vhost's state asks for (after a reboot of a
// host whose /etc is a memory disk); a vhost with no snapshot recorded has none to write.
func TestWriteFstab(t *testing.T) {
	fh := newFakeHost(t, 1)
	fh.r.out["/sbin/zfs get -H -p -s local -o property,value all zpool/vhost1"] = "rollout:snapshot\tzpool/proto@1\n"
	v := fh.m.Cfg.Vhosts["vhost1"]
	ctx := context.Background()
	snap, err := fh.m.WriteFstab(ctx, "vhost1")
	if err != nil || snap != "zpool/proto@1" {
		t.Fatalf("WriteFstab = %q, %v", snap, err)
	}
	f, err := fh.m.ReadFstab(v)
	if err != nil || f == nil || f.Snapshot != "1" || f.Edited || !f.Generated {
		t.Errorf("fstab written: %+v, %v", f, err)
	}
	if _, err := os.Stat(fh.m.Host.ConfFile(fh.m.Jail(v))); err != nil {
		t.Errorf("jail.conf not written: %v", err)
	}
	for _, c := range []struct{ vhost, want string }{
		{"vhost2", "vhost vhost2: no snapshot recorded on zpool/vhost2; use rollout create"},
		{"vhost9", "vhost9"},
	} {
		if _, err := fh.m.WriteFstab(ctx, c.vhost); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.vhost, err, c.want)
		}
	}
}

// shutdown stops the running vhosts, and leaves the others (and rollout:boot) alone.
func TestPlanShutdown(t *testing.T) {
	fh := newFakeHost(t, 3) // vhost1 and vhost3 run
	p, err := fh.m.PlanShutdown(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, vp := range p.Vhosts {
		got = append(got, vp.Vhost+":"+stepNames(vp.Steps)+vp.Noop)
	}
	if want := []string{"vhost1:stop", "vhost2:not running", "vhost3:stop", "vhost4:not running"}; !slices.Equal(got, want) {
		t.Errorf("shutdown %q, want %q", got, want)
	}
	fh.r.fail = map[string]string{jlsAll: "jls: kernel says no"}
	if _, err := fh.m.PlanShutdown(context.Background()); err == nil {
		t.Error("shutdown planned without the list of jails")
	}
}

// WriteConf writes the jail.conf only when it differs from what is there, and says whether it did.
func TestWriteConf(t *testing.T) {
	fh := newFakeHost(t, 1)
	v := fh.m.Cfg.Vhosts["vhost1"]
	file := fh.m.Host.ConfFile(fh.m.Jail(v))
	want, err := fh.m.Host.RenderConf(fh.m.Jail(v))
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range []struct {
		edit    func()
		written bool
	}{
		{func() {}, true}, // none yet
		{func() {}, false},
		{func() { mustWrite(t, file) }, true},
	} {
		c.edit()
		written, err := fh.m.WriteConf(v)
		if err != nil || written != c.written {
			t.Errorf("%d: written %v, %v; want %v", i, written, err, c.written)
		}
		if got, err := os.ReadFile(file); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%d: jail.conf %q, %v", i, got, err)
		}
	}
}
