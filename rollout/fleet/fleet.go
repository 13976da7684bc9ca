package fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/rollout-dev/rollout/rollout"
)

// Host is one host of a fleet: this one (rollout in this process) or a slave (a Remote).
type Host interface {
	Name() string
	Status(ctx context.Context) ([]rollout.VhostStatus, error)
	Promote(ctx context.Context, snapshot string, vhosts []string, o rollout.SwitchOptions) ([]rollout.VhostResult, error)
}

// Fleet promotes a snapshot on several hosts: replication first where a slave lacks it, then
// a canary vhost alone, then the other hosts one after another, stopping at the first failure.
type Fleet struct {
	Hosts []Host // in the order the hosts are promoted (after the canary's host)
	// Replication says what replicating the snapshot to a slave would do ("" if the slave has
	// it); Replicate does it. Both nil: no host is a slave.
	Replication func(ctx context.Context, slave string) (string, error)
	Replicate   func(ctx context.Context, slave string) error
}

// Phases of a fleet promote's steps.
const (
	PhaseReplicate = "replicate"
	PhaseCanary    = "canary"
	PhasePromote   = "promote"
)

// Step is one thing a fleet promote does on one host.
type Step struct {
	Phase  string   `json:"phase"` // replicate, canary, promote
	Host   string   `json:"host"`
	Vhosts []string `json:"vhosts"` // promote: the vhosts, in the order the host takes them
	What   string   `json:"what,omitempty"`
}

// Plan is a fleet promote, as data: the steps in the order they run.
type Plan struct {
	Op       string   `json:"op"`
	Snapshot string   `json:"snapshot"` // the snapshot's name (the part after @), as each host's prototype has it
	Canary   string   `json:"canary"`   // HOST/VHOST
	Steps    []Step   `json:"steps"`
	Notes    []string `json:"notes"` // what is not done and why: vhosts already on the snapshot, never created
}

// Result is what one step did.
type Result struct {
	Step
	State   string                `json:"state"` // done, failed, not started
	Error   string                `json:"error,omitempty"`
	Results []rollout.VhostResult `json:"results"`
}

// Step states.
const (
	Done       = "done"
	Failed     = "failed"
	NotStarted = "not started"
)

// ParseCanary splits HOST/VHOST.
func ParseCanary(s string) (host, vhost string, err error) {
	host, vhost, ok := strings.Cut(s, "/")
	if !ok || host == "" || vhost == "" || strings.Contains(vhost, "/") {
		return "", "", fmt.Errorf("canary %q: want HOST/VHOST, such as local/vhost1 or slave2/vhost5", s)
	}
	return host, vhost, nil
}

