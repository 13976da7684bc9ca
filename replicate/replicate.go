package replicate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-multierror"

	"github.com/rollout-dev/rollout/proto"
	"github.com/rollout-dev/rollout/proto/command"
	"github.com/rollout-dev/rollout/proto/zfs"
	"github.com/rollout-dev/rollout/rollout/failpoint"
)

// Slave is one destination, connected.
type Slave struct {
	Name    string
	Runner  command.Runner // runs commands on the slave
	Pool    string
	Bwlimit int64 // bytes per second; 0: none
	// StateDir is rollout's state_dir on the slave, whose lock says that rollout runs there;
	// "": DefaultStateDir.
	StateDir string
}

// lockFile is the slave's rollout lock (rollout.AcquireLock's file).
func (s Slave) lockFile() string {
	dir := s.StateDir
	if dir == "" {
		dir = DefaultStateDir
	}
	return strings.TrimSuffix(dir, "/") + "/lock"
}

// Replicator sends the prototype from this host.
type Replicator struct {
	Local    command.Runner // this host
	Dataset  string         // the prototype: zpool/proto
	Log      *slog.Logger   // nil: slog.Default()
	Progress *Progress      // nil: no progress output
	// SendFlags chooses zfs send's stream flags ([replicate] send_flags); zero: none. When
	// Auto, planning reads the pool features and zfs version of this host and of each slave.
	SendFlags SendFlags
	// Crash is the crash tests' failpoint (see rollout/failpoint); nil does nothing. Its steps
	// here: receive (the stream of a plan), complete (one dataset), readonly, mount and
	// record, each with the slave as target.
	Crash *failpoint.Point
}

// Options are what was asked on the command line.
type Options struct {
	Target string // "3", "proto@3", "zpool/proto@3"; "": the newest complete snapshot
	Force  bool
}

// Result is one slave's outcome, for the summary and --json.
type Result struct {
	Slave   string  `json:"slave"`
	Mode    Mode    `json:"mode,omitempty"`
	Base    string  `json:"base,omitempty"`
	Target  string  `json:"target,omitempty"`
	Bytes   int64   `json:"bytes"`
	Seconds float64 `json:"seconds"`
	Error   string  `json:"error,omitempty"`
	// Resumed lists the slave datasets whose interrupted receive was finished with zfs send -t;
	// Discarded those whose partial receive could not be resumed (its snapshot is gone on the
	// master) and was dropped with zfs receive -A.
	Resumed   []string `json:"resumed,omitempty"`
	Discarded []string `json:"discarded,omitempty"`
	// Completed lists the children that an interrupted -R stream had not reached, each sent on
	// its own (zfs send -I) once the top dataset had the target.
	Completed []string `json:"completed,omitempty"`
	// SharedWith names the other slaves fed from the same zfs send.
	SharedWith []string `json:"shared_with,omitempty"`
	// Mounted lists the received file systems mounted on the slave afterwards.
	Mounted []string `json:"mounted,omitempty"`
	Plan    *Plan    `json:"-"`
}

func (r *Replicator) log() *slog.Logger {
	if r.Log != nil {
		return r.Log
	}
	return slog.Default()
}

// Target resolves what was asked into a snapshot name that every prototype dataset has.
func (r *Replicator) Target(ctx context.Context, ref string) (string, error) {
	p := &proto.Proto{Dataset: r.Dataset, R: r.Local}
	if ref != "" {
		v, err := p.Resolve(ctx, ref)
		if err != nil {
			return "", err
		}
		return v.Name, nil
	}
	vs, err := p.Versions(ctx)
	if err != nil {
		return "", err
	}
	for i := len(vs) - 1; i >= 0; i-- {
		if vs[i].Complete() {
			return vs[i].Name, nil
		}
	}
	return "", fmt.Errorf("%s has no snapshot to replicate (rollout snapshot makes one)", r.Dataset)
}

