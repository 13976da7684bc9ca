package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rollout-dev/rollout/etcmerge"
	"github.com/rollout-dev/rollout/replicate"
	"github.com/rollout-dev/rollout/rollout"
	"github.com/rollout-dev/rollout/rollout/audit"
	"github.com/rollout-dev/rollout/rollout/host"
)

// manager builds the rollout.Manager for this host. There is one host, FreeBSD's (jail(8),
// md(4)); the test lab runs this same binary, built for Linux, against FreeBSD's userland
// emulated at FreeBSD's paths.
func (e *env) manager() (*rollout.Manager, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	h := host.NewFreeBSD(e.local, e.log)
	return &rollout.Manager{Cfg: e.cfg, R: e.local, Host: h, Log: e.log, Out: e.msg, Self: self, Crash: e.crash}, nil
}

// locked runs fn holding the lock that keeps rollouts that change things apart. A dry run
// changes nothing, not even the lock file, so it takes no lock.
func (e *env) locked(c *cli.Context, fn func() error) error {
	if c.Bool("dry-run") {
		return fn()
	}
	l, err := rollout.AcquireLock(e.cfg.StateDir)
	if err != nil {
		return err
	}
	defer l.Release()
	return fn()
}

var dryRunFlag = &cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "print the plan (steps and exact commands) and change nothing", DisableDefaultText: true}

// runPlan prints or executes a plan, with the same output rules for every command.
func (e *env) runPlan(c *cli.Context, m *rollout.Manager, plan *rollout.Plan) error {
	return e.execPlan(c.Context, cmdPath(c), c.Bool("dry-run"), m, plan)
}

// execPlan is runPlan for the command op: a dry run prints the plan, else it is executed and
// each vhost's outcome goes to syslog.
func (e *env) execPlan(ctx context.Context, op string, dryRun bool, m *rollout.Manager, plan *rollout.Plan) error {
	if dryRun {
		e.rep.Plan = plan
		plan.Print(e.out)
		return nil
	}
	results, err := m.Execute(ctx, plan)
	e.rep.Results = results
	e.recordPlan(op, plan, results, err)
	done := 0
	for _, r := range results {
		if r.OK {
			done++
		}
	}
	if err == nil && len(results) == 0 {
		fmt.Fprintf(e.msg, "%s: nothing to do\n", plan.Op)
	}
	return partly(err, done > 0)
}

// recordPlan writes one syslog line per vhost of an executed plan, and one for a failure no
// vhost's result shows (releasing holds at the end).
func (e *env) recordPlan(op string, plan *rollout.Plan, results []rollout.VhostResult, err error) {
	shown := false
	for i, r := range results {
		ch := audit.Change{Op: op, Subject: r.Vhost, From: r.From, To: r.To}
		switch {
		case r.Skipped:
			ch.Skipped = r.Error
		case r.Error != "":
			ch.Err = errOf(r.Error)
			if r.RolledBack && i < len(plan.Vhosts) && plan.Vhosts[i].UndoAny {
				ch.Err = fmt.Errorf("%s; torn down again", r.Error)
			} else if r.RolledBack {
				ch.Err = fmt.Errorf("%s; back on %s", r.Error, dash(r.From))
			}
			shown = true
		case i < len(plan.Vhosts) && plan.Vhosts[i].Noop != "":
			ch.Note = "nothing to do: " + plan.Vhosts[i].Noop
		}
		e.record(ch)
	}
	if err != nil && !shown {
		e.record(audit.Change{Op: op, Err: err})
	}
}

// atLeast1 refuses an int flag below 1.
func atLeast1(names ...string) func(*cli.Context) error {
	return func(c *cli.Context) error {
		for _, n := range names {
			if c.Int(n) < 1 {
				return usagef("%s: --%s %d: must be at least 1", cmdPath(c), n, c.Int(n))
			}
		}
		return nil
	}
}

