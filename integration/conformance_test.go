package integration

// Conformance tests for the lab's FreeBSD jail userland (integration/bsdemu): each pins one
// emulated behaviour to the FreeBSD source it copies, so the product's FreeBSD host code is
// tested against what FreeBSD does, not against what the emulation happens to do.
//
//	ROLLOUT_LAB_GUESTS=master go test -count=1 -run Conformance -v ./integration/

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// emuRoot makes a minimal jail root at path: busybox, a passwd with root's home and shell.
func (g *guest) emuRoot(path string) {
	g.t.Helper()
	g.sh(fmt.Sprintf(`
r=%q
mkdir -p $r/bin $r/dev $r/etc $r/tmp $r/root $r/var
cp /bin/busybox $r/bin/busybox
for c in sh cat sleep ls echo env pwd true false; do ln -sf busybox $r/bin/$c; done
echo 'root:x:0:0:Charlie &:/root:/bin/sh' > $r/etc/passwd
`, path))
}

// emuConf writes /etc/jail.conf.d/NAME.conf in rollout's style and returns its path.
func (g *guest) emuConf(name, body string) string {
	g.t.Helper()
	conf := "/etc/jail.conf.d/" + name + ".conf"
	g.writeFile(conf, "# Written by the conformance tests.\n"+name+" {\n"+body+"}\n")
	return conf
}

// jailMounts lists the mount points at or below dir.
func (g *guest) jailMounts(dir string) []string {
	g.t.Helper()
	out := g.must("findmnt", "-rn", "-o", "TARGET")
	var ms []string
	for _, l := range strings.Split(out, "\n") {
		if l == dir || strings.HasPrefix(l, dir+"/") {
			ms = append(ms, l)
		}
	}
	return ms
}

func (g *guest) shRun(script string) result {
	g.t.Helper()
	return g.run("sh", "-c", script)
}

