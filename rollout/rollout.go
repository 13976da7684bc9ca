// Package rollout switches vhosts (production jails) between snapshots of the prototype:
// promote, rollback, repair, status and prune. Every command computes a Plan first (data: the
// steps and the exact commands they run); --dry-run prints it, and one executor runs it.
//
// Switching one vhost is: hold the new snapshot, write the journal, stop the jail, write its
// fstab (atomically), start it, run the health check, commit. The fstab is one file replaced by
// rename, so a jail is always on its old or its new snapshot, never between; the journal
// (rollout:pending on the vhost's dataset) tells a later run that a switch did not finish, and
// `rollout repair` puts the vhost back on the snapshot its committed state names.
package rollout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"time"

	"github.com/rollout-dev/rollout/fstabgen"
	"github.com/rollout-dev/rollout/proto"
	"github.com/rollout-dev/rollout/proto/atomicfile"
	"github.com/rollout-dev/rollout/proto/command"
	"github.com/rollout-dev/rollout/proto/zfs"
	"github.com/rollout-dev/rollout/rollout/config"
	"github.com/rollout-dev/rollout/rollout/failpoint"
	"github.com/rollout-dev/rollout/rollout/host"
)

// Manager does rollout's work on one host.
type Manager struct {
	Cfg  *config.Config
	R    command.Runner // local commands
	Host host.Host
	Log  *slog.Logger
	Out  io.Writer // progress for people; io.Discard for --json
	Self string    // this program, for the hooks jail(8) calls
	// Crash is the crash tests' failpoint (ROLLOUT_FAILPOINT); nil in normal use.
	Crash *failpoint.Point
	// Now is the clock (names of the snapshots a try takes); nil: time.Now.
	Now func() time.Time
}

func (m *Manager) printf(format string, a ...any) {
	if m.Out != nil {
		fmt.Fprintf(m.Out, format, a...)
	}
}

// Proto is the prototype on this host.
func (m *Manager) Proto() *proto.Proto { return &proto.Proto{Dataset: m.Cfg.Proto.Dataset, R: m.R} }

// Jail is what the host needs to run v.
func (m *Manager) Jail(v *config.Vhost) host.Jail {
	hook := func(op string) []string {
		return []string{m.Self, "--config", m.Cfg.Path, "etc", op, v.Name}
	}
	return host.Jail{Name: v.Name, Path: v.Path, Hostname: v.Hostname, Fstab: m.Cfg.FstabPath(v),
		IP4: v.IP4, Interface: v.Interface, ExecStart: v.ExecStart, ExecStop: v.ExecStop,
		Prestart: hook("init"), Poststop: hook("cleanup"), Params: v.Params,
		// where rc.d/jail puts it, so admins find it where they look
		ConsoleLog:  "/var/log/jail_" + v.Name + "_console.log",
		ExecTimeout: m.Cfg.Timeouts.Start, StopTimeout: m.Cfg.Timeouts.Term,
		Limits: v.Rules()}
}

// within runs fn with a deadline of d (none when d is 0): no jail(8), hook or health check can
// hold rollout, and its lock, forever.
func within(ctx context.Context, d time.Duration, fn func(context.Context) error) error {
	if d <= 0 {
		return fn(ctx)
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	err := fn(ctx)
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%w (gave up after %s)", err, d)
	}
	return err
}

// startJail, stopJail and the health step are the only ways rollout starts or stops a jail:
// each within its configured deadline.
func (m *Manager) startJail(ctx context.Context, j host.Jail) error {
	return within(ctx, m.Cfg.Timeouts.Start, func(ctx context.Context) error { return m.Host.Start(ctx, j) })
}

func (m *Manager) stopJail(ctx context.Context, j host.Jail) error {
	return within(ctx, m.Cfg.Timeouts.Stop, func(ctx context.Context) error { return m.Host.Stop(ctx, j) })
}

