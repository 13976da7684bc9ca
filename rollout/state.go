package rollout

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rollout-dev/rollout/proto"
	"github.com/rollout-dev/rollout/proto/command"
	"github.com/rollout-dev/rollout/proto/zfs"
)

// A vhost's state lives in ZFS user properties on its parent dataset (zpool/vhost1): a NanoBSD
// host's /etc and /var are memory disks, the pool is what survives a reboot, and one `zfs set`
// of several properties is one transaction.
const (
	propSnapshot = "rollout:snapshot" // the prototype snapshot the vhost runs on (zpool/proto@2)
	propPrevious = "rollout:previous" // the one it ran on before, the rollback target
	propHistory  = "rollout:history"  // earlier ones, newest first, comma separated
	propPending  = "rollout:pending"  // the journal: an operation in progress, or "none"
	propBoot     = "rollout:boot"     // "on": start the vhost at boot (rollout boot); "off": leave it stopped
	propTry      = "rollout:try"      // the vhost's try (rollout try), made, live or ended: its journal; or "none"
	propTryOf    = "rollout:try-of"   // on a try's own dataset: the vhost it tries (only such a dataset is destroyed)
	historyLen   = 8
	none         = proto.Unset // what PropValue reads back as unset
)

// State is what rollout knows of one vhost, read from its dataset.
type State struct {
	Vhost    string
	Dataset  string
	Snapshot string   // full name, "" when rollout never ran this vhost
	Previous string   // full name or ""
	History  []string // older snapshots, newest first
	Pending  *Journal // nil when no operation is in progress
	// Boot: start the vhost at boot. Set by create and start, cleared by stop; a vhost from
	// before the property existed counts as on, as create starts vhosts by default.
	Boot bool
	// Try is the vhost's test jail (rollout try), nil when it has none.
	Try *TryRecord
}

// Journal is an operation in progress on one vhost, written before the first step that changes
// anything and updated at each step, so that a run that died can be told and repaired.
type Journal struct {
	Op         string // promote, rollback
	From, To   string // full snapshot names
	Step       string // the last step begun
	WasRunning bool
}

func (j *Journal) String() string {
	return fmt.Sprintf("op=%s from=%s to=%s step=%s running=%t", j.Op, j.From, j.To, j.Step, j.WasRunning)
}

// parseFields reads a record of rollout's "key=value key=value" properties (the journal, a
// try): nil for an unset property ("", "none", "-").
func parseFields(what, s string) (map[string]string, error) {
	if proto.PropValue(s) == "" {
		return nil, nil
	}
	m := map[string]string{}
	for _, f := range strings.Fields(s) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return nil, fmt.Errorf("%s %q: field %q has no '='", what, s, f)
		}
		m[k] = v
	}
	return m, nil
}

func parseJournal(s string) (*Journal, error) {
	m, err := parseFields("journal", s)
	if m == nil || err != nil {
		return nil, err
	}
	j := &Journal{Op: m["op"], From: m["from"], To: m["to"], Step: m["step"], WasRunning: m["running"] == "true"}
	if j.Op == "" || j.To == "" {
		return nil, fmt.Errorf("journal %q: incomplete", s)
	}
	return j, nil
}

// LoadState reads a vhost's state. A dataset without rollout's properties has an empty state.
func LoadState(ctx context.Context, r command.Runner, vhost, dataset string) (*State, error) {
	props, err := zfs.UserProps(ctx, r, dataset, "rollout:")
	if err != nil {
		return nil, fmt.Errorf("vhost %s: %w", vhost, err)
	}
	return stateOf(vhost, dataset, props)
}