func jailCommands() []*cli.Command {
	return []*cli.Command{
		{
			Name:      "create",
			Usage:     "create a vhost on a prototype snapshot: datasets, jail.conf, fstab, state; start it",
			ArgsUsage: "VHOST proto@N",
			Flags:     []cli.Flag{dryRunFlag, &cli.BoolFlag{Name: "no-start", Usage: "do not start the jail", DisableDefaultText: true}},
			Action: withEnv(nil, func(c *cli.Context, e *env, m *rollout.Manager) error {
				return e.locked(c, func() error {
					plan, err := m.PlanCreate(c.Context, c.Args().Get(0), c.Args().Get(1), !c.Bool("no-start"))
					if err != nil {
						return err
					}
					return e.runPlan(c, m, plan)
				})
			}),
		},
		{
			Name:      "promote",
			Usage:     "switch vhosts to a prototype snapshot and restart them (the first one alone, as a canary); on a slave (--host) or on every host (--hosts)",
			ArgsUsage: "proto@N [VHOST...]",
			Flags: []cli.Flag{dryRunFlag, &cli.IntFlag{Name: "parallel", Value: 1, Usage: "after the canary, switch `K` vhosts at a time"},
				&cli.BoolFlag{Name: "strict", Usage: "refuse while a vhost's /cfg overrides base files the new snapshot changes and that are not merged (rollout etc merge)", DisableDefaultText: true},
				&cli.StringFlag{Name: "host", Usage: "run the promote on slave `SLAVE` (its rollout, its configuration) over SSH"},
				&cli.StringFlag{Name: "hosts", Usage: "promote every vhost not on the snapshot on `HOSTS`: all (this host and every slave) or HOST,HOST; replicates first where needed, then the canary, then host by host, stopping at the first failure"},
				&cli.StringFlag{Name: "canary", Usage: "with --hosts: the vhost promoted first, alone: `HOST/VHOST` (local/vhost1, slave2/vhost5)"}},
			Action: withEnv(checkPromote, promoteAction),
		},
		{
			Name:      "rollback",
			Usage:     "switch vhosts back to the snapshot they ran on before (or --to proto@M) and restart them",
			ArgsUsage: "VHOST [VHOST...]",
			Flags: []cli.Flag{dryRunFlag, &cli.StringFlag{Name: "to", Usage: "roll back to `proto@M` instead of the previous snapshot"},
				&cli.IntFlag{Name: "parallel", Value: 1, Usage: "after the first, switch `K` vhosts at a time"}},
			Action: withEnv(func(c *cli.Context) error {
				if to := c.String("to"); c.IsSet("to") {
					if err := checkArg("proto@M", to); err != nil {
						return usagef("rollback: --to: %v", err)
					}
				}
				return atLeast1("parallel")(c)
			}, func(c *cli.Context, e *env, m *rollout.Manager) error {
				return e.locked(c, func() error {
					plan, err := m.PlanRollback(c.Context, c.Args().Slice(), c.String("to"), rollout.SwitchOptions{Parallel: c.Int("parallel")})
					if err != nil {
						return err
					}
					return e.runPlan(c, m, plan)
				})
			}),
		},
		{
			Name:      "try",
			Usage:     "start a test jail beside a vhost on a prototype snapshot, with clones of the vhost's datasets, health-check it and end it again (--keep: leave it running; --end VHOST: end it)",
			ArgsUsage: "proto@N VHOST",
			Flags: []cli.Flag{dryRunFlag,
				&cli.BoolFlag{Name: "keep", Usage: "leave the try running for manual tests, until rollout try --end VHOST", DisableDefaultText: true},
				&cli.BoolFlag{Name: "end", Usage: "end the vhost's try: its jail, /etc, clones, their snapshots, its hold and files (rollout try --end VHOST)", DisableDefaultText: true}},
			Action: withEnv(func(c *cli.Context) error {
				if c.Bool("keep") && c.Bool("end") {
					return usagef("try: --keep and --end exclude each other")
				}
				return nil
			}, func(c *cli.Context, e *env, m *rollout.Manager) error {
				return e.locked(c, func() error {
					var plan *rollout.Plan
					var err error
					if c.Bool("end") {
						plan, err = m.PlanTryEnd(c.Context, c.Args().First())
					} else {
						plan, err = m.PlanTry(c.Context, c.Args().Get(0), c.Args().Get(1), rollout.TryOptions{Keep: c.Bool("keep")})
					}
					if err != nil {
						return err
					}
					return e.runPlan(c, m, plan)
				})
			}),
		},
		{
			Name:      "repair",
			Usage:     "put vhosts whose promote or rollback did not finish back on their recorded snapshot; tear down tries that did not finish",
			ArgsUsage: "[VHOST...]",
			Flags:     []cli.Flag{dryRunFlag},
			Action: withEnv(nil, func(c *cli.Context, e *env, m *rollout.Manager) error {
				return e.locked(c, func() error {
					plan, err := m.PlanRepair(c.Context, c.Args().Slice())
					if err != nil {
						return err
					}
					return e.runPlan(c, m, plan)
				})
			}),
		},
		{
			Name:      "status",
			Usage:     "each vhost: its snapshot, previous snapshot, running or not, fstab, unsaved /etc edits, unfinished operations; each slave's last replication; exit 1 when a vhost needs attention",
			ArgsUsage: "[VHOST...]",
			Flags: []cli.Flag{&cli.BoolFlag{Name: "etc", Usage: "also compare each running vhost's live /etc with what it was built from (unsaved edits)",
				DisableDefaultText: true},
				&cli.StringFlag{Name: "hosts", Usage: "one table of the vhosts of `HOSTS`: all (this host and every slave) or HOST,HOST (local is this host), each slave asked over SSH"}},
			Action: withEnv(func(c *cli.Context) error {
				if c.IsSet("hosts") && c.NArg() > 0 {
					return usagef("status --hosts: takes no VHOST")
				}
				if c.IsSet("hosts") && c.String("hosts") == "" {
					return usagef("status: --hosts: empty; say all or HOST,HOST")
				}
				return nil
			}, func(c *cli.Context, e *env, m *rollout.Manager) error {
				o := rollout.StatusOptions{Etc: c.Bool("etc")}
				if c.IsSet("hosts") {
					hosts, err := e.fleetHosts(c.String("hosts"))
					if err != nil {
						return err
					}
					return e.fleetStatus(c.Context, m, hosts, o)
				}
				return e.status(c.Context, m, c.Args().Slice(), o)
			}),
		},
		{
			Name:      "prune",
			Usage:     "destroy old prototype snapshots that no vhost uses and no hold protects",
			ArgsUsage: " ",
			Flags:     []cli.Flag{dryRunFlag, &cli.IntFlag{Name: "keep", Value: 5, Usage: "always keep the newest `K` snapshots"}},
			Action: withEnv(func(c *cli.Context) error {
				if c.Int("keep") < 1 {
					return usagef("prune: --keep %d: keep at least 1 snapshot", c.Int("keep"))
				}
				return nil
			}, func(c *cli.Context, e *env, m *rollout.Manager) error {
				return e.locked(c, func() error {
					dry := c.Bool("dry-run")
					items, err := m.Prune(c.Context, c.Int("keep"), dry)
					if items == nil {
						items = []rollout.PruneItem{}
					}
					if dry {
						e.rep.Plan = prunePlan{Op: "prune", Keep: c.Int("keep"), Snapshots: items}
					} else {
						e.rep.Results = items
					}
					destroy := 0
					for _, it := range items {
						if it.Destroy {
							destroy++
						}
						if dry {
							verb := "keep   "
							if it.Destroy {
								verb = "destroy"
							}
							fmt.Fprintf(e.out, "%s %s (%s)\n", verb, it.Snapshot, it.Reason)
						}
					}
					if err == nil && destroy == 0 {
						fmt.Fprintf(e.msg, "nothing to prune: %d snapshots, all kept\n", len(items))
					}
					if !dry {
						shown := false
						for _, it := range items {
							if it.Destroyed || it.Error != "" {
								e.record(audit.Change{Op: "prune", Subject: it.Snapshot, Note: "destroyed", Err: errOf(it.Error)})
								shown = shown || it.Error != ""
							}
						}
						if err != nil && !shown {
							e.record(audit.Change{Op: "prune", Err: err})
						}
					}
					return err
				})
			}),
		},
		{
			Name:      "fstab",
			Usage:     "print a vhost's fstab for a snapshot, or (--write) regenerate it from the vhost's recorded state",
			ArgsUsage: "VHOST [proto@N]",
			Flags: []cli.Flag{&cli.BoolFlag{Name: "write", Usage: "write the fstab (and jail.conf) for the snapshot the vhost's state names", DisableDefaultText: true},
				&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "with --write: print what would be written and change nothing", DisableDefaultText: true}},
			Action: withEnv(func(c *cli.Context) error {
				if c.Bool("write") && c.NArg() > 1 {
					return usagef("fstab --write %s: takes no snapshot: it writes what the vhost's state says", c.Args().First())
				}
				if c.Bool("dry-run") && !c.Bool("write") {
					return usagef("fstab: --dry-run goes with --write (without it, fstab only prints)")
				}
				return nil
			}, fstabAction),
		},
		planCommand("start", "start vhosts on the snapshot their state names (writing jail.conf and fstab from it); they start at boot too",
			"VHOST [VHOST...]", func(c *cli.Context, m *rollout.Manager) (*rollout.Plan, error) {
				return m.PlanStart(c.Context, c.Args().Slice())
			}),
		planCommand("stop", "stop vhosts; they stay stopped at boot", "VHOST [VHOST...]",
			func(c *cli.Context, m *rollout.Manager) (*rollout.Plan, error) {
				return m.PlanStop(c.Context, c.Args().Slice())
			}),
		planCommand("boot", "at boot (rc.d/rollout): write every vhost's jail.conf and fstab from its state in ZFS, repair unfinished operations, start the vhosts marked to start",
			" ", func(c *cli.Context, m *rollout.Manager) (*rollout.Plan, error) {
				return m.PlanBoot(c.Context)
			}),
		planCommand("shutdown", "at shutdown (rc.d/rollout): stop every running vhost, leaving what starts at boot as it is",
			" ", func(c *cli.Context, m *rollout.Manager) (*rollout.Plan, error) {
				return m.PlanShutdown(c.Context)
			}),
		etcCommand(),
	}
}

