package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rollout-dev/rollout/proto/command"
)

// linux is the test lab's stand-in for jail(8): it does what jail(8) does, in the same
// order, with Linux tools. A jail is a pid and mount namespace whose first process (a
// `sleep infinity` from the host, kept by unshare) only holds the namespaces, the way
// jail(8)'s persist holds a jail; exec.start, exec.stop and Exec run in the namespaces,
// chrooted into the jail's path. Differences from FreeBSD:
//   - devfs is a small tmpfs on the jail's /dev with null, zero, random, urandom and tty
//     (what devfs ruleset 4, devfsrules_jail, mostly leaves visible);
//   - the network is shared; ip4.addr with an interface becomes an `ip addr` alias;
//   - the md(4) /etc is a tmpfs whose source is its label, rollout:NAME;
//   - it reads /proc and its state files directly, so its Runner must be local.
type linux struct {
	r        command.Runner
	log      *slog.Logger
	stateDir string
	procDir  string
	// stopTimeout is how long the jail's processes get between SIGTERM and SIGKILL, as
	// jail(8)'s stop.timeout (default 10 s); execStopTimeout bounds exec.stop.
	stopTimeout, execStopTimeout time.Duration
	poll                         time.Duration
}

// NewLinux returns the Linux stand-in. stateDir holds NAME.pid (the running jail's
// processes), NAME.log (output of the last start and stop) and NAME.conf. log nil:
// slog.Default().
func NewLinux(r command.Runner, log *slog.Logger, stateDir string) Host {
	if log == nil {
		log = slog.Default()
	}
	return &linux{r: r, log: log, stateDir: stateDir, procDir: "/proc",
		stopTimeout: 10 * time.Second, execStopTimeout: time.Minute, poll: 50 * time.Millisecond}
}

func (l *linux) Name() string { return "linux" }

func (l *linux) ConfFile(j Jail) string { return filepath.Join(l.stateDir, j.Name+".conf") }

// RenderConf writes the same jail.conf(5) as FreeBSD, so that the lab refuses the same
// values; the Linux host itself does not read it.
func (l *linux) RenderConf(j Jail) ([]byte, error) {
	return (&freeBSD{}).RenderConf(j)
}

func (l *linux) pidFile(name string) string { return filepath.Join(l.stateDir, name+".pid") }
func (l *linux) logFile(name string) string { return filepath.Join(l.stateDir, name+".log") }

// jailState is NAME.pid: the namespace holder (unshare) and its child, the namespaces'
// first process, with its start time so that a reused pid is not taken for the jail.
type jailState struct {
	Holder int    `json:"holder"`
	Init   int    `json:"init"`
	Start  uint64 `json:"start"`
	Path   string `json:"path"`
}

func (l *linux) state(name string) (jailState, bool, error) {
	var st jailState
	data, err := os.ReadFile(l.pidFile(name))
	if errors.Is(err, fs.ErrNotExist) {
		return st, false, nil
	}
	if err != nil {
		return st, false, jailErr(name, err)
	}
	if err := json.Unmarshal(data, &st); err != nil || st.Init <= 0 {
		return st, false, fmt.Errorf("jail %s: corrupt %s: %q", name, l.pidFile(name), data)
	}
	ps, err := readStat(l.procDir, st.Init)
	running := err == nil && ps.Start == st.Start && ps.State != 'Z' && ps.State != 'X'
	return st, running, nil
}

func (l *linux) Running(ctx context.Context, name string) (bool, error) {
	_, running, err := l.Root(ctx, name)
	return running, err
}

func (l *linux) Root(_ context.Context, name string) (string, bool, error) {
	if err := checkName(name); err != nil {
		return "", false, err
	}
	st, running, err := l.state(name)
	if !running {
		return "", false, err
	}
	return st.Path, true, err
}

