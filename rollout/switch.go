package rollout

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/rollout-dev/rollout/etcmerge"
	"github.com/rollout-dev/rollout/proto"
	"github.com/rollout-dev/rollout/proto/command"
	"github.com/rollout-dev/rollout/proto/zfs"
	"github.com/rollout-dev/rollout/rollout/config"
	"github.com/rollout-dev/rollout/rollout/host"
)

// SwitchOptions are the options of promote and rollback.
type SwitchOptions struct {
	Parallel int // vhosts switched at once after the canary
	// Strict refuses a promote while a vhost's /cfg overrides base files that the new
	// snapshot changes and that were not merged (rollout etc merge).
	Strict bool
}

// PlanPromote plans switching the named vhosts to the prototype snapshot ref ("proto@N").
func (m *Manager) PlanPromote(ctx context.Context, ref string, names []string, o SwitchOptions) (*Plan, error) {
	vs, err := m.vhosts(names)
	if err != nil {
		return nil, err
	}
	w, err := m.switchWorld(ctx, vs)
	if err != nil {
		return nil, err
	}
	target, err := w.resolve(m.Proto(), ref)
	if err != nil {
		return nil, err
	}
	p := &Plan{Op: "promote " + target.FullName() + " " + strings.Join(names, " "), Parallel: o.Parallel}
	p.Checks = append(p.Checks, fmt.Sprintf("%s exists on every prototype dataset (%d)", target.FullName(), target.Datasets))
	for _, v := range vs {
		vp, checks, err := m.planVhost(ctx, w, "promote", v, func(*State) (string, error) { return target.FullName(), nil })
		if err != nil {
			return nil, err
		}
		p.Checks = append(p.Checks, checks...)
		p.Vhosts = append(p.Vhosts, vp)
	}
	if o.Strict {
		if err := strictDrift(p); err != nil {
			return nil, err
		}
	}
	m.addRelease(w, p)
	return p, nil
}

// PlanRollback plans switching a vhost back to its previous snapshot (or to, when given).
func (m *Manager) PlanRollback(ctx context.Context, names []string, to string, o SwitchOptions) (*Plan, error) {
	vs, err := m.vhosts(names)
	if err != nil {
		return nil, err
	}
	w, err := m.switchWorld(ctx, vs)
	if err != nil {
		return nil, err
	}
	var target string
	if to != "" {
		t, err := w.resolve(m.Proto(), to)
		if err != nil {
			return nil, err
		}
		target = t.FullName()
	}
	p := &Plan{Op: "rollback " + strings.Join(names, " "), Parallel: o.Parallel}
	for _, v := range vs {
		vp, checks, err := m.planVhost(ctx, w, "rollback", v, func(st *State) (string, error) {
			if target != "" {
				return target, nil
			}
			if st.Previous == "" {
				return "", fmt.Errorf("vhost %s has no previous snapshot to roll back to (it runs on %s); name one with --to", v.Name, orDash(st.Snapshot))
			}
			if _, err := w.resolve(m.Proto(), st.Previous); err != nil {
				return "", fmt.Errorf("vhost %s: cannot roll back to %s: %w", v.Name, st.Previous, err)
			}
			return st.Previous, nil
		})
		if err != nil {
			return nil, err
		}
		p.Checks = append(p.Checks, checks...)
		p.Vhosts = append(p.Vhosts, vp)
	}
	m.addRelease(w, p)
	return p, nil
}

// switchWorld reads what promote and rollback consult: everything, and whether the vhosts'
// /cfg is mounted (trialEtc).
func (m *Manager) switchWorld(ctx context.Context, vs []*config.Vhost) (*World, error) {
	l := worldLoad{jails: true, proto: true, space: vs}
	for _, v := range vs {
		l.mounts = append(l.mounts, path.Join(v.Path, "cfg"))
	}
	return m.loadWorld(ctx, l)
}

