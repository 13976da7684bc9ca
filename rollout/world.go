package rollout

import (
	"context"
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/rollout-dev/rollout/proto"
	"github.com/rollout-dev/rollout/proto/command"
	"github.com/rollout-dev/rollout/proto/zfs"
	"github.com/rollout-dev/rollout/rollout/config"
)

// World is what one command knows of the host, read once when it starts: the vhosts' datasets
// and their state, the prototype's snapshots and holds, the running jails, and (for switches)
// which /cfg overlays are mounted. Status and the planners consult it instead of running zfs,
// jls and mount for every vhost: the number of processes a command runs to look does not grow
// with the number of vhosts.
type World struct {
	props    map[string]map[string]string // file system -> rollout:* property -> locally set value
	jails    map[string]bool              // running jails
	mounts   map[string]string            // mount point -> file system type, for the paths asked
	Versions []proto.Version              // the prototype's snapshots, oldest first (nil unless loaded)
	refs     map[string]uint64            // snapshot name -> holds on it, summed over the prototype's datasets
	holds    map[string][]string          // prototype snapshot (full name) with holds -> its tags
	protoErr error                        // why the prototype could not be read, when asked for
	space    map[string]map[string]string // dataset -> quota, refquota, reservation -> bytes (0: none)
}

// worldLoad says which parts a command needs beyond the datasets and the jails.
type worldLoad struct {
	jails  bool     // the running jails
	proto  bool     // the prototype's file systems, snapshots and holds
	mounts []string // mount points whose file system type matters
	// space: vhosts whose datasets' quota, refquota and reservation are compared with the
	// configuration (one more `zfs get`, only when one of them sets any)
	space []*config.Vhost
}

// stateProps are the properties one `zfs get` reads of every file system.
var stateProps = []string{propSnapshot, propPrevious, propHistory, propPending, propBoot, propTry, propTryOf}

// loadWorld reads the host: one `zfs get` for every file system under the vhosts' parents
// (and the prototype); with jails one `jls`; with proto one `zfs list` of the prototype's
// snapshots and one `zfs holds` of those that have holds; with mounts one `mount -p`.
func (m *Manager) loadWorld(ctx context.Context, l worldLoad) (*World, error) {
	var want []string
	for _, name := range m.Cfg.VhostNames() {
		want = append(want, parent(m.Cfg.Vhosts[name].Dataset))
	}
	if l.proto {
		want = append(want, m.Cfg.Proto.Dataset)
	}
	w := &World{}
	var missing []string
	var err error
	if w.props, missing, err = readProps(ctx, m.R, roots(want)); err != nil {
		return nil, err
	}
	if l.jails {
		if w.jails, err = m.Host.Jails(ctx); err != nil {
			return nil, err
		}
	}
	if len(l.mounts) > 0 {
		if w.mounts, err = m.Host.MountTypes(ctx, l.mounts); err != nil {
			return nil, err
		}
	}
	if w.space, err = readSpace(ctx, m.R, l.space); err != nil {
		return nil, err
	}
	if !l.proto {
		return w, nil
	}
	pd := m.Cfg.Proto.Dataset
	if slices.Contains(missing, pd) || w.props[pd] == nil {
		// status still reports the vhosts; what needs the prototype fails with this
		w.protoErr = fmt.Errorf("%s: %w", pd, zfs.ErrNotExist)
		return w, nil
	}
	snaps, err := zfs.ListSnapshots(ctx, m.R, pd, true)
	if err != nil {
		return nil, err
	}
	w.Versions = proto.VersionsOf(pd, w.below(pd), snaps)
	w.refs = map[string]uint64{}
	for _, s := range snaps {
		w.refs[s.Name] += s.UserRefs
	}
	var held []string
	for _, v := range w.Versions {
		if v.UserRefs > 0 {
			held = append(held, v.FullName())
		}
	}
	if w.holds, err = zfs.Holds(ctx, m.R, held...); err != nil {
		return nil, err
	}
	return w, nil
}

// versions is the prototype's snapshots, or why they could not be read.
func (w *World) versions() ([]proto.Version, error) { return w.Versions, w.protoErr }

// resolve is proto.Resolve in the snapshots read.
func (w *World) resolve(p *proto.Proto, ref string) (proto.Version, error) {
	if _, err := p.ParseRef(ref); err != nil {
		return proto.Version{}, err
	}
	if w.protoErr != nil {
		return proto.Version{}, w.protoErr
	}
	return p.ResolveIn(w.Versions, ref)
}

// parent is the dataset a vhost's dataset lies in; reading it recursively finds the vhost's
// dataset, its children, or that it does not exist.
func parent(ds string) string {
	if p := path.Dir(ds); p != "." {
		return p
	}
	return ds
}

// roots drops the datasets that lie under another: `zfs get -r` of the upper one reads them.
func roots(dss []string) []string {
	sort.Strings(dss)
	var out []string
	for _, d := range slices.Compact(dss) {
		if len(out) > 0 && (d == out[len(out)-1] || strings.HasPrefix(d, out[len(out)-1]+"/")) {
			continue
		}
		out = append(out, d)
	}
	return out
}

// zfs get reports a root that does not exist on stderr and carries on with the others
// (zfs_for_each: the error is remembered, the walk goes on): such roots are just missing.
var cannotOpenRE = regexp.MustCompile(`^cannot open '([^']+)': dataset does not exist$`)

