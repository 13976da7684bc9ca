//go:build linux

package main

// jail(8), jls(8) and jexec(8) on Linux.
//
// A jail is a PID namespace whose pid 1 is a holder process (this binary run as
// holderName): it chroots into the jail's path, reaps orphans, and exits when it is the
// last process left unless the jail persists; its exit makes the kernel kill everything
// else in the namespace, as jail_remove(2) does. There is no mount namespace: mounts stay
// global as on FreeBSD, so a jail's busy root makes umount fail with EBUSY as it does there.
// Commands "in the jail" (exec.start, exec.stop, jexec) are this binary run as attachName
// in the holder's PID namespace (setns), which chroots and execs.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// jailRec is a running jail, stored at jailsDir/NAME.json.
type jailRec struct {
	JID         int
	Name        string
	Path        string
	Hostname    string
	IP4         []string
	Persist     bool
	Holder      int    // host pid of the namespace's pid 1
	HolderStart uint64 // its start time: a reused pid is not the holder
	NS          string // "pid:[inode]" of the jail's namespace
}

func jailFile(name string) string { return filepath.Join(jailsDir, name+".json") }

// alive reports whether the jail still exists: its holder runs.
func (r *jailRec) alive() bool {
	st, ok := procStart(r.Holder)
	return ok && st == r.HolderStart
}

// runningJails returns the live jails by jid, dropping records of dead ones.
func runningJails() []*jailRec {
	var out []*jailRec
	for _, n := range sortedNames(jailsDir) {
		var r jailRec
		if err := readJSON(jailFile(n), &r); err != nil {
			continue
		}
		if !r.alive() {
			// the holder exited (last process gone): the kernel removed the jail
			os.Remove(jailFile(n))
			continue
		}
		out = append(out, &r)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].JID < out[b].JID })
	return out
}

// findJail looks a jail up by name or jid, as jail_getid(3) does.
func findJail(key string) *jailRec {
	for _, r := range runningJails() {
		if r.Name == key || strconv.Itoa(r.JID) == key {
			return r
		}
	}
	return nil
}

// notFound is kern_jail.c's error for jail_get(2) by name ("jail \"%s\" not found") or by
// jid ("jail %d not found"), which jls and jexec print (errx(1, "%s", jail_errmsg)).
func notFound(key string) string {
	if _, err := strconv.Atoi(key); err == nil {
		return "jail " + key + " not found"
	}
	return "jail \"" + key + "\" not found"
}

// nsMembers lists the host pids in the jail's PID namespace other than the holder,
// skipping zombies (they no longer count as the jail's processes).
func (r *jailRec) nsMembers() []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == r.Holder {
			continue
		}
		if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid)); err == nil && ns == r.NS {
			if _, ok := procStart(pid); ok {
				out = append(out, pid)
			}
		}
	}
	return out
}

// ---------------------------------------------------------------- jail(8)

// The command lists of usr.sbin/jail/jail.c startcommands[] and stopcommands[].
type step int

const (
	stIP4 step = iota
	stMount
	stFstab
	stDevfs
	stFdescfs
	stProcfs
	stPrestart
	stCreate // IP__OP when starting
	stCreated
	stStart
	stCommand
	stPoststart
	stPrestop
	stStop
	stStopTimeout
	stRemove // IP__OP when stopping
	stPoststop
)

type jailOp struct {
	conf    *jailConf
	name    string
	rec     *jailRec
	holder  *exec.Cmd // set while jail -c runs the holder it started
	fstab   []string
	failed  bool
	removed bool
	quiet   bool // -q: no "created"/"removed" notes, no "not found" for -r
}

func (op *jailOp) warn(format string, a ...any) {
	warnx("jail", "%s: %s", op.name, fmt.Sprintf(format, a...))
}

// items are a step's strings (config.c: each value is one command); dummy steps have one.
func (op *jailOp) items(s step) []string {
	c := op.conf
	switch s {
	case stIP4:
		// config.c check_intparams: ip4.addr becomes IP__IP4_IFADDR only with an
		// interface, or an address written "iface|addr"
		var out []string
		for _, a := range c.list("ip4.addr") {
			if c.has("interface") || strings.Contains(a, "|") {
				out = append(out, a)
			}
		}
		return out
	case stMount:
		return c.list("mount")
	case stFstab:
		return op.fstab
	case stDevfs:
		if c.boolean("mount.devfs") {
			return []string{""}
		}
	case stFdescfs:
		if c.boolean("mount.fdescfs") {
			return []string{""}
		}
	case stProcfs:
		if c.boolean("mount.procfs") {
			return []string{""}
		}
	case stCreate, stRemove, stStopTimeout:
		return []string{""}
	case stPrestart:
		return c.list("exec.prestart")
	case stCreated:
		return c.list("exec.created")
	case stStart:
		return c.list("exec.start")
	case stCommand:
		return c.list("command")
	case stPoststart:
		return c.list("exec.poststart")
	case stPrestop:
		return c.list("exec.prestop")
	case stStop:
		return c.list("exec.stop")
	case stPoststop:
		return c.list("exec.poststop")
	}
	return nil
}

func jailUsage() int {
	fmt.Fprint(os.Stderr, "usage: jail [-dhilqv] [-J jid_file] [-u username] [-U username]\n"+
		"            -[cmr] param=value ... [command=command ...]\n"+
		"       jail [-dqv] [-f file] -[cmr] [jail]\n"+
		"       jail [-qv] [-f file] -[rR] ['*' | jail ...]\n")
	return 1
}

