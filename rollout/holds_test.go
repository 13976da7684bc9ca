package rollout

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Repair (and every command's last step) settles rollout's holds: a snapshot a vhost runs on
// that lost its hold (a `zfs release` by hand) gets it back, one no vhost needs loses it. The
// dry-run plan names both commands; executing it runs exactly those.
func TestRepairSettlesHolds(t *testing.T) {
	fh := newFakeHost(t, 3) // vhost1..3 on @1; @1 unheld, @2 held by rollout and needed by none
	fh.r.out[zfsListSnap] = "zpool/proto@1\t111\t10\t1764000000\t0\t0\nzpool/proto/etc@1\t112\t10\t1764000000\t0\t0\n" +
		"zpool/proto@2\t221\t20\t1764100000\t0\t1\nzpool/proto/etc@2\t222\t20\t1764100000\t0\t1\n"
	fh.r.out[zfsHolds] = "zpool/proto@2\trollout\tThu Nov 26 10:00 2026\n"
	p, err := fh.m.PlanRepair(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	hold, release := "/sbin/zfs hold -r rollout zpool/proto@1", "/sbin/zfs release -r rollout zpool/proto@2"
	var desc []string
	for _, s := range p.Finally {
		desc = append(desc, s.Cmds...)
	}
	if !slices.Contains(desc, hold) || !slices.Contains(desc, release) {
		t.Errorf("plan does not name the hold on @1 and the release of @2:\n%s", strings.Join(desc, "\n"))
	}
	fh.reset()
	if _, err := fh.m.Execute(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	var changed []string
	for _, c := range fh.calls() {
		if strings.HasPrefix(c, "/sbin/zfs hold ") || strings.HasPrefix(c, "/sbin/zfs release ") {
			changed = append(changed, c)
		}
	}
	if !slices.Equal(changed, []string{hold, release}) {
		t.Errorf("repair changed holds with %q, want %q", changed, []string{hold, release})
	}

	// settled: nothing more to do
	fh.r.out[zfsListSnap] = strings.ReplaceAll(fh.r.out[zfsListSnap], "0\t0\n", "0\t1\n")
	fh.r.out[zfsListSnap] = strings.ReplaceAll(fh.r.out[zfsListSnap], "1764100000\t0\t1\n", "1764100000\t0\t0\n")
	fh.r.out[zfsHolds] = "zpool/proto@1\trollout\tThu Nov 26 10:00 2026\n"
	fh.reset()
	held, released, err := fh.m.SettleHolds(context.Background())
	if err != nil || len(held)+len(released) != 0 {
		t.Errorf("settled holds changed again: held %v, released %v, %v", held, released, err)
	}
}

// A promote's dry run names the hold changes its last step will make, and only those: the
// switched vhost's previous-previous snapshot is released when no other vhost needs it, its old
// one is kept (to roll back to), its new one is held by its own hold step, not again at the end.
func TestPromotePlanNamesHoldChanges(t *testing.T) {
	for vhost2, want := range map[string][]string{
		"2": {"/sbin/zfs release -r rollout zpool/proto@1"},
		"1": nil, // vhost2 runs on @1
	} {
		fh := newFakeHost(t, 2) // vhost1 (running) and vhost2 (stopped)
		get := fh.r.out[zfsGetAll]
		for _, r := range [][2]string{
			{"zpool/vhost1\trollout:snapshot\tzpool/proto@1\tlocal", "zpool/vhost1\trollout:snapshot\tzpool/proto@2\tlocal"},
			{"zpool/vhost1\trollout:previous\t-\t-", "zpool/vhost1\trollout:previous\tzpool/proto@1\tlocal"},
			{"zpool/vhost2\trollout:snapshot\tzpool/proto@1\tlocal", "zpool/vhost2\trollout:snapshot\tzpool/proto@" + vhost2 + "\tlocal"},
		} {
			if !strings.Contains(get, r[0]) {
				t.Fatalf("fixture lacks %q", r[0])
			}
			get = strings.Replace(get, r[0], r[1], 1)
		}
		fh.r.out[zfsGetAll] = get
		fh.r.out[zfsListSnap] = "zpool/proto@1\t111\t10\t1764000000\t0\t1\nzpool/proto/etc@1\t112\t10\t1764000000\t0\t1\n" +
			"zpool/proto@2\t221\t20\t1764100000\t0\t1\nzpool/proto/etc@2\t222\t20\t1764100000\t0\t1\n" +
			"zpool/proto@3\t331\t30\t1764200000\t0\t0\nzpool/proto/etc@3\t332\t30\t1764200000\t0\t0\n"
		fh.r.out[zfsHolds] = "zpool/proto@1\trollout\tThu Nov 26 10:00 2026\nzpool/proto@2\trollout\tThu Nov 26 11:00 2026\n"
		mp := fh.m.Cfg.Proto.Mountpoint
		for _, d := range []string{"conf/base/etc", "etc", "dev", "cfg", "var", "home"} {
			if err := os.MkdirAll(filepath.Join(mp, ".zfs/snapshot/3", d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.MkdirAll(filepath.Join(mp, "etc/.zfs/snapshot/3"), 0o755); err != nil {
			t.Fatal(err)
		}
		p, err := fh.m.PlanPromote(context.Background(), "proto@3", []string{"vhost1"}, SwitchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var last []string
		for _, s := range p.Finally {
			if s.Name == "release" {
				last = s.Cmds[1:]
			}
		}
		if !slices.Equal(last, want) {
			t.Errorf("vhost2 on @%s: the last step's hold changes: %q, want %q", vhost2, last, want)
		}
	}
}

// A hold or release that fails stops the settling with its error (the next run settles again).
func TestSettleHoldsFailure(t *testing.T) {
	for _, failing := range []string{"/sbin/zfs hold -r rollout zpool/proto@1", "/sbin/zfs release -r rollout zpool/proto@2"} {
		fh := newFakeHost(t, 1)
		fh.r.out[zfsListSnap] = "zpool/proto@1\t111\t10\t1764000000\t0\t0\nzpool/proto@2\t221\t20\t1764100000\t0\t1\n"
		fh.r.out[zfsHolds] = "zpool/proto@2\trollout\tThu Nov 26 10:00 2026\n"
		fh.r.fail = map[string]string{failing: "cannot " + failing + ": pool I/O is currently suspended\n"}
		if _, _, err := fh.m.SettleHolds(context.Background()); err == nil || !strings.Contains(err.Error(), "suspended") {
			t.Errorf("%s failed: SettleHolds says %v", failing, err)
		}
	}
}

// A running jail that rollout has no state for yet (started by hand, adopted by its first
// promote) has nothing to go back to: the undo after a failed health check stops it and clears
// the journal, with no fstab of an old snapshot to write.
func TestPromoteAdoptedRunningUndo(t *testing.T) {
	fh := newFakeHost(t, 1)
	fh.r.out[zfsGetAll] = strings.Replace(fh.r.out[zfsGetAll], "zpool/vhost1\trollout:snapshot\tzpool/proto@1\tlocal", "zpool/vhost1\trollout:snapshot\t-\t-", 1)
	p, err := fh.m.PlanPromote(context.Background(), "proto@2", []string{"vhost1"}, SwitchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var undo []string
	for _, s := range p.Vhosts[0].Undo {
		undo = append(undo, s.Name)
	}
	if vp := p.Vhosts[0]; vp.From != "" || !vp.Running || !slices.Equal(undo, []string{"stop", "journal"}) {
		t.Errorf("from %q, running %v, undo %q; want from nothing, running, undo [stop journal]", vp.From, vp.Running, undo)
	}
}

// A repair of a promote killed after its hold step puts the vhost back on its old snapshot: the
// new one, held by the killed promote and needed by no vhost, is released, and the dry run says so.
func TestRepairPlanReleasesAbandonedTarget(t *testing.T) {
	fh := newFakeHost(t, 1)
	j := (&Journal{Op: "promote", From: "zpool/proto@1", To: "zpool/proto@2", Step: "stop", WasRunning: true}).String()
	fh.r.out[zfsGetAll] = strings.Replace(fh.r.out[zfsGetAll], "zpool/vhost1\trollout:pending\tnone\tlocal", "zpool/vhost1\trollout:pending\t"+j+"\tlocal", 1)
	fh.r.out[zfsListSnap] = "zpool/proto@1\t111\t10\t1764000000\t0\t1\nzpool/proto@2\t221\t20\t1764100000\t0\t1\n"
	fh.r.out[zfsHolds] = "zpool/proto@1\trollout\tThu Nov 26 10:00 2026\nzpool/proto@2\trollout\tThu Nov 26 11:00 2026\n"
	p, err := fh.m.PlanRepair(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Vhosts) == 0 || p.Vhosts[0].Noop != "" {
		t.Fatalf("the journal was not found: %+v", p.Vhosts)
	}
	var last []string
	for _, s := range p.Finally {
		if s.Name == "release" {
			last = s.Cmds[1:]
		}
	}
	if want := []string{"/sbin/zfs release -r rollout zpool/proto@2"}; !slices.Equal(last, want) {
		t.Errorf("the last step's hold changes: %q, want %q", last, want)
	}
}

// repair puts a vhost whose switch did not finish back on its committed snapshot: its
// jail.conf, a stop, its fstab for that snapshot, a start when it ran before, the journal
// cleared.
func TestPlanRepairSteps(t *testing.T) {
	fh := newFakeHost(t, 1)
	fh.r.out[zfsGetAll] = strings.Replace(fh.r.out[zfsGetAll], "zpool/vhost1\trollout:pending\tnone\tlocal",
		"zpool/vhost1\trollout:pending\top=promote from=zpool/proto@1 to=zpool/proto@2 step=start running=true\tlocal", 1)
	p, err := fh.m.PlanRepair(context.Background(), []string{"vhost1"})
	if err != nil {
		t.Fatal(err)
	}
	vp := p.Vhosts[0]
	if got := stepNames(vp.Steps); got != "conf stop fstab start journal" || vp.From != "zpool/proto@2" || vp.To != "zpool/proto@1" ||
		!strings.Contains(vp.Steps[2].Cmds[0], "(zpool/proto@1, atomic rename)") {
		t.Errorf("repair %s -> %s: %s %q", vp.From, vp.To, got, vp.Steps[2].Cmds)
	}
}
