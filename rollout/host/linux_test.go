package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// labSim plays the system under the Linux host: a mount table shown as mountinfo and a
// process table under a fake /proc, changed by the commands the host runs.
type labSim struct {
	t       *testing.T
	proc    string
	mounts  []mountEntry
	fail    map[string]resp // commands that fail, by quoted argv
	onRun   func(argv []string)
	initPID int
}

func newLabSim(t *testing.T) (*labSim, *fakeRunner, *linux) {
	s := &labSim{t: t, proc: t.TempDir(), fail: map[string]resp{}, initPID: 101}
	s.mounts = []mountEntry{{"/dev/vda1", "/", "ext4", "rw"}, {"zpool/proto", "/jail/proto", "zfs", "rw"},
		{"zpool/proto/etc", "/jail/proto/etc", "zfs", "rw"}}
	s.writeMounts()
	r := newFake()
	r.hook = s.run
	state := filepath.Join(t.TempDir(), "state")
	l := NewLinux(r, quiet(), state).(*linux)
	l.procDir = s.proc
	l.poll = time.Millisecond
	l.stopTimeout = 50 * time.Millisecond
	return s, r, l
}

func (s *labSim) writeMounts() {
	var b strings.Builder
	for i, m := range s.mounts {
		fmt.Fprintf(&b, "%d 1 0:%d / %s %s shared:1 - %s %s rw\n", 20+i, i, strings.ReplaceAll(m.Target, " ", `\040`), m.Options, m.FSType, m.Source)
	}
	if err := os.MkdirAll(filepath.Join(s.proc, "self"), 0o755); err != nil {
		s.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.proc, "self", "mountinfo"), []byte(b.String()), 0o644); err != nil {
		s.t.Fatal(err)
	}
}

func (s *labSim) addProc(pid, ppid int, start uint64, ns string) {
	dir := filepath.Join(s.proc, strconv.Itoa(pid))
	if err := os.MkdirAll(filepath.Join(dir, "ns"), 0o755); err != nil {
		s.t.Fatal(err)
	}
	stat := fmt.Sprintf("%d (sleep) S %d %s%d 0 0\n", pid, ppid, strings.Repeat("0 ", 17), start)
	if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o644); err != nil {
		s.t.Fatal(err)
	}
	if err := os.Symlink(ns, filepath.Join(dir, "ns", "pid")); err != nil {
		s.t.Fatal(err)
	}
}

func (s *labSim) rmProc(pids ...int) {
	for _, pid := range pids {
		_ = os.RemoveAll(filepath.Join(s.proc, strconv.Itoa(pid)))
	}
}

func (s *labSim) run(argv []string) (resp, bool) {
	if s.onRun != nil {
		s.onRun(argv)
	}
	if r, ok := s.fail[strings.Join(argv, " ")]; ok {
		return r, true
	}
	n := len(argv)
	switch {
	case argv[0] == "mount" && argv[1] == "--bind":
		s.mounts = append(s.mounts, mountEntry{argv[2], argv[3], "zfs", "rw"})
	case argv[0] == "mount" && argv[1] == "-t":
		s.mounts = append(s.mounts, mountEntry{argv[n-2], argv[n-1], argv[2], "rw"})
	case argv[0] == "umount":
		for i := len(s.mounts) - 1; i >= 0; i-- {
			if s.mounts[i].Target == argv[1] {
				s.mounts = append(s.mounts[:i], s.mounts[i+1:]...)
				s.writeMounts()
				return resp{}, true
			}
		}
		return fail(32, "umount: "+argv[1]+": not mounted."), true
	case argv[0] == "setsid":
		// the holder 100, its child 101 (the namespaces' first process), a daemon 102
		if err := os.WriteFile(argv[5], []byte("100\n"), 0o644); err != nil {
			s.t.Fatal(err)
		}
		s.addProc(100, 1, 700, "pid:[4026531836]")
		s.addProc(s.initPID, 100, 777, "pid:[4026532001]")
		s.addProc(102, s.initPID, 780, "pid:[4026532001]")
	case argv[0] == "kill" && argv[2] == "KILL":
		s.rmProc(100, s.initPID, 102)
	case argv[0] == "nsenter" && argv[4] == "--" && argv[5] == "kill":
		s.rmProc(102)
	case argv[0] == "/usr/local/sbin/rollout" && argv[4] == "init":
		s.mounts = append(s.mounts, mountEntry{"rollout:vhost1", "/jail/vhost1/etc", "tmpfs", "rw"})
	case argv[0] == "/usr/local/sbin/rollout" && argv[4] == "cleanup":
		for i := len(s.mounts) - 1; i >= 0; i-- {
			if s.mounts[i].Target == "/jail/vhost1/etc" {
				s.mounts = append(s.mounts[:i], s.mounts[i+1:]...)
			}
		}
	}
	s.writeMounts()
	return resp{}, true
}

