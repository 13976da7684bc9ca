// Package fleet runs rollout on several hosts: this one and the slaves that replicate sends
// the prototype to. Each slave runs its own rollout with its own configuration; the master
// runs it over SSH with --json and reads the report it prints (jsonreport.Report), so that
// results and errors come back structured, never scraped from text.
package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/rollout-dev/rollout/proto/command"
	"github.com/rollout-dev/rollout/rollout"
	"github.com/rollout-dev/rollout/rollout/config"
	"github.com/rollout-dev/rollout/rollout/jsonreport"
)

// Local is the name of this host in a fleet: the one the command runs on. The configuration
// refuses a slave by that name.
const Local = config.LocalHost

// Remote is rollout on a slave.
type Remote struct {
	Host    string         // the slave's name, for errors
	Runner  command.Runner // over SSH (sshx.Runner); it quotes every word for the remote shell
	Rollout string         // the slave's rollout binary
	Config  string         // the slave's configuration file; "": its rollout's default
}

// Argv is the command line run on the slave: rollout --json [--config FILE] ARGS. The caller
// puts "--" before words that are not flags, so that a vhost named "-x" stays a name.
func (r *Remote) Argv(args ...string) []string {
	argv := []string{r.Rollout, "--json"}
	if r.Config != "" {
		argv = append(argv, "--config", r.Config)
	}
	return append(argv, args...)
}

// Error is a command that rollout on a slave ran and reported as failed (exit 1, 2 or 3).
type Error struct {
	Host string
	Exit int    // the remote rollout's exit status
	Msg  string // its error, on one line
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s: %s", e.Host, e.Msg)
}

// Partial: the slave did some of the work (its exit status 3).
func (e *Error) Partial() bool { return e.Exit == 3 }

// Run runs rollout ARGS on the slave and decodes its report, the results into results and
// the plan into plan (pointers; nil: not decoded). A report that says the command failed is
// an *Error, returned with the report: a failed status still has its results. A slave whose
// rollout printed no report (not installed, killed, the link lost) is an error that names the
// slave and says what ran.
func (r *Remote) Run(ctx context.Context, results, plan any, args ...string) (*jsonreport.Report, error) {
	var out bytes.Buffer
	argv := r.Argv(args...)
	runErr := r.Runner.Run(ctx, command.Cmd{Argv: argv, Stdout: &out})
	rep, perr := decode(out.Bytes(), results, plan)
	if perr != nil {
		if runErr != nil {
			return nil, fmt.Errorf("%s: %w", r.Host, runErr)
		}
		return nil, fmt.Errorf("%s: %s printed no report: %w", r.Host, command.Quote(argv[:1]), perr)
	}
	if !rep.OK || runErr != nil {
		msg := rep.Error
		if msg == "" && runErr != nil {
			msg = runErr.Error()
		}
		if msg == "" {
			msg = "failed (exit " + strconv.Itoa(rep.Exit) + ")"
		}
		exit := rep.Exit
		if exit == 0 {
			exit = 1
		}
		return rep, &Error{Host: r.Host, Exit: exit, Msg: oneLine(msg)}
	}
	return rep, nil
}

// decode reads one report; it must be a whole JSON object with the report's keys.
func decode(b []byte, results, plan any) (*jsonreport.Report, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, err
	}
	for _, k := range []string{"command", "ok", "exit", "results"} {
		if _, ok := raw[k]; !ok {
			return nil, fmt.Errorf("no %q in its JSON", k)
		}
	}
	rep := &jsonreport.Report{Results: results, Plan: plan}
	if results == nil {
		rep.Results = &[]json.RawMessage{}
	}
	if plan == nil {
		rep.Plan = &json.RawMessage{}
	}
	if err := json.Unmarshal(b, rep); err != nil {
		return nil, err
	}
	return rep, nil
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}

// Status is rollout status on the slave: its vhosts. With a failure (a vhost needs
// attention), the vhosts come with the error.
func (r *Remote) Status(ctx context.Context, o rollout.StatusOptions) ([]rollout.VhostStatus, error) {
	args := []string{"status"}
	if o.Etc {
		args = append(args, "--etc")
	}
	var raw []json.RawMessage
	_, err := r.Run(ctx, &raw, nil, args...)
	if raw == nil {
		return nil, err
	}
	out := []rollout.VhostStatus{}
	for _, m := range raw {
		var s rollout.VhostStatus
		if jerr := json.Unmarshal(m, &s); jerr != nil {
			return nil, fmt.Errorf("%s: status: %w", r.Host, jerr)
		}
		if s.Kind == "vhost" { // the slave's own slaves, if any, are not this fleet's
			out = append(out, s)
		}
	}
	return out, err
}

// PromoteOptions are promote's flags, passed on to the slave.
type PromoteOptions struct {
	rollout.SwitchOptions
	DryRun bool
}

// Promote is rollout promote on the slave: with DryRun, its plan and no results.
func (r *Remote) Promote(ctx context.Context, snapshot string, vhosts []string, o PromoteOptions) ([]rollout.VhostResult, *rollout.Plan, error) {
	args := []string{"promote"}
	if o.DryRun {
		args = append(args, "--dry-run")
	}
	if o.Parallel > 1 {
		args = append(args, "--parallel", strconv.Itoa(o.Parallel))
	}
	if o.Strict {
		args = append(args, "--strict")
	}
	args = append(append(args, "--", snapshot), vhosts...)
	results := []rollout.VhostResult{}
	var plan *rollout.Plan
	rep, err := r.Run(ctx, &results, &plan, args...)
	if rep == nil {
		return nil, nil, err
	}
	return results, plan, err
}