// jailMain is usr.sbin/jail/jail.c main for the forms rollout uses: -f FILE -c|-r|-m NAME,
// and -c/-m with param=value arguments.
func jailMain(args []string) int {
	cfname := "/etc/jail.conf"
	var op byte
	var quiet bool
	var i int
	for i = 0; i < len(args) && strings.HasPrefix(args[i], "-") && args[i] != "-"; i++ {
		a := args[i]
		if a == "--" {
			i++
			break
		}
		for k := 1; k < len(a); k++ {
			switch a[k] {
			case 'c', 'r', 'm':
				if op != 0 && op != a[k] {
					return jailUsage()
				}
				op = a[k]
			case 'f':
				if k+1 < len(a) {
					cfname = a[k+1:]
				} else if i+1 < len(args) {
					i++
					cfname = args[i]
				} else {
					return jailUsage()
				}
				k = len(a)
			case 'q':
				quiet = true
			case 'v', 'd':
			default:
				return jailUsage()
			}
		}
	}
	rest := args[i:]
	if op == 0 || len(rest) == 0 {
		return jailUsage()
	}
	var conf *jailConf
	if strings.Contains(rest[0], "=") {
		// a jail on the command line: jail -c name=x path=/p persist ...
		conf = &jailConf{params: map[string]*param{}}
		for _, a := range rest {
			k, v, hasV := strings.Cut(a, "=")
			if hasV {
				conf.add(k, strings.Split(v, ","), false)
			} else {
				conf.add(k, nil, false)
			}
		}
		conf.name = conf.str("name")
	} else {
		name := rest[0]
		conf = &jailConf{name: name, params: map[string]*param{}}
		conf.add("name", []string{name}, false)
		// jail.c main: -r reads the file only when it exists; -c and -m need it
		if _, err := os.Stat(cfname); err == nil || op != 'r' {
			all, err := parseConf(cfname)
			if err != nil {
				var pe *os.PathError
				if errors.As(err, &pe) {
					warnx("jail", "%s: %s", cfname, errno(err))
				} else {
					warnx("jail", "%s", err)
				}
				return 1
			}
			if c, ok := all[name]; ok {
				conf = c
			} else if op != 'r' {
				warnx("jail", "\"%s\" not found", name)
				return 1
			}
		}
	}
	o := &jailOp{conf: conf, name: conf.name, quiet: quiet}
	// config.c check_intparams: reading mount.fstab fails the jail before any command
	fst, err := conf.fstabLines()
	if err != nil {
		o.warn("%s", err)
		return 1
	}
	o.fstab = fst
	switch op {
	case 'c':
		// jail.c main: import_params before anything runs
		if err := conf.checkParams(); err != nil {
			o.warn("%s", err)
			return 1
		}
		return o.start()
	case 'r':
		return o.stop()
	default:
		return o.modify()
	}
}

func startSteps() []step {
	return []step{stIP4, stMount, stFstab, stDevfs, stFdescfs, stProcfs, stPrestart,
		stCreate, stCreated, stStart, stCommand, stPoststart}
}

func stopSteps() []step {
	return []step{stPrestop, stStop, stStopTimeout, stRemove, stPoststop, stProcfs,
		stFdescfs, stDevfs, stFstab, stMount, stIP4}
}

// start is jail.c's JF_START case with command.c next_command: the steps in order; on a
// failure, next_command walks back over what ran (create_failed: comparam -1, strings in
// reverse from the one that failed) skipping exec.prestart, exec.created, exec.start,
// command and exec.poststart. exec.poststop is not in startcommands, so a failed create
// never runs it.
func (op *jailOp) start() int {
	if op.rec = findJail(op.name); op.rec != nil {
		warnx("jail", "\"%s\" already exists", op.name)
		return 1
	}
	for si, s := range startSteps() {
		its := op.items(s)
		for ii, it := range its {
			if op.run(s, it, false) {
				continue
			}
			op.failed = true
			op.unwind(si, ii)
			return 1
		}
	}
	// jail.c clear_persist: the temporary persist set by create_jail goes after the last
	// command; a jail with no process left then dies
	if op.rec != nil && !op.conf.boolean("persist") {
		op.rec.Persist = false
		if err := writeJSON(jailFile(op.name), op.rec); err != nil {
			op.warn("%v", err)
		}
		_ = syscall.Kill(op.rec.Holder, syscall.SIGUSR1)
		// the holder checks at once; wait so that jls right after sees the result
		for i := 0; i < 50 && op.rec.alive() && len(op.rec.nsMembers()) == 0; i++ {
			time.Sleep(20 * time.Millisecond)
		}
	}
	return 0
}

func (op *jailOp) unwind(si, ii int) {
	skip := func(s step) bool {
		return s == stPrestart || s == stCreated || s == stStart || s == stCommand || s == stPoststart
	}
	for ; si >= 0; si-- {
		s := startSteps()[si]
		its := op.items(s)
		if ii < 0 {
			ii = len(its)
		}
		if !skip(s) && s != stCreate {
			for k := ii - 1; k >= 0; k-- {
				op.run(s, its[k], true)
			}
		}
		if s == stCreate && ii > 0 {
			// the jail was created: IP__OP when down removes it
			op.run(stRemove, "", true)
		}
		ii = -1
	}
}