// Plan plans every slave: the master is listed once, the slaves are queried in parallel. Plans
// come back in the order of slaves; a slave that could not be planned has a nil plan and its
// error is in the returned *multierror.Error.
func (r *Replicator) Plan(ctx context.Context, slaves []Slave, opt Options) ([]*Plan, error) {
	plans, errs, err := r.planAll(ctx, slaves, opt)
	if err != nil {
		return nil, err
	}
	var merr *multierror.Error
	for _, e := range errs {
		if e != nil {
			merr = multierror.Append(merr, e)
		}
	}
	return plans, errorOrNil(merr)
}

// errorOrNil returns merr as one line ("a; b"), or nil when it holds no error.
func errorOrNil(merr *multierror.Error) error {
	if merr == nil {
		return nil
	}
	merr.ErrorFormat = func(es []error) string {
		s := make([]string, len(es))
		for i, e := range es {
			s[i] = e.Error()
		}
		return strings.Join(s, "; ")
	}
	return merr.ErrorOrNil()
}

func (r *Replicator) planAll(ctx context.Context, slaves []Slave, opt Options) ([]*Plan, []error, error) {
	target, err := r.Target(ctx, opt.Target)
	if err != nil {
		return nil, nil, err
	}
	m, err := r.queryMaster(ctx)
	if err != nil {
		return nil, nil, err
	}
	plans := make([]*Plan, len(slaves))
	errs := make([]error, len(slaves))
	var wg sync.WaitGroup
	for i, s := range slaves {
		wg.Add(1)
		go func() {
			defer wg.Done()
			plans[i], errs[i] = r.planSlave(ctx, m, s, target, opt.Force)
			if errs[i] == nil {
				r.estimate(ctx, plans[i])
			}
		}()
	}
	wg.Wait()
	return plans, errs, nil
}

// queryMaster lists the prototype here and, when the stream flags are chosen from features,
// reads this host's pool features, zfs version and the prototype's encryption (at once).
func (r *Replicator) queryMaster(ctx context.Context) (MasterState, error) {
	var m MasterState
	var f *Features
	var enc string
	var recs map[string]LastReplication
	var errs [4]error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); m, errs[0] = QueryMaster(ctx, r.Local, r.Dataset) }()
	go func() { defer wg.Done(); recs, errs[3] = QueryRecords(ctx, r.Local, r.Dataset) }()
	if r.SendFlags.Auto {
		wg.Add(2)
		go func() { defer wg.Done(); f, errs[1] = QueryFeatures(ctx, r.Local, poolOf(r.Dataset)) }()
		go func() { defer wg.Done(); enc, errs[2] = QueryEncryption(ctx, r.Local, r.Dataset) }()
	}
	wg.Wait()
	if err := errors.Join(errs[:]...); err != nil {
		return MasterState{}, err
	}
	m.Features, m.Encryption, m.Records = f, enc, recs
	return m, nil
}

func poolOf(dataset string) string {
	pool, _, _ := strings.Cut(dataset, "/")
	return pool
}

func (r *Replicator) planSlave(ctx context.Context, m MasterState, s Slave, target string, force bool) (*Plan, error) {
	ds := SlaveDataset(r.Dataset, s.Pool)
	// the features are read alongside the slave's state: one more session, no more round trips
	var f *Features
	var ferr error
	var wg sync.WaitGroup
	if r.SendFlags.Auto {
		wg.Add(1)
		go func() { defer wg.Done(); f, ferr = QueryFeatures(ctx, s.Runner, s.Pool) }()
	}
	st, err := QuerySlave(ctx, s.Runner, ds, s.Pool, s.lockFile())
	wg.Wait()
	if err != nil {
		return nil, err
	}
	if ferr != nil {
		return nil, ferr
	}
	st.Features = f
	st.LockFile = s.lockFile()
	if !st.LockHeld {
		st.Tokens = r.decodeTokens(ctx, s.Name, st.ResumeTokens)
	}
	p, err := MakePlan(m, st, Request{Slave: s.Name, Pool: s.Pool, Target: target, Force: force, SendFlags: r.SendFlags})
	if err != nil {
		return nil, err
	}
	if err := r.addRecord(m, p, time.Now()); err != nil {
		return nil, err
	}
	return p, nil
}

