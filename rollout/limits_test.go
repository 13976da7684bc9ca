package rollout

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rollout-dev/rollout/proto/command"
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

// create plans the vhost's datasets (legacy mountpoints), its hold, jail.conf, fstab, state
// and boot flag, and a start; executed, it creates only the datasets that are missing and
// writes what it showed. It refuses a vhost that exists, a jail name in use and a /etc that
// would not fit.
func TestPlanCreate(t *testing.T) {
	ctx := context.Background()
	fh := newFakeHost(t, 1) // vhost2 is configured but has no dataset
	v := fh.m.Cfg.Vhosts["vhost2"]
	fh.r.fail = map[string]string{
		"/sbin/zfs list -H -o name -t all zpool/vhost2": "cannot open 'zpool/vhost2': dataset does not exist",
		"/usr/sbin/jls -j vhost2":                       `jls: jail "vhost2" not found`,
	}
	p, err := fh.m.PlanCreate(ctx, "vhost2", "proto@2", true)
	if err != nil {
		t.Fatal(err)
	}
	if p.Op != "create vhost2 on zpool/proto@2" || len(p.Vhosts) != 1 || p.Vhosts[0].To != "zpool/proto@2" {
		t.Fatalf("plan %+v", p)
	}
	vp := p.Vhosts[0]
	if got := stepNames(vp.Steps); got != "datasets hold conf fstab commit boot start" {
		t.Errorf("steps %s", got)
	}
	create := []string{"/sbin/zfs create -p -o mountpoint=legacy zpool/vhost2"}
	for _, c := range []string{"cfg", "var", "home"} {
		create = append(create, "/sbin/zfs create -p -o mountpoint=legacy zpool/vhost2/"+c)
	}
	if !slices.Equal(vp.Steps[0].Cmds, create) || !slices.Equal(vp.Steps[1].Cmds, []string{"/sbin/zfs hold -r rollout zpool/proto@2"}) {
		t.Errorf("datasets %q, hold %q", vp.Steps[0].Cmds, vp.Steps[1].Cmds)
	}
	// not started: no start step, and not to be started at boot
	if p, err = fh.m.PlanCreate(ctx, "vhost2", "proto@2", false); err != nil {
		t.Fatal(err)
	}
	if got := stepNames(p.Vhosts[0].Steps); got != "datasets hold conf fstab commit boot" ||
		!slices.Equal(p.Vhosts[0].Steps[5].Cmds, []string{"/sbin/zfs set rollout:boot=off zpool/vhost2"}) {
		t.Errorf("without start: %s %q", got, p.Vhosts[0].Steps[5].Cmds)
	}
	// executed (not started: the fake jls would not find the jail): zpool/vhost2/var exists
	// already (a create that failed half way)
	delete(fh.r.fail, "/sbin/zfs list -H -o name -t all zpool/vhost2")
	fh.r.hook = func(_ context.Context, c command.Cmd) (bool, error) {
		if q := command.Quote(c.Argv); strings.HasPrefix(q, "/sbin/zfs list -H -o name -t all ") && c.Argv[len(c.Argv)-1] != "zpool/vhost2/var" {
			return true, &command.Error{Argv: c.Argv, ExitCode: 1, Stderr: "dataset does not exist", Err: errors.New("exit status 1")}
		}
		return false, nil
	}
	fh.reset()
	if _, err := fh.m.Execute(ctx, p); err != nil {
		t.Fatal(err)
	}
	var ran []string
	for _, c := range fh.calls() {
		if strings.HasPrefix(c, "/sbin/zfs create ") {
			ran = append(ran, c)
		}
	}
	if want := slices.Delete(slices.Clone(create), 2, 3); !slices.Equal(ran, want) {
		t.Errorf("created %q, want %q", ran, want)
	}
	for _, want := range []string{"/sbin/zfs hold -r rollout zpool/proto@2", "/sbin/zfs set rollout:boot=off zpool/vhost2"} {
		if !slices.Contains(fh.calls(), want) {
			t.Errorf("did not run %q:\n%s", want, strings.Join(fh.calls(), "\n"))
		}
	}
	want, err := fh.m.RenderFstab(v, "zpool/proto@2")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(fh.m.Cfg.FstabPath(v)); err != nil || !bytes.Equal(got, want) {
		t.Errorf("fstab %q, %v; want %q", got, err, want)
	}

	// a health check goes after the start
	v.Health = []string{"/usr/local/bin/check"}
	if p, err = fh.m.PlanCreate(ctx, "vhost2", "proto@2", true); err != nil || stepNames(p.Vhosts[0].Steps) != "datasets hold conf fstab commit boot start health" {
		t.Errorf("with a health check: %v %+v", err, p)
	}
	v.Health = nil

	for _, c := range []struct {
		name, vhost, ref, want string
		setup                  func()
	}{
		{"unknown vhost", "vhost9", "proto@2", "vhost9", func() {}},
		{"unknown snapshot", "vhost2", "proto@9", "proto@9", func() {}},
		{"exists", "vhost1", "proto@2", "vhost vhost1 already exists (it runs on zpool/proto@1); use rollout promote", func() {
			fh.r.out["/sbin/zfs get -H -p -s local -o property,value all zpool/vhost1"] = "rollout:snapshot\tzpool/proto@1\n"
			fh.r.out["/usr/sbin/jls -j vhost1"] = "1 vhost1 " + fh.m.Cfg.Vhosts["vhost1"].Path + "\n"
		}},
		{"zfs fails", "vhost2", "proto@2", "pool I/O", func() {
			fh.r.fail["/sbin/zfs list -H -o name -t all zpool/vhost2"] = "pool I/O is currently suspended"
		}},
		{"jail name in use", "vhost2", "proto@2", "vhost vhost2: a jail of that name is already running", func() {
			fh.r.out["/usr/sbin/jls -j vhost2"] = "7 vhost2 /elsewhere\n"
			delete(fh.r.fail, "/usr/sbin/jls -j vhost2")
		}},
		{"jls fails", "vhost2", "proto@2", "vhost vhost2: a jail of that name is already running", func() {
			fh.r.fail["/usr/sbin/jls -j vhost2"] = "jls: kernel says no"
		}},
		{"no mount point in the snapshot", "vhost2", "proto@2", "no directory /home to mount on", func() {
			if err := os.Remove(filepath.Join(fh.m.Cfg.Proto.Mountpoint, ".zfs", "snapshot", "2", "home")); err != nil {
				t.Fatal(err)
			}
		}},
		{"/etc too big", "vhost2", "proto@2", "raise etc.size", func() {
			fh.m.Cfg.Etc.Size = "1m"
			big := filepath.Join(fh.m.Cfg.Proto.EtcMountpoint(), ".zfs", "snapshot", "2", "big")
			if err := os.WriteFile(big, make([]byte, 2<<20), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			fh = newFakeHost(t, 1)
			fh.r.fail = map[string]string{
				"/sbin/zfs list -H -o name -t all zpool/vhost2": "cannot open 'zpool/vhost2': dataset does not exist",
				"/usr/sbin/jls -j vhost2":                       `jls: jail "vhost2" not found`,
			}
			c.setup()
			if _, err := fh.m.PlanCreate(ctx, c.vhost, c.ref, true); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%v, want %q", err, c.want)
			}
		})
	}
}