// stop is jail.c's JF_STOP case: a failure before the jail is removed ends the stop with
// the jail still there; after removal the remaining steps still run.
func (op *jailOp) stop() int {
	op.rec = findJail(op.name)
	if op.rec == nil {
		if !op.quiet {
			warnx("jail", "\"%s\" not found", op.name)
		}
		return 1
	}
	for _, s := range stopSteps() {
		its := op.items(s)
		if s == stFstab || s == stMount || s == stIP4 {
			// PF_REV: next_command walks these in reverse when stopping
			rev := make([]string, len(its))
			for k := range its {
				rev[k] = its[len(its)-1-k]
			}
			its = rev
		}
		for _, it := range its {
			if !op.run(s, it, true) {
				op.failed = true
				if !op.removed {
					return 1
				}
			}
		}
	}
	if op.failed {
		return 1
	}
	return 0
}

// modify is a minimal jail -m: it updates the parameters the emulation keeps.
func (op *jailOp) modify() int {
	unlock, err := lockState()
	if err != nil {
		warnx("jail", "%v", err)
		return 1
	}
	defer unlock()
	r := findJail(op.name)
	if r == nil {
		warnx("jail", "\"%s\" not found", op.name)
		return 1
	}
	if err := op.conf.checkParams(); err != nil {
		op.warn("%s", err)
		return 1
	}
	if p := op.conf.params["persist"]; p != nil {
		r.Persist = op.conf.boolean("persist")
	}
	if h := op.conf.str("host.hostname"); h != "" {
		r.Hostname = h
	}
	if err := writeJSON(jailFile(r.Name), r); err != nil {
		op.warn("%v", err)
		return 1
	}
	_ = syscall.Kill(r.Holder, syscall.SIGUSR1)
	return 0
}

// run runs one command (command.c run_command); false means it failed (failed(j)).
func (op *jailOp) run(s step, it string, down bool) bool {
	c := op.conf
	path := c.str("path")
	switch s {
	case stCreate:
		return op.create()
	case stRemove:
		op.remove()
		return true
	case stStopTimeout:
		op.termProcs()
		return true
	case stIP4:
		// command.c run_command IP__IP4_IFADDR
		iface, addr := c.str("interface"), it
		if k := strings.IndexByte(it, '|'); k >= 0 {
			iface, addr = it[:k], it[k+1:]
		}
		argv := []string{"/sbin/ifconfig", iface, "inet"}
		if a, mask, ok := strings.Cut(addr, "/"); !ok {
			argv = append(argv, addr, "netmask", "255.255.255.255")
		} else if strings.Contains(mask, ".") {
			argv = append(argv, a, "netmask", mask)
		} else {
			argv = append(argv, addr)
		}
		if down {
			argv = append(argv, "-alias")
		} else {
			argv = append(argv, "alias")
		}
		return op.exec(s, argv, false)
	case stMount, stFstab:
		// command.c run_command IP_MOUNT / IP__MOUNT_FROM_FSTAB
		f := strings.Fields(it)
		if len(f) == 0 {
			return true
		}
		if len(f) > 4 {
			f = f[:4]
		}
		pname := "mount"
		if s == stFstab {
			pname = "mount.fstab"
		}
		if len(f) < 3 {
			op.warn("%s: %s: missing information", pname, it)
			return false
		}
		utype := ""
		if down {
			utype = f[2]
		}
		if !op.checkPath(pname, f[1], false, utype) {
			return false
		}
		if down {
			return op.exec(s, []string{"/sbin/umount", "-t", f[2], f[1]}, false)
		}
		argv := []string{"/sbin/mount", "-t", f[2]}
		if len(f) == 4 {
			argv = append(argv, "-o", f[3])
		}
		return op.exec(s, append(argv, f[0], f[1]), false)
	case stDevfs, stFdescfs, stProcfs:
		// command.c run_command IP_MOUNT_DEVFS (ruleset 4, devfsrules_jail, by default),
		// IP_MOUNT_FDESCFS, IP_MOUNT_PROCFS
		fstype, sub, pname := "devfs", "/dev", "mount.devfs"
		if s == stFdescfs {
			fstype, sub, pname = "fdescfs", "/dev/fd", "mount.fdescfs"
		} else if s == stProcfs {
			fstype, sub, pname = "procfs", "/proc", "mount.procfs"
		}
		if path == "" {
			op.warn("%s: no jail root path defined", pname)
			return false
		}
		dir := path + sub
		utype := ""
		if down {
			utype = fstype
		}
		if !op.checkPath(pname, dir, false, utype) {
			return false
		}
		if down {
			return op.exec(s, []string{"/sbin/umount", dir}, false)
		}
		argv := []string{"/sbin/mount", "-t", fstype}
		if s == stDevfs {
			rs := c.str("devfs_ruleset")
			if rs == "" {
				rs = "4"
			}
			argv = append(argv, "-oruleset="+rs)
		}
		return op.exec(s, append(argv, ".", dir), false)
	}
	// exec.* and command: command.c run_command default_command
	argv, bg := splitCommand(it)
	if len(argv) == 0 {
		return true
	}
	return op.exec(s, argv, bg)
}