// slaveStatus is one slave in the results of rollout status: its last replication as the
// master recorded it (rollout:replicated:SLAVE on the prototype).
type slaveStatus struct {
	Kind       string     `json:"kind"` // "slave"
	Slave      string     `json:"slave"`
	Replicated bool       `json:"replicated"` // false: none recorded
	Time       *time.Time `json:"time,omitempty"`
	Snapshot   string     `json:"snapshot,omitempty"`
	GUID       uint64     `json:"guid,omitempty,string"`
}

// status prints every vhost (and, when none is named, every slave's last replication)
// and fails when a vhost needs attention, so that cron and monitoring see it by the exit status.
func (e *env) status(ctx context.Context, m *rollout.Manager, names []string, o rollout.StatusOptions) error {
	st, err := m.Status(ctx, names, o)
	if err != nil {
		return err
	}
	var slaves []slaveStatus
	if len(names) == 0 && len(e.cfg.Slaves) > 0 {
		last, err := replicate.LastReplications(ctx, e.local, e.cfg.Proto.Dataset)
		if err != nil {
			return err
		}
		byName := map[string]replicate.LastReplication{}
		for _, l := range last {
			byName[l.Slave] = l
		}
		for _, n := range slices.Sorted(maps.Keys(e.cfg.Slaves)) {
			s := slaveStatus{Kind: "slave", Slave: n}
			if l, ok := byName[strings.ToLower(n)]; ok {
				t := l.Time
				s.Replicated, s.Time, s.Snapshot, s.GUID = true, &t, l.Snapshot, l.GUID
			}
			slaves = append(slaves, s)
		}
	}
	results := make([]any, 0, len(st)+len(slaves))
	var attention []string
	tw := tabwriter.NewWriter(e.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VHOST\tSNAPSHOT\tPREVIOUS\tRUNNING\tFSTAB\tUNSAVED /etc\tNOTES")
	for _, s := range st {
		results = append(results, s)
		var notes []string
		if !s.Exists {
			notes = append(notes, "no dataset "+s.Dataset)
		}
		notes = append(notes, s.Attention...)
		if len(s.Attention) > 0 {
			attention = append(attention, s.Vhost)
		}
		// without --etc nothing was compared: "-", not a count of 0
		unsaved := "-"
		if o.Etc {
			unsaved = fmt.Sprint(len(s.UnsavedEtc))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Vhost, dash(s.Snapshot), dash(s.Previous), yesNo(s.Running),
			dash(atSnap(s.Fstab)), unsaved, strings.Join(notes, "; "))
		if t := s.Try; t != nil {
			fmt.Fprintf(tw, "%s\t%s\t-\t%s\t-\t-\ttry of %s (%s)\n", t.Name, t.Snapshot, yesNo(t.Running), s.Vhost, t.State)
		}
	}
	if len(slaves) > 0 {
		fmt.Fprintln(tw)
		fmt.Fprintln(tw, "SLAVE\tLAST REPLICATION\tSNAPSHOT")
		for _, s := range slaves {
			results = append(results, s)
			when := "never"
			if s.Time != nil {
				when = s.Time.Local().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Slave, when, dash(s.Snapshot))
		}
	}
	e.rep.Results = results
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(attention) > 0 {
		return fmt.Errorf("status: %s: needs attention (see NOTES)", strings.Join(attention, ", "))
	}
	return nil
}

// prunePlan is prune --dry-run's plan: every snapshot and what would happen to it.
type prunePlan struct {
	Op        string              `json:"op"`
	Keep      int                 `json:"keep"`
	Snapshots []rollout.PruneItem `json:"snapshots"`
}

// fstabOut is one vhost's fstab in the results of rollout fstab.
type fstabOut struct {
	Vhost    string `json:"vhost"`
	Snapshot string `json:"snapshot"`
	File     string `json:"file"`
	Fstab    string `json:"fstab,omitempty"` // printed, not written
	Written  bool   `json:"written"`
}

func fstabAction(c *cli.Context, e *env, m *rollout.Manager) error {
	name := c.Args().First()
	v, err := e.cfg.Vhost(name)
	if err != nil {
		return err
	}
	file := m.Cfg.FstabPath(v)
	if c.Bool("write") {
		if c.Bool("dry-run") {
			// what WriteFstab does, as a plan: the same checks, nothing written
			st, err := rollout.LoadState(c.Context, m.R, v.Name, v.Dataset)
			if err != nil {
				return err
			}
			if st.Snapshot == "" {
				return fmt.Errorf("vhost %s: no snapshot recorded on %s; use rollout create", v.Name, v.Dataset)
			}
			if _, err := m.RenderFstab(v, st.Snapshot); err != nil {
				return err
			}
			plan := &rollout.Plan{Op: "fstab --write " + v.Name, Checks: []string{"the fstab renders for " + st.Snapshot},
				Vhosts: []*rollout.VhostPlan{{Vhost: v.Name, From: st.Snapshot, To: st.Snapshot, Steps: []rollout.Step{
					{Name: "conf", Cmds: []string{"write " + m.Host.ConfFile(m.Jail(v)) + " if it changed"}},
					{Name: "fstab", Cmds: []string{"write " + file + " (" + st.Snapshot + ", atomic rename)"}},
				}}}}
			e.rep.Plan = plan
			plan.Print(e.out)
			return nil
		}
		return e.locked(c, func() error {
			snap, err := m.WriteFstab(c.Context, name)
			e.record(audit.Change{Op: "fstab --write", Subject: v.Name, From: snap, To: snap, Note: "wrote " + file, Err: err})
			if err != nil {
				return err
			}
			e.rep.Results = []fstabOut{{Vhost: v.Name, Snapshot: snap, File: file, Written: true}}
			fmt.Fprintf(e.msg, "wrote %s (%s)\n", file, snap)
			return nil
		})
	}
	ref := c.Args().Get(1)
	if ref == "" {
		st, err := rollout.LoadState(c.Context, m.R, v.Name, v.Dataset)
		if err != nil {
			return err
		}
		if st.Snapshot == "" {
			return fmt.Errorf("vhost %s: no snapshot recorded; name one: rollout fstab %s proto@N", name, name)
		}
		ref = st.Snapshot
	}
	ver, err := m.Proto().Resolve(c.Context, ref)
	if err != nil {
		return err
	}
	b, err := m.RenderFstab(v, ver.FullName())
	if err != nil {
		return err
	}
	e.rep.Results = []fstabOut{{Vhost: v.Name, Snapshot: ver.FullName(), File: file, Fstab: string(b)}}
	_, err = e.out.Write(b)
	return err
}

// etcOut is one vhost's /etc in the results of rollout etc.
type etcOut struct {
	Vhost    string        `json:"vhost"`
	Files    int           `json:"files,omitempty"`
	Duration time.Duration `json:"duration_ns,omitempty"`
	Path     string        `json:"path,omitempty"`
	Kind     string        `json:"kind,omitempty"`
	Saved    bool          `json:"saved,omitempty"`
	// Staged: etc init mounted the /etc a switch built before the stop
	Staged bool `json:"staged,omitempty"`
}

func etcCommand() *cli.Command {
	return &cli.Command{
		Name:  "etc",
		Usage: "a jail's /etc: the hooks jail(8) runs, and the edits that /cfg does not have yet",
		Subcommands: []*cli.Command{
			{
				Name:      "init",
				Usage:     "exec.prestart hook: make the jail's /etc memory file system and fill it (snapshot's /etc, then /cfg)",
				ArgsUsage: "VHOST",
				Action: withEnv(nil, func(c *cli.Context, e *env, m *rollout.Manager) error {
					start := time.Now()
					name := c.Args().First()
					st, staged, err := m.EtcInit(c.Context, name)
					if err != nil {
						return err
					}
					d := time.Since(start)
					e.rep.Results = []etcOut{{Vhost: name, Files: st.Files, Duration: d, Staged: staged}}
					if staged {
						fmt.Fprintf(e.msg, "%s: staged /etc mounted, %d files, in %s\n", name, st.Files, d.Round(time.Millisecond))
						return nil
					}
					fmt.Fprintf(e.msg, "%s: /etc built, %d files in %s\n", name, st.Files, d.Round(time.Millisecond))
					return nil
				}),
			},
			{
				Name:      "cleanup",
				Usage:     "exec.poststop hook: unmount and free the jail's /etc",
				ArgsUsage: "VHOST",
				Action: withEnv(nil, func(c *cli.Context, e *env, m *rollout.Manager) error {
					name := c.Args().First()
					if err := m.EtcCleanup(c.Context, name); err != nil {
						return err
					}
					e.rep.Results = []etcOut{{Vhost: name}}
					fmt.Fprintf(e.msg, "%s: /etc freed\n", name)
					return nil
				}),
			},
			{
				Name:      "diff",
				Usage:     "edits in the running jail's /etc that its /cfg lacks (lost at restart), and what /cfg overrides; with --against, the /cfg files whose base that snapshot changes",
				ArgsUsage: "VHOST",
				Flags:     []cli.Flag{&cli.StringFlag{Name: "against", Usage: "list the /cfg files overriding base files that differ between the vhost's snapshot and `proto@N`"}},
				Action: withEnv(func(c *cli.Context) error {
					if c.IsSet("against") {
						if err := checkArg("proto@N", c.String("against")); err != nil {
							return usagef("etc diff: --against: %v", err)
						}
					}
					return nil
				}, func(c *cli.Context, e *env, m *rollout.Manager) error {
					name := c.Args().First()
					if c.IsSet("against") {
						return etcDriftAction(c, e, m, name, c.String("against"))
					}
					ch, err := m.EtcDiff(c.Context, name)
					if err != nil {
						return err
					}
					e.rep.Results = printEtcDiff(e.out, name, ch)
					if len(ch) == 0 {
						fmt.Fprintf(e.msg, "%s: /etc is as the snapshot and /cfg make it\n", name)
					}
					return nil
				}),
			},
			{
				Name:      "save",
				Usage:     "copy edits from the running jail's /etc into its /cfg (all of them, or the FILEs named)",
				ArgsUsage: "VHOST [FILE...]",
				Flags:     []cli.Flag{&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "print what would be saved and change nothing", DisableDefaultText: true}},
				Action:    withEnv(nil, etcSaveAction),
			},
			{
				Name:      "merge",
				Usage:     "merge the base's changes from the vhost's snapshot to proto@N into the /cfg files that override them (all the drifted files, or the FILEs named)",
				ArgsUsage: "VHOST proto@N [FILE...]",
				Flags: []cli.Flag{&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "print each file's merge as a diff of its /cfg version and change nothing", DisableDefaultText: true},
					&cli.BoolFlag{Name: "resolved", Usage: "mark the FILEs named as merged with proto@N (after resolving a conflict by hand) without changing them", DisableDefaultText: true}},
				Action: withEnv(func(c *cli.Context) error {
					if c.Bool("resolved") && c.NArg() < 3 {
						return usagef("etc merge --resolved: name the FILEs resolved")
					}
					return nil
				}, etcMergeAction),
			},
		},
	}
}

