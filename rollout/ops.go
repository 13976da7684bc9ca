package rollout

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/rollout-dev/rollout/etcmerge"
	"github.com/rollout-dev/rollout/proto"
	"github.com/rollout-dev/rollout/proto/atomicfile"
	"github.com/rollout-dev/rollout/proto/command"
	"github.com/rollout-dev/rollout/proto/zfs"
	"github.com/rollout-dev/rollout/rollout/config"
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
	create = append(create, []string{zfs.Bin, "create", "-p", "-o", "mountpoint=legacy", v.Dataset})
	for _, c := range v.Datasets {
		create = append(create, []string{zfs.Bin, "create", "-p", "-o", "mountpoint=legacy", v.Dataset + "/" + c})
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
		m.confStep(v),
		{Name: "fstab", Cmds: []string{"write " + fstabPath}, run: func(context.Context) error { return atomicfile.Write(fstabPath, fstab, 0o644) }},
		{Name: "commit", Cmds: cmds([]string{zfs.Bin, "set", propSnapshot + "=" + to, propPending + "=" + none, v.Dataset}),
			run: func(ctx context.Context) error { return commit(ctx, m.R, st, to) }},
	}
	vp.Steps = append(vp.Steps, m.bootStep(v, start))
	if start {
		vp.Steps = append(vp.Steps, m.startStep(j))
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
	// each vhost on its own: one that cannot be repaired must not keep the others broken
	p := &Plan{Op: "repair", Independent: true}
	for _, v := range vs {
		if ok, err := zfs.Exists(ctx, m.R, v.Dataset); err != nil {
			return nil, err
		} else if !ok {
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
		// the conf first: jail -f with a missing file (a NanoBSD host's /etc after a reboot)
		// fails in load_config before doing anything
		vp.Steps = []Step{m.confStep(v), m.stopStep(j)}
		if st.Snapshot != "" {
			fstab, err := m.fstabStep(v, st.Snapshot)
			if err != nil {
				return nil, err
			}
			vp.Steps = append(vp.Steps, fstab)
			if st.Pending.WasRunning {
				vp.Steps = append(vp.Steps, m.startStep(j))
			}
		}
		vp.Steps = append(vp.Steps, m.clearJournalStep(v))
		p.Checks = append(p.Checks, fmt.Sprintf("vhost %s: unfinished %s found (%s); back to %s", v.Name, st.Pending.Op, st.Pending, orDash(st.Snapshot)))
		p.Vhosts = append(p.Vhosts, vp)
	}
	p.Finally = append(p.Finally, m.orphansStep())
	m.addRelease(ctx, p)
	return p, nil
}

// orphansStep frees /etc memory disks left by a crash (a jail whose start failed after exec.prestart, or a
// killed rollout) are found by their label and freed
func (m *Manager) orphansStep() Step {
	return Step{Name: "orphans", Cmds: []string{"free /etc memory disks labelled rollout:* that no running jail uses"},
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
		}}
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
	if err := atomicfile.Write(m.Cfg.FstabPath(v), data, 0o644); err != nil {
		return "", fmt.Errorf("vhost %s: %w", v.Name, err)
	}
	return st.Snapshot, nil
}

// confStep writes the vhost's jail.conf when it differs from what the config says.
func (m *Manager) confStep(v *config.Vhost) Step {
	return Step{Name: "conf", Cmds: []string{"write " + m.Host.ConfFile(m.Jail(v)) + " if it changed"},
		run: func(context.Context) error { _, err := m.WriteConf(v); return err }}
}

// bootStep records whether the vhost is to run after a reboot (rollout:boot, read by boot).
func (m *Manager) bootStep(v *config.Vhost, on bool) Step {
	val := "off"
	if on {
		val = "on"
	}
	return Step{Name: "boot", Cmds: cmds([]string{zfs.Bin, "set", propBoot + "=" + val, v.Dataset}),
		run: func(ctx context.Context) error {
			return zfs.SetProps(ctx, m.R, v.Dataset, map[string]string{propBoot: val})
		}}
}