// splitCommand: a string with shell metacharacters runs as /bin/sh -c STRING; otherwise
// it is split on white space and run directly, a trailing lone "&" running it in the
// background (command.c run_command default_command).
func splitCommand(s string) ([]string, bool) {
	if k := strings.IndexAny(s, "!\"$&'()*;<>?[\\]`{|}~"); k >= 0 && !(s[k] == '&' && k == len(s)-1) {
		return []string{"/bin/sh", "-c", s}, false
	}
	bg := false
	if strings.HasSuffix(s, "&") {
		s, bg = strings.TrimSuffix(s, "&"), true
	}
	return strings.Fields(s), bg
}

// exec forks one command as command.c run_command does and waits for it (kqueue in
// next_proc), with exec.timeout: a command still running then is reported "timed out"
// and the jail fails; jail(8) does not kill it (next_proc only forgets it, clear_procs).
func (op *jailOp) exec(s step, argv []string, bg bool) bool {
	c := op.conf
	injail := s == stStart || s == stCommand || s == stStop
	clean := c.boolean("exec.clean")
	comline := strings.Join(argv, " ")
	stdout, stderr := os.Stdout, os.Stderr
	if cl := c.str("exec.consolelog"); injail && cl != "" {
		if !op.checkPath("exec.consolelog", cl, true, "") {
			return false
		}
		// DEFFILEMODE, O_APPEND; only fds 1 and 2 go to the log, stdin stays jail(8)'s
		f, err := os.OpenFile(cl, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o666)
		if err != nil {
			op.warn("open %s: %s", cl, errno(err))
			return false
		}
		defer f.Close()
		stdout, stderr = f, f
	}
	var cmd *exec.Cmd
	var err error
	if injail {
		cmd, err = op.rec.attachCmd(clean, argv)
		if err == nil {
			cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, stdout, stderr
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: bg}
			err = startInNS(cmd, op.rec)
		}
	} else {
		cmd = exec.Command(argv[0], argv[1:]...)
		if !strings.Contains(argv[0], "/") {
			cmd.Path = argv[0] // execvp: looked up in the child's PATH
			if lp, lerr := exec.LookPath(argv[0]); lerr == nil {
				cmd.Path = lp
			}
		}
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, stdout, stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: bg}
		if clean {
			env, home, ok := cleanEnv("/")
			if !ok {
				op.warn("unknown uid 0")
				return false
			}
			cmd.Env, cmd.Dir = env, home
		}
		err = cmd.Start()
	}
	if err != nil {
		op.warn("exec %s: %s", argv[0], errno(err))
		return false
	}
	if bg {
		go func() { _ = cmd.Wait() }()
		return true
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var timeout <-chan time.Time
	if t, err := strconv.Atoi(c.str("exec.timeout")); err == nil && t > 0 {
		timeout = time.After(time.Duration(t) * time.Second)
	}
	select {
	case err = <-done:
	case <-timeout:
		op.warn("%s: timed out", comline)
		return false
	}
	if err != nil {
		// command.c finish_command
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				op.warn("%s: exited on signal %d", comline, int(ws.Signal()))
				return false
			}
			op.warn("%s: failed", comline)
			return false
		}
		op.warn("%s: %v", comline, err)
		return false
	}
	return true
}

// checkPath is command.c check_path: absolute; no symbolic link in any component below
// the jail's path; when unmounting, the path must be a mount point of the given type.
func (op *jailOp) checkPath(pname, p string, isfile bool, umountType string) bool {
	if !strings.HasPrefix(p, "/") {
		op.warn("%s: %s: not an absolute pathname", pname, p)
		return false
	}
	jp := op.conf.str("path")
	if strings.HasPrefix(p, jp) && len(p) > len(jp) && p[len(jp)] == '/' {
		rest := strings.Split(p[len(jp)+1:], "/")
		cur := jp
		for k, comp := range rest {
			cur += "/" + comp
			st, err := os.Lstat(cur)
			if err != nil {
				if os.IsNotExist(err) && isfile && k == len(rest)-1 {
					break
				}
				op.warn("%s: %s: %s", pname, cur, errno(err))
				return false
			}
			if st.Mode()&os.ModeSymlink != 0 {
				op.warn("%s: %s is a symbolic link", pname, cur)
				return false
			}
		}
	}
	if umountType != "" {
		if _, err := os.Stat(p); err != nil {
			op.warn("%s: %s: %s", pname, p, errno(err))
			return false
		}
		ms, err := mountInfo()
		if err != nil {
			op.warn("%s: %s: %v", pname, p, err)
			return false
		}
		real, _ := filepath.EvalSymlinks(p)
		m, ok := coveringMount(ms, real)
		if !ok || m.Target != real {
			op.warn("%s: %s: not a mount point", pname, p)
			return false
		}
		if t := freebsdType(m); t != umountType {
			op.warn("%s: %s: not a %s mount", pname, p, umountType)
			return false
		}
	}
	return true
}

