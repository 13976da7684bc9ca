package rollout

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/rollout-dev/rollout/etcmerge"
	"github.com/rollout-dev/rollout/proto/atomicfile"
	"github.com/rollout-dev/rollout/rollout/config"
	"github.com/rollout-dev/rollout/rollout/host"
)

// The jail's /etc: jail(8) mounts the fstab (the snapshot as the root, the snapshot's /etc at
// conf/base/etc, the vhost's datasets), then runs exec.prestart = `rollout etc init`, which
// makes the memory file system at <path>/etc and fills it: the snapshot's /etc, then /cfg on
// top; or, when a switch staged it before the stop (stage.go), only mounts the staged disk.
// exec.poststop = `rollout etc cleanup` destroys it.

func etcDirs(v *config.Vhost) (base, overlay, live string) {
	return path.Join(v.Path, "conf", "base", "etc"), path.Join(v.Path, "cfg"), path.Join(v.Path, "etc")
}

type etcTiming struct {
	Vhost    string        `json:"vhost"`
	Duration time.Duration `json:"duration_ns"`
	Files    int           `json:"files"`
	At       time.Time     `json:"at"`
}

func (m *Manager) etcTimingFile(vhost string) string {
	return filepath.Join(m.Cfg.StateDir, "etc-"+vhost+".json")
}

// lastEtcBuild is how long the last `etc init` of vhost took (0 if unknown), so that promote can
// report the /etc part of a jail's downtime.
func (m *Manager) lastEtcBuild(vhost string) time.Duration {
	b, err := os.ReadFile(m.etcTimingFile(vhost))
	if err != nil {
		return 0
	}
	var t etcTiming
	if json.Unmarshal(b, &t) != nil || time.Since(t.At) > time.Hour {
		return 0
	}
	return t.Duration
}

// EtcInit makes and fills the jail's /etc, or mounts the one staged for this start (staged
// true); on failure it leaves nothing mounted.
func (m *Manager) EtcInit(ctx context.Context, name string) (stats etcmerge.Stats, staged bool, err error) {
	v, err := m.Cfg.Jail(name) // a vhost or a try
	if err != nil {
		return etcmerge.Stats{}, false, err
	}
	start := time.Now()
	base, overlay, live := etcDirs(v)
	if _, err := os.Stat(base); err != nil {
		return etcmerge.Stats{}, false, fmt.Errorf("vhost %s: the snapshot's /etc is not mounted at %s: %w", name, base, err)
	}
	if m.Cfg.Etc.Backend == host.BackendMD {
		if rec, ok := m.useStaged(ctx, v, overlay, live); ok {
			m.recordEtcTiming(name, time.Since(start), rec.Stats.Files)
			return rec.Stats, true, nil
		}
	}
	if _, err := m.Host.MountEtc(ctx, name, live, m.Cfg.Etc.Backend, m.Cfg.Etc.Size); err != nil {
		return etcmerge.Stats{}, false, fmt.Errorf("vhost %s: %w", name, err)
	}
	stats, err = etcmerge.Build(ctx, base, overlay, live, m.Log)
	if err != nil {
		if uerr := m.Host.UnmountEtc(context.WithoutCancel(ctx), name, live, m.Cfg.Etc.Backend); uerr != nil {
			m.Log.Error("cannot undo /etc", "vhost", name, "err", uerr)
		}
		return stats, false, fmt.Errorf("vhost %s: building /etc: %w", name, err)
	}
	m.recordEtcTiming(name, time.Since(start), stats.Files)
	return stats, false, nil
}

// recordEtcTiming keeps how long `etc init` took, for lastEtcBuild.
func (m *Manager) recordEtcTiming(name string, d time.Duration, files int) {
	t := etcTiming{Vhost: name, Duration: d, Files: files, At: time.Now()}
	if b, err := json.Marshal(t); err == nil {
		_ = os.MkdirAll(m.Cfg.StateDir, 0o755)
		_ = atomicfile.Write(m.etcTimingFile(name), b, 0o644)
	}
}

// EtcCleanup unmounts and frees the jail's /etc. Nothing mounted is fine.
func (m *Manager) EtcCleanup(ctx context.Context, name string) error {
	v, err := m.Cfg.Jail(name)
	if err != nil {
		return err
	}
	_, _, live := etcDirs(v)
	if err := m.Host.UnmountEtc(ctx, name, live, m.Cfg.Etc.Backend); err != nil {
		return fmt.Errorf("vhost %s: %w", name, err)
	}
	return nil
}

// EtcDiff lists the edits in the running jail's /etc that its /cfg does not have (lost at the
// next restart unless saved), and what /cfg overrides.
func (m *Manager) EtcDiff(ctx context.Context, name string) ([]etcmerge.Change, error) {
	v, err := m.Cfg.Vhost(name)
	if err != nil {
		return nil, err
	}
	base, overlay, live := etcDirs(v)
	if err := m.requireEtcMounted(ctx, v, live, overlay); err != nil {
		return nil, err
	}
	ch, err := etcmerge.Diff(ctx, base, overlay, live)
	if err != nil {
		return nil, fmt.Errorf("vhost %s: %w", name, err)
	}
	return ch, nil
}

// EtcSave copies edits from the running jail's /etc into its /cfg (all of them when paths is empty).
func (m *Manager) EtcSave(ctx context.Context, name string, paths []string) ([]string, error) {
	v, err := m.Cfg.Vhost(name)
	if err != nil {
		return nil, err
	}
	base, overlay, live := etcDirs(v)
	if err := m.requireEtcMounted(ctx, v, live, overlay); err != nil {
		return nil, err
	}
	saved, err := etcmerge.Save(ctx, base, overlay, live, paths, m.Log)
	if err != nil {
		return saved, fmt.Errorf("vhost %s: %w", name, err)
	}
	return saved, nil
}

// requireEtcMounted refuses to compare or save when the jail's /etc or /cfg is not mounted:
// an empty mount point would read as "everything removed".
func (m *Manager) requireEtcMounted(ctx context.Context, v *config.Vhost, live, overlay string) error {
	for _, d := range []string{live, overlay} {
		_, ok, err := m.Host.Mounted(ctx, d)
		if err != nil {
			return fmt.Errorf("vhost %s: %w", v.Name, err)
		}
		if !ok {
			return fmt.Errorf("vhost %s: %s is not mounted (is the jail running?)", v.Name, d)
		}
	}
	return nil
}