// driftOut is one drifted /cfg file in the results of etc diff --against and etc merge.
type driftOut struct {
	Vhost   string `json:"vhost"`
	Path    string `json:"path"`
	Base    string `json:"base"`            // changed, removed or added: what the base did
	State   string `json:"state,omitempty"` // etc merge: clean, conflict, unchanged, resolved
	Reason  string `json:"reason,omitempty"`
	Written bool   `json:"written,omitempty"`
}

// etcDriftAction is etc diff --against: one line per drifted file, what the base did and its path.
func etcDriftAction(c *cli.Context, e *env, m *rollout.Manager, name, ref string) error {
	from, to, ds, err := m.EtcDrift(c.Context, name, ref)
	if err != nil {
		return err
	}
	out := []driftOut{}
	for _, d := range ds {
		out = append(out, driftOut{Vhost: name, Path: "/etc/" + d.Path, Base: d.Kind})
		fmt.Fprintf(e.out, "%-9s %s\n", d.Kind, etcmerge.Escape("/etc/"+d.Path))
	}
	e.rep.Results = out
	if len(ds) == 0 {
		fmt.Fprintf(e.msg, "%s: no /cfg file overrides a base file that differs between %s and %s (or all are merged)\n", name, from, to)
	}
	return nil
}

// etcMergePlan is etc merge --dry-run's plan.
type etcMergePlan struct {
	Op    string     `json:"op"`
	From  string     `json:"from"`
	To    string     `json:"to"`
	Files []driftOut `json:"files"`
}