// PlanStart plans starting vhosts on the snapshot their state names: jail.conf and fstab are
// written from that state first, and the vhost is marked to be started at boot.
func (m *Manager) PlanStart(ctx context.Context, names []string) (*Plan, error) {
	vs, err := m.vhosts(names)
	if err != nil {
		return nil, err
	}
	p := &Plan{Op: "start " + strings.Join(names, " "), Independent: true}
	for _, v := range vs {
		st, err := m.committedState(ctx, v)
		if err != nil {
			return nil, err
		}
		running, err := m.Host.Running(ctx, v.Name)
		if err != nil {
			return nil, fmt.Errorf("vhost %s: %w", v.Name, err)
		}
		vp := &VhostPlan{Vhost: v.Name, From: st.Snapshot, To: st.Snapshot, Running: running}
		fstab, err := m.fstabStep(v, st.Snapshot)
		if err != nil {
			return nil, err
		}
		vp.Steps = []Step{m.confStep(v), fstab, m.bootStep(v, true)}
		if running {
			vp.Noop = "already running on " + st.Snapshot
		} else {
			vp.Steps = append(vp.Steps, m.startStep(m.Jail(v)))
		}
		p.Vhosts = append(p.Vhosts, vp)
	}
	return p, nil
}

// PlanStop plans stopping vhosts; they stay stopped after a reboot (rollout:boot=off).
func (m *Manager) PlanStop(ctx context.Context, names []string) (*Plan, error) {
	vs, err := m.vhosts(names)
	if err != nil {
		return nil, err
	}
	p := &Plan{Op: "stop " + strings.Join(names, " "), Independent: true}
	for _, v := range vs {
		st, err := m.committedState(ctx, v)
		if err != nil {
			return nil, err
		}
		vp := &VhostPlan{Vhost: v.Name, From: st.Snapshot, To: st.Snapshot}
		vp.Steps = []Step{m.confStep(v), m.stopStep(m.Jail(v)), m.bootStep(v, false)}
		p.Vhosts = append(p.Vhosts, vp)
	}
	return p, nil
}

// committedState loads a vhost's state and refuses one with nothing committed or an
// unfinished operation (repair first).
func (m *Manager) committedState(ctx context.Context, v *config.Vhost) (*State, error) {
	st, err := LoadState(ctx, m.R, v.Name, v.Dataset)
	if err != nil {
		return nil, err
	}
	if st.Pending != nil {
		return nil, fmt.Errorf("vhost %s: an earlier %s did not finish (%s); run rollout repair %s first", v.Name, st.Pending.Op, st.Pending, v.Name)
	}
	if st.Snapshot == "" {
		return nil, fmt.Errorf("vhost %s: no snapshot recorded on %s; use rollout create", v.Name, v.Dataset)
	}
	return st, nil
}

// fstabStep writes the vhost's fstab for snapshot full.
func (m *Manager) fstabStep(v *config.Vhost, full string) (Step, error) {
	data, err := m.RenderFstab(v, full)
	if err != nil {
		return Step{}, err
	}
	file := m.Cfg.FstabPath(v)
	return Step{Name: "fstab", Cmds: []string{"write " + file + " (" + full + ", atomic rename)"},
		run: func(context.Context) error { return atomicfile.Write(file, data, 0o644) }}, nil
}

// PlanBoot plans what a host's boot needs (rc.d/rollout runs it before rc.d/jail): on a
// NanoBSD host /etc is a memory disk, so every vhost's jail.conf and fstab are written again
// from its state in ZFS; an operation a power cut interrupted is repaired (the vhost goes
// back to its committed snapshot); then the vhosts marked rollout:boot=on are started. Each
// vhost on its own: one that fails does not keep the others down.
func (m *Manager) PlanBoot(ctx context.Context) (*Plan, error) {
	p := &Plan{Op: "boot", Independent: true}
	for _, name := range m.Cfg.VhostNames() {
		v := m.Cfg.Vhosts[name]
		vp := &VhostPlan{Vhost: v.Name}
		p.Vhosts = append(p.Vhosts, vp)
		ok, err := zfs.Exists(ctx, m.R, v.Dataset)
		if err != nil {
			return nil, fmt.Errorf("vhost %s: %w", v.Name, err)
		}
		if !ok {
			vp.Noop = "no dataset " + v.Dataset + " (rollout create " + v.Name + ")"
			continue
		}
		st, err := LoadState(ctx, m.R, v.Name, v.Dataset)
		if err != nil {
			return nil, err
		}
		vp.From, vp.To = st.Snapshot, st.Snapshot
		if st.Snapshot == "" {
			vp.Noop = "no snapshot recorded (rollout create " + v.Name + ")"
			continue
		}
		j := m.Jail(v)
		running, err := m.Host.Running(ctx, v.Name)
		if err != nil {
			return nil, fmt.Errorf("vhost %s: %w", v.Name, err)
		}
		vp.Running = running
		vp.Steps = []Step{m.confStep(v)}
		if st.Pending != nil {
			vp.From = st.Pending.To
			p.Checks = append(p.Checks, fmt.Sprintf("vhost %s: unfinished %s found (%s); back to %s", v.Name, st.Pending.Op, st.Pending, st.Snapshot))
			vp.Steps = append(vp.Steps, m.stopStep(j))
			running = false
		}
		fstab, err := m.fstabStep(v, st.Snapshot)
		if err != nil {
			return nil, err
		}
		vp.Steps = append(vp.Steps, fstab)
		if st.Pending != nil {
			vp.Steps = append(vp.Steps, m.clearJournalStep(v))
		}
		if st.Boot && !running {
			vp.Steps = append(vp.Steps, m.startStep(j))
		}
	}
	p.Finally = append(p.Finally, m.orphansStep())
	m.addRelease(ctx, p)
	return p, nil
}

