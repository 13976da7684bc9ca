//go:build linux

package main

// mount(8) -p, mount_nullfs(8), devfs, umount(8) and the ifconfig(8) alias forms.
// Everything else mount and umount are asked passes through to util-linux.

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

const (
	utilMount  = "/usr/bin/mount"
	utilUmount = "/usr/bin/umount"
)

// passThrough execs a util-linux program with args.
func passThrough(prog string, args []string) int {
	err := syscall.Exec(prog, append([]string{filepath.Base(prog)}, args...), os.Environ())
	fmt.Fprintf(os.Stderr, "%s: exec %s: %v\n", filepath.Base(prog), prog, err)
	return 1
}

// mountMain: "mount -p" prints the table (sbin/mount/mount.c putfsent); "-t nullfs",
// "-t devfs", "-t procfs" and "-t ufs" are FreeBSD's types; the rest is util-linux's.
func mountMain(args []string) int {
	if len(args) == 1 && args[0] == "-p" {
		return mountP()
	}
	var fstype, opts string
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-t" && i+1 < len(args):
			fstype = args[i+1]
			i++
		case strings.HasPrefix(a, "-t") && len(a) > 2:
			fstype = a[2:]
		case a == "-o" && i+1 < len(args):
			opts = joinOpts(opts, args[i+1])
			i++
		case strings.HasPrefix(a, "-o") && len(a) > 2:
			opts = joinOpts(opts, a[2:])
		default:
			rest = append(rest, a)
		}
	}
	switch fstype {
	case "nullfs":
		if len(rest) != 2 {
			fmt.Fprintln(os.Stderr, "usage: mount_nullfs [-o options] target mount-point")
			return 1
		}
		return nullfsMount("mount_nullfs", rest[0], rest[1], opts)
	case "devfs":
		if len(rest) != 2 {
			fmt.Fprintln(os.Stderr, "usage: mount -t devfs [-o options] devfs mount-point")
			return 1
		}
		return devfsMount(rest[1], opts)
	case "procfs":
		fstype = "proc"
	case "fdescfs":
		fmt.Fprintln(os.Stderr, "mount: fdescfs: not emulated on Linux")
		return 1
	case "ufs":
		// newfs(8) made an ext2 file system: let util-linux recognize it
		fstype = ""
	}
	out := []string{}
	if fstype != "" {
		out = append(out, "-t", fstype)
	}
	if opts != "" {
		out = append(out, "-o", opts)
	}
	return passThrough(utilMount, append(out, rest...))
}

func joinOpts(a, b string) string {
	if a == "" {
		return b
	}
	return a + "," + b
}

// mountNullfsMain is /sbin/mount.nullfs, the helper util-linux's mount runs for
// "mount -t nullfs SPEC DIR": mount.nullfs SPEC DIR [-sfnv] [-o OPTS] [-t TYPE].
func mountNullfsMain(args []string) int {
	var pos []string
	var opts string
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-o" && i+1 < len(args):
			opts = joinOpts(opts, args[i+1])
			i++
		case a == "-t" || a == "-N":
			i++
		case strings.HasPrefix(a, "-"):
		default:
			pos = append(pos, a)
		}
	}
	if len(pos) != 2 {
		fmt.Fprintln(os.Stderr, "usage: mount_nullfs [-o options] target mount-point")
		return 1
	}
	return nullfsMount("mount_nullfs", pos[0], pos[1], opts)
}