// create measures the /etc it would build with the vhost's /cfg when that is mounted (a
// vhost made again over its kept /cfg), the base alone when not.
func TestPlanCreateMeasuresCfg(t *testing.T) {
	fh := newFakeHost(t, 1)
	v := fh.m.Cfg.Vhosts["vhost2"]
	fh.m.Cfg.Etc.Size = "1m"
	fh.r.fail = map[string]string{
		"/sbin/zfs list -H -o name -t all zpool/vhost2": "cannot open 'zpool/vhost2': dataset does not exist",
		"/usr/sbin/jls -j vhost2":                       `jls: jail "vhost2" not found`,
	}
	cfg := filepath.Join(v.Path, "cfg")
	mustMkdir(t, cfg)
	if err := os.WriteFile(filepath.Join(cfg, "big"), make([]byte, 2<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := fh.m.PlanCreate(context.Background(), "vhost2", "proto@2", true); err != nil {
		t.Errorf("/cfg not mounted: %v", err)
	}
	fh.r.out["/sbin/mount -p"] = "zpool/vhost2/cfg\t" + cfg + "\tzfs\trw\t0 0\n"
	if _, err := fh.m.PlanCreate(context.Background(), "vhost2", "proto@2", true); err == nil || !strings.Contains(err.Error(), "raise etc.size") {
		t.Errorf("/cfg mounted: %v", err)
	}
}
