package rollout

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/rollout-dev/rollout/fstabgen"
	"github.com/rollout-dev/rollout/proto/command"
	"github.com/rollout-dev/rollout/replicate/sshx"
	"github.com/rollout-dev/rollout/rollout/config"
	"github.com/rollout-dev/rollout/rollout/host"
)

// checkFixture is a host where all is well: the prototype zpool/proto (child etc) with
// snapshots 1 and 2, both held; vhost1 runs on 2 (previous 1) with its datasets mounted;
// vhost2 is on 2 (previous 1) and stopped; their jail.conf and fstab are as rollout writes them.
type checkFixture struct {
	t     *testing.T
	r     *recorder
	m     *Manager
	dir   string
	tryDS [][3]string // the datasets of a try (liveTry), after the healthy ones
}

const (
	zfsGetMounts = "/sbin/zfs get -H -p -r -t filesystem -o name,property,value mountpoint,mounted zpool"
	zfsFS        = "/sbin/zfs list -H -o name -t filesystem -r zpool/proto"
	zfsSnaps     = "/sbin/zfs list -H -p -t snapshot"
	zfsState     = "/sbin/zfs get -H -p -s local -o property,value all "
	chkHolds     = "/sbin/zfs holds -H"
	jls          = "/usr/sbin/jls -j "
	mountP       = "/sbin/mount -p"
	healthyState = "rollout:snapshot\tzpool/proto@2\nrollout:previous\tzpool/proto@1\nrollout:history\tnone\nrollout:pending\tnone\n"
)

func datasetsOut(lines ...[3]string) string {
	var b strings.Builder
	for _, l := range lines {
		fmt.Fprintf(&b, "%s\tmountpoint\t%s\n%s\tmounted\t%s\n", l[0], l[1], l[0], l[2])
	}
	return b.String()
}

func healthyDatasets() [][3]string {
	d := [][3]string{{"zpool", "/zpool", "yes"}, {"zpool/proto", "/jail/proto", "yes"}, {"zpool/proto/etc", "/jail/proto/etc", "yes"}}
	for _, v := range []string{"vhost1", "vhost2"} {
		mounted := map[string]string{"vhost1": "yes", "vhost2": "no"}[v]
		d = append(d, [3]string{"zpool/" + v, "legacy", "no"})
		for _, c := range []string{"cfg", "var", "home"} {
			d = append(d, [3]string{"zpool/" + v + "/" + c, "legacy", mounted})
		}
	}
	return d
}

func snapsOut(snaps ...string) string {
	var b strings.Builder
	for i, s := range snaps {
		fmt.Fprintf(&b, "%s\t%d\t%d\t1700000000\t0\t1\n", s, 1000+i, 10+i)
	}
	return b.String()
}

func newCheckFixture(t *testing.T) *checkFixture {
	t.Helper()
	dir := t.TempDir()
	cfg, err := config.Parse("/usr/local/etc/rollout.toml", []byte(fmt.Sprintf(`pool = "zpool"
fstab_dir = %q
[vhost.vhost1]
[vhost.vhost2]
[slave.slave2]
address = "slave2.example"
identity = "/root/.ssh/id_ed25519"
`, dir)))
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{out: map[string]string{
		zfsGetMounts:              datasetsOut(healthyDatasets()...),
		zfsFS:                     "zpool/proto\nzpool/proto/etc\n",
		zfsSnaps:                  snapsOut("zpool/proto@1", "zpool/proto/etc@1", "zpool/proto@2", "zpool/proto/etc@2"),
		zfsState + "zpool/vhost1": healthyState,
		zfsState + "zpool/vhost2": healthyState,
		chkHolds:                  "zpool/proto@1\trollout\tThu Nov 26 10:00 2026\nzpool/proto@2\trollout\tThu Nov 26 11:00 2026\n",
		jls + "vhost1":            "1 vhost1 /jail/vhost1\n",
		mountP: "zpool/proto\t/jail/proto\tzfs\trw,nfsv4acls\t0 0\n" +
			"/jail/proto/.zfs/snapshot/2\t/jail/vhost1\tnullfs\tro\t0 0\n" +
			"zpool/vhost1/cfg\t/jail/vhost1/cfg\tzfs\trw,nfsv4acls\t0 0\n" +
			"zpool/vhost1/var\t/jail/vhost1/var\tzfs\trw,nfsv4acls\t0 0\n" +
			"zpool/vhost1/home\t/jail/vhost1/home\tzfs\trw,nfsv4acls\t0 0\n",
	}, fail: map[string]string{jls + "vhost2": `jls: jail "vhost2" not found`}, errs: map[string]error{}}
	m := &Manager{Cfg: cfg, R: r, Host: confDirHost{host.NewFreeBSD(r, quietLog()), dir}, Log: quietLog(), Self: "/usr/local/sbin/rollout"}
	f := &checkFixture{t: t, r: r, m: m, dir: dir}
	for _, v := range []string{"vhost1", "vhost2"} {
		f.writeConf(v, nil)
		f.writeFstab(v, "zpool/proto@2", nil)
	}
	return f
}

