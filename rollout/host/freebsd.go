package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rollout-dev/rollout/proto/command"
)

// freeBSD drives jail(8), jls(8), jexec(8), mdconfig(8), newfs(8), mount(8) and umount(8).
type freeBSD struct {
	r        command.Runner
	log      *slog.Logger
	confDir  string
	busyWait time.Duration // between retries of an unmount that found the file system busy
}

// NewFreeBSD returns the FreeBSD host. log nil: slog.Default().
func NewFreeBSD(r command.Runner, log *slog.Logger) Host {
	if log == nil {
		log = slog.Default()
	}
	return &freeBSD{r: r, log: log, confDir: "/etc/jail.conf.d", busyWait: 500 * time.Millisecond}
}

// FreeBSD's programs, by absolute path: root's cron runs with PATH=/usr/bin:/bin
// (paths.h _PATH_DEFPATH), where none of them is.
const (
	jailBin     = "/usr/sbin/jail"
	jlsBin      = "/usr/sbin/jls"
	jexecBin    = "/usr/sbin/jexec"
	mdconfigBin = "/sbin/mdconfig"
	newfsBin    = "/sbin/newfs"
	mountBin    = "/sbin/mount"
	umountBin   = "/sbin/umount"
	ifconfigBin = "/sbin/ifconfig"
	rctlBin     = "/usr/bin/rctl"
)

// ConfFile is the per-jail file that rc.d/jail also finds (after /etc/jail.NAME.conf and
// before /etc/jail.conf), so `service jail start NAME` at boot uses the same definition.
func (f *freeBSD) ConfFile(j Jail) string { return path.Join(f.confDir, j.Name+".conf") }

// Parameters rollout writes itself; Params may not override them.
var managedParams = map[string]bool{
	"name": true, "path": true, "host.hostname": true, "mount.fstab": true, "mount.devfs": true,
	"interface": true, "ip4.addr": true, "exec.prestart": true, "exec.start": true,
	"exec.stop": true, "exec.poststop": true, "exec.created": true, "exec.clean": true, "exec.consolelog": true,
	"exec.timeout": true, "stop.timeout": true,
}

var paramRE = regexp.MustCompile(`^[a-z0-9_]+(\.[a-z0-9_]+)*$`)

// CheckConfValue refuses what jail.conf(5) would not read back as written. Inside double
// quotes jail(8) still interprets '\' escapes and expands $variables (usr.sbin/jail/jaillex.l),
// so values that would need either are refused rather than escaped: none of rollout's values
// should contain them. The configuration is checked with this same rule when it loads, so a
// bad value is refused before anything runs.
func CheckConfValue(key, v string) error {
	for _, r := range v {
		if r < 0x20 || r == 0x7f || strings.ContainsRune("\"\\;$", r) {
			return fmt.Errorf("%s %q: quotes, '\\', ';', '$' and control characters are not allowed in jail.conf values", key, v)
		}
	}
	return nil
}

// confString quotes v for jail.conf(5).
func confString(key, v string) (string, error) {
	if err := CheckConfValue(key, v); err != nil {
		return "", err
	}
	return `"` + v + `"`, nil
}

