package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rollout-dev/rollout/proto"
	"github.com/rollout-dev/rollout/proto/command"
	"github.com/rollout-dev/rollout/proto/zfs"
	"github.com/rollout-dev/rollout/replicate"
	"github.com/rollout-dev/rollout/rollout/audit"
)

func (e *env) proto() *proto.Proto { return &proto.Proto{Dataset: e.cfg.Proto.Dataset, R: e.local} }

func snapshotCommand() *cli.Command {
	return &cli.Command{
		Name:      "snapshot",
		Usage:     "freeze the prototype: zfs snapshot -r of it and its children",
		ArgsUsage: " ",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "name", Usage: "snapshot `NAME` (default: highest numeric snapshot + 1)"},
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "print the snapshot that would be taken and the command; change nothing", DisableDefaultText: true},
		},
		Action: func(c *cli.Context) error {
			if err := checkArgs(c); err != nil {
				return err
			}
			name := c.String("name")
			if c.IsSet("name") {
				if err := zfs.ValidateSnapshotName(name); err != nil {
					return usagef("snapshot: --name: %v", err)
				}
			}
			e, err := setup(c)
			if err != nil {
				return err
			}
			p := e.proto()
			if c.Bool("dry-run") {
				// the checks Create makes, and the name it would take
				if err := p.Check(c.Context); err != nil {
					return err
				}
				vs, err := p.Versions(c.Context)
				if err != nil {
					return err
				}
				if name == "" {
					name = proto.NextName(vs)
				}
				for _, v := range vs {
					if v.Name == name {
						return fmt.Errorf("snapshot %s already exists", v.FullName())
					}
				}
				full := p.Dataset + "@" + name
				if _, _, err := zfs.SplitSnapshot(full); err != nil {
					return err
				}
				plan := snapshotPlan{Op: "snapshot", Snapshot: full, Commands: []string{command.Quote([]string{zfs.Bin, "snapshot", "-r", full})}}
				e.rep.Plan = plan
				fmt.Fprintf(e.out, "plan: snapshot %s\n  %s\n", full, plan.Commands[0])
				return nil
			}
			return e.locked(c, func() error {
				v, err := p.Create(c.Context, name)
				if err != nil {
					e.record(audit.Change{Op: "snapshot", Subject: p.Dataset, Err: err})
					return err
				}
				e.record(audit.Change{Op: "snapshot", Subject: v.FullName(), Note: fmt.Sprintf("%d datasets, guid %d", v.Datasets, v.GUID)})
				e.rep.Results = []versionOut{versionJSON(v)}
				fmt.Fprintf(e.msg, "created %s on %d datasets (guid %d, createtxg %d)\n", v.FullName(), v.Datasets, v.GUID, v.CreateTXG)
				return nil
			})
		},
	}
}

// snapshotPlan is snapshot --dry-run's plan.
type snapshotPlan struct {
	Op       string   `json:"op"`
	Snapshot string   `json:"snapshot"`
	Commands []string `json:"commands"`
}

// versionOut is one snapshot in JSON. The guid is a string, as zfs list -j prints it: a
// 64-bit number loses digits in JavaScript and in any JSON reader that uses doubles.
type versionOut struct {
	Name      string    `json:"name"`
	Snapshot  string    `json:"snapshot"`
	GUID      uint64    `json:"guid,string"`
	CreateTXG uint64    `json:"createtxg"`
	Creation  time.Time `json:"creation"`
	Used      uint64    `json:"used"`
	Holds     uint64    `json:"holds"`
	Datasets  int       `json:"datasets"`
	Complete  bool      `json:"complete"`
	Missing   []string  `json:"missing,omitempty"`
}

func versionJSON(v proto.Version) versionOut {
	return versionOut{Name: v.Name, Snapshot: v.FullName(), GUID: v.GUID, CreateTXG: v.CreateTXG,
		Creation: v.Creation.UTC(), Used: v.Used, Holds: v.UserRefs, Datasets: v.Datasets,
		Complete: v.Complete(), Missing: v.Missing}
}

func snapshotsCommand() *cli.Command {
	return &cli.Command{
		Name:      "snapshots",
		Usage:     "list the prototype's snapshots in creation order",
		ArgsUsage: " ",
		Action: withEnvOnly(func(c *cli.Context, e *env) error {
			p := e.proto()
			if err := p.Check(c.Context); err != nil {
				return err
			}
			vs, err := p.Versions(c.Context)
			if err != nil {
				return err
			}
			out := make([]versionOut, 0, len(vs))
			for _, v := range vs {
				out = append(out, versionJSON(v))
			}
			e.rep.Results = out
			tw := tabwriter.NewWriter(e.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SNAPSHOT\tGUID\tCREATETXG\tCREATED\tUSED\tHOLDS\tCOMPLETE")
			for _, v := range vs {
				complete := "yes"
				if !v.Complete() {
					complete = fmt.Sprintf("no (missing on %v)", v.Missing)
				}
				fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%d\t%s\n", v.FullName(), v.GUID, v.CreateTXG,
					v.Creation.Local().Format("2006-01-02 15:04:05"), replicate.HumanBytes(int64(v.Used)), v.UserRefs, complete)
			}
			return tw.Flush()
		}),
	}
}

// withEnvOnly is withEnv for commands that need no rollout.Manager.
func withEnvOnly(fn func(*cli.Context, *env) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		if err := checkArgs(c); err != nil {
			return err
		}
		e, err := setup(c)
		if err != nil {
			return err
		}
		return fn(c, e)
	}
}
