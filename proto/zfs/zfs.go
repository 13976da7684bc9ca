// Package zfs is rollout's typed view of the zfs(8) commands it uses. Every call goes through a
// command.Runner (local, or remote over SSH), checks the names it is given, and parses the
// machine-readable (-H -p) output into typed values.
package zfs

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rollout-dev/rollout/proto/command"
)

// Bin is zfs(8) where FreeBSD installs it. Programs are always named by absolute path: root's
// cron runs with PATH=/usr/bin:/bin (paths.h _PATH_DEFPATH), where zfs is not.
const Bin = "/sbin/zfs"

// Snapshot is one snapshot of one dataset. GUID identifies it across hosts (names can be reused,
// guids cannot); CreateTXG orders it.
type Snapshot struct {
	Dataset   string
	Name      string
	GUID      uint64
	CreateTXG uint64
	Creation  time.Time
	Used      uint64
	UserRefs  uint64 // number of holds
}

// FullName is "dataset@name".
func (s Snapshot) FullName() string { return s.Dataset + "@" + s.Name }

// ErrNotExist is returned (wrapped) when a dataset or snapshot does not exist.
var ErrNotExist = errors.New("does not exist")

func notExist(err error) bool {
	var ce *command.Error
	return errors.As(err, &ce) && strings.Contains(ce.Stderr, "does not exist")
}

// wrap names the dataset an error concerns, and turns "does not exist" into ErrNotExist.
func wrap(name string, err error) error {
	if err == nil {
		return nil
	}
	if notExist(err) {
		return fmt.Errorf("%s: %w", name, ErrNotExist)
	}
	return fmt.Errorf("%s: %w", name, err)
}

const snapshotFields = "name,guid,createtxg,creation,used,userrefs"

// ListSnapshots lists the snapshots of dataset (and, if recursive, of its descendants) in
// creation order (createtxg, then name for the snapshots one `snapshot -r` made together).
func ListSnapshots(ctx context.Context, r command.Runner, dataset string, recursive bool) ([]Snapshot, error) {
	if err := ValidateDataset(dataset); err != nil {
		return nil, err
	}
	argv := []string{Bin, "list", "-H", "-p", "-t", "snapshot", "-o", snapshotFields, "-s", "createtxg"}
	if recursive {
		argv = append(argv, "-r")
	} else {
		argv = append(argv, "-d", "1")
	}
	argv = append(argv, dataset)
	out, err := command.Output(ctx, r, argv...)
	if err != nil {
		return nil, wrap(dataset, err)
	}
	snaps, err := ParseSnapshots(out)
	if err != nil {
		return nil, wrap(dataset, err)
	}
	return snaps, nil
}

// ParseSnapshots parses `zfs list -H -p -o name,guid,createtxg,creation,used,userrefs` output.
func ParseSnapshots(out []byte) ([]Snapshot, error) {
	var snaps []Snapshot
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 6 {
			return nil, fmt.Errorf("unexpected zfs list line %q", line)
		}
		ds, name, ok := strings.Cut(f[0], "@")
		if !ok {
			return nil, fmt.Errorf("unexpected zfs list line %q: not a snapshot", line)
		}
		var n [5]uint64
		for i, s := range f[1:] {
			v, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("unexpected zfs list line %q: %w", line, err)
			}
			n[i] = v
		}
		snaps = append(snaps, Snapshot{Dataset: ds, Name: name, GUID: n[0], CreateTXG: n[1],
			Creation: time.Unix(int64(n[2]), 0), Used: n[3], UserRefs: n[4]})
	}
	sort.SliceStable(snaps, func(i, j int) bool { return snaps[i].CreateTXG < snaps[j].CreateTXG })
	return snaps, sc.Err()
}

// Filesystems lists dataset and its descendant file systems, parents first.
func Filesystems(ctx context.Context, r command.Runner, dataset string) ([]string, error) {
	if err := ValidateDataset(dataset); err != nil {
		return nil, err
	}
	out, err := command.Output(ctx, r, Bin, "list", "-H", "-o", "name", "-t", "filesystem", "-r", dataset)
	if err != nil {
		return nil, wrap(dataset, err)
	}
	return strings.Fields(string(out)), nil
}

// Exists reports whether a dataset or snapshot exists.
func Exists(ctx context.Context, r command.Runner, name string) (bool, error) {
	err := r.Run(ctx, command.Cmd{Argv: []string{Bin, "list", "-H", "-o", "name", "-t", "all", name}})
	if err == nil {
		return true, nil
	}
	if notExist(err) {
		return false, nil
	}
	return false, wrap(name, err)
}

// Get returns one property's parsable value ("-" when unset).
func Get(ctx context.Context, r command.Runner, name, prop string) (string, error) {
	out, err := command.Output(ctx, r, Bin, "get", "-H", "-p", "-o", "value", prop, name)
	if err != nil {
		return "", wrap(name, err)
	}
	return strings.TrimSuffix(string(out), "\n"), nil
}