// RenderConf writes the jail in jail.conf(5) syntax.
//
// The /etc hooks: jail(8) creates a jail by adding the IP addresses, mounting "mount",
// "mount.fstab" and "mount.devfs", running exec.prestart, and only then creating the jail
// and running exec.start (usr.sbin/jail/jail.c, JF_START; jail(8): exec.prestart runs "in
// the system environment before a jail is created"). So exec.prestart sees the nullfs root
// mounted and can put the memory /etc inside it before /etc/rc reads it. At removal
// exec.poststop runs after the jail is removed and before mount.devfs and mount.fstab are
// unmounted in reverse, so it can unmount /etc before jail(8) unmounts the root under it.
//
// As rc.d/jail does, the conf always has exec.clean (the jail's rc must not inherit rollout's
// environment: SSH_AUTH_SOCK, LANG, ...) and exec.consolelog (see Jail.ConsoleLog).
func (f *freeBSD) RenderConf(j Jail) ([]byte, error) {
	if err := j.check(); err != nil {
		return nil, err
	}
	if j.ExecStart == "" {
		return nil, fmt.Errorf("jail %s: exec.start is empty (jail(8) needs a command or persist)", j.Name)
	}
	var b bytes.Buffer
	var err error
	put := func(key, v string) {
		if err != nil || v == "" {
			return
		}
		var q string
		if q, err = confString(key, v); err == nil {
			fmt.Fprintf(&b, "\t%s = %s;\n", key, q)
		}
	}
	fmt.Fprintf(&b, "# Written by rollout: changes here are overwritten.\n%s {\n", j.Name)
	put("path", j.Path)
	put("host.hostname", j.Hostname)
	put("mount.fstab", j.Fstab)
	b.WriteString("\tmount.devfs;\n")
	put("interface", j.Interface)
	if len(j.IP4) > 0 {
		qs := make([]string, len(j.IP4))
		for i, ip := range j.IP4 {
			if ip == "" {
				return nil, fmt.Errorf("jail %s: empty ip4.addr", j.Name)
			}
			q, qerr := confString("ip4.addr", ip)
			if qerr != nil {
				return nil, jailErr(j.Name, qerr)
			}
			qs[i] = q
		}
		fmt.Fprintf(&b, "\tip4.addr = %s;\n", strings.Join(qs, ", "))
	}
	b.WriteString("\texec.clean;\n")
	put("exec.consolelog", j.ConsoleLog)
	if j.ExecTimeout > 0 {
		put("exec.timeout", seconds(j.ExecTimeout))
	}
	if j.StopTimeout > 0 {
		put("stop.timeout", seconds(j.StopTimeout))
	}
	put("exec.prestart", command.Quote(j.Prestart))
	put("exec.start", j.ExecStart)
	put("exec.stop", j.ExecStop)
	put("exec.poststop", command.Quote(j.Poststop))
	// The limits: jail(8) runs exec.created in the system environment once the jail exists and
	// before exec.start (usr.sbin/jail/jail.c, IP_EXEC_CREATED after IP__OP), so the rules
	// are on the jail before its first process; one rule per command, appended with "+=".
	// rctl(8)'s jail rules outlive the jail (kern_rctl.c keeps them on the prison_racct, by
	// name), so exec.poststop, which jail -r runs right after the removal, takes them off
	// again; a jail that disappears without jail -r is handled by Stop (removeLimits).
	// rc.d/jail reads this same file, so a jail started at boot gets the same rules.
	for i, l := range j.Limits {
		op := "+="
		if i == 0 {
			op = "="
		}
		q, qerr := confString("exec.created", command.Quote(rctlAddArgv(j.Name, l)))
		if qerr != nil {
			return nil, jailErr(j.Name, qerr)
		}
		fmt.Fprintf(&b, "\texec.created %s %s;\n", op, q)
	}
	if len(j.Limits) > 0 {
		op := "+="
		if len(j.Poststop) == 0 {
			op = "="
		}
		q, qerr := confString("exec.poststop", command.Quote(rctlRemoveArgv(j.Name)))
		if qerr != nil {
			return nil, jailErr(j.Name, qerr)
		}
		fmt.Fprintf(&b, "\texec.poststop %s %s;\n", op, q)
	}
	keys := make([]string, 0, len(j.Params))
	for k := range j.Params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !paramRE.MatchString(k) {
			return nil, fmt.Errorf("jail %s: invalid jail parameter name %q", j.Name, k)
		}
		if managedParams[k] {
			return nil, fmt.Errorf("jail %s: parameter %q is set by rollout and cannot be given in params", j.Name, k)
		}
		if j.Params[k] == "" {
			// a boolean set by name alone, as jail.conf(5) allows ("allow.raw_sockets;")
			fmt.Fprintf(&b, "\t%s;\n", k)
			continue
		}
		put(k, j.Params[k])
	}
	if err != nil {
		return nil, jailErr(j.Name, err)
	}
	b.WriteString("}\n")
	return b.Bytes(), nil
}

// seconds renders a duration as jail.conf's whole seconds, rounding up so that a timeout is
// never shortened to 0 (which would mean "none").
func seconds(d time.Duration) string {
	return strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10)
}

// rctlAddArgv adds one rule on jail name (rctl(8): "rctl -a subject:subject-id:resource:action=amount").
func rctlAddArgv(name, rule string) []string {
	return []string{rctlBin, "-a", "jail:" + name + ":" + rule}
}

// rctlRemoveArgv removes every rule on jail name: a filter with only the subject matches them all.
func rctlRemoveArgv(name string) []string { return []string{rctlBin, "-r", "jail:" + name} }

// removeLimits takes the jail's rctl rules off after a jail that disappeared without jail -r
// (so without exec.poststop). A filter that matches no rule fails with ESRCH (kern_rctl.c
// rctl_rule_remove; rctl(8) prints "No such process"): nothing was left, which is the aim.
// Any other failure is logged, not returned: the jail is stopped, and its next start
// replaces deny rules of the same resource anyway (rctl_rule_add).
func (f *freeBSD) removeLimits(ctx context.Context, j Jail) {
	if len(j.Limits) == 0 {
		return
	}
	err := f.r.Run(ctx, command.Cmd{Argv: rctlRemoveArgv(j.Name)})
	var ce *command.Error
	if err == nil || errors.As(err, &ce) && ce.ExitCode == 1 && strings.Contains(ce.Stderr, "No such process") {
		return
	}
	f.log.Warn("could not remove the jail's rctl rules", "jail", j.Name, "err", err)
}