func (f *checkFixture) vhost(name string) *config.Vhost {
	v, err := f.m.Cfg.Vhost(name)
	if err != nil {
		f.t.Fatal(err)
	}
	return v
}

// writeConf writes the jail.conf rollout would write, changed by edit.
func (f *checkFixture) writeConf(name string, edit func([]byte) []byte) {
	j := f.m.Jail(f.vhost(name))
	b, err := f.m.Host.RenderConf(j)
	if err != nil {
		f.t.Fatal(err)
	}
	if edit != nil {
		b = edit(b)
	}
	if err := os.WriteFile(f.m.Host.ConfFile(j), b, 0o644); err != nil {
		f.t.Fatal(err)
	}
}

const sysctlRacct = "/sbin/sysctl -n kern.racct.enable"

// limit gives the vhost an rctl limit, and the jail.conf that goes with it.
func (f *checkFixture) limit(name string) {
	f.vhost(name).Limits = map[string]string{"memoryuse": "deny=512m"}
	f.writeConf(name, nil)
}

// kern.racct.enable is read only when a vhost has limits, and 1 is no problem.
func TestCheckRacct(t *testing.T) {
	f := newCheckFixture(t)
	if ps := f.m.Check(context.Background(), CheckOptions{}); len(ps) != 0 || slices.Contains(f.r.calls, sysctlRacct) {
		t.Fatalf("no limits: problems %v, calls %q", ps, f.r.calls)
	}
	f = newCheckFixture(t)
	f.limit("vhost2")
	f.r.out[sysctlRacct] = "1\n"
	if ps := f.m.Check(context.Background(), CheckOptions{}); len(ps) != 0 || !slices.Contains(f.r.calls, sysctlRacct) {
		t.Fatalf("racct on: problems %v, calls %q", ps, f.r.calls)
	}
}

// writeFstab writes the fstab rollout would write for snap, changed by edit.
func (f *checkFixture) writeFstab(name, snap string, edit func([]byte) []byte) {
	v := f.vhost(name)
	b, err := f.m.RenderFstab(v, snap)
	if err != nil {
		f.t.Fatal(err)
	}
	if edit != nil {
		b = edit(b)
	}
	if err := os.WriteFile(f.m.Cfg.FstabPath(v), b, 0o644); err != nil {
		f.t.Fatal(err)
	}
}

// without drops the datasets named from the zfs get answer.
func (f *checkFixture) datasets(drop string, change ...[3]string) {
	var ds [][3]string
	for _, d := range append(healthyDatasets(), f.tryDS...) {
		if drop != "" && (d[0] == drop || strings.HasPrefix(d[0], drop+"/")) {
			continue
		}
		for _, c := range change {
			if c[0] == d[0] {
				d = c
			}
		}
		ds = append(ds, d)
	}
	f.r.out[zfsGetMounts] = datasetsOut(ds...)
}

// readOnly fails the test when Check ran anything but the reads it may run.
func readOnly(t *testing.T, calls []string) {
	t.Helper()
	for _, c := range calls {
		ok := false
		for _, p := range []string{"/sbin/zfs get -H ", "/sbin/zfs list -H ", "/sbin/zfs holds -H ", "/usr/sbin/jls -j ", "/sbin/mount -p", "/sbin/sysctl -n "} {
			if strings.HasPrefix(c, p) && !strings.Contains(c, "=") {
				ok = true
			}
		}
		if !ok {
			t.Errorf("check ran %q, which is not a read", c)
		}
	}
}