// addRecord puts the target's guid and the command that records the replication into p (and
// into the plan after a resume): a plan that sends nothing records nothing.
func (r *Replicator) addRecord(m MasterState, p *Plan, now time.Time) error {
	name := strings.TrimPrefix(p.Target, m.Dataset+"@")
	for _, s := range m.Snapshots {
		if s.Dataset == m.Dataset && s.Name == name {
			p.TargetGUID = s.GUID
		}
	}
	if p.Then != nil {
		if err := r.addRecord(m, p.Then, now); err != nil {
			return err
		}
	}
	if p.Mode == ModeResume {
		return nil
	}
	if p.Mode == ModeNone && !p.Finish {
		// up to date: recorded unless a run was cut between its receive and its record
		prop, err := ReplicatedProp(p.Slave)
		if err != nil {
			return err
		}
		if rec, ok := m.Records[strings.TrimPrefix(prop, PropReplicatedPrefix)]; ok && rec.GUID == p.TargetGUID {
			return nil
		}
		p.Reasons = append(p.Reasons, fmt.Sprintf("but %s does not record it on %s (a run cut before its record): recording it", prop, m.Dataset))
	}
	argv, err := RecordArgv(r.Dataset, p.Slave, p.Target, p.TargetGUID, now)
	p.RecordArgv = argv
	return err
}

// decodeTokens has the master's zfs say what each resume token names (a dry run), so that the
// plan can check it against the prototype. Tokens that are not of a token's form are left out
// (never given to a command); the plan refuses them.
func (r *Replicator) decodeTokens(ctx context.Context, slave string, tokens map[string]string) map[string]TokenCheck {
	out := map[string]TokenCheck{}
	for ds, tok := range tokens {
		if ValidToken(tok) != nil {
			continue
		}
		stdout, err := command.Output(ctx, r.Local, DecodeTokenArgv(tok)...)
		t, perr := ParseTokenContents(stdout)
		switch {
		case perr == nil:
			out[ds] = TokenCheck{Token: &t}
		case err != nil:
			out[ds] = TokenCheck{Err: err.Error()}
		default:
			out[ds] = TokenCheck{Err: perr.Error()}
		}
		if perr != nil {
			r.log().Debug("resume token not decoded", "slave", slave, "dataset", ds, "err", err, "parse", perr)
		}
	}
	return out
}

// estimate fills in the stream sizes from zfs send -nvP; an estimate that fails only costs the ETA.
func (r *Replicator) estimate(ctx context.Context, p *Plan) {
	size := func(send []string) int64 {
		out, err := command.Output(ctx, r.Local, EstimateArgv(send)...)
		if err == nil {
			if n, err := ParseSendSize(out); err == nil {
				return n
			}
		}
		r.log().Debug("no size estimate", "slave", p.Slave, "cmd", command.Quote(send), "err", err)
		return -1
	}
	if p.SendArgv != nil {
		p.EstimatedBytes = size(p.SendArgv)
	}
	if p.Then != nil {
		r.estimate(ctx, p.Then)
	}
}

