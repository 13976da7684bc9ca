//go:build linux

package main

// mdconfig(8) and newfs(8) on Linux. A swap- or malloc-backed md(4) unit is a sparse file
// on a dedicated tmpfs (mdStore) attached to a loop device; /dev/mdN is a block node with
// the loop device's numbers, so newfs /dev/mdN and mount /dev/mdN work and the mount table
// names /dev/mdN as FreeBSD's does.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// mdUnit is one attached unit, stored at mdDir/N.json (the md(4) softc).
type mdUnit struct {
	Unit    int
	Type    string // swap, malloc, vnode
	Size    int64  // bytes
	File    string // vnode: the backing file
	Backing string // the file behind the loop device
	Loop    string // /dev/loopN
	Label   string
	Options []string // as print_options shows them
}

func mdFile(unit int) string { return filepath.Join(mdDir, strconv.Itoa(unit)+".json") }

func mdUsage() int {
	fmt.Fprint(os.Stderr, "usage: mdconfig -a -t type [-n] [-o [no]option] ... [-f file]\n"+
		"                [-s size] [-S sectorsize] [-u unit] [-L label]\n"+
		"                [-x sectors/track] [-y heads/cylinder]\n"+
		"       mdconfig -d -u unit [-o [no]force]\n"+
		"       mdconfig -r -u unit -s size [-o [no]force]\n"+
		"       mdconfig -l [-v] [-n] [-f file] [-u unit]\n"+
		"       mdconfig file\n")
	return 1
}

// mdconfigMain follows sbin/mdconfig/mdconfig.c main: -a (-t swap|malloc|vnode, -s size,
// -L label, -u unit, -n), -d -u unit [-o force], -l [-v] [-n] [-u unit].
func mdconfigMain(args []string) int {
	var action byte
	var tflag, sflag, uflag, fflag, label string
	var nflag, vflag, force bool
	opts := map[string]bool{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") || len(a) < 2 {
			if fflag == "" {
				fflag = a
				continue
			}
			return mdUsage()
		}
		for k := 1; k < len(a); k++ {
			c := a[k]
			arg := func() (string, bool) {
				if k+1 < len(a) {
					v := a[k+1:]
					k = len(a)
					return v, true
				}
				if i+1 < len(args) {
					i++
					k = len(a)
					return args[i], true
				}
				return "", false
			}
			switch c {
			case 'a', 'd', 'l', 'r':
				if action != 0 && action != c {
					fmt.Fprintf(os.Stderr, "mdconfig: -%c is mutually exclusive with the other actions\n", c)
					return 1
				}
				action = c
			case 'n':
				nflag = true
			case 'v':
				vflag = true
			case 't', 's', 'u', 'f', 'L', 'o', 'S', 'x', 'y':
				v, ok := arg()
				if !ok {
					return mdUsage()
				}
				switch c {
				case 't':
					tflag = v
				case 's':
					sflag = v
				case 'u':
					v = strings.TrimPrefix(v, "/dev/")
					uflag = strings.TrimPrefix(v, "md")
				case 'f':
					fflag = v
				case 'L':
					label = v
				case 'o':
					if v == "force" {
						force = true
					} else if v == "noforce" {
						force = false
					}
					opts[v] = true
				}
			default:
				return mdUsage()
			}
		}
	}
	if action == 0 {
		action = 'a'
	}
	if action != 'l' && vflag {
		warnx("mdconfig", "-v can only be used with -l")
		return 1
	}
	unit := -1
	if uflag != "" {
		n, err := strconv.ParseUint(uflag, 0, 31)
		if err != nil {
			warnx("mdconfig", "bad unit: %s", uflag)
			return 1
		}
		unit = int(n)
	}
	switch action {
	case 'a':
		return mdAttach(tflag, sflag, fflag, label, unit, nflag, opts)
	case 'd':
		if unit < 0 {
			warnx("mdconfig", "-d requires -u")
			return 1
		}
		return mdDetach(unit, force)
	case 'l':
		return mdList(unit, vflag, nflag)
	}
	warnx("mdconfig", "-r is not emulated")
	return 1
}