func TestCheckHealthyHostHasNoProblems(t *testing.T) {
	f := newCheckFixture(t)
	ps := f.m.Check(context.Background(), CheckOptions{})
	if len(ps) != 0 {
		t.Fatalf("problems on a healthy host: %v", ps)
	}
	readOnly(t, f.r.calls)
	// it did look: the state, the jails, the mounts of the running one and the holds
	all := strings.Join(f.r.calls, "\n")
	for _, want := range []string{zfsGetMounts, zfsSnaps, zfsState + "zpool/vhost1", zfsState + "zpool/vhost2", jls + "vhost1", jls + "vhost2", mountP,
		"/sbin/zfs holds -H zpool/proto@1 zpool/proto@2"} {
		if !strings.Contains(all, want) {
			t.Errorf("check did not run %q; ran:\n%s", want, all)
		}
	}
	if strings.Count(all, "/sbin/zfs get -H -p -r") != 1 {
		t.Errorf("want one batched zfs get over the pool:\n%s", all)
	}
}

// Each kind of problem, alone on an otherwise healthy host: exactly the lines wanted, each
// with its fix, and nothing run but reads.
func TestCheckFindsEachProblem(t *testing.T) {
	replaceLine := func(old, new string) func([]byte) []byte {
		return func(b []byte) []byte { return []byte(strings.Replace(string(b), old, new, 1)) }
	}
	for _, c := range []struct {
		name  string
		setup func(f *checkFixture)
		want  []string
	}{
		{"no zfs", func(f *checkFixture) {
			f.r.errs["/sbin/zfs"] = &command.Error{Host: "local", Argv: []string{"/sbin/zfs"}, ExitCode: -1,
				Err: &fs.PathError{Op: "fork/exec", Path: "/sbin/zfs", Err: syscall.ENOENT}}
		}, []string{"/sbin/zfs: not found; rollout needs ZFS"}},
		{"no pool", func(f *checkFixture) {
			f.r.fail[zfsGetMounts] = "cannot open 'zpool': dataset does not exist"
		}, []string{"pool zpool: does not exist or is not imported; zpool import zpool"}},
		{"no prototype", func(f *checkFixture) { f.datasets("zpool/proto") },
			[]string{"prototype zpool/proto: does not exist; zfs create -o mountpoint=/jail/proto zpool/proto"}},
		{"prototype elsewhere", func(f *checkFixture) { f.datasets("", [3]string{"zpool/proto", "/zpool/proto", "yes"}) },
			[]string{"prototype zpool/proto: mountpoint is /zpool/proto, the config says /jail/proto; zfs set mountpoint=/jail/proto zpool/proto"}},
		{"prototype not mounted", func(f *checkFixture) { f.datasets("", [3]string{"zpool/proto", "/jail/proto", "no"}) },
			[]string{"prototype zpool/proto: not mounted at /jail/proto (the vhosts mount its .zfs/snapshot); zfs mount zpool/proto"}},
		{"no prototype etc", func(f *checkFixture) {
			f.datasets("zpool/proto/etc")
			f.r.out[zfsFS] = "zpool/proto\n"
			f.r.out[zfsSnaps] = snapsOut("zpool/proto@1", "zpool/proto@2")
		}, []string{"prototype zpool/proto/etc: does not exist (the prototype's /etc); zfs create zpool/proto/etc"}},
		{"prototype etc elsewhere", func(f *checkFixture) { f.datasets("", [3]string{"zpool/proto/etc", "/etc2", "yes"}) },
			[]string{"prototype zpool/proto/etc: mountpoint is /etc2, the config says /jail/proto/etc; zfs inherit mountpoint zpool/proto/etc"}},
		{"no snapshots", func(f *checkFixture) {
			f.r.out[zfsSnaps] = ""
		}, []string{"prototype zpool/proto: has no snapshots; rollout snapshot takes the first",
			"vhost vhost1: runs on zpool/proto@2, which does not exist; rollout promote proto@N vhost1",
			"vhost vhost1: would roll back to zpool/proto@1, which does not exist",
			"vhost vhost2: runs on zpool/proto@2, which does not exist",
			"vhost vhost2: would roll back to zpool/proto@1, which does not exist"}},
		{"incomplete snapshot", func(f *checkFixture) {
			f.r.out[zfsSnaps] = snapsOut("zpool/proto@1", "zpool/proto/etc@1", "zpool/proto@2", "zpool/proto/etc@2", "zpool/proto@3")
		}, []string{"snapshot zpool/proto@3: missing on zpool/proto/etc (not taken with zfs snapshot -r); zfs destroy -r zpool/proto@3 removes it"}},
		{"no vhost dataset", func(f *checkFixture) { f.datasets("zpool/vhost2") },
			[]string{"vhost vhost2: dataset zpool/vhost2 does not exist; rollout create vhost2 proto@N creates the vhost"}},
		{"no child dataset", func(f *checkFixture) { f.datasets("zpool/vhost2/home") },
			[]string{"vhost vhost2: dataset zpool/vhost2/home does not exist; zfs create -o mountpoint=legacy zpool/vhost2/home"}},
		{"child mounted by zfs", func(f *checkFixture) { f.datasets("", [3]string{"zpool/vhost2/var", "/zpool/vhost2/var", "yes"}) },
			[]string{"vhost vhost2: dataset zpool/vhost2/var has mountpoint /zpool/vhost2/var, not legacy (jail(8) mounts it at /jail/vhost2/var from the fstab); zfs set mountpoint=legacy zpool/vhost2/var"}},
		{"jail elsewhere", func(f *checkFixture) { f.r.out[jls+"vhost1"] = "1 vhost1 /jail/old\n" },
			[]string{"vhost vhost1: its jail runs at /jail/old, the config says path /jail/vhost1; rollout stop vhost1, then rollout start vhost1"}},
		{"child not mounted", func(f *checkFixture) {
			f.r.out[mountP] = strings.Replace(f.r.out[mountP], "zpool/vhost1/var\t/jail/vhost1/var\tzfs\trw,nfsv4acls\t0 0\n", "", 1)
		}, []string{"vhost vhost1: its jail runs but zpool/vhost1/var is not mounted at /jail/vhost1/var; rollout stop vhost1, then rollout start vhost1"}},
		{"no state", func(f *checkFixture) { f.r.out[zfsState+"zpool/vhost2"] = "" },
			[]string{"vhost vhost2: no snapshot recorded on zpool/vhost2; rollout create vhost2 proto@N"}},
		{"bad state", func(f *checkFixture) { f.r.out[zfsState+"zpool/vhost2"] = "rollout:snapshot\tzpool/proto@2;reboot\n" },
			[]string{"vhost vhost2: cannot read its state: rollout:snapshot on zpool/vhost2: invalid snapshot \"zpool/proto@2;reboot\": invalid snapshot name"}},
		{"unfinished journal", func(f *checkFixture) {
			f.r.out[zfsState+"zpool/vhost2"] = healthyState + "rollout:pending\top=promote from=zpool/proto@1 to=zpool/proto@2 step=start running=true\n"
			f.r.out[zfsState+"zpool/vhost2"] = strings.Replace(f.r.out[zfsState+"zpool/vhost2"], "rollout:pending\tnone\n", "", 1)
		}, []string{"vhost vhost2: an earlier promote did not finish (rollout:pending on zpool/vhost2: op=promote from=zpool/proto@1 to=zpool/proto@2 step=start running=true); rollout repair vhost2"}},
		{"state names a missing snapshot", func(f *checkFixture) {
			f.r.out[zfsState+"zpool/vhost2"] = strings.Replace(healthyState, "snapshot\tzpool/proto@2", "snapshot\tzpool/proto@9", 1)
		}, []string{"vhost vhost2: runs on zpool/proto@9, which does not exist",
			"vhost vhost2: fstab " + "DIR/fstab.vhost2 points at @2, the state says zpool/proto@9; rollout fstab vhost2 --write regenerates it"}},
		{"not held", func(f *checkFixture) { f.r.out[chkHolds] = "zpool/proto@2\trollout\tThu Nov 26 11:00 2026\n" },
			[]string{"snapshot zpool/proto@1: has no rollout hold though vhost vhost1, vhost2 needs it (a zfs destroy could remove it); /sbin/zfs hold -r rollout zpool/proto@1"}},
		{"held by someone else", func(f *checkFixture) {
			f.r.out[chkHolds] = "zpool/proto@1\tbackup\tThu Nov 26 10:00 2026\nzpool/proto@2\trollout\tThu Nov 26 11:00 2026\n"
		}, []string{"snapshot zpool/proto@1: has no rollout hold"}},
		{"jail.conf missing", func(f *checkFixture) {
			if err := os.Remove(filepath.Join(f.dir, "vhost1.conf")); err != nil {
				t.Fatal(err)
			}
		}, []string{"vhost vhost1: jail.conf DIR/vhost1.conf is missing; rollout fstab vhost1 --write writes it"}},
		{"jail.conf differs", func(f *checkFixture) {
			f.writeConf("vhost1", func(b []byte) []byte { return append(b, "# mine\n"...) })
		}, []string{"vhost vhost1: jail.conf DIR/vhost1.conf differs from what rollout would write (the config changed, or it was edited by hand); rollout fstab vhost1 --write rewrites it"}},
		{"fstab edited", func(f *checkFixture) {
			f.writeFstab("vhost2", "zpool/proto@2", replaceLine("zfs    rw 0 0", "zfs    rw,noexec 0 0"))
		}, []string{"vhost vhost2: fstab DIR/fstab.vhost2 was edited by hand; rollout fstab vhost2 --write regenerates it"}},
		{"fstab missing", func(f *checkFixture) {
			if err := os.Remove(filepath.Join(f.dir, "fstab.vhost2")); err != nil {
				t.Fatal(err)
			}
		}, []string{"vhost vhost2: fstab DIR/fstab.vhost2 is missing; rollout fstab vhost2 --write writes it"}},
		{"fstab not rollout's", func(f *checkFixture) {
			f.writeFstab("vhost2", "zpool/proto@2", func(b []byte) []byte { _, rest, _ := strings.Cut(string(b), "\n"); return []byte(rest) })
		}, []string{"vhost vhost2: fstab DIR/fstab.vhost2 was not written by rollout; move it away, then rollout fstab vhost2 --write writes rollout's"}},
		{"racct off", func(f *checkFixture) {
			f.limit("vhost1")
			f.r.out[sysctlRacct] = "0\n"
		}, []string{"kern.racct.enable: is 0, so the limits of vhost vhost1 cannot be applied (rctl -a fails, and with it the jail's start); set kern.racct.enable=1 in /boot/loader.conf and reboot"}},
		{"no racct", func(f *checkFixture) {
			f.limit("vhost1")
			f.limit("vhost2")
			f.r.fail[sysctlRacct] = "sysctl: unknown oid 'kern.racct.enable'"
		}, []string{"kern.racct.enable: does not exist: the kernel has no RACCT/RCTL, so the limits of vhost vhost1, vhost2 cannot be applied"}},
		{"fstab on another snapshot", func(f *checkFixture) { f.writeFstab("vhost2", "zpool/proto@1", nil) },
			[]string{"vhost vhost2: fstab DIR/fstab.vhost2 points at @1, the state says zpool/proto@2; rollout fstab vhost2 --write regenerates it"}},
		{"fstab from an older config", func(f *checkFixture) {
			old := *f.vhost("vhost2")
			old.Datasets = []string{"cfg", "var"}
			b, err := fstabgen.Render(fstabSpec(f.m.Cfg, &old, "2"))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(f.dir, "fstab.vhost2"), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}, []string{"vhost vhost2: fstab DIR/fstab.vhost2 differs from what rollout would write (the config changed since); rollout fstab vhost2 --write regenerates it"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newCheckFixture(t)
			c.setup(f)
			wantProblems(t, f, c.want)
		})
	}
}

