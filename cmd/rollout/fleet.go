package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rollout-dev/rollout/proto/command"
	"github.com/rollout-dev/rollout/replicate"
	"github.com/rollout-dev/rollout/replicate/sshx"
	"github.com/rollout-dev/rollout/rollout"
	"github.com/rollout-dev/rollout/rollout/audit"
	"github.com/rollout-dev/rollout/rollout/config"
	"github.com/rollout-dev/rollout/rollout/fleet"
)

// fleetWorkers bounds the slaves asked at once by status --hosts.
const fleetWorkers = 8

// dialer connects to a slave: a command.Runner there, and how to let go of it.
type dialer func(ctx context.Context, s *config.Slave) (command.Runner, func(), error)

// sshDial connects over SSH, checking the host key against the slave's known_hosts as
// replicate does.
func (e *env) sshDial(ctx context.Context, s *config.Slave) (command.Runner, func(), error) {
	c, err := sshx.Dial(ctx, sshx.Config{Name: s.Name, Address: s.Address, Port: s.Port,
		User: s.User, Identity: s.Identity, Agent: s.Agent, KnownHosts: s.KnownHosts, Logger: e.log})
	if err != nil {
		return nil, nil, err
	}
	return c.Runner(), func() { c.Close() }, nil
}

func (e *env) dialSlave(ctx context.Context, s *config.Slave) (command.Runner, func(), error) {
	if e.dial != nil {
		return e.dial(ctx, s)
	}
	return e.sshDial(ctx, s)
}

// remote is rollout on slave s, over r.
func remote(s *config.Slave, r command.Runner) *fleet.Remote {
	return &fleet.Remote{Host: s.Name, Runner: r, Rollout: s.Rollout, Config: s.Config}
}

