package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// guestNames are the guests booted for the whole run: a master, and slaves for replication.
// ROLLOUT_LAB_GUESTS="master" boots fewer while working on one test; tests that need a guest
// that is not up are skipped then (never in `make test`, which boots all).
func guestNames() []string {
	if g := strings.Fields(os.Getenv("ROLLOUT_LAB_GUESTS")); len(g) > 0 {
		return g
	}
	return []string{"master", "slave1", "slave2"}
}

// lab is the run's lab: the script and its environment (run folder, port range), kept apart
// from any guests a developer has up by hand.
type lab struct {
	script string
	env    []string
}

func (l *lab) cmd(ctx context.Context, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, l.script, args...)
	c.Env = append(os.Environ(), l.env...)
	return c
}

// theLab is set by TestMain before any test runs and never changed afterwards.
var theLab *lab

func TestMain(m *testing.M) {
	_, file, _, _ := runtime.Caller(0)
	run := os.Getenv("ROLLOUT_LAB_TEST_RUN")
	if run == "" {
		run = filepath.Join(os.TempDir(), "rollout-lab-test")
	}
	theLab = &lab{
		script: filepath.Join(filepath.Dir(file), "lab"),
		env:    []string{"ROLLOUT_LAB_RUN=" + run, "ROLLOUT_LAB_PORT_BASE=" + envOr("ROLLOUT_LAB_TEST_PORT_BASE", "10122")},
	}
	os.Exit(runWithGuests(m))
}

func runWithGuests(m *testing.M) int {
	down := func() {
		if os.Getenv("ROLLOUT_LAB_KEEP") == "1" {
			return
		}
		c := theLab.cmd(context.Background(), "down")
		c.Stdout, c.Stderr = os.Stderr, os.Stderr
		_ = c.Run()
	}
	// guests must not outlive an interrupted run
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		down()
		os.Exit(1)
	}()
	defer down()
	start := time.Now()
	up := theLab.cmd(context.Background(), append([]string{"up"}, guestNames()...)...)
	up.Stdout, up.Stderr = os.Stderr, os.Stderr
	if err := up.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "integration: lab up failed: %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "integration: %d guest(s) up in %s\n", len(guestNames()), time.Since(start).Round(time.Second))
	return m.Run()
}

// guest is one lab guest, seen from a test.
type guest struct {
	name string
	t    *testing.T
}

func newGuest(t *testing.T, name string) *guest {
	t.Helper()
	if !slices.Contains(guestNames(), name) {
		t.Skipf("guest %s is not up (ROLLOUT_LAB_GUESTS=%q)", name, os.Getenv("ROLLOUT_LAB_GUESTS"))
	}
	return &guest{name: name, t: t}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// port is the host port of a guest's sshd; other guests reach it as 10.0.2.2:port.
func (g *guest) port() string {
	g.t.Helper()
	out, err := theLab.cmd(context.Background(), "port", g.name).Output()
	if err != nil {
		g.t.Fatalf("lab port %s: %v", g.name, err)
	}
	return strings.TrimSpace(string(out))
}

type result struct {
	stdout, stderr string
	code           int
}

// run runs argv as root in the guest and returns its output and exit code.
func (g *guest) run(argv ...string) result {
	g.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c := theLab.cmd(ctx, append([]string{"exec", g.name, "--"}, argv...)...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			g.t.Fatalf("%s: %v: %v", g.name, argv, err)
		}
		code = ee.ExitCode()
	}
	if code == 255 && strings.Contains(errb.String(), "ssh:") {
		g.t.Fatalf("%s: ssh failed for %v: %s", g.name, argv, errb.String())
	}
	return result{out.String(), errb.String(), code}
}