// create is jail.c create_jail: the path must be a directory; "persist" is set while
// commands remain to run (dopersist) and cleared by clear_persist.
func (op *jailOp) create() bool {
	c := op.conf
	path := c.str("path")
	if path != "" {
		if !strings.HasPrefix(path, "/") {
			op.warn("path %s: not an absolute pathname", path)
			return false
		}
		st, err := os.Stat(path)
		if err != nil {
			op.warn("path %s: %s", path, errno(err))
			return false
		}
		if !st.IsDir() {
			op.warn("path %s: Not a directory", path)
			return false
		}
	} else {
		path = "/"
	}
	unlock, err := lockState()
	if err != nil {
		op.warn("%v", err)
		return false
	}
	defer unlock()
	if findJail(op.name) != nil {
		op.warn("jail_set: File exists")
		return false
	}
	jid := 1
	if b, err := os.ReadFile(filepath.Join(stateDir, "lastjid")); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			jid = n + 1
		}
	}
	if err := os.WriteFile(filepath.Join(stateDir, "lastjid"), []byte(strconv.Itoa(jid)), 0o600); err != nil {
		op.warn("%v", err)
		return false
	}
	rec := &jailRec{JID: jid, Name: op.name, Path: path, Hostname: c.str("host.hostname"),
		Persist: true}
	for _, a := range c.list("ip4.addr") {
		if k := strings.IndexByte(a, '|'); k >= 0 {
			a = a[k+1:]
		}
		a, _, _ = strings.Cut(a, "/")
		rec.IP4 = append(rec.IP4, a)
	}
	if err := writeJSON(jailFile(op.name), rec); err != nil {
		op.warn("%v", err)
		return false
	}
	self, err := os.Executable()
	if err != nil {
		op.warn("%v", err)
		return false
	}
	// the jail's cgroup, with the rctl rules already set for its name (rctl.go): the holder
	// and every process attached to the jail join it
	if err := makeJailCgroup(op.name); err != nil {
		os.Remove(jailFile(op.name))
		op.warn("jail_set: %v", err)
		return false
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		op.warn("%v", err)
		return false
	}
	h := &exec.Cmd{Path: self, Args: []string{holderName, op.name, path}, ExtraFiles: []*os.File{pw},
		SysProcAttr: &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID, Setsid: true}}
	// the holder keeps none of jail(8)'s descriptors: the jail itself holds no pipe
	if err := h.Start(); err != nil {
		pw.Close()
		pr.Close()
		os.Remove(jailFile(op.name))
		op.warn("jail_set: %s", errno(err))
		return false
	}
	pw.Close()
	msg, _ := io.ReadAll(pr)
	pr.Close()
	if string(msg) != "ok" {
		_ = h.Process.Kill()
		_ = h.Wait()
		os.Remove(jailFile(op.name))
		op.warn("jail_set: %s", strings.TrimSpace(string(msg)))
		return false
	}
	rec.Holder = h.Process.Pid
	rec.HolderStart, _ = procStart(rec.Holder)
	rec.NS, _ = os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", rec.Holder))
	if err := writeJSON(jailFile(op.name), rec); err != nil {
		op.warn("%v", err)
	}
	op.rec, op.holder = rec, h
	if err := os.WriteFile(filepath.Join(stateDir, "lastjid"), []byte(strconv.Itoa(jid)), 0o600); err != nil {
		op.warn("%v", err)
	}
	if !op.quiet {
		fmt.Printf("%s: created\n", op.name)
	}
	return true
}

// termProcs is command.c term_procs: SIGTERM to every process of the jail, then wait up
// to stop.timeout (default 10 s; 0: no wait) for them to exit. Whatever is left dies at
// jail_remove.
func (op *jailOp) termProcs() {
	timeout := 10
	if t, err := strconv.Atoi(op.conf.str("stop.timeout")); err == nil {
		timeout = t
	}
	if timeout == 0 {
		return
	}
	pids := op.rec.nsMembers()
	for _, p := range pids {
		_ = syscall.Kill(p, syscall.SIGTERM)
	}
	deadline := time.Now().Add(time.Duration(timeout) * time.Second)
	for len(pids) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		var left []int
		for _, p := range pids {
			if _, ok := procStart(p); ok {
				left = append(left, p)
			}
		}
		pids = left
	}
}

// remove is jail_remove(2): every process of the jail is killed (the holder's exit takes
// the namespace with it), then the jail is gone. jail(8) notes "NAME: removed".
func (op *jailOp) remove() {
	r := op.rec
	if r != nil && r.alive() {
		_ = syscall.Kill(r.Holder, syscall.SIGKILL)
		if op.holder != nil {
			_ = op.holder.Wait()
		}
		for i := 0; i < 500 && (r.alive() || len(r.nsMembers()) > 0); i++ {
			time.Sleep(20 * time.Millisecond)
		}
	}
	os.Remove(jailFile(op.name))
	if err := removeJailCgroup(op.name); err != nil {
		op.warn("%v", err)
	}
	op.removed = true
	if !op.quiet {
		fmt.Printf("%s: removed\n", op.name)
	}
}

// cleanEnv is the environment command.c run_command builds for exec.clean: an empty
// environment with TERM kept, then setusercontext(LOGIN_SETPATH | LOGIN_SETENV) from root's
// login class (etc/login.conf "default": path, setenv=BLOCKSIZE=K, lang, charset; Linux has
// no login.conf, so FreeBSD's values are written here), then USER, HOME and SHELL from the
// passwd file under root (the jail's for commands in the jail). It returns the home
// directory, the clean command's working directory, and false when the passwd file has no
// uid 0 (get_user_info: "unknown uid 0").
func cleanEnv(root string) ([]string, string, bool) {
	var user, home, shell string
	if f, err := os.Open(filepath.Join(root, "etc/passwd")); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			p := strings.Split(sc.Text(), ":")
			if len(p) >= 7 && p[2] == "0" {
				user, home, shell = p[0], p[5], p[6]
				break
			}
		}
		f.Close()
	}
	if user == "" {
		return nil, "", false
	}
	if shell == "" {
		shell = "/bin/sh" // _PATH_BSHELL
	}
	env := []string{}
	if t, ok := os.LookupEnv("TERM"); ok {
		env = append(env, "TERM="+t)
	}
	env = append(env,
		"PATH=/sbin:/bin:/usr/sbin:/usr/bin:/usr/local/sbin:/usr/local/bin:"+home+"/bin",
		"BLOCKSIZE=K", "LANG=C.UTF-8", "MM_CHARSET=UTF-8",
		"USER="+user, "HOME="+home, "SHELL="+shell)
	return env, home, true
}

