package rollout

import (
	"context"
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