func etcMergeAction(c *cli.Context, e *env, m *rollout.Manager) error {
	name, ref, files := c.Args().Get(0), c.Args().Get(1), c.Args().Slice()[2:]
	dry := c.Bool("dry-run")
	run := func() error {
		from, to, res, err := m.EtcMerge(c.Context, name, ref, etcmerge.MergeOptions{Paths: files, DryRun: dry, Resolved: c.Bool("resolved")})
		if from == "" {
			return err // nothing was looked at
		}
		out := []driftOut{}
		var conflicts []string
		for _, r := range res {
			p := "/etc/" + r.Path
			out = append(out, driftOut{Vhost: name, Path: p, Base: r.Base, State: r.State, Reason: r.Reason, Written: r.Written})
			line := fmt.Sprintf("%-9s %s", r.State, etcmerge.Escape(p))
			if r.Reason != "" {
				line += ": " + r.Reason
			}
			fmt.Fprintln(e.out, line)
			if r.State == etcmerge.MergeConflict {
				conflicts = append(conflicts, etcmerge.Escape(p))
			}
			if dry && r.Result != nil {
				d, derr := etcmerge.UnifiedDiff(r.Current, r.Result, "/cfg/"+r.Path, "/cfg/"+r.Path+" merged")
				if derr != nil {
					return derr
				}
				fmt.Fprint(e.out, d)
			}
		}
		if dry {
			e.rep.Plan = etcMergePlan{Op: "etc merge " + name + " " + to, From: from, To: to, Files: out}
			if err == nil && len(conflicts) > 0 {
				err = fmt.Errorf("vhost %s: etc merge would write nothing: %w in %s", name, etcmerge.ErrConflicts, strings.Join(conflicts, ", "))
			}
		} else {
			e.rep.Results = out
		}
		if err == nil && len(res) == 0 {
			fmt.Fprintf(e.msg, "%s: nothing to merge between %s and %s\n", name, from, to)
		}
		return err
	}
	if dry {
		return run()
	}
	return e.locked(c, run)
}

