package rollout

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"

	"github.com/rollout-dev/rollout/etcmerge"
	"github.com/rollout-dev/rollout/fstabgen"
	"github.com/rollout-dev/rollout/proto"
	"github.com/rollout-dev/rollout/proto/command"
	"github.com/rollout-dev/rollout/proto/zfs"
)

// PlanCreate plans a new vhost on snapshot ref: its datasets (mountpoint=legacy: jail(8) mounts
// them from the fstab, ZFS must not), its jail configuration and fstab, its state, and a start.
func (m *Manager) PlanCreate(ctx context.Context, name, ref string, start bool) (*Plan, error) {
	v, err := m.Cfg.Vhost(name)
	if err != nil {
		return nil, err
	}
	target, err := m.Proto().Resolve(ctx, ref)
	if err != nil {
		return nil, err
	}
	to := target.FullName()
	if ok, err := zfs.Exists(ctx, m.R, v.Dataset); err != nil {
		return nil, err
	} else if ok {
		st, err := LoadState(ctx, m.R, v.Name, v.Dataset)
		if err != nil {
			return nil, err
		}
		if st.Snapshot != "" {
			return nil, fmt.Errorf("vhost %s already exists (it runs on %s); use rollout promote", v.Name, st.Snapshot)
		}
	}
	if running, err := m.Host.Running(ctx, v.Name); err != nil || running {
		return nil, fmt.Errorf("vhost %s: a jail of that name is already running", v.Name)
	}
	fstab, err := m.RenderFstab(v, to)
	if err != nil {
		return nil, err
	}
	if err := m.checkMountpoints(ctx, v, to); err != nil {
		return nil, err
	}
	if err := m.trialEtc(ctx, v, to); err != nil {
		return nil, err
	}
	j := m.Jail(v)
	var create [][]string
	create = append(create, []string{"zfs", "create", "-p", "-o", "mountpoint=legacy", v.Dataset})
	for _, c := range v.Datasets {
		create = append(create, []string{"zfs", "create", "-p", "-o", "mountpoint=legacy", v.Dataset + "/" + c})
	}
	st := &State{Vhost: v.Name, Dataset: v.Dataset}
	fstabPath := m.Cfg.FstabPath(v)
	vp := &VhostPlan{Vhost: v.Name, To: to}
	vp.Steps = []Step{
		{Name: "datasets", Cmds: cmds(create...), run: func(ctx context.Context) error {
			for _, argv := range create {
				if ok, _ := zfs.Exists(ctx, m.R, argv[len(argv)-1]); ok {
					continue
				}
				if err := m.R.Run(ctx, command.Cmd{Argv: argv}); err != nil {
					return err
				}
			}
			return os.MkdirAll(v.Path, 0o755)
		}},
		{Name: "hold", Cmds: cmds(zfs.HoldArgv(proto.HoldTag, to)), run: func(ctx context.Context) error { return zfs.Hold(ctx, m.R, proto.HoldTag, to) }},
		{Name: "conf", Cmds: []string{"write " + m.Host.ConfFile(j)}, run: func(context.Context) error { _, err := m.WriteConf(v); return err }},
		{Name: "fstab", Cmds: []string{"write " + fstabPath}, run: func(context.Context) error { return fstabgen.WriteFile(fstabPath, fstab, 0o644) }},
		{Name: "commit", Cmds: cmds([]string{"zfs", "set", propSnapshot + "=" + to, propPending + "=" + none, v.Dataset}),
			run: func(ctx context.Context) error { return commit(ctx, m.R, st, to) }},
	}
	if start {
		vp.Steps = append(vp.Steps, Step{Name: "start", Cmds: cmds(m.Host.StartArgv(j)...), run: func(ctx context.Context) error { return m.Host.Start(ctx, j) }})
		if len(v.Health) > 0 {
			vp.Steps = append(vp.Steps, m.healthStep(v))
		}
	}
	return &Plan{Op: "create " + v.Name + " on " + to, Vhosts: []*VhostPlan{vp},
		Checks: []string{to + " exists on every prototype dataset", "fstab renders", "its /etc builds"}}, nil
}

