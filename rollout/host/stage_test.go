package host

import (
	"context"
	"reflect"
	"strings"
	"testing"
)

// Staged disks of vhost1 (md8 mounted nowhere, waiting for the start) and of vhost2 (md9).
const (
	mdStaged1 = "md8\tswap\t    32M\t-\trollout:stage:vhost1\tcompress\n"
	mdStaged2 = "md9\tswap\t    32M\t-\trollout:stage:vhost2\tcompress\n"
	stageDir  = "/var/db/rollout/stage.vhost1/etc"
	v1EtcMD8  = "/dev/md8\t\t/jail/vhost1/etc\tufs\trw\t\t0 0\n"
)

func TestStageLabel(t *testing.T) {
	if got := StageLabel("vhost1"); got != "rollout:stage:vhost1" || got == EtcLabel("stage") || !strings.HasPrefix(got, etcLabelPrefix) {
		t.Fatalf("StageLabel = %q", got)
	}
}

// StageEtc frees vhost1's staged leftovers mounted nowhere (not vhost2's, not the live /etc),
// then makes, formats and mounts a disk with the staging label.
func TestStageEtc(t *testing.T) {
	r := newFake().
		on(mountP, ok(hostMounts+v1Root+v1Etc)).
		on(mdList, ok(mdSample+mdStaged1+mdStaged2)).
		on("/sbin/mdconfig -a -t swap -s 32m -L rollout:stage:vhost1", ok("md10\n"))
	h := newFreeBSD(r)
	unit, err := h.StageEtc(context.Background(), "vhost1", stageDir, "32m")
	if err != nil || unit != "md10" {
		t.Fatalf("StageEtc = %q, %v", unit, err)
	}
	r.want(t, mountP, mdList, "/sbin/mdconfig -d -u 8", "/sbin/mdconfig -a -t swap -s 32m -L rollout:stage:vhost1",
		"/sbin/newfs -U /dev/md10", "/sbin/mount /dev/md10 "+stageDir)
	want := []string{"/sbin/mdconfig -a -t swap -s 32m -L rollout:stage:vhost1", "/sbin/newfs -U /dev/mdN", "/sbin/mount /dev/mdN " + stageDir}
	if got := quoteAll(h.StageEtcArgv("vhost1", stageDir, "32m")); !reflect.DeepEqual(got, want) {
		t.Errorf("StageEtcArgv = %q, want %q", got, want)
	}
	// a failure half way frees the new disk
	r = newFake().on(mountP, ok(hostMounts)).on(mdList, ok("")).
		on("/sbin/mdconfig -a -t swap -s 32m -L rollout:stage:vhost1", ok("md10\n")).
		on("/sbin/newfs -U /dev/md10", fail(1, "newfs: no space"))
	if _, err := newFreeBSD(r).StageEtc(context.Background(), "vhost1", stageDir, "32m"); err == nil {
		t.Fatal("failed newfs: no error")
	}
	r.want(t, mountP, mdList, "/sbin/mdconfig -a -t swap -s 32m -L rollout:stage:vhost1", "/sbin/newfs -U /dev/md10", "/sbin/mdconfig -d -u 10")
}

// UnmountStaged unmounts only a staged disk of the jail, and leaves it configured.
func TestUnmountStaged(t *testing.T) {
	staged := "/dev/md8\t\t" + stageDir + "\tufs\trw\t\t0 0\n"
	r := newFake().on(mountP, ok(hostMounts+staged)).on(mdList, ok(mdSample+mdStaged1))
	if err := newFreeBSD(r).UnmountStaged(context.Background(), "vhost1", stageDir); err != nil {
		t.Fatal(err)
	}
	r.want(t, mountP, mdList, "/sbin/umount "+stageDir)
	// vhost1's live /etc (md3) mounted there instead: refused
	r = newFake().on(mountP, ok(hostMounts+"/dev/md3\t\t"+stageDir+"\tufs\trw\t\t0 0\n")).on(mdList, ok(mdSample+mdStaged1))
	if err := newFreeBSD(r).UnmountStaged(context.Background(), "vhost1", stageDir); err == nil || !strings.Contains(err.Error(), "left alone") {
		t.Fatalf("foreign mount: %v", err)
	}
	r.want(t, mountP, mdList)
}

// MountStaged runs one mount when the unit is the jail's staged disk and mounted nowhere.
func TestMountStaged(t *testing.T) {
	ctx := context.Background()
	r := newFake().on(mdList, ok(mdSample+mdStaged1+mdStaged2)).on(mountP, ok(hostMounts+v1Root))
	if err := newFreeBSD(r).MountStaged(ctx, "vhost1", "md8", "/jail/vhost1/etc"); err != nil {
		t.Fatal(err)
	}
	r.want(t, mdList, mountP, "/sbin/mount /dev/md8 /jail/vhost1/etc")
	for _, c := range []struct{ unit, mounts, msg string }{
		{"md11", hostMounts, "no md unit md11"},
		{"md3", hostMounts, "no md unit md3 labelled rollout:stage:vhost1"}, // the normal label
		{"md9", hostMounts, "no md unit md9 labelled rollout:stage:vhost1"}, // vhost2's
		{"md8", hostMounts + "/dev/md8\t\t" + stageDir + "\tufs\trw\t\t0 0\n", "is mounted on " + stageDir},
		{"md8", hostMounts + v1Etc, "already mounted"},
		{"/dev/md8", hostMounts, "not an md unit"},
	} {
		r := newFake().on(mdList, ok(mdSample+mdStaged1+mdStaged2)).on(mountP, ok(c.mounts))
		err := newFreeBSD(r).MountStaged(ctx, "vhost1", c.unit, "/jail/vhost1/etc")
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("MountStaged(%s) = %v, want %q", c.unit, err, c.msg)
		}
		for _, call := range r.calls {
			if strings.HasPrefix(call, "/sbin/mount /dev") {
				t.Errorf("MountStaged(%s) ran %s", c.unit, call)
			}
		}
	}
}