func (f *freeBSD) jailArgv(j Jail, op string) []string {
	return []string{jailBin, "-f", f.ConfFile(j), op, j.Name}
}

func jlsArgv(name string) []string { return []string{jlsBin, "-j", name, "jid", "name", "path"} }

var mountTableArgv = []string{mountBin, "-p"}

// StopArgv: jail(8) runs exec.stop, exec.poststop and the unmounts; the mount table is then
// read to confirm nothing of the jail is left.
func (f *freeBSD) StopArgv(j Jail) [][]string {
	return [][]string{f.jailArgv(j, "-r"), mountTableArgv}
}

// StartArgv: refuse a running jail or leftover mounts, create, confirm with jls.
func (f *freeBSD) StartArgv(j Jail) [][]string {
	return [][]string{jlsArgv(j.Name), mountTableArgv, f.jailArgv(j, "-c"), jlsArgv(j.Name)}
}

// jailNotFound recognises jail(8) and jls(8) reporting that no such jail runs. jail -r
// prints `"NAME" not found` and exits 1 (0 before FreeBSD 13, which did not count it as a
// failure); jls -j prints the kernel's `jail "NAME" not found` (or `is dying`) and exits 1.
func jailNotFound(err error, name string) bool {
	var ce *command.Error
	if !errors.As(err, &ce) || ce.ExitCode != 1 {
		return false
	}
	return strings.Contains(ce.Stderr, `"`+name+`" not found`) || strings.Contains(ce.Stderr, `"`+name+`" is dying`)
}

func (f *freeBSD) Stop(ctx context.Context, j Jail) error {
	if err := j.check(); err != nil {
		return err
	}
	if err := f.r.Run(ctx, command.Cmd{Argv: f.jailArgv(j, "-r")}); err != nil {
		switch {
		case jailNotFound(err, j.Name):
			f.log.Info("jail not running", "jail", j.Name)
			f.removeLimits(ctx, j)
		case ctx.Err() != nil:
			return jailErr(j.Name, fmt.Errorf("stop: %w", err))
		default:
			// jail(8) goes on after a failed exec.stop or exec.poststop once the jail is
			// removed (usr.sbin/jail/jail.c): if it is gone, what it left is cleaned up below
			if _, running, rerr := f.Root(ctx, j.Name); rerr != nil || running {
				return jailErr(j.Name, errors.Join(fmt.Errorf("stop: %w", err), rerr))
			}
			f.log.Warn("jail(8) failed but removed the jail; cleaning up after it", "jail", j.Name, "err", err)
			f.removeLimits(ctx, j)
		}
	}
	// A jail whose processes all exited disappears without exec.poststop or unmounts, and
	// a failed jail -r may stop half way: whatever is still mounted is cleaned up here.
	return jailErr(j.Name, f.cleanup(ctx, j, false))
}

// cleanup removes what a jail left behind when jail(8) did not: it runs the Poststop hook
// (so /etc is handled as at a normal stop), unmounts everything at or below the jail's
// path, last mounted first, and frees md(4) disks labelled for the jail. With freeMD the
// disks are freed even when nothing was mounted (after a failed start the hook's disk may
// exist unmounted).
func (f *freeBSD) cleanup(ctx context.Context, j Jail, freeMD bool) error {
	mounts, err := f.mounts(ctx)
	if err != nil {
		return err
	}
	left := reverseUnder(mounts, j.Path)
	if len(left) > 0 {
		f.log.Warn("cleaning up mounts jail(8) left behind", "jail", j.Name, "mounts", left)
		if len(j.Poststop) > 0 {
			if err := f.r.Run(ctx, command.Cmd{Argv: j.Poststop}); err != nil {
				// the unmounts below still free what they can
				f.log.Warn("poststop hook failed", "jail", j.Name, "err", err)
			}
			if mounts, err = f.mounts(ctx); err != nil {
				return err
			}
		}
		for _, mp := range reverseUnder(mounts, j.Path) {
			if err := f.unmount(ctx, mp); err != nil {
				return err
			}
		}
		mounts = outside(mounts, j.Path)
		// jail(8) did not remove the addresses it added either
		f.removeAliases(ctx, j)
	}
	if len(left) > 0 || freeMD {
		return f.freeLabelled(ctx, j.Name, mounts)
	}
	return nil
}