// parseMDSize is mdconfig.c's -s: strtoumax(3) with base 0, then no suffix means
// 512-byte sectors (DEV_BSIZE), b bytes, k/m/g/t/p powers of 1024.
func parseMDSize(s string) (int64, error) {
	i := 0
	if strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X") {
		i = 2
		for i < len(s) && strings.ContainsRune("0123456789abcdefABCDEF", rune(s[i])) {
			i++
		}
	} else {
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	n, err := strconv.ParseInt(s[:i], 0, 64)
	if err != nil && i > 0 {
		return 0, err
	}
	switch strings.ToLower(s[i:]) {
	case "":
		return n * 512, nil
	case "b":
		return n, nil
	case "k":
		return n << 10, nil
	case "m":
		return n << 20, nil
	case "g":
		return n << 30, nil
	case "t":
		return n << 40, nil
	case "p":
		return n << 50, nil
	}
	return 0, fmt.Errorf("unknown suffix on -s argument")
}

func mdAttach(tflag, sflag, fflag, label string, unit int, nflag bool, opts map[string]bool) int {
	if tflag == "" {
		switch {
		case fflag != "":
			tflag = "vnode"
		case sflag != "":
			tflag = "swap"
		default:
			warnx("mdconfig", "unable to determine type")
			return 1
		}
	}
	switch tflag {
	case "swap", "malloc", "vnode":
	case "null":
		warnx("mdconfig", "-t null is not emulated")
		return 1
	default:
		warnx("mdconfig", "unknown type: %s", tflag)
		return 1
	}
	var size int64
	if sflag != "" {
		n, err := parseMDSize(sflag)
		if err != nil {
			warnx("mdconfig", "%v", err)
			return 1
		}
		size = n
	} else if tflag != "vnode" {
		warnx("mdconfig", "must specify -s for -t malloc, -t swap, or -t null")
		return 1
	}
	if tflag == "vnode" {
		if fflag == "" {
			warnx("mdconfig", "must specify -f for -t vnode")
			return 1
		}
		abs, err := filepath.Abs(fflag)
		if err != nil {
			warnx("mdconfig", "could not find full path for %s", fflag)
			return 1
		}
		st, err := os.Stat(abs)
		if err != nil {
			warnx("mdconfig", "could not open %s: %s", fflag, errno(err))
			return 1
		}
		fflag = abs
		if size == 0 {
			size = st.Size()
		}
	}
	if size <= 0 {
		// md.c kern_mdattach_locked: a zero size is EINVAL
		warnx("mdconfig", "ioctl(/dev/mdctl): Invalid argument")
		return 1
	}
	unlock, err := lockState()
	if err != nil {
		warnx("mdconfig", "%v", err)
		return 1
	}
	defer unlock()
	if unit < 0 {
		// md.c: the lowest free unit number
		for unit = 0; ; unit++ {
			if _, err := os.Stat(mdFile(unit)); os.IsNotExist(err) {
				break
			}
		}
	} else if _, err := os.Stat(mdFile(unit)); err == nil {
		warnx("mdconfig", "ioctl(/dev/mdctl): File exists")
		return 1
	}
	u := mdUnit{Unit: unit, Type: tflag, Size: size, Label: label}
	// md.c: swap keeps MD_FORCE|MD_RESERVE, malloc MD_COMPRESS|MD_FORCE, vnode
	// MD_ASYNC|MD_CACHE|MD_FORCE|MD_VERIFY (print_options' order)
	switch tflag {
	case "malloc":
		if !opts["nocompress"] && !opts["reserve"] {
			u.Options = append(u.Options, "compress")
		}
	case "vnode":
		for _, o := range []string{"async", "cache"} {
			if opts[o] {
				u.Options = append(u.Options, o)
			}
		}
	}
	if opts["force"] {
		u.Options = append(u.Options, "force")
	}
	if tflag == "vnode" && (opts["readonly"] || opts["ro"]) {
		u.Options = append(u.Options, "readonly")
	}
	if opts["reserve"] && tflag != "vnode" {
		u.Options = append(u.Options, "reserve")
	}
	if tflag == "vnode" {
		u.File, u.Backing = fflag, fflag
	} else {
		if err := ensureMDStore(); err != nil {
			warnx("mdconfig", "%v", err)
			return 1
		}
		u.Backing = filepath.Join(mdStore, fmt.Sprintf("md%d", unit))
		f, err := os.OpenFile(u.Backing, os.O_CREATE|os.O_TRUNC|os.O_RDWR, 0o600)
		if err == nil {
			err = f.Truncate(size)
			f.Close()
		}
		if err != nil {
			warnx("mdconfig", "ioctl(/dev/mdctl): %s", errno(err))
			return 1
		}
	}
	losetup := []string{"--find", "--show", "--sizelimit", strconv.FormatInt(size, 10)}
	if u.hasOpt("readonly") {
		losetup = append(losetup, "--read-only")
	}
	out, err := exec.Command("/usr/sbin/losetup", append(losetup, u.Backing)...).CombinedOutput()
	if err != nil {
		if tflag != "vnode" {
			os.Remove(u.Backing)
		}
		warnx("mdconfig", "ioctl(/dev/mdctl): losetup: %s", strings.TrimSpace(string(out)))
		return 1
	}
	u.Loop = strings.TrimSpace(string(out))
	var st unix.Stat_t
	if err := unix.Stat(u.Loop, &st); err != nil {
		warnx("mdconfig", "%s: %s", u.Loop, errno(err))
		return 1
	}
	node := fmt.Sprintf("/dev/md%d", unit)
	os.Remove(node)
	if err := unix.Mknod(node, unix.S_IFBLK|0o640, int(st.Rdev)); err != nil {
		_ = exec.Command("/usr/sbin/losetup", "-d", u.Loop).Run()
		warnx("mdconfig", "%s: %s", node, errno(err))
		return 1
	}
	if err := writeJSON(mdFile(unit), u); err != nil {
		warnx("mdconfig", "%v", err)
		return 1
	}
	if nflag {
		fmt.Println(unit)
	} else {
		fmt.Printf("md%d\n", unit)
	}
	return 0
}