// wantProblems runs check on f and wants exactly the problems in want (each line containing
// one, in order, f's directory shown as DIR), each complete and on one line, and nothing changed.
func wantProblems(t *testing.T, f *checkFixture, want []string) {
	t.Helper()
	var lines []string
	for _, p := range f.m.Check(context.Background(), CheckOptions{}) {
		if p.What == "" || p.Problem == "" || p.Fix == "" || strings.Contains(p.String(), "\n") {
			t.Errorf("incomplete problem %+v", p)
		}
		lines = append(lines, strings.ReplaceAll(p.String(), f.dir, "DIR"))
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d problems:\n  %s\nwant %d:\n  %s", len(lines), strings.Join(lines, "\n  "), len(want), strings.Join(want, "\n  "))
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) {
			t.Errorf("problem %d:\n  %s\nwant it to contain\n  %s", i, lines[i], w)
		}
	}
	readOnly(t, f.r.calls)
}

func TestCheckSlaves(t *testing.T) {
	f := newCheckFixture(t)
	f.m.Cfg.Slaves["slave3"] = &config.Slave{Name: "slave3", Address: "slave3.example", Port: 22, KnownHosts: "/root/.ssh/known_hosts"}
	f.m.Cfg.Slaves["slave4"] = &config.Slave{Name: "slave4", Address: "slave4.example", Port: 2222, KnownHosts: "/root/.ssh/known_hosts"}
	f.m.Cfg.Slaves["slave5"] = &config.Slave{Name: "slave5", Address: "slave5.example", Port: 22, KnownHosts: "/root/.ssh/known_hosts"}
	var mu sync.Mutex
	var dialled []string
	dial := func(ctx context.Context, s *config.Slave, timeout time.Duration) error {
		mu.Lock()
		dialled = append(dialled, s.Name)
		mu.Unlock()
		switch s.Name {
		case "slave3":
			return fmt.Errorf("slave3: %w", &sshx.HostKeyError{Problem: "host key of slave3.example:22 is not in /root/.ssh/known_hosts (server offered ssh-ed25519 SHA256:x)",
				Fix: "verify that fingerprint, then add it with: ssh-keyscan -p 22 slave3.example >> /root/.ssh/known_hosts"})
		case "slave4":
			return fmt.Errorf("slave4: connect slave4.example:2222: %w", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED})
		case "slave5":
			<-ctx.Done() // a slave that never answers: the timeout ends it
			return fmt.Errorf("slave5: %w", ctx.Err())
		}
		return nil
	}
	// without Slaves, no slave is dialled
	if ps := f.m.Check(context.Background(), CheckOptions{Dial: dial}); len(ps) != 0 || len(dialled) != 0 {
		t.Fatalf("slaves dialled without Slaves: %v %v", dialled, ps)
	}
	start := time.Now()
	ps := f.m.Check(context.Background(), CheckOptions{Slaves: true, Dial: dial, SlaveTimeout: 100 * time.Millisecond})
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("check took %s: the slave timeout did not hold", d)
	}
	var lines []string
	for _, p := range ps {
		lines = append(lines, p.String())
	}
	want := []string{
		"slave slave3: host key of slave3.example:22 is not in /root/.ssh/known_hosts (server offered ssh-ed25519 SHA256:x); verify that fingerprint, then add it with: ssh-keyscan -p 22 slave3.example >> /root/.ssh/known_hosts",
		"slave slave4: unreachable: connect slave4.example:2222: dial tcp: connection refused; check slave.slave4.address and port in /usr/local/etc/rollout.toml",
		"slave slave5: unreachable: context deadline exceeded; check slave.slave5.address and port",
	}
	if len(dialled) != 4 {
		t.Errorf("dialled %v, want every slave", dialled)
	}
	if len(lines) != len(want) {
		t.Fatalf("got:\n  %s\nwant:\n  %s", strings.Join(lines, "\n  "), strings.Join(want, "\n  "))
	}
	for i := range want {
		if !strings.HasPrefix(lines[i], want[i]) {
			t.Errorf("got  %s\nwant %s...", lines[i], want[i])
		}
	}
}