func (l *linux) mounts() ([]mountEntry, error) {
	data, err := os.ReadFile(filepath.Join(l.procDir, "self", "mountinfo"))
	if err != nil {
		return nil, err
	}
	return parseMountinfo(data)
}

func (l *linux) Mounted(_ context.Context, p string) (string, bool, error) {
	ms, err := l.mounts()
	if err != nil {
		return "", false, err
	}
	m, ok := lastAt(ms, path.Clean(p))
	return m.FSType, ok, nil
}

// inJail wraps argv to run in the jail's namespaces, chrooted into its path. nsenter
// without --root leaves the host's view of the copied mount table, where chroot(8) is.
func inJail(pid, root string, argv ...string) []string {
	return append([]string{"nsenter", "--target", pid, "--mount", "--pid", "--", "chroot", root}, argv...)
}

// toLog wraps argv so that its output goes to file and it gets no pipe of ours: daemons
// started by /etc/rc keep their stdout and stderr, and a pipe they hold would make the
// Runner wait for them.
func toLog(file string, argv ...string) []string {
	return append([]string{"/bin/sh", "-c", `exec "$@" </dev/null >>"$0" 2>&1`, file}, argv...)
}

// aliasArgv turns an ip4.addr value into `ip addr` arguments, as jail(8) adds an alias on
// interface (or on the IFACE of "IFACE|ADDR"); "" when no interface applies.
func aliasArgv(op, ip, iface string) []string {
	if i := strings.IndexByte(ip, '|'); i >= 0 {
		iface, ip = ip[:i], ip[i+1:]
	}
	if iface == "" {
		return nil
	}
	if f := strings.Fields(ip); len(f) > 0 {
		ip = f[0] // ifconfig parameters after the address mean nothing to ip(8)
	}
	if !strings.Contains(ip, "/") {
		ip += "/32"
	}
	return []string{"ip", "addr", op, ip, "dev", iface}
}

// mountArgv is how the lab mounts one fstab line. nullfs becomes a bind mount, made
// private so that mounts below it do not propagate back to the snapshot it shows, and
// remounted read-only (a bind mount ignores ro when it is made).
// mountArgv translates one fstab line. A nullfs of DIR/.zfs/snapshot/N, where DIR is where a
// ZFS dataset is mounted, becomes a mount of DATASET@N by name: on Linux a snapshot that is
// mounted twice can no longer be reached through its .zfs/snapshot path ("Too many levels of
// symbolic links", openzfs/zfs#9958), so the lab never relies on the automount. FreeBSD's
// nullfs has no such problem.
func mountArgv(e fstabEntry, mounts []mountEntry) [][]string {
	opts := strings.Join(e.Opts, ",")
	switch e.VFSType {
	case "nullfs":
		if snap, ok := snapshotSource(e.Spec, mounts); ok {
			return [][]string{{"mount", "-t", "zfs", "-o", "ro", snap, e.File}, {"mount", "--make-private", e.File}}
		}
		argvs := [][]string{{"mount", "--bind", e.Spec, e.File}, {"mount", "--make-private", e.File}}
		if e.has("ro") {
			argvs = append(argvs, []string{"mount", "-o", "remount,bind,ro", e.File})
		}
		return argvs
	default:
		argv := []string{"mount", "-t", e.VFSType}
		if opts != "rw" && opts != "defaults" {
			argv = append(argv, "-o", opts)
		}
		return [][]string{append(argv, e.Spec, e.File)}
	}
}

func (l *linux) readFstab(j Jail) ([]fstabEntry, error) {
	data, err := os.ReadFile(j.Fstab)
	if err != nil {
		return nil, err
	}
	return parseFstab(j.Fstab, data)
}

func holderArgv(pidTmp, logFile string) []string {
	// setsid -f detaches it from rollout; the shell records its pid, which exec keeps for
	// unshare; --kill-child takes the namespaces down if unshare is killed
	return []string{"setsid", "-f", "/bin/sh", "-c",
		`echo $$ >"$0"; exec unshare --mount --pid --fork --kill-child -- sleep infinity </dev/null >>"$1" 2>&1`,
		pidTmp, logFile}
}