func etcSaveAction(c *cli.Context, e *env, m *rollout.Manager) error {
	name, files := c.Args().First(), c.Args().Tail()
	if c.Bool("dry-run") {
		ch, err := m.EtcDiff(c.Context, name)
		if err != nil {
			return err
		}
		plan := etcSavePlan{Op: "etc save " + name, Files: []etcOut{}}
		for _, x := range ch {
			if x.Kind == etcmerge.Overrides || !underAny(x.Path, files) {
				continue
			}
			p := etcPath(x.Path)
			plan.Files = append(plan.Files, etcOut{Vhost: name, Path: p, Kind: x.Kind})
			fmt.Fprintf(e.out, "would save %-9s %s\n", x.Kind, p)
		}
		if len(plan.Files) == 0 {
			fmt.Fprintf(e.out, "%s: nothing to save\n", name)
		}
		e.rep.Plan = plan
		return nil
	}
	return e.locked(c, func() error {
		saved, err := m.EtcSave(c.Context, name, files)
		// how many, not which: file names in a tenant's /etc are the tenant's
		e.record(audit.Change{Op: "etc save", Subject: name, Note: fmt.Sprintf("%d files saved to its /cfg", len(saved)), Err: err})
		out := []etcOut{}
		for _, s := range saved {
			p := etcPath(s)
			out = append(out, etcOut{Vhost: name, Path: p, Saved: true})
			fmt.Fprintf(e.msg, "saved %s\n", p)
		}
		e.rep.Results = out
		if err == nil && len(saved) == 0 {
			fmt.Fprintf(e.msg, "%s: nothing to save\n", name)
		}
		return partly(err, len(saved) > 0)
	})
}

