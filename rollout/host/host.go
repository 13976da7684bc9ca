// Package host is what rollout needs from FreeBSD to run a vhost's jail: write its jail.conf(5),
// start and stop it with jail(8), run commands in it with jexec(8), and make and destroy its /etc
// memory disk with mdconfig(8), newfs(8) and mount(8). There is one implementation, FreeBSD's:
// the test lab runs this same code against FreeBSD's userland emulated on Linux (integration/).
//
// Every external program runs through a command.Runner, by absolute path, so tests can pin
// each argv and every command is logged and timed the same way.
package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"strings"
	"time"
)

// Jail is what a host needs to know to run one vhost.
type Jail struct {
	Name      string   // vhost1 (jail name)
	Path      string   // /jail/vhost1 (jail root = nullfs mount of the snapshot)
	Hostname  string   // host.hostname
	Fstab     string   // /etc/fstab.vhost1, written by fstabgen
	IP4       []string // ip4.addr values
	Interface string   // interface the IP4 aliases go on
	ExecStart string   // "/bin/sh /etc/rc"
	ExecStop  string   // "/bin/sh /etc/rc.shutdown"
	Prestart  []string // /etc hook run after the fstab mounts: {"/usr/local/sbin/rollout", "-c", CONF, "etc", "init", "vhost1"}
	Poststop  []string // /etc hook run before the unmounts: {..., "etc", "cleanup", "vhost1"}
	Params    map[string]string
	// ConsoleLog is exec.consolelog: where jail(8) sends the output of the exec.* commands.
	// Without it they inherit jail(8)'s own fds 0-2 (usr.sbin/jail/command.c run_command), so
	// a daemon the jail's rc starts would hold the pipe rollout reads jail(8)'s errors from.
	ConsoleLog string
	// ExecTimeout is exec.timeout: how long each exec.* command may run before jail(8) gives up
	// on it. StopTimeout is stop.timeout: how long the jail's processes get between SIGTERM and
	// the jail's removal. Zero leaves jail(8)'s default.
	ExecTimeout, StopTimeout time.Duration
	// Limits are rctl(8) rules without their subject, "RESOURCE:ACTION=AMOUNT", in the order
	// they are added (config.Vhost.Rules: sorted).
	Limits []string
}

// Host runs jails on one machine.
type Host interface {
	// ConfFile is where the jail's configuration lives (FreeBSD: /etc/jail.conf.d/NAME.conf).
	ConfFile(j Jail) string
	// RenderConf returns the jail's configuration file content (FreeBSD: jail.conf(5) syntax).
	RenderConf(j Jail) ([]byte, error)
	// StopArgv and StartArgv are the main commands Stop and Start run, for --dry-run plans.
	// Clean-up commands that run only when something is left over are not listed.
	StopArgv(j Jail) [][]string
	StartArgv(j Jail) [][]string
	// Stop stops the jail; a jail that is not running is not an error. Afterwards nothing
	// of the jail is mounted.
	Stop(ctx context.Context, j Jail) error
	// Start starts the jail (mounts the fstab in order, runs Prestart, runs ExecStart) and
	// confirms it runs; if the start fails, everything mounted or created is undone before
	// the error is returned.
	Start(ctx context.Context, j Jail) error
	// Running reports whether the jail runs.
	Running(ctx context.Context, name string) (bool, error)
	// Jails lists the names of all running jails in one call, for commands that look at
	// many vhosts (status, the planners).
	Jails(ctx context.Context) (map[string]bool, error)
	// Root reports whether the jail runs and, if it does, its root path as the system sees it.
	Root(ctx context.Context, name string) (root string, running bool, err error)
	// Exec runs argv inside the running jail (health checks).
	Exec(ctx context.Context, name string, argv []string, stdout, stderr io.Writer) error
	// MountEtc creates the jail's /etc memory file system at dir and returns its device
	// ("/dev/md3"; "" when the fstab mounts it, as with the tmpfs backend).
	MountEtc(ctx context.Context, name, dir, backend, size string) (string, error)
	// UnmountEtc unmounts dir and frees the memory disk mounted there (labelled rollout:NAME,
	// or StageLabel(name) when it was staged), and rollout:NAME disks mounted nowhere; a
	// staged disk mounted nowhere is left alone (it is the next /etc, during a switch).
	// Idempotent.
	UnmountEtc(ctx context.Context, name, dir, backend string) error
	// StageEtcArgv is what StageEtc runs, for --dry-run plans ("mdN" stands for the unit
	// mdconfig prints).
	StageEtcArgv(name, dir, size string) [][]string
	// StageEtc makes the md(4) disk for the jail's next /etc while the jail still runs:
	// labelled StageLabel(name), with a fresh UFS, mounted at dir to be filled. Staged disks of
	// the jail mounted nowhere (left by an earlier run) are freed first. It returns the unit
	// ("md5"); a failure half way frees the new disk again.
	StageEtc(ctx context.Context, name, dir, size string) (string, error)
	// UnmountStaged unmounts dir when it holds a staged disk of the jail; the disk stays.
	UnmountStaged(ctx context.Context, name, dir string) error
	// MountStaged mounts the jail's staged disk unit at dir (the jail's /etc), after checking
	// that the unit is labelled StageLabel(name) and mounted nowhere, and that dir is free.
	MountStaged(ctx context.Context, name, unit, dir string) error
	// FreeStaged frees the jail's staged disks that are mounted nowhere, and returns their units.
	FreeStaged(ctx context.Context, name string) ([]string, error)
	// OrphanEtc lists /etc memory disks left behind by a crash, as md units such as "md3",
	// for FreeEtc and for display. A staged disk mounted nowhere is one too: it is only
	// waiting while a switch is under way, and callers hold the lock that switches take.
	OrphanEtc(ctx context.Context) ([]string, error)
	// FreeEtc destroys one orphan reported by OrphanEtc.
	FreeEtc(ctx context.Context, id string) error
	// Mounted reports whether path is a mount point and of which file system type.
	Mounted(ctx context.Context, path string) (fstype string, ok bool, err error)
	// MountTypes reads the mount table once and returns, for each of paths that is a mount
	// point, the file system type of its topmost mount.
	MountTypes(ctx context.Context, paths []string) (map[string]string, error)
	// SnapshotDir returns a directory with the contents of dataset@snap (dataset mounted at
	// mountpoint), for reading; release gives it back.
	SnapshotDir(ctx context.Context, dataset, mountpoint, snap string) (dir string, release func(), err error)
}

