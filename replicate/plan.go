// Package replicate sends the prototype's snapshots to slave hosts: zfs send on this host, piped
// over SSH into zfs receive on each slave. Planning is pure (MakePlan, from listed state), so what
// a run will do, and what it refuses to do, is decided and shown before any stream starts.
package replicate

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/rollout-dev/rollout/proto/command"
	"github.com/rollout-dev/rollout/proto/zfs"
)

// Mode is what a plan does.
type Mode string

const (
	ModeNone        Mode = "none"        // the slave already has the target (by guid)
	ModeFull        Mode = "full"        // zfs send -R target
	ModeIncremental Mode = "incremental" // zfs send -R -I @base target
	ModeResume      Mode = "resume"      // zfs send -t TOKEN for an interrupted receive, then plan again
	// ModeComplete finishes an interrupted -R stream whose top dataset already has the target:
	// zfs send -I @base DS@target for each child that lacks it, then plan again (re-sending
	// the whole -R stream would move the top's data, which is usually most of it, again)
	ModeComplete Mode = "complete"
)

// MasterState is the prototype on this host.
type MasterState struct {
	Dataset   string         // zpool/proto
	Snapshots []zfs.Snapshot // of Dataset and its descendants (zfs list -r), any order
	// Features of this host's pool and zfs; nil: not read (send_flags is not auto)
	Features *Features
	// Encryption is Dataset's encryption property ("off"); read with Features
	Encryption string
	// Records are the rollout:replicated:SLAVE properties on Dataset, by (lower case) slave
	Records map[string]LastReplication
}

// SlaveState is what a slave has of the prototype, and what its vhosts use.
type SlaveState struct {
	Dataset     string   // where receive -d puts the prototype: POOL/proto
	Exists      bool     // Dataset exists
	Filesystems []string // Dataset and its descendant file systems
	Snapshots   []zfs.Snapshot
	// ResumeTokens maps a dataset to its receive_resume_token (an interrupted receive -s).
	ResumeTokens map[string]string
	// Written maps a file system to its `written` property: bytes written since its newest
	// snapshot. Non-zero means the replica was modified, and an incremental receive fails.
	Written map[string]uint64
	// InUse maps a full snapshot name to the datasets whose rollout:snapshot or rollout:previous
	// names it, or whose rollout:pending journal goes from or to it. These must never be
	// destroyed or renamed by a receive.
	InUse map[string][]string
	// NotReadonly and Unmounted are the replica's file systems that are not read-only, and not
	// mounted though they would be: a run cut after its receive
	NotReadonly []string
	Unmounted   []string
	// LockHeld: rollout is running on the slave (its lock file is held).
	LockHeld bool
	// LockFile is the slave's lock file that was checked, for the refusal.
	LockFile string
	// Tokens is what the master made of each of ResumeTokens (by dataset), with zfs send -nvt.
	Tokens map[string]TokenCheck
	// Features of the slave's pool and zfs; nil: not read (send_flags is not auto)
	Features *Features
}

// TokenCheck is what the master's zfs send -n -v -t printed of one resume token.
type TokenCheck struct {
	Token *ResumeToken // nil: not decoded
	Err   string       // why not
}

// Request is what was asked for one slave.
type Request struct {
	Slave  string // name in rollout.toml
	Pool   string // the slave's pool (receive -d POOL)
	Target string // snapshot name on the master ("3")
	Force  bool   // allow receive -F (never over a snapshot in use)
	// SendFlags says how zfs send's stream flags (-c -L -e -w) are chosen; zero: none
	SendFlags SendFlags
}

// Step is one send | receive pipeline.
type Step struct {
	Dataset  string   `json:"dataset"`            // slave dataset it writes to
	Token    string   `json:"token"`              // resume token
	Rollback []string `json:"rollback,omitempty"` // run on the slave first (a modified replica, --force)
	// Check decoded the token here, at planning: it must name a prototype snapshot by guid
	Check       []string `json:"check,omitempty"`
	Names       string   `json:"names,omitempty"`   // the token's toname
	Abort       []string `json:"abort,omitempty"`   // instead of resuming: zfs receive -A, on the slave
	SendArgv    []string `json:"send,omitempty"`    // run here
	ReceiveArgv []string `json:"receive,omitempty"` // run on the slave
}