// printEtcDiff prints etc diff's lines and returns its results.
func printEtcDiff(w io.Writer, vhost string, ch []etcmerge.Change) []etcOut {
	out := []etcOut{}
	for _, x := range ch {
		p := etcPath(x.Path)
		out = append(out, etcOut{Vhost: vhost, Path: p, Kind: x.Kind})
		fmt.Fprintf(w, "%-9s %s\n", x.Kind, p)
	}
	return out
}

// etcPath is how a path below a jail's /etc is printed, in the text and in the JSON alike: the
// names are the tenant's, so they are escaped (etcmerge.Escape). JSON would escape control
// characters itself, but it turns bytes that are not UTF-8 into U+FFFD, so that two names
// could print the same.
func etcPath(rel string) string { return "/etc/" + etcmerge.Escape(rel) }

// etcSavePlan is etc save --dry-run's plan.
type etcSavePlan struct {
	Op    string   `json:"op"`
	Files []etcOut `json:"files"`
}

// underAny: p is one of paths or below one (etc save of a directory saves what is below it);
// every path when none are named.
func underAny(p string, paths []string) bool {
	if len(paths) == 0 {
		return true
	}
	for _, x := range paths {
		x = strings.Trim(strings.TrimPrefix(x, "/etc/"), "/")
		if p == x || strings.HasPrefix(p, x+"/") {
			return true
		}
	}
	return false
}