// attachCmd builds the command that enters the jail: this binary as attachName, started
// in the jail's PID namespace by startInNS; it chroots to the jail's path and execs.
func (r *jailRec) attachCmd(clean bool, argv []string) (*exec.Cmd, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	c := "0"
	if clean {
		c = "1"
	}
	return &exec.Cmd{Path: self, Args: append([]string{attachName, r.Path, c, r.Name, "--"}, argv...)}, nil
}

// startInNS starts cmd as a member of the jail's PID namespace: setns(2) on a locked
// thread sets the namespace its children are born in (jail_attach(2) in command.c and
// jexec.c). The thread is left locked so that it is discarded.
func startInNS(cmd *exec.Cmd, r *jailRec) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/pid", r.Holder), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(fd)
		if ns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", r.Holder)); ns != r.NS {
			errc <- fmt.Errorf("jail %q is gone", r.Name)
			return
		}
		if err := unix.Setns(fd, unix.CLONE_NEWPID); err != nil {
			errc <- fmt.Errorf("jail_attach: %w", err)
			return
		}
		errc <- cmd.Start()
	}()
	return <-errc
}

// attachMain runs in the jail's namespace: chroot to the jail, chdir "/" (jail_attach
// does not chdir: jail(8) chdirs to the path first, jexec.c to "/"), build the
// exec.clean environment from the jail's own passwd, and exec the command with
// execvp(3) semantics in the jail's root.
func attachMain(args []string) int {
	if len(args) < 5 || args[3] != "--" {
		fmt.Fprintln(os.Stderr, "bsdemu: attach: bad arguments")
		return 1
	}
	root, clean, name, argv := args[0], args[1] == "1", args[2], args[4:]
	// jail_attach(2) makes the process the jail's for racct: here, its cgroup (rctl.go),
	// joined right before the exec (below), opened now, while /sys is still reachable
	procs, err := openJailCgroupProcs(name)
	if err != nil {
		warnx("jail", "%s: jail_attach: %s", name, errno(err))
		return 1
	}
	if err := unix.Chroot(root); err != nil {
		warnx("jail", "%s: jail_attach: %s", name, errno(err))
		return 1
	}
	if err := os.Chdir("/"); err != nil {
		warnx("jail", "%s: chdir /: %s", name, errno(err))
		return 1
	}
	env := os.Environ()
	if clean {
		var home string
		var ok bool
		if env, home, ok = cleanEnv("/"); !ok {
			warnx("jail", "%s: unknown uid 0", name)
			return 1
		}
		if err := os.Chdir(home); err != nil {
			warnx("jail", "%s: chdir %s: %s", name, home, errno(err))
			return 1
		}
		for _, e := range env {
			if p, ok := strings.CutPrefix(e, "PATH="); ok {
				os.Setenv("PATH", p)
			}
		}
	}
	bin := argv[0]
	if !strings.Contains(bin, "/") {
		lp, err := exec.LookPath(bin)
		if err != nil {
			warnx("jail", "%s: exec %s: No such file or directory", name, bin)
			return 1
		}
		bin = lp
	}
	// pids.max counts threads: this Go process joins with the threads it has and can start no
	// more once at the limit, so it joins last; the exec leaves one thread
	if err := joinJailCgroup(procs); err != nil {
		warnx("jail", "%s: jail_attach: %s", name, errno(err))
		return 1
	}
	err = unix.Exec(bin, argv, env)
	warnx("jail", "%s: exec %s: %s", name, argv[0], errno(err))
	return 1
}