// nullfsMount stands in for sbin/mount_nullfs/mount_nullfs.c: a bind mount, made
// read-only per mount point with "ro". The spec is recorded so that mount -p shows
// "SPEC DIR nullfs". A spec inside .zfs/snapshot/N is first looked up, which automounts
// the snapshot; with zfs_expire_snapshot=0 (set by the lab) that automount stays, so the
// snapshot is mounted once and every jail binds the same mount: Linux then keeps serving
// .zfs/snapshot/N, which a second mount of DATASET@N would break (openzfs/zfs#9958).
func nullfsMount(prog, spec, dir, opts string) int {
	ro := false
	for _, o := range strings.Split(opts, ",") {
		switch o {
		case "ro", "rdonly":
			ro = true
		case "rw", "":
		}
	}
	st, err := os.Stat(spec)
	if err != nil {
		warnx(prog, "%s: %s", spec, errno(err))
		return 1
	}
	if !st.IsDir() {
		// mount_nullfs.c: the target must be a directory
		warnx(prog, "%s: %s", spec, "Not a directory")
		return 1
	}
	if _, err := os.Stat(dir); err != nil {
		warnx(prog, "%s: %s", dir, errno(err))
		return 1
	}
	if err := unix.Mount(spec, dir, "", unix.MS_BIND, ""); err != nil {
		warnx(prog, "%s: %s", dir, errno(err))
		return 1
	}
	// a bind of a shared mount joins its peer group: mounts made below the jail's root
	// would then appear below the snapshot too. FreeBSD has no mount propagation.
	if err := unix.Mount("", dir, "", unix.MS_PRIVATE, ""); err != nil {
		_ = unix.Unmount(dir, 0)
		warnx(prog, "%s: %s", dir, errno(err))
		return 1
	}
	if ro {
		if err := unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
			_ = unix.Unmount(dir, 0)
			warnx(prog, "%s: %s", dir, errno(err))
			return 1
		}
	}
	if err := recordMount(dir, "nullfs", spec); err != nil {
		warnx(prog, "%s: %v", dir, err)
	}
	if strings.Contains(spec, "/.zfs/snapshot/") {
		if err := startPin(spec, dir); err != nil {
			warnx(prog, "%s: pin %s: %v", dir, spec, err)
		}
	}
	return 0
}