func (s *labSim) under(root string) []string { return reverseUnder(s.mounts, root) }

const labFstab = `# written by fstabgen
/jail/proto/.zfs/snapshot/2      /jail/vhost1                nullfs ro 0 0
/jail/proto/etc/.zfs/snapshot/2  /jail/vhost1/conf/base/etc  nullfs ro 0 0
zpool/vhost1/cfg                 /jail/vhost1/cfg            zfs    rw 0 0
zpool/vhost1/var                 /jail/vhost1/var            zfs    rw 0 0
zpool/vhost1/home                /jail/vhost1/home           zfs    rw 0 0
`

func labJail(t *testing.T) Jail {
	j := vhost1()
	j.IP4 = []string{"192.168.0.11"}
	j.Interface = "eth0"
	j.Fstab = filepath.Join(t.TempDir(), "fstab.vhost1")
	if err := os.WriteFile(j.Fstab, []byte(labFstab), 0o644); err != nil {
		t.Fatal(err)
	}
	return j
}

func labMounts() []string {
	return []string{
		"mount -t zfs -o ro zpool/proto@2 /jail/vhost1",
		"mount --make-private /jail/vhost1",
		"mount -t zfs -o ro zpool/proto/etc@2 /jail/vhost1/conf/base/etc",
		"mount --make-private /jail/vhost1/conf/base/etc",
		"mount -t zfs zpool/vhost1/cfg /jail/vhost1/cfg",
		"mount -t zfs zpool/vhost1/var /jail/vhost1/var",
		"mount -t zfs zpool/vhost1/home /jail/vhost1/home",
		"mount -t tmpfs -o size=64k,mode=0755 devfs /jail/vhost1/dev",
		"mknod -m 666 /jail/vhost1/dev/null c 1 3",
		"mknod -m 666 /jail/vhost1/dev/zero c 1 5",
		"mknod -m 666 /jail/vhost1/dev/random c 1 8",
		"mknod -m 666 /jail/vhost1/dev/urandom c 1 9",
		"mknod -m 666 /jail/vhost1/dev/tty c 5 0",
	}
}

var labUnmounts = []string{
	"umount /jail/vhost1/etc", // only when the poststop hook did not
	"umount /jail/vhost1/dev",
	"umount /jail/vhost1/home", "umount /jail/vhost1/var", "umount /jail/vhost1/cfg",
	"umount /jail/vhost1/conf/base/etc", "umount /jail/vhost1",
}

func (l *linux) holderCmd(name string) string {
	return `setsid -f /bin/sh -c 'echo $$ >"$0"; exec unshare --mount --pid --fork --kill-child -- sleep infinity </dev/null >>"$1" 2>&1' ` +
		l.pidFile(name) + ".holder " + l.logFile(name)
}

func (l *linux) inJailCmd(name, cmd string) string {
	return `/bin/sh -c 'exec "$@" </dev/null >>"$0" 2>&1' ` + l.logFile(name) +
		" nsenter --target 101 --mount --pid -- chroot /jail/vhost1 /bin/sh -c '" + cmd + "'"
}