// unmount unmounts mp, never forced: a busy mount means something still uses the jail. A jail
// that was just removed can keep its file systems busy while it is dying (its last
// references go asynchronously), so EBUSY is retried for a few seconds.
func (f *freeBSD) unmount(ctx context.Context, mp string) error {
	var err error
	for i := 0; i < 10; i++ {
		if err = f.r.Run(ctx, command.Cmd{Argv: []string{umountBin, mp}}); err == nil || !isBusy(err) {
			break
		}
		if i < 9 {
			select {
			case <-ctx.Done():
				return fmt.Errorf("unmount %s: %w", mp, errors.Join(err, ctx.Err()))
			case <-time.After(f.busyWait):
			}
		}
	}
	if err != nil {
		return fmt.Errorf("unmount %s: %w", mp, err)
	}
	return nil
}

func isBusy(err error) bool {
	var ce *command.Error
	return errors.As(err, &ce) && strings.Contains(ce.Stderr, "busy")
}

// removeAliases removes the jail's ip4 addresses from their interfaces, as jail -r would
// have (ifconfig IFACE inet ADDR -alias). An address that is not there is no error.
func (f *freeBSD) removeAliases(ctx context.Context, j Jail) {
	for _, ip := range j.IP4 {
		argv := aliasRemoveArgv(ip, j.Interface)
		if argv == nil {
			continue
		}
		if err := f.r.Run(ctx, command.Cmd{Argv: argv}); err != nil {
			var ce *command.Error
			if errors.As(err, &ce) && strings.Contains(ce.Stderr, "Can't assign requested address") {
				continue
			}
			f.log.Warn("cannot remove a jail's address", "jail", j.Name, "err", err)
		}
	}
}

// aliasRemoveArgv is how jail(8) removes an ip4.addr value: "ADDR", "ADDR/PREFIX" or
// "IFACE|ADDR", on interface unless the value names its own. nil when no interface applies
// (jail(8) then added no alias).
func aliasRemoveArgv(ip, iface string) []string {
	if i := strings.IndexByte(ip, '|'); i >= 0 {
		iface, ip = ip[:i], ip[i+1:]
	}
	if iface == "" {
		return nil
	}
	if f := strings.Fields(ip); len(f) > 0 {
		ip = f[0]
	}
	ip, _, _ = strings.Cut(ip, "/")
	return []string{ifconfigBin, iface, "inet", ip, "-alias"}
}

func (f *freeBSD) Start(ctx context.Context, j Jail) error {
	if err := j.check(); err != nil {
		return err
	}
	if root, running, err := f.Root(ctx, j.Name); err != nil {
		return err
	} else if running {
		return fmt.Errorf("jail %s: already running (root %s)", j.Name, root)
	}
	mounts, err := f.mounts(ctx)
	if err != nil {
		return jailErr(j.Name, err)
	}
	if left := reverseUnder(mounts, j.Path); len(left) > 0 {
		// jail(8) would mount the fstab on top of them
		return fmt.Errorf("jail %s: not running but still mounted: %s (stop it first)", j.Name, strings.Join(left, ", "))
	}
	err = f.r.Run(ctx, command.Cmd{Argv: f.jailArgv(j, "-c")})
	if err == nil {
		root, running, rerr := f.Root(ctx, j.Name)
		switch {
		case rerr != nil:
			err = rerr
		case !running:
			err = errors.New("jail(8) succeeded but jls does not list the jail (did every process of exec.start exit?)")
		case root != j.Path:
			err = fmt.Errorf("jail runs with root %s, not %s", root, j.Path)
		default:
			f.log.Info("jail started", "jail", j.Name, "root", root)
			return nil
		}
	}
	err = fmt.Errorf("start: %w", err)
	// jail(8) unwinds its fstab mounts on failure but never runs exec.poststop, so the md(4)
	// /etc made by exec.prestart would stay and keep the nullfs root busy. The undo runs
	// also when the start was cancelled or ran out of time, within a deadline of its own.
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), undoTimeout)
	defer cancel()
	if uerr := f.undoStart(uctx, j); uerr != nil {
		err = errors.Join(err, fmt.Errorf("undo: %w", uerr))
	}
	return jailErr(j.Name, err)
}

// undoTimeout bounds the clean-up after a failed start: jail -r (itself bounded by
// stop.timeout), the poststop hook and the unmounts.
const undoTimeout = 2 * time.Minute

func (f *freeBSD) undoStart(ctx context.Context, j Jail) error {
	_, running, err := f.Root(ctx, j.Name)
	if err != nil {
		return err
	}
	removed := false // by jail -r, which ran exec.poststop and so took the rctl rules off
	if running {
		err := f.r.Run(ctx, command.Cmd{Argv: f.jailArgv(j, "-r")})
		if err != nil && !jailNotFound(err, j.Name) {
			return err
		}
		removed = err == nil
	}
	if !removed {
		// jail(8) unwinds a failed create without exec.poststop: exec.created may have added rules
		f.removeLimits(ctx, j)
	}
	return f.cleanup(ctx, j, true)
}

func (f *freeBSD) Running(ctx context.Context, name string) (bool, error) {
	_, running, err := f.Root(ctx, name)
	return running, err
}

