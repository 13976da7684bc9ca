package rollout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-multierror"

	"github.com/rollout-dev/rollout/etcmerge"

	"github.com/rollout-dev/rollout/proto/command"
)

// Step is one action of a plan: what it does, the exact commands it runs, and the code that
// runs them. Plans are printed (--dry-run) and executed from the same Steps.
type Step struct {
	Name string   `json:"step"`
	Cmds []string `json:"commands"`
	run  func(ctx context.Context) error
	// downtime steps are timed separately: stop, start, health
}

func cmds(argvs ...[]string) []string {
	out := make([]string, 0, len(argvs))
	for _, a := range argvs {
		out = append(out, command.Quote(a))
	}
	return out
}

// VhostPlan switches one vhost from one snapshot to another.
type VhostPlan struct {
	Vhost string `json:"vhost"`
	// Title, when set, says what the plan does instead of "From -> To" (a try).
	Title   string `json:"title,omitempty"`
	From    string `json:"from"`
	To      string `json:"to"`
	Running bool   `json:"running"`
	Steps   []Step `json:"steps,omitempty"`
	// Undo puts the vhost back on From after a failure once its jail was stopped.
	Undo []Step `json:"undo,omitempty"`
	// UndoAny runs Undo after a failure of any step but the first (a try: its undo is its
	// tear-down, and production was never stopped).
	UndoAny bool `json:"undo_any,omitempty"`
	// Noop says why nothing needs doing (already on the target).
	Noop string `json:"noop,omitempty"`
	// Drift: the vhost's /cfg files that override base files the switch changes, not merged
	// (promote only); Warnings says so for people, or that /cfg could not be checked.
	Drift    []etcmerge.Drift `json:"drift,omitempty"`
	Warnings []string         `json:"warnings,omitempty"`
	// Done, when set, is what is printed once every step succeeded.
	Done string `json:"-"`
}

// Plan is a whole command's work.
type Plan struct {
	Op       string       `json:"op"`
	Checks   []string     `json:"checks,omitempty"` // what was verified before anything changes
	Vhosts   []*VhostPlan `json:"vhosts"`
	Finally  []Step       `json:"finally,omitempty"` // after all vhosts: release holds no vhost needs
	Parallel int          `json:"parallel"`
	// Independent: no canary; every vhost is attempted whatever happens to the others
	// (repair, boot, start, stop).
	Independent bool `json:"independent,omitempty"`
}

// Print writes the plan for people.
func (p *Plan) Print(w io.Writer) {
	fmt.Fprintf(w, "plan: %s\n", p.Op)
	for _, c := range p.Checks {
		fmt.Fprintf(w, "  checked: %s\n", c)
	}
	for i, v := range p.Vhosts {
		order := ""
		if len(p.Vhosts) > 1 && i == 0 && !p.Independent {
			order = " (canary: the others wait for it)"
		}
		if v.Noop != "" {
			fmt.Fprintf(w, "vhost %s: nothing to do: %s\n", v.Vhost, v.Noop)
			continue
		}
		if v.Title != "" {
			fmt.Fprintf(w, "%s: %s\n", v.Vhost, v.Title)
		} else {
			fmt.Fprintf(w, "vhost %s: %s -> %s%s\n", v.Vhost, orDash(v.From), v.To, order)
		}
		for _, s := range v.Warnings {
			fmt.Fprintf(w, "  warning: %s\n", s)
		}
		printSteps(w, v.Steps)
		if len(v.Undo) > 0 && v.UndoAny {
			fmt.Fprintln(w, "  if a step fails, all of it is torn down again:")
			printSteps(w, v.Undo)
		} else if len(v.Undo) > 0 {
			fmt.Fprintf(w, "  if the start or health check fails, back to %s:\n", orDash(v.From))
			printSteps(w, v.Undo)
		}
	}
	if len(p.Finally) > 0 {
		fmt.Fprintln(w, "finally:")
		printSteps(w, p.Finally)
	}
}