func TestLinuxStartStop(t *testing.T) {
	s, r, l := newLabSim(t)
	j := labJail(t)
	ctx := context.Background()
	if err := l.Start(ctx, j); err != nil {
		t.Fatal(err)
	}
	want := append([]string{"ip addr add 192.168.0.11/32 dev eth0"}, labMounts()...)
	want = append(want, etcInit, l.holderCmd("vhost1"), l.inJailCmd("vhost1", "/bin/sh /etc/rc"))
	r.want(t, want...)
	plan := strings.ReplaceAll(strings.Join(quoteAll(l.StartArgv(j)), "\n"), "--target PID", "--target 101")
	if plan != strings.Join(want, "\n") {
		t.Errorf("StartArgv:\n%s\nwant:\n%s", plan, strings.Join(want, "\n"))
	}
	if root, running, err := l.Root(ctx, "vhost1"); err != nil || !running || root != "/jail/vhost1" {
		t.Fatalf("Root = %q %v %v", root, running, err)
	}

	r.calls = nil
	var out bytes.Buffer
	if err := l.Exec(ctx, "vhost1", []string{"/usr/bin/test", "-f", "/etc/rc"}, &out, nil); err != nil {
		t.Fatal(err)
	}
	r.want(t, "nsenter --target 101 --mount --pid -- chroot /jail/vhost1 /usr/bin/test -f /etc/rc")

	r.calls = nil
	if err := l.Stop(ctx, j); err != nil {
		t.Fatal(err)
	}
	r.want(t, l.inJailCmd("vhost1", "/bin/sh /etc/rc.shutdown"),
		"kill -s TERM -- 102", "kill -s KILL 101", etcCleanup,
		"umount /jail/vhost1/dev", "umount /jail/vhost1/home", "umount /jail/vhost1/var", "umount /jail/vhost1/cfg",
		"umount /jail/vhost1/conf/base/etc", "umount /jail/vhost1",
		"ip addr del 192.168.0.11/32 dev eth0")
	if left := s.under("/jail/vhost1"); len(left) > 0 {
		t.Fatalf("still mounted: %q", left)
	}
	if _, err := os.Stat(l.pidFile("vhost1")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("pid file left: %v", err)
	}
	if running, err := l.Running(ctx, "vhost1"); err != nil || running {
		t.Fatalf("Running after stop = %v %v", running, err)
	}
	if err := l.Exec(ctx, "vhost1", []string{"/bin/true"}, nil, nil); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Exec on a stopped jail: %v", err)
	}

	// not running and nothing mounted: nothing to do
	r.calls = nil
	if err := l.Stop(ctx, j); err != nil {
		t.Fatal(err)
	}
	r.want(t)
}

// exec.start fails: the namespaces are killed, the poststop hook runs, the mounts go in
// reverse, the alias goes, and the error carries the jail's output.
func TestLinuxStartUndo(t *testing.T) {
	s, r, l := newLabSim(t)
	j := labJail(t)
	execStart := l.inJailCmd("vhost1", "/bin/sh /etc/rc")
	s.onRun = func(argv []string) {
		if r.calls[len(r.calls)-1] == execStart {
			if err := os.WriteFile(l.logFile("vhost1"), []byte("Starting nginx.\n/etc/rc: nginx: not found\n"), 0o644); err != nil {
				t.Error(err)
			}
		}
	}
	s.fail[strings.Join(toLog(l.logFile("vhost1"), inJail("101", "/jail/vhost1", "/bin/sh", "-c", "/bin/sh /etc/rc")...), " ")] = fail(127, "")
	err := l.Start(context.Background(), j)
	if err == nil || !strings.HasPrefix(err.Error(), "jail vhost1: start: exec.start: ") || !strings.Contains(err.Error(), "nginx: not found") {
		t.Fatalf("err = %v", err)
	}
	want := append([]string{"ip addr add 192.168.0.11/32 dev eth0"}, labMounts()...)
	want = append(want, etcInit, l.holderCmd("vhost1"), execStart,
		"kill -s KILL 101", etcCleanup)
	want = append(want, labUnmounts[1:]...)
	r.want(t, append(want, "ip addr del 192.168.0.11/32 dev eth0")...)
	if left := s.under("/jail/vhost1"); len(left) > 0 {
		t.Fatalf("still mounted: %q", left)
	}
	if _, err := os.Stat(l.pidFile("vhost1")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("pid file left: %v", err)
	}
}

func TestLinuxStartUndoMountFailure(t *testing.T) {
	s, r, l := newLabSim(t)
	j := labJail(t)
	s.fail["mount -t zfs zpool/vhost1/var /jail/vhost1/var"] = fail(32, "mount: /jail/vhost1/var: special device zpool/vhost1/var does not exist.")
	err := l.Start(context.Background(), j)
	if err == nil || !strings.Contains(err.Error(), "zpool/vhost1/var does not exist") {
		t.Fatalf("err = %v", err)
	}
	want := append([]string{"ip addr add 192.168.0.11/32 dev eth0"}, labMounts()[:6]...)
	want = append(want, "umount /jail/vhost1/cfg", "umount /jail/vhost1/conf/base/etc", "umount /jail/vhost1",
		"ip addr del 192.168.0.11/32 dev eth0")
	r.want(t, want...)
	if left := s.under("/jail/vhost1"); len(left) > 0 {
		t.Fatalf("still mounted: %q", left)
	}
}