// Plan is what replicating to one slave will do. It is data: --dry-run prints it, --json shows it.
type Plan struct {
	Slave          string   `json:"slave"`
	Mode           Mode     `json:"mode"`
	Base           string   `json:"base,omitempty"`  // master snapshot the increment starts from
	Target         string   `json:"target"`          // master snapshot that the slave will have
	SlaveDataset   string   `json:"slave_dataset"`   // POOL/proto
	EstimatedBytes int64    `json:"estimated_bytes"` // from zfs send -nvP; -1 when unknown
	SendArgv       []string `json:"send,omitempty"`  // local command
	// SendFlags are the stream flags in SendArgv (and in each completion step's send), and
	// SendFlagsWhy what chose them; a resume (zfs send -t) takes its flags from the token
	SendFlags    []string `json:"send_flags,omitempty"`
	SendFlagsWhy string   `json:"send_flags_reason,omitempty"`
	ReceiveArgv  []string `json:"receive,omitempty"`  // remote command
	AfterArgv    []string `json:"after,omitempty"`    // remote command after a successful receive
	Force        bool     `json:"force"`              // receive -F is used
	Destroys     []string `json:"destroys,omitempty"` // slave snapshots and file systems receive -F destroys
	Resume       []Step   `json:"resume,omitempty"`   // interrupted receives to finish first
	Steps        []Step   `json:"steps,omitempty"`    // complete: one send | receive per child
	Then         *Plan    `json:"then,omitempty"`     // for resume: the plan as it looks now; replanned after
	Reasons      []string `json:"reasons,omitempty"`  // why this plan
	TargetGUID   uint64   `json:"target_guid,string"` // the target's guid on the master
	// RecordArgv runs here once the slave has the target: rollout:replicated:SLAVE on the
	// master's prototype. Its time is the planning time; the run writes the time it finished.
	RecordArgv []string `json:"record,omitempty"`
	// Finish: the slave has the target, but a run cut after the receive left its copy not
	// read-only or not mounted; AfterArgv and the mounts run again
	Finish bool `json:"finish,omitempty"`
	// expect maps each slave snapshot the stream must leave to its guid: checked after the
	// receive, before readonly and the mount (a receive that ended early can exit 0)
	expect map[string]uint64
}

// Refused is a replication that planning will not do, with every reason.
type Refused struct {
	Slave   string
	Reasons []string
}

func (e *Refused) Error() string {
	return fmt.Sprintf("%s: refusing to replicate: %s", e.Slave, strings.Join(e.Reasons, "; "))
}

// SlaveDataset is where `zfs receive -d pool` puts master's dataset: the pool's name is replaced.
func SlaveDataset(masterDataset, pool string) string {
	_, rest, _ := strings.Cut(masterDataset, "/")
	if rest == "" {
		return pool
	}
	return pool + "/" + rest
}

// ReceiveArgv is the receive command for a (replication) stream: -s keeps partial state for a
// resume, -u leaves the replica unmounted (on a host that is also a master, a mounted copy
// would cover the source's mountpoint), -d keeps the path below the pool.
func ReceiveArgv(pool string, force, first bool) []string {
	argv := []string{zfs.Bin, "receive", "-s", "-u"}
	if first {
		// a new replica is read-only from its first moment: a replica that is only read
		// (atime) already counts as modified and breaks the next incremental or resume
		argv = append(argv, "-o", "readonly=on")
	}
	if force {
		argv = append(argv, "-F")
	}
	return append(argv, "-d", pool)
}

// ReadonlyArgv keeps the slave's prototype read-only after every receive (OpenZFS keeps a local
// property over received ones, so this survives later receives).
func ReadonlyArgv(dataset string) []string { return []string{zfs.Bin, "set", "readonly=on", dataset} }

