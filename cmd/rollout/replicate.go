package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rollout-dev/rollout/replicate"
	"github.com/rollout-dev/rollout/replicate/sshx"
	"github.com/rollout-dev/rollout/rollout/audit"
	"github.com/rollout-dev/rollout/rollout/config"
)

func replicateCommand() *cli.Command {
	return &cli.Command{
		Name:      "replicate",
		Usage:     "send the prototype's snapshots to slave hosts (zfs send | ssh zfs receive)",
		ArgsUsage: "[proto@N]",
		Description: "Brings each slave's copy of the prototype up to proto@N (default: the newest snapshot),\n" +
			"incrementally from the newest snapshot both sides have (by guid). Refuses when the slave\n" +
			"has diverged; --force then allows zfs receive -F, but never over a snapshot a slave vhost uses.\n" +
			"Exit status 3: some slaves were brought up to date, others failed.",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "to", Usage: "slave `NAME` from the configuration (repeatable)"},
			&cli.BoolFlag{Name: "all", Usage: "every configured slave", DisableDefaultText: true},
			&cli.BoolFlag{Name: "force", Usage: "allow zfs receive -F (rolls back and destroys what the master lacks)", DisableDefaultText: true},
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "print the plan and the exact commands; send nothing", DisableDefaultText: true},
			&cli.StringFlag{Name: "bwlimit", Usage: "cap each slave at `RATE` bytes per second, e.g. 50m (overrides slave.bwlimit)"},
		},
		Action: func(c *cli.Context) error {
			// usage first, before the config (and long before known_hosts)
			if err := checkArgs(c); err != nil {
				return err
			}
			names := c.StringSlice("to")
			all := c.Bool("all")
			if all && len(names) > 0 {
				return usagef("replicate: --to and --all exclude each other")
			}
			if !all && len(names) == 0 {
				return usagef("replicate: say where: --to NAME or --all")
			}
			var bw *int64
			if s := c.String("bwlimit"); s != "" {
				n, err := replicate.ParseRate(s)
				if err != nil {
					return usagef("replicate: --bwlimit: %v", err)
				}
				bw = &n
			}
			e, err := setup(c)
			if err != nil {
				return err
			}
			if all {
				if len(e.cfg.Slaves) == 0 {
					return fmt.Errorf("replicate --all: %s names no slave ([slave.NAME])", e.cfg.Path)
				}
				for n := range e.cfg.Slaves {
					names = append(names, n)
				}
				sort.Strings(names)
			}
			// a replication and a prune (or a snapshot) must not run at once: prune could
			// destroy the snapshot being sent
			return e.locked(c, func() error {
				return e.replicate(c.Context, names, c.Args().First(), bw, c.Bool("force"), c.Bool("dry-run"))
			})
		},
	}
}

// replicatePlan is replicate --dry-run's plan: one per slave that could be planned.
type replicatePlan struct {
	Op     string            `json:"op"`
	Slaves []*replicate.Plan `json:"slaves"`
}

func (e *env) replicate(ctx context.Context, names []string, ref string, bwlimit *int64, force, dryRun bool) error {
	slaves := make([]*config.Slave, 0, len(names))
	seen := map[string]bool{}
	for _, n := range names { // in the order given, which is the order of the output
		s, err := e.cfg.Slave(n)
		if err != nil {
			return usagef("replicate: %v", err)
		}
		if !seen[n] {
			seen[n] = true
			slaves = append(slaves, s)
		}
	}
	flags, err := replicate.ParseSendFlags(e.cfg.Replicate.SendFlags)
	if err != nil { // checked when the configuration was read
		return fmt.Errorf("%s: replicate.send_flags: %w", e.cfg.Path, err)
	}
	rep := &replicate.Replicator{Local: e.local, Dataset: e.cfg.Proto.Dataset, Log: e.log, SendFlags: flags, Crash: e.crash}
	// the snapshot argument is checked here, before any slave is dialled
	if ref != "" {
		if _, err := e.proto().ParseRef(ref); err != nil {
			return usagef("replicate: %v", err)
		}
	}
	if _, err := rep.Target(ctx, ref); err != nil {
		return err
	}

	// connect to every slave at once; one that cannot be reached does not stop the others
	conns := make([]*sshx.Client, len(slaves))
	dialErrs := make([]error, len(slaves))
	var wg sync.WaitGroup
	for i, s := range slaves {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conns[i], dialErrs[i] = sshx.Dial(ctx, sshx.Config{Name: s.Name, Address: s.Address, Port: s.Port,
				User: s.User, Identity: s.Identity, Agent: s.Agent, KnownHosts: s.KnownHosts, Logger: e.log})
		}()
	}
	wg.Wait()
	var errs []error
	var targets []replicate.Slave
	var failed []replicate.Result
	for i, s := range slaves {
		if dialErrs[i] != nil {
			errs = append(errs, dialErrs[i])
			failed = append(failed, replicate.Result{Slave: s.Name, Error: dialErrs[i].Error()})
			continue
		}
		defer conns[i].Close()
		rate, err := replicate.ParseRate(s.Bwlimit)
		if err != nil {
			return fmt.Errorf("slave %s: bwlimit: %w", s.Name, err)
		}
		if bwlimit != nil {
			rate = *bwlimit
		}
		// the slave is taken to keep its state (and lock) where this host does: one rollout.toml layout
		targets = append(targets, replicate.Slave{Name: s.Name, Runner: conns[i].Runner(), Pool: s.Pool, Bwlimit: rate, StateDir: e.cfg.StateDir})
	}

	return e.replicateTo(ctx, rep, targets, failed, errs, replicate.Options{Target: ref, Force: force}, dryRun)
}

