package rollout

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

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
	overlay, mounted, err := m.Host.Mounted(ctx, path.Join(v.Path, "cfg"))
	if err != nil || !mounted {
		overlay = ""
	}
	if err := m.trialEtc(ctx, v, to, overlay); err != nil {
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
	}
	if s, ok := m.spaceStep(v, nil); ok {
		vp.Steps = append(vp.Steps, s)
	}
	vp.Steps = append(vp.Steps,
		m.confStep(v),
		Step{Name: "fstab", Cmds: []string{"write " + fstabPath}, run: func(context.Context) error { return atomicfile.Write(fstabPath, fstab, 0o644) }},
		Step{Name: "commit", Cmds: cmds([]string{zfs.Bin, "set", propSnapshot + "=" + to, propPending + "=" + none, v.Dataset}),
			run: func(ctx context.Context) error { return m.commitSwitch(ctx, st, to) }},
		m.bootStep(v, start))
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
	// a try is repaired with its vhost, whose dataset holds its journal
	names = append([]string(nil), names...)
	for i, n := range names {
		if t, ok := m.Cfg.Tries[n]; ok {
			names[i] = t.TryOf
		}
	}
	vs, err := m.vhosts(names)
	if err != nil {
		return nil, err
	}
	w, err := m.loadWorld(ctx, worldLoad{proto: true}) // proto: the holds it settles
	if err != nil {
		return nil, err
	}
	// each vhost on its own: one that cannot be repaired must not keep the others broken
	p := &Plan{Op: "repair", Independent: true}
	var tries []*VhostPlan
	for _, v := range vs {
		if !w.Exists(v.Dataset) {
			continue
		}
		st, err := w.State(v)
		if err != nil {
			return nil, err
		}
		if tp := m.tryRepairPlan(v, st); tp != nil {
			p.Checks = append(p.Checks, fmt.Sprintf("vhost %s: unfinished try %s found (%s); torn down", v.Name, st.Try.Name, st.Try))
			tries = append(tries, tp)
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
	p.Vhosts = append(p.Vhosts, tries...)
	p.Finally = append(p.Finally, m.orphansStep())
	m.addRelease(w, p)
	return p, nil
}

// orphansStep frees what a crash left behind (a jail whose start failed after exec.prestart,
// or a killed rollout): staging directories and staged /etc records in state_dir, then /etc
// memory disks, found by their label, staged ones included (no switch is under way: repair
// and boot hold the lock). The directories go first: a disk still mounted in one is unmounted
// there and then freed as an orphan.
func (m *Manager) orphansStep() Step {
	return Step{Name: "orphans", Cmds: []string{
		"remove " + filepath.Join(m.Cfg.StateDir, stagingPrefix) + "* and " + filepath.Join(m.Cfg.StateDir, stagePrefix) + "* left by a killed rollout (" + umountBin + " what is mounted there first)",
		"free /etc memory disks labelled rollout:* that no running jail uses"},
		run: func(ctx context.Context) error {
			if _, err := m.CleanStaging(ctx); err != nil {
				return err
			}
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

// Staging directories: earlier versions of rollout built a trial /etc in state_dir/etc-trial-VHOST-*
// (os.MkdirTemp) before each switch, and a run killed with -9 left it there, sometimes with a
// file system still mounted in it; the next run then failed on it. Nothing is built there now,
// but what a killed run left must still go, as must the stage step's state_dir/stage.VHOST
// directory and record (stage.go).
const (
	stagingPrefix = "etc-trial-"
	// umountBin is FreeBSD's umount(8), by absolute path as every program rollout runs.
	umountBin = "/sbin/umount"
	// maxStacked bounds the unmounts of one directory: mounts may be stacked, but not forever.
	maxStacked = 16
)

// CleanStaging removes the staging directories a killed rollout left in state_dir, after
// unmounting whatever is mounted in them, and returns what it removed. Only names rollout
// makes are touched, and no symbolic link is followed: a link is removed, not its target.
func (m *Manager) CleanStaging(ctx context.Context) ([]string, error) {
	d, err := os.OpenFile(m.Cfg.StateDir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state_dir: %w", err)
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return nil, fmt.Errorf("state_dir %s: %w", m.Cfg.StateDir, err)
	}
	sort.Strings(names)
	var removed []string
	var errs []error
	for _, n := range names {
		if !strings.HasPrefix(n, stagingPrefix) && !strings.HasPrefix(n, stagePrefix) {
			continue
		}
		p := filepath.Join(m.stateDir(), n)
		if err := m.removeStaging(ctx, p); err != nil {
			errs = append(errs, fmt.Errorf("leftover %s: %w", p, err))
			continue
		}
		m.printf("removed %s, left by a killed rollout\n", p)
		removed = append(removed, p)
	}
	return removed, errors.Join(errs...)
}

// removeStaging removes p and what is below it, unmounting each directory that is a mount
// point before looking inside (so nothing on a mounted file system is removed).
func (m *Manager) removeStaging(ctx context.Context, p string) error {
	fi, err := os.Lstat(p)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return os.Remove(p) // a file, or a symbolic link itself
	}
	for i := 0; ; i++ {
		_, mounted, err := m.Host.Mounted(ctx, p)
		if err != nil {
			return err
		}
		if !mounted {
			break
		}
		if i == maxStacked {
			return fmt.Errorf("%s: still mounted after %d unmounts", p, i)
		}
		// never forced: a busy mount is reported, and repair tries again
		if err := m.R.Run(ctx, command.Cmd{Argv: []string{umountBin, p}}); err != nil {
			return fmt.Errorf("unmount %s: %w", p, err)
		}
	}
	d, err := os.OpenFile(p, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := m.removeStaging(ctx, filepath.Join(p, n)); err != nil {
			return err
		}
	}
	return os.Remove(p)
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

// spaceStep sets the quota, refquota and reservation of v's datasets that differ from the
// configuration; cur is what zfs reports (World.space), nil: set them all (create). The values
// go to zfs(8) as written; they compare in bytes, as `zfs get -p` prints them. ok is false when
// nothing differs.
func (m *Manager) spaceStep(v *config.Vhost, cur map[string]map[string]string) (s Step, ok bool) {
	var argvs [][]string
	for _, p := range v.Space() {
		want, _ := config.SpaceBytes(p.Value) // valid: config checked it
		if cur != nil && cur[p.Dataset][p.Prop] == strconv.FormatUint(want, 10) {
			continue
		}
		// one `zfs set P=V ... DATASET` per dataset; Space lists a dataset's properties together
		n := len(argvs)
		if n == 0 || argvs[n-1][len(argvs[n-1])-1] != p.Dataset {
			argvs = append(argvs, []string{zfs.Bin, "set", p.Dataset})
			n++
		}
		a := argvs[n-1]
		argvs[n-1] = append(slices.Clone(a[:len(a)-1]), p.Prop+"="+p.Value, p.Dataset)
	}
	if len(argvs) == 0 {
		return Step{}, false
	}
	return Step{Name: "space", Cmds: cmds(argvs...), run: func(ctx context.Context) error {
		for _, argv := range argvs {
			if err := m.R.Run(ctx, command.Cmd{Argv: argv}); err != nil {
				return fmt.Errorf("vhost %s: %w", v.Name, err)
			}
		}
		return nil
	}}, true
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
	w, err := m.loadWorld(ctx, worldLoad{jails: true, space: vs})
	if err != nil {
		return nil, err
	}
	p := &Plan{Op: "start " + strings.Join(names, " "), Independent: true}
	for _, v := range vs {
		st, err := committedState(w, v)
		if err != nil {
			return nil, err
		}
		running := w.Running(v.Name)
		vp := &VhostPlan{Vhost: v.Name, From: st.Snapshot, To: st.Snapshot, Running: running}
		fstab, err := m.fstabStep(v, st.Snapshot)
		if err != nil {
			return nil, err
		}
		vp.Steps = []Step{m.confStep(v), fstab, m.bootStep(v, true)}
		if s, ok := m.spaceStep(v, w.space); ok {
			vp.Steps = append([]Step{s}, vp.Steps...)
		}
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
	w, err := m.loadWorld(ctx, worldLoad{})
	if err != nil {
		return nil, err
	}
	p := &Plan{Op: "stop " + strings.Join(names, " "), Independent: true}
	for _, v := range vs {
		st, err := committedState(w, v)
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
func committedState(w *World, v *config.Vhost) (*State, error) {
	if !w.Exists(v.Dataset) {
		return nil, fmt.Errorf("vhost %s: dataset %s does not exist (create the vhost with rollout create %s proto@N)", v.Name, v.Dataset, v.Name)
	}
	st, err := w.State(v)
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
	w, err := m.loadWorld(ctx, worldLoad{jails: true, proto: true})
	if err != nil {
		return nil, err
	}
	p := &Plan{Op: "boot", Independent: true}
	var tries []*VhostPlan
	for _, name := range m.Cfg.VhostNames() {
		v := m.Cfg.Vhosts[name]
		vp := &VhostPlan{Vhost: v.Name}
		p.Vhosts = append(p.Vhosts, vp)
		if !w.Exists(v.Dataset) {
			vp.Noop = "no dataset " + v.Dataset + " (rollout create " + v.Name + ")"
			continue
		}
		st, err := w.State(v)
		if err != nil {
			return nil, err
		}
		if tp := m.tryRepairPlan(v, st); tp != nil {
			p.Checks = append(p.Checks, fmt.Sprintf("vhost %s: unfinished try %s found (%s); torn down", v.Name, st.Try.Name, st.Try))
			tries = append(tries, tp)
		}
		vp.From, vp.To = st.Snapshot, st.Snapshot
		if st.Snapshot == "" {
			vp.Noop = "no snapshot recorded (rollout create " + v.Name + ")"
			continue
		}
		j := m.Jail(v)
		running := w.Running(v.Name)
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
	p.Vhosts = append(p.Vhosts, tries...)
	p.Finally = append(p.Finally, m.orphansStep())
	m.addRelease(w, p)
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
	jails, err := m.Host.Jails(ctx)
	if err != nil {
		return nil, err
	}
	p := &Plan{Op: "shutdown", Independent: true}
	for _, name := range m.Cfg.VhostNames() {
		v := m.Cfg.Vhosts[name]
		running := jails[v.Name]
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
	// Try is the vhost's test jail (rollout try), nil when it has none.
	Try *TryStatus `json:"try,omitempty"`
	// Attention lists what an admin must look at (status then exits 1): an unfinished
	// operation, a snapshot in use without rollout's hold, an fstab problem, a vhost that is
	// to run but does not, unsaved /etc edits. Empty when all is well.
	Attention []string `json:"attention"`
}

// TryStatus is a vhost's try as status shows it.
type TryStatus struct {
	Name     string `json:"name"`
	Snapshot string `json:"snapshot"`
	State    string `json:"state"` // making, live, ending
	Running  bool   `json:"running"`
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
	if p, fix := s.Try.problem(s.Vhost); p != "" {
		s.Attention = append(s.Attention, p+" ("+fix+")")
	}
}

// status is the try as status shows it; running: whether its jail runs.
func (t *TryRecord) status(running bool) *TryStatus {
	return &TryStatus{Name: t.Name, Snapshot: t.To, State: t.State, Running: running}
}

// problem is what status and check flag about vhost's try, and its fix; "" when nothing (or
// no try, t nil): a try that did not finish (its journal rollout:try still says making or
// ending), or a live one whose jail is gone (after a reboot).
func (t *TryStatus) problem(vhost string) (problem, fix string) {
	switch {
	case t == nil:
	case t.State != tryLive:
		return "unfinished try " + t.Name + " in state " + t.State, "rollout repair " + vhost
	case !t.Running:
		return "try " + t.Name + " is not running", "rollout try --end " + vhost
	}
	return "", ""
}

// StatusOptions are the options of status.
type StatusOptions struct {
	// Etc compares each running vhost's live /etc with what it was built from (UnsavedEtc):
	// a walk of every file, so only on request, etcWorkers vhosts at a time.
	Etc bool
}

// etcWorkers bounds the /etc comparisons status runs at once: each walks a whole tree.
const etcWorkers = 4

// Status reports every configured vhost (or the named ones).
func (m *Manager) Status(ctx context.Context, names []string, o StatusOptions) ([]VhostStatus, error) {
	if len(names) == 0 {
		names = m.Cfg.VhostNames()
	}
	vs, err := m.vhosts(names)
	if err != nil {
		return nil, err
	}
	w, err := m.loadWorld(ctx, worldLoad{jails: true, proto: true})
	if err != nil {
		return nil, err
	}
	out := make([]VhostStatus, 0, len(vs))
	for _, v := range vs {
		s := VhostStatus{Kind: "vhost", Vhost: v.Name, Dataset: v.Dataset, Exists: w.Exists(v.Dataset), Running: w.Running(v.Name)}
		if s.Exists {
			st, err := w.State(v)
			if err != nil {
				return nil, err
			}
			s.Snapshot, s.Previous, s.History, s.Boot = st.Snapshot, st.Previous, st.History, st.Boot
			if st.Pending != nil {
				s.Pending = st.Pending.String()
			}
			s.Held = st.Snapshot != "" && w.Held(st.Snapshot)
			if st.Try != nil {
				s.Try = st.Try.status(w.Running(st.Try.Name))
			}
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
		out = append(out, s)
	}
	if o.Etc {
		m.unsavedEtc(ctx, out)
	}
	for i := range out {
		out[i].attention()
	}
	return out, nil
}

// unsavedEtc fills in the running vhosts' edits of their live /etc that /cfg lacks, etcWorkers
// at a time. A vhost whose /etc cannot be compared shows none, as before.
func (m *Manager) unsavedEtc(ctx context.Context, out []VhostStatus) {
	sem := make(chan struct{}, etcWorkers)
	var wg sync.WaitGroup
	for i := range out {
		if !out[i].Running {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ch, err := m.EtcDiff(ctx, out[i].Vhost)
			if err != nil {
				m.Log.Debug("status: /etc not compared", "vhost", out[i].Vhost, "err", err)
				return
			}
			for _, c := range ch {
				if c.Kind != etcmerge.Overrides {
					out[i].UnsavedEtc = append(out[i].UnsavedEtc, c.Kind+" "+etcmerge.Escape(c.Path))
				}
			}
		}()
	}
	wg.Wait()
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
	w, err := m.loadWorld(ctx, worldLoad{proto: true})
	if err != nil {
		return nil, err
	}
	need, err := w.needed(m.Cfg)
	if err != nil {
		return nil, err
	}
	vs, err := w.versions()
	if err != nil {
		return nil, err
	}
	// holds are taken recursively, so a child's hold matters as much as the parent's
	refs := w.refs
	tries := w.tries(m.Cfg)
	var items []PruneItem
	for i, v := range vs {
		it := PruneItem{Snapshot: v.FullName()}
		switch {
		case i >= len(vs)-keep:
			it.Reason = "among the newest " + strconv.Itoa(keep)
		case need[v.FullName()]:
			it.Reason = "a vhost runs on it or would roll back to it"
		case tries[v.FullName()] != "":
			it.Reason = tries[v.FullName()]
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
		_, name, _ := zfs.SplitSnapshot(it.Snapshot)
		m.Crash.Hit("before", "destroy", name)
		if err := zfs.DestroySnapshot(ctx, m.R, it.Snapshot, true); err != nil {
			it.Error = err.Error()
			return items, err
		}
		it.Destroyed = true
		m.Crash.Hit("after", "destroy", name)
		m.printf("destroyed %s\n", it.Snapshot)
	}
	return items, nil
}
