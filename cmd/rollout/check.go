package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/rollout-dev/rollout/rollout"
)

// checkCommand is `rollout check`: the configuration and, unless --config-only, the host as
// rollout left it. Silent and exit 0 when all is well (as zrepl's configcheck); else one line
// per problem, naming the thing and the fix, and exit 1.
func checkCommand() *cli.Command {
	return &cli.Command{
		Name:  "check",
		Usage: "check the configuration and the host (ZFS, prototype, vhosts, fstabs, holds, slaves); silent when all is well",
		Description: "Reads only; changes nothing. Prints one line per problem: what, the problem, and the fix.\n" +
			"Exit status: 0 nothing found, 1 problems found (or the configuration is invalid).",
		ArgsUsage: " ",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "config-only", Usage: "check only the configuration file, not the host", DisableDefaultText: true},
			&cli.BoolFlag{Name: "no-slaves", Usage: "do not connect to the slaves", DisableDefaultText: true},
			&cli.DurationFlag{Name: "timeout", Value: rollout.DefaultSlaveTimeout, Usage: "give up on a slave after `DURATION`"},
		},
		Action: func(c *cli.Context) error {
			if err := checkArgs(c); err != nil {
				return err
			}
			if c.Duration("timeout") <= 0 {
				return usagef("check: --timeout %s: must be more than zero", c.Duration("timeout"))
			}
			e, err := setup(c) // loads and validates the configuration
			if err != nil {
				return err
			}
			if c.Bool("config-only") {
				return nil
			}
			m, err := e.manager()
			if err != nil {
				return err
			}
			ps := m.Check(c.Context, rollout.CheckOptions{Slaves: !c.Bool("no-slaves"), SlaveTimeout: c.Duration("timeout")})
			e.rep.Results = ps
			for _, p := range ps {
				fmt.Fprintln(e.out, p)
			}
			if len(ps) > 0 {
				return fmt.Errorf("check: %s found", plural(len(ps), "problem"))
			}
			return nil
		},
	}
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
