package rollout

import (
	"context"
	"fmt"
	"path"
	"strings"

	"github.com/rollout-dev/rollout/etcmerge"
	"github.com/rollout-dev/rollout/rollout/config"
)

// /etc drift on upgrade: a vhost's /cfg file overrides a base file that changed between the
// snapshot the vhost runs on and the one it is promoted to. Promote lists such files as a
// warning in its plan (--strict refuses); `etc diff --against` lists them; `etc merge` merges
// the base's change into /cfg (etcmerge.Merge). /cfg is the vhost's own dataset, mounted only
// while its jail runs, so a stopped vhost's drift is not checked.

// cfgType is the file system type mounted on the vhost's /cfg ("" when nothing is).
func (m *Manager) cfgType(ctx context.Context, v *config.Vhost) (string, error) {
	fstype, mounted, err := m.Host.Mounted(ctx, path.Join(v.Path, "cfg"))
	if err != nil || !mounted {
		return "", err
	}
	return fstype, nil
}

// driftTrees gives the /etc of the vhost's snapshot (old base), of the target (new base) and
// the vhost's /cfg, ready to read; ok is false when /cfg is not mounted (the jail is stopped).
// cfgType is what is mounted on /cfg (the planners read the mount table once for all vhosts).
func (m *Manager) driftTrees(ctx context.Context, v *config.Vhost, from, to, cfgType string) (oldBase, newBase, overlay string, ok bool, release func(), err error) {
	release = func() {}
	overlay = path.Join(v.Path, "cfg")
	if cfgType != "zfs" {
		return "", "", overlay, false, release, nil
	}
	oldBase, relOld, err := m.Host.SnapshotDir(ctx, m.Cfg.Proto.EtcDataset(), m.Cfg.Proto.EtcMountpoint(), snapName(from))
	if err != nil {
		return "", "", "", false, release, fmt.Errorf("vhost %s: %w", v.Name, err)
	}
	newBase, relNew, err := m.Host.SnapshotDir(ctx, m.Cfg.Proto.EtcDataset(), m.Cfg.Proto.EtcMountpoint(), snapName(to))
	if err != nil {
		relOld()
		return "", "", "", false, release, fmt.Errorf("vhost %s: %w", v.Name, err)
	}
	return oldBase, newBase, overlay, true, func() { relNew(); relOld() }, nil
}

// driftTarget resolves the vhost, its current snapshot and the target snapshot ref.
func (m *Manager) driftTarget(ctx context.Context, name, ref string) (*config.Vhost, string, string, error) {
	v, err := m.Cfg.Vhost(name)
	if err != nil {
		return nil, "", "", err
	}
	target, err := m.Proto().Resolve(ctx, ref)
	if err != nil {
		return nil, "", "", err
	}
	st, err := LoadState(ctx, m.R, v.Name, v.Dataset)
	if err != nil {
		return nil, "", "", err
	}
	if st.Snapshot == "" {
		return nil, "", "", fmt.Errorf("vhost %s: no snapshot recorded on %s, so no base to compare with", v.Name, v.Dataset)
	}
	return v, st.Snapshot, target.FullName(), nil
}

// onDriftTrees resolves the vhost and ref, mounts the old and new base /etc and runs fn on them
// and the vhost's /cfg, which must be mounted (its jail running). It returns the two snapshots.
func (m *Manager) onDriftTrees(ctx context.Context, name, ref string, fn func(v *config.Vhost, from, to, oldBase, newBase, overlay string) error) (from, to string, _ error) {
	v, from, to, err := m.driftTarget(ctx, name, ref)
	if err != nil {
		return "", "", err
	}
	fstype, err := m.cfgType(ctx, v)
	if err != nil {
		return from, to, fmt.Errorf("vhost %s: %w", v.Name, err)
	}
	oldBase, newBase, overlay, ok, release, err := m.driftTrees(ctx, v, from, to, fstype)
	if err != nil {
		return from, to, err
	}
	defer release()
	if !ok {
		return from, to, fmt.Errorf("vhost %s: %s is not mounted (is the jail running?)", v.Name, overlay)
	}
	if err := fn(v, from, to, oldBase, newBase, overlay); err != nil {
		return from, to, fmt.Errorf("vhost %s: %w", v.Name, err)
	}
	return from, to, nil
}

// EtcDrift lists the vhost's /cfg files whose base differs between the snapshot it runs on
// and ref, and were not merged with ref's version yet. It returns the two snapshots' names.
func (m *Manager) EtcDrift(ctx context.Context, name, ref string) (from, to string, ds []etcmerge.Drift, err error) {
	from, to, err = m.onDriftTrees(ctx, name, ref, func(_ *config.Vhost, _, _, oldBase, newBase, overlay string) (err error) {
		ds, err = etcmerge.ListDrift(ctx, oldBase, newBase, overlay)
		return err
	})
	if err != nil {
		return from, to, nil, err
	}
	return from, to, ds, nil
}

// EtcMerge merges the base's changes from the vhost's snapshot to ref into its drifted /cfg
// files (etcmerge.Merge: all or nothing; o.Labels is filled in here).
func (m *Manager) EtcMerge(ctx context.Context, name, ref string, o etcmerge.MergeOptions) (from, to string, res []etcmerge.MergeResult, err error) {
	from, to, err = m.onDriftTrees(ctx, name, ref, func(v *config.Vhost, from, to, oldBase, newBase, overlay string) (err error) {
		o.Labels = etcmerge.Labels{Mine: "/cfg (" + v.Name + ")", Old: path.Base(from), New: path.Base(to)}
		res, err = etcmerge.Merge(ctx, oldBase, newBase, overlay, o)
		return err
	})
	return from, to, res, err
}

// planDrift puts the vhost's drift from its snapshot to the target into its plan.
func (m *Manager) planDrift(ctx context.Context, v *config.Vhost, vp *VhostPlan, cfgType string) error {
	if vp.From == "" {
		return nil
	}
	oldBase, newBase, overlay, ok, release, err := m.driftTrees(ctx, v, vp.From, vp.To, cfgType)
	if err != nil {
		return err
	}
	defer release()
	if !ok {
		vp.Warnings = append(vp.Warnings, "its /cfg is not mounted (the jail is stopped): /cfg files overriding changed base files not checked")
		return nil
	}
	ds, err := etcmerge.ListDrift(ctx, oldBase, newBase, overlay)
	if err != nil {
		return fmt.Errorf("vhost %s: %w", v.Name, err)
	}
	vp.Drift = ds
	if len(ds) > 0 {
		vp.Warnings = append(vp.Warnings, fmt.Sprintf("its /cfg overrides files the base changed from %s to %s, not merged (rollout etc merge %s %s): %s",
			path.Base(vp.From), path.Base(vp.To), v.Name, path.Base(vp.To), driftList(ds)))
	}
	return nil
}

// driftList is "ssh/sshd_config (changed), ..." with tenant names escaped.
func driftList(ds []etcmerge.Drift) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = etcmerge.Escape(d.Path) + " (" + d.Kind + ")"
	}
	return strings.Join(s, ", ")
}

// strictDrift is promote --strict's refusal: one line naming each vhost and its files.
func strictDrift(p *Plan) error {
	var bad []string
	for _, vp := range p.Vhosts {
		if len(vp.Drift) > 0 {
			bad = append(bad, fmt.Sprintf("vhost %s: %s", vp.Vhost, driftList(vp.Drift)))
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("promote --strict: /cfg files override base files changed by the new snapshot and are not merged (rollout etc merge VHOST proto@N): %s",
		strings.Join(bad, "; "))
}