func (m *Manager) clearJournalStep(v *config.Vhost) Step {
	return Step{Name: "journal", Cmds: cmds([]string{zfs.Bin, "set", propPending + "=" + none, v.Dataset}),
		run: func(ctx context.Context) error {
			return zfs.SetProps(ctx, m.R, v.Dataset, map[string]string{propPending: none})
		}}
}

// PlanShutdown plans stopping every running vhost at a host's shutdown, leaving rollout:boot as
// it is so that boot starts them again.
func (m *Manager) PlanShutdown(ctx context.Context) (*Plan, error) {
	p := &Plan{Op: "shutdown", Independent: true}
	for _, name := range m.Cfg.VhostNames() {
		v := m.Cfg.Vhosts[name]
		running, err := m.Host.Running(ctx, v.Name)
		if err != nil {
			return nil, fmt.Errorf("vhost %s: %w", v.Name, err)
		}
		vp := &VhostPlan{Vhost: v.Name, Running: running}
		if running {
			vp.Steps = []Step{m.stopStep(m.Jail(v))}
		} else {
			vp.Noop = "not running"
		}
		p.Vhosts = append(p.Vhosts, vp)
	}
	return p, nil
}

// VhostStatus is what `rollout status` shows of one vhost.
type VhostStatus struct {
	Kind         string   `json:"kind"` // "vhost": status results also list slaves
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
	Boot         bool     `json:"boot"`          // rollout:boot: it is to run
	// Attention lists what an admin must look at (status then exits 1): an unfinished
	// operation, a snapshot in use without rollout's hold, an fstab problem, a vhost that is
	// to run but does not, unsaved /etc edits. Empty when all is well.
	Attention []string `json:"attention"`
}

// attention fills in s.Attention from the rest of s.
func (s *VhostStatus) attention() {
	s.Attention = []string{}
	if s.Pending != "" {
		s.Attention = append(s.Attention, "unfinished operation: "+s.Pending+" (rollout repair "+s.Vhost+")")
	}
	if s.Snapshot != "" && !s.Held {
		s.Attention = append(s.Attention, "snapshot "+s.Snapshot+" is not held (zfs hold -r "+proto.HoldTag+" "+s.Snapshot+")")
	}
	if s.FstabProblem != "" {
		s.Attention = append(s.Attention, "fstab "+s.FstabProblem)
	}
	if s.Boot && s.Snapshot != "" && !s.Running {
		s.Attention = append(s.Attention, "not running, but to run (rollout start "+s.Vhost+")")
	}
	if len(s.UnsavedEtc) > 0 {
		s.Attention = append(s.Attention, fmt.Sprintf("%d unsaved /etc edits (rollout etc diff %s)", len(s.UnsavedEtc), s.Vhost))
	}
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
		s := VhostStatus{Kind: "vhost", Vhost: v.Name, Dataset: v.Dataset}
		if s.Exists, err = zfs.Exists(ctx, m.R, v.Dataset); err != nil {
			return nil, err
		}
		if s.Exists {
			st, err := LoadState(ctx, m.R, v.Name, v.Dataset)
			if err != nil {
				return nil, err
			}
			s.Snapshot, s.Previous, s.History, s.Boot = st.Snapshot, st.Previous, st.History, st.Boot
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
		s.attention()
		out = append(out, s)
	}
	return out, nil
}

// PruneItem is one prototype snapshot and what prune does with it.
type PruneItem struct {
	Snapshot string `json:"snapshot"`
	Destroy  bool   `json:"destroy"`
	Reason   string `json:"reason"`
	// Destroyed and Error: what happened when it was to be destroyed (not in a dry run).
	Destroyed bool   `json:"destroyed,omitempty"`
	Error     string `json:"error,omitempty"`
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
	for i := range items {
		it := &items[i]
		if !it.Destroy {
			continue
		}
		if err := zfs.DestroySnapshot(ctx, m.R, it.Snapshot, true); err != nil {
			it.Error = err.Error()
			return items, err
		}
		it.Destroyed = true
		m.printf("destroyed %s\n", it.Snapshot)
	}
	return items, nil
}