// JailsArgv lists every running jail, one "JID NAME" line each: without -j, jls(8) walks
// all jails (usr.sbin/jls/jls.c: the lastjid loop; dying jails only with -d), prints the
// parameters named, separated by a space, and quotes nothing without -q.
var jailsArgv = []string{jlsBin, "jid", "name"}

func (f *freeBSD) Jails(ctx context.Context) (map[string]bool, error) {
	out, err := command.Output(ctx, f.r, jailsArgv...)
	if err != nil {
		return nil, fmt.Errorf("listing jails: %w", err)
	}
	return parseJails(out)
}

// parseJails reads `jls jid name`. The name is the rest of the line: a jail rollout does
// not manage may have a blank in its name, which this listing does not quote.
func parseJails(out []byte) (map[string]bool, error) {
	jails := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
		if line == "" {
			continue
		}
		jid, name, ok := strings.Cut(line, " ")
		if n, err := strconv.Atoi(jid); !ok || err != nil || n <= 0 || name == "" {
			return nil, fmt.Errorf("unexpected `jls jid name` line %q", line)
		}
		jails[name] = true
	}
	return jails, nil
}

func (f *freeBSD) Root(ctx context.Context, name string) (string, bool, error) {
	if err := checkName(name); err != nil {
		return "", false, err
	}
	out, err := command.Output(ctx, f.r, jlsArgv(name)...)
	if err != nil {
		if jailNotFound(err, name) {
			return "", false, nil
		}
		return "", false, jailErr(name, err)
	}
	// "3 vhost1 /jail/vhost1": jls quotes only values with blanks or quotes, which
	// checkPath keeps out of jail paths
	fl := strings.Fields(string(out))
	if len(fl) != 3 || fl[1] != name {
		return "", false, fmt.Errorf("jail %s: unexpected jls output %q", name, out)
	}
	return fl[2], true, nil
}

// ExecArgv is how a command runs in a jail: jexec(8).
func ExecArgv(name string, argv []string) []string { return append([]string{jexecBin, name}, argv...) }

func (f *freeBSD) Exec(ctx context.Context, name string, argv []string, stdout, stderr io.Writer) error {
	if err := checkName(name); err != nil {
		return err
	}
	if len(argv) == 0 {
		return fmt.Errorf("jail %s: exec: empty command", name)
	}
	err := f.r.Run(ctx, command.Cmd{Argv: ExecArgv(name, argv), Stdout: stdout, Stderr: stderr})
	if err != nil && jailNotFound(err, name) {
		return fmt.Errorf("jail %s: %w (%v)", name, ErrNotRunning, err)
	}
	return jailErr(name, err)
}

// mdUnit is one line of `mdconfig -l -v`.
type mdUnit struct{ Unit, Type, Label string }

var mdUnitRE = regexp.MustCompile(`^md([0-9]+)$`)

// mdUnits parses `mdconfig -l -v`: one line per unit, tab-separated unit, type, size
// (humanized, padded), backing file or "-", label or "-", and on FreeBSD 14 a further
// column of options (sbin/mdconfig/mdconfig.c, md_list).
func (f *freeBSD) mdUnits(ctx context.Context) ([]mdUnit, error) {
	out, err := command.Output(ctx, f.r, mdconfigBin, "-l", "-v")
	if err != nil {
		return nil, err
	}
	return parseMdconfigList(out)
}

func parseMdconfigList(out []byte) ([]mdUnit, error) {
	var units []mdUnit
	for _, line := range strings.Split(string(out), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		col := strings.Split(line, "\t")
		if len(col) < 5 || !mdUnitRE.MatchString(col[0]) {
			return nil, fmt.Errorf("unexpected `mdconfig -l -v` line %q", line)
		}
		u := mdUnit{Unit: col[0], Type: col[1], Label: col[4]}
		if u.Label == "-" {
			u.Label = ""
		}
		units = append(units, u)
	}
	return units, nil
}

// mounts parses `mount -p`: fstab(5) lines of device, mount point, type, options, padded with
// tabs or blanks (sbin/mount/mount.c, putfsent). Names are printed raw, which is why paths
// with blanks are refused everywhere.
func (f *freeBSD) mounts(ctx context.Context) ([]mountEntry, error) {
	out, err := command.Output(ctx, f.r, mountTableArgv...)
	if err != nil {
		return nil, err
	}
	var ms []mountEntry
	for _, line := range strings.Split(string(out), "\n") {
		fl := strings.Fields(line)
		if len(fl) == 0 {
			continue
		}
		if len(fl) < 4 {
			return nil, fmt.Errorf("unexpected `mount -p` line %q", line)
		}
		ms = append(ms, mountEntry{Source: fl[0], Target: fl[1], FSType: fl[2], Options: fl[3]})
	}
	return ms, nil
}

