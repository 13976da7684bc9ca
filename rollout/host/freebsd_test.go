package host

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

func vhost1() Jail {
	return Jail{
		Name:        "vhost1",
		Path:        "/jail/vhost1",
		Hostname:    "vhost1.domain.local",
		Fstab:       "/etc/fstab.vhost1",
		IP4:         []string{"192.168.0.11", "igb0|192.168.0.12/24"},
		Interface:   "igb0",
		ExecStart:   "/bin/sh /etc/rc",
		ExecStop:    "/bin/sh /etc/rc.shutdown",
		Prestart:    []string{"/usr/local/sbin/rollout", "-c", "/usr/local/etc/rollout.toml", "etc", "init", "vhost1"},
		Poststop:    []string{"/usr/local/sbin/rollout", "-c", "/usr/local/etc/rollout.toml", "etc", "cleanup", "vhost1"},
		Params:      map[string]string{"allow.raw_sockets": "", "devfs_ruleset": "4"},
		ConsoleLog:  "/var/log/jail_vhost1_console.log",
		ExecTimeout: 300 * time.Second,
		StopTimeout: 9500 * time.Millisecond,
	}
}

const (
	jlsV1         = "/usr/sbin/jls -j vhost1 jid name path"
	jailC         = "/usr/sbin/jail -f /etc/jail.conf.d/vhost1.conf -c vhost1"
	jailR         = "/usr/sbin/jail -f /etc/jail.conf.d/vhost1.conf -r vhost1"
	mountP        = "/sbin/mount -p"
	mdList        = "/sbin/mdconfig -l -v"
	etcInit       = "/usr/local/sbin/rollout -c /usr/local/etc/rollout.toml etc init vhost1"
	etcCleanup    = "/usr/local/sbin/rollout -c /usr/local/etc/rollout.toml etc cleanup vhost1"
	jlsNotFound   = `jls: jail "vhost1" not found`
	jailRNotFound = `jail: "vhost1" not found`
	alias1Del     = "/sbin/ifconfig igb0 inet 192.168.0.11 -alias"
	alias2Del     = "/sbin/ifconfig igb0 inet 192.168.0.12 -alias"
)

// A host's mount table as `mount -p` prints it, with and without vhost1's file systems.
const (
	hostMounts = "/dev/ada0s1a\t\t/\t\t\tufs\tro\t\t1 1\n" +
		"devfs\t\t\t/dev\t\t\tdevfs\trw\t\t0 0\n" +
		"/dev/md0\t\t/etc\t\t\tufs\trw\t\t0 0\n" +
		"zpool/proto\t\t/jail/proto\t\tzfs\trw,nfsv4acls\t0 0\n" +
		"zpool/proto/etc\t\t/jail/proto/etc\t\tzfs\trw,nfsv4acls\t0 0\n"
	v1Root   = "/jail/proto/.zfs/snapshot/2 /jail/vhost1\t\tnullfs\tro\t\t0 0\n"
	v1Base   = "/jail/proto/etc/.zfs/snapshot/2 /jail/vhost1/conf/base/etc nullfs\tro\t\t0 0\n"
	v1Cfg    = "zpool/vhost1/cfg\t/jail/vhost1/cfg\tzfs\trw,nfsv4acls\t0 0\n"
	v1Var    = "zpool/vhost1/var\t/jail/vhost1/var\tzfs\trw,nfsv4acls\t0 0\n"
	v1Dev    = "devfs\t\t\t/jail/vhost1/dev\tdevfs\trw,multilabel\t0 0\n"
	v1Etc    = "/dev/md3\t\t/jail/vhost1/etc\tufs\trw,noatime\t0 0\n"
	v1EtcMD4 = "/dev/md4\t\t/jail/vhost2/etc\tufs\trw\t\t0 0\n"
)