// SlaveTimeout 0 is the default timeout, not none at all: the dial gets DefaultSlaveTimeout
// and a context that has not expired yet.
func TestCheckSlavesDefaultTimeout(t *testing.T) {
	f := newCheckFixture(t)
	var got time.Duration
	dial := func(ctx context.Context, s *config.Slave, timeout time.Duration) error {
		got = timeout
		return ctx.Err()
	}
	ps := f.m.Check(context.Background(), CheckOptions{Slaves: true, Dial: dial})
	if len(ps) != 0 || got != DefaultSlaveTimeout {
		t.Errorf("dial timeout %s, problems %v; want %s and none", got, ps, DefaultSlaveTimeout)
	}
}

// The real dial (sshx, known_hosts verified) against slaves that cannot be used.
func TestCheckSlavesDialsWithSSH(t *testing.T) {
	f := newCheckFixture(t)
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	id := filepath.Join(f.dir, "id")
	known := filepath.Join(f.dir, "known_hosts")
	if err := os.WriteFile(id, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(known, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close() // nothing listens there now
	f.m.Cfg.Slaves = map[string]*config.Slave{
		"nokeys":  {Name: "nokeys", Address: "127.0.0.1", Port: port, User: "root", Identity: id, KnownHosts: filepath.Join(f.dir, "absent")},
		"refused": {Name: "refused", Address: "127.0.0.1", Port: port, User: "root", Identity: id, KnownHosts: known},
	}
	ps := f.m.Check(context.Background(), CheckOptions{Slaves: true, SlaveTimeout: 5 * time.Second})
	if len(ps) != 2 {
		t.Fatalf("problems %v", ps)
	}
	if !strings.HasPrefix(ps[0].String(), "slave nokeys: known_hosts: open "+filepath.Join(f.dir, "absent")) ||
		!strings.Contains(ps[0].Fix, fmt.Sprintf("ssh-keyscan -p %d 127.0.0.1 >> %s", port, filepath.Join(f.dir, "absent"))) {
		t.Errorf("no known_hosts: %s", ps[0])
	}
	if !strings.HasPrefix(ps[1].String(), "slave refused: unreachable: connect 127.0.0.1:") ||
		!strings.Contains(ps[1].Fix, "slave.refused.address and port") {
		t.Errorf("refused: %s", ps[1])
	}
}

// liveTry gives vhost1 a live try on zpool/proto@2 as rollout try --keep leaves it: its
// journal on zpool/vhost1, its running jail, its clones and its hold.
func (f *checkFixture) liveTry() {
	// "jls -j vhost1" is a prefix of "jls -j vhost1-try": the recorder would answer both
	f.r.out[jls+"vhost1 "] = f.r.out[jls+"vhost1"]
	delete(f.r.out, jls+"vhost1")
	f.r.out[jls+"vhost1-try "] = "2 vhost1-try /jail/vhost1-try\n"
	f.r.out[zfsState+"zpool/vhost1"] = healthyState + "rollout:try\tname=vhost1-try snap=rollout-try-1700000000 to=zpool/proto@2 state=live\n"
	f.tryDS = [][3]string{{"zpool/vhost1-try", "legacy", "no"}}
	for _, c := range []string{"cfg", "var", "home"} {
		f.tryDS = append(f.tryDS, [3]string{"zpool/vhost1-try/" + c, "legacy", "yes"})
	}
	f.datasets("")
	f.r.out[chkHolds] += "zpool/proto@2\trollout:try:vhost1-try\tThu Nov 26 12:00 2026\n"
}

// A try that rollout try --keep left is checked as status flags it (not running, not
// finished), and a live one's clones, snapshot and hold are looked at; a healthy one is no
// problem.
func TestCheckTry(t *testing.T) {
	for _, c := range []struct {
		name  string
		setup func(f *checkFixture)
		want  []string
	}{
		{"healthy", func(f *checkFixture) {}, nil},
		{"not running", func(f *checkFixture) { f.r.fail[jls+"vhost1-try "] = `jls: jail "vhost1-try" not found` },
			[]string{"vhost vhost1: try vhost1-try is not running; rollout try --end vhost1"}},
		{"unfinished", func(f *checkFixture) {
			f.r.out[zfsState+"zpool/vhost1"] = strings.Replace(f.r.out[zfsState+"zpool/vhost1"], "state=live", "state=making", 1)
			f.datasets("zpool/vhost1-try/home") // half made: only reported as unfinished
		}, []string{"vhost vhost1: unfinished try vhost1-try in state making; rollout repair vhost1"}},
		{"clone missing", func(f *checkFixture) { f.datasets("zpool/vhost1-try/var") },
			[]string{"vhost vhost1: try vhost1-try is live but its dataset zpool/vhost1-try/var does not exist; rollout try --end vhost1 ends it"}},
		{"datasets missing", func(f *checkFixture) { f.datasets("zpool/vhost1-try") },
			[]string{"vhost vhost1: try vhost1-try is live but its dataset zpool/vhost1-try does not exist",
				"vhost vhost1: try vhost1-try is live but its dataset zpool/vhost1-try/cfg does not exist",
				"vhost vhost1: try vhost1-try is live but its dataset zpool/vhost1-try/var does not exist",
				"vhost vhost1: try vhost1-try is live but its dataset zpool/vhost1-try/home does not exist"}},
		{"hold missing", func(f *checkFixture) {
			f.r.out[chkHolds] = strings.Replace(f.r.out[chkHolds], "zpool/proto@2\trollout:try:vhost1-try\tThu Nov 26 12:00 2026\n", "", 1)
		}, []string{"snapshot zpool/proto@2: has no rollout:try:vhost1-try hold though try vhost1-try of vhost vhost1 runs on it (a zfs destroy could remove it); /sbin/zfs hold -r rollout:try:vhost1-try zpool/proto@2"}},
		{"hold missing on a snapshot no vhost needs", func(f *checkFixture) {
			f.r.out[zfsSnaps] += snapsOut("zpool/proto@3", "zpool/proto/etc@3")
			f.r.out[zfsState+"zpool/vhost1"] = strings.Replace(f.r.out[zfsState+"zpool/vhost1"], "to=zpool/proto@2", "to=zpool/proto@3", 1)
		}, []string{"snapshot zpool/proto@3: has no rollout:try:vhost1-try hold though try vhost1-try of vhost vhost1 runs on it"}},
		{"snapshot gone", func(f *checkFixture) {
			f.r.out[zfsState+"zpool/vhost1"] = strings.Replace(f.r.out[zfsState+"zpool/vhost1"], "to=zpool/proto@2", "to=zpool/proto@7", 1)
		}, []string{"vhost vhost1: try vhost1-try runs on zpool/proto@7, which does not exist; rollout try --end vhost1"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newCheckFixture(t)
			f.liveTry()
			c.setup(f)
			wantProblems(t, f, c.want)
			// it did ask about the try's jail and its hold
			all := strings.Join(f.r.calls, "\n")
			for _, want := range []string{jls + "vhost1-try ", "/sbin/zfs holds -H zpool/proto@1 zpool/proto@2"} {
				if !strings.Contains(all, want) {
					t.Errorf("check did not run %q; ran:\n%s", want, all)
				}
			}
		})
	}
}

// A live try's snapshot has its hold checked even when no vhost needs any snapshot (none
// recorded): more snapshots to ask about for tries than for vhosts.
func TestCheckTryWithoutVhostSnapshots(t *testing.T) {
	f := newCheckFixture(t)
	f.liveTry()
	f.r.out[zfsState+"zpool/vhost1"] = "rollout:try\tname=vhost1-try snap=rollout-try-1700000000 to=zpool/proto@2 state=live\n"
	f.r.out[zfsState+"zpool/vhost2"] = ""
	f.r.out[chkHolds] = "zpool/proto@2\trollout\tThu Nov 26 11:00 2026\n"
	wantProblems(t, f, []string{"vhost vhost1: no snapshot recorded on zpool/vhost1",
		"vhost vhost2: no snapshot recorded on zpool/vhost2",
		"snapshot zpool/proto@2: has no rollout:try:vhost1-try hold though try vhost1-try of vhost vhost1 runs on it"})
	if !slices.Contains(f.r.calls, chkHolds+" zpool/proto@2") {
		t.Errorf("holds not asked of the try's snapshot alone: %q", f.r.calls)
	}
}