// planVhost checks everything that can be checked before the jail stops, and builds its steps.
func (m *Manager) planVhost(ctx context.Context, w *World, op string, v *config.Vhost, target func(*State) (string, error)) (*VhostPlan, []string, error) {
	if !w.Exists(v.Dataset) {
		return nil, nil, fmt.Errorf("vhost %s: dataset %s does not exist (create the vhost with rollout create %s proto@N)", v.Name, v.Dataset, v.Name)
	}
	st, err := w.State(v)
	if err != nil {
		return nil, nil, err
	}
	if st.Pending != nil {
		return nil, nil, fmt.Errorf("vhost %s: an earlier %s did not finish (%s); run rollout repair %s first", v.Name, st.Pending.Op, st.Pending, v.Name)
	}
	to, err := target(st)
	if err != nil {
		return nil, nil, err
	}
	var checks []string
	fs, err := m.ReadFstab(v)
	if err != nil {
		return nil, nil, err
	}
	fstabPath := m.Cfg.FstabPath(v)
	if fs != nil {
		switch {
		case !fs.Generated:
			return nil, nil, fmt.Errorf("vhost %s: %s was not written by rollout; move it away or adopt the vhost with rollout fstab --write %s", v.Name, fstabPath, v.Name)
		case fs.Edited:
			return nil, nil, fmt.Errorf("vhost %s: %s was edited by hand; rollout fstab --write %s regenerates it from the vhost's state (%s)", v.Name, fstabPath, v.Name, orDash(st.Snapshot))
		case st.Snapshot != "" && fs.Snapshot != snapName(st.Snapshot):
			return nil, nil, fmt.Errorf("vhost %s: %s points at snapshot %s but the vhost's state says %s; rollout fstab --write %s regenerates it", v.Name, fstabPath, fs.Snapshot, st.Snapshot, v.Name)
		}
	}
	for _, child := range v.Datasets {
		if !w.Exists(v.Dataset + "/" + child) {
			return nil, nil, fmt.Errorf("vhost %s: dataset %s/%s does not exist", v.Name, v.Dataset, child)
		}
	}
	running := w.Running(v.Name)
	vp := &VhostPlan{Vhost: v.Name, From: st.Snapshot, To: to, Running: running}
	if to == st.Snapshot {
		vp.Noop = "already on " + to
		return vp, nil, nil
	}
	newFstab, err := m.fstabStep(v, to)
	if err != nil {
		return nil, nil, err
	}
	// jail.conf too, before the journal is written: a value it cannot carry stops here
	if _, err := m.Host.RenderConf(m.Jail(v)); err != nil {
		return nil, nil, fmt.Errorf("vhost %s: %w", v.Name, err)
	}
	checks = append(checks, fmt.Sprintf("vhost %s: fstab for %s and jail.conf render", v.Name, to))
	if err := m.checkMountpoints(ctx, v, to); err != nil {
		return nil, nil, err
	}
	if err := m.trialEtc(ctx, v, to, w.mounts[path.Join(v.Path, "cfg")]); err != nil {
		return nil, nil, err
	}
	checks = append(checks, fmt.Sprintf("vhost %s: its /etc builds from %s plus its /cfg", v.Name, to))
	if op == "promote" {
		if err := m.planDrift(ctx, v, vp, w.mounts[path.Join(v.Path, "cfg")]); err != nil {
			return nil, nil, err
		}
	}

	j := m.Jail(v)
	journal := &Journal{Op: op, From: st.Snapshot, To: to, Step: "switch", WasRunning: running}
	hold := Step{Name: "hold", Cmds: cmds(zfs.HoldArgv(proto.HoldTag, to)),
		run: func(ctx context.Context) error { return zfs.Hold(ctx, m.R, proto.HoldTag, to) }}
	jr := Step{Name: "journal", Cmds: cmds([]string{zfs.Bin, "set", propPending + "=" + journal.String(), v.Dataset}),
		run: func(ctx context.Context) error { return writeJournal(ctx, m.R, v.Dataset, journal) }}
	conf := m.confStep(v)
	stop := m.stopStep(j)
	start := m.startStep(j)
	commitStep := m.commitStep(v, st, to)

	// the space settings go before the journal: zfs refuses a quota below what is used, and
	// then nothing of the switch has happened yet but the hold
	vp.Steps = []Step{hold}
	if s, ok := m.spaceStep(v, w.space); ok {
		vp.Steps = append(vp.Steps, s)
	}
	vp.Steps = append(vp.Steps, jr, conf)
	if running {
		// the new /etc is built while the jail still runs; the start only mounts it
		if m.stageable(running, w.mounts[path.Join(v.Path, "cfg")]) {
			vp.Steps = append(vp.Steps, m.stageStep(v, st.Snapshot, to))
		}
		vp.Steps = append(vp.Steps, stop, newFstab, start)
		if len(v.Health) > 0 {
			vp.Steps = append(vp.Steps, m.healthStep(v))
		}
	} else {
		vp.Steps = append(vp.Steps, newFstab)
	}
	vp.Steps = append(vp.Steps, commitStep)

	if running {
		vp.Undo = []Step{stop}
		if st.Snapshot != "" {
			oldFstab, err := m.fstabStep(v, st.Snapshot)
			if err != nil {
				return nil, nil, err
			}
			vp.Undo = append(vp.Undo, oldFstab, start)
		}
		vp.Undo = append(vp.Undo, m.clearJournalStep(v))
	}
	return vp, checks, nil
}