// Run replicates to every slave, in parallel: interrupted receives are resumed first and those
// slaves planned again; then slaves whose plans send the same stream share one zfs send. One
// slave's failure does not stop the others; the error lists every failed slave.
func (r *Replicator) Run(ctx context.Context, slaves []Slave, opt Options) ([]Result, error) {
	plans, perrs, err := r.planAll(ctx, slaves, opt)
	if err != nil {
		return nil, err
	}
	var merr *multierror.Error
	results := make([]Result, len(slaves))
	bySlave := map[string]*Slave{}
	for i := range slaves {
		bySlave[slaves[i].Name] = &slaves[i]
		results[i] = Result{Slave: slaves[i].Name, Plan: plans[i]}
	}
	fail := func(i int, err error) {
		results[i].Error = err.Error()
		merr = multierror.Append(merr, err)
	}
	for i, e := range perrs {
		if e != nil {
			fail(i, e)
		}
	}

	// resume interrupted receives, then plan those slaves again
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i, p := range plans {
		if p == nil || (p.Mode != ModeResume && p.Mode != ModeComplete) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			np, n, rs, err := r.resume(ctx, *bySlave[p.Slave], p, opt)
			mu.Lock()
			defer mu.Unlock()
			results[i].Bytes += n
			results[i].Resumed, results[i].Discarded, results[i].Completed = rs.resumed, rs.discarded, rs.completed
			if err != nil {
				plans[i] = nil
				fail(i, err)
				return
			}
			plans[i] = np
			results[i].Plan = np
		}()
	}
	wg.Wait()

	// group the sends: same command and same limit share one zfs send. The stream flags are
	// in the command, so a group's stream has only flags that each of its slaves was planned
	// with; slaves whose features differ get a send each.
	groups := map[string][]int{}
	var keys []string
	for i, p := range plans {
		if p == nil {
			continue
		}
		results[i].Mode, results[i].Base, results[i].Target = p.Mode, p.Base, p.Target
		if p.Mode == ModeNone {
			continue
		}
		k := fmt.Sprintf("%s\x00%d", strings.Join(p.SendArgv, "\x00"), bySlave[p.Slave].Bwlimit)
		if groups[k] == nil {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], i)
	}
	sort.Strings(keys)
	for _, k := range keys {
		idx := groups[k]
		wg.Add(1)
		go func() {
			defer wg.Done()
			var targets []target
			for _, i := range idx {
				targets = append(targets, target{slave: *bySlave[plans[i].Slave], argv: plans[i].ReceiveArgv, after: plans[i].AfterArgv,
					dataset: plans[i].SlaveDataset, expect: plans[i].expect})
			}
			p := plans[idx[0]]
			label := fmt.Sprintf("%s %s", p.Mode, p.Target)
			if p.Base != "" {
				label = fmt.Sprintf("%s %s -> %s", p.Mode, p.Base, p.Target)
			}
			for _, i := range idx {
				r.Crash.Hit("before", "receive", plans[i].Slave)
			}
			start := time.Now()
			outs := r.stream(ctx, p.SendArgv, p.EstimatedBytes, label, targets)
			mu.Lock()
			defer mu.Unlock()
			for j, i := range idx {
				for _, o := range idx {
					if o != i {
						results[i].SharedWith = append(results[i].SharedWith, plans[o].Slave)
					}
				}
				results[i].Bytes += outs[j].bytes
				results[i].Seconds = time.Since(start).Seconds()
				if outs[j].err != nil {
					fail(i, outs[j].err)
				}
			}
		}()
	}
	wg.Wait()

	// every slave that received something: its prototype read-only and mounted
	for i := range results {
		res := &results[i]
		if res.Error != "" || plans[i] == nil || (res.Mode == ModeNone && !plans[i].Finish && len(res.Resumed)+len(res.Discarded)+len(res.Completed) == 0) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := bySlave[res.Slave]
			mounted, err := r.finish(ctx, *s, plans[i].SlaveDataset, plans[i].Finish || len(res.Resumed)+len(res.Completed) > 0)
			mu.Lock()
			defer mu.Unlock()
			res.Mounted = mounted
			if err != nil {
				fail(i, err)
			}
		}()
	}
	wg.Wait()

	// every slave that now has the target: recorded on the master, for rollout status
	for i := range results {
		res := &results[i]
		if res.Error != "" || plans[i] == nil || (res.Mode == ModeNone && plans[i].RecordArgv == nil && len(res.Resumed)+len(res.Completed) == 0) {
			continue
		}
		r.Crash.Hit("before", "record", res.Slave)
		argv, err := RecordArgv(r.Dataset, res.Slave, plans[i].Target, plans[i].TargetGUID, time.Now())
		if err == nil {
			err = r.Local.Run(ctx, command.Cmd{Argv: argv})
		}
		if err != nil {
			fail(i, fmt.Errorf("%s: received, but recording it on %s: %w", res.Slave, r.Dataset, err))
		}
	}
	return results, errorOrNil(merr)
}