// StartArgv lists the commands of a start; PID stands for the namespaces' first process,
// known only then.
func (l *linux) StartArgv(j Jail) [][]string {
	var argvs [][]string
	for _, ip := range j.IP4 {
		if a := aliasArgv("add", ip, j.Interface); a != nil {
			argvs = append(argvs, a)
		}
	}
	ms, _ := l.mounts()
	if es, err := l.readFstab(j); err == nil {
		for _, e := range es {
			argvs = append(argvs, mountArgv(e, ms)...)
		}
	}
	argvs = append(argvs, devfsArgv(j.Path)...)
	if len(j.Prestart) > 0 {
		argvs = append(argvs, j.Prestart)
	}
	argvs = append(argvs, holderArgv(l.pidFile(j.Name)+".holder", l.logFile(j.Name)))
	return append(argvs, toLog(l.logFile(j.Name), inJail("PID", j.Path, "/bin/sh", "-c", j.ExecStart)...))
}

func (l *linux) StopArgv(j Jail) [][]string {
	var argvs [][]string
	if j.ExecStop != "" {
		argvs = append(argvs, toLog(l.logFile(j.Name), inJail("PID", j.Path, "/bin/sh", "-c", j.ExecStop)...))
	}
	argvs = append(argvs, termArgv("PIDS"), []string{"kill", "-s", "KILL", "PID"})
	if len(j.Poststop) > 0 {
		argvs = append(argvs, j.Poststop)
	}
	if es, err := l.readFstab(j); err == nil {
		for i := len(es) - 1; i >= 0; i-- {
			argvs = append(argvs, []string{"umount", es[i].File})
		}
	}
	for _, ip := range j.IP4 {
		if a := aliasArgv("del", ip, j.Interface); a != nil {
			argvs = append(argvs, a)
		}
	}
	return argvs
}

// termArgv signals the jail's processes (all but the namespace's first, which only holds
// the namespaces) by their host pids: util-linux kill and dash refuse "kill -1", and signalling
// from the host needs no nsenter.
func termArgv(pids ...string) []string {
	return append([]string{"kill", "-s", "TERM", "--"}, pids...)
}

// startProgress is what a start has done so far, for its undo.
type startProgress struct {
	aliases  [][]string
	mounted  bool
	prestart bool
	st       *jailState
}

func (l *linux) Start(ctx context.Context, j Jail) error {
	if _, err := l.RenderConf(j); err != nil {
		return err
	}
	if root, running, err := l.Root(ctx, j.Name); err != nil {
		return err
	} else if running {
		return fmt.Errorf("jail %s: already running (root %s)", j.Name, root)
	}
	ms, err := l.mounts()
	if err != nil {
		return jailErr(j.Name, err)
	}
	if left := reverseUnder(ms, j.Path); len(left) > 0 {
		return fmt.Errorf("jail %s: not running but still mounted: %s (stop it first)", j.Name, strings.Join(left, ", "))
	}
	entries, err := l.readFstab(j)
	if err != nil {
		return jailErr(j.Name, err)
	}
	if err := os.MkdirAll(l.stateDir, 0o755); err != nil {
		return jailErr(j.Name, err)
	}
	// the log holds this start's output only, so that its tail explains a failure
	if err := os.WriteFile(l.logFile(j.Name), nil, 0o644); err != nil {
		return jailErr(j.Name, err)
	}
	var p startProgress
	err = l.start(ctx, j, entries, &p)
	if err == nil {
		l.log.Info("jail started", "jail", j.Name, "pid", p.st.Init, "root", j.Path)
		return nil
	}
	err = fmt.Errorf("start: %w%s", err, l.logTail(j.Name))
	// undo with a context of its own: a cancelled start must still be taken down
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.stopTimeout+l.execStopTimeout)
	defer cancel()
	if uerr := l.undo(uctx, j, &p); uerr != nil {
		err = errors.Join(err, fmt.Errorf("undo: %w", uerr))
	}
	return jailErr(j.Name, err)
}