// replicateTo plans or runs the replication to the connected slaves (targets); failed are the
// slaves that could not be reached, errs their errors.
func (e *env) replicateTo(ctx context.Context, rep *replicate.Replicator, targets []replicate.Slave, failed []replicate.Result, errs []error, opt replicate.Options, dryRun bool) error {
	if dryRun {
		plan := replicatePlan{Op: "replicate", Slaves: []*replicate.Plan{}}
		// each slave planned on its own, so that each failure is reported with its slave
		plans := make([]*replicate.Plan, len(targets))
		perrs := make([]error, len(targets))
		var wg sync.WaitGroup
		for i, t := range targets {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var ps []*replicate.Plan
				ps, perrs[i] = rep.Plan(ctx, []replicate.Slave{t}, opt)
				if len(ps) == 1 {
					plans[i] = ps[0]
				}
			}()
		}
		wg.Wait()
		var results []replicate.Result
		for i, p := range plans {
			if perrs[i] != nil {
				errs = append(errs, perrs[i])
				results = append(results, replicate.Result{Slave: targets[i].Name, Error: oneLine(perrs[i])})
			}
			if p != nil && perrs[i] == nil {
				plan.Slaves = append(plan.Slaves, p)
				fmt.Fprint(e.out, p.String())
			}
		}
		e.rep.Plan = plan
		e.rep.Results = append(results, failed...)
		return partly(errors.Join(errs...), len(plan.Slaves) > 0)
	}

	var results []replicate.Result
	if len(targets) > 0 {
		rep.Progress = replicate.NewProgress(e.errOut)
		var err error
		results, err = rep.Run(ctx, targets, opt)
		rep.Progress.Close()
		if err != nil {
			errs = append(errs, err)
		}
	}
	results = append(results, failed...)
	e.rep.Results = results
	done := 0
	shown := false
	for _, r := range results {
		shown = shown || r.Error != ""
		ch := audit.Change{Op: "replicate", Subject: r.Slave, From: r.Base, To: r.Target, Err: errOf(r.Error)}
		if r.Mode == replicate.ModeNone && r.Error == "" {
			ch.Note = "up to date" + finished(r)
		} else if r.Error == "" {
			ch.Note = fmt.Sprintf("%s, %s%s", r.Mode, replicate.HumanBytes(r.Bytes), finished(r))
		}
		e.record(ch)
	}
	if err := errors.Join(errs...); err != nil && !shown {
		e.record(audit.Change{Op: "replicate", Err: err})
	}
	for _, r := range results {
		switch {
		case r.Error != "":
			// printed once, by main, with the exit status
			continue
		case r.Mode == replicate.ModeNone:
			fmt.Fprintf(e.msg, "%s: up to date at %s%s\n", r.Slave, r.Target, finished(r))
		case r.Base != "":
			fmt.Fprintf(e.msg, "%s: %s %s -> %s, %s in %s\n", r.Slave, r.Mode, r.Base, r.Target,
				replicate.HumanBytes(r.Bytes), time.Duration(r.Seconds*float64(time.Second)).Round(time.Second))
		default:
			fmt.Fprintf(e.msg, "%s: %s %s, %s in %s\n", r.Slave, r.Mode, r.Target,
				replicate.HumanBytes(r.Bytes), time.Duration(r.Seconds*float64(time.Second)).Round(time.Second))
		}
		done++
	}
	return partly(errors.Join(errs...), done > 0)
}

// finished says what a run did for an interrupted replication before its plan ("" if nothing):
// a slave brought up to date by resuming and completing is not reported as having been so.
func finished(r replicate.Result) string {
	var parts []string
	for _, x := range []struct {
		what string
		l    []string
	}{{"resumed", r.Resumed}, {"completed", r.Completed}, {"discarded", r.Discarded}} {
		if len(x.l) > 0 {
			parts = append(parts, x.what+" "+strings.Join(x.l, " "))
		}
	}
	if r.Mode == replicate.ModeNone && len(parts) > 0 {
		parts = append(parts, replicate.HumanBytes(r.Bytes))
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}