// finish leaves the slave's prototype as its jails need it after a receive: read-only (again
// after a resume, whose stream may have been the first full one) and mounted.
func (r *Replicator) finish(ctx context.Context, s Slave, dataset string, resumed bool) ([]string, error) {
	if resumed {
		r.Crash.Hit("before", "readonly", s.Name)
		if err := s.Runner.Run(ctx, command.Cmd{Argv: ReadonlyArgv(dataset)}); err != nil {
			return nil, fmt.Errorf("%s: received, but: %w", s.Name, err)
		}
	}
	r.Crash.Hit("before", "mount", s.Name)
	mounted, err := mountReplica(ctx, s.Runner, dataset)
	if len(mounted) > 0 {
		r.log().Info("mounted", "slave", s.Name, "datasets", strings.Join(mounted, " "))
	}
	return mounted, err
}

// resumed is what resume did, for the result.
type resumed struct{ resumed, discarded, completed []string }

// resume finishes each interrupted receive of p, then plans the slave again. A resume whose
// stream can no longer be made (its snapshot is gone on the master) is discarded with
// zfs receive -A, and the new plan starts from a guid-verified base instead.
func (r *Replicator) resume(ctx context.Context, s Slave, p *Plan, opt Options) (*Plan, int64, resumed, error) {
	var total int64
	var rs resumed
	// a resumed -R stream can leave children to complete: at most resume, complete, done
	for round := 0; p.Mode == ModeResume || p.Mode == ModeComplete; round++ {
		if round == 2 {
			return nil, total, rs, fmt.Errorf("%s: %s: still incomplete after %s; see rollout replicate --dry-run", s.Name, p.SlaveDataset, strings.Join(append(rs.resumed, rs.completed...), ", "))
		}
		np, n, err := r.resumeOnce(ctx, s, p, opt, &rs)
		total += n
		if err != nil {
			return nil, total, rs, err
		}
		p = np
	}
	return p, total, rs, nil
}