func printSteps(w io.Writer, steps []Step) {
	for _, s := range steps {
		fmt.Fprintf(w, "  %-8s", s.Name)
		for i, c := range s.Cmds {
			if i > 0 {
				fmt.Fprintf(w, "\n  %-8s", "")
			}
			fmt.Fprintf(w, " %s", c)
		}
		fmt.Fprintln(w)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// VhostResult is what happened to one vhost.
type VhostResult struct {
	Vhost      string        `json:"vhost"`
	From       string        `json:"from"`
	To         string        `json:"to"`
	OK         bool          `json:"ok"`
	Skipped    bool          `json:"skipped,omitempty"`
	Error      string        `json:"error,omitempty"`
	RolledBack bool          `json:"rolled_back,omitempty"`
	Downtime   time.Duration `json:"downtime_ns"`
	Stop       time.Duration `json:"stop_ns"`
	Start      time.Duration `json:"start_ns"` // includes building /etc (exec.prestart)
	Etc        time.Duration `json:"etc_ns"`   // of which: building /etc, as the hook measured it
	Health     time.Duration `json:"health_ns"`
}

// Execute runs the plan: the first vhost alone (the canary), then the others, Parallel at a
// time (1: one after another). A failed canary stops the run; other failures are collected.
func (m *Manager) Execute(ctx context.Context, p *Plan) ([]VhostResult, error) {
	results := make([]VhostResult, len(p.Vhosts))
	var errs *multierror.Error
	var mu sync.Mutex
	record := func(i int, r VhostResult, err error) {
		mu.Lock()
		defer mu.Unlock()
		results[i] = r
		if err != nil {
			errs = multierror.Append(errs, err)
		}
	}
	work := p.Vhosts
	if len(work) > 0 {
		r, err := m.runVhost(ctx, work[0])
		record(0, r, err)
		if err != nil && len(work) > 1 && !p.Independent {
			for i, v := range work[1:] {
				results[i+1] = VhostResult{Vhost: v.Vhost, From: v.From, To: v.To, Skipped: true, Error: "not started: the canary failed"}
			}
			work = nil
		} else {
			work = work[1:]
		}
	}
	par := max(p.Parallel, 1)
	sem := make(chan struct{}, par)
	var wg sync.WaitGroup
	for i, v := range work {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r, err := m.runVhost(ctx, v)
			record(i+1, r, err)
		}()
	}
	wg.Wait()
	for _, s := range p.Finally {
		m.Crash.Hit("before", s.Name, "")
		if err := s.run(ctx); err != nil {
			errs = multierror.Append(errs, err)
		}
		m.Crash.Hit("after", s.Name, "")
	}
	if errs != nil {
		errs.ErrorFormat = oneLineErrors
	}
	return results, errs.ErrorOrNil()
}

func oneLineErrors(es []error) string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "; ")
}

// runVhost runs one vhost's steps; when a step after the stop fails, it runs the undo steps.
func (m *Manager) runVhost(ctx context.Context, v *VhostPlan) (VhostResult, error) {
	res := VhostResult{Vhost: v.Vhost, From: v.From, To: v.To}
	if v.Noop != "" {
		res.OK = true
		m.printf("%s: %s\n", v.Vhost, v.Noop)
		return res, nil
	}
	stopped := false
	var downStart time.Time
	for i, s := range v.Steps {
		t0 := time.Now()
		if s.Name == "stop" {
			downStart = t0
		}
		m.Crash.Hit("before", s.Name, v.Vhost)
		err := s.run(ctx)
		m.Crash.Hit("after", s.Name, v.Vhost)
		d := time.Since(t0)
		switch s.Name {
		case "stop":
			res.Stop, stopped = d, true
		case "start":
			res.Start = d
			res.Etc = m.lastEtcBuild(v.Vhost)
		case "health":
			res.Health = d
		}
		if err == nil {
			m.Log.Debug("step done", "vhost", v.Vhost, "step", s.Name, "duration", d)
			if stopped && (s.Name == "health" || (s.Name == "start" && !hasStep(v.Steps, "health"))) {
				res.Downtime = time.Since(downStart)
			}
			continue
		}
		res.Error = err.Error()
		err = fmt.Errorf("vhost %s: %s failed: %w", v.Vhost, s.Name, err)
		if len(v.Undo) == 0 || !(stopped || v.UndoAny && i > 0) {
			return res, err
		}
		if v.UndoAny {
			m.printf("%s: %s failed, tearing it down\n", v.Vhost, s.Name)
		} else {
			m.printf("%s: %s failed, going back to %s\n", v.Vhost, s.Name, orDash(v.From))
		}
		for _, u := range v.Undo {
			m.Crash.Hit("before", "undo-"+u.Name, v.Vhost)
			uerr := u.run(context.WithoutCancel(ctx))
			m.Crash.Hit("after", "undo-"+u.Name, v.Vhost)
			if uerr != nil {
				return res, errors.Join(err, fmt.Errorf("vhost %s: undo %s failed: %w; the journal on its dataset says what was being done: run rollout repair %s", v.Vhost, u.Name, uerr, v.Vhost))
			}
		}
		res.RolledBack = true
		if v.UndoAny {
			return res, fmt.Errorf("%w; torn down again", err)
		}
		return res, fmt.Errorf("%w; back on %s", err, orDash(v.From))
	}
	res.OK = true
	if v.Done != "" {
		m.printf("%s\n", v.Done)
	} else if res.Downtime > 0 {
		health := ""
		if res.Health > 0 {
			health = fmt.Sprintf(", health %s", round(res.Health))
		}
		m.printf("%s: now on %s; downtime %s (stop %s, start %s incl. /etc %s%s)\n", v.Vhost, v.To,
			round(res.Downtime), round(res.Stop), round(res.Start), round(res.Etc), health)
	} else if hasStep(v.Steps, "start") {
		m.printf("%s: running on %s\n", v.Vhost, v.To)
	} else if hasStep(v.Steps, "stop") {
		m.printf("%s: stopped (on %s)\n", v.Vhost, orDash(v.To))
	} else {
		m.printf("%s: now on %s (not running: the next start uses it)\n", v.Vhost, v.To)
	}
	return res, nil
}

func round(d time.Duration) time.Duration { return d.Round(time.Millisecond) }

func hasStep(steps []Step, name string) bool {
	for _, s := range steps {
		if s.Name == name {
			return true
		}
	}
	return false
}
