package rollout

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/rollout-dev/rollout/proto/command"
	"github.com/rollout-dev/rollout/rollout/config"
)

// switchPlan is vhost1's switch from @1 to @2: logged stand-ins for the steps before the
// commit, the real commit step, and logged undo steps.
func switchPlan(m *Manager, log *[]string, mu *sync.Mutex) *VhostPlan {
	st := &State{Vhost: "vhost1", Dataset: "zpool/vhost1", Snapshot: "zpool/proto@1"}
	v := &config.Vhost{Name: "vhost1", Dataset: "zpool/vhost1"}
	s := steps(log, mu, "vhost1", "", "hold", "journal", "stop", "fstab", "start")
	return &VhostPlan{Vhost: "vhost1", From: "zpool/proto@1", To: "zpool/proto@2",
		Steps: append(s, m.commitStep(v, st, "zpool/proto@2")),
		Undo:  steps(log, mu, "undo", "", "stop", "fstab", "start", "journal")}
}

const (
	committedProps = "rollout:snapshot\tzpool/proto@2\nrollout:previous\tzpool/proto@1\nrollout:history\tnone\nrollout:pending\tnone\n"
	pendingProps   = "rollout:snapshot\tzpool/proto@1\nrollout:previous\tnone\nrollout:history\tnone\nrollout:pending\top=promote from=zpool/proto@1 to=zpool/proto@2 step=switch running=true\n"
)

// Issue 8, finding 2: the commit's zfs set reported a failure (killed while it waited for the
// txg sync) although the kernel had made the change; the undo then put the jail back on @1
// while its properties said @2. Now the properties are read again: committed is success.
func TestCommitThatHappenedDespiteFailureIsSuccess(t *testing.T) {
	for _, c := range []struct {
		props     string
		committed bool
	}{{committedProps, true}, {pendingProps, false}} {
		r := &recorder{fail: map[string]string{"/sbin/zfs set": "signal: terminated"}, out: map[string]string{"/sbin/zfs get": c.props}}
		m := &Manager{R: r, Log: quietLog(), Cfg: &config.Config{StateDir: t.TempDir()}}
		var log []string
		var mu sync.Mutex
		res, err := m.Execute(context.Background(), &Plan{Vhosts: []*VhostPlan{switchPlan(m, &log, &mu)}})
		undone := strings.Contains(strings.Join(log, " "), "undo:")
		if c.committed && (err != nil || !res[0].OK || undone) {
			t.Errorf("zfs set failed but the props say committed: err %v, result %+v, ran %v; want success and no undo", err, res[0], log)
		}
		if !c.committed && (err == nil || res[0].OK || !undone || !res[0].RolledBack) {
			t.Errorf("zfs set failed and the props say not committed: err %v, result %+v, ran %v; want the undo", err, res[0], log)
		}
		if !strings.Contains(strings.Join(r.calls, "\n"), "/sbin/zfs get") {
			t.Errorf("the properties were not read again: %q", r.calls)
		}
	}
}

// Issue 8, finding 2: SIGINT/SIGTERM (the command's context cancelled) during the commit
// killed the zfs set; the commit now runs to its end whatever happens to the context.
func TestCommitNotCancelledByContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var sets []string
	r := &recorder{hook: func(ctx context.Context, c command.Cmd) (bool, error) {
		q := command.Quote(c.Argv)
		if !strings.HasPrefix(q, "/sbin/zfs set") {
			return false, nil
		}
		cancel() // the signal arrives while zfs set runs
		if err := ctx.Err(); err != nil {
			return true, err // as the runner's SIGTERM to a cancelled command ends it
		}
		sets = append(sets, q)
		return true, nil
	}, out: map[string]string{"/sbin/zfs get": pendingProps}}
	m := &Manager{R: r, Log: quietLog(), Cfg: &config.Config{StateDir: t.TempDir()}}
	var log []string
	var mu sync.Mutex
	res, err := m.Execute(ctx, &Plan{Vhosts: []*VhostPlan{switchPlan(m, &log, &mu)}})
	if err != nil || !res[0].OK || strings.Contains(strings.Join(log, " "), "undo:") {
		t.Fatalf("commit with the context cancelled: err %v, result %+v, ran %v", err, res[0], log)
	}
	want := "/sbin/zfs set rollout:history=none rollout:pending=none rollout:previous=zpool/proto@1 rollout:snapshot=zpool/proto@2 zpool/vhost1"
	if len(sets) != 1 || sets[0] != want {
		t.Errorf("commit ran %q, want %q", sets, want)
	}
	if !errors.Is(ctx.Err(), context.Canceled) {
		t.Error("the test's context was not cancelled")
	}
}