// holderMain is the jail's pid 1: chroot into the jail, tell jail(8) it is ready, reap
// orphans, and exit when no other process is left unless the jail persists (kern_jail.c:
// a jail without persist is removed when its last process exits).
func holderMain(args []string) int {
	ready := os.NewFile(3, "ready")
	fail := func(err error) int {
		fmt.Fprint(ready, err.Error())
		return 1
	}
	if len(args) != 2 {
		return fail(errors.New("bad arguments"))
	}
	name, root := args[0], args[1]
	// kept from before the chroot: the host's /proc and the state directory
	proc, err := os.Open("/proc")
	if err != nil {
		return fail(err)
	}
	state, err := os.Open(jailsDir)
	if err != nil {
		return fail(err)
	}
	self, err := os.Readlink("/proc/self")
	if err != nil {
		return fail(err)
	}
	myNS, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return fail(err)
	}
	// the jail's cgroup, which every process attached to the jail joins: a non-empty
	// cgroup.procs answers "company?" with one small read, where a walk of /proc costs a
	// readlink per process of the host, every tick, in every holder (a hundred jails spent
	// the guest's CPU on it). Opened before the chroot; nil: always walk /proc.
	cg, err := os.Open(jailCgroup(name))
	if err != nil {
		cg = nil
	}
	// the holder stays out of the jail's cgroup: FreeBSD's jail has no such process, so it
	// must count against no limit (and a Go process at a pids.max that counts its threads
	// could not start one more and would die with the jail)
	if err := unix.Chroot(root); err != nil {
		return fail(err)
	}
	if err := os.Chdir("/"); err != nil {
		return fail(err)
	}
	fmt.Fprint(ready, "ok")
	ready.Close()
	wake := make(chan os.Signal, 1)
	signal.Notify(wake, syscall.SIGUSR1, syscall.SIGCHLD)
	// what wakes the check: an orphan's exit (SIGCHLD), jail(8)'s clear_persist (SIGUSR1), the
	// cgroup emptying or filling (cgroup.events, below) and, for a process of the namespace
	// that never joined the cgroup, a slow tick. A fast tick was the holder's whole cost: under
	// TCG every wake-up of a Go process costs its runtime several more.
	cgEvents := watchCgroup(cg)
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
		if !holderPersists(state, name) && !cgroupPopulated(cg) && !holderHasCompany(proc, self, myNS) {
			return 0
		}
		select {
		case <-wake:
		case <-cgEvents:
		case <-tick.C:
		}
	}
}

// watchCgroup signals on the channel at each change of the cgroup's cgroup.events
// ("populated 0/1"): kernfs wakes a poll(2) for POLLPRI when the file changes, and reading it
// re-arms the wait (fs/kernfs/file.c kernfs_generic_poll). No cgroup: a channel that never
// fires.
func watchCgroup(cg *os.File) <-chan struct{} {
	ch := make(chan struct{}, 1)
	if cg == nil {
		return ch
	}
	fd, err := unix.Openat(int(cg.Fd()), "cgroup.events", unix.O_RDONLY, 0)
	if err != nil {
		return ch
	}
	go func() {
		defer unix.Close(fd)
		buf := make([]byte, 128)
		for {
			if _, err := unix.Pread(fd, buf, 0); err != nil {
				return
			}
			fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLPRI}}
			if _, err := unix.Poll(fds, -1); err != nil && err != unix.EINTR {
				return
			}
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}()
	return ch
}

func holderPersists(state *os.File, name string) bool {
	fd, err := unix.Openat(int(state.Fd()), name+".json", unix.O_RDONLY, 0)
	if err != nil {
		return true // being written: keep the jail
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return true
	}
	// a small read: the record's "Persist":false is all that matters
	return !strings.Contains(string(b), `"Persist":false`)
}

// cgroupPopulated reports whether the jail's cgroup has a process. Only "yes" is final: a
// process that entered the jail's PID namespace joins the cgroup only right before its exec,
// so an empty cgroup is checked by holderHasCompany's walk of /proc.
func cgroupPopulated(cg *os.File) bool {
	if cg == nil {
		return false
	}
	fd, err := unix.Openat(int(cg.Fd()), "cgroup.procs", unix.O_RDONLY, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	b := make([]byte, 16)
	n, _ := unix.Read(fd, b)
	return n > 0
}

func holderHasCompany(proc *os.File, self, myNS string) bool {
	if _, err := proc.Seek(0, io.SeekStart); err != nil {
		return true
	}
	names, err := proc.Readdirnames(-1)
	if err != nil {
		return true
	}
	for _, n := range names {
		if n == self || n[0] < '0' || n[0] > '9' {
			continue
		}
		buf := make([]byte, 64)
		k, err := unix.Readlinkat(int(proc.Fd()), n+"/ns/pid", buf)
		if err != nil || string(buf[:k]) != myNS {
			continue
		}
		// a zombie no longer counts
		sfd, err := unix.Openat(int(proc.Fd()), n+"/stat", unix.O_RDONLY, 0)
		if err != nil {
			continue
		}
		sb := make([]byte, 512)
		m, _ := unix.Read(sfd, sb)
		unix.Close(sfd)
		s := string(sb[:max(m, 0)])
		if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) && (s[i+2] == 'Z' || s[i+2] == 'X') {
			continue
		}
		return true
	}
	return false
}

// ---------------------------------------------------------------- jls(8)