// snapName is the part of a snapshot's name after @: what two hosts' prototypes have in common.
func snapName(s string) string {
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// Plan asks every host for its vhosts (and every slave whether it has snapshot) and plans the
// promote of snapshot (its name, after @) with canary (HOST/VHOST) first. It changes nothing.
// A host that cannot be asked fails the plan: nothing is promoted anywhere.
func (f *Fleet) Plan(ctx context.Context, snapshot, canary string) (*Plan, error) {
	ch, cv, err := ParseCanary(canary)
	if err != nil {
		return nil, err
	}
	snapshot = snapName(snapshot)
	idx := slices.IndexFunc(f.Hosts, func(h Host) bool { return h.Name() == ch })
	if idx < 0 {
		return nil, fmt.Errorf("canary %s: host %s is not among the hosts promoted", canary, ch)
	}
	// the canary's host first, then the others in their order
	order := append([]Host{f.Hosts[idx]}, slices.Delete(slices.Clone(f.Hosts), idx, idx+1)...)
	sts := make([][]rollout.VhostStatus, len(order))
	errs := make([]error, len(order))
	repl := make([]string, len(order))
	done := make(chan struct{}, len(order))
	for i, h := range order {
		go func() {
			defer func() { done <- struct{}{} }()
			st, err := h.Status(ctx)
			if st == nil {
				errs[i] = err
				return
			}
			sts[i] = st
			if h.Name() != Local && f.Replication != nil {
				repl[i], errs[i] = f.Replication(ctx, h.Name())
				if errs[i] != nil {
					errs[i] = fmt.Errorf("%s: replicate: %w", h.Name(), errs[i])
				}
			}
		}()
	}
	for range order {
		<-done
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	p := &Plan{Op: "promote --hosts", Snapshot: snapshot, Canary: canary, Steps: []Step{}, Notes: []string{}}
	for i, h := range order {
		if repl[i] != "" {
			p.Steps = append(p.Steps, Step{Phase: PhaseReplicate, Host: h.Name(), What: repl[i]})
		}
	}
	canaryFound := false
	var rest []Step
	for i, h := range order {
		var vs []string
		for _, s := range sts[i] {
			switch {
			case s.Snapshot == "":
				p.Notes = append(p.Notes, fmt.Sprintf("%s/%s: not created, left alone", h.Name(), s.Vhost))
			case snapName(s.Snapshot) == snapshot:
				p.Notes = append(p.Notes, fmt.Sprintf("%s/%s: already on @%s", h.Name(), s.Vhost, snapshot))
				canaryFound = canaryFound || i == 0 && s.Vhost == cv
			case i == 0 && s.Vhost == cv:
				canaryFound = true
				p.Steps = append(p.Steps, Step{Phase: PhaseCanary, Host: h.Name(), Vhosts: []string{cv}})
			default:
				vs = append(vs, s.Vhost)
			}
		}
		if len(vs) > 0 {
			rest = append(rest, Step{Phase: PhasePromote, Host: h.Name(), Vhosts: vs})
		}
	}
	if !canaryFound {
		return nil, fmt.Errorf("canary %s: host %s has no vhost %s", canary, ch, cv)
	}
	p.Steps = append(p.Steps, rest...)
	return p, nil
}

// Print writes the plan for people.
func (p *Plan) Print(w io.Writer) {
	fmt.Fprintf(w, "plan: %s @%s, canary %s\n", p.Op, p.Snapshot, p.Canary)
	for i, s := range p.Steps {
		switch s.Phase {
		case PhaseReplicate:
			fmt.Fprintf(w, "  %d. replicate to %s: %s\n", i+1, s.Host, s.What)
		case PhaseCanary:
			fmt.Fprintf(w, "  %d. canary %s/%s alone; the rest waits for it\n", i+1, s.Host, s.Vhosts[0])
		default:
			fmt.Fprintf(w, "  %d. promote on %s: %s\n", i+1, s.Host, strings.Join(s.Vhosts, " "))
		}
	}
	if !slices.ContainsFunc(p.Steps, func(s Step) bool { return s.Phase != PhaseReplicate }) {
		fmt.Fprintf(w, "  nothing to promote\n")
	}
	for _, n := range p.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
	fmt.Fprintf(w, "  a failed step stops the run: the steps after it are not started\n")
}

// Run executes the plan's steps in order and stops at the first that fails: its result says
// why, and the steps after it are "not started". The error names the failed host.
func (f *Fleet) Run(ctx context.Context, p *Plan, o rollout.SwitchOptions) ([]Result, error) {
	hosts := map[string]Host{}
	for _, h := range f.Hosts {
		hosts[h.Name()] = h
	}
	out := make([]Result, len(p.Steps))
	var failed error
	for i, s := range p.Steps {
		out[i] = Result{Step: s, State: NotStarted, Results: []rollout.VhostResult{}}
		if failed != nil {
			continue
		}
		if err := ctx.Err(); err != nil {
			failed = err
			continue
		}
		var err error
		switch s.Phase {
		case PhaseReplicate:
			if f.Replicate == nil {
				err = errors.New("no way to replicate")
			} else {
				err = f.Replicate(ctx, s.Host)
			}
		default:
			h, ok := hosts[s.Host]
			if !ok {
				err = errors.New("not among the hosts")
				break
			}
			var res []rollout.VhostResult
			res, err = h.Promote(ctx, p.Snapshot, s.Vhosts, o)
			if res != nil {
				out[i].Results = res
			}
		}
		out[i].State = Done
		if err != nil {
			out[i].State, out[i].Error = Failed, err.Error()
			if !strings.HasPrefix(err.Error(), s.Host+": ") {
				err = fmt.Errorf("%s: %w", s.Host, err)
			}
			failed = fmt.Errorf("%s on %s failed, %d later steps not started: %w", s.Phase, s.Host, len(p.Steps)-i-1, err)
		}
	}
	return out, failed
}

// RemoteHost is a slave as a fleet Host.
type RemoteHost struct {
	*Remote
	StatusOptions rollout.StatusOptions
}

func (h RemoteHost) Name() string { return h.Host }

func (h RemoteHost) Status(ctx context.Context) ([]rollout.VhostStatus, error) {
	return h.Remote.Status(ctx, h.StatusOptions)
}

func (h RemoteHost) Promote(ctx context.Context, snapshot string, vhosts []string, o rollout.SwitchOptions) ([]rollout.VhostResult, error) {
	res, _, err := h.Remote.Promote(ctx, snapshot, vhosts, PromoteOptions{SwitchOptions: o})
	return res, err
}