// stateOf makes a vhost's state of its dataset's locally set rollout:* properties, checking
// every snapshot name they hold.
func stateOf(vhost, dataset string, props map[string]string) (*State, error) {
	var err error
	st := &State{Vhost: vhost, Dataset: dataset, Snapshot: proto.PropValue(props[propSnapshot]), Previous: proto.PropValue(props[propPrevious]),
		Boot: props[propBoot] != "off"}
	if h := proto.PropValue(props[propHistory]); h != "" {
		st.History = strings.Split(h, ",")
	}
	if st.Pending, err = parseJournal(props[propPending]); err != nil {
		return nil, fmt.Errorf("vhost %s: %s on %s: %w", vhost, propPending, dataset, err)
	}
	if st.Try, err = parseTry(props[propTry]); err != nil {
		return nil, fmt.Errorf("vhost %s: %s on %s: %w", vhost, propTry, dataset, err)
	}
	check := func(prop string, snaps ...string) error {
		for _, s := range snaps {
			if s == "" {
				continue
			}
			if _, _, err := zfs.SplitSnapshot(s); err != nil {
				return fmt.Errorf("vhost %s: %s on %s: %w", vhost, prop, dataset, err)
			}
		}
		return nil
	}
	if err := errors.Join(check(propSnapshot, st.Snapshot), check(propPrevious, st.Previous), check(propHistory, st.History...)); err != nil {
		return nil, err
	}
	return st, nil
}

// writeJournal records the step about to begin.
func writeJournal(ctx context.Context, r command.Runner, dataset string, j *Journal) error {
	return zfs.SetProps(ctx, r, dataset, map[string]string{propPending: j.String()})
}

// commit records that the vhost now runs on to (having run on from), and closes the journal,
// in one transaction.
func commit(ctx context.Context, r command.Runner, st *State, to string) error {
	props := map[string]string{propPending: none}
	if to != st.Snapshot {
		hist := st.History
		if st.Previous != "" {
			hist = append([]string{st.Previous}, hist...)
		}
		hist = dedupe(hist, to, st.Snapshot)
		if len(hist) > historyLen {
			hist = hist[:historyLen]
		}
		props[propSnapshot] = to
		props[propPrevious] = orNone(st.Snapshot)
		props[propHistory] = orNone(strings.Join(hist, ","))
	}
	return zfs.SetProps(ctx, r, st.Dataset, props)
}

// commitTimeout bounds a commit that no longer listens to the command's context: long enough
// for a zfs set to wait out a slow transaction group sync, short enough not to hang forever.
const commitTimeout = 2 * time.Minute

// commitSwitch is the last step of a switch: commit, whatever happens to ctx. A SIGINT or
// SIGTERM that arrived while zfs set waited for the txg sync would kill zfs after the kernel
// had already made the change; the undo would then put the jail back on the old snapshot
// while the properties name the new one. So the commit runs detached from ctx, with its own
// deadline, and a commit that reports failure is checked by reading the properties again:
// if they name the new snapshot with no journal, it was committed.
func (m *Manager) commitSwitch(ctx context.Context, st *State, to string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
	defer cancel()
	err := commit(ctx, m.R, st, to)
	if err == nil {
		return nil
	}
	now, lerr := LoadState(ctx, m.R, st.Vhost, st.Dataset)
	if lerr != nil {
		return fmt.Errorf("%w (reading %s again to see whether the commit happened: %v)", err, st.Dataset, lerr)
	}
	if now.Pending == nil && now.Snapshot == to {
		m.Log.Warn("zfs set reported a failure but the commit happened", "vhost", st.Vhost, "dataset", st.Dataset, "snapshot", to, "err", err)
		return nil
	}
	return err
}

func orNone(s string) string {
	if s == "" {
		return none
	}
	return s
}

func dedupe(list []string, drop ...string) []string {
	var out []string
	seen := map[string]bool{}
	for _, d := range drop {
		seen[d] = true
	}
	for _, s := range list {
		if s != "" && s != none && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// Needed returns the snapshots a state needs kept: the one it runs on, the rollback target,
// and the target of an unfinished operation.
func (st *State) Needed() []string {
	var n []string
	for _, s := range []string{st.Snapshot, st.Previous} {
		if s != "" && s != none {
			n = append(n, s)
		}
	}
	if st.Pending != nil {
		n = append(n, st.Pending.From, st.Pending.To)
	}
	return n
}