// UserProps returns the locally set user properties of dataset whose names start with prefix.
func UserProps(ctx context.Context, r command.Runner, dataset, prefix string) (map[string]string, error) {
	if err := ValidateDataset(dataset); err != nil {
		return nil, err
	}
	out, err := command.Output(ctx, r, Bin, "get", "-H", "-p", "-s", "local", "-o", "property,value", "all", dataset)
	if err != nil {
		return nil, wrap(dataset, err)
	}
	props := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		k, v, ok := strings.Cut(line, "\t")
		if ok && strings.HasPrefix(k, prefix) {
			props[k] = v
		}
	}
	return props, nil
}

// SetProps sets properties in one `zfs set`, which ZFS applies as one transaction: either all
// of them change or none does.
func SetProps(ctx context.Context, r command.Runner, dataset string, props map[string]string) error {
	if err := ValidateDataset(dataset); err != nil {
		return err
	}
	keys := make([]string, 0, len(props))
	for k := range props {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	argv := []string{Bin, "set"}
	for _, k := range keys {
		if strings.ContainsAny(props[k], "\n\t") {
			return fmt.Errorf("%s: property %s: value %q has a tab or newline", dataset, k, props[k])
		}
		argv = append(argv, k+"="+props[k])
	}
	return wrap(dataset, r.Run(ctx, command.Cmd{Argv: append(argv, dataset)}))
}

// Inherit clears a locally set property.
func Inherit(ctx context.Context, r command.Runner, dataset, prop string) error {
	return wrap(dataset, r.Run(ctx, command.Cmd{Argv: []string{Bin, "inherit", prop, dataset}}))
}

// CreateSnapshot runs `zfs snapshot [-r] dataset@name`; -r snapshots all descendants in one
// transaction (they share one createtxg).
func CreateSnapshot(ctx context.Context, r command.Runner, dataset, name string, recursive bool) error {
	full := dataset + "@" + name
	if _, _, err := SplitSnapshot(full); err != nil {
		return err
	}
	argv := []string{Bin, "snapshot"}
	if recursive {
		argv = append(argv, "-r")
	}
	return wrap(full, r.Run(ctx, command.Cmd{Argv: append(argv, full)}))
}

// DestroySnapshot destroys dataset@name (and, if recursive, the same snapshot of descendants).
func DestroySnapshot(ctx context.Context, r command.Runner, full string, recursive bool) error {
	if _, _, err := SplitSnapshot(full); err != nil {
		return err
	}
	argv := []string{Bin, "destroy"}
	if recursive {
		argv = append(argv, "-r")
	}
	return wrap(full, r.Run(ctx, command.Cmd{Argv: append(argv, full)}))
}

// HoldArgv and ReleaseArgv are exported for plans, which show the exact commands.
func HoldArgv(tag, full string) []string    { return []string{Bin, "hold", "-r", tag, full} }
func ReleaseArgv(tag, full string) []string { return []string{Bin, "release", "-r", tag, full} }

// Hold puts a user hold with tag on full and the same snapshot of every descendant. A hold that
// is already there is not an error (the operation is meant to be repeatable).
func Hold(ctx context.Context, r command.Runner, tag, full string) error {
	if _, _, err := SplitSnapshot(full); err != nil {
		return err
	}
	err := r.Run(ctx, command.Cmd{Argv: HoldArgv(tag, full)})
	var ce *command.Error
	if errors.As(err, &ce) && strings.Contains(ce.Stderr, "tag already exists") {
		return nil
	}
	return wrap(full, err)
}

// Release removes the hold tag from full and its descendants' snapshots; a hold that is not
// there is not an error.
func Release(ctx context.Context, r command.Runner, tag, full string) error {
	if _, _, err := SplitSnapshot(full); err != nil {
		return err
	}
	err := r.Run(ctx, command.Cmd{Argv: ReleaseArgv(tag, full)})
	var ce *command.Error
	if errors.As(err, &ce) && strings.Contains(ce.Stderr, "no such tag") {
		return nil
	}
	return wrap(full, err)
}

// Holds returns the hold tags on each snapshot named (full names), in one zfs call.
func Holds(ctx context.Context, r command.Runner, fulls ...string) (map[string][]string, error) {
	res := map[string][]string{}
	if len(fulls) == 0 {
		return res, nil
	}
	out, err := command.Output(ctx, r, append([]string{Bin, "holds", "-H"}, fulls...)...)
	if err != nil {
		return nil, wrap(strings.Join(fulls, " "), err)
	}
	return parseHolds(out, fulls)
}

// parseHolds reads `zfs holds -H`: NAME, TAG, TIMESTAMP, tab separated, for the snapshots asked.
func parseHolds(out []byte, fulls []string) (map[string][]string, error) {
	res := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
		if line == "" {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 3 || f[1] == "" {
			return nil, fmt.Errorf("unexpected zfs holds line %q", line)
		}
		if !slices.Contains(fulls, f[0]) {
			return nil, fmt.Errorf("unexpected zfs holds line %q: %s was not asked for", line, f[0])
		}
		res[f[0]] = append(res[f[0]], f[1])
	}
	return res, nil
}