// tree groups snapshots by dataset path relative to the prototype ("" is the top, "/etc" a child),
// each list in createtxg order.
type tree map[string][]zfs.Snapshot

func newTree(root string, snaps []zfs.Snapshot) tree {
	t := tree{}
	for _, s := range snaps {
		if rel, ok := relPath(root, s.Dataset); ok {
			t[rel] = append(t[rel], s)
		}
	}
	for _, l := range t {
		sort.SliceStable(l, func(i, j int) bool { return l[i].CreateTXG < l[j].CreateTXG })
	}
	return t
}

func relPath(root, ds string) (string, bool) {
	if ds == root {
		return "", true
	}
	if strings.HasPrefix(ds, root+"/") {
		return ds[len(root):], true
	}
	return "", false
}

func byGUID(l []zfs.Snapshot) map[uint64]zfs.Snapshot {
	m := make(map[uint64]zfs.Snapshot, len(l))
	for _, s := range l {
		m[s.GUID] = s
	}
	return m
}

func sortedKeys[V any](m map[string]V) []string {
	k := make([]string, 0, len(m))
	for x := range m {
		k = append(k, x)
	}
	sort.Strings(k)
	return k
}

// MakePlan decides how to bring one slave to req.Target. It returns *Refused when it will not.
func MakePlan(m MasterState, s SlaveState, req Request) (*Plan, error) {
	if s.LockHeld {
		// a promote there may be switching to or from any snapshot; even --force does not
		// replicate under it
		return nil, &Refused{Slave: req.Slave, Reasons: []string{fmt.Sprintf("rollout is running on the slave (its lock %s is held); try again when it has finished", s.LockFile)}}
	}
	if len(s.ResumeTokens) > 0 {
		return resumePlan(m, s, req)
	}
	return plan(m, s, req)
}

func resumePlan(m MasterState, s SlaveState, req Request) (*Plan, error) {
	p := &Plan{Slave: req.Slave, Mode: ModeResume, SlaveDataset: s.Dataset, EstimatedBytes: -1,
		Target: m.Dataset + "@" + req.Target}
	var refuse []string
	for _, ds := range sortedKeys(s.ResumeTokens) {
		tok := s.ResumeTokens[ds]
		st := Step{Dataset: ds, Token: tok}
		// the slave chose the token, and zfs send -t sends whatever snapshot of the master's
		// pool has its toguid: it is resumed only when it names this dataset's counterpart
		// on the master, by name and guid
		ok, stale, why := verifyToken(m, s, ds, tok)
		if !ok {
			st.Token = "" // not shown: it is not ours
			st.Abort = AbortArgv(ds)
			if stale {
				p.Resume = append(p.Resume, st)
				p.Reasons = append(p.Reasons, fmt.Sprintf("receive into %s was interrupted, but %s: discarding the partial receive", ds, why))
				continue
			}
			if !req.Force {
				refuse = append(refuse, fmt.Sprintf("%s: %s; fix: zfs receive -A %s on %s (or --force does it)", ds, why, ds, req.Slave))
				continue
			}
			p.Resume = append(p.Resume, st)
			p.Reasons = append(p.Reasons, fmt.Sprintf("%s: %s: discarding the partial receive (--force)", ds, why))
			continue
		}
		st.Check = DecodeTokenArgv(tok)
		st.Names = s.Tokens[ds].Token.ToName
		st.SendArgv = []string{zfs.Bin, "send", "-t", tok}
		st.ReceiveArgv = []string{zfs.Bin, "receive", "-s", "-u", ds}
		// a dataset with no snapshot yet is a full receive cut short: what `written` counts
		// there is the partial receive itself, not a modification
		if last := newest(s.Snapshots, ds); s.Written[ds] > 0 && last != "" {
			switch {
			case !req.Force:
				refuse = append(refuse, fmt.Sprintf("%s was modified since %s (written=%d), so its interrupted receive cannot resume; --force rolls it back to %s first (the partial receive is kept)", ds, last, s.Written[ds], last))
			default:
				st.Rollback = []string{zfs.Bin, "rollback", last}
			}
		}
		p.Resume = append(p.Resume, st)
		p.Reasons = append(p.Reasons, fmt.Sprintf("receive into %s was interrupted; resuming it first, then planning again", ds))
	}
	if len(refuse) > 0 {
		return nil, &Refused{Slave: req.Slave, Reasons: refuse}
	}
	// what the run would do next if the resumed receive changed nothing else; it is planned
	// again after the resume, from what the slave then has
	if then, err := plan(m, s, req); err == nil {
		p.Then = then
	} else {
		p.Reasons = append(p.Reasons, "after it: "+err.Error())
	}
	return p, nil
}