// commitStep records the switch of v to to and closes its journal (see commitSwitch).
func (m *Manager) commitStep(v *config.Vhost, st *State, to string) Step {
	return Step{Name: "commit", Cmds: cmds([]string{zfs.Bin, "set", propSnapshot + "=" + to, propPrevious + "=" + orNone(st.Snapshot), propPending + "=" + none, v.Dataset}),
		run: func(ctx context.Context) error { return m.commitSwitch(ctx, st, to) }}
}

func (m *Manager) healthStep(v *config.Vhost) Step {
	return Step{Name: "health", Cmds: cmds(host.ExecArgv(v.Name, v.Health)), run: func(ctx context.Context) error {
		var out strings.Builder
		err := within(ctx, m.Cfg.Timeouts.Health, func(ctx context.Context) error {
			return m.Host.Exec(ctx, v.Name, v.Health, &out, &out)
		})
		if err != nil {
			msg := strings.Join(strings.Fields(out.String()), " ")
			if len(msg) > 200 {
				msg = msg[len(msg)-200:]
			}
			return fmt.Errorf("health check %s: %w (output: %s)", command.Quote(v.Health), err, msg)
		}
		return nil
	}}
}

// checkMountpoints makes sure the snapshot has the directories the jail mounts on, as real
// directories: a prototype without /cfg or /var would make the jail start fail half way, and
// jail(8) refuses a mount point with a symbolic link anywhere below the jail's path
// (usr.sbin/jail/command.c, check_path: "is a symbolic link"), as bsdinstall's
// /home -> usr/home is. Each component is looked at with lstat, as jail(8) does.
func (m *Manager) checkMountpoints(ctx context.Context, v *config.Vhost, full string) error {
	root, release, err := m.Host.SnapshotDir(ctx, m.Cfg.Proto.Dataset, m.Cfg.Proto.Mountpoint, snapName(full))
	if err != nil {
		return fmt.Errorf("vhost %s: %w", v.Name, err)
	}
	defer release()
	dirs := []string{"conf/base/etc", "etc", "dev"}
	dirs = append(dirs, v.Datasets...)
	for _, d := range dirs {
		if err := realDir(root, d); err != nil {
			return fmt.Errorf("vhost %s: %s: %w; fix it in the prototype and take a new snapshot", v.Name, full, err)
		}
	}
	return nil
}

// realDir checks that every component of rel below root is a directory, not a symlink.
func realDir(root, rel string) error {
	p := root
	for _, c := range strings.Split(rel, "/") {
		p = filepath.Join(p, c)
		fi, err := os.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("no directory /%s to mount on", rel)
		case err != nil:
			return err
		case fi.Mode()&fs.ModeSymlink != 0:
			return fmt.Errorf("/%s is a symbolic link, which jail(8) refuses below a jail's path (mount point /%s)", strings.TrimPrefix(strings.TrimPrefix(p, root), "/"), rel)
		case !fi.IsDir():
			return fmt.Errorf("/%s is not a directory (mount point /%s)", strings.TrimPrefix(strings.TrimPrefix(p, root), "/"), rel)
		}
	}
	return nil
}

// trialEtc checks, before the jail stops, that the vhost's /etc can be built from the new
// snapshot plus its /cfg and fits the memory disk. It only reads: etcmerge.Measure walks
// both trees as Build would, without copying the tenant's files anywhere. cfgFS is the file
// system type mounted on the vhost's /cfg, "" when nothing is.
func (m *Manager) trialEtc(ctx context.Context, v *config.Vhost, full, cfgFS string) error {
	base, release, err := m.Host.SnapshotDir(ctx, m.Cfg.Proto.EtcDataset(), m.Cfg.Proto.EtcMountpoint(), snapName(full))
	if err != nil {
		return fmt.Errorf("vhost %s: %w", v.Name, err)
	}
	defer release()
	overlay := path.Join(v.Path, "cfg")
	if cfgFS != "zfs" {
		overlay = "" // the jail is not running: its /cfg is not mounted, the base alone is checked
	}
	st, err := etcmerge.Measure(ctx, base, overlay)
	if err != nil {
		return fmt.Errorf("vhost %s: its /etc cannot be built from %s: %w", v.Name, full, err)
	}
	size, err := zfs.ParseSize(m.Cfg.Etc.Size)
	if err != nil {
		return fmt.Errorf("etc.size: %w", err)
	}
	if room := usable(size, m.Cfg.Etc.Backend); st.Need > room {
		return fmt.Errorf("vhost %s: its /etc from %s needs about %s, more than the %s the %s /etc holds (etc.size = %q); raise etc.size",
			v.Name, full, zfs.HumanBytes(st.Need), zfs.HumanBytes(room), m.Cfg.Etc.Backend, m.Cfg.Etc.Size)
	}
	return nil
}

