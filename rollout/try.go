package rollout

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/rollout-dev/rollout/proto/command"
	"github.com/rollout-dev/rollout/proto/zfs"
	"github.com/rollout-dev/rollout/rollout/config"
	"github.com/rollout-dev/rollout/rollout/host"
)

// A try (rollout try proto@N VHOST) is a test jail beside a production vhost, the paper's
// section 2.4: the new snapshot as its root, clones of the vhost's datasets (from a snapshot of
// them taken for it) as its cfg, var and home, its own jail.conf, fstab and /etc. Production is
// never stopped: its datasets only get that snapshot, destroyed when the try ends.
//
// The try's journal is rollout:try on the vhost's dataset, written before anything else and
// cleared last: it names everything the try makes (its jail, the snapshot of the vhost's
// datasets, the prototype snapshot it holds), so `rollout repair` tears down a try that did not
// finish (state making or ending) whatever step it died at. Every tear-down step looks at the
// host and skips what is not there.

// TryRecord is a vhost's try, as rollout:try records it.
type TryRecord struct {
	Name  string // the try's jail
	Snap  string // the snapshot of the vhost's datasets the clones come from (rollout-try-UNIXTIME)
	To    string // the prototype snapshot it runs on (full name)
	State string // making, live or ending
}

const (
	tryMaking     = "making"
	tryLive       = "live"
	tryEnding     = "ending"
	trySnapPrefix = "rollout-try-"
)

func (t *TryRecord) String() string {
	return fmt.Sprintf("name=%s snap=%s to=%s state=%s", t.Name, t.Snap, t.To, t.State)
}

func parseTry(s string) (*TryRecord, error) {
	m, err := parseFields("try", s)
	if m == nil || err != nil {
		return nil, err
	}
	t := &TryRecord{Name: m["name"], Snap: m["snap"], To: m["to"], State: m["state"]}
	// every value names something the tear-down destroys: checked as strictly as a name typed
	if err := zfs.ValidateComponent("try name", t.Name); err != nil {
		return nil, fmt.Errorf("try %q: %w", s, err)
	}
	if !strings.HasPrefix(t.Snap, trySnapPrefix) || zfs.ValidateSnapshotName(t.Snap) != nil {
		return nil, fmt.Errorf("try %q: snapshot %q is not one rollout makes", s, t.Snap)
	}
	if _, _, err := zfs.SplitSnapshot(t.To); err != nil {
		return nil, fmt.Errorf("try %q: %w", s, err)
	}
	if t.State != tryMaking && t.State != tryLive && t.State != tryEnding {
		return nil, fmt.Errorf("try %q: unknown state %q", s, t.State)
	}
	return t, nil
}

// TryHoldTag is the hold a try puts on the prototype snapshot it runs on: its own, so that
// releasing rollout's hold (no vhost needs the snapshot) leaves it, and prune sees it.
func TryHoldTag(name string) string { return "rollout:try:" + name }

// TryOptions are the options of try.
type TryOptions struct {
	// Keep leaves the try running once healthy (until rollout try --end); without it, the try
	// is ended as soon as its health check passed.
	Keep bool
}

func (m *Manager) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