// completeSteps finishes a replication that an interrupted -R stream left uneven: some datasets
// further than others, or not there at all. It returns one send | receive per dataset that
// lacks the target, parents first: an incremental from that dataset's own newest snapshot (by
// guid), or, for a dataset the slave does not have, a -R stream of it alone. None needs
// receive -F, so nothing on the slave is destroyed or rolled back, and what had arrived is
// never sent again.
//
// It returns nil when the copy is even (one -R -I stream from a common base does it, and can
// be shared between slaves) or when some dataset cannot be completed on its own: it diverged,
// was modified, or has snapshots the master lacks. Then the -R stream's rules and refusals apply.
func completeSteps(s SlaveState, mt, st tree, target zfs.Snapshot, pool string, flags []string) []Step {
	exists := map[string]bool{}
	for _, fs := range s.Filesystems {
		if rel, ok := relPath(s.Dataset, fs); ok {
			exists[rel] = true
		}
	}
	var steps []Step
	uneven := false
	topBase := ""
	var missing []string // datasets sent whole, with their descendants
	for _, rel := range sortedKeys(mt) {
		if slices.ContainsFunc(missing, func(m string) bool { return strings.HasPrefix(rel, m+"/") }) {
			continue // in its ancestor's -R stream
		}
		l := mt[rel]
		ti := slices.IndexFunc(l, func(x zfs.Snapshot) bool { return x.Name == target.Name && x.CreateTXG == target.CreateTXG })
		if ti < 0 {
			continue // the dataset has no such snapshot: not in the stream
		}
		sds := s.Dataset + rel
		if !exists[rel] {
			if len(st[rel]) > 0 || slices.ContainsFunc(s.Filesystems, func(fs string) bool { return strings.HasPrefix(fs, sds+"/") }) {
				return nil
			}
			uneven = true
			missing = append(missing, rel)
			steps = append(steps, Step{Dataset: sds,
				SendArgv:    withFlags([]string{zfs.Bin, "send", "-R", l[ti].FullName()}, flags),
				ReceiveArgv: ReceiveArgv(pool, false, true)})
			continue
		}
		if s.Written[sds] > 0 {
			return nil
		}
		// the slave's snapshots of this dataset must all be the master's, up to the target;
		// the newest of them is its base
		bi := -1
		for _, x := range st[rel] {
			i := slices.IndexFunc(l, func(y zfs.Snapshot) bool { return y.GUID == x.GUID })
			if i < 0 || i > ti {
				return nil
			}
			bi = max(bi, i)
		}
		if bi < 0 {
			return nil // there but empty: only a full receive with -F would do
		}
		if rel == "" {
			topBase = l[bi].Name
		} else if l[bi].Name != topBase {
			uneven = true
		}
		if bi == ti {
			uneven = true
			continue
		}
		steps = append(steps, Step{Dataset: sds,
			// the flags of the -R stream it completes: a replica received with -L refuses a
			// stream without it
			SendArgv:    withFlags([]string{zfs.Bin, "send", "-I", "@" + l[bi].Name, l[ti].FullName()}, flags),
			ReceiveArgv: []string{zfs.Bin, "receive", "-s", "-u", sds}})
	}
	if !uneven {
		return nil
	}
	return steps
}

