package rollout

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rollout-dev/rollout/rollout/config"
)

// sleeper is a step that takes at least d.
func sleeper(name string, d time.Duration) Step {
	return Step{Name: name, run: func(context.Context) error { time.Sleep(d); return nil }}
}

// The exact printed plan of one vhost: no canary note for a single vhost, no undo header
// without undo steps, no "finally:" without final steps; both with them.
func TestPlanPrintExact(t *testing.T) {
	p := &Plan{Op: "stop vhost1", Vhosts: []*VhostPlan{{Vhost: "vhost1", From: "zpool/proto@1", To: "zpool/proto@1",
		Steps: []Step{{Name: "stop", Cmds: []string{"jail -r vhost1", "umount -a"}}}}}}
	var b bytes.Buffer
	p.Print(&b)
	want := "plan: stop vhost1\nvhost vhost1: zpool/proto@1 -> zpool/proto@1\n  stop     jail -r vhost1\n           umount -a\n"
	if b.String() != want {
		t.Errorf("Print:\n%q\nwant\n%q", b.String(), want)
	}
	p.Finally = []Step{{Name: "release", Cmds: []string{"zfs release"}}}
	p.Vhosts[0].Undo = []Step{{Name: "start", Cmds: []string{"jail -c"}}}
	b.Reset()
	p.Print(&b)
	want = "plan: stop vhost1\nvhost vhost1: zpool/proto@1 -> zpool/proto@1\n  stop     jail -r vhost1\n           umount -a\n" +
		"  if the start or health check fails, back to zpool/proto@1:\n  start    jail -c\nfinally:\n  release  zfs release\n"
	if b.String() != want {
		t.Errorf("Print:\n%q\nwant\n%q", b.String(), want)
	}
}

// An empty plan runs only its final steps; a final step's failure is the plan's error.
func TestExecuteFinally(t *testing.T) {
	m := &Manager{Log: quietLog(), Cfg: &config.Config{StateDir: t.TempDir()}}
	ran := 0
	ok := Step{Name: "release", run: func(context.Context) error { ran++; return nil }}
	res, err := m.Execute(context.Background(), &Plan{Finally: []Step{ok}})
	if err != nil || len(res) != 0 || ran != 1 {
		t.Errorf("empty plan: %+v, %v, final step ran %d times", res, err, ran)
	}
	bad := Step{Name: "release", run: func(context.Context) error { return errors.New("hold busy") }}
	vp := &VhostPlan{Vhost: "vhost1", Steps: []Step{ok}}
	res, err = m.Execute(context.Background(), &Plan{Vhosts: []*VhostPlan{vp}, Finally: []Step{bad, ok}})
	if err == nil || err.Error() != "hold busy" || !res[0].OK || ran != 3 {
		t.Errorf("failing final step: %+v, %v, ran %d", res, err, ran)
	}
}

// Downtime runs from the start of the stop to the end of the health check (or of the start,
// without one), and is printed with the health check's time only when there is one.
func TestExecuteDowntime(t *testing.T) {
	// slow steps before the stop and after the health check: far longer than any scheduling delay
	const d, slow = 20 * time.Millisecond, 300 * time.Millisecond
	for _, c := range []struct {
		name  string
		steps []Step
		out   string // printed, after "vhost1: "
	}{
		{"stop start health", []Step{sleeper("hold", slow), sleeper("stop", d), sleeper("start", d), sleeper("health", d), sleeper("commit", slow)}, "now on zpool/proto@2; downtime "},
		{"stop start", []Step{sleeper("hold", slow), sleeper("stop", d), sleeper("start", d), sleeper("commit", slow)}, "now on zpool/proto@2; downtime "},
		{"start only", []Step{sleeper("start", d)}, "running on zpool/proto@2\n"},
		{"stop only", []Step{sleeper("stop", d)}, "stopped (on zpool/proto@2)\n"},
		{"neither", []Step{sleeper("journal", d)}, "now on zpool/proto@2 (not running: the next start uses it)\n"},
	} {
		var out bytes.Buffer
		m := &Manager{Log: quietLog(), Out: &out, Cfg: &config.Config{StateDir: t.TempDir()}}
		vp := &VhostPlan{Vhost: "vhost1", From: "zpool/proto@1", To: "zpool/proto@2", Steps: c.steps}
		res, err := m.Execute(context.Background(), &Plan{Vhosts: []*VhostPlan{vp}})
		if err != nil || !res[0].OK {
			t.Fatalf("%s: %+v, %v", c.name, res, err)
		}
		r := res[0]
		if !strings.HasPrefix(out.String(), "vhost1: "+c.out) {
			t.Errorf("%s: printed %q, want %q", c.name, out.String(), c.out)
		}
		hasStop, hasHealth := hasStep(c.steps, "stop"), hasStep(c.steps, "health")
		if hasStop && hasStep(c.steps, "start") {
			if r.Downtime < r.Stop+r.Start+r.Health || r.Downtime < 2*d || r.Downtime >= slow+r.Stop+r.Start+r.Health {
				t.Errorf("%s: downtime %v, stop %v, start %v, health %v: want stop to the end of health or start, without hold or commit",
					c.name, r.Downtime, r.Stop, r.Start, r.Health)
			}
		} else if r.Downtime != 0 {
			t.Errorf("%s: downtime %v, want none", c.name, r.Downtime)
		}
		if hasHealth != strings.Contains(out.String(), ", health ") {
			t.Errorf("%s: printed %q: health shown %t, want %t", c.name, out.String(), !hasHealth, hasHealth)
		}
	}
}
