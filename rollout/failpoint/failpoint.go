// Package failpoint crashes rollout at a step boundary of a plan, so that the crash tests can
// prove that every boundary is repaired. It is armed only by the environment variable
// ROLLOUT_FAILPOINT, read once by the CLI; unset, a nil *Point does nothing.
//
// The value is WHEN:STEP[@TARGET][=ACTION]:
//
//	before:stop            kill -9 rollout just before the first "stop" step runs
//	after:fstab@vhost2     ... just after vhost2's "fstab" step
//	before:receive@slave2=pause
//
// ACTION is kill (SIGKILL to itself: no deferred code, no cleanup, as kill -9 from outside) or
// pause (SIGSTOP to itself, so that a test can cut the power while rollout is frozen there).
package failpoint

import (
	"fmt"
	"os"
	"strings"
	"syscall"

	"github.com/rollout-dev/rollout/proto/zfs"
)

// Env is the variable that arms a failpoint.
const Env = "ROLLOUT_FAILPOINT"

// Point is one armed failpoint.
type Point struct {
	When   string // before or after
	Step   string // a plan step's name: hold, journal, stop, fstab, start, health, commit, ...
	Target string // a vhost, slave or dataset; empty: any
	Action string // kill or pause
}

// Parse reads a failpoint; "" is none (nil, nil).
func Parse(s string) (*Point, error) {
	if s == "" {
		return nil, nil
	}
	p := &Point{Action: "kill"}
	rest := s
	if i := strings.LastIndexByte(rest, '='); i >= 0 {
		p.Action, rest = rest[i+1:], rest[:i]
	}
	hasTarget := false
	if i := strings.IndexByte(rest, '@'); i >= 0 {
		p.Target, rest, hasTarget = rest[i+1:], rest[:i], true
	}
	when, step, ok := strings.Cut(rest, ":")
	p.When, p.Step = when, step
	switch {
	case !ok || (when != "before" && when != "after"):
		return nil, fmt.Errorf("%s=%q: want before:STEP or after:STEP", Env, s)
	case zfs.ValidateComponent("step", step) != nil:
		return nil, fmt.Errorf("%s=%q: invalid step %q", Env, s, step)
	case hasTarget && zfs.ValidateComponent("target", p.Target) != nil:
		return nil, fmt.Errorf("%s=%q: invalid target %q", Env, s, p.Target)
	case p.Action != "kill" && p.Action != "pause":
		return nil, fmt.Errorf("%s=%q: action %q is neither kill nor pause", Env, s, p.Action)
	}
	return p, nil
}

// Matches says whether the point is armed for this boundary.
func (p *Point) Matches(when, step, target string) bool {
	return p != nil && p.When == when && p.Step == step && (p.Target == "" || p.Target == target)
}

// Hit crashes rollout when the point is armed for this boundary, and returns otherwise.
func (p *Point) Hit(when, step, target string) {
	if !p.Matches(when, step, target) {
		return
	}
	sig := syscall.SIGKILL
	if p.Action == "pause" {
		sig = syscall.SIGSTOP
	}
	fmt.Fprintf(os.Stderr, "rollout: failpoint %s:%s@%s: %s\n", when, step, target, p.Action)
	_ = syscall.Kill(os.Getpid(), sig)
	// SIGSTOP returns once continued; SIGKILL never does: a kill that did not take is a bug
	// in the test set-up, not something to run past
	if sig == syscall.SIGKILL {
		select {}
	}
}
