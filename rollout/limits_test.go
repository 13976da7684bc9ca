package rollout

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
)

const zfsGetSpace = "/sbin/zfs get -H -p -t filesystem -o name,property,value quota,refquota,reservation"

// A switch sets only the quota, refquota and reservation that differ from the configuration,
// read in one zfs get for all the vhosts, before the journal; the dry run shows the commands.
func TestPromoteSetsChangedSpace(t *testing.T) {
	fh := newFakeHost(t, 2)
	v1, v2 := fh.m.Cfg.Vhosts["vhost1"], fh.m.Cfg.Vhosts["vhost2"]
	v1.Quota = map[string]string{"var": "10G", "home": "none"}
	v1.RefQuota = map[string]string{"cfg": "1G"}
	v2.Reservation = map[string]string{"home": "1.5G"}
	fh.r.out[zfsGetSpace] = "zpool/vhost1/cfg\trefquota\t1073741824\n" +
		"zpool/vhost1/var\tquota\t0\n" +
		"zpool/vhost1/home\tquota\t0\n" +
		"zpool/vhost2/home\treservation\t0\n"
	p, err := fh.m.PlanPromote(context.Background(), "proto@2", []string{"vhost1", "vhost2"}, SwitchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	gets := 0
	for _, c := range fh.calls() {
		if strings.HasPrefix(c, zfsGetSpace) {
			gets++
			if !strings.HasSuffix(c, " zpool/vhost1/cfg zpool/vhost1/home zpool/vhost1/var zpool/vhost2/home") {
				t.Errorf("space read %q", c)
			}
		}
	}
	if gets != 1 {
		t.Fatalf("%d space reads, want 1:\n%s", gets, strings.Join(fh.calls(), "\n"))
	}
	names := func(vp *VhostPlan) []string {
		var n []string
		for _, s := range vp.Steps {
			n = append(n, s.Name)
		}
		return n
	}
	if got := names(p.Vhosts[0]); !slices.Equal(got[:3], []string{"hold", "space", "journal"}) {
		t.Errorf("vhost1 steps %q", got)
	}
	if got := p.Vhosts[0].Steps[1].Cmds; !slices.Equal(got, []string{"/sbin/zfs set quota=10G zpool/vhost1/var"}) {
		t.Errorf("vhost1 space commands %q", got)
	}
	if got := p.Vhosts[1].Steps[1].Cmds; !slices.Equal(got, []string{"/sbin/zfs set reservation=1.5G zpool/vhost2/home"}) {
		t.Errorf("vhost2 space commands %q", got)
	}
	var b bytes.Buffer
	p.Print(&b)
	if !strings.Contains(b.String(), "/sbin/zfs set quota=10G zpool/vhost1/var") {
		t.Errorf("the dry run does not show the quota:\n%s", b.String())
	}

	// executed (vhost2 is stopped): the command runs
	fh.reset()
	fh.r.out[zfsGetSpace] = "zpool/vhost2/home\treservation\t0\n"
	p, err = fh.m.PlanPromote(context.Background(), "proto@2", []string{"vhost2"}, SwitchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fh.m.Execute(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(fh.calls(), "/sbin/zfs set reservation=1.5G zpool/vhost2/home") {
		t.Errorf("reservation not set:\n%s", strings.Join(fh.calls(), "\n"))
	}

	// everything as configured: no step, and a vhost without space settings reads nothing more
	fh = newFakeHost(t, 2)
	fh.m.Cfg.Vhosts["vhost2"].Reservation = map[string]string{"home": "1.5G"}
	fh.r.out[zfsGetSpace] = "zpool/vhost2/home\treservation\t1610612736\n"
	if p, err = fh.m.PlanPromote(context.Background(), "proto@2", []string{"vhost2"}, SwitchOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := names(p.Vhosts[0]); slices.Contains(got, "space") {
		t.Errorf("steps %q with the reservation already set", got)
	}
	fh = newFakeHost(t, 2)
	if _, err = fh.m.PlanPromote(context.Background(), "proto@2", []string{"vhost2"}, SwitchOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, c := range fh.calls() {
		if strings.HasPrefix(c, zfsGetSpace) {
			t.Errorf("space read without space settings: %q", c)
		}
	}
}

// start applies a change too; create sets every value, one zfs set per dataset.
func TestStartAndCreateSetSpace(t *testing.T) {
	fh := newFakeHost(t, 2)
	v2 := fh.m.Cfg.Vhosts["vhost2"]
	v2.Quota = map[string]string{"var": "20G"}
	v2.RefQuota = map[string]string{"var": "10G"}
	fh.r.out[zfsGetSpace] = "zpool/vhost2/var\tquota\t10737418240\nzpool/vhost2/var\trefquota\t10737418240\n"
	p, err := fh.m.PlanStart(context.Background(), []string{"vhost2"})
	if err != nil {
		t.Fatal(err)
	}
	if s := p.Vhosts[0].Steps[0]; s.Name != "space" || !slices.Equal(s.Cmds, []string{"/sbin/zfs set quota=20G zpool/vhost2/var"}) {
		t.Errorf("start's first step %s %q", s.Name, s.Cmds)
	}
	s, ok := fh.m.spaceStep(v2, nil)
	if !ok || !slices.Equal(s.Cmds, []string{"/sbin/zfs set quota=20G refquota=10G zpool/vhost2/var"}) {
		t.Errorf("create's space step %q", s.Cmds)
	}
}

// A space read that fails for any reason but a missing dataset stops the plan, naming what was
// read; a missing dataset is left to the planners (they refuse it on their own terms).
func TestSpaceReadFailure(t *testing.T) {
	for stderr, want := range map[string]string{
		"cannot open 'zpool/vhost1/var': pool I/O is currently suspended\n": "zpool/vhost1/var",
		"cannot open 'zpool/vhost1/var': dataset does not exist\n":          "",
	} {
		fh := newFakeHost(t, 1)
		fh.m.Cfg.Vhosts["vhost1"].Quota = map[string]string{"var": "10G"}
		fh.r.fail = map[string]string{zfsGetSpace: stderr}
		_, err := fh.m.PlanPromote(context.Background(), "proto@2", []string{"vhost1"}, SwitchOptions{})
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("zfs get said %q: err = %v, want %q", stderr, err, want)
		}
	}
}