func (f *freeBSD) Mounted(ctx context.Context, p string) (string, bool, error) {
	ms, err := f.mounts(ctx)
	if err != nil {
		return "", false, err
	}
	m, ok := lastAt(ms, path.Clean(p))
	return m.FSType, ok, nil
}

func (f *freeBSD) MountTypes(ctx context.Context, paths []string) (map[string]string, error) {
	ms, err := f.mounts(ctx)
	if err != nil {
		return nil, err
	}
	types := map[string]string{}
	for _, p := range paths {
		if m, ok := lastAt(ms, path.Clean(p)); ok {
			types[p] = m.FSType
		}
	}
	return types, nil
}

func mountedSource(ms []mountEntry, src string) (string, bool) {
	for _, m := range ms {
		if m.Source == src {
			return m.Target, true
		}
	}
	return "", false
}

// MountEtc makes the md(4) /etc: mdconfig prints the new unit, newfs -U puts a UFS with soft
// updates on it, mount puts it at dir. A failure half way frees the disk again.
func (f *freeBSD) MountEtc(ctx context.Context, name, dir, backend, size string) (string, error) {
	if err := checkEtcArgs(name, dir, backend); err != nil {
		return "", err
	}
	if backend == BackendTmpfs {
		return "", nil // a line of the jail's fstab, mounted by jail(8)
	}
	ms, err := f.freeMountPoint(ctx, name, dir, size)
	if err != nil {
		return "", err
	}
	// a disk with this label that is mounted nowhere is what a crash left: its content is
	// rebuilt at every start, so it is freed rather than reused
	if err := f.freeLabelled(ctx, name, ms); err != nil {
		return "", err
	}
	unit, err := f.newDisk(ctx, name, EtcLabel(name), size, dir)
	if err != nil {
		return "", err
	}
	dev := "/dev/" + unit
	f.log.Info("jail /etc mounted", "jail", name, "dev", dev, "dir", dir)
	return dev, nil
}

// freeMountPoint checks the size of a new /etc disk and that nothing is mounted at dir, and
// returns the mount table it read.
func (f *freeBSD) freeMountPoint(ctx context.Context, name, dir, size string) ([]mountEntry, error) {
	if !sizeRE.MatchString(size) {
		return nil, fmt.Errorf("jail %s: /etc size %q is not a size such as 32m", name, size)
	}
	ms, err := f.mounts(ctx)
	if err != nil {
		return nil, jailErr(name, err)
	}
	if m, ok := lastAt(ms, dir); ok {
		return nil, fmt.Errorf("jail %s: %s is already mounted (from %s)", name, dir, m.Source)
	}
	return ms, nil
}

// newDiskArgv is what newDisk runs; unit is the one mdconfig prints.
func newDiskArgv(label, size, unit, dir string) [][]string {
	dev := "/dev/" + unit
	return [][]string{{mdconfigBin, "-a", "-t", "swap", "-s", size, "-L", label}, {newfsBin, "-U", dev}, {mountBin, dev, dir}}
}

// newDisk makes a swap-backed md(4) disk labelled label, puts a UFS with soft updates on it
// and mounts it at dir. A failure half way frees the disk again. It returns the unit (md3).
func (f *freeBSD) newDisk(ctx context.Context, name, label, size, dir string) (string, error) {
	argv := newDiskArgv(label, size, "", dir)
	out, err := command.Output(ctx, f.r, argv[0]...)
	if err != nil {
		return "", jailErr(name, err)
	}
	unit := strings.TrimSpace(string(out))
	m := mdUnitRE.FindStringSubmatch(unit)
	if m == nil {
		err := fmt.Errorf("mdconfig printed %q, not a unit such as md3", unit)
		_, ferr := f.freeUnits(ctx, name, label, nil, true)
		return "", jailErr(name, errors.Join(err, ferr))
	}
	for _, argv := range newDiskArgv(label, size, unit, dir)[1:] {
		if err := f.r.Run(ctx, command.Cmd{Argv: argv}); err != nil {
			if uerr := f.r.Run(ctx, command.Cmd{Argv: []string{mdconfigBin, "-d", "-u", m[1]}}); uerr != nil {
				err = errors.Join(err, fmt.Errorf("undo: %w", uerr))
			}
			return "", jailErr(name, err)
		}
	}
	return unit, nil
}

func checkEtcArgs(name, dir, backend string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if err := checkPath("/etc directory", dir); err != nil {
		return jailErr(name, err)
	}
	if backend != BackendMD && backend != BackendTmpfs {
		return fmt.Errorf("jail %s: /etc backend %q: must be %q or %q", name, backend, BackendMD, BackendTmpfs)
	}
	return nil
}