// EtcLabel is the md(4) label of a jail's /etc memory disk: it is how disks left behind by a
// crash are found again.
func EtcLabel(name string) string { return etcLabelPrefix + name }

const etcLabelPrefix = "rollout:"

// StageLabel is the md(4) label of a jail's next /etc, built while the jail still runs (the
// promote's stage step) and mounted by its next start. A jail name has no ':', so it is never
// the EtcLabel of another jail, and it shares EtcLabel's prefix, so that a crash's leftover is
// found as an orphan. mdconfig(8) copies -L into a PATH_MAX buffer (sbin/mdconfig/mdconfig.c,
// strlcpy(mdio.md_label, optarg, PATH_MAX)), far more than this needs.
func StageLabel(name string) string { return etcLabelPrefix + stageInfix + name }

const stageInfix = "stage:"

const (
	BackendMD    = "md"
	BackendTmpfs = "tmpfs"
)

var (
	nameRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	sizeRE = regexp.MustCompile(`^[0-9]+[kmgtKMGT]?$`)
)

// ErrNotRunning is returned by Exec for a jail that does not run.
var ErrNotRunning = errors.New("not running")

func checkName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("invalid jail name %q (letters, digits, '_' and '-' only)", name)
	}
	if strings.Trim(name, "0123456789") == "" {
		return fmt.Errorf("invalid jail name %q: jls(8) and jexec(8) read a number as a jail id", name)
	}
	return nil
}

// checkPath refuses what fstab(5), jail.conf(5) or mount tables would read differently.
func checkPath(what, p string) error {
	if !strings.HasPrefix(p, "/") || path.Clean(p) != p {
		return fmt.Errorf("%s %q is not an absolute, clean path", what, p)
	}
	if strings.ContainsAny(p, " \t\n\"'\\;$") {
		return fmt.Errorf("%s %q: whitespace, quotes, '\\', ';' and '$' are not allowed", what, p)
	}
	return nil
}

func (j Jail) check() error {
	if err := checkName(j.Name); err != nil {
		return err
	}
	if err := checkPath("path", j.Path); err != nil {
		return fmt.Errorf("jail %s: %w", j.Name, err)
	}
	if j.Path == "/" {
		return fmt.Errorf("jail %s: path must not be /", j.Name)
	}
	if err := checkPath("fstab", j.Fstab); err != nil {
		return fmt.Errorf("jail %s: %w", j.Name, err)
	}
	for _, l := range j.Limits {
		if !limitRE.MatchString(l) {
			return fmt.Errorf("jail %s: invalid rctl rule %q (want RESOURCE:ACTION=AMOUNT)", j.Name, l)
		}
	}
	return nil
}

// limitRE is the shape config accepts for an rctl rule; it keeps the rule one word in
// jail.conf(5) and in the sh(1) command line jail(8) runs.
var limitRE = regexp.MustCompile(`^[a-z]+:[a-z0-9]+=[0-9]+[kmgtpeKMGTPE]?$`)

// under reports whether mount point mp is root or lies below it.
func under(mp, root string) bool {
	return mp == root || strings.HasPrefix(mp, root+"/")
}

// reverseUnder returns the mount points at or below root, last mounted first: the order in
// which they can be unmounted.
func reverseUnder(mounts []mountEntry, root string) []string {
	var mps []string
	for i := len(mounts) - 1; i >= 0; i-- {
		if under(mounts[i].Target, root) {
			mps = append(mps, mounts[i].Target)
		}
	}
	return mps
}

// outside returns the mounts that are not at or below root.
func outside(mounts []mountEntry, root string) []mountEntry {
	var out []mountEntry
	for _, m := range mounts {
		if !under(m.Target, root) {
			out = append(out, m)
		}
	}
	return out
}

// mountEntry is one line of the system's mount table.
type mountEntry struct {
	Source, Target, FSType, Options string
}

// lastAt returns the topmost mount at target.
func lastAt(mounts []mountEntry, target string) (mountEntry, bool) {
	for i := len(mounts) - 1; i >= 0; i-- {
		if mounts[i].Target == target {
			return mounts[i], true
		}
	}
	return mountEntry{}, false
}

func jailErr(name string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("jail %s: %w", name, err)
}