// FreeStaged frees the jail's staged disks mounted nowhere: not one in use as its /etc.
func TestFreeStaged(t *testing.T) {
	r := newFake().
		on(mdList, ok(mdSample+mdStaged1+"md12\tswap\t    32M\t-\trollout:stage:vhost1\tcompress\n"+mdStaged2)).
		on(mountP, ok(hostMounts+"/dev/md12\t\t/jail/vhost1/etc\tufs\trw\t\t0 0\n"))
	freed, err := newFreeBSD(r).FreeStaged(context.Background(), "vhost1")
	if err != nil || !reflect.DeepEqual(freed, []string{"md8"}) {
		t.Fatalf("FreeStaged = %q, %v", freed, err)
	}
	r.want(t, mdList, mountP, "/sbin/mdconfig -d -u 8")
}

// The stop of a promote: the old /etc (md3) is unmounted and freed, the staged one (md8),
// mounted nowhere, is the next /etc and stays.
func TestUnmountEtcLeavesStagedDisk(t *testing.T) {
	r := newFake().
		on(mountP, ok(hostMounts+v1Root+v1Etc), ok(hostMounts+v1Root)).
		on(mdList, ok(mdSample+mdStaged1))
	if err := newFreeBSD(r).UnmountEtc(context.Background(), "vhost1", "/jail/vhost1/etc", "md"); err != nil {
		t.Fatal(err)
	}
	r.want(t, mountP, mdList, "/sbin/umount /jail/vhost1/etc", mountP, mdList, "/sbin/mdconfig -d -u 3")
}

// A live /etc that was staged (label rollout:stage:vhost1) is unmounted and freed; another
// staged disk of the jail stays, and a stale rollout:vhost1 disk is freed as before.
func TestUnmountEtcFreesStagedLive(t *testing.T) {
	units := mdSample + mdStaged1 + "md12\tswap\t    32M\t-\trollout:stage:vhost1\tcompress\n"
	r := newFake().
		on(mountP, ok(hostMounts+v1Root+"/dev/md12\t\t/jail/vhost1/etc\tufs\trw\t\t0 0\n"), ok(hostMounts+v1Root)).
		on(mdList, ok(units))
	if err := newFreeBSD(r).UnmountEtc(context.Background(), "vhost1", "/jail/vhost1/etc", "md"); err != nil {
		t.Fatal(err)
	}
	r.want(t, mountP, mdList, "/sbin/umount /jail/vhost1/etc", mountP, "/sbin/mdconfig -d -u 12", mdList, "/sbin/mdconfig -d -u 3")
}

// MountEtc's clean-up of leftovers frees rollout:vhost1 disks, never a staged one.
func TestMountEtcKeepsStagedDisk(t *testing.T) {
	r := newFake().
		on(mountP, ok(hostMounts+v1Root)).
		on(mdList, ok(mdSample+mdStaged1)).
		on("/sbin/mdconfig -a -t swap -s 32m -L rollout:vhost1", ok("md13\n"))
	if _, err := newFreeBSD(r).MountEtc(context.Background(), "vhost1", "/jail/vhost1/etc", "md", "32m"); err != nil {
		t.Fatal(err)
	}
	r.want(t, mountP, mdList, "/sbin/mdconfig -d -u 3", "/sbin/mdconfig -a -t swap -s 32m -L rollout:vhost1", "/sbin/newfs -U /dev/md13", "/sbin/mount /dev/md13 /jail/vhost1/etc")
}

// repair and boot: a staged disk mounted nowhere is an orphan (no switch is under way); one
// mounted as a jail's /etc is not.
func TestOrphanEtcStaged(t *testing.T) {
	r := newFake().on(mdList, ok(mdSample+mdStaged1+mdStaged2)).
		on(mountP, ok(hostMounts+v1Root+v1Etc+v1EtcMD4+"/dev/md9\t\t/jail/vhost2/etc\tufs\trw\t\t0 0\n"))
	got, err := newFreeBSD(r).OrphanEtc(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, []string{"md7", "md8"}) {
		t.Fatalf("OrphanEtc = %q, want [md7 md8]", got)
	}
	r = newFake().on(mdList, ok(mdSample+mdStaged1)).on(mountP, ok(hostMounts))
	if err := newFreeBSD(r).FreeEtc(context.Background(), "md8"); err != nil {
		t.Fatal(err)
	}
	r.want(t, mdList, mountP, "/sbin/mdconfig -d -u 8")
}