// PlanRepair plans putting vhosts whose switch did not finish back on their committed snapshot.
func (m *Manager) PlanRepair(ctx context.Context, names []string) (*Plan, error) {
	if len(names) == 0 {
		names = m.Cfg.VhostNames()
	}
	vs, err := m.vhosts(names)
	if err != nil {
		return nil, err
	}
	p := &Plan{Op: "repair"}
	for _, v := range vs {
		if ok, err := zfs.Exists(ctx, m.R, v.Dataset); err != nil || !ok {
			continue
		}
		st, err := LoadState(ctx, m.R, v.Name, v.Dataset)
		if err != nil {
			return nil, err
		}
		vp := &VhostPlan{Vhost: v.Name, From: "", To: st.Snapshot}
		if st.Pending == nil {
			vp.Noop = "no unfinished operation"
			p.Vhosts = append(p.Vhosts, vp)
			continue
		}
		j := m.Jail(v)
		vp.From = st.Pending.To
		vp.Steps = []Step{{Name: "stop", Cmds: cmds(m.Host.StopArgv(j)...), run: func(ctx context.Context) error { return m.Host.Stop(ctx, j) }}}
		if st.Snapshot != "" {
			data, err := m.RenderFstab(v, st.Snapshot)
			if err != nil {
				return nil, err
			}
			path := m.Cfg.FstabPath(v)
			vp.Steps = append(vp.Steps, Step{Name: "fstab", Cmds: []string{"write " + path + " (" + st.Snapshot + ")"},
				run: func(context.Context) error { return fstabgen.WriteFile(path, data, 0o644) }})
			if st.Pending.WasRunning {
				vp.Steps = append(vp.Steps, Step{Name: "start", Cmds: cmds(m.Host.StartArgv(j)...), run: func(ctx context.Context) error { return m.Host.Start(ctx, j) }})
			}
		}
		vp.Steps = append(vp.Steps, Step{Name: "journal", Cmds: cmds([]string{"zfs", "set", propPending + "=" + none, v.Dataset}),
			run: func(ctx context.Context) error {
				return zfs.SetProps(ctx, m.R, v.Dataset, map[string]string{propPending: none})
			}})
		p.Checks = append(p.Checks, fmt.Sprintf("vhost %s: unfinished %s found (%s); back to %s", v.Name, st.Pending.Op, st.Pending, orDash(st.Snapshot)))
		p.Vhosts = append(p.Vhosts, vp)
	}
	// /etc memory disks left by a crash (a jail whose start failed after exec.prestart, or a
	// killed rollout) are found by their label and freed
	p.Finally = append(p.Finally, Step{Name: "orphans", Cmds: []string{"free /etc memory disks labelled rollout:* that no running jail uses"},
		run: func(ctx context.Context) error {
			ids, err := m.Host.OrphanEtc(ctx)
			if err != nil {
				return err
			}
			for _, id := range ids {
				if err := m.Host.FreeEtc(ctx, id); err != nil {
					return err
				}
				m.printf("freed orphaned /etc memory disk %s\n", id)
			}
			return nil
		}})
	m.addRelease(ctx, p)
	return p, nil
}

// WriteFstab regenerates v's fstab (and jail configuration) from the state on its dataset: the
// way back after a reboot of a host whose /etc is a memory disk, or after a hand edit.
func (m *Manager) WriteFstab(ctx context.Context, name string) (string, error) {
	v, err := m.Cfg.Vhost(name)
	if err != nil {
		return "", err
	}
	st, err := LoadState(ctx, m.R, v.Name, v.Dataset)
	if err != nil {
		return "", err
	}
	if st.Snapshot == "" {
		return "", fmt.Errorf("vhost %s: no snapshot recorded on %s; use rollout create", v.Name, v.Dataset)
	}
	data, err := m.RenderFstab(v, st.Snapshot)
	if err != nil {
		return "", err
	}
	if _, err := m.WriteConf(v); err != nil {
		return "", err
	}
	if err := fstabgen.WriteFile(m.Cfg.FstabPath(v), data, 0o644); err != nil {
		return "", fmt.Errorf("vhost %s: %w", v.Name, err)
	}
	return st.Snapshot, nil
}

// Start and Stop start or stop one vhost's jail as its state says.
func (m *Manager) Start(ctx context.Context, name string) error {
	v, err := m.Cfg.Vhost(name)
	if err != nil {
		return err
	}
	if _, err := m.WriteFstab(ctx, name); err != nil {
		return err
	}
	return m.Host.Start(ctx, m.Jail(v))
}

func (m *Manager) Stop(ctx context.Context, name string) error {
	v, err := m.Cfg.Vhost(name)
	if err != nil {
		return err
	}
	return m.Host.Stop(ctx, m.Jail(v))
}

// VhostStatus is what `rollout status` shows of one vhost.
type VhostStatus struct {
	Vhost        string   `json:"vhost"`
	Dataset      string   `json:"dataset"`
	Exists       bool     `json:"exists"`
	Snapshot     string   `json:"snapshot"`
	Previous     string   `json:"previous"`
	History      []string `json:"history"`
	Running      bool     `json:"running"`
	Fstab        string   `json:"fstab"`         // the snapshot the fstab points at, "" if none
	FstabProblem string   `json:"fstab_problem"` // edited by hand, not rollout's, disagrees with the state
	Pending      string   `json:"pending"`       // an unfinished operation from the journal
	UnsavedEtc   []string `json:"unsaved_etc"`   // edits in the live /etc that /cfg lacks
	Held         bool     `json:"held"`          // its snapshot carries rollout's hold
}