// must runs argv and fails the test unless it exits 0; it returns stdout.
func (g *guest) must(argv ...string) string {
	g.t.Helper()
	r := g.run(argv...)
	if r.code != 0 {
		g.t.Fatalf("%s: %s: exit %d\nstdout: %s\nstderr: %s", g.name, strings.Join(argv, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// sh runs a shell script in the guest and fails the test unless it exits 0.
func (g *guest) sh(script string) string {
	g.t.Helper()
	// the options are set inside: bash started over ssh reads bashrc, which is not -u clean
	return g.must("bash", "-c", "set -euo pipefail\n"+script)
}

// rollout runs the rollout binary installed in the guest with the guest's test config.
func (g *guest) rollout(args ...string) result {
	g.t.Helper()
	return g.run(append([]string{"rollout", "--config", "/usr/local/etc/rollout.toml"}, args...)...)
}

func (g *guest) writeFile(path, content string) {
	g.t.Helper()
	g.must("sh", "-c", `mkdir -p "$(dirname "$1")" && printf '%s' "$2" > "$1"`, "sh", path, content)
}

// resetScript returns a guest to a fresh, empty pool named zpool: no jails running, nothing
// mounted under /jail, no rollout state.
const resetScript = `
# jails of earlier tests: processes chrooted below /jail (bsdemu's jail holders, pid 1 of
# each jail's PID namespace: killing one kills its jail) or working below it (bsdemu's
# snapshot pins), and the lab's namespace holders
for p in /proc/[0-9]*; do case "$(readlink "$p/root" 2>/dev/null)" in /jail/*) kill -9 "${p#/proc/}" 2>/dev/null || true;; esac; done
for p in /proc/[0-9]*; do case "$(readlink "$p/cwd" 2>/dev/null)" in /jail/*) kill -9 "${p#/proc/}" 2>/dev/null || true;; esac; done
for p in $(pgrep -fx 'sleep infinity' || true); do kill -9 "$p" 2>/dev/null || true; done
{ findmnt -rn -o TARGET | grep -E '^/jail(/|$)' || true; } | sort -r | xargs -r -n1 umount -l
# bsdemu's md units (loop devices on a tmpfs), jail aliases (/32), and its kernel state
{ findmnt -rn -o TARGET,SOURCE | awk '$2 ~ /^\/dev\/md[0-9]+$/ {print $1}' || true; } | sort -r | xargs -r -n1 umount -l
losetup -D 2>/dev/null || true
rm -f /dev/md[0-9]*
umount -l /run/bsdemu/mdswap 2>/dev/null || true
rm -rf /run/bsdemu
# bsdemu's per-jail cgroups (rctl); their processes were killed above
for c in /sys/fs/cgroup/rollout-jail-*; do [ -d "$c" ] && rmdir "$c" 2>/dev/null || true; done
ip -4 -o addr show | awk '$4 ~ /\/32$/ {print $2, $4}' | while read -r dev a; do ip addr del "$a" dev "$dev" || true; done
rm -f /var/log/jail_*_console.log
zpool destroy -f zpool 2>/dev/null || true
rm -rf /jail /var/run/rollout /usr/local/etc/rollout.toml /etc/jail.conf.d /etc/fstab.* /tmp/rollout-*
zpool create -f -O compression=lz4 -O mountpoint=none zpool /dev/vdb
mkdir -p /jail
`

// freshPool gives the test a fresh pool on g (as zrepl's platform tests do: a fresh pool per
// test case, not a fresh guest).
func freshPool(t *testing.T, name string) *guest {
	t.Helper()
	g := newGuest(t, name)
	g.sh(resetScript)
	return g
}

// baseConfig is the paper's set-up: pool zpool, prototype zpool/proto at /jail/proto.
const baseConfig = `pool = "zpool"
jail_root = "/jail"
[proto]
dataset = "zpool/proto"
mountpoint = "/jail/proto"
`

// makeProto creates the paper's prototype (zpool/proto with its child etc) with a tiny
// userland and a /VERSION file.
func (g *guest) makeProto(version string) {
	g.t.Helper()
	g.sh(`
zfs create -o mountpoint=/jail/proto zpool/proto
zfs create zpool/proto/etc
mkdir -p /jail/proto/bin /jail/proto/usr/local /jail/proto/conf/base/etc /jail/proto/cfg /jail/proto/var /jail/proto/home /jail/proto/dev /jail/proto/tmp
cp /bin/busybox /jail/proto/bin/busybox
for c in sh cat sleep ls echo test grep; do ln -s busybox /jail/proto/bin/$c; done
ln -s ../../etc/local /jail/proto/usr/local/etc
mkdir -p /jail/proto/etc/local
echo 'hostname="proto.domain.local"' > /jail/proto/etc/rc.conf
echo 'nameserver 192.0.2.53' > /jail/proto/etc/resolv.conf
# exec.clean runs the hooks as root of the jail: jail(8) looks uid 0 up in its passwd and
# starts in its home directory (usr.sbin/jail/command.c, run_command)
mkdir -p /jail/proto/root
echo 'root:*:0:0:Charlie &:/root:/bin/sh' > /jail/proto/etc/passwd
echo ` + version + ` > /jail/proto/VERSION
`)
}

// reboot reboots the guest; its pools survive and are imported again, as at a host's boot.
func (g *guest) reboot() {
	g.t.Helper()
	c := theLab.cmd(context.Background(), "reboot", g.name)
	if out, err := c.CombinedOutput(); err != nil {
		g.t.Fatalf("lab reboot %s: %v\n%s", g.name, err, out)
	}
}

// long skips a lab test that takes many minutes under the emulated CPU unless ROLLOUT_LAB_LONG=1
// (make crash sets it): CI's `make test` must stay within its time.
func long(t *testing.T) {
	t.Helper()
	if os.Getenv("ROLLOUT_LAB_LONG") != "1" {
		t.Skip("a long lab test: runs in make crash (ROLLOUT_LAB_LONG=1)")
	}
}