// `mdconfig -l -v` on FreeBSD 14: unit, type, size, file, label, options (tab-separated).
const mdSample = "md0\tmalloc\t   64M\t-\t-\tcompress\n" +
	"md1\tvnode\t  1024M\t/var/img/scratch.img\t-\tcluster\n" +
	"md3\tswap\t    32M\t-\trollout:vhost1\tcompress\n" +
	"md4\tswap\t    32M\t-\trollout:vhost2\tcompress\n" +
	"md7\tswap\t    32M\t-\trollout:vhost3\tcompress\n"

func newFreeBSD(r *fakeRunner) *freeBSD {
	f := NewFreeBSD(r, quiet()).(*freeBSD)
	f.busyWait = time.Millisecond
	return f
}

func TestRenderConfGolden(t *testing.T) {
	got, err := newFreeBSD(newFake()).RenderConf(vhost1())
	if err != nil {
		t.Fatal(err)
	}
	golden := "testdata/vhost1.conf"
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("RenderConf:\n%s\nwant (%s):\n%s", got, golden, want)
	}
}

func TestRenderConfMinimal(t *testing.T) {
	j := Jail{Name: "v2", Path: "/jail/v2", Fstab: "/etc/fstab.v2", ExecStart: "/bin/sh /etc/rc"}
	got, err := newFreeBSD(newFake()).RenderConf(j)
	if err != nil {
		t.Fatal(err)
	}
	want := "# Written by rollout: changes here are overwritten.\nv2 {\n" +
		"\tpath = \"/jail/v2\";\n\tmount.fstab = \"/etc/fstab.v2\";\n\tmount.devfs;\n\texec.clean;\n" +
		"\texec.start = \"/bin/sh /etc/rc\";\n}\n"
	if string(got) != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func TestRenderConfRefuses(t *testing.T) {
	cases := map[string]func(j *Jail){
		"quote in exec.start":     func(j *Jail) { j.ExecStart = `/bin/sh -c "x"` },
		"dollar in exec.stop":     func(j *Jail) { j.ExecStop = "/bin/sh $HOME/x" },
		"backslash in hostname":   func(j *Jail) { j.Hostname = `a\b` },
		"semicolon in exec.start": func(j *Jail) { j.ExecStart = "/bin/sh /etc/rc; reboot" },
		"newline in param":        func(j *Jail) { j.Params = map[string]string{"devfs_ruleset": "4\n}"} },
		"quote in ip4":            func(j *Jail) { j.IP4 = []string{`1.2.3.4"`} },
		"hook with quote":         func(j *Jail) { j.Prestart = []string{"/bin/echo", "it's"} },
		"managed param":           func(j *Jail) { j.Params = map[string]string{"path": "/"} },
		"consolelog as param":     func(j *Jail) { j.Params = map[string]string{"exec.consolelog": "/dev/null"} },
		"dollar in consolelog":    func(j *Jail) { j.ConsoleLog = "/var/log/$x" },
		"bad param name":          func(j *Jail) { j.Params = map[string]string{"a b": "1"} },
		"dot in name":             func(j *Jail) { j.Name = "vhost.1" },
		"numeric name":            func(j *Jail) { j.Name = "42" },
		"relative path":           func(j *Jail) { j.Path = "jail/vhost1" },
		"unclean path":            func(j *Jail) { j.Path = "/jail/../vhost1" },
		"root path":               func(j *Jail) { j.Path = "/" },
		"blank in fstab":          func(j *Jail) { j.Fstab = "/etc/fstab vhost1" },
		"no exec.start":           func(j *Jail) { j.ExecStart = "" },
	}
	for name, mutate := range cases {
		j := vhost1()
		mutate(&j)
		if out, err := newFreeBSD(newFake()).RenderConf(j); err == nil {
			t.Errorf("%s: accepted:\n%s", name, out)
		}
	}
}

func TestStartArgv(t *testing.T) {
	r := newFake().
		on(jlsV1, fail(1, jlsNotFound), ok("12 vhost1 /jail/vhost1\n")).
		on(mountP, ok(hostMounts))
	h := newFreeBSD(r)
	if err := h.Start(context.Background(), vhost1()); err != nil {
		t.Fatal(err)
	}
	r.want(t, jlsV1, mountP, jailC, jlsV1)
	if got := quoteAll(h.StartArgv(vhost1())); !reflect.DeepEqual(got, r.calls) {
		t.Fatalf("StartArgv = %q, Start ran %q", got, r.calls)
	}
}

func TestStartRefusesRunningJail(t *testing.T) {
	r := newFake().on(jlsV1, ok("12 vhost1 /jail/vhost1\n"))
	err := newFreeBSD(r).Start(context.Background(), vhost1())
	if err == nil || !strings.Contains(err.Error(), "jail vhost1: already running") {
		t.Fatalf("err = %v", err)
	}
	r.want(t, jlsV1)
}

func TestStartRefusesLeftoverMounts(t *testing.T) {
	r := newFake().on(jlsV1, fail(1, jlsNotFound)).on(mountP, ok(hostMounts+v1Root))
	err := newFreeBSD(r).Start(context.Background(), vhost1())
	if err == nil || !strings.Contains(err.Error(), "/jail/vhost1") {
		t.Fatalf("err = %v", err)
	}
	r.want(t, jlsV1, mountP)
}

// jail(8) fails after exec.prestart made the md(4) /etc: it unwinds the fstab mounts it
// can (the root stays, busy under /etc) and never runs exec.poststop. Start must run the
// hook, unmount what is left in reverse and free the labelled disk.
func TestStartFailureUnwinds(t *testing.T) {
	r := newFake().
		on(jlsV1, fail(1, jlsNotFound)).
		on(mountP, ok(hostMounts), ok(hostMounts+v1Root+v1Dev+v1Etc), ok(hostMounts+v1Root+v1Dev)).
		on(jailC, fail(1, "jail: vhost1: /bin/sh /etc/rc: failed")).
		on(mdList, ok(mdSample))
	err := newFreeBSD(r).Start(context.Background(), vhost1())
	if err == nil || !strings.HasPrefix(err.Error(), "jail vhost1: start: ") || !strings.Contains(err.Error(), "/bin/sh /etc/rc: failed") {
		t.Fatalf("err = %v", err)
	}
	r.want(t, jlsV1, mountP, jailC,
		jlsV1, mountP, etcCleanup, mountP,
		"/sbin/umount /jail/vhost1/dev", "/sbin/umount /jail/vhost1", alias1Del, alias2Del,
		mdList, "/sbin/mdconfig -d -u 3")
}

// When the hook itself fails the /etc disk is unmounted directly, before the root.
func TestStartFailureHookFails(t *testing.T) {
	r := newFake().
		on(jlsV1, fail(1, jlsNotFound)).
		on(mountP, ok(hostMounts), ok(hostMounts+v1Root+v1Etc)).
		on(jailC, fail(1, "jail: vhost1: /usr/local/sbin/rollout: failed")).
		on(etcCleanup, fail(1, "rollout: boom")).
		on(mdList, ok(mdSample))
	if err := newFreeBSD(r).Start(context.Background(), vhost1()); err == nil {
		t.Fatal("no error")
	}
	r.want(t, jlsV1, mountP, jailC,
		jlsV1, mountP, etcCleanup, mountP,
		"/sbin/umount /jail/vhost1/etc", "/sbin/umount /jail/vhost1", alias1Del, alias2Del,
		mdList, "/sbin/mdconfig -d -u 3")
}

// jail -c succeeds, but every process exited so the jail is gone: a failure, cleaned up.
func TestStartJailVanished(t *testing.T) {
	r := newFake().
		on(jlsV1, fail(1, jlsNotFound)).
		on(mountP, ok(hostMounts), ok(hostMounts+v1Root+v1Cfg+v1Etc), ok(hostMounts+v1Root+v1Cfg)).
		on(mdList, ok(""))
	err := newFreeBSD(r).Start(context.Background(), vhost1())
	if err == nil || !strings.Contains(err.Error(), "jls does not list the jail") {
		t.Fatalf("err = %v", err)
	}
	r.want(t, jlsV1, mountP, jailC, jlsV1,
		jlsV1, mountP, etcCleanup, mountP, "/sbin/umount /jail/vhost1/cfg", "/sbin/umount /jail/vhost1", alias1Del, alias2Del, mdList)
}

func TestStopRunning(t *testing.T) {
	r := newFake().on(mountP, ok(hostMounts))
	h := newFreeBSD(r)
	if err := h.Stop(context.Background(), vhost1()); err != nil {
		t.Fatal(err)
	}
	r.want(t, jailR, mountP)
	if got := quoteAll(h.StopArgv(vhost1())); !reflect.DeepEqual(got, r.calls) {
		t.Fatalf("StopArgv = %q, Stop ran %q", got, r.calls)
	}
}

func TestStopNotRunning(t *testing.T) {
	r := newFake().on(jailR, fail(1, jailRNotFound)).on(mountP, ok(hostMounts))
	if err := newFreeBSD(r).Stop(context.Background(), vhost1()); err != nil {
		t.Fatal(err)
	}
	r.want(t, jailR, mountP)
}

func TestStopFailure(t *testing.T) {
	// jail -r failed and the jail still runs
	r := newFake().on(jailR, fail(1, "jail: vhost1: /bin/sh /etc/rc.shutdown: failed")).on(jlsV1, ok("12 vhost1 /jail/vhost1\n"))
	err := newFreeBSD(r).Stop(context.Background(), vhost1())
	if err == nil || !strings.HasPrefix(err.Error(), "jail vhost1: stop: ") {
		t.Fatalf("err = %v", err)
	}
	// "not found" of another jail is not this jail's
	r = newFake().on(jailR, fail(1, `jail: "vhost10" not found`)).on(jlsV1, ok("12 vhost1 /jail/vhost1\n"))
	if err := newFreeBSD(r).Stop(context.Background(), vhost1()); err == nil {
		t.Fatal("another jail's message tolerated")
	}
}

// A jail whose processes all exited is gone without exec.poststop and unmounts.
func TestStopCleansUpAfterDeadJail(t *testing.T) {
	r := newFake().
		on(jailR, fail(1, jailRNotFound)).
		on(mountP, ok(hostMounts+v1Root+v1Base+v1Cfg+v1Var+v1Dev+v1Etc), ok(hostMounts+v1Root+v1Base+v1Cfg+v1Var+v1Dev)).
		on(mdList, ok(mdSample))
	if err := newFreeBSD(r).Stop(context.Background(), vhost1()); err != nil {
		t.Fatal(err)
	}
	r.want(t, jailR, mountP, etcCleanup, mountP,
		"/sbin/umount /jail/vhost1/dev", "/sbin/umount /jail/vhost1/var", "/sbin/umount /jail/vhost1/cfg",
		"/sbin/umount /jail/vhost1/conf/base/etc", "/sbin/umount /jail/vhost1", alias1Del, alias2Del,
		mdList, "/sbin/mdconfig -d -u 3")
}

func TestStopBusyMount(t *testing.T) {
	r := newFake().
		on(jailR, fail(1, jailRNotFound)).
		on(mountP, ok(hostMounts+v1Root+v1Var)).
		on("/sbin/umount /jail/vhost1/var", fail(1, "umount: unmount of /jail/vhost1/var failed: Device busy"))
	err := newFreeBSD(r).Stop(context.Background(), vhost1())
	if err == nil || !strings.Contains(err.Error(), "jail vhost1: unmount /jail/vhost1/var") || !strings.Contains(err.Error(), "Device busy") {
		t.Fatalf("err = %v", err)
	}
	// a dying jail can hold its file systems for a moment: retried, then reported
	want := []string{jailR, mountP, etcCleanup, mountP}
	for i := 0; i < 10; i++ {
		want = append(want, "/sbin/umount /jail/vhost1/var")
	}
	r.want(t, want...)
}

// A dying jail lets go of its file systems after a moment: the retry then succeeds.
func TestStopBusyThenFree(t *testing.T) {
	r := newFake().
		on(jailR, fail(1, jailRNotFound)).
		on(mountP, ok(hostMounts+v1Root+v1Var), ok(hostMounts+v1Root+v1Var)).
		on("/sbin/umount /jail/vhost1/var", fail(1, "umount: unmount of /jail/vhost1/var failed: Device busy"), ok(""))
	if err := newFreeBSD(r).Stop(context.Background(), vhost1()); err != nil {
		t.Fatal(err)
	}
	r.want(t, jailR, mountP, etcCleanup, mountP, "/sbin/umount /jail/vhost1/var", "/sbin/umount /jail/vhost1/var",
		"/sbin/umount /jail/vhost1", alias1Del, alias2Del, mdList)
}

// jail(8) removes the jail and goes on after a failed exec.poststop, exiting 1: the md(4)
// /etc and the nullfs root are still mounted. Stop must see that the jail is gone and clean
// up instead of failing with everything left in place.
func TestStopAfterFailedJailR(t *testing.T) {
	r := newFake().
		on(jailR, fail(1, "jail: vhost1: /usr/local/sbin/rollout -c /usr/local/etc/rollout.toml etc cleanup vhost1: failed")).
		on(jlsV1, fail(1, jlsNotFound)).
		on(mountP, ok(hostMounts+v1Root+v1Etc), ok(hostMounts+v1Root+v1Etc)).
		on(mdList, ok(mdSample))
	if err := newFreeBSD(r).Stop(context.Background(), vhost1()); err != nil {
		t.Fatal(err)
	}
	r.want(t, jailR, jlsV1, mountP, etcCleanup, mountP, "/sbin/umount /jail/vhost1/etc", "/sbin/umount /jail/vhost1",
		alias1Del, alias2Del, mdList, "/sbin/mdconfig -d -u 3")
}

// A removed alias is not an error (ifconfig's EADDRNOTAVAIL).
func TestStopAliasAlreadyGone(t *testing.T) {
	r := newFake().
		on(jailR, fail(1, jailRNotFound)).
		on(mountP, ok(hostMounts+v1Root)).
		on(alias1Del, fail(1, "ifconfig: ioctl (SIOCDIFADDR): Can't assign requested address"))
	if err := newFreeBSD(r).Stop(context.Background(), vhost1()); err != nil {
		t.Fatal(err)
	}
}

func TestRunningAndRoot(t *testing.T) {
	r := newFake().on(jlsV1, ok("12 vhost1 /jail/vhost1\n"), fail(1, jlsNotFound), fail(1, `jls: jail "vhost1" is dying`), fail(1, "jls: unknown parameter"))
	h := newFreeBSD(r)
	ctx := context.Background()
	if root, running, err := h.Root(ctx, "vhost1"); err != nil || !running || root != "/jail/vhost1" {
		t.Fatalf("Root = %q %v %v", root, running, err)
	}
	for i := 0; i < 2; i++ {
		if running, err := h.Running(ctx, "vhost1"); err != nil || running {
			t.Fatalf("Running = %v %v", running, err)
		}
	}
	if _, err := h.Running(ctx, "vhost1"); err == nil {
		t.Fatal("unexpected jls failure not reported")
	}
}

func TestExec(t *testing.T) {
	r := newFake().
		on("/usr/sbin/jexec vhost1 /usr/local/bin/curl -fsS http://localhost/health", ok("OK\n")).
		on("/usr/sbin/jexec vhost1 /bin/false", fail(1, "")).
		on("/usr/sbin/jexec vhost1 /bin/true", fail(1, `jexec: jail "vhost1" not found`))
	h := newFreeBSD(r)
	var out bytes.Buffer
	if err := h.Exec(context.Background(), "vhost1", []string{"/usr/local/bin/curl", "-fsS", "http://localhost/health"}, &out, nil); err != nil || out.String() != "OK\n" {
		t.Fatalf("Exec = %q, %v", out.String(), err)
	}
	err := h.Exec(context.Background(), "vhost1", []string{"/bin/false"}, nil, nil)
	if err == nil || errors.Is(err, ErrNotRunning) || !strings.HasPrefix(err.Error(), "jail vhost1: ") {
		t.Fatalf("failed check: %v", err)
	}
	if err := h.Exec(context.Background(), "vhost1", []string{"/bin/true"}, nil, nil); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("not running: %v", err)
	}
}