func (l *linux) start(ctx context.Context, j Jail, entries []fstabEntry, p *startProgress) error {
	for _, ip := range j.IP4 {
		if a := aliasArgv("add", ip, j.Interface); a != nil {
			if err := l.run(ctx, a); err != nil {
				return err
			}
			p.aliases = append(p.aliases, aliasArgv("del", ip, j.Interface))
		}
	}
	ms, err := l.mounts()
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.VFSType == "devfs" {
			continue // mount.devfs below makes the jail's /dev
		}
		for _, argv := range mountArgv(e, ms) {
			p.mounted = true
			if err := l.run(ctx, argv); err != nil {
				return err
			}
		}
	}
	// jail(8) mounts devfs after the fstab and before exec.prestart (mount.devfs)
	for _, argv := range devfsArgv(j.Path) {
		p.mounted = true
		if err := l.run(ctx, argv); err != nil {
			return fmt.Errorf("mount.devfs: %w", err)
		}
	}
	if len(j.Prestart) > 0 {
		p.prestart = true
		if err := l.run(ctx, j.Prestart); err != nil {
			return fmt.Errorf("prestart hook: %w", err)
		}
	}
	st, err := l.spawn(ctx, j)
	if st != nil {
		p.st = st
	}
	if err != nil {
		return err
	}
	if err := l.run(ctx, toLog(l.logFile(j.Name), inJail(strconv.Itoa(st.Init), j.Path, "/bin/sh", "-c", j.ExecStart)...)); err != nil {
		return fmt.Errorf("exec.start: %w", err)
	}
	if _, running, err := l.state(j.Name); err != nil {
		return err
	} else if !running {
		return errors.New("the jail's processes are gone after exec.start")
	}
	return nil
}

// spawn starts the namespace holder and records it in NAME.pid.
func (l *linux) spawn(ctx context.Context, j Jail) (*jailState, error) {
	tmp := l.pidFile(j.Name) + ".holder"
	_ = os.Remove(tmp)
	if err := l.run(ctx, holderArgv(tmp, l.logFile(j.Name))); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(tmp)
	_ = os.Remove(tmp)
	if err != nil {
		return nil, fmt.Errorf("namespace holder left no pid: %w", err)
	}
	holder, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || holder <= 0 {
		return nil, fmt.Errorf("namespace holder wrote pid %q", data)
	}
	st := &jailState{Holder: holder, Path: j.Path}
	// unshare forks the namespaces' first process right away
	for deadline := time.Now().Add(5 * time.Second); ; {
		kids, err := children(l.procDir, holder)
		if err != nil {
			return st, err
		}
		if len(kids) == 1 {
			st.Init = kids[0]
			break
		}
		if !alive(l.procDir, holder) || time.Now().After(deadline) {
			return st, fmt.Errorf("unshare (pid %d) did not start the jail's first process", holder)
		}
		if err := sleepCtx(ctx, l.poll); err != nil {
			return st, err
		}
	}
	ps, err := readStat(l.procDir, st.Init)
	if err != nil {
		return st, err
	}
	st.Start = ps.Start
	data, _ = json.Marshal(st)
	if err := writeAtomic(l.pidFile(j.Name), append(data, '\n')); err != nil {
		return st, err
	}
	return st, nil
}

func (l *linux) undo(ctx context.Context, j Jail, p *startProgress) error {
	var errs []error
	if p.st != nil {
		errs = append(errs, l.kill(ctx, j.Name, *p.st))
	}
	if p.prestart || p.mounted {
		errs = append(errs, l.teardown(ctx, j, p.prestart))
	}
	for _, a := range p.aliases {
		errs = append(errs, l.run(ctx, a))
	}
	return errors.Join(errs...)
}