// hasTarget reports whether the slave has the target snapshot, by guid, on every dataset that
// the master has it on.
func hasTarget(mt, st tree, target zfs.Snapshot) bool {
	for rel, l := range mt {
		for _, x := range l {
			if x.Name != target.Name || x.CreateTXG != target.CreateTXG {
				continue
			}
			if _, ok := byGUID(st[rel])[x.GUID]; !ok {
				return false
			}
		}
	}
	return true
}

func newest(snaps []zfs.Snapshot, ds string) string {
	var last *zfs.Snapshot
	for i := range snaps {
		if snaps[i].Dataset == ds && (last == nil || snaps[i].CreateTXG > last.CreateTXG) {
			last = &snaps[i]
		}
	}
	if last == nil {
		return ""
	}
	return last.FullName()
}

func plan(m MasterState, s SlaveState, req Request) (*Plan, error) {
	mt := newTree(m.Dataset, m.Snapshots)
	st := newTree(s.Dataset, s.Snapshots)
	p := &Plan{Slave: req.Slave, SlaveDataset: s.Dataset, EstimatedBytes: -1, Target: m.Dataset + "@" + req.Target}
	refuse := func(reasons ...string) error { return &Refused{Slave: req.Slave, Reasons: reasons} }

	top := mt[""]
	ti := -1
	for i, x := range top {
		if x.Name == req.Target {
			ti = i
		}
	}
	if ti < 0 {
		return nil, refuse(fmt.Sprintf("the master has no snapshot %s", p.Target))
	}
	target := top[ti]

	expect := map[string]uint64{}
	for rel, l := range mt {
		for _, x := range l {
			if x.Name == target.Name && x.CreateTXG == target.CreateTXG {
				expect[s.Dataset+rel+"@"+x.Name] = x.GUID
			}
		}
	}
	p.expect = expect

	if hasTarget(mt, st, target) {
		p.Mode = ModeNone
		p.Reasons = append(p.Reasons, fmt.Sprintf("%s already has %s@%s (guid %d)", s.Dataset, s.Dataset, target.Name, target.GUID))
		if len(s.NotReadonly)+len(s.Unmounted) > 0 {
			// the receive was done, the steps after it were cut short: they run again
			p.Finish = true
			p.AfterArgv = ReadonlyArgv(s.Dataset)
			var what []string
			if len(s.NotReadonly) > 0 {
				what = append(what, "not read-only: "+strings.Join(s.NotReadonly, ", "))
			}
			if len(s.Unmounted) > 0 {
				what = append(what, "not mounted: "+strings.Join(s.Unmounted, ", "))
			}
			p.Reasons = append(p.Reasons, fmt.Sprintf("but a run was cut after its receive (%s): finishing it", strings.Join(what, "; ")))
		}
		return p, nil
	}
	// the stream flags are chosen only for a plan that sends: an up-to-date slave is never
	// refused for them
	flags := func() error {
		f, why, no := chooseFlags(m, s, req)
		if no != "" {
			return refuse(no)
		}
		p.SendFlags, p.SendFlagsWhy = f, why
		return nil
	}
	if !s.Exists {
		if err := flags(); err != nil {
			return nil, err
		}
		p.Mode = ModeFull
		p.SendArgv = withFlags([]string{zfs.Bin, "send", "-R", target.FullName()}, p.SendFlags)
		p.ReceiveArgv = ReceiveArgv(req.Pool, false, true)
		p.AfterArgv = ReadonlyArgv(s.Dataset)
		p.Reasons = append(p.Reasons, fmt.Sprintf("%s does not exist on the slave: full send", s.Dataset))
		return p, nil
	}

	// sendSet is, per dataset, what a -R stream up to the target carries in its snapshot lists:
	// every snapshot no newer than the target. receive -F destroys slave snapshots outside it.
	sendSet := map[string]map[uint64]zfs.Snapshot{}
	names := map[string]map[string]zfs.Snapshot{}
	for rel, l := range mt {
		sendSet[rel] = map[uint64]zfs.Snapshot{}
		names[rel] = map[string]zfs.Snapshot{}
		for _, x := range l {
			if x.CreateTXG <= target.CreateTXG {
				sendSet[rel][x.GUID] = x
				names[rel][x.Name] = x
			}
		}
	}

	// base: the newest master snapshot before the target that the slave has, matched by guid.
	// (The slave's top dataset can have the target while a child lacks it: a -R stream cut
	// after the top's part and resumed. The target is then no base: the stream from the
	// snapshot before it completes the children.)
	var base *zfs.Snapshot
	slaveTop := byGUID(st[""])
	for i := ti - 1; i >= 0; i-- {
		if _, ok := slaveTop[top[i].GUID]; ok {
			base = &top[i]
			break
		}
	}

	var reasons, notes []string
	if len(st[""]) == 0 {
		reasons = append(reasons, fmt.Sprintf("%s exists on the slave but has no snapshots, so it is not a replica of %s; a full receive over it needs -F", s.Dataset, m.Dataset))
	} else if base == nil {
		return nil, refuse(fmt.Sprintf("%s has no snapshot in common with %s (compared by guid), so no incremental send can apply; a full send would first need the slave's copy destroyed (zfs destroy -r %s on the slave, after checking that no vhost uses it)", s.Dataset, m.Dataset, s.Dataset))
	}

	ahead := false // some child already has snapshots past the base: an interrupted -R stream
	for _, rel := range sortedKeys(st) {
		sds := s.Dataset + rel
		mds := m.Dataset + rel
		var baseOnSlave *zfs.Snapshot
		if base != nil {
			if mb, ok := names[rel][base.Name]; ok {
				for i, x := range st[rel] {
					if x.GUID == mb.GUID {
						baseOnSlave = &st[rel][i]
					}
				}
				if baseOnSlave == nil {
					reasons = append(reasons, fmt.Sprintf("%s lacks @%s (guid %d), the base of the increment", sds, base.Name, mb.GUID))
				}
			}
		}
		var diverged, extra []string
		for _, x := range st[rel] {
			if _, ok := sendSet[rel][x.GUID]; ok {
				if baseOnSlave != nil && x.CreateTXG > baseOnSlave.CreateTXG {
					ahead = true
				}
				continue
			}
			if mx, ok := names[rel][x.Name]; ok {
				diverged = append(diverged, fmt.Sprintf("@%s (guid %d on the slave, %d on the master)", x.Name, x.GUID, mx.GUID))
			} else if baseOnSlave == nil || x.CreateTXG > baseOnSlave.CreateTXG {
				extra = append(extra, "@"+x.Name)
			}
		}
		if len(diverged) > 0 {
			reasons = append(reasons, fmt.Sprintf("%s and %s have diverged: same name, different snapshot: %s", sds, mds, strings.Join(diverged, ", ")))
		}
		if len(extra) > 0 {
			reasons = append(reasons, fmt.Sprintf("%s has snapshots newer than the base that the master lacks: %s", sds, strings.Join(extra, ", ")))
		}
	}
	for _, fs := range s.Filesystems {
		if n := s.Written[fs]; n > 0 && len(st[strings.TrimPrefix(fs, s.Dataset)]) > 0 {
			reasons = append(reasons, fmt.Sprintf("%s was modified since its newest snapshot (written=%d); keep slaves' prototype readonly=on", fs, n))
		}
	}

	// an interrupted -R stream left the datasets at different snapshots: each is completed on
	// its own, with no -F and nothing sent twice
	if steps := completeSteps(s, mt, st, target, req.Pool, nil); steps != nil {
		if err := flags(); err != nil {
			return nil, err
		}
		for i := range steps {
			steps[i].SendArgv = withFlags(steps[i].SendArgv, p.SendFlags)
		}
		p.Mode = ModeComplete
		if base != nil {
			p.Base = base.FullName()
		}
		p.Steps = steps
		p.Reasons = append(p.Reasons, fmt.Sprintf("%s is unevenly replicated (an interrupted replication stream): completing each dataset that lacks @%s from its own newest snapshot", s.Dataset, target.Name))
		return p, nil
	}

	// --force allows receive -F; it is used only when the slave needs it (a plain receive keeps
	// every slave snapshot, so a vhost's older snapshot the master has pruned is kept)
	force := len(reasons) > 0
	if len(reasons) > 0 && !req.Force {
		return nil, refuse(append(reasons, "--force would use receive -F, which rolls the slave back and destroys what the master lacks (never a snapshot a vhost uses)")...)
	}
	if err := flags(); err != nil {
		return nil, err
	}
	if ahead && !force {
		// the slave has master snapshots past the base in some child: the rest of an interrupted
		// -R stream. Re-sending it needs -F, which here destroys nothing (checked below).
		force = true
		notes = append(notes, "some datasets already have snapshots past the base (an interrupted replication stream); receive -F completes it and destroys nothing here")
	}
	if force {
		p.Force = true
		p.Destroys = destroyed(s, st, sendSet)
		if len(p.Destroys) > 0 && !req.Force && len(reasons) == 0 {
			return nil, refuse(fmt.Sprintf("completing the stream with receive -F would destroy %s; --force to accept", strings.Join(p.Destroys, ", ")))
		}
		if used := inUse(p.Destroys, s); len(used) > 0 {
			return nil, refuse(fmt.Sprintf("receive -F would destroy or rename %s, in use on the slave (never, even with --force); move those vhosts to another snapshot first", strings.Join(used, ", ")))
		}
	}

	p.Reasons = append(reasons, notes...)
	p.AfterArgv = ReadonlyArgv(s.Dataset)
	if base == nil {
		p.Mode = ModeFull
		p.SendArgv = withFlags([]string{zfs.Bin, "send", "-R", target.FullName()}, p.SendFlags)
		p.ReceiveArgv = ReceiveArgv(req.Pool, true, true)
		return p, nil
	}
	p.Mode = ModeIncremental
	p.Base = base.FullName()
	p.SendArgv = withFlags([]string{zfs.Bin, "send", "-R", "-I", "@" + base.Name, target.FullName()}, p.SendFlags)
	p.ReceiveArgv = ReceiveArgv(req.Pool, p.Force, false)
	p.Reasons = append(p.Reasons, fmt.Sprintf("newest common snapshot (by guid): @%s", base.Name))
	return p, nil
}