// startPin starts a process that keeps its working directory in the automounted
// .zfs/snapshot/N for as long as the bind mount at dir exists. zfs destroy of the
// snapshot (zfs_ioc_destroy -> zfs_unmount_snap) first unmounts that automount; with the
// binds still holding the snapshot's superblock, Linux could then never automount it
// again (the new mount returns EBUSY and the lookup ELOOP: openzfs/zfs#9958). A busy
// automount is not unmounted, so .zfs/snapshot/N keeps working, as on FreeBSD.
func startPin(spec, dir string) error {
	ms, err := mountInfo()
	if err != nil {
		return err
	}
	m, ok := topMountAt(ms, dir)
	if !ok {
		return fmt.Errorf("%s: not mounted", dir)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	c := &exec.Cmd{Path: self, Args: []string{pinName, spec, dir, strconv.Itoa(m.ID), m.Dev},
		Dir: "/", SysProcAttr: &syscall.SysProcAttr{Setsid: true}}
	return c.Start()
}

// pinMain holds spec (its cwd) until the mount ID at dir is gone; it wakes on mount
// table changes (poll(2) POLLPRI on /proc/self/mountinfo). Every pin wakes on every mount
// and unmount of the host, so a wake must be cheap: while stat(dir) still shows the pinned
// snapshot's device the bind is there (nothing is mounted over a jail's root or its
// conf/base/etc), and only a change reads the whole mount table. Polling re-arms the event by
// itself (proc_namespace.c mounts_poll), so nothing is read to wait again. Reading the table at
// every wake in every pin took the CPU of a lab guest with a hundred jails.
func pinMain(args []string) int {
	if len(args) != 4 {
		return 2
	}
	spec, dir, id, dev := args[0], args[1], args[2], args[3]
	if err := os.Chdir(spec); err != nil {
		return 1
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return 1
	}
	defer f.Close()
	for {
		if !sameDev(dir, dev) {
			ms, err := mountInfo()
			if err != nil {
				return 1
			}
			present := false
			for _, m := range ms {
				if strconv.Itoa(m.ID) == id && m.Target == dir && m.Dev == dev {
					present = true
				}
			}
			if !present {
				return 0
			}
		}
		fds := []unix.PollFd{{Fd: int32(f.Fd()), Events: unix.POLLPRI | unix.POLLERR}}
		if _, err := unix.Poll(fds, 60000); err != nil && err != unix.EINTR {
			return 1
		}
	}
}

// sameDev reports whether dir is on the device dev ("major:minor", as mountinfo writes it).
func sameDev(dir, dev string) bool {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return false
	}
	return fmt.Sprintf("%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev)) == dev
}

// devfsMount stands in for devfs(5) with ruleset 4 (devfsrules_jail, etc/defaults/
// devfs.rules): a small tmpfs at DIR with the nodes that ruleset unhides that Linux has
// (null, zero, random, urandom, tty) and the fd links. Rulesets themselves are not emulated.
func devfsMount(dir, opts string) int {
	_ = opts // ruleset=N is accepted; see above
	if err := unix.Mount("devfs", dir, "tmpfs", 0, "size=64k,mode=0755"); err != nil {
		warnx("mount", "devfs: %s: %s", dir, errno(err))
		return 1
	}
	nodes := []struct {
		name         string
		major, minor uint32
	}{{"null", 1, 3}, {"zero", 1, 5}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}}
	for _, n := range nodes {
		if err := unix.Mknod(filepath.Join(dir, n.name), unix.S_IFCHR|0o666, int(unix.Mkdev(n.major, n.minor))); err != nil {
			warnx("mount", "devfs: %s/%s: %s", dir, n.name, errno(err))
		}
		_ = os.Chmod(filepath.Join(dir, n.name), 0o666)
	}
	for i, n := range []string{"stdin", "stdout", "stderr"} {
		_ = os.Symlink("/dev/fd/"+strconv.Itoa(i), filepath.Join(dir, n))
	}
	if err := recordMount(dir, "devfs", "devfs"); err != nil {
		warnx("mount", "devfs: %v", err)
	}
	return 0
}

// hidden are Linux pseudo file systems FreeBSD has no counterpart of in mount -p.
func hidden(fstype string) bool {
	switch fstype {
	case "sysfs", "proc", "devpts", "securityfs", "cgroup", "cgroup2", "pstore", "bpf",
		"debugfs", "tracefs", "mqueue", "hugetlbfs", "configfs", "fusectl", "binfmt_misc",
		"autofs", "efivarfs", "rpc_pipefs", "nsfs", "ramfs":
		return true
	}
	return false
}

// mountP prints the mount table as sbin/mount/mount.c putfsent does: device and mount
// point padded with tabs to 24 columns (a space when longer), type, "rw" or nothing then
// flags2opts' options (tab-padded to 8), then dump and pass from /etc/fstab (getfsspec,
// getfsfile), else "1 1" for a ufs root, "2 2" for other ufs, "0 0" for the rest.
func mountP() int {
	ms, err := mountInfo()
	if err != nil {
		warnx("mount", "%v", err)
		return 1
	}
	pruneMountRecords(ms)
	fstab := readFstab()
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	for _, m := range ms {
		if hidden(m.FSType) {
			continue
		}
		fstype := freebsdType(m)
		spec := m.Source
		if r, ok := recordFor(m); ok {
			spec = r.Spec
		} else if fstype == "devfs" {
			spec = "devfs"
		}
		opts := freebsdOpts(m, fstype)
		w.WriteString(pad(spec) + pad(m.Target) + fstype + "\t" + opts)
		if len(opts) < 8 {
			w.WriteString("\t")
		} else {
			w.WriteString(" ")
		}
		freq, pass := "0", "0"
		if e, ok := fstab[spec]; ok {
			freq, pass = e[0], e[1]
		} else if e, ok := fstab[m.Target]; ok {
			freq, pass = e[0], e[1]
		} else if fstype == "ufs" {
			freq, pass = "2", "2"
			if m.Target == "/" {
				freq, pass = "1", "1"
			}
		}
		fmt.Fprintf(w, "\t%s %s\n", freq, pass)
	}
	return 0
}