// fleetHosts resolves --hosts: "all" is this host (fleet.Local) and every slave; else the
// names, comma-separated, in the order given.
func (e *env) fleetHosts(list string) ([]string, error) {
	// the configuration refuses a slave named local or all
	if list == config.AllHosts {
		return append([]string{fleet.Local}, slices.Sorted(maps.Keys(e.cfg.Slaves))...), nil
	}
	var out []string
	for _, n := range strings.Split(list, ",") {
		n = strings.TrimSpace(n)
		if n != fleet.Local {
			if _, err := e.cfg.Slave(n); err != nil {
				return nil, usagef("--hosts: %v", err)
			}
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// hostStatus is one host in the results of status --hosts.
type hostStatus struct {
	Host  string `json:"host"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	// LastReplication is the master's record of its last replication to this slave (nil:
	// none, or this host)
	LastReplication *replicate.LastReplication `json:"last_replication,omitempty"`
	Vhosts          []rollout.VhostStatus      `json:"vhosts"`
}

// fleetStatus is status --hosts: every host's vhosts in one table, the hosts asked in parallel.
// A host that cannot be asked is a row with its error; the others still print.
func (e *env) fleetStatus(ctx context.Context, m *rollout.Manager, hosts []string, o rollout.StatusOptions) error {
	byName := map[string]replicate.LastReplication{}
	var lastErr error
	if len(hosts) > 1 || hosts[0] != fleet.Local {
		last, err := replicate.LastReplications(ctx, e.local, e.cfg.Proto.Dataset)
		lastErr = err
		for _, l := range last {
			byName[l.Slave] = l
		}
	}
	out := make([]hostStatus, len(hosts))
	errs := make([]error, len(hosts))
	sem := make(chan struct{}, fleetWorkers)
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			var st []rollout.VhostStatus
			if h == fleet.Local {
				st, errs[i] = m.Status(ctx, nil, o)
			} else {
				s := e.cfg.Slaves[h]
				r, closeFn, err := e.dialSlave(ctx, s)
				if err != nil {
					errs[i] = err
				} else {
					st, errs[i] = remote(s, r).Status(ctx, o)
					closeFn()
				}
			}
			out[i] = hostStatus{Host: h, Vhosts: st}
		}()
	}
	wg.Wait()
	var attention, failed []string
	tw := tabwriter.NewWriter(e.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tVHOST\tSNAPSHOT\tPREVIOUS\tRUNNING\tLAST REPLICATION\tNOTES")
	for i := range out {
		hs := &out[i]
		repl := "-"
		if hs.Host != fleet.Local {
			repl = "never"
			if l, ok := byName[strings.ToLower(hs.Host)]; ok {
				hs.LastReplication = &l
				repl = l.Snapshot + " " + l.Time.Local().Format(time.RFC3339)
			}
			if lastErr != nil {
				repl = "?"
			}
		}
		hs.OK = errs[i] == nil
		if hs.Vhosts == nil {
			hs.Vhosts = []rollout.VhostStatus{}
			hs.Error = oneLine(errs[i])
			failed = append(failed, hs.Host)
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t%s\t%s\n", hs.Host, repl, "error: "+hs.Error)
			continue
		}
		if errs[i] != nil {
			hs.Error = oneLine(errs[i])
		}
		for _, s := range hs.Vhosts {
			var notes []string
			if !s.Exists {
				notes = append(notes, "no dataset "+s.Dataset)
			}
			notes = append(notes, s.Attention...)
			if len(s.Attention) > 0 {
				attention = append(attention, hs.Host+"/"+s.Vhost)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", hs.Host, s.Vhost, dash(s.Snapshot), dash(s.Previous), yesNo(s.Running),
				repl, strings.Join(notes, "; "))
		}
		if len(hs.Vhosts) == 0 {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t%s\tno vhosts\n", hs.Host, repl)
		}
		if errs[i] != nil && len(hs.Vhosts) > 0 && !slices.ContainsFunc(hs.Vhosts, func(s rollout.VhostStatus) bool { return len(s.Attention) > 0 }) {
			// a failure the vhosts do not explain
			attention = append(attention, hs.Host+" ("+hs.Error+")")
		}
	}
	e.rep.Results = out
	if err := tw.Flush(); err != nil {
		return err
	}
	var parts []string
	if len(failed) > 0 {
		parts = append(parts, strings.Join(failed, ", ")+": could not be asked")
	}
	if len(attention) > 0 {
		parts = append(parts, strings.Join(attention, ", ")+": needs attention")
	}
	var err error
	if len(parts) > 0 {
		err = fmt.Errorf("status --hosts: %s (see NOTES)", strings.Join(parts, "; "))
	}
	return errors.Join(err, lastErr)
}

// remotePromote is promote --host SLAVE: rollout promote run on the slave, its plan or its
// results printed here.
func (e *env) remotePromote(ctx context.Context, name, ref string, vhosts []string, o fleet.PromoteOptions) error {
	s, err := e.cfg.Slave(name)
	if err != nil {
		return usagef("promote --host: %v", err)
	}
	r, closeFn, err := e.dialSlave(ctx, s)
	if err != nil {
		return err
	}
	defer closeFn()
	results, plan, err := remote(s, r).Promote(ctx, ref, vhosts, o)
	if o.DryRun {
		if plan != nil {
			plan.Op = name + ": " + plan.Op
			e.rep.Plan = plan
			plan.Print(e.out)
		}
		return err
	}
	e.rep.Results = results
	e.printRemoteResults(name, results)
	done := 0
	for _, x := range results {
		if x.OK {
			done++
		}
	}
	if err != nil && len(results) == 0 {
		e.record(audit.Change{Op: "promote", Subject: name, Err: err})
	}
	return partly(err, done > 0)
}

// printRemoteResults prints (and logs) what a promote on a slave did, one line per vhost.
func (e *env) printRemoteResults(host string, results []rollout.VhostResult) {
	for _, x := range results {
		ch := audit.Change{Op: "promote", Subject: host + "/" + x.Vhost, From: x.From, To: x.To, Err: errOf(x.Error)}
		if x.Skipped {
			ch.Err, ch.Skipped = nil, x.Error
		}
		e.record(ch)
		switch {
		case x.OK:
			fmt.Fprintf(e.msg, "%s/%s: %s -> %s, down %s\n", host, x.Vhost, dash(x.From), x.To, x.Downtime.Round(time.Millisecond))
		case x.Skipped:
			fmt.Fprintf(e.msg, "%s/%s: not started: %s\n", host, x.Vhost, x.Error)
		default:
			fmt.Fprintf(e.msg, "%s/%s: failed: %s\n", host, x.Vhost, x.Error)
		}
	}
}

// localHost is this host as a fleet host: rollout's Manager, in this process.
type localHost struct {
	e *env
	m *rollout.Manager
}

func (h localHost) Name() string { return fleet.Local }

func (h localHost) Status(ctx context.Context) ([]rollout.VhostStatus, error) {
	return h.m.Status(ctx, nil, rollout.StatusOptions{})
}

func (h localHost) Promote(ctx context.Context, snapshot string, vhosts []string, o rollout.SwitchOptions) ([]rollout.VhostResult, error) {
	plan, err := h.m.PlanPromote(ctx, snapshot, vhosts, o)
	if err != nil {
		return nil, err
	}
	results, err := h.m.Execute(ctx, plan)
	h.e.recordPlan("promote", plan, results, err)
	return results, err
}

// loggedHost prints and logs what a slave's promote did.
type loggedHost struct {
	fleet.RemoteHost
	e *env
}

func (h loggedHost) Promote(ctx context.Context, snapshot string, vhosts []string, o rollout.SwitchOptions) ([]rollout.VhostResult, error) {
	res, err := h.RemoteHost.Promote(ctx, snapshot, vhosts, o)
	h.e.printRemoteResults(h.Host, res)
	return res, err
}

// fleetPromote is promote --hosts: plan (every host's vhosts, every slave's replication),
// then, unless a dry run, replicate where needed, the canary, and the other hosts one by one.
func (e *env) fleetPromote(ctx context.Context, m *rollout.Manager, hostList, ref, canary string, o rollout.SwitchOptions, dryRun bool) error {
	names, err := e.fleetHosts(hostList)
	if err != nil {
		return err
	}
	if _, _, err := fleet.ParseCanary(canary); err != nil {
		return usagef("promote --hosts: --canary: %v", err)
	}
	// the snapshot is this host's: a slave gets it by replication
	v, err := m.Proto().Resolve(ctx, ref)
	if err != nil {
		return err
	}
	f := &fleet.Fleet{}
	slaves := map[string]replicate.Slave{}
	var mu sync.Mutex
	var closers []func()
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	// every slave is connected before anything is planned: one that cannot be reached fails
	// the plan, and nothing is promoted anywhere
	conns := make([]command.Runner, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		if n == fleet.Local {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, c, err := e.dialSlave(ctx, e.cfg.Slaves[n])
			errs[i], conns[i] = err, r
			if err == nil {
				mu.Lock()
				closers = append(closers, c)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("promote --hosts: %w", err)
	}
	for i, n := range names {
		if n == fleet.Local {
			f.Hosts = append(f.Hosts, localHost{e: e, m: m})
			continue
		}
		s := e.cfg.Slaves[n]
		f.Hosts = append(f.Hosts, loggedHost{RemoteHost: fleet.RemoteHost{Remote: remote(s, conns[i])}, e: e})
		rate, err := replicate.ParseRate(s.Bwlimit)
		if err != nil {
			return fmt.Errorf("slave %s: bwlimit: %w", s.Name, err)
		}
		slaves[n] = replicate.Slave{Name: n, Runner: conns[i], Pool: s.Pool, Bwlimit: rate, StateDir: e.cfg.StateDir}
	}
	flags, err := replicate.ParseSendFlags(e.cfg.Replicate.SendFlags)
	if err != nil {
		return fmt.Errorf("%s: replicate.send_flags: %w", e.cfg.Path, err)
	}
	rep := &replicate.Replicator{Local: e.local, Dataset: e.cfg.Proto.Dataset, Log: e.log, SendFlags: flags, Crash: e.crash}
	opt := replicate.Options{Target: v.Name}
	f.Replication = func(ctx context.Context, slave string) (string, error) {
		ps, err := rep.Plan(ctx, []replicate.Slave{slaves[slave]}, opt)
		if err != nil || len(ps) != 1 {
			return "", err
		}
		return replicationNeeded(ps[0]), nil
	}
	f.Replicate = func(ctx context.Context, slave string) error {
		return e.replicateTo(ctx, rep, []replicate.Slave{slaves[slave]}, nil, nil, opt, false)
	}
	plan, err := f.Plan(ctx, v.Name, canary)
	if err != nil {
		return err
	}
	if dryRun {
		e.rep.Plan = plan
		plan.Print(e.out)
		return nil
	}
	results, err := f.Run(ctx, plan, o)
	e.rep.Results = results
	done := 0
	for _, r := range results {
		if r.State == fleet.Done {
			done++
		}
	}
	if err == nil && !slices.ContainsFunc(plan.Steps, func(s fleet.Step) bool { return s.Phase != fleet.PhaseReplicate }) {
		fmt.Fprintf(e.msg, "promote --hosts: every vhost is on @%s\n", v.Name)
	}
	if err != nil {
		for _, r := range results {
			if r.State == fleet.NotStarted {
				fmt.Fprintf(e.msg, "not started: %s on %s %s\n", r.Phase, r.Host, strings.Join(r.Vhosts, " "))
			}
		}
	}
	return partly(err, done > 0)
}

// replicationNeeded says what a replication plan would do, "" when the slave has the target.
func replicationNeeded(p *replicate.Plan) string {
	if p.Mode == replicate.ModeNone && !p.Finish {
		return ""
	}
	what := string(p.Mode)
	if p.Base != "" {
		what += " from " + p.Base
	}
	what += " to " + p.Target
	if p.EstimatedBytes >= 0 {
		what += ", about " + replicate.HumanBytes(p.EstimatedBytes)
	}
	return what
}

// promoteAction is promote: on this host, on one slave (--host), or on a fleet (--hosts).
func promoteAction(c *cli.Context, e *env, m *rollout.Manager) error {
	o := rollout.SwitchOptions{Parallel: c.Int("parallel"), Strict: c.Bool("strict")}
	ref, vhosts := c.Args().First(), c.Args().Tail()
	switch {
	case c.IsSet("hosts"):
		return e.locked(c, func() error {
			return e.fleetPromote(c.Context, m, c.String("hosts"), ref, c.String("canary"), o, c.Bool("dry-run"))
		})
	case c.IsSet("host"):
		// the slave takes its own lock; nothing changes here
		return e.remotePromote(c.Context, c.String("host"), ref, vhosts, fleet.PromoteOptions{SwitchOptions: o, DryRun: c.Bool("dry-run")})
	}
	return e.locked(c, func() error {
		plan, err := m.PlanPromote(c.Context, ref, vhosts, o)
		if err != nil {
			return err
		}
		return e.runPlan(c, m, plan)
	})
}

// checkPromote checks promote's flags against each other and its arguments.
func checkPromote(c *cli.Context) error {
	if err := atLeast1("parallel")(c); err != nil {
		return err
	}
	hosts, host := c.IsSet("hosts"), c.IsSet("host")
	switch {
	case hosts && host:
		return usagef("promote: --host and --hosts exclude each other")
	case hosts && c.NArg() > 1:
		return usagef("promote --hosts: takes no VHOST: each host's vhosts not on the snapshot are promoted")
	case hosts && !c.IsSet("canary"):
		return usagef("promote --hosts: say which vhost goes first: --canary HOST/VHOST")
	case !hosts && c.IsSet("canary"):
		return usagef("promote: --canary goes with --hosts")
	case !hosts && c.NArg() < 2:
		return usagef("promote: needs VHOST (rollout promote proto@N VHOST [VHOST...])")
	case hosts && c.String("hosts") == "":
		return usagef("promote: --hosts: empty; say all or HOST,HOST")
	}
	return nil
}
