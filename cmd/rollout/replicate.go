package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rollout-dev/rollout/replicate"
	"github.com/rollout-dev/rollout/replicate/sshx"
	"github.com/rollout-dev/rollout/rollout/config"
)

func replicateCommand() *cli.Command {
	return &cli.Command{
		Name:      "replicate",
		Usage:     "send the prototype's snapshots to slave hosts (zfs send | ssh zfs receive)",
		ArgsUsage: "[proto@N]",
		Description: "Brings each slave's copy of the prototype up to proto@N (default: the newest snapshot),\n" +
			"incrementally from the newest snapshot both sides have (by guid). Refuses when the slave\n" +
			"has diverged; --force then allows zfs receive -F, but never over a snapshot a slave vhost uses.",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "to", Usage: "slave `NAME` from the configuration (repeatable)"},
			&cli.BoolFlag{Name: "all", Usage: "every configured slave"},
			&cli.BoolFlag{Name: "force", Usage: "allow zfs receive -F (rolls back and destroys what the master lacks)"},
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "print the plan and the exact commands; send nothing"},
			&cli.StringFlag{Name: "bwlimit", Usage: "bytes per second per slave, e.g. 50m (overrides slave.bwlimit)"},
		},
		Action: func(c *cli.Context) error {
			if c.Args().Len() > 1 {
				return usagef("replicate: unexpected argument %q", c.Args().Get(1))
			}
			e, err := setup(c)
			if err != nil {
				return err
			}
			names := c.StringSlice("to")
			if c.Bool("all") {
				if len(names) > 0 {
					return usagef("replicate: --to and --all exclude each other")
				}
				for n := range e.cfg.Slaves {
					names = append(names, n)
				}
				sort.Strings(names)
			}
			if len(names) == 0 {
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
			return e.replicate(c.Context, names, c.Args().First(), bw, c.Bool("force"), c.Bool("dry-run"))
		},
	}
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
		targets = append(targets, replicate.Slave{Name: s.Name, Runner: conns[i].Runner(), Pool: s.Pool, Bwlimit: rate})
	}

	rep := &replicate.Replicator{Local: e.local, Dataset: e.cfg.Proto.Dataset, Log: e.log}
	opt := replicate.Options{Target: ref, Force: force}
	if dryRun {
		var plans []*replicate.Plan
		if len(targets) > 0 {
			var err error
			plans, err = rep.Plan(ctx, targets, opt)
			if err != nil {
				errs = append(errs, err)
			}
		}
		if e.json {
			var out []*replicate.Plan
			for _, p := range plans {
				if p != nil {
					out = append(out, p)
				}
			}
			if err := e.printJSON(out); err != nil {
				return err
			}
		} else {
			for _, p := range plans {
				if p != nil {
					fmt.Fprint(e.out, p.String())
				}
			}
		}
		return errors.Join(errs...)
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
	if e.json {
		if err := e.printJSON(results); err != nil {
			return err
		}
		return errors.Join(errs...)
	}
	for _, r := range results {
		switch {
		case r.Error != "":
			// printed once, by main, with the exit status
		case r.Mode == replicate.ModeNone:
			fmt.Fprintf(e.out, "%s: up to date at %s\n", r.Slave, r.Target)
		case r.Base != "":
			fmt.Fprintf(e.out, "%s: %s %s -> %s, %s in %s\n", r.Slave, r.Mode, r.Base, r.Target,
				replicate.HumanBytes(r.Bytes), time.Duration(r.Seconds*float64(time.Second)).Round(time.Second))
		default:
			fmt.Fprintf(e.out, "%s: %s %s, %s in %s\n", r.Slave, r.Mode, r.Target,
				replicate.HumanBytes(r.Bytes), time.Duration(r.Seconds*float64(time.Second)).Round(time.Second))
		}
	}
	return errors.Join(errs...)
}