// resumeOnce runs p's resume or completion steps, then plans the slave again.
func (r *Replicator) resumeOnce(ctx context.Context, s Slave, p *Plan, opt Options, rs *resumed) (*Plan, int64, error) {
	var total int64
	for _, st := range p.Steps {
		size := int64(-1)
		if out, err := command.Output(ctx, r.Local, EstimateArgv(st.SendArgv)...); err == nil {
			size, _ = ParseSendSize(out)
		}
		r.Crash.Hit("before", "complete", s.Name)
		outs := r.stream(ctx, st.SendArgv, size, "complete "+st.Dataset, []target{{slave: s, argv: st.ReceiveArgv}})
		total += outs[0].bytes
		if outs[0].err != nil {
			return nil, total, outs[0].err
		}
		rs.completed = append(rs.completed, st.Dataset)
	}
	for _, st := range p.Resume {
		if st.Abort != nil {
			r.log().Warn("discarding the partial receive", "slave", s.Name, "dataset", st.Dataset)
			if err := s.Runner.Run(ctx, command.Cmd{Argv: st.Abort}); err != nil {
				return nil, total, fmt.Errorf("%s: %s: discarding the partial receive: %w", s.Name, st.Dataset, err)
			}
			rs.discarded = append(rs.discarded, st.Dataset)
			continue
		}
		if st.Rollback != nil {
			if err := s.Runner.Run(ctx, command.Cmd{Argv: st.Rollback}); err != nil {
				return nil, total, fmt.Errorf("%s: %s: %w", s.Name, st.Dataset, err)
			}
		}
		// the dry run tells whether the token's stream can still be made, before anything is sent
		size := int64(-1)
		out, err := command.Output(ctx, r.Local, EstimateArgv(st.SendArgv)...)
		if err == nil {
			size, _ = ParseSendSize(out)
		} else if !staleResume(err) {
			r.log().Debug("no size estimate", "slave", s.Name, "dataset", st.Dataset, "err", err)
		}
		if err == nil || !staleResume(err) {
			outs := r.stream(ctx, st.SendArgv, size, "resume "+st.Dataset, []target{{slave: s, argv: st.ReceiveArgv}})
			total += outs[0].bytes
			err = outs[0].err
			if err == nil {
				rs.resumed = append(rs.resumed, st.Dataset)
				continue
			}
			if !staleResume(err) {
				return nil, total, err
			}
		}
		r.log().Warn("resume impossible, discarding the partial receive", "slave", s.Name, "dataset", st.Dataset, "err", err)
		if err := s.Runner.Run(ctx, command.Cmd{Argv: AbortArgv(st.Dataset)}); err != nil {
			return nil, total, fmt.Errorf("%s: %s: discarding the partial receive: %w", s.Name, st.Dataset, err)
		}
		rs.discarded = append(rs.discarded, st.Dataset)
	}
	m, err := r.queryMaster(ctx)
	if err != nil {
		return nil, total, err
	}
	target := strings.TrimPrefix(p.Target, r.Dataset+"@")
	np, err := r.planSlave(ctx, m, s, target, opt.Force)
	if err != nil {
		return nil, total, err
	}
	r.estimate(ctx, np)
	return np, total, nil
}

// AbortArgv discards the partial state of an interrupted receive -s.
func AbortArgv(dataset string) []string { return []string{zfs.Bin, "receive", "-A", dataset} }

// staleResume reports whether a resume failed because its stream cannot be produced any more:
// the snapshot (or the base of the increment) named in the token was destroyed on the master.
// The whole chain is looked at: a failed send reaches the caller wrapped in the receive's error.
func staleResume(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "no longer exists") || strings.Contains(msg, "does not exist") ||
		strings.Contains(msg, "resume token is corrupt") || strings.Contains(msg, "kernel modules must be upgraded")
}

// target is one receiver of a stream.
type target struct {
	slave Slave
	argv  []string // zfs receive ...
	after []string // run on the slave after a successful receive, or nil
	// expect: the snapshots (and guids) the receive must leave below dataset, checked before
	// after runs; nil: not checked here (a resume is planned again instead)
	dataset string
	expect  map[string]uint64
}

type outcome struct {
	bytes int64
	err   error
}

