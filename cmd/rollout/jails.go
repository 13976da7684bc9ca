package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rollout-dev/rollout/rollout"
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
	out := e.out
	if e.json {
		out = io.Discard
	}
	return &rollout.Manager{Cfg: e.cfg, R: e.local, Host: h, Log: e.log, Out: out, Self: self}, nil
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

var dryRunFlag = &cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "print the plan (steps and exact commands) and change nothing"}

// runPlan prints or executes a plan, with the same output rules for every command.
func (e *env) runPlan(c *cli.Context, m *rollout.Manager, plan *rollout.Plan) error {
	if c.Bool("dry-run") {
		if e.json {
			return e.printJSON(plan)
		}
		plan.Print(e.out)
		return nil
	}
	results, err := m.Execute(c.Context, plan)
	if e.json {
		if jerr := e.printJSON(map[string]any{"op": plan.Op, "results": results, "ok": err == nil}); jerr != nil {
			return jerr
		}
	}
	return err
}

func jailCommands() []*cli.Command {
	return []*cli.Command{
		{
			Name:      "create",
			Usage:     "create a vhost on a prototype snapshot: datasets, jail.conf, fstab, state; start it",
			ArgsUsage: "VHOST proto@N",
			Flags:     []cli.Flag{dryRunFlag, &cli.BoolFlag{Name: "no-start", Usage: "do not start the jail"}},
			Action: withEnv(2, 2, func(c *cli.Context, e *env, m *rollout.Manager) error {
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
			Usage:     "switch vhosts to a prototype snapshot and restart them (the first one alone, as a canary)",
			ArgsUsage: "proto@N VHOST [VHOST...]",
			Flags:     []cli.Flag{dryRunFlag, &cli.IntFlag{Name: "parallel", Value: 1, Usage: "after the canary, switch `K` vhosts at a time"}},
			Action: withEnv(2, -1, func(c *cli.Context, e *env, m *rollout.Manager) error {
				if c.Int("parallel") < 1 {
					return usagef("promote: --parallel %d: must be at least 1", c.Int("parallel"))
				}
				return e.locked(c, func() error {
					plan, err := m.PlanPromote(c.Context, c.Args().First(), c.Args().Tail(), rollout.SwitchOptions{Parallel: c.Int("parallel")})
					if err != nil {
						return err
					}
					return e.runPlan(c, m, plan)
				})
			}),
		},
		{
			Name:      "rollback",
			Usage:     "switch vhosts back to the snapshot they ran on before (or --to proto@M) and restart them",
			ArgsUsage: "VHOST [VHOST...]",
			Flags: []cli.Flag{dryRunFlag, &cli.StringFlag{Name: "to", Usage: "roll back to `proto@M` instead of the previous snapshot"},
				&cli.IntFlag{Name: "parallel", Value: 1, Usage: "after the first, switch `K` vhosts at a time"}},
			Action: withEnv(1, -1, func(c *cli.Context, e *env, m *rollout.Manager) error {
				return e.locked(c, func() error {
					plan, err := m.PlanRollback(c.Context, c.Args().Slice(), c.String("to"), rollout.SwitchOptions{Parallel: max(c.Int("parallel"), 1)})
					if err != nil {
						return err
					}
					return e.runPlan(c, m, plan)
				})
			}),
		},
		{
			Name:      "repair",
			Usage:     "put vhosts whose promote or rollback did not finish back on their recorded snapshot",
			ArgsUsage: "[VHOST...]",
			Flags:     []cli.Flag{dryRunFlag},
			Action: withEnv(0, -1, func(c *cli.Context, e *env, m *rollout.Manager) error {
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
			Usage:     "each vhost: its snapshot, previous snapshot, running or not, fstab, unsaved /etc edits, unfinished operations",
			ArgsUsage: "[VHOST...]",
			Action: withEnv(0, -1, func(c *cli.Context, e *env, m *rollout.Manager) error {
				st, err := m.Status(c.Context, c.Args().Slice())
				if err != nil {
					return err
				}
				if e.json {
					return e.printJSON(st)
				}
				tw := tabwriter.NewWriter(e.out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "VHOST\tSNAPSHOT\tPREVIOUS\tRUNNING\tFSTAB\tUNSAVED /etc\tNOTES")
				for _, s := range st {
					var notes []string
					if !s.Exists {
						notes = append(notes, "no dataset "+s.Dataset)
					}
					if s.Pending != "" {
						notes = append(notes, "UNFINISHED: "+s.Pending+" (rollout repair "+s.Vhost+")")
					}
					if s.FstabProblem != "" {
						notes = append(notes, "fstab "+s.FstabProblem)
					}
					if s.Snapshot != "" && !s.Held {
						notes = append(notes, "snapshot not held")
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", s.Vhost, dash(s.Snapshot), dash(s.Previous), yesNo(s.Running),
						dash(atSnap(s.Fstab)), len(s.UnsavedEtc), strings.Join(notes, "; "))
				}
				return tw.Flush()
			}),
		},
		{
			Name:      "prune",
			Usage:     "destroy old prototype snapshots that no vhost uses and no hold protects",
			ArgsUsage: " ",
			Flags:     []cli.Flag{dryRunFlag, &cli.IntFlag{Name: "keep", Value: 5, Usage: "always keep the newest `K` snapshots"}},
			Action: withEnv(0, 0, func(c *cli.Context, e *env, m *rollout.Manager) error {
				return e.locked(c, func() error {
					items, err := m.Prune(c.Context, c.Int("keep"), c.Bool("dry-run"))
					if e.json {
						if jerr := e.printJSON(items); jerr != nil {
							return jerr
						}
					} else if c.Bool("dry-run") {
						for _, it := range items {
							verb := "keep   "
							if it.Destroy {
								verb = "destroy"
							}
							fmt.Fprintf(e.out, "%s %s (%s)\n", verb, it.Snapshot, it.Reason)
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
			Flags:     []cli.Flag{&cli.BoolFlag{Name: "write", Usage: "write the fstab (and jail.conf) for the snapshot the vhost's state names"}},
			Action: withEnv(1, 2, func(c *cli.Context, e *env, m *rollout.Manager) error {
				name := c.Args().First()
				if c.Bool("write") {
					if c.NArg() > 1 {
						return usagef("fstab --write %s: takes no snapshot: it writes what the vhost's state says", name)
					}
					return e.locked(c, func() error {
						snap, err := m.WriteFstab(c.Context, name)
						if err == nil {
							fmt.Fprintf(e.out, "wrote %s (%s)\n", m.Cfg.FstabPath(m.Cfg.Vhosts[name]), snap)
						}
						return err
					})
				}
				v, err := e.cfg.Vhost(name)
				if err != nil {
					return err
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
				_, err = e.out.Write(b)
				return err
			}),
		},
		planCommand("start", "start vhosts on the snapshot their state names (writing jail.conf and fstab from it); they start at boot too",
			"VHOST [VHOST...]", 1, func(c *cli.Context, m *rollout.Manager) (*rollout.Plan, error) {
				return m.PlanStart(c.Context, c.Args().Slice())
			}),
		planCommand("stop", "stop vhosts; they stay stopped at boot", "VHOST [VHOST...]", 1,
			func(c *cli.Context, m *rollout.Manager) (*rollout.Plan, error) {
				return m.PlanStop(c.Context, c.Args().Slice())
			}),
		planCommand("boot", "at boot (rc.d/rollout): write every vhost's jail.conf and fstab from its state in ZFS, repair unfinished operations, start the vhosts marked to start",
			"", 0, func(c *cli.Context, m *rollout.Manager) (*rollout.Plan, error) {
				return m.PlanBoot(c.Context)
			}),
		planCommand("shutdown", "at shutdown (rc.d/rollout): stop every running vhost, leaving what starts at boot as it is",
			"", 0, func(c *cli.Context, m *rollout.Manager) (*rollout.Plan, error) {
				return m.PlanShutdown(c.Context)
			}),
		etcCommand(),
	}
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
				Action: withEnv(1, 1, func(c *cli.Context, e *env, m *rollout.Manager) error {
					start := time.Now()
					st, err := m.EtcInit(c.Context, c.Args().First())
					if err == nil {
						e.log.Info("etc init", "vhost", c.Args().First(), "files", st.Files, "duration", time.Since(start))
					}
					return err
				}),
			},
			{
				Name:      "cleanup",
				Usage:     "exec.poststop hook: unmount and free the jail's /etc",
				ArgsUsage: "VHOST",
				Action: withEnv(1, 1, func(c *cli.Context, e *env, m *rollout.Manager) error {
					return m.EtcCleanup(c.Context, c.Args().First())
				}),
			},
			{
				Name:      "diff",
				Usage:     "edits in the running jail's /etc that its /cfg lacks (lost at restart), and what /cfg overrides",
				ArgsUsage: "VHOST",
				Action: withEnv(1, 1, func(c *cli.Context, e *env, m *rollout.Manager) error {
					ch, err := m.EtcDiff(c.Context, c.Args().First())
					if err != nil {
						return err
					}
					if e.json {
						return e.printJSON(ch)
					}
					for _, x := range ch {
						fmt.Fprintf(e.out, "%-9s /etc/%s\n", x.Kind, x.Path)
					}
					return nil
				}),
			},
			{
				Name:      "save",
				Usage:     "copy edits from the running jail's /etc into its /cfg (all of them, or the FILEs named)",
				ArgsUsage: "VHOST [FILE...]",
				Action: withEnv(1, -1, func(c *cli.Context, e *env, m *rollout.Manager) error {
					saved, err := m.EtcSave(c.Context, c.Args().First(), c.Args().Tail())
					for _, s := range saved {
						fmt.Fprintf(e.out, "saved /etc/%s\n", s)
					}
					return err
				}),
			},
		},
	}
}

// planCommand is a command that computes a plan and runs it under the lock (or, with
// --dry-run, prints it). minArgs > 0 takes any number of arguments from minArgs on.
func planCommand(name, usage, argsUsage string, minArgs int, plan func(*cli.Context, *rollout.Manager) (*rollout.Plan, error)) *cli.Command {
	maxArgs := -1
	if minArgs == 0 {
		maxArgs = 0
	}
	return &cli.Command{
		Name: name, Usage: usage, ArgsUsage: argsUsage, Flags: []cli.Flag{dryRunFlag},
		Action: withEnv(minArgs, maxArgs, func(c *cli.Context, e *env, m *rollout.Manager) error {
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

// withEnv checks the argument count (max -1: any), loads the config, builds the manager.
func withEnv(minArgs, maxArgs int, fn func(*cli.Context, *env, *rollout.Manager) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		n := c.NArg()
		if n < minArgs {
			return usagef("%s: needs %s", c.Command.FullName(), c.Command.ArgsUsage)
		}
		if maxArgs >= 0 && n > maxArgs {
			return usagef("%s: unexpected argument %q", c.Command.FullName(), c.Args().Get(maxArgs))
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