// destroyed lists what receive -F of a -R stream removes: slave snapshots the stream does not
// list, and slave file systems the master does not have (with their snapshots).
func destroyed(s SlaveState, st tree, sendSet map[string]map[uint64]zfs.Snapshot) []string {
	var out []string
	for _, fs := range s.Filesystems {
		rel, _ := relPath(s.Dataset, fs)
		if _, ok := sendSet[rel]; !ok {
			out = append(out, fs)
		}
	}
	for _, rel := range sortedKeys(st) {
		for _, x := range st[rel] {
			set, ok := sendSet[rel]
			if !ok {
				out = append(out, x.FullName()) // its file system goes too
				continue
			}
			if _, ok := set[x.GUID]; !ok {
				out = append(out, x.FullName())
			}
		}
	}
	return out
}

// inUse returns the names in destroys that a vhost uses. A vhost that runs on POOL/proto@3 also
// mounts POOL/proto/etc@3, so a snapshot is in use when its own name or the top dataset's
// snapshot of the same name is; a destroyed file system takes all its snapshots with it.
func inUse(destroys []string, s SlaveState) []string {
	var out []string
	for _, d := range destroys {
		ds, name, isSnap := strings.Cut(d, "@")
		var users []string
		if isSnap {
			users = append(users, s.InUse[d]...)
			if ds != s.Dataset {
				users = append(users, s.InUse[s.Dataset+"@"+name]...)
			}
		} else {
			for _, full := range sortedKeys(s.InUse) {
				if strings.HasPrefix(full, d+"@") {
					users = append(users, s.InUse[full]...)
				}
			}
		}
		if len(users) > 0 {
			sort.Strings(users)
			out = append(out, fmt.Sprintf("%s (used by %s)", d, strings.Join(slicesCompact(users), ", ")))
		}
	}
	return out
}