func (m *Manager) startStep(j host.Jail) Step {
	return Step{Name: "start", Cmds: cmds(m.Host.StartArgv(j)...), run: func(ctx context.Context) error { return m.startJail(ctx, j) }}
}

func (m *Manager) stopStep(j host.Jail) Step {
	return Step{Name: "stop", Cmds: cmds(m.Host.StopArgv(j)...), run: func(ctx context.Context) error { return m.stopJail(ctx, j) }}
}

// snapName is the part after '@'.
func snapName(full string) string {
	_, n, _ := zfs.SplitSnapshot(full)
	return n
}

// RenderFstab renders v's fstab for the prototype snapshot full (zpool/proto@N).
func (m *Manager) RenderFstab(v *config.Vhost, full string) ([]byte, error) {
	ds, n, err := zfs.SplitSnapshot(full)
	if err != nil {
		return nil, err
	}
	if ds != m.Cfg.Proto.Dataset {
		return nil, fmt.Errorf("vhost %s: %s is not a snapshot of the prototype %s", v.Name, full, m.Cfg.Proto.Dataset)
	}
	b, err := fstabgen.Render(fstabSpec(m.Cfg, v, n))
	if err != nil {
		return nil, fmt.Errorf("vhost %s: %w", v.Name, err)
	}
	return b, nil
}

// fstabSpec is the fstab of vhost v running on the prototype snapshot snapName.
func fstabSpec(cfg *config.Config, v *config.Vhost, snapName string) fstabgen.Spec {
	s := fstabgen.Spec{
		Vhost:              v.Name,
		ProtoMountpoint:    cfg.Proto.Mountpoint,
		ProtoEtcMountpoint: cfg.Proto.EtcMountpoint(),
		Snapshot:           snapName,
		SnapshotFull:       cfg.Proto.Dataset + "@" + snapName,
		JailPath:           v.Path,
		EtcBackend:         cfg.Etc.Backend,
		EtcSize:            cfg.Etc.Size,
	}
	for _, d := range v.Datasets {
		s.Datasets = append(s.Datasets, fstabgen.Mount{Dataset: v.Dataset + "/" + d, Dir: path.Join(v.Path, d)})
	}
	return s
}

// ReadFstab reads and parses v's fstab; (nil, nil) when there is none.
func (m *Manager) ReadFstab(v *config.Vhost) (*fstabgen.Fstab, error) {
	b, err := os.ReadFile(m.Cfg.FstabPath(v))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("vhost %s: %w", v.Name, err)
	}
	f, err := fstabgen.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("vhost %s: %s: %w", v.Name, m.Cfg.FstabPath(v), err)
	}
	return f, nil
}

// WriteConf writes the jail's configuration file when it differs from what is there.
func (m *Manager) WriteConf(v *config.Vhost) (bool, error) {
	j := m.Jail(v)
	b, err := m.Host.RenderConf(j)
	if err != nil {
		return false, err
	}
	file := m.Host.ConfFile(j)
	if old, err := os.ReadFile(file); err == nil && string(old) == string(b) {
		return false, nil
	}
	if err := os.MkdirAll(path.Dir(file), 0o755); err != nil {
		return false, fmt.Errorf("vhost %s: %w", v.Name, err)
	}
	if err := atomicfile.Write(file, b, 0o644); err != nil {
		return false, fmt.Errorf("vhost %s: %w", v.Name, err)
	}
	return true, nil
}

// vhosts looks up names, refusing unknown or repeated ones.
func (m *Manager) vhosts(names []string) ([]*config.Vhost, error) {
	if len(names) == 0 {
		return nil, fmt.Errorf("no vhost named")
	}
	var vs []*config.Vhost
	seen := map[string]bool{}
	for _, n := range names {
		v, err := m.Cfg.Vhost(n)
		if err != nil {
			return nil, err
		}
		if seen[n] {
			return nil, fmt.Errorf("vhost %q named twice", n)
		}
		seen[n] = true
		vs = append(vs, v)
	}
	return vs, nil
}
