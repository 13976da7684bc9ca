// Package proto manages the prototype jail's snapshots: `zfs snapshot -r` of the prototype
// dataset (zpool/proto and its child etc), listed in creation order, resolved from what an admin
// types ("proto@3", "3", "zpool/proto@3"), held while vhosts need them, and pruned.
package proto

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	gozfs "github.com/mistifyio/go-zfs/v3"

	"github.com/rollout-dev/rollout/proto/command"
	"github.com/rollout-dev/rollout/proto/zfs"
)

// HoldTag is the zfs hold tag rollout puts on snapshots that vhosts run on or may roll back to.
const HoldTag = "rollout"

// Unset is what rollout writes to clear one of its user properties (zfs has no empty value).
const Unset = "none"

// PropValue is the value of one of rollout's user properties (rollout:snapshot, rollout:previous,
// rollout:pending, ...), "" when it is unset: rollout writes "none" to clear one (a vhost with no
// previous snapshot, no journal), and zfs shows "-" for one never set. Here because rollout and
// replicate (which reads the slaves' vhosts' state) both read them, and rollout imports replicate.
func PropValue(v string) string {
	if v == "-" || v == Unset {
		return ""
	}
	return v
}

// Proto is the prototype on one host.
type Proto struct {
	Dataset string // zpool/proto
	R       command.Runner
}

// Version is one recursive snapshot of the prototype: the top dataset's snapshot, and whether
// every dataset under the prototype has a snapshot of that name (Missing lists those that do not).
type Version struct {
	zfs.Snapshot
	Datasets int
	Missing  []string
}

// Complete reports whether every dataset of the prototype has this snapshot.
func (v Version) Complete() bool { return len(v.Missing) == 0 }

// Versions lists the prototype's snapshots in creation order.
func (p *Proto) Versions(ctx context.Context) ([]Version, error) {
	fss, err := zfs.Filesystems(ctx, p.R, p.Dataset)
	if err != nil {
		return nil, err
	}
	snaps, err := zfs.ListSnapshots(ctx, p.R, p.Dataset, true)
	if err != nil {
		return nil, err
	}
	return VersionsOf(p.Dataset, fss, snaps), nil
}

// VersionsOf builds the versions of the prototype dataset from its file systems and its
// snapshots, as Filesystems and a recursive ListSnapshots return them: callers that read the
// pool once (rollout's World) build them without another zfs call.
func VersionsOf(dataset string, fss []string, snaps []zfs.Snapshot) []Version {
	have := map[string]map[string]bool{} // snapshot name -> datasets that have it
	for _, s := range snaps {
		if have[s.Name] == nil {
			have[s.Name] = map[string]bool{}
		}
		have[s.Name][s.Dataset] = true
	}
	var vs []Version
	for _, s := range snaps {
		if s.Dataset != dataset {
			continue
		}
		v := Version{Snapshot: s, Datasets: len(have[s.Name])}
		for _, fs := range fss {
			if !have[s.Name][fs] {
				v.Missing = append(v.Missing, fs)
			}
		}
		vs = append(vs, v)
	}
	return vs
}

// NextName is one more than the highest numeric snapshot name, or "1".
func NextName(vs []Version) string {
	var max uint64
	for _, v := range vs {
		if n, err := strconv.ParseUint(v.Name, 10, 64); err == nil && n > max {
			max = n
		}
	}
	return strconv.FormatUint(max+1, 10)
}

// Check makes sure the pool and the prototype dataset exist, with errors an admin can act on.
func (p *Proto) Check(ctx context.Context) error {
	pool, _, _ := strings.Cut(p.Dataset, "/")
	if _, isLocal := p.R.(command.Local); isLocal {
		// go-zfs serves this local, read-only question well; it runs `zpool get`.
		if _, err := gozfs.GetZpool(pool); err != nil {
			return fmt.Errorf("pool %q: %s", pool, oneLine(err))
		}
	}
	ok, err := zfs.Exists(ctx, p.R, p.Dataset)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("prototype dataset %q does not exist (proto.dataset in the config)", p.Dataset)
	}
	return nil
}

func oneLine(err error) string {
	var ze *gozfs.Error
	if errors.As(err, &ze) && ze.Stderr != "" {
		return strings.Join(strings.Fields(ze.Stderr), " ")
	}
	return strings.Join(strings.Fields(err.Error()), " ")
}

// Create takes the recursive snapshot name (NextName when empty) and returns it.
func (p *Proto) Create(ctx context.Context, name string) (Version, error) {
	if name != "" {
		if err := zfs.ValidateSnapshotName(name); err != nil {
			return Version{}, err
		}
	}
	if err := p.Check(ctx); err != nil {
		return Version{}, err
	}
	vs, err := p.Versions(ctx)
	if err != nil {
		return Version{}, err
	}
	if name == "" {
		name = NextName(vs)
	}
	if err := zfs.ValidateSnapshotName(name); err != nil {
		return Version{}, err
	}
	for _, v := range vs {
		if v.Name == name {
			return Version{}, fmt.Errorf("snapshot %s already exists", v.FullName())
		}
	}
	if err := zfs.CreateSnapshot(ctx, p.R, p.Dataset, name, true); err != nil {
		return Version{}, err
	}
	return p.Resolve(ctx, name)
}

// ParseRef turns what an admin typed into a snapshot name of this prototype:
// "3", "proto@3" (the prototype's last path component) or "zpool/proto@3".
func (p *Proto) ParseRef(ref string) (string, error) {
	ds, name, ok := strings.Cut(ref, "@")
	if !ok {
		name = ref
	} else {
		base := p.Dataset[strings.LastIndex(p.Dataset, "/")+1:]
		if ds != p.Dataset && ds != base {
			return "", fmt.Errorf("snapshot %q is not of the prototype %s", ref, p.Dataset)
		}
	}
	if err := zfs.ValidateSnapshotName(name); err != nil {
		return "", fmt.Errorf("snapshot %q: %w", ref, err)
	}
	return name, nil
}

// Resolve finds the snapshot ref names; it must exist on every prototype dataset.
func (p *Proto) Resolve(ctx context.Context, ref string) (Version, error) {
	if _, err := p.ParseRef(ref); err != nil {
		return Version{}, err
	}
	vs, err := p.Versions(ctx)
	if err != nil {
		return Version{}, err
	}
	return p.ResolveIn(vs, ref)
}

// ResolveIn is Resolve among versions already listed.
func (p *Proto) ResolveIn(vs []Version, ref string) (Version, error) {
	name, err := p.ParseRef(ref)
	if err != nil {
		return Version{}, err
	}
	for _, v := range vs {
		if v.Name == name {
			if !v.Complete() {
				return v, fmt.Errorf("snapshot %s@%s is missing on %s", p.Dataset, name, strings.Join(v.Missing, ", "))
			}
			return v, nil
		}
	}
	return Version{}, fmt.Errorf("snapshot %s@%s does not exist", p.Dataset, name)
}