// The order of the steps of jail -c and jail -r: usr.sbin/jail/jail.c startcommands[]
// (ip4 aliases, mount, mount.fstab in file order, mount.devfs, exec.prestart, create,
// exec.created, exec.start, exec.poststart) and stopcommands[] (exec.prestop, exec.stop,
// stop.timeout, remove, exec.poststop, mount.devfs, mount.fstab in reverse (PF_REV in
// config.c intparams), ip4); exec.start and exec.stop run in the jail with their output
// in exec.consolelog (command.c run_command: only those are "injail").
func TestConformanceStartStopOrder(t *testing.T) {
	g := freshPool(t, "master")
	g.makeProto("1")
	// exec.clean chdirs to root's home in the jail
	g.sh(`mkdir -p /jail/proto/root && zfs snapshot -r zpool/proto@1
zfs create -p -o mountpoint=legacy zpool/t/var
mkdir -p /jail/t
printf '%s\n' '# fstab' \
 '/jail/proto/.zfs/snapshot/1     /jail/t               nullfs ro 0 0' \
 '/jail/proto/etc/.zfs/snapshot/1 /jail/t/conf/base/etc nullfs ro 0 0' \
 'tmpfs                           /jail/t/etc           tmpfs  rw,size=1m,mode=0755 0 0' \
 'zpool/t/var                     /jail/t/var           zfs    rw 0 0' > /etc/fstab.t
cat > /root/hook <<'EOF'
#!/bin/sh
# HOOK: which mounts are there, whether the jail exists
# (at prestart it fills the jail's /etc as rollout's "etc init" does: exec.clean needs root
# in the jail's passwd, command.c get_user_info)
[ "$1" = prestart ] && echo 'root:*:0:0:Charlie &:/root:/bin/sh' > /jail/t/etc/passwd
m() { mountpoint -q "$1" && echo y || echo n; }
j=$(jls -j t name 2>/dev/null || echo none)
echo "$1 root=$(m /jail/t) etc=$(m /jail/t/etc) var=$(m /jail/t/var) dev=$(m /jail/t/dev) alias=$(ip -4 -o addr show dev eth0 | grep -c 192.0.2.77) jail=$j" >> /var/log/jail_t_console.log
EOF
chmod +x /root/hook`)
	conf := g.emuConf("t", `	path = "/jail/t";
	host.hostname = "t.domain.local";
	mount.fstab = "/etc/fstab.t";
	mount.devfs;
	interface = "eth0";
	ip4.addr = "192.0.2.77";
	exec.clean;
	exec.consolelog = "/var/log/jail_t_console.log";
	exec.prestart = "/root/hook prestart";
	exec.created = "/root/hook created";
	exec.start = "/bin/echo start-in-jail";
	exec.poststart = "/root/hook poststart";
	exec.prestop = "/root/hook prestop";
	exec.stop = "/bin/echo stop-in-jail";
	exec.poststop = "/root/hook poststop";
	persist;
`)
	r := g.run("jail", "-f", conf, "-c", "t")
	if r.code != 0 || r.stdout != "t: created\n" {
		t.Fatalf("jail -c: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	// mount.fstab in file order, then mount.devfs: mount -p lists mounts in mount order
	var order []string
	for _, l := range strings.Split(g.must("mount", "-p"), "\n") {
		if f := strings.Fields(l); len(f) > 2 && strings.HasPrefix(f[1], "/jail/t") {
			order = append(order, f[1]+" "+f[2])
		}
	}
	want := []string{"/jail/t nullfs", "/jail/t/conf/base/etc nullfs", "/jail/t/etc tmpfs", "/jail/t/var zfs", "/jail/t/dev devfs"}
	if strings.Join(order, "|") != strings.Join(want, "|") {
		t.Errorf("mounts in order:\n got %q\nwant %q", order, want)
	}
	r = g.run("jail", "-f", conf, "-r", "t")
	if r.code != 0 || r.stdout != "t: removed\n" {
		// fstab lines unmount in reverse: in file order /jail/t would be busy and fail
		t.Fatalf("jail -r: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	got := g.must("cat", "/var/log/jail_t_console.log")
	wantLog := `prestart root=y etc=y var=y dev=y alias=1 jail=none
created root=y etc=y var=y dev=y alias=1 jail=t
start-in-jail
poststart root=y etc=y var=y dev=y alias=1 jail=t
prestop root=y etc=y var=y dev=y alias=1 jail=t
stop-in-jail
poststop root=y etc=y var=y dev=y alias=1 jail=none
`
	if got != wantLog {
		t.Errorf("hooks in order:\n got:\n%s\nwant:\n%s", got, wantLog)
	}
	if ms := g.jailMounts("/jail/t"); len(ms) != 0 {
		t.Errorf("mounted after jail -r: %v", ms)
	}
	if n := g.shRun("ip -4 -o addr show dev eth0 | grep -c 192.0.2.77").stdout; strings.TrimSpace(n) != "0" {
		t.Errorf("alias 192.0.2.77 still on eth0 after jail -r")
	}
}

// Without exec.consolelog a command inherits jail(8)'s fds 0-2 (command.c run_command: only
// consolelog dup2s fds 1 and 2, then closefrom(3)), so a daemon started by exec.start keeps
// a pipe on jail(8)'s stderr open: whoever reads it waits for the daemon. With consolelog
// the output goes to the log (O_APPEND|O_CREAT) and the reader sees EOF when jail(8) exits.
func TestConformanceFdInheritance(t *testing.T) {
	g := freshPool(t, "master")
	g.emuRoot("/jail/t")
	// mount.devfs: sh gives a background command /dev/null as stdin
	start := `	mount.devfs;
	persist;
	exec.start = "/bin/sh -c '/bin/sleep 10 & echo started-in-jail'";
`
	timed := func(conf string) (float64, string) {
		out := g.sh(`s=$(date +%s%N); out=$(jail -f ` + conf + ` -c t 2>&1 | cat); e=$(date +%s%N)
echo "$(( (e - s) / 1000000 ))"; echo "$out"`)
		first, rest, _ := strings.Cut(out, "\n")
		ms, err := strconv.Atoi(first)
		if err != nil {
			t.Fatalf("timing: %q", out)
		}
		return float64(ms) / 1000, rest
	}
	conf := g.emuConf("t", "\tpath = \"/jail/t\";\n"+start)
	secs, out := timed(conf)
	if secs < 9 {
		t.Errorf("without exec.consolelog the pipe closed after %.1fs; the sleep in the jail holds it for 10s", secs)
	}
	if !strings.Contains(out, "started-in-jail") {
		t.Errorf("without exec.consolelog exec.start's output should reach jail(8)'s stdout: %q", out)
	}
	g.must("jail", "-f", conf, "-r", "t")
	conf = g.emuConf("t", "\tpath = \"/jail/t\";\n\texec.consolelog = \"/var/log/jail_t_console.log\";\n"+start)
	secs, out = timed(conf)
	if secs > 7 {
		t.Errorf("with exec.consolelog the pipe stayed open %.1fs", secs)
	}
	if strings.Contains(out, "started-in-jail") {
		t.Errorf("with exec.consolelog exec.start's output reached jail(8)'s stdout: %q", out)
	}
	if log := g.must("cat", "/var/log/jail_t_console.log"); log != "started-in-jail\n" {
		t.Errorf("console log: %q", log)
	}
	g.must("jail", "-f", conf, "-r", "t")
}

// A failed create unwinds in reverse what ran (command.c next_command with create_failed:
// comparam walks back, skipping exec.prestart, exec.created, exec.start, command and
// exec.poststart; the jail is removed) and never runs exec.poststop, which is not in
// jail.c startcommands[]. The message is finish_command's "NAME: COMMAND: failed".
func TestConformanceFailedCreate(t *testing.T) {
	g := freshPool(t, "master")
	g.emuRoot("/jail/t")
	g.sh(`rm -f /root/hooks; mkdir -p /jail/t/a /jail/t/b
printf 'tmpfs /jail/t/a tmpfs rw,size=1m 0 0\ntmpfs /jail/t/b tmpfs rw,size=1m 0 0\n' > /etc/fstab.t`)
	conf := g.emuConf("t", `	path = "/jail/t";
	mount.fstab = "/etc/fstab.t";
	mount.devfs;
	exec.prestart = "/bin/sh -c 'echo prestart >> /root/hooks'";
	exec.created = "/bin/sh -c 'echo created >> /root/hooks'";
	exec.start = "/bin/false";
	exec.poststop = "/bin/sh -c 'echo poststop >> /root/hooks'";
`)
	r := g.run("jail", "-f", conf, "-c", "t")
	if r.code != 1 {
		t.Errorf("jail -c with a failing exec.start: exit %d, want 1", r.code)
	}
	if r.stderr != "jail: t: /bin/false: failed\n" {
		t.Errorf("stderr %q", r.stderr)
	}
	if r.stdout != "t: created\nt: removed\n" {
		t.Errorf("stdout %q", r.stdout)
	}
	if hooks := g.must("cat", "/root/hooks"); hooks != "prestart\ncreated\n" {
		t.Errorf("hooks run: %q (exec.poststop must not run, exec.created not twice)", hooks)
	}
	if ms := g.jailMounts("/jail/t"); len(ms) != 0 {
		t.Errorf("still mounted after the failed create: %v", ms)
	}
	if r := g.run("jls", "-j", "t"); r.code != 1 {
		t.Errorf("jls -j t after the failed create: exit %d", r.code)
	}

	// libjail jailparam_type: an unknown parameter fails the jail before any command
	conf = g.emuConf("t", `	path = "/jail/t";
	mount.fstab = "/etc/fstab.t";
	allow.raw_sockets;
	allow.bogus;
`)
	r = g.run("jail", "-f", conf, "-c", "t")
	if r.code != 1 || r.stderr != "jail: t: unknown parameter: allow.bogus\n" {
		t.Errorf("unknown parameter: exit %d, stderr %q", r.code, r.stderr)
	}
	if ms := g.jailMounts("/jail/t"); len(ms) != 0 {
		t.Errorf("mounted after a refused parameter: %v", ms)
	}
}

// command.c check_path: every component below the jail's path is lstat'ed and a symbolic
// link is refused ("mount.fstab: PATH is a symbolic link"); the mounts before it unwind.
func TestConformanceCheckPathSymlink(t *testing.T) {
	g := freshPool(t, "master")
	g.emuRoot("/jail/t")
	g.sh(`mkdir -p /jail/t/a /jail/elsewhere/x && ln -s /jail/elsewhere /jail/t/lnk
printf 'tmpfs /jail/t/a tmpfs rw,size=1m 0 0\ntmpfs /jail/t/lnk/x tmpfs rw,size=1m 0 0\n' > /etc/fstab.t`)
	conf := g.emuConf("t", `	path = "/jail/t";
	mount.fstab = "/etc/fstab.t";
	exec.start = "/bin/true";
`)
	r := g.run("jail", "-f", conf, "-c", "t")
	if r.code != 1 || r.stderr != "jail: t: mount.fstab: /jail/t/lnk is a symbolic link\n" {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
	if ms := append(g.jailMounts("/jail/t"), g.jailMounts("/jail/elsewhere")...); len(ms) != 0 {
		t.Errorf("still mounted: %v", ms)
	}
}

// Messages and exit codes for a jail that does not exist: jail.c (JF_STOP,
// jail_quoted_warnx "\"%s\" not found"), jls.c and jexec.c (errx(1, jail_errmsg) with the
// kernel's "jail \"%s\" not found").
func TestConformanceNotFound(t *testing.T) {
	g := freshPool(t, "master")
	g.emuRoot("/jail/vhost1")
	conf := g.emuConf("vhost1", "\tpath = \"/jail/vhost1\";\n\tpersist;\n")
	for _, c := range []struct {
		argv   []string
		stderr string
	}{
		{[]string{"jail", "-f", conf, "-r", "vhost1"}, "jail: \"vhost1\" not found\n"},
		{[]string{"jls", "-j", "vhost1", "jid", "name", "path"}, "jls: jail \"vhost1\" not found\n"},
		{[]string{"jexec", "vhost1", "/bin/true"}, "jexec: jail \"vhost1\" not found\n"},
	} {
		r := g.run(c.argv...)
		if r.code != 1 || r.stderr != c.stderr || r.stdout != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 1, stderr %q", c.argv, r.code, r.stdout, r.stderr, c.stderr)
		}
	}
	// and found: jls prints the parameters asked for, space separated (jls.c print_jail)
	g.must("jail", "-f", conf, "-c", "vhost1")
	out := g.must("jls", "-j", "vhost1", "jid", "name", "path")
	if !regexp.MustCompile(`^[0-9]+ vhost1 /jail/vhost1\n$`).MatchString(out) {
		t.Errorf("jls -j vhost1 jid name path: %q", out)
	}
	r := g.run("jail", "-f", conf, "-c", "vhost1")
	if r.code != 1 || r.stderr != "jail: \"vhost1\" already exists\n" {
		t.Errorf("second jail -c: exit %d, stderr %q", r.code, r.stderr)
	}
	g.must("jail", "-f", conf, "-r", "vhost1")
}

// exec.clean (command.c run_command): the environment is emptied but for TERM, then
// setusercontext(LOGIN_SETPATH|LOGIN_SETENV) from root's login class, then USER, HOME and
// SHELL from the passwd file (the jail's for exec.start), and the command runs in HOME.
// Without it commands keep jail(8)'s environment and working directory.
func TestConformanceEnvironment(t *testing.T) {
	g := freshPool(t, "master")
	g.emuRoot("/jail/t")
	// a list value: each string is one command (config.c), run in order
	body := `	path = "/jail/t";
	exec.consolelog = "/var/log/jail_t_console.log";
	exec.prestart = "/usr/bin/env", "/bin/pwd";
	exec.start = "/bin/env", "/bin/pwd";
`
	sorted := func(s string) string {
		l := strings.Split(strings.TrimSpace(s), "\n")
		sort.Strings(l)
		return strings.Join(l, " ")
	}
	// run returns what exec.prestart (jail(8)'s stdout) and exec.start (the console log)
	// printed, sorted
	run := func(conf string) (pre, start string) {
		out := g.sh(`rm -f /var/log/jail_t_console.log; cd /tmp && env -i FOO=bar TERM=vt100 PATH=/usr/sbin:/usr/bin:/sbin:/bin jail -f ` + conf + ` -c t`)
		return sorted(strings.TrimSuffix(out, "t: created\n")), sorted(g.must("cat", "/var/log/jail_t_console.log"))
	}
	pre, start := run(g.emuConf("t", body))
	want := "/tmp FOO=bar PATH=/usr/sbin:/usr/bin:/sbin:/bin TERM=vt100"
	if pre != want {
		t.Errorf("exec.prestart without exec.clean: %q, want %q", pre, want)
	}
	if want = "/ FOO=bar PATH=/usr/sbin:/usr/bin:/sbin:/bin TERM=vt100"; start != want {
		t.Errorf("exec.start without exec.clean: %q, want %q", start, want)
	}
	pre, start = run(g.emuConf("t", body+"\texec.clean;\n"))
	const path = "PATH=/sbin:/bin:/usr/sbin:/usr/bin:/usr/local/sbin:/usr/local/bin:/root/bin"
	want = "/root BLOCKSIZE=K HOME=/root LANG=C.UTF-8 MM_CHARSET=UTF-8 " + path + " SHELL=/bin/bash TERM=vt100 USER=root"
	if pre != want {
		t.Errorf("exec.prestart with exec.clean (the host's passwd):\n got %q\nwant %q", pre, want)
	}
	want = "/root BLOCKSIZE=K HOME=/root LANG=C.UTF-8 MM_CHARSET=UTF-8 " + path + " SHELL=/bin/sh TERM=vt100 USER=root"
	if start != want {
		t.Errorf("exec.start with exec.clean (the jail's passwd):\n got %q\nwant %q", start, want)
	}
}

// mdconfig.c: -s without a suffix counts 512-byte sectors (DEV_BSIZE), "m" MiB; -l -v
// prints name, type, humanize_number size ("%6s"), file, label, options (md_list,
// print_options; swap keeps no options, md.c mdcreate_swap); -d of a unit in use fails
// with EBUSY (md.c kern_mddetach_locked). newfs + mount give a "ufs" line in mount -p with
// pass 2 2 (mount.c putfsent).
func TestConformanceMdconfig(t *testing.T) {
	g := freshPool(t, "master")
	if u := g.must("mdconfig", "-a", "-t", "swap", "-s", "32", "-L", "rollout:sectors"); u != "md0\n" {
		t.Fatalf("first unit: %q", u)
	}
	if u := g.must("mdconfig", "-a", "-t", "swap", "-s", "32m", "-L", "rollout:t"); u != "md1\n" {
		t.Fatalf("second unit: %q", u)
	}
	want := "md0\tswap\t   16K\t-\trollout:sectors\t\nmd1\tswap\t   32M\t-\trollout:t\t\n"
	if got := g.must("mdconfig", "-l", "-v"); got != want {
		t.Errorf("mdconfig -l -v:\n got %q\nwant %q", got, want)
	}
	if got := g.must("mdconfig", "-l"); got != "md0 md1 \n" {
		t.Errorf("mdconfig -l: %q", got)
	}
	g.must("newfs", "-U", "/dev/md1")
	g.sh("mkdir -p /jail/t/etc && mount /dev/md1 /jail/t/etc && echo x > /jail/t/etc/f")
	if !strings.Contains(g.must("mount", "-p"), "/dev/md1\t\t/jail/t/etc\t\tufs\trw\t\t2 2\n") {
		t.Errorf("mount -p has no ufs line for md1:\n%s", g.must("mount", "-p"))
	}
	r := g.run("mdconfig", "-d", "-u", "1")
	if r.code != 1 || r.stderr != "mdconfig: ioctl(/dev/mdctl): Device busy\n" {
		t.Errorf("mdconfig -d of a mounted unit: exit %d, stderr %q", r.code, r.stderr)
	}
	g.must("umount", "/jail/t/etc")
	g.must("mdconfig", "-d", "-u", "1")
	g.must("mdconfig", "-d", "-u", "md0")
	if got := g.must("mdconfig", "-l"); got != "" {
		t.Errorf("mdconfig -l after -d: %q", got)
	}
	if r := g.run("mdconfig", "-d", "-u", "0"); r.code != 1 || r.stderr != "mdconfig: ioctl(/dev/mdctl): No such file or directory\n" {
		t.Errorf("mdconfig -d of a free unit: exit %d, stderr %q", r.code, r.stderr)
	}
}

// mount -p (sbin/mount/mount.c putfsent): device and mount point tab-padded to 24 columns
// (one space when longer), type, options tab-padded to 8, dump and pass; nullfs shows the
// spec it was mounted from, devfs "devfs". Any number of jails run on one snapshot through
// nullfs while .zfs/snapshot/N stays readable, also after a zfs destroy of it failed
// (busy) and after zfs hold/release: FreeBSD's behaviour, which Linux ZFS does not give
// by itself (openzfs/zfs#9958).
func TestConformanceMountPAndSnapshots(t *testing.T) {
	g := freshPool(t, "master")
	g.makeProto("1")
	g.sh(`zfs snapshot -r zpool/proto@1
for v in a b; do
  zfs create -p -o mountpoint=legacy zpool/$v/cfg
  mkdir -p /jail/$v
  printf '/jail/proto/.zfs/snapshot/1 /jail/%s nullfs ro 0 0\nzpool/%s/cfg /jail/%s/cfg zfs rw 0 0\n' $v $v $v > /etc/fstab.$v
done`)
	var confs []string
	for _, v := range []string{"a", "b"} {
		c := g.emuConf(v, "\tpath = \"/jail/"+v+"\";\n\tmount.fstab = \"/etc/fstab."+v+"\";\n\tmount.devfs;\n\tpersist;\n")
		g.must("jail", "-f", c, "-c", v)
		confs = append(confs, c)
	}
	mp := g.must("mount", "-p")
	for _, line := range []string{
		"/jail/proto/.zfs/snapshot/1 /jail/a\t\t\tnullfs\tro\t\t0 0\n",
		"zpool/a/cfg\t\t/jail/a/cfg\t\tzfs\trw,nfsv4acls \t0 0\n",
		"devfs\t\t\t/jail/a/dev\t\tdevfs\trw\t\t0 0\n",
		"/jail/proto/.zfs/snapshot/1 /jail/b\t\t\tnullfs\tro\t\t0 0\n",
		"zpool/proto\t\t/jail/proto\t\tzfs\trw,nfsv4acls \t0 0\n",
	} {
		if !strings.Contains(mp, line) {
			t.Errorf("mount -p lacks %q:\n%s", line, mp)
		}
	}
	if strings.Contains(mp, "/jail/proto/.zfs/snapshot/1/") {
		t.Errorf("mounts below a jail's root appear below the snapshot (propagation):\n%s", mp)
	}
	read := func(when string) {
		t.Helper()
		for _, p := range []string{"/jail/proto/.zfs/snapshot/1/VERSION", "/jail/a/VERSION", "/jail/b/VERSION"} {
			if r := g.run("cat", p); r.code != 0 || r.stdout != "1\n" {
				t.Errorf("%s: cat %s: exit %d %q %q", when, p, r.code, r.stdout, r.stderr)
			}
		}
	}
	read("two jails on @1")
	if r := g.run("touch", "/jail/a/x"); r.code == 0 {
		t.Errorf("a nullfs ro mount is writable")
	}
	if r := g.run("zfs", "destroy", "zpool/proto@1"); r.code == 0 || !strings.Contains(r.stderr, "dataset is busy") {
		t.Errorf("zfs destroy of a snapshot jails run on: exit %d, %q", r.code, r.stderr)
	}
	read("after a failed zfs destroy")
	g.must("zfs", "hold", "-r", "keep", "zpool/proto@1")
	g.must("zfs", "release", "-r", "keep", "zpool/proto@1")
	read("after zfs hold and release")
	g.must("jail", "-f", confs[0], "-r", "a")
	g.must("jail", "-f", confs[0], "-c", "a")
	read("after restarting a")
	for i, v := range []string{"a", "b"} {
		g.must("jail", "-f", confs[i], "-r", v)
	}
	if ms := g.jailMounts("/jail/a"); len(ms) != 0 {
		t.Errorf("mounted after jail -r: %v", ms)
	}
}

// kern_jail.c: a jail without persist is removed when its last process exits; jail(8)
// creates it with persist while commands remain and clears it after exec.poststart
// (jail.c create_jail dopersist, clear_persist).
func TestConformanceNonPersist(t *testing.T) {
	g := freshPool(t, "master")
	g.emuRoot("/jail/t")
	conf := g.emuConf("t", `	path = "/jail/t";
	exec.consolelog = "/var/log/jail_t_console.log";
	exec.start = "/bin/true";
`)
	g.must("jail", "-f", conf, "-c", "t")
	if r := g.run("jls", "-j", "t", "jid"); r.code != 1 {
		t.Errorf("a jail whose exec.start left no process still exists: %q", r.stdout)
	}
	conf = g.emuConf("t", `	path = "/jail/t";
	mount.devfs;
	exec.consolelog = "/var/log/jail_t_console.log";
	exec.start = "/bin/sh -c '/bin/sleep 4 &'";
`)
	g.must("jail", "-f", conf, "-c", "t")
	if r := g.run("jls", "-j", "t", "name"); r.code != 0 || r.stdout != "t\n" {
		t.Errorf("jail with a running process: jls exit %d %q", r.code, r.stdout)
	}
	g.sh(`for i in $(seq 40); do jls -j t >/dev/null 2>&1 || exit 0; sleep 0.5; done; echo "jail t outlived its last process" >&2; exit 1`)
	conf = g.emuConf("t", `	path = "/jail/t";
	exec.start = "/bin/true";
	persist;
`)
	g.must("jail", "-f", conf, "-c", "t")
	if r := g.run("jls", "-j", "t", "name"); r.code != 0 {
		t.Errorf("a persistent jail without processes is gone")
	}
	g.must("jail", "-f", conf, "-r", "t")
}

// exec.timeout (command.c next_proc / finish_command): a command still running after the
// timeout is reported "NAME: COMMAND: timed out" and the jail fails and unwinds. jail(8)
// does not kill the command itself; an exec.start command dies with the jail.
func TestConformanceExecTimeout(t *testing.T) {
	g := freshPool(t, "master")
	g.emuRoot("/jail/t")
	g.sh(`mkdir -p /jail/t/a && echo 'tmpfs /jail/t/a tmpfs rw,size=1m 0 0' > /etc/fstab.t`)
	conf := g.emuConf("t", `	path = "/jail/t";
	mount.fstab = "/etc/fstab.t";
	exec.consolelog = "/var/log/jail_t_console.log";
	exec.timeout = 2;
	exec.start = "/bin/sleep 30";
`)
	out := g.sh(`s=$(date +%s); rc=0; jail -f ` + conf + ` -c t 2>/root/err || rc=$?; echo "rc=$rc secs=$(( $(date +%s) - s ))"`)
	var rc, secs int
	last := strings.Split(strings.TrimSpace(out), "\n")
	if _, err := fmt.Sscanf(last[len(last)-1], "rc=%d secs=%d", &rc, &secs); err != nil {
		t.Fatalf("%q: %v", out, err)
	}
	if rc != 1 || secs > 12 {
		t.Errorf("jail -c with a command past exec.timeout: exit %d after %ds", rc, secs)
	}
	if e := g.must("cat", "/root/err"); e != "jail: t: /bin/sleep 30: timed out\n" {
		t.Errorf("stderr %q", e)
	}
	if ms := g.jailMounts("/jail/t"); len(ms) != 0 {
		t.Errorf("still mounted: %v", ms)
	}
	if r := g.shRun("pgrep -x sleep"); r.code == 0 {
		t.Errorf("the jail's sleep survived the failed create: %s", r.stdout)
	}
}

// lockf(1): usr.bin/lockf/lockf.c opens the file with O_EXLOCK (flock(2), so it excludes
// rollout's own flock lock), O_NONBLOCK for -t 0; a held lock exits EX_TEMPFAIL (75) with
// "FILE: already locked" unless -s; a file it cannot open exits EX_CANTCREAT (73) with
// "cannot open FILE: ERROR"; -k keeps the file; otherwise the command's status.
func TestConformanceLockf(t *testing.T) {
	g := freshPool(t, "master")
	g.sh(`mkdir -p /tmp/lk && rm -f /tmp/lk/lock`)
	if r := g.shRun(`/usr/bin/lockf -k -t 0 /tmp/lk/lock /bin/sh -c 'exit 7'`); r.code != 7 {
		t.Errorf("free lock: exit %d, want the command's 7: %s", r.code, r.stderr)
	}
	g.must("test", "-f", "/tmp/lk/lock") // -k kept it
	if r := g.shRun(`/usr/bin/lockf -t 0 /tmp/lk/lock /bin/true; test ! -e /tmp/lk/lock`); r.code != 0 {
		t.Errorf("without -k the file must be gone: exit %d %s", r.code, r.stderr)
	}
	// held by another process's flock, as a running rollout holds its lock
	g.sh(`setsid -f flock /tmp/lk/lock sleep 30 </dev/null >/dev/null 2>&1
for i in $(seq 50); do flock -n /tmp/lk/lock true || exit 0; sleep 0.1; done; exit 1`)
	r := g.shRun(`/usr/bin/lockf -k -t 0 /tmp/lk/lock /bin/true`)
	if r.code != 75 || strings.TrimSpace(r.stderr) != "lockf: /tmp/lk/lock: already locked" {
		t.Errorf("held lock: exit %d, %q; want 75 and \"lockf: /tmp/lk/lock: already locked\"", r.code, r.stderr)
	}
	if r := g.shRun(`/usr/bin/lockf -k -s -t 0 /tmp/lk/lock /bin/true`); r.code != 75 || r.stderr != "" {
		t.Errorf("held lock with -s: exit %d, %q", r.code, r.stderr)
	}
	r = g.shRun(`/usr/bin/lockf -k -s -t 0 /tmp/lk/nodir/lock /bin/true`)
	if r.code != 73 || strings.TrimSpace(r.stderr) != "lockf: cannot open /tmp/lk/nodir/lock: No such file or directory" {
		t.Errorf("missing directory: exit %d, %q", r.code, r.stderr)
	}
	g.run("pkill", "-f", "[f]lock /tmp/lk/lock")
}

// rctl(8) on a jail (usr.bin/rctl/rctl.c, sys/kern/kern_rctl.c): a rule added by
// exec.created holds for the jail's processes (memoryuse deny: here cgroup v2's memory.max,
// so the allocating process is killed rather than paged out); rules are listed as the kernel
// prints them (amount expanded); a deny rule of an undeniable resource is refused
// (rctl_rule_add: EOPNOTSUPP); rctl -r takes the jail's rules off, and with none left fails
// with ESRCH ("No such process"); the jail's cgroup goes with the jail.
func TestConformanceRctl(t *testing.T) {
	g := freshPool(t, "master")
	g.emuRoot("/jail/t")
	conf := g.emuConf("t", `	path = "/jail/t";
	mount.devfs;
	persist;
	exec.consolelog = "/var/log/jail_t_console.log";
	exec.created = "/usr/bin/rctl -a jail:t:memoryuse:deny=64M";
	exec.start = "/bin/true";
`)
	g.must("jail", "-f", conf, "-c", "t")
	if got := g.must("rctl", "jail:t"); got != "jail:t:memoryuse:deny=67108864\n" {
		t.Errorf("rctl jail:t = %q, want jail:t:memoryuse:deny=67108864", got)
	}
	if got := strings.TrimSpace(g.must("cat", "/sys/fs/cgroup/rollout-jail-t/memory.max")); got != "67108864" {
		t.Errorf("memory.max = %q", got)
	}
	alloc := func(size string) result { return g.allocIn("t", size) }
	if r := alloc("8M"); r.code != 0 {
		t.Errorf("8M under a 64M limit: exit %d %s", r.code, r.stderr)
	}
	if r := alloc("128M"); r.code == 0 {
		t.Errorf("128M allocated in a jail with memoryuse deny=64M")
	}
	r := g.run("rctl", "-a", "jail:t:cputime:deny=10")
	if r.code != 1 || strings.TrimSpace(r.stderr) != "rctl: failed to add rule 'jail:t:cputime:deny=10': Operation not supported" {
		t.Errorf("deny of cputime: exit %d %q", r.code, r.stderr)
	}
	g.must("rctl", "-r", "jail:t")
	if got := g.must("rctl", "jail:t"); got != "" {
		t.Errorf("rules left after rctl -r: %q", got)
	}
	if r := alloc("128M"); r.code != 0 {
		t.Errorf("128M after rctl -r: exit %d %s", r.code, r.stderr)
	}
	r = g.run("rctl", "-r", "jail:t")
	if r.code != 1 || strings.TrimSpace(r.stderr) != "rctl: failed to remove rule 'jail:t': No such process" {
		t.Errorf("rctl -r with no rules: exit %d %q", r.code, r.stderr)
	}
	// a rule outlives its jail and applies when a jail of that name is created again
	g.must("rctl", "-a", "jail:t:maxproc:deny=5")
	g.must("jail", "-f", conf, "-r", "t")
	if r := g.run("test", "-e", "/sys/fs/cgroup/rollout-jail-t"); r.code == 0 {
		t.Error("the jail's cgroup outlived the jail")
	}
	if got := g.must("rctl", "jail:t"); got != "jail:t:maxproc:deny=5\n" {
		t.Errorf("rules after the jail's removal: %q", got)
	}
	g.must("jail", "-f", conf, "-c", "t")
	if got := strings.TrimSpace(g.must("cat", "/sys/fs/cgroup/rollout-jail-t/pids.max")); got != "5" {
		t.Errorf("pids.max = %q, want 5", got)
	}
	// the jail's processes count, the emulation's holder does not: a shell and 4 children are
	// the 5 allowed, the 5th child is refused (kern_racct.c: fork fails with EAGAIN)
	g.run("jexec", "t", "/bin/sh", "-c", "for i in 1 2 3 4 5 6 7; do /bin/sleep 60 </dev/null >/dev/null 2>&1 & done; true")
	if ev := g.must("cat", "/sys/fs/cgroup/rollout-jail-t/pids.events"); !strings.HasPrefix(ev, "max ") || strings.HasPrefix(ev, "max 0") {
		t.Errorf("7 children under maxproc deny=5, yet no fork was refused: pids.events %q", ev)
	}
	if n := len(strings.Fields(g.must("cat", "/sys/fs/cgroup/rollout-jail-t/cgroup.procs"))); n != 4 {
		t.Errorf("%d processes in the jail after its shell exited, want its 4 children", n)
	}
	g.must("jail", "-f", conf, "-r", "t")
	g.must("rctl", "-r", "jail:t")
}