// Status reports every configured vhost (or the named ones).
func (m *Manager) Status(ctx context.Context, names []string) ([]VhostStatus, error) {
	if len(names) == 0 {
		names = m.Cfg.VhostNames()
	}
	vs, err := m.vhosts(names)
	if err != nil {
		return nil, err
	}
	var out []VhostStatus
	for _, v := range vs {
		s := VhostStatus{Vhost: v.Name, Dataset: v.Dataset}
		if s.Exists, err = zfs.Exists(ctx, m.R, v.Dataset); err != nil {
			return nil, err
		}
		if s.Exists {
			st, err := LoadState(ctx, m.R, v.Name, v.Dataset)
			if err != nil {
				return nil, err
			}
			s.Snapshot, s.Previous, s.History = st.Snapshot, st.Previous, st.History
			if st.Pending != nil {
				s.Pending = st.Pending.String()
			}
			if st.Snapshot != "" {
				h, err := zfs.Holds(ctx, m.R, st.Snapshot)
				if err == nil {
					s.Held = slices.Contains(h[st.Snapshot], proto.HoldTag)
				}
			}
		}
		if s.Running, err = m.Host.Running(ctx, v.Name); err != nil {
			return nil, err
		}
		if f, err := m.ReadFstab(v); err != nil {
			s.FstabProblem = err.Error()
		} else if f != nil {
			s.Fstab = f.Snapshot
			switch {
			case !f.Generated:
				s.FstabProblem = "not written by rollout"
			case f.Edited:
				s.FstabProblem = "edited by hand"
			case s.Snapshot != "" && f.Snapshot != snapName(s.Snapshot):
				s.FstabProblem = "points at @" + f.Snapshot + ", state says " + s.Snapshot
			}
		} else if s.Snapshot != "" {
			s.FstabProblem = "missing (rollout fstab --write " + v.Name + ")"
		}
		if s.Running {
			if ch, err := m.EtcDiff(ctx, v.Name); err == nil {
				for _, c := range ch {
					if c.Kind != etcmerge.Overrides {
						s.UnsavedEtc = append(s.UnsavedEtc, c.Kind+" "+c.Path)
					}
				}
			}
		}
		out = append(out, s)
	}
	return out, nil
}

// PruneItem is one prototype snapshot and what prune does with it.
type PruneItem struct {
	Snapshot string `json:"snapshot"`
	Destroy  bool   `json:"destroy"`
	Reason   string `json:"reason"`
}

// Prune destroys old prototype snapshots beyond the newest keep that no vhost needs and no hold
// (rollout's or anyone's) protects. With dryRun it only says what it would do.
func (m *Manager) Prune(ctx context.Context, keep int, dryRun bool) ([]PruneItem, error) {
	if keep < 1 {
		return nil, fmt.Errorf("--keep %d: keep at least 1 snapshot", keep)
	}
	need, err := m.needed(ctx)
	if err != nil {
		return nil, err
	}
	vs, err := m.Proto().Versions(ctx)
	if err != nil {
		return nil, err
	}
	// holds are taken recursively, so a child's hold matters as much as the parent's
	all, err := zfs.ListSnapshots(ctx, m.R, m.Cfg.Proto.Dataset, true)
	if err != nil {
		return nil, err
	}
	refs := map[string]uint64{}
	for _, s := range all {
		refs[s.Name] += s.UserRefs
	}
	var items []PruneItem
	for i, v := range vs {
		it := PruneItem{Snapshot: v.FullName()}
		switch {
		case i >= len(vs)-keep:
			it.Reason = "among the newest " + strconv.Itoa(keep)
		case need[v.FullName()]:
			it.Reason = "a vhost runs on it or would roll back to it"
		case refs[v.Name] > 0:
			it.Reason = fmt.Sprintf("held (%d holds)", refs[v.Name])
		default:
			it.Destroy, it.Reason = true, "old and unused"
		}
		items = append(items, it)
	}
	if dryRun {
		return items, nil
	}
	for _, it := range items {
		if !it.Destroy {
			continue
		}
		if err := zfs.DestroySnapshot(ctx, m.R, it.Snapshot, true); err != nil {
			return items, err
		}
		m.printf("destroyed %s\n", it.Snapshot)
	}
	return items, nil
}