// PlanTry plans a try of vhost name on the prototype snapshot ref.
func (m *Manager) PlanTry(ctx context.Context, ref, name string, o TryOptions) (*Plan, error) {
	v, err := m.Cfg.Vhost(name)
	if err != nil {
		return nil, err
	}
	t := m.Cfg.Tries[v.Try.Name]
	if t == nil {
		return nil, fmt.Errorf("vhost %s: no try configured", v.Name)
	}
	cfgDir := path.Join(v.Path, "cfg")
	w, err := m.loadWorld(ctx, worldLoad{jails: true, proto: true, mounts: []string{cfgDir}})
	if err != nil {
		return nil, err
	}
	target, err := w.resolve(m.Proto(), ref)
	if err != nil {
		return nil, err
	}
	to := target.FullName()
	if !w.Exists(v.Dataset) {
		return nil, fmt.Errorf("vhost %s: dataset %s does not exist (create the vhost with rollout create %s proto@N)", v.Name, v.Dataset, v.Name)
	}
	st, err := w.State(v)
	if err != nil {
		return nil, err
	}
	switch {
	case st.Try != nil:
		return nil, fmt.Errorf("vhost %s already has a try, %s on %s (%s); end it first with rollout try --end %s", v.Name, st.Try.Name, st.Try.To, st.Try.State, v.Name)
	case st.Pending != nil:
		return nil, fmt.Errorf("vhost %s: an earlier %s did not finish (%s); run rollout repair %s first", v.Name, st.Pending.Op, st.Pending, v.Name)
	case w.Exists(t.Dataset):
		return nil, fmt.Errorf("vhost %s: the try's dataset %s already exists and rollout made no try; destroy it or name the try otherwise ([vhost.%s.try] name)", v.Name, t.Dataset, v.Name)
	case w.Running(t.Name):
		return nil, fmt.Errorf("vhost %s: a jail named %s already runs", v.Name, t.Name)
	}
	for _, c := range v.Datasets {
		if !w.Exists(v.Dataset + "/" + c) {
			return nil, fmt.Errorf("vhost %s: dataset %s/%s does not exist", v.Name, v.Dataset, c)
		}
	}
	fstab, err := m.fstabStep(t, to)
	if err != nil {
		return nil, err
	}
	j := m.Jail(t)
	if _, err := m.Host.RenderConf(j); err != nil {
		return nil, fmt.Errorf("try %s: %w", t.Name, err)
	}
	if err := m.checkMountpoints(ctx, t, to); err != nil {
		return nil, err
	}
	// the clones are the vhost's datasets as they are now: its /cfg is what the try's /etc
	// is built from
	if err := m.trialEtc(ctx, v, to, w.mounts[cfgDir]); err != nil {
		return nil, err
	}

	rec := &TryRecord{Name: t.Name, Snap: trySnapPrefix + strconv.FormatInt(m.now().Unix(), 10), To: to, State: tryMaking}
	live := *rec
	live.State = tryLive
	snap := []string{zfs.Bin, "snapshot"}
	create := [][]string{{zfs.Bin, "create", "-o", "mountpoint=legacy", "-o", propTryOf + "=" + v.Name, t.Dataset}}
	for _, c := range v.Datasets {
		origin := v.Dataset + "/" + c + "@" + rec.Snap
		snap = append(snap, origin)
		create = append(create, []string{zfs.Bin, "clone", "-o", "mountpoint=legacy", origin, t.Dataset + "/" + c})
	}
	tag := TryHoldTag(t.Name)
	vp := &VhostPlan{Vhost: t.Name, To: to, Title: fmt.Sprintf("try of %s on %s", v.Name, to), UndoAny: true}
	vp.Steps = []Step{m.tryRecordStep("journal", v, rec)}
	if len(v.Datasets) > 0 {
		// one zfs snapshot of several names: one transaction, the datasets as of one moment
		vp.Steps = append(vp.Steps, Step{Name: "snapshot", Cmds: cmds(snap), run: func(ctx context.Context) error {
			return m.R.Run(ctx, command.Cmd{Argv: snap})
		}})
	}
	vp.Steps = append(vp.Steps,
		Step{Name: "hold", Cmds: cmds(zfs.HoldArgv(tag, to)), run: func(ctx context.Context) error { return zfs.Hold(ctx, m.R, tag, to) }},
		Step{Name: "datasets", Cmds: cmds(create...), run: func(ctx context.Context) error {
			for _, argv := range create {
				if err := m.R.Run(ctx, command.Cmd{Argv: argv}); err != nil {
					return err
				}
			}
			return os.MkdirAll(t.Path, 0o755)
		}},
		m.confStep(t), fstab, m.startStep(j))
	if len(t.Health) > 0 {
		vp.Steps = append(vp.Steps, m.healthStep(t))
	}
	vp.Steps = append(vp.Steps, m.tryRecordStep("commit", v, &live))
	end := m.tryEndSteps(v, t, rec)
	vp.Undo = end
	if o.Keep {
		vp.Done = fmt.Sprintf("%s: running on %s with clones of %s's datasets; rollout try --end %s ends it", t.Name, to, v.Name, v.Name)
	} else {
		vp.Steps = append(vp.Steps, end...)
		vp.Done = fmt.Sprintf("%s: started on %s and passed its health check; ended again (--keep leaves it running)", t.Name, to)
	}
	checks := []string{to + " exists on every prototype dataset", fmt.Sprintf("try %s: fstab and jail.conf render", t.Name),
		fmt.Sprintf("try %s: its /etc builds from %s plus %s's /cfg", t.Name, to, v.Name)}
	return &Plan{Op: "try " + to + " " + v.Name, Checks: checks, Vhosts: []*VhostPlan{vp}}, nil
}

// PlanTryEnd plans ending vhost name's try: its jail, /etc, clones, their origin snapshots,
// its hold and its files.
func (m *Manager) PlanTryEnd(ctx context.Context, name string) (*Plan, error) {
	v, err := m.Cfg.Vhost(name)
	if err != nil {
		return nil, err
	}
	w, err := m.loadWorld(ctx, worldLoad{})
	if err != nil {
		return nil, err
	}
	if !w.Exists(v.Dataset) {
		return nil, fmt.Errorf("vhost %s: dataset %s does not exist", v.Name, v.Dataset)
	}
	st, err := w.State(v)
	if err != nil {
		return nil, err
	}
	if st.Try == nil {
		return nil, fmt.Errorf("vhost %s has no try (rollout try proto@N %s starts one)", v.Name, v.Name)
	}
	return &Plan{Op: "try --end " + v.Name, Vhosts: []*VhostPlan{m.tryEndPlan(v, st.Try)}}, nil
}