func slicesCompact(s []string) []string {
	var out []string
	for i, x := range s {
		if i == 0 || x != s[i-1] {
			out = append(out, x)
		}
	}
	return out
}

// String renders the plan for --dry-run: the decision, then the exact commands.
func (p *Plan) String() string {
	var b strings.Builder
	p.render(&b, "")
	return b.String()
}

func (p *Plan) render(b *strings.Builder, indent string) {
	switch p.Mode {
	case ModeNone:
		fmt.Fprintf(b, "%s%s: up to date at %s\n", indent, p.Slave, p.Target)
		if !p.Finish && p.RecordArgv == nil {
			return
		}
	case ModeResume:
		fmt.Fprintf(b, "%s%s: resume interrupted receive\n", indent, p.Slave)
	case ModeComplete:
		fmt.Fprintf(b, "%s%s: complete interrupted stream %s -> %s\n", indent, p.Slave, p.Base, p.Target)
	case ModeFull:
		fmt.Fprintf(b, "%s%s: full send of %s%s\n", indent, p.Slave, p.Target, sizeNote(p.EstimatedBytes))
	case ModeIncremental:
		fmt.Fprintf(b, "%s%s: incremental %s -> %s%s\n", indent, p.Slave, p.Base, p.Target, sizeNote(p.EstimatedBytes))
	}
	for _, r := range p.Reasons {
		fmt.Fprintf(b, "%s  # %s\n", indent, r)
	}
	for _, d := range p.Destroys {
		fmt.Fprintf(b, "%s  # receive -F destroys %s\n", indent, d)
	}
	for _, st := range append(p.Resume, p.Steps...) {
		if st.Check != nil {
			fmt.Fprintf(b, "%s  local:  %s  # names %s, guid checked\n", indent, command.Quote(st.Check), st.Names)
		}
		if st.Abort != nil {
			fmt.Fprintf(b, "%s  %s: %s\n", indent, p.Slave, command.Quote(st.Abort))
			continue
		}
		if st.Rollback != nil {
			fmt.Fprintf(b, "%s  %s: %s\n", indent, p.Slave, command.Quote(st.Rollback))
		}
		fmt.Fprintf(b, "%s  local:  %s | %s: %s\n", indent, command.Quote(st.SendArgv), p.Slave, command.Quote(st.ReceiveArgv))
	}
	if p.Mode == ModeComplete && p.SendFlagsWhy != "" {
		fmt.Fprintf(b, "%s  %s\n", indent, p.flagsNote())
	}
	if p.SendArgv != nil {
		fmt.Fprintf(b, "%s  local:  %s", indent, command.Quote(p.SendArgv))
		if p.SendFlagsWhy != "" {
			fmt.Fprintf(b, "   %s", p.flagsNote())
		}
		b.WriteString("\n")
		fmt.Fprintf(b, "%s  %s: %s\n", indent, p.Slave, command.Quote(p.ReceiveArgv))
	}
	if p.AfterArgv != nil {
		fmt.Fprintf(b, "%s  %s: %s\n", indent, p.Slave, command.Quote(p.AfterArgv))
	}
	if p.SendArgv != nil || p.Resume != nil || p.Steps != nil || p.Finish {
		fmt.Fprintf(b, "%s  %s: /sbin/zfs mount DATASET, for each file system below %s not yet mounted\n", indent, p.Slave, p.SlaveDataset)
	}
	if p.RecordArgv != nil {
		fmt.Fprintf(b, "%s  local:  %s\n", indent, command.Quote(p.RecordArgv))
	}
	if p.Then != nil {
		fmt.Fprintf(b, "%s  then, as it looks now (planned again after the resume):\n", indent)
		p.Then.render(b, indent+"  ")
	}
}

// flagsNote says which stream flags the sends use, and why: "(flags: -c -L: ...)".
func (p *Plan) flagsNote() string {
	f := strings.Join(p.SendFlags, " ")
	if f == "" {
		f = "none"
	}
	return fmt.Sprintf("(flags: %s: %s)", f, p.SendFlagsWhy)
}

func sizeNote(n int64) string {
	if n < 0 {
		return ""
	}
	return ", about " + HumanBytes(n)
}