func (u *mdUnit) hasOpt(o string) bool {
	for _, x := range u.Options {
		if x == o {
			return true
		}
	}
	return false
}

// ensureMDStore mounts the tmpfs that stands in for swap, once.
func ensureMDStore() error {
	if err := os.MkdirAll(mdStore, 0o700); err != nil {
		return err
	}
	ms, err := mountInfo()
	if err != nil {
		return err
	}
	if _, ok := topMountAt(ms, mdStore); ok {
		return nil
	}
	return unix.Mount("bsdemu-swap", mdStore, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0700,size=50%")
}

// mdDetach is md.c kern_mddetach_locked: an open (here: mounted) unit is refused with
// EBUSY unless forced; mdconfig reports err(1, "ioctl(/dev/mdctl)").
func mdDetach(unit int, force bool) int {
	unlock, err := lockState()
	if err != nil {
		warnx("mdconfig", "%v", err)
		return 1
	}
	defer unlock()
	var u mdUnit
	if err := readJSON(mdFile(unit), &u); err != nil {
		warnx("mdconfig", "ioctl(/dev/mdctl): No such file or directory")
		return 1
	}
	if u.busy() && !force && !u.hasOpt("force") {
		warnx("mdconfig", "ioctl(/dev/mdctl): Device busy")
		return 1
	}
	if out, err := exec.Command("/usr/sbin/losetup", "-d", u.Loop).CombinedOutput(); err != nil {
		warnx("mdconfig", "ioctl(/dev/mdctl): losetup -d %s: %s", u.Loop, strings.TrimSpace(string(out)))
		return 1
	}
	os.Remove(fmt.Sprintf("/dev/md%d", unit))
	if u.Type != "vnode" {
		os.Remove(u.Backing)
	}
	os.Remove(mdFile(unit))
	return 0
}

// busy: a file system on the unit is mounted (the provider is open).
func (u *mdUnit) busy() bool {
	var st unix.Stat_t
	if err := unix.Stat(u.Loop, &st); err != nil {
		return false
	}
	dev := fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
	ms, _ := mountInfo()
	for _, m := range ms {
		if m.Dev == dev {
			return true
		}
	}
	return false
}

func mdUnits() []mdUnit {
	var out []mdUnit
	var nums []int
	for _, n := range sortedNames(mdDir) {
		if k, err := strconv.Atoi(n); err == nil {
			nums = append(nums, k)
		}
	}
	// geom lists providers in creation order of the mesh; units ascending is close
	for i := 0; i < len(nums); i++ {
		for j := i + 1; j < len(nums); j++ {
			if nums[j] < nums[i] {
				nums[i], nums[j] = nums[j], nums[i]
			}
		}
	}
	for _, k := range nums {
		var u mdUnit
		if readJSON(mdFile(k), &u) == nil {
			out = append(out, u)
		}
	}
	return out
}

// mdList is mdconfig.c md_list: "-l" prints the names on one line, each followed by a
// space; "-l -v" (or -l -u N) one line each: name, type, size (humanize_number, "%6s"),
// file or "-", label or "-", then print_options' comma list after a tab.
func mdList(unit int, verbose, nflag bool) int {
	units := mdUnits()
	found := false
	var b strings.Builder
	done := false
	for _, u := range units {
		if unit >= 0 && u.Unit != unit {
			continue
		}
		found = true
		if nflag {
			fmt.Fprintf(&b, "%d", u.Unit)
		} else {
			fmt.Fprintf(&b, "md%d", u.Unit)
		}
		if verbose || unit >= 0 {
			file, label := "-", "-"
			if u.File != "" {
				file = u.File
			}
			if u.Label != "" {
				label = u.Label
			}
			fmt.Fprintf(&b, "\t%s\t%6s\t%s\t%s\t%s", u.Type, humanize(u.Size), file, label, strings.Join(u.Options, ","))
		}
		done = true
		if unit < 0 && !verbose {
			b.WriteString(" ")
		} else {
			b.WriteString("\n")
		}
	}
	if unit < 0 && done && !verbose {
		b.WriteString("\n")
	}
	fmt.Print(b.String())
	if unit >= 0 && !found {
		return 255 // md_query returns -1 from main
	}
	return 0
}

// humanize is lib/libutil humanize_number(buf, 6, n, "", HN_AUTOSCALE,
// HN_B|HN_NOSPACE|HN_DECIMAL), as md_prthumanval calls it.
func humanize(n int64) string {
	const divisor, divisordeccut = 1024, 973
	prefixes := []string{"B", "K", "M", "G", "T", "P", "E"}
	// buflen 6, baselen 2 (one digit and the prefix): at most 4 digits
	maxv := int64(10000)
	quotient, remainder := n, int64(0)
	i := 0
	for (quotient >= maxv || (quotient == maxv-1 && (remainder >= divisordeccut || remainder >= divisor/2))) && i < len(prefixes)-1 {
		remainder = quotient % divisor
		quotient /= divisor
		i++
	}
	if ((quotient == 9 && remainder < divisordeccut) || quotient < 9) && i > 0 {
		s1 := quotient + ((remainder*10 + divisor/2) / divisor / 10)
		s2 := ((remainder*10 + divisor/2) / divisor) % 10
		return fmt.Sprintf("%d.%d%s", s1, s2, prefixes[i])
	}
	return fmt.Sprintf("%d%s", quotient+(remainder+divisor/2)/divisor, prefixes[i])
}

// newfsMain stands in for sbin/newfs: "newfs [-U] [options] DEVICE" makes an ext2 file
// system (mke2fs from e2fsprogs, or busybox's) that mount -p reports as "ufs" when it is
// mounted from /dev/mdN. -U (soft updates) has no counterpart and is accepted.
func newfsMain(args []string) int {
	var dev string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if strings.HasPrefix(a, "-") {
			// options with a value (newfs.c getopt string "EJL:NO:RS:T:UXa:b:c:d:e:f:g:h:i:jk:lm:no:p:r:s:t")
			if len(a) == 2 && strings.ContainsRune("LOSTabcdefghikmoprs", rune(a[1])) {
				i++
			}
			continue
		}
		dev = a
	}
	if dev == "" {
		fmt.Fprintln(os.Stderr, "usage: newfs [ -fsoptions ] special-device")
		return 1
	}
	if _, err := os.Stat(dev); err != nil {
		warnx("newfs", "%s: %s", dev, errno(err))
		return 1
	}
	cmd := exec.Command("/sbin/mke2fs", "-q", "-F", "-t", "ext2", "-m", "8", dev)
	if _, err := os.Stat("/sbin/mke2fs"); err != nil {
		cmd = exec.Command("/bin/busybox", "mke2fs", "-m", "8", dev)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		warnx("newfs", "%s: %s", dev, strings.TrimSpace(string(out)))
		return 1
	}
	var size int64
	if f, err := os.Open(dev); err == nil {
		size, _ = f.Seek(0, 2)
		f.Close()
	}
	// newfs.c/mkfs.c print the geometry; the first line is the one scripts look at
	fmt.Printf("%s: %.1fMB (%d sectors) block size 32768, fragment size 4096\n", dev, float64(size)/(1<<20), size/512)
	return 0
}