func TestMountEtcMD(t *testing.T) {
	r := newFake().
		on(mountP, ok(hostMounts+v1Root)).
		on(mdList, ok("md0\tmalloc\t   64M\t-\t-\n")).
		on("/sbin/mdconfig -a -t swap -s 32m -L rollout:vhost1", ok("md3\n"))
	dev, err := newFreeBSD(r).MountEtc(context.Background(), "vhost1", "/jail/vhost1/etc", "md", "32m")
	if err != nil || dev != "/dev/md3" {
		t.Fatalf("MountEtc = %q, %v", dev, err)
	}
	r.want(t, mountP, mdList, "/sbin/mdconfig -a -t swap -s 32m -L rollout:vhost1", "/sbin/newfs -U /dev/md3", "/sbin/mount /dev/md3 /jail/vhost1/etc")
}

func TestMountEtcFreesStaleDisk(t *testing.T) {
	r := newFake().
		on(mountP, ok(hostMounts+v1Root+v1EtcMD4)).
		on(mdList, ok(mdSample)).
		on("/sbin/mdconfig -a -t swap -s 32m -L rollout:vhost1", ok("md8\n"))
	if _, err := newFreeBSD(r).MountEtc(context.Background(), "vhost1", "/jail/vhost1/etc", "md", "32m"); err != nil {
		t.Fatal(err)
	}
	r.want(t, mountP, mdList, "/sbin/mdconfig -d -u 3", "/sbin/mdconfig -a -t swap -s 32m -L rollout:vhost1", "/sbin/newfs -U /dev/md8", "/sbin/mount /dev/md8 /jail/vhost1/etc")
}