// jlsMain is usr.sbin/jls/jls.c: parameters named on the command line are printed space
// separated, one jail a line; without any, the default table. -j limits to one jail (not
// found: "jls: jail "NAME" not found", exit 1), -n prints name=value, -q quotes, -N shows
// names in the default table, -h prints a header line of the parameter names.
func jlsMain(args []string) int {
	var jflag string
	var nflag, qflag, Nflag, hflag, dflag bool
	i := 0
	for ; i < len(args) && strings.HasPrefix(args[i], "-") && len(args[i]) > 1; i++ {
		a := args[i]
		if a == "--" {
			i++
			break
		}
		for k := 1; k < len(a); k++ {
			switch a[k] {
			case 'j':
				if k+1 < len(a) {
					jflag = a[k+1:]
				} else if i+1 < len(args) {
					i++
					jflag = args[i]
				} else {
					fmt.Fprintln(os.Stderr, "usage: jls [-dhNnqv] [-j jail] [param ...]")
					return 1
				}
				k = len(a)
			case 'n', 's':
				nflag = true
			case 'q':
				qflag = true
			case 'N':
				Nflag = true
			case 'h':
				hflag = true
			case 'd':
				dflag = true
			case 'v':
			default:
				fmt.Fprintln(os.Stderr, "usage: jls [-dhNnqv] [-j jail] [param ...]")
				return 1
			}
		}
	}
	_ = dflag
	params := args[i:]
	for _, p := range params {
		if known, _ := kernelParam(p); !known && p != "all" {
			warnx("jls", "unknown parameter: %s", p)
			return 1
		}
	}
	var jails []*jailRec
	if jflag != "" {
		r := findJail(jflag)
		if r == nil {
			warnx("jls", "%s", notFound(jflag))
			return 1
		}
		jails = []*jailRec{r}
	} else {
		jails = runningJails()
	}
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	if len(params) == 0 && !nflag {
		if Nflag {
			fmt.Fprintln(w, " JID             IP Address      Hostname                      Path")
		} else {
			fmt.Fprintln(w, "   JID  IP Address      Hostname                      Path")
		}
		for _, r := range jails {
			ip := ""
			if len(r.IP4) > 0 {
				ip = r.IP4[0]
			}
			if Nflag {
				fmt.Fprintf(w, " %-15s ", r.Name)
			} else {
				fmt.Fprintf(w, "%6d  ", r.JID)
			}
			fmt.Fprintf(w, "%-15.15s %-29.29s %.74s\n", ip, r.Hostname, r.Path)
		}
		return 0
	}
	if len(params) == 0 {
		params = []string{"jid", "name", "path", "host.hostname", "ip4.addr", "persist"}
	}
	if hflag {
		fmt.Fprintln(w, strings.Join(params, " "))
	}
	for _, r := range jails {
		var out []string
		for _, p := range params {
			v, isBool := jlsValue(r, p)
			switch {
			case nflag && isBool:
				if v == "true" {
					out = append(out, p)
				} else {
					i := strings.LastIndexByte(p, '.') + 1
					out = append(out, p[:i]+"no"+p[i:])
				}
			case nflag:
				out = append(out, p+"="+quoted(v, qflag || true))
			default:
				out = append(out, quoted(v, qflag))
			}
		}
		fmt.Fprintln(w, strings.Join(out, " "))
	}
	return 0
}

func jlsValue(r *jailRec, p string) (string, bool) {
	switch p {
	case "jid":
		return strconv.Itoa(r.JID), false
	case "name":
		return r.Name, false
	case "path":
		return r.Path, false
	case "host.hostname":
		return r.Hostname, false
	case "ip4.addr":
		return strings.Join(r.IP4, ","), false
	case "persist":
		return strconv.FormatBool(r.Persist), true
	case "dying":
		return "false", true
	case "parent", "securelevel", "children.cur":
		return "0", false
	}
	if _, isBool := kernelParam(p); isBool {
		return "false", true
	}
	return "", false
}

// quoted is jls.c quoted_print: only with -q (or for -n) are values with spaces or quotes
// put in quotes; an empty string is "" then.
func quoted(s string, q bool) string {
	if !q {
		return s
	}
	var qc byte
	switch {
	case s == "":
		return `""`
	case strings.Contains(s, "'"):
		qc = '"'
	case strings.Contains(s, `"`):
		qc = '\''
	case strings.ContainsAny(s, " \t"):
		qc = '"'
	default:
		return s
	}
	var b strings.Builder
	b.WriteByte(qc)
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' || s[i] == qc {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte(qc)
	return b.String()
}

// ---------------------------------------------------------------- jexec(8)

// jexecMain is usr.sbin/jexec/jexec.c: jexec [-l] [-u user | -U user] jail [command ...];
// the command (default: the jail's shell, $SHELL or /bin/sh) runs in the jail with the
// caller's environment unless -l, and jexec exits with its status. Not found:
// "jexec: jail "NAME" not found", exit 1.
func jexecMain(args []string) int {
	clean := false
	i := 0
	for ; i < len(args) && strings.HasPrefix(args[i], "-"); i++ {
		switch args[i] {
		case "-l":
			clean = true
		case "-u", "-U":
			i++ // only root is emulated
		case "--":
			i++
		default:
			fmt.Fprintln(os.Stderr, "usage: jexec [-l] [-d working-directory] [-u username | -U username] jail [command ...]")
			return 1
		}
		if i < len(args) && args[i] == "--" {
			i++
			break
		}
	}
	if i >= len(args) {
		fmt.Fprintln(os.Stderr, "usage: jexec [-l] [-d working-directory] [-u username | -U username] jail [command ...]")
		return 1
	}
	r := findJail(args[i])
	if r == nil {
		warnx("jexec", "%s", notFound(args[i]))
		return 1
	}
	argv := args[i+1:]
	if len(argv) == 0 {
		sh := os.Getenv("SHELL")
		if sh == "" || clean {
			sh = "/bin/sh"
		}
		argv = []string{sh, "-i"}
	}
	cmd, err := r.attachCmd(clean, argv)
	if err != nil {
		warnx("jexec", "%v", err)
		return 1
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT)
	if err := startInNS(cmd, r); err != nil {
		warnx("jexec", "jail_attach(%d): %s", r.JID, errno(err))
		return 1
	}
	// jexec execs; here it waits and passes signals and the exit status on
	go func() {
		for s := range sig {
			_ = cmd.Process.Signal(s)
		}
	}()
	err = cmd.Wait()
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	warnx("jexec", "%v", err)
	return 1
}