// freeLabelled frees the md(4) disks labelled for the jail (EtcLabel: never a staged disk). A
// disk still mounted is an error naming where; ms is the mount table if the caller has it.
func (f *freeBSD) freeLabelled(ctx context.Context, name string, ms []mountEntry) error {
	_, err := f.freeUnits(ctx, name, EtcLabel(name), ms, false)
	return err
}

// freeUnits frees the md(4) disks labelled label and returns their units. A mounted one is
// skipped with skipMounted, else an error naming where.
func (f *freeBSD) freeUnits(ctx context.Context, name, label string, ms []mountEntry, skipMounted bool) ([]string, error) {
	units, err := f.mdUnits(ctx)
	if err != nil {
		return nil, jailErr(name, err)
	}
	var freed []string
	for _, u := range units {
		if u.Label != label {
			continue
		}
		if ms == nil {
			if ms, err = f.mounts(ctx); err != nil {
				return freed, jailErr(name, err)
			}
		}
		if mp, ok := mountedSource(ms, "/dev/"+u.Unit); ok {
			if skipMounted {
				continue
			}
			return freed, fmt.Errorf("jail %s: md(4) disk %s labelled %s is mounted on %s", name, u.Unit, u.Label, mp)
		}
		f.log.Info("freeing jail /etc disk", "jail", name, "unit", u.Unit, "label", u.Label)
		if err := f.r.Run(ctx, command.Cmd{Argv: []string{mdconfigBin, "-d", "-u", strings.TrimPrefix(u.Unit, "md")}}); err != nil {
			return freed, jailErr(name, err)
		}
		freed = append(freed, u.Unit)
	}
	return freed, nil
}

// UnmountEtc unmounts dir if it holds the jail's labelled md(4) disk and frees the disk.
// Anything else mounted there is left alone and reported.
func (f *freeBSD) UnmountEtc(ctx context.Context, name, dir, backend string) error {
	if err := checkEtcArgs(name, dir, backend); err != nil {
		return err
	}
	if backend == BackendTmpfs {
		return nil // jail(8) unmounts the fstab line
	}
	ms, err := f.mounts(ctx)
	if err != nil {
		return jailErr(name, err)
	}
	if m, ok := lastAt(ms, dir); ok {
		units, err := f.mdUnits(ctx)
		if err != nil {
			return jailErr(name, err)
		}
		var ours *mdUnit
		for i, u := range units {
			if m.Source == "/dev/"+u.Unit && (u.Label == EtcLabel(name) || u.Label == StageLabel(name)) {
				ours = &units[i]
			}
		}
		if ours == nil {
			return fmt.Errorf("jail %s: %s is mounted from %s, not from an md(4) disk labelled %s or %s; left alone", name, dir, m.Source, EtcLabel(name), StageLabel(name))
		}
		if err := f.r.Run(ctx, command.Cmd{Argv: []string{umountBin, dir}}); err != nil {
			return jailErr(name, err)
		}
		if ms, err = f.mounts(ctx); err != nil {
			return jailErr(name, err)
		}
		// a staged disk the start mounted: this one is freed, other staged disks of the
		// jail are the next /etc and stay
		if _, still := mountedSource(ms, m.Source); ours.Label == StageLabel(name) && !still {
			f.log.Info("freeing jail /etc disk", "jail", name, "unit", ours.Unit, "label", ours.Label)
			if err := f.r.Run(ctx, command.Cmd{Argv: []string{mdconfigBin, "-d", "-u", strings.TrimPrefix(ours.Unit, "md")}}); err != nil {
				return jailErr(name, err)
			}
		}
	}
	return f.freeLabelled(ctx, name, ms)
}

// StageEtcArgv: the disk's commands; "mdN" stands for the unit mdconfig prints.
func (f *freeBSD) StageEtcArgv(name, dir, size string) [][]string {
	return newDiskArgv(StageLabel(name), size, "mdN", dir)
}

func (f *freeBSD) StageEtc(ctx context.Context, name, dir, size string) (string, error) {
	if err := checkEtcArgs(name, dir, BackendMD); err != nil {
		return "", err
	}
	ms, err := f.freeMountPoint(ctx, name, dir, size)
	if err != nil {
		return "", err
	}
	if _, err := f.freeUnits(ctx, name, StageLabel(name), ms, true); err != nil {
		return "", err
	}
	unit, err := f.newDisk(ctx, name, StageLabel(name), size, dir)
	if err != nil {
		return "", err
	}
	f.log.Info("next jail /etc staged", "jail", name, "dev", "/dev/"+unit, "dir", dir)
	return unit, nil
}