func TestMountEtcUndo(t *testing.T) {
	for _, failing := range []string{"/sbin/newfs -U /dev/md3", "/sbin/mount /dev/md3 /jail/vhost1/etc"} {
		r := newFake().
			on(mountP, ok(hostMounts+v1Root)).
			on("/sbin/mdconfig -a -t swap -s 32m -L rollout:vhost1", ok("md3\n")).
			on(failing, fail(1, "boom"))
		_, err := newFreeBSD(r).MountEtc(context.Background(), "vhost1", "/jail/vhost1/etc", "md", "32m")
		if err == nil || !strings.HasPrefix(err.Error(), "jail vhost1: ") {
			t.Fatalf("%s: err = %v", failing, err)
		}
		want := []string{mountP, mdList, "/sbin/mdconfig -a -t swap -s 32m -L rollout:vhost1", "/sbin/newfs -U /dev/md3"}
		if failing != want[len(want)-1] {
			want = append(want, failing)
		}
		r.want(t, append(want, "/sbin/mdconfig -d -u 3")...)
	}
}

func TestMountEtcRefuses(t *testing.T) {
	h := newFreeBSD(newFake().on(mountP, ok(hostMounts+v1Root+v1Etc)))
	ctx := context.Background()
	if _, err := h.MountEtc(ctx, "vhost1", "/jail/vhost1/etc", "md", "32m"); err == nil || !strings.Contains(err.Error(), "already mounted") {
		t.Fatalf("mounted dir: %v", err)
	}
	for _, c := range [][4]string{
		{"vhost1", "/jail/vhost1/etc", "zfs", "32m"},
		{"vhost1", "/jail/vhost1/etc", "md", "32 m"},
		{"vhost1", "/jail/vhost1/etc", "md", "-1"},
		{"vhost1", "etc", "md", "32m"},
		{"v.1", "/jail/v/etc", "md", "32m"},
	} {
		if _, err := h.MountEtc(ctx, c[0], c[1], c[2], c[3]); err == nil {
			t.Errorf("MountEtc%q accepted", c)
		}
	}
	r := newFake()
	if dev, err := newFreeBSD(r).MountEtc(ctx, "vhost1", "/jail/vhost1/etc", "tmpfs", "32m"); err != nil || dev != "" {
		t.Fatalf("tmpfs: %q %v", dev, err)
	}
	r.want(t) // the fstab line mounts it
}