func pad(s string) string {
	l := len(s)
	out := s
	if l < 8 {
		out += "\t"
	}
	if l < 16 {
		out += "\t"
	}
	if l < 24 {
		out += "\t"
	} else {
		out += " "
	}
	return out
}

// freebsdOpts is putfsent's "rw" (unless read-only) then flags2opts in its order, from the
// Linux per-mount flags; ZFS on FreeBSD always sets MNT_NFS4ACLS.
func freebsdOpts(m mountEntry, fstype string) string {
	has := map[string]bool{}
	for _, o := range strings.Split(m.Opts, ",") {
		has[o] = true
	}
	for _, o := range strings.Split(m.Super, ",") {
		if o == "ro" || o == "sync" {
			has[o] = true
		}
	}
	var out []string
	if !has["ro"] {
		out = append(out, "rw")
	} else {
		out = append(out, "ro")
	}
	for _, o := range []string{"sync", "noexec", "nosuid", "noatime"} {
		if has[o] {
			out = append(out, o)
		}
	}
	if fstype == "zfs" {
		out = append(out, "nfsv4acls")
	}
	return strings.Join(out, ",")
}

// readFstab maps spec and mount point to [freq, passno] (getfsspec/getfsfile).
func readFstab() map[string][2]string {
	out := map[string][2]string{}
	b, err := os.ReadFile("/etc/fstab")
	if err != nil {
		return out
	}
	for _, ln := range strings.Split(string(b), "\n") {
		f := strings.Fields(ln)
		if len(f) < 2 || strings.HasPrefix(f[0], "#") {
			continue
		}
		e := [2]string{"0", "0"}
		if len(f) >= 5 {
			e[0] = f[4]
		}
		if len(f) >= 6 {
			e[1] = f[5]
		}
		if _, ok := out[f[0]]; !ok {
			out[f[0]] = e
		}
		if _, ok := out[f[1]]; !ok {
			out[f[1]] = e
		}
	}
	return out
}

// umountMain is sbin/umount/umount.c for "umount [-f] [-t type] DIR|SPEC": one unmount(2),
// FreeBSD's messages ("unmount of DIR failed: Device busy", "not a file system root
// directory"); other forms pass through to util-linux.
func umountMain(args []string) int {
	var force bool
	var pos []string
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-f":
			force = true
		case a == "-t" && i+1 < len(args):
			i++ // umount.c -t only filters -a; a named file system is unmounted anyway
		case strings.HasPrefix(a, "-"):
			return passThrough(utilUmount, args)
		default:
			pos = append(pos, a)
		}
	}
	if len(pos) != 1 {
		return passThrough(utilUmount, args)
	}
	ms, err := mountInfo()
	if err != nil {
		warnx("umount", "%v", err)
		return 1
	}
	target := pos[0]
	if real, err := filepath.EvalSymlinks(target); err == nil {
		target = real
	}
	m, ok := topMountAt(ms, target)
	if !ok {
		// a device or spec: the newest mount of it (umount.c getmntentry by name)
		for _, x := range ms {
			if x.Source == pos[0] {
				m, ok = x, true
			} else if r, rok := recordFor(x); rok && r.Spec == pos[0] {
				m, ok = x, true
			}
		}
	}
	if !ok {
		warnx("umount", "%s: not a file system root directory", pos[0])
		return 1
	}
	flags := 0
	if force {
		flags = unix.MNT_FORCE
	}
	if err := unix.Unmount(m.Target, flags); err != nil {
		warnx("umount", "unmount of %s failed: %s", m.Target, errno(err))
		return 1
	}
	os.Remove(filepath.Join(mountsDir, strconv.Itoa(m.ID)+".json"))
	return 0
}

