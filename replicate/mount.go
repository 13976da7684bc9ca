package replicate

import (
	"context"
	"fmt"
	"strings"

	"github.com/rollout-dev/rollout/proto/command"
	"github.com/rollout-dev/rollout/proto/zfs"
)

// mountListArgv lists every file system on the slave with what decides whether it is mounted.
// All of them, not only the replica's: a mountpoint another file system already covers must not
// be mounted over.
func mountListArgv() []string {
	return []string{zfs.Bin, "list", "-H", "-o", "name,mounted,canmount,mountpoint", "-t", "filesystem"}
}

// MountArgv mounts one received file system.
func MountArgv(fs string) []string { return []string{zfs.Bin, "mount", fs} }

// mountReplica mounts the slave's copy of the prototype after a receive. Receives use -u (a
// mounted copy could cover a mountpoint in use on a host that is also a master), but the slave's
// jails run on /jail/proto/.zfs/snapshot/N, so the prototype must be mounted there, as on the
// master. File systems that are mounted, canmount=off|noauto, or legacy/none are left alone; a
// mountpoint that another file system is mounted on is an error, never mounted over. It returns
// the file systems it mounted.
func mountReplica(ctx context.Context, r command.Runner, dataset string) ([]string, error) {
	out, err := command.Output(ctx, r, mountListArgv()...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.Host(), err)
	}
	type fs struct{ name, mounted, canmount, mountpoint string }
	var all []fs
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(l, "\t")
		if len(f) != 4 {
			if l != "" {
				return nil, fmt.Errorf("%s: unexpected zfs list line %q", r.Host(), l)
			}
			continue
		}
		all = append(all, fs{f[0], f[1], f[2], f[3]})
	}
	inTree := func(name string) bool { return name == dataset || strings.HasPrefix(name, dataset+"/") }
	usedBy := map[string]string{} // mountpoint -> mounted file system outside the replica
	for _, x := range all {
		if x.mounted == "yes" && !inTree(x.name) {
			usedBy[x.mountpoint] = x.name
		}
	}
	var mounted []string
	// zfs list prints parents before children, the order mounts must be made in
	for _, x := range all {
		if !inTree(x.name) || x.mounted == "yes" || x.canmount != "on" || !strings.HasPrefix(x.mountpoint, "/") {
			continue
		}
		if other, ok := usedBy[x.mountpoint]; ok {
			return mounted, fmt.Errorf("%s: %s: received, but not mounted: its mountpoint %s is in use by %s", r.Host(), x.name, x.mountpoint, other)
		}
		if err := r.Run(ctx, command.Cmd{Argv: MountArgv(x.name)}); err != nil {
			return mounted, fmt.Errorf("%s: %s: received, but not mounted: %w", r.Host(), x.name, err)
		}
		mounted = append(mounted, x.name)
	}
	return mounted, nil
}