func TestUnmountEtc(t *testing.T) {
	r := newFake().
		on(mountP, ok(hostMounts+v1Root+v1Etc), ok(hostMounts+v1Root), ok(hostMounts+v1Root)).
		on(mdList, ok(mdSample), ok(mdSample), ok(strings.Replace(mdSample, "md3\tswap\t    32M\t-\trollout:vhost1\tcompress\n", "", 1)))
	h := newFreeBSD(r)
	ctx := context.Background()
	if err := h.UnmountEtc(ctx, "vhost1", "/jail/vhost1/etc", "md"); err != nil {
		t.Fatal(err)
	}
	r.want(t, mountP, mdList, "/sbin/umount /jail/vhost1/etc", mountP, mdList, "/sbin/mdconfig -d -u 3")
	// again: nothing left to do
	r.calls = nil
	if err := h.UnmountEtc(ctx, "vhost1", "/jail/vhost1/etc", "md"); err != nil {
		t.Fatal(err)
	}
	r.want(t, mountP, mdList)
}

func TestUnmountEtcLeavesForeignMount(t *testing.T) {
	r := newFake().
		on(mountP, ok(hostMounts+v1Root+"tmpfs\t\t\t/jail/vhost1/etc\ttmpfs\trw\t\t0 0\n")).
		on(mdList, ok(mdSample))
	err := newFreeBSD(r).UnmountEtc(context.Background(), "vhost1", "/jail/vhost1/etc", "md")
	if err == nil || !strings.Contains(err.Error(), "left alone") {
		t.Fatalf("err = %v", err)
	}
	r.want(t, mountP, mdList)
}