// ifconfigMain handles the alias forms jail(8) and rollout run (command.c run_command
// IP__IP4_IFADDR): ifconfig IFACE inet ADDR [netmask MASK] alias|-alias, and ADDR/LEN.
// Errors use ifconfig's words: "ioctl (SIOCAIFADDR): File exists", "ioctl (SIOCDIFADDR):
// Can't assign requested address".
func ifconfigMain(args []string) int {
	if len(args) < 4 || args[1] != "inet" {
		fmt.Fprintln(os.Stderr, "ifconfig: only 'ifconfig IFACE inet ADDR [netmask MASK] alias|-alias' is emulated")
		return 1
	}
	iface, addr, op := args[0], args[2], args[len(args)-1]
	prefix := 32
	if a, l, ok := strings.Cut(addr, "/"); ok {
		addr = a
		n, err := strconv.Atoi(l)
		if err != nil {
			warnx("ifconfig", "%s: bad value", l)
			return 1
		}
		prefix = n
	}
	for i := 3; i+1 < len(args); i++ {
		if args[i] == "netmask" {
			n, err := maskLen(args[i+1])
			if err != nil {
				warnx("ifconfig", "%s: bad value", args[i+1])
				return 1
			}
			prefix = n
		}
	}
	var ipArgs []string
	var ioctl string
	switch op {
	case "alias", "add":
		ipArgs, ioctl = []string{"addr", "add", fmt.Sprintf("%s/%d", addr, prefix), "dev", iface}, "SIOCAIFADDR"
	case "-alias", "delete":
		// SIOCDIFADDR removes the address whatever its mask: find the prefix it has
		if out, err := exec.Command("/usr/sbin/ip", "-o", "-4", "addr", "show", "dev", iface).Output(); err == nil {
			for _, l := range strings.Split(string(out), "\n") {
				f := strings.Fields(l)
				for k := 0; k+1 < len(f); k++ {
					if a, l, ok := strings.Cut(f[k+1], "/"); f[k] == "inet" && ok && a == addr {
						if n, err := strconv.Atoi(l); err == nil {
							prefix = n
						}
					}
				}
			}
		}
		ipArgs, ioctl = []string{"addr", "del", fmt.Sprintf("%s/%d", addr, prefix), "dev", iface}, "SIOCDIFADDR"
	default:
		fmt.Fprintln(os.Stderr, "ifconfig: only the alias and -alias forms are emulated")
		return 1
	}
	out, err := exec.Command("/usr/sbin/ip", ipArgs...).CombinedOutput()
	if err == nil {
		return 0
	}
	msg := string(out)
	switch {
	case strings.Contains(msg, "File exists"):
		warnx("ifconfig", "ioctl (%s): File exists", ioctl)
	case strings.Contains(msg, "Cannot assign requested address"):
		warnx("ifconfig", "ioctl (%s): Can't assign requested address", ioctl)
	case strings.Contains(msg, "Cannot find device"):
		warnx("ifconfig", "interface %s does not exist", iface)
	default:
		warnx("ifconfig", "%s", strings.TrimSpace(msg))
	}
	return 1
}

func maskLen(m string) (int, error) {
	if strings.HasPrefix(m, "0x") {
		v, err := strconv.ParseUint(m[2:], 16, 32)
		if err != nil {
			return 0, err
		}
		n := 0
		for v&0x80000000 != 0 {
			n++
			v <<= 1
		}
		return n, nil
	}
	parts := strings.Split(m, ".")
	if len(parts) != 4 {
		return 0, errors.New("bad netmask")
	}
	n := 0
	for _, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 || v > 255 {
			return 0, errors.New("bad netmask")
		}
		for b := 7; b >= 0; b-- {
			if v&(1<<b) != 0 {
				n++
			}
		}
	}
	return n, nil
}