func TestLinuxStartRefuses(t *testing.T) {
	s, r, l := newLabSim(t)
	j := labJail(t)
	s.mounts = append(s.mounts, mountEntry{"zpool/vhost1/var", "/jail/vhost1/var", "zfs", "rw"})
	s.writeMounts()
	if err := l.Start(context.Background(), j); err == nil || !strings.Contains(err.Error(), "still mounted: /jail/vhost1/var") {
		t.Fatalf("err = %v", err)
	}
	j.ExecStart = "/bin/sh $HOME/rc"
	if err := l.Start(context.Background(), j); err == nil {
		t.Fatal("value jail.conf refuses accepted")
	}
	r.want(t)
}

// The jail died on its own (or rollout crashed): Stop cleans up what is mounted.
func TestLinuxStopDeadJail(t *testing.T) {
	s, r, l := newLabSim(t)
	j := labJail(t)
	ctx := context.Background()
	if err := l.Start(ctx, j); err != nil {
		t.Fatal(err)
	}
	s.rmProc(100, 101, 102)
	s.fail["umount /jail/vhost1/var"] = fail(32, "umount: /jail/vhost1/var: target is busy.")
	r.calls = nil
	err := l.Stop(ctx, j)
	if err == nil || !strings.Contains(err.Error(), "unmount /jail/vhost1/var") || !strings.Contains(err.Error(), "target is busy") {
		t.Fatalf("err = %v", err)
	}
	r.want(t, etcCleanup, "umount /jail/vhost1/dev", "umount /jail/vhost1/home", "umount /jail/vhost1/var", "ip addr del 192.168.0.11/32 dev eth0")
	delete(s.fail, "umount /jail/vhost1/var")
	r.calls = nil
	if err := l.Stop(ctx, j); err != nil {
		t.Fatal(err)
	}
	r.want(t, etcCleanup, "umount /jail/vhost1/var", "umount /jail/vhost1/cfg",
		"umount /jail/vhost1/conf/base/etc", "umount /jail/vhost1", "ip addr del 192.168.0.11/32 dev eth0")
}

func TestLinuxEtc(t *testing.T) {
	s, r, l := newLabSim(t)
	ctx := context.Background()
	dev, err := l.MountEtc(ctx, "vhost1", "/jail/vhost1/etc", "md", "32m")
	if err != nil || dev != "rollout:vhost1" {
		t.Fatalf("MountEtc = %q %v", dev, err)
	}
	if _, err := l.MountEtc(ctx, "vhost1", "/jail/vhost1/etc", "md", "32m"); err == nil {
		t.Fatal("mounted twice")
	}
	if fstype, ok, err := l.Mounted(ctx, "/jail/vhost1/etc"); err != nil || !ok || fstype != "tmpfs" {
		t.Fatalf("Mounted = %q %v %v", fstype, ok, err)
	}
	orphans, err := l.OrphanEtc(ctx)
	if err != nil || !reflect.DeepEqual(orphans, []string{"/jail/vhost1/etc"}) {
		t.Fatalf("OrphanEtc = %q %v", orphans, err)
	}
	if err := l.UnmountEtc(ctx, "vhost1", "/jail/vhost1/etc", "md"); err != nil {
		t.Fatal(err)
	}
	if err := l.UnmountEtc(ctx, "vhost1", "/jail/vhost1/etc", "md"); err != nil {
		t.Fatal("not idempotent:", err)
	}
	if _, err := l.MountEtc(ctx, "vhost1", "/jail/vhost1/etc", "tmpfs", "32m"); err != nil {
		t.Fatal(err)
	}
	r.want(t, "mount -t tmpfs -o size=32m,mode=0755 rollout:vhost1 /jail/vhost1/etc", "umount /jail/vhost1/etc")

	// someone else's file system is left alone
	s.mounts = append(s.mounts, mountEntry{"tmpfs", "/jail/vhost1/etc", "tmpfs", "rw"}, mountEntry{"rollout:vhost2", "/jail/vhost2/etc", "tmpfs", "rw"})
	s.writeMounts()
	r.calls = nil
	if err := l.UnmountEtc(ctx, "vhost1", "/jail/vhost1/etc", "md"); err == nil || !strings.Contains(err.Error(), "left alone") {
		t.Fatalf("err = %v", err)
	}
	if err := l.FreeEtc(ctx, "/jail/vhost1/etc"); err == nil {
		t.Fatal("FreeEtc took a foreign tmpfs")
	}
	if err := l.FreeEtc(ctx, "/jail/vhost2/etc"); err != nil {
		t.Fatal(err)
	}
	r.want(t, "umount /jail/vhost2/etc")
}

