package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/rollout-dev/rollout/etcmerge"
	"github.com/rollout-dev/rollout/proto/atomicfile"
	"github.com/rollout-dev/rollout/proto/command"
	"github.com/rollout-dev/rollout/proto/zfs"
	"github.com/rollout-dev/rollout/rollout/config"
	"github.com/rollout-dev/rollout/rollout/host"
)

// Staging the next /etc (md backend). Building /etc inside exec.prestart makes the build part
// of the downtime. So promote and rollback build it before the stop, while the old jail still
// runs: the stage step makes a second md(4) disk (host.StageLabel), fills it from the target
// snapshot's /etc plus the vhost's /cfg, unmounts it and writes a record; `etc init` then only
// mounts it, if the record still describes what the start would build (same snapshot, /cfg
// unchanged). Anything else (the undo going back to the old snapshot, a tenant editing /cfg
// in between, the disk gone) falls back to building afresh and frees the staged disk. The
// tmpfs backend is a line of the jail's fstab that jail(8) mounts itself, so it is not staged.

// stagePrefix names the staging directory (state_dir/stage.VHOST, 0700, the disk mounted on
// its etc) and the record (state_dir/stage.VHOST.json). A vhost name has no '.', so no other
// file of state_dir starts so; what a killed run left is removed by the orphans step.
const stagePrefix = "stage."

// stageRecord says which staged disk holds the vhost's next /etc, built from which snapshot
// and from which state of /cfg (its etcmerge.Fingerprint, taken before the build).
type stageRecord struct {
	Vhost    string         `json:"vhost"`
	Unit     string         `json:"unit"`
	Snapshot string         `json:"snapshot"`
	Cfg      string         `json:"cfg_fingerprint"`
	Stats    etcmerge.Stats `json:"stats"`
	At       time.Time      `json:"at"`
}

func (m *Manager) stageDir(vhost string) string {
	return filepath.Join(m.stateDir(), stagePrefix+vhost)
}

func (m *Manager) stageRecordFile(vhost string) string {
	return filepath.Join(m.Cfg.StateDir, stagePrefix+vhost+".json")
}

// readStageRecord returns the vhost's record, nil when there is none.
func (m *Manager) readStageRecord(vhost string) (*stageRecord, error) {
	b, err := os.ReadFile(m.stageRecordFile(vhost))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r stageRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", m.stageRecordFile(vhost), err)
	}
	return &r, nil
}

func (m *Manager) removeStageRecord(vhost string) {
	if err := os.Remove(m.stageRecordFile(vhost)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		m.Log.Warn("cannot remove the staged /etc record", "vhost", vhost, "err", err)
	}
}

// stageStep builds v's /etc for snapshot to on a staged disk, before the stop. When it fails
// nothing was stopped: the vhost runs on from as before, so the step closes the journal
// itself rather than leave it for a repair that would restart the jail.
func (m *Manager) stageStep(v *config.Vhost, from, to string) Step {
	_, overlay, _ := etcDirs(v)
	mnt := filepath.Join(m.stageDir(v.Name), "etc")
	c := cmds(m.Host.StageEtcArgv(v.Name, mnt, m.Cfg.Etc.Size)...)
	c = append(c, "fingerprint "+overlay,
		"build /etc from "+m.Cfg.Proto.EtcDataset()+"@"+snapName(to)+" plus "+overlay+" into "+mnt,
		command.Quote([]string{umountBin, mnt}),
		"write "+m.stageRecordFile(v.Name)+" (atomic rename)")
	closeJournal := m.clearJournalStep(v)
	c = append(c, "on failure: free the disk; "+closeJournal.Cmds[0]+" (the jail was not stopped)")
	return Step{Name: "stage", Cmds: c, run: func(ctx context.Context) error {
		err := m.stageEtc(ctx, v, to)
		if err == nil {
			return nil
		}
		if jerr := closeJournal.run(context.WithoutCancel(ctx)); jerr != nil {
			return errors.Join(err, fmt.Errorf("vhost %s: closing the journal: %w; run rollout repair %s", v.Name, jerr, v.Name))
		}
		return fmt.Errorf("%w; the jail was not stopped (still on %s)", err, orDash(from))
	}}
}