func (m *Manager) tryEndPlan(v *config.Vhost, rec *TryRecord) *VhostPlan {
	t := m.Cfg.TryVhost(v, rec.Name)
	return &VhostPlan{Vhost: t.Name, From: rec.To, Title: fmt.Sprintf("end the try of %s on %s (%s)", v.Name, rec.To, rec.State),
		Steps: m.tryEndSteps(v, t, rec), Done: fmt.Sprintf("%s: ended; nothing of it is left", t.Name)}
}

// tryRepairPlan is the tear-down of v's try when it did not finish (being made or ended); nil
// when there is none or it is live.
func (m *Manager) tryRepairPlan(v *config.Vhost, st *State) *VhostPlan {
	if st.Try == nil || st.Try.State == tryLive {
		return nil
	}
	return m.tryEndPlan(v, st.Try)
}

func (m *Manager) tryRecordStep(name string, v *config.Vhost, rec *TryRecord) Step {
	val := none
	if rec != nil {
		val = rec.String()
	}
	return Step{Name: name, Cmds: cmds([]string{zfs.Bin, "set", propTry + "=" + val, v.Dataset}),
		run: func(ctx context.Context) error {
			return zfs.SetProps(ctx, m.R, v.Dataset, map[string]string{propTry: val})
		}}
}

// tryEndSteps tear down try t of vhost v; each step skips what is not there, so they finish a
// tear-down from wherever a try (or an earlier tear-down) stopped.
func (m *Manager) tryEndSteps(v *config.Vhost, t *config.Vhost, rec *TryRecord) []Step {
	ending := *rec
	ending.State = tryEnding
	j := m.Jail(t)
	_, _, live := etcDirs(t)
	destroy := []string{zfs.Bin, "destroy", "-r", t.Dataset}
	var origins [][]string
	for _, c := range v.Datasets {
		origins = append(origins, []string{zfs.Bin, "destroy", v.Dataset + "/" + c + "@" + rec.Snap})
	}
	tag := TryHoldTag(t.Name)
	conf, fstab := m.Host.ConfFile(j), m.Cfg.FstabPath(t)
	return []Step{
		m.tryRecordStep("end", v, &ending),
		// jail -f needs the file (a NanoBSD host's /etc after a reboot has lost it)
		m.confStep(t),
		m.stopStep(j),
		{Name: "etc", Cmds: []string{"free the /etc memory disks labelled " + host.EtcLabel(t.Name) + " mounted nowhere"},
			run: func(ctx context.Context) error { return m.Host.UnmountEtc(ctx, t.Name, live, m.Cfg.Etc.Backend) }},
		{Name: "destroy", Cmds: cmds(destroy), run: func(ctx context.Context) error {
			ok, err := zfs.Exists(ctx, m.R, t.Dataset)
			if err != nil || !ok {
				return err
			}
			// only a dataset rollout made for this vhost's try: a name can be reused by hand
			if of, err := zfs.Get(ctx, m.R, t.Dataset, propTryOf); err != nil {
				return err
			} else if of != v.Name {
				return fmt.Errorf("%s is not the try of vhost %s (%s=%s); left alone", t.Dataset, v.Name, propTryOf, of)
			}
			return m.R.Run(ctx, command.Cmd{Argv: destroy})
		}},
		{Name: "snapshots", Cmds: cmds(origins...), run: func(ctx context.Context) error {
			for _, argv := range origins {
				ok, err := zfs.Exists(ctx, m.R, argv[len(argv)-1])
				if err != nil {
					return err
				}
				if ok {
					if err := m.R.Run(ctx, command.Cmd{Argv: argv}); err != nil {
						return err
					}
				}
			}
			return nil
		}},
		{Name: "release", Cmds: cmds(zfs.ReleaseArgv(tag, rec.To)), run: func(ctx context.Context) error {
			if err := zfs.Release(ctx, m.R, tag, rec.To); err != nil && !errors.Is(err, zfs.ErrNotExist) {
				return err
			}
			return nil
		}},
		{Name: "files", Cmds: []string{"remove " + conf + ", " + fstab + " and the empty directory " + t.Path}, run: func(context.Context) error {
			// the jail's directory last: nothing is mounted there after the stop, so it is
			// empty; if it is not, that is reported, not removed
			for _, f := range []string{conf, fstab, m.etcTimingFile(t.Name), t.Path} {
				if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
					return fmt.Errorf("try %s: %w", t.Name, err)
				}
			}
			return nil
		}},
		m.tryRecordStep("forget", v, nil),
	}
}