// planCommand is a command that computes a plan and runs it under the lock (or, with
// --dry-run, prints it).
func planCommand(name, usage, argsUsage string, plan func(*cli.Context, *rollout.Manager) (*rollout.Plan, error)) *cli.Command {
	return &cli.Command{
		Name: name, Usage: usage, ArgsUsage: argsUsage, Flags: []cli.Flag{dryRunFlag},
		Action: withEnv(nil, func(c *cli.Context, e *env, m *rollout.Manager) error {
			return e.locked(c, func() error {
				p, err := plan(c, m)
				if err != nil {
					return err
				}
				return e.runPlan(c, m, p)
			})
		}),
	}
}

// withEnv checks the arguments (checkArgs) and, with check, the flags: usage errors, before
// the config loads. Then it loads the config and builds the manager.
func withEnv(check func(*cli.Context) error, fn func(*cli.Context, *env, *rollout.Manager) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		if err := checkArgs(c); err != nil {
			return err
		}
		if check != nil {
			if err := check(c); err != nil {
				return err
			}
		}
		e, err := setup(c)
		if err != nil {
			return err
		}
		m, err := e.manager()
		if err != nil {
			return err
		}
		return fn(c, e, m)
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func atSnap(s string) string {
	if s == "" {
		return ""
	}
	return "@" + s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