// stageEtc is the stage step. On failure nothing staged is left: the disk is freed, the
// directory and the record removed.
func (m *Manager) stageEtc(ctx context.Context, v *config.Vhost, to string) (err error) {
	_, overlay, _ := etcDirs(v)
	dir := m.stageDir(v.Name)
	mnt := filepath.Join(dir, "etc")
	// an older record is void from here on
	m.removeStageRecord(v.Name)
	// before the build: an edit made during it moves the fingerprint, and the start rebuilds
	fp, err := etcmerge.Fingerprint(ctx, overlay)
	if err != nil {
		return fmt.Errorf("vhost %s: %w", v.Name, err)
	}
	base, release, err := m.Host.SnapshotDir(ctx, m.Cfg.Proto.EtcDataset(), m.Cfg.Proto.EtcMountpoint(), snapName(to))
	if err != nil {
		return fmt.Errorf("vhost %s: %w", v.Name, err)
	}
	defer release()
	if err := os.MkdirAll(m.Cfg.StateDir, 0o755); err != nil {
		return fmt.Errorf("state_dir: %w", err)
	}
	// a directory a killed run left: unmounted first, never followed
	if err := m.removeStaging(ctx, dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("vhost %s: leftover %s: %w", v.Name, dir, err)
	}
	// 0700: the tenant's files are readable on the host only by root while they are here
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("vhost %s: %w", v.Name, err)
	}
	if err := os.Mkdir(mnt, 0o700); err != nil {
		return errors.Join(fmt.Errorf("vhost %s: %w", v.Name, err), m.removeStaging(context.WithoutCancel(ctx), dir))
	}
	unit, err := m.Host.StageEtc(ctx, v.Name, mnt, m.Cfg.Etc.Size)
	if err != nil {
		return errors.Join(fmt.Errorf("vhost %s: %w", v.Name, err), m.removeStaging(context.WithoutCancel(ctx), dir))
	}
	defer func() {
		if err == nil {
			return
		}
		uctx := context.WithoutCancel(ctx)
		uerr := m.Host.UnmountStaged(uctx, v.Name, mnt)
		if uerr == nil {
			_, uerr = m.Host.FreeStaged(uctx, v.Name)
		}
		if uerr == nil {
			uerr = m.removeStaging(uctx, dir)
		}
		if uerr != nil {
			err = errors.Join(err, fmt.Errorf("undo (rollout repair frees what is left): %w", uerr))
		}
	}()
	stats, err := etcmerge.Build(ctx, base, overlay, mnt, m.Log)
	if err != nil {
		return fmt.Errorf("vhost %s: building /etc from %s: %w", v.Name, to, err)
	}
	if err := m.Host.UnmountStaged(ctx, v.Name, mnt); err != nil {
		return err
	}
	if err := m.removeStaging(ctx, dir); err != nil {
		return fmt.Errorf("vhost %s: %w", v.Name, err)
	}
	rec := stageRecord{Vhost: v.Name, Unit: unit, Snapshot: to, Cfg: fp, Stats: stats, At: time.Now()}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(m.stageRecordFile(v.Name), b, 0o600); err != nil {
		return fmt.Errorf("vhost %s: %w", v.Name, err)
	}
	m.Log.Info("next /etc staged", "vhost", v.Name, "unit", unit, "snapshot", to, "files", stats.Files)
	return nil
}

// stateDir is state_dir with its symbolic links resolved: mount(8) records a mount point by its
// real path (FreeBSD sbin/mount/getmntopts.c checkpath, realpath(3); Linux likewise), and what
// is mounted below state_dir is looked up in the mount table by that path. On Debian /var/run
// is a link to /run. state_dir is root's, never a tenant's, so its links may be followed.
func (m *Manager) stateDir() string {
	if p, err := filepath.EvalSymlinks(m.Cfg.StateDir); err == nil {
		return p
	}
	return m.Cfg.StateDir
}

// useStaged mounts the vhost's staged /etc at live if its record matches what this start
// would build: the snapshot the fstab mounts, /cfg unchanged, the disk there and mounted
// nowhere. Otherwise it frees the vhost's staged disks mounted nowhere, and the caller builds.
// The record is used once either way.
func (m *Manager) useStaged(ctx context.Context, v *config.Vhost, overlay, live string) (*stageRecord, bool) {
	rec, why := m.matchStaged(ctx, v, overlay)
	if rec != nil {
		err := m.Host.MountStaged(ctx, v.Name, rec.Unit, live)
		if err == nil {
			m.removeStageRecord(v.Name)
			m.Log.Info("staged /etc used", "vhost", v.Name, "unit", rec.Unit, "snapshot", rec.Snapshot)
			return rec, true
		}
		why = err.Error()
	}
	if why != "" {
		m.Log.Info("staged /etc not used; building it", "vhost", v.Name, "why", why)
	}
	m.removeStageRecord(v.Name)
	if freed, err := m.Host.FreeStaged(ctx, v.Name); err != nil {
		m.Log.Warn("cannot free staged /etc disks", "vhost", v.Name, "err", err)
	} else if len(freed) > 0 {
		m.Log.Info("freed staged /etc disks", "vhost", v.Name, "units", freed)
	}
	return nil, false
}

// matchStaged returns the record when it fits this start, or why not ("" without a record).
func (m *Manager) matchStaged(ctx context.Context, v *config.Vhost, overlay string) (*stageRecord, string) {
	rec, err := m.readStageRecord(v.Name)
	if err != nil {
		return nil, err.Error()
	}
	if rec == nil {
		return nil, ""
	}
	fst, err := m.ReadFstab(v)
	if err != nil {
		return nil, err.Error()
	}
	ds, _, _ := zfs.SplitSnapshot(rec.Snapshot)
	if fst == nil || ds != m.Cfg.Proto.Dataset || fst.Snapshot != snapName(rec.Snapshot) || rec.Vhost != v.Name {
		now := "no fstab"
		if fst != nil {
			now = m.Cfg.Proto.Dataset + "@" + fst.Snapshot
		}
		return nil, fmt.Sprintf("staged for %s, the fstab mounts %s", rec.Snapshot, now)
	}
	fp, err := etcmerge.Fingerprint(ctx, overlay)
	if err != nil {
		return nil, err.Error()
	}
	if fp != rec.Cfg {
		return nil, path.Join(v.Path, "cfg") + " changed since the /etc was staged"
	}
	return rec, ""
}

// stageable: only the md backend is staged (see above), and only a running vhost's /cfg can
// be read before its start.
func (m *Manager) stageable(running bool, cfgFS string) bool {
	return running && m.Cfg.Etc.Backend == host.BackendMD && cfgFS == "zfs"
}