// readProps runs one `zfs get` of rollout's properties over every file system under roots and
// returns the locally set values by file system (every file system has an entry), and the
// roots that do not exist.
func readProps(ctx context.Context, r command.Runner, roots []string) (map[string]map[string]string, []string, error) {
	for _, d := range roots {
		if err := zfs.ValidateDataset(d); err != nil {
			return nil, nil, err
		}
	}
	argv := append([]string{zfs.Bin, "get", "-H", "-p", "-r", "-t", "filesystem", "-o", "name,property,value,source",
		strings.Join(stateProps, ",")}, roots...)
	out, err := command.Output(ctx, r, argv...)
	var missing []string
	if err != nil {
		if missing = missingRoots(err, roots); missing == nil {
			return nil, nil, fmt.Errorf("%s: %w", strings.Join(roots, " "), err)
		}
	}
	props, err := parseProps(out)
	if err != nil {
		return nil, nil, err
	}
	return props, missing, nil
}

// missingRoots returns the roots a failed zfs get reported as not existing, or nil when it
// failed for any other reason.
func missingRoots(err error, roots []string) []string {
	var ce *command.Error
	if !errors.As(err, &ce) || ce.ExitCode != 1 {
		return nil
	}
	var missing []string
	for _, line := range strings.Split(strings.TrimSpace(ce.Stderr), "\n") {
		m := cannotOpenRE.FindStringSubmatch(line)
		if m == nil || !slices.Contains(roots, m[1]) {
			return nil
		}
		missing = append(missing, m[1])
	}
	return missing
}

// parseProps reads `zfs get -H -p -o name,property,value,source` output. Only locally set
// values count, as they did with `zfs get -s local`: a user property is inherited by the
// children of the dataset it is set on, and an unset one prints "-" with source "-".
func parseProps(out []byte) (map[string]map[string]string, error) {
	props := map[string]map[string]string{}
	for _, line := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
		if line == "" {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 4 {
			return nil, fmt.Errorf("unexpected zfs get line %q: %d fields, want 4", line, len(f))
		}
		name, prop, value, source := f[0], f[1], f[2], f[3]
		if name == "" || strings.ContainsAny(name, "@#") {
			return nil, fmt.Errorf("unexpected zfs get line %q: %q is not a file system", line, name)
		}
		if !slices.Contains(stateProps, prop) {
			return nil, fmt.Errorf("%s: unexpected property %q in zfs get output", name, prop)
		}
		p := props[name]
		if p == nil {
			p = map[string]string{}
			props[name] = p
		}
		if source == "local" {
			p[prop] = value
		}
	}
	return props, nil
}

// readSpace reads quota, refquota and reservation of the datasets vs configure them on, in
// one `zfs get` (no zfs run when none does). A dataset that does not exist is left out: the
// planners refuse it on their own terms.
func readSpace(ctx context.Context, r command.Runner, vs []*config.Vhost) (map[string]map[string]string, error) {
	var dss []string
	for _, v := range vs {
		for _, p := range v.Space() {
			dss = append(dss, p.Dataset)
		}
	}
	slices.Sort(dss)
	dss = slices.Compact(dss)
	if len(dss) == 0 {
		return nil, nil
	}
	argv := append([]string{zfs.Bin, "get", "-H", "-p", "-t", "filesystem", "-o", "name,property,value",
		strings.Join(config.SpaceProps, ",")}, dss...)
	out, err := command.Output(ctx, r, argv...)
	if err != nil && missingRoots(err, dss) == nil {
		return nil, fmt.Errorf("%s: %w", strings.Join(dss, " "), err)
	}
	space := map[string]map[string]string{}
	for _, line := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
		if line == "" {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 3 || !slices.Contains(dss, f[0]) || !slices.Contains(config.SpaceProps, f[1]) {
			return nil, fmt.Errorf("unexpected zfs get line %q", line)
		}
		if space[f[0]] == nil {
			space[f[0]] = map[string]string{}
		}
		space[f[0]][f[1]] = f[2]
	}
	return space, nil
}

// Exists reports whether the file system exists.
func (w *World) Exists(ds string) bool { return w.props[ds] != nil }

// Running reports whether a jail of that name runs.
func (w *World) Running(name string) bool { return w.jails[name] }

// below lists ds and the file systems under it, parents first.
func (w *World) below(ds string) []string {
	var out []string
	for name := range w.props {
		if name == ds || strings.HasPrefix(name, ds+"/") {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// State is the vhost's state, as LoadState reads it; the dataset must exist.
func (w *World) State(v *config.Vhost) (*State, error) {
	props := w.props[v.Dataset]
	if props == nil {
		return nil, fmt.Errorf("vhost %s: %s: %w", v.Name, v.Dataset, zfs.ErrNotExist)
	}
	return stateOf(v.Name, v.Dataset, props)
}

// Held reports whether the prototype snapshot full carries rollout's hold.
func (w *World) Held(full string) bool { return slices.Contains(w.holds[full], proto.HoldTag) }

// needed is every snapshot some configured vhost needs kept.
func (w *World) needed(cfg *config.Config) (map[string]bool, error) {
	need := map[string]bool{}
	for _, name := range cfg.VhostNames() {
		v := cfg.Vhosts[name]
		if !w.Exists(v.Dataset) {
			continue
		}
		st, err := w.State(v)
		if err != nil {
			return nil, err
		}
		for _, s := range st.Needed() {
			need[s] = true
		}
	}
	return need, nil
}

// tries maps each prototype snapshot a vhost's try runs on (or is being made or ended on) to
// a reason to keep it, naming the try.
func (w *World) tries(cfg *config.Config) map[string]string {
	out := map[string]string{}
	for _, name := range cfg.VhostNames() {
		v := cfg.Vhosts[name]
		if !w.Exists(v.Dataset) {
			continue
		}
		if st, err := w.State(v); err == nil && st.Try != nil {
			out[st.Try.To] = "in use by the try " + st.Try.Name + " of vhost " + v.Name + " (rollout try --end " + v.Name + ")"
		}
	}
	return out
}
