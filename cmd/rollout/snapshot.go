package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rollout-dev/rollout/proto"
	"github.com/rollout-dev/rollout/replicate"
)

func (e *env) proto() *proto.Proto { return &proto.Proto{Dataset: e.cfg.Proto.Dataset, R: e.local} }

func snapshotCommand() *cli.Command {
	return &cli.Command{
		Name:      "snapshot",
		Usage:     "freeze the prototype: zfs snapshot -r of it and its children",
		ArgsUsage: " ",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "name", Usage: "snapshot `NAME` (default: highest numeric snapshot + 1)"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			e, err := setup(c)
			if err != nil {
				return err
			}
			v, err := e.proto().Create(c.Context, c.String("name"))
			if err != nil {
				return err
			}
			if e.json {
				return e.printJSON(versionJSON(v))
			}
			fmt.Fprintf(e.out, "created %s on %d datasets (guid %d, createtxg %d)\n", v.FullName(), v.Datasets, v.GUID, v.CreateTXG)
			return nil
		},
	}
}

type versionOut struct {
	Name      string    `json:"name"`
	Snapshot  string    `json:"snapshot"`
	GUID      uint64    `json:"guid"`
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
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			e, err := setup(c)
			if err != nil {
				return err
			}
			p := e.proto()
			if err := p.Check(c.Context); err != nil {
				return err
			}
			vs, err := p.Versions(c.Context)
			if err != nil {
				return err
			}
			if e.json {
				out := make([]versionOut, 0, len(vs))
				for _, v := range vs {
					out = append(out, versionJSON(v))
				}
				return e.printJSON(out)
			}
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
		},
	}
}