// stream runs send here once and feeds its output to every target's receive.
func (r *Replicator) stream(ctx context.Context, send []string, size int64, label string, targets []target) []outcome {
	outs := make([]outcome, len(targets))
	sendCtx, cancelSend := context.WithCancel(ctx)
	defer cancelSend()

	prog := r.Progress
	if prog == nil {
		prog = &Progress{out: io.Discard} // counts, shows nothing
	}
	var tee Tee
	pipes := make([]*io.PipeWriter, len(targets))
	lines := make([]*Line, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		pr, pw := io.Pipe()
		pipes[i] = pw
		tee.Add(t.slave.Name, pw)
		lines[i] = prog.Start(t.slave.Name, label, size)
		in := countingReader{r: LimitReader(ctx, pr, t.slave.Bwlimit), line: lines[i]}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := t.slave.Runner.Run(ctx, command.Cmd{Argv: t.argv, Stdin: in})
			// unblock the tee: this receiver takes no more (if the stream was not over, the
			// tee's write fails with errEarlyExit, and the receive with it)
			if err != nil {
				pr.CloseWithError(err)
			} else {
				pr.CloseWithError(errEarlyExit)
			}
			if err != nil {
				err = explainReceive(t.slave.Name, err)
			}
			outs[i].err = err
		}()
	}

	pr, pw, err := os.Pipe()
	if err != nil {
		for i, p := range pipes {
			p.CloseWithError(err)
			outs[i].err = err
		}
		wg.Wait()
		return outs
	}
	sendDone := make(chan error, 1)
	go func() {
		err := r.Local.Run(sendCtx, command.Cmd{Argv: send, Stdout: pw})
		pw.Close()
		sendDone <- err
	}()
	total, copyErr := copyChunks(&tee, pr)
	if copyErr != nil {
		cancelSend() // nobody is listening any more
	}
	pr.Close()
	sendErr := <-sendDone
	for _, p := range pipes {
		if sendErr != nil {
			p.CloseWithError(fmt.Errorf("zfs send failed: %w", sendErr))
		} else {
			p.Close()
		}
	}
	wg.Wait()

	for i, t := range targets {
		err := outs[i].err
		// a receive that exited 0 before the end of the stream did not receive it
		if te := tee.Err(t.slave.Name); err == nil && te != nil {
			err = fmt.Errorf("%s: %w (took %d of %d bytes)", t.slave.Name, te, lines[i].Bytes(), total)
		}
		if err == nil && sendErr != nil {
			err = fmt.Errorf("%s: %w", t.slave.Name, sendErr)
		}
		if err == nil && copyErr == nil && lines[i].Bytes() < total {
			err = fmt.Errorf("%s: %w (took %d of %d bytes)", t.slave.Name, errEarlyExit, lines[i].Bytes(), total)
		}
		if err == nil && t.expect != nil {
			err = verifyReceived(ctx, t.slave, t.dataset, t.expect)
		}
		if err == nil && t.after != nil {
			r.Crash.Hit("before", "readonly", t.slave.Name)
			if aerr := t.slave.Runner.Run(ctx, command.Cmd{Argv: t.after}); aerr != nil {
				err = fmt.Errorf("%s: received, but: %w", t.slave.Name, aerr)
			}
		}
		outs[i].bytes = lines[i].Bytes()
		outs[i].err = err
		lines[i].Done(err)
	}
	return outs
}

// verifyReceived checks that the slave has every snapshot in expect with its guid: a receive
// can exit 0 without the whole stream (over SSH, the bytes the slave never read look sent), and
// readonly and the mount must not make an incomplete replica look done.
func verifyReceived(ctx context.Context, s Slave, dataset string, expect map[string]uint64) error {
	snaps, err := zfs.ListSnapshots(ctx, s.Runner, dataset, true)
	if err != nil {
		return fmt.Errorf("%s: received, but listing it: %w", s.Name, err)
	}
	have := map[string]uint64{}
	for _, x := range snaps {
		have[x.FullName()] = x.GUID
	}
	for _, name := range sortedKeys(expect) {
		g, ok := have[name]
		switch {
		case !ok:
			return fmt.Errorf("%s: zfs receive exited 0, but %s is not there; the replica is incomplete (rollout replicate again resumes it)", s.Name, name)
		case g != expect[name]:
			return fmt.Errorf("%s: zfs receive exited 0, but %s has guid %d, not the master's %d", s.Name, name, g, expect[name])
		}
	}
	return nil
}

// explainReceive adds what to do to the receive errors an admin will meet.
func explainReceive(slave string, err error) error {
	var ce *command.Error
	msg := ""
	if errors.As(err, &ce) {
		msg = ce.Stderr
	}
	hint := ""
	switch {
	case strings.Contains(msg, "has been modified"):
		hint = " (the slave's prototype was written to; keep it readonly=on, or rollout replicate --force to roll it back)"
	case strings.Contains(msg, "destination") && strings.Contains(msg, "exists"):
		hint = " (the slave already has part of this stream; see rollout replicate --dry-run)"
	}
	return fmt.Errorf("%s: %w%s", slave, err, hint)
}