func TestOrphanEtc(t *testing.T) {
	r := newFake().on(mdList, ok(mdSample)).on(mountP, ok(hostMounts+v1Root+v1Etc+v1EtcMD4))
	got, err := newFreeBSD(r).OrphanEtc(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, []string{"md7"}) {
		t.Fatalf("OrphanEtc = %q, want [md7] (md3, md4 are mounted; md0, md1 not rollout's)", got)
	}
	r.want(t, mdList, mountP)
}

func TestAliasRemoveArgv(t *testing.T) {
	for _, c := range []struct{ ip, iface, want string }{
		{"192.0.2.1", "em0", "/sbin/ifconfig em0 inet 192.0.2.1 -alias"},
		{"192.0.2.1/24", "em0", "/sbin/ifconfig em0 inet 192.0.2.1 -alias"},
		{"lo1|192.0.2.1", "em0", "/sbin/ifconfig lo1 inet 192.0.2.1 -alias"},
		{"192.0.2.1", "", ""},
	} {
		if got := strings.Join(aliasRemoveArgv(c.ip, c.iface), " "); got != c.want {
			t.Errorf("aliasRemoveArgv(%q, %q) = %q, want %q", c.ip, c.iface, got, c.want)
		}
	}
}

func TestParseMdconfigList13(t *testing.T) {
	// FreeBSD 13 prints no options column
	units, err := parseMdconfigList([]byte("md0\tmalloc\t   64M\t-\t-\nmd3\tswap\t    32M\t-\trollout:vhost1\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []mdUnit{{"md0", "malloc", ""}, {"md3", "swap", "rollout:vhost1"}}
	if !reflect.DeepEqual(units, want) {
		t.Fatalf("got %+v", units)
	}
	if _, err := parseMdconfigList([]byte("md0 malloc 64M\n")); err == nil {
		t.Fatal("garbage accepted")
	}
}

func TestFreeEtc(t *testing.T) {
	ctx := context.Background()
	r := newFake().on(mdList, ok(mdSample)).on(mountP, ok(hostMounts+v1Etc))
	h := newFreeBSD(r)
	if err := h.FreeEtc(ctx, "md7"); err != nil {
		t.Fatal(err)
	}
	r.want(t, mdList, mountP, "/sbin/mdconfig -d -u 7")
	for id, msg := range map[string]string{"md0": "labelled", "md3": "mounted on /jail/vhost1/etc", "md9": "no md unit", "/dev/md7": "not an md unit", "md7 -o force": "not an md unit"} {
		r.calls = nil
		if err := h.FreeEtc(ctx, id); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("FreeEtc(%q) = %v, want %q", id, err, msg)
		}
		for _, c := range r.calls {
			if strings.HasPrefix(c, "/sbin/mdconfig -d") {
				t.Errorf("FreeEtc(%q) ran %s", id, c)
			}
		}
	}
}

func TestMountedFreeBSD(t *testing.T) {
	h := newFreeBSD(newFake().on(mountP, ok(hostMounts+v1Root+v1Etc)))
	ctx := context.Background()
	for p, want := range map[string]string{"/jail/vhost1": "nullfs", "/jail/vhost1/etc": "ufs", "/jail/proto": "zfs", "/jail/vhost1/var": ""} {
		fstype, ok, err := h.Mounted(ctx, p)
		if err != nil || fstype != want || ok != (want != "") {
			t.Errorf("Mounted(%s) = %q %v %v, want %q", p, fstype, ok, err, want)
		}
	}
}

// One jls(8) call lists every running jail, whatever their number; a foreign jail's name
// with a blank is kept whole, and a line that is not "JID NAME" is refused.
func TestJailsOneListing(t *testing.T) {
	r := newFake().on("/usr/sbin/jls jid name", ok("3 vhost1\n12 vhost2\n14 other jail\n"))
	got, err := newFreeBSD(r).Jails(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || !got["vhost1"] || !got["vhost2"] || !got["other jail"] || got["vhost3"] {
		t.Fatalf("Jails = %v", got)
	}
	r.want(t, "/usr/sbin/jls jid name")
	// no jail at all: jls prints nothing and exits 0
	if got, err := newFreeBSD(newFake()).Jails(context.Background()); err != nil || len(got) != 0 {
		t.Fatalf("no jails: %v %v", got, err)
	}
	for _, bad := range []string{"vhost1\n", "x vhost1\n", "0 vhost1\n", "3 \n", "3\n"} {
		r := newFake().on("/usr/sbin/jls jid name", ok(bad))
		if _, err := newFreeBSD(r).Jails(context.Background()); err == nil || !strings.Contains(err.Error(), "unexpected `jls jid name` line") {
			t.Errorf("jls output %q: err = %v", bad, err)
		}
	}
	r = newFake().on("/usr/sbin/jls jid name", fail(1, "jls: sysctl failed"))
	if _, err := newFreeBSD(r).Jails(context.Background()); err == nil || !strings.Contains(err.Error(), "listing jails") {
		t.Fatalf("failure: %v", err)
	}
}

// MountTypes reads the mount table once for any number of paths.
func TestMountTypesOneRead(t *testing.T) {
	r := newFake().on(mountP, ok(hostMounts+v1Root+v1Cfg))
	got, err := newFreeBSD(r).MountTypes(context.Background(), []string{"/jail/vhost1/cfg", "/jail/vhost2/cfg", "/jail/vhost1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["/jail/vhost1/cfg"] != "zfs" || got["/jail/vhost1"] != "nullfs" {
		t.Fatalf("MountTypes = %v", got)
	}
	r.want(t, mountP)
}