// kill takes the jail's processes down: SIGKILL to the namespaces' first process kills
// every process in its pid namespace. Then NAME.pid goes.
func (l *linux) kill(ctx context.Context, name string, st jailState) error {
	if st.Init > 0 && alive(l.procDir, st.Init) {
		if err := l.run(ctx, []string{"kill", "-s", "KILL", strconv.Itoa(st.Init)}); err != nil && alive(l.procDir, st.Init) {
			return err
		}
	} else if st.Holder > 0 && alive(l.procDir, st.Holder) {
		if err := l.run(ctx, []string{"kill", "-s", "KILL", strconv.Itoa(st.Holder)}); err != nil && alive(l.procDir, st.Holder) {
			return err
		}
	}
	if err := l.waitFor(ctx, 5*time.Second, func() bool {
		return !alive(l.procDir, st.Init) && !alive(l.procDir, st.Holder)
	}); err != nil {
		return fmt.Errorf("processes %d and %d still alive after SIGKILL", st.Holder, st.Init)
	}
	if err := os.Remove(l.pidFile(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// teardown runs the Poststop hook (if the Prestart hook ran) and unmounts everything at
// or below the jail's path, last mounted first. It stops at the first unmount that fails:
// the ones above it would be busy too.
func (l *linux) teardown(ctx context.Context, j Jail, hook bool) error {
	var errs []error
	if hook && len(j.Poststop) > 0 {
		if err := l.run(ctx, j.Poststop); err != nil {
			errs = append(errs, fmt.Errorf("poststop hook: %w", err))
		}
	}
	ms, err := l.mounts()
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, mp := range reverseUnder(ms, j.Path) {
		// never lazy (-l): a busy mount means something still uses the jail
		if err := l.run(ctx, []string{"umount", mp}); err != nil {
			return errors.Join(append(errs, fmt.Errorf("unmount %s: %w", mp, err))...)
		}
	}
	return errors.Join(errs...)
}

func (l *linux) Stop(ctx context.Context, j Jail) error {
	if err := j.check(); err != nil {
		return err
	}
	st, running, err := l.state(j.Name)
	if err != nil {
		return err
	}
	if running {
		l.stopProcesses(ctx, j, st)
	}
	if st.Init > 0 {
		// kill also clears a stale NAME.pid
		if err := l.kill(ctx, j.Name, st); err != nil {
			return jailErr(j.Name, fmt.Errorf("stop: %w", err))
		}
	}
	ms, err := l.mounts()
	if err != nil {
		return jailErr(j.Name, err)
	}
	left := reverseUnder(ms, j.Path)
	if !running && len(left) == 0 {
		return nil
	}
	if !running {
		l.log.Warn("cleaning up a jail that is not running", "jail", j.Name, "mounts", left)
	}
	var errs []error
	errs = append(errs, l.teardown(ctx, j, true))
	for _, ip := range j.IP4 {
		if a := aliasArgv("del", ip, j.Interface); a != nil {
			if err := l.run(ctx, a); err != nil && !strings.Contains(err.Error(), "Cannot assign requested address") {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return jailErr(j.Name, fmt.Errorf("stop: %w", err))
	}
	l.log.Info("jail stopped", "jail", j.Name)
	return nil
}

// stopProcesses does what jail -r does before removing a jail: exec.stop in the jail, then
// SIGTERM to its processes and up to stopTimeout for them to exit. Failures are logged:
// the SIGKILL that follows ends the jail anyway.
func (l *linux) stopProcesses(ctx context.Context, j Jail, st jailState) {
	if j.ExecStop != "" {
		sctx, cancel := context.WithTimeout(ctx, l.execStopTimeout)
		err := l.run(sctx, toLog(l.logFile(j.Name), inJail(strconv.Itoa(st.Init), st.Path, "/bin/sh", "-c", j.ExecStop)...))
		cancel()
		if err != nil {
			l.log.Warn("exec.stop failed", "jail", j.Name, "err", err)
		}
	}
	members, err := nsMembers(l.procDir, st.Init)
	if err != nil || len(members) == 0 {
		return
	}
	ids := make([]string, len(members))
	for i, p := range members {
		ids[i] = strconv.Itoa(p)
	}
	if err := l.run(ctx, termArgv(ids...)); err != nil && !errors.Is(ctx.Err(), context.Canceled) {
		l.log.Warn("SIGTERM to the jail's processes failed", "jail", j.Name, "err", err)
	}
	if err := l.waitFor(ctx, l.stopTimeout, func() bool {
		m, err := nsMembers(l.procDir, st.Init)
		return err != nil || len(m) == 0
	}); err != nil {
		l.log.Warn("jail processes ignored SIGTERM; killing them", "jail", j.Name, "timeout", l.stopTimeout)
	}
}

func (l *linux) Exec(ctx context.Context, name string, argv []string, stdout, stderr io.Writer) error {
	if err := checkName(name); err != nil {
		return err
	}
	if len(argv) == 0 {
		return fmt.Errorf("jail %s: exec: empty command", name)
	}
	st, running, err := l.state(name)
	if err != nil {
		return err
	}
	if !running {
		return fmt.Errorf("jail %s: %w", name, ErrNotRunning)
	}
	return jailErr(name, l.r.Run(ctx, command.Cmd{Argv: inJail(strconv.Itoa(st.Init), st.Path, argv...), Stdout: stdout, Stderr: stderr}))
}

// MountEtc: the md(4) disk's stand-in is a tmpfs whose source names it, so that
// /proc/self/mountinfo shows whose it is.
func (l *linux) MountEtc(ctx context.Context, name, dir, backend, size string) (string, error) {
	if err := checkEtcArgs(name, dir, backend); err != nil {
		return "", err
	}
	if backend == BackendTmpfs {
		return "", nil
	}
	if !sizeRE.MatchString(size) {
		return "", fmt.Errorf("jail %s: /etc size %q is not a size such as 32m", name, size)
	}
	ms, err := l.mounts()
	if err != nil {
		return "", jailErr(name, err)
	}
	if m, ok := lastAt(ms, dir); ok {
		return "", fmt.Errorf("jail %s: %s is already mounted (from %s)", name, dir, m.Source)
	}
	if err := l.run(ctx, []string{"mount", "-t", "tmpfs", "-o", "size=" + size + ",mode=0755", EtcLabel(name), dir}); err != nil {
		return "", jailErr(name, err)
	}
	return EtcLabel(name), nil
}

func (l *linux) UnmountEtc(ctx context.Context, name, dir, backend string) error {
	if err := checkEtcArgs(name, dir, backend); err != nil {
		return err
	}
	if backend == BackendTmpfs {
		return nil
	}
	ms, err := l.mounts()
	if err != nil {
		return jailErr(name, err)
	}
	m, ok := lastAt(ms, dir)
	if !ok {
		return nil
	}
	if m.Source != EtcLabel(name) || m.FSType != "tmpfs" {
		return fmt.Errorf("jail %s: %s is mounted from %s (%s), not the tmpfs %s; left alone", name, dir, m.Source, m.FSType, EtcLabel(name))
	}
	return jailErr(name, l.run(ctx, []string{"umount", dir}))
}

// OrphanEtc: a tmpfs labelled rollout:NAME while NAME does not run. (A tmpfs has no
// existence apart from its mount, so unlike an md(4) disk it cannot be left unmounted.)
func (l *linux) OrphanEtc(ctx context.Context) ([]string, error) {
	ms, err := l.mounts()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range ms {
		name, ok := strings.CutPrefix(m.Source, etcLabelPrefix)
		if !ok || m.FSType != "tmpfs" || checkName(name) != nil {
			continue
		}
		if running, err := l.Running(ctx, name); err != nil {
			return nil, err
		} else if !running {
			out = append(out, m.Target)
		}
	}
	return out, nil
}

func (l *linux) FreeEtc(ctx context.Context, id string) error {
	ms, err := l.mounts()
	if err != nil {
		return err
	}
	m, ok := lastAt(ms, id)
	if !ok || m.FSType != "tmpfs" || !strings.HasPrefix(m.Source, etcLabelPrefix) {
		return fmt.Errorf("free /etc: %q is not a mount point of a tmpfs labelled %s*", id, etcLabelPrefix)
	}
	return l.run(ctx, []string{"umount", id})
}

func (l *linux) run(ctx context.Context, argv []string) error {
	return l.r.Run(ctx, command.Cmd{Argv: argv})
}

// logTail returns the end of the jail's log for an error message.
func (l *linux) logTail(name string) string {
	data, err := os.ReadFile(l.logFile(name))
	if err != nil || len(strings.TrimSpace(string(data))) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > 10 {
		lines = lines[len(lines)-10:]
	}
	return fmt.Sprintf(" (%s: %s)", l.logFile(name), strings.Join(lines, "; "))
}

func (l *linux) waitFor(ctx context.Context, d time.Duration, done func() bool) error {
	deadline := time.Now().Add(d)
	for !done() {
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
		if err := sleepCtx(ctx, l.poll); err != nil {
			return err
		}
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func writeAtomic(file string, data []byte) error {
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, file)
}

// devfsArgv makes the jail's /dev: a tmpfs with the few device nodes a jail's programs expect
// (a shell cannot even start a background job without /dev/null).
func devfsArgv(path string) [][]string {
	dev := filepath.Join(path, "dev")
	argvs := [][]string{{"mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "devfs", dev}}
	for _, n := range []struct {
		name         string
		major, minor int
	}{{"null", 1, 3}, {"zero", 1, 5}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}} {
		argvs = append(argvs, []string{"mknod", "-m", "666", filepath.Join(dev, n.name), "c", strconv.Itoa(n.major), strconv.Itoa(n.minor)})
	}
	return argvs
}

// snapshotSource turns DIR/.zfs/snapshot/N into DATASET@N when a ZFS dataset is mounted at DIR.
func snapshotSource(spec string, mounts []mountEntry) (string, bool) {
	dir, snap, ok := strings.Cut(spec, "/.zfs/snapshot/")
	if !ok || snap == "" || strings.Contains(snap, "/") {
		return "", false
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		if m := mounts[i]; m.Target == dir && m.FSType == "zfs" && !strings.Contains(m.Source, "@") {
			return m.Source + "@" + snap, true
		}
	}
	return "", false
}

// SnapshotDir mounts dataset@snap read-only under the state directory (see mountArgv for why
// not through mountpoint/.zfs/snapshot) and returns where; release unmounts it.
func (l *linux) SnapshotDir(ctx context.Context, dataset, _ /* mountpoint */, snap string) (string, func(), error) {
	dir := filepath.Join(l.stateDir, "snapshots", strings.ReplaceAll(dataset, "/", "_")+"@"+snap)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, err
	}
	if _, ok, _ := l.Mounted(ctx, dir); !ok {
		if err := l.run(ctx, []string{"mount", "-t", "zfs", "-o", "ro", dataset + "@" + snap, dir}); err != nil {
			return "", nil, fmt.Errorf("snapshot %s@%s: %w", dataset, snap, err)
		}
	}
	release := func() {
		if err := l.run(context.WithoutCancel(ctx), []string{"umount", dir}); err != nil {
			l.log.Warn("cannot unmount snapshot", "dir", dir, "err", err)
			return
		}
		_ = os.Remove(dir)
	}
	return dir, release, nil
}