// stagedAt reads what is mounted at dir and whether it is a staged disk of the jail;
// anything else mounted there is an error.
func (f *freeBSD) stagedAt(ctx context.Context, name, dir string) (mountEntry, bool, error) {
	ms, err := f.mounts(ctx)
	if err != nil {
		return mountEntry{}, false, jailErr(name, err)
	}
	m, ok := lastAt(ms, dir)
	if !ok {
		return m, false, nil
	}
	units, err := f.mdUnits(ctx)
	if err != nil {
		return m, false, jailErr(name, err)
	}
	for _, u := range units {
		if m.Source == "/dev/"+u.Unit && u.Label == StageLabel(name) {
			return m, true, nil
		}
	}
	return m, false, fmt.Errorf("jail %s: %s is mounted from %s, not from a disk labelled %s; left alone", name, dir, m.Source, StageLabel(name))
}

func (f *freeBSD) UnmountStaged(ctx context.Context, name, dir string) error {
	if err := checkEtcArgs(name, dir, BackendMD); err != nil {
		return err
	}
	_, ok, err := f.stagedAt(ctx, name, dir)
	if err != nil || !ok {
		return err
	}
	return jailErr(name, f.r.Run(ctx, command.Cmd{Argv: []string{umountBin, dir}}))
}

func (f *freeBSD) MountStaged(ctx context.Context, name, unit, dir string) error {
	if err := checkEtcArgs(name, dir, BackendMD); err != nil {
		return err
	}
	if !mdUnitRE.MatchString(unit) {
		return fmt.Errorf("jail %s: staged /etc %q is not an md unit such as md3", name, unit)
	}
	units, err := f.mdUnits(ctx)
	if err != nil {
		return jailErr(name, err)
	}
	found := false
	for _, u := range units {
		found = found || (u.Unit == unit && u.Label == StageLabel(name))
	}
	if !found {
		return fmt.Errorf("jail %s: no md unit %s labelled %s", name, unit, StageLabel(name))
	}
	ms, err := f.mounts(ctx)
	if err != nil {
		return jailErr(name, err)
	}
	dev := "/dev/" + unit
	if mp, ok := mountedSource(ms, dev); ok {
		return fmt.Errorf("jail %s: staged /etc %s is mounted on %s", name, unit, mp)
	}
	if m, ok := lastAt(ms, dir); ok {
		return fmt.Errorf("jail %s: %s is already mounted (from %s)", name, dir, m.Source)
	}
	if err := f.r.Run(ctx, command.Cmd{Argv: []string{mountBin, dev, dir}}); err != nil {
		return jailErr(name, err)
	}
	f.log.Info("jail /etc mounted (staged)", "jail", name, "dev", dev, "dir", dir)
	return nil
}

func (f *freeBSD) FreeStaged(ctx context.Context, name string) ([]string, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	return f.freeUnits(ctx, name, StageLabel(name), nil, true)
}

func (f *freeBSD) OrphanEtc(ctx context.Context) ([]string, error) {
	units, err := f.mdUnits(ctx)
	if err != nil {
		return nil, err
	}
	ms, err := f.mounts(ctx)
	if err != nil {
		return nil, err
	}
	var orphans []string
	for _, u := range units {
		if !strings.HasPrefix(u.Label, etcLabelPrefix) {
			continue
		}
		if _, ok := mountedSource(ms, "/dev/"+u.Unit); !ok {
			orphans = append(orphans, u.Unit)
		}
	}
	return orphans, nil
}

// FreeEtc frees an orphan md unit, after checking that it is rollout's and unmounted so
// that a mistyped unit cannot destroy someone else's disk.
func (f *freeBSD) FreeEtc(ctx context.Context, id string) error {
	m := mdUnitRE.FindStringSubmatch(id)
	if m == nil {
		return fmt.Errorf("free /etc disk: %q is not an md unit such as md3", id)
	}
	units, err := f.mdUnits(ctx)
	if err != nil {
		return err
	}
	for _, u := range units {
		if u.Unit != id {
			continue
		}
		if !strings.HasPrefix(u.Label, etcLabelPrefix) {
			return fmt.Errorf("free /etc disk: %s is labelled %q, not %s*", id, u.Label, etcLabelPrefix)
		}
		ms, err := f.mounts(ctx)
		if err != nil {
			return err
		}
		if mp, ok := mountedSource(ms, "/dev/"+id); ok {
			return fmt.Errorf("free /etc disk: %s is mounted on %s", id, mp)
		}
		return f.r.Run(ctx, command.Cmd{Argv: []string{mdconfigBin, "-d", "-u", m[1]}})
	}
	return fmt.Errorf("free /etc disk: no md unit %s", id)
}

// SnapshotDir is the snapshot's .zfs directory: ZFS mounts it on first access, and nullfs
// mounts of it elsewhere do not get in the way on FreeBSD.
func (f *freeBSD) SnapshotDir(_ context.Context, _, mountpoint, snap string) (string, func(), error) {
	return path.Join(mountpoint, ".zfs", "snapshot", snap), func() {}, nil
}