// usable is what a fresh /etc memory file system of size bytes holds. UFS (newfs on md(4))
// keeps about a tenth for its cylinder groups and inodes at newfs's defaults; root may write
// into the minfree reserve, so that is not counted. tmpfs has no such overhead.
func usable(size int64, backend string) int64 {
	if backend == host.BackendMD {
		return size / 10 * 9
	}
	return size
}

// addRelease adds the final step: settle rollout's holds. Snapshots that no vhost needs any more
// lose the hold; a snapshot a vhost needs that lacks it (released by hand, or a crash between a
// create's snapshot and its hold) gets it back, so that every command, repair and boot included,
// leaves the holds exactly on what is in use.
func (m *Manager) addRelease(w *World, p *Plan) {
	// a switch (a plan with a commit step) needs both its snapshots until it is done, and its
	// hold step holds the target before this step runs; every other vhost, repaired, booted or
	// left alone, needs what its state names once its journal step (repair, boot) cleared it
	need := map[string]bool{}
	switched, cleared, stepHeld := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, vp := range p.Vhosts {
		if m.Cfg.Vhosts[vp.Vhost] == nil || vp.Noop != "" {
			continue // a try's tear-down (repair, boot): its hold is its own
		}
		for _, st := range vp.Steps {
			switch st.Name {
			case "commit":
				switched[vp.Vhost] = true
				need[vp.From], need[vp.To] = true, true
			case "journal":
				cleared[vp.Vhost] = true
			case "hold":
				stepHeld[vp.To] = true
			}
		}
	}
	for _, name := range m.Cfg.VhostNames() {
		v := m.Cfg.Vhosts[name]
		if switched[name] || !w.Exists(v.Dataset) {
			continue
		}
		if st, err := w.State(v); err == nil {
			after := *st
			if cleared[name] {
				after.Pending = nil
			}
			for _, s := range after.Needed() {
				need[s] = true
			}
		}
	}
	// predicted from the holds read, by the rule SettleHolds applies after the switches
	hold, release := holdChanges(w, need)
	var predicted []string
	for _, s := range hold {
		if !stepHeld[s] {
			predicted = append(predicted, command.Quote(zfs.HoldArgv(proto.HoldTag, s)))
		}
	}
	for _, s := range release {
		predicted = append(predicted, command.Quote(zfs.ReleaseArgv(proto.HoldTag, s)))
	}
	sort.Strings(predicted)
	desc := append([]string{"release the hold " + proto.HoldTag + " on snapshots no vhost runs on or would roll back to; put it back on those a vhost needs"}, predicted...)
	p.Finally = append(p.Finally, Step{Name: "release", Cmds: desc, run: func(ctx context.Context) error {
		_, _, err := m.SettleHolds(ctx)
		return err
	}})
}

// holdChanges is what settling rollout's holds changes: the needed snapshots that lack the
// hold, and the held ones nothing needs, in createtxg order.
func holdChanges(w *World, need map[string]bool) (hold, release []string) {
	for _, v := range w.Versions {
		switch s := v.FullName(); {
		case need[s] && !w.Held(s):
			hold = append(hold, s)
		case !need[s] && w.Held(s):
			release = append(release, s)
		}
	}
	return hold, release
}

// SettleHolds puts rollout's hold on every prototype snapshot some configured vhost runs on,
// would roll back to, or is being switched to or from, and releases it from every other. It
// reads the host again: it runs after the switches, which changed what is needed.
func (m *Manager) SettleHolds(ctx context.Context) (held, released []string, err error) {
	w, err := m.loadWorld(ctx, worldLoad{proto: true})
	if err != nil {
		return nil, nil, err
	}
	need, err := w.needed(m.Cfg)
	if err != nil {
		return nil, nil, err
	}
	if _, err := w.versions(); err != nil {
		return nil, nil, err
	}
	hold, release := holdChanges(w, need)
	for _, s := range hold {
		if err := zfs.Hold(ctx, m.R, proto.HoldTag, s); err != nil {
			return held, released, err
		}
		held = append(held, s)
	}
	for _, s := range release {
		if err := zfs.Release(ctx, m.R, proto.HoldTag, s); err != nil {
			return held, released, err
		}
		released = append(released, s)
	}
	return held, released, nil
}