func TestParseMountinfo(t *testing.T) {
	data := "36 35 98:0 /mnt1 /mnt/with\\040space rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n" +
		"37 35 0:40 / /jail/vhost1/etc rw,relatime shared:7 master:2 - tmpfs rollout:vhost1 rw,size=32768k,mode=755\n" +
		"38 35 0:41 / /jail/vhost1 ro,relatime - zfs zpool/proto@2 ro,xattr\n"
	ms, err := parseMountinfo([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	want := []mountEntry{
		{"/dev/root", "/mnt/with space", "ext3", "rw,noatime"},
		{"rollout:vhost1", "/jail/vhost1/etc", "tmpfs", "rw,relatime"},
		{"zpool/proto@2", "/jail/vhost1", "zfs", "ro,relatime"},
	}
	if !reflect.DeepEqual(ms, want) {
		t.Fatalf("got %+v", ms)
	}
	if _, err := parseMountinfo([]byte("36 35 98:0 / /x rw shared:1 ext3\n")); err == nil {
		t.Fatal("line without '-' accepted")
	}
}

func TestReadStat(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "7"), 0o755); err != nil {
		t.Fatal(err)
	}
	stat := "7 (a) b (c) S 3 7 7 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 4242 1000 10\n"
	if err := os.WriteFile(filepath.Join(dir, "7", "stat"), []byte(stat), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := readStat(dir, 7)
	if err != nil || st != (procStat{PPID: 3, State: 'S', Start: 4242}) {
		t.Fatalf("readStat = %+v %v", st, err)
	}
	// and this process, for real
	self, err := readStat("/proc", os.Getpid())
	if err != nil || self.PPID != os.Getppid() {
		t.Fatalf("readStat(self) = %+v %v", self, err)
	}
}

func TestParseFstab(t *testing.T) {
	es, err := parseFstab("fstab", []byte(labFstab+"tmpfs /jail/vhost1/etc tmpfs rw,size=32m,mode=0755 0 0\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 6 || es[0].Spec != "/jail/proto/.zfs/snapshot/2" || es[0].File != "/jail/vhost1" || es[0].VFSType != "nullfs" {
		t.Fatalf("got %+v", es)
	}
	if !es[0].has("ro") || es[2].VFSType != "zfs" || es[5].Spec != "tmpfs" {
		t.Fatalf("got %+v", es)
	}
	got := quoteAll(mountArgv(es[5], nil))
	if !reflect.DeepEqual(got, []string{"mount -t tmpfs -o rw,size=32m,mode=0755 tmpfs /jail/vhost1/etc"}) {
		t.Fatalf("tmpfs mount = %q", got)
	}
	for _, bad := range []string{"a b c\n", "x relative zfs rw 0 0\n", "x /a/../b zfs rw 0 0\n"} {
		if _, err := parseFstab("fstab", []byte(bad)); err == nil || !strings.HasPrefix(err.Error(), "fstab:1: ") {
			t.Errorf("%q: err = %v", bad, err)
		}
	}
	if s := unescapeOctal(`a\040b\134c\0`); s != `a b\c\0` {
		t.Fatalf("unescapeOctal = %q", s)
	}
}

func TestAliasArgv(t *testing.T) {
	for _, c := range []struct{ ip, iface, want string }{
		{"192.0.2.1", "eth0", "ip addr add 192.0.2.1/32 dev eth0"},
		{"192.0.2.1/24", "eth0", "ip addr add 192.0.2.1/24 dev eth0"},
		{"em1|192.0.2.1/24 broadcast 192.0.2.255", "eth0", "ip addr add 192.0.2.1/24 dev em1"},
		{"192.0.2.1", "", ""},
	} {
		if got := strings.Join(aliasArgv("add", c.ip, c.iface), " "); got != c.want {
			t.Errorf("aliasArgv(%q, %q) = %q, want %q", c.ip, c.iface, got, c.want)
		}
	}
}
