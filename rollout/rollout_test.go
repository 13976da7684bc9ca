package rollout

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rollout-dev/rollout/proto/command"
	"github.com/rollout-dev/rollout/rollout/config"
)

// recorder is a command.Runner that records argv and answers from a table.
type recorder struct {
	mu    sync.Mutex
	calls []string
	out   map[string]string // quoted argv prefix -> stdout
	fail  map[string]string // quoted argv prefix -> stderr of a failure
	errs  map[string]error  // quoted argv prefix -> the error itself (a program that did not start)
	// hook, if set, runs first; handled: its err is the answer
	hook func(ctx context.Context, c command.Cmd) (handled bool, err error)
}

func (r *recorder) Host() string { return "test" }

func (r *recorder) Run(ctx context.Context, c command.Cmd) error {
	q := command.Quote(c.Argv)
	r.mu.Lock()
	r.calls = append(r.calls, q)
	r.mu.Unlock()
	if r.hook != nil {
		if handled, err := r.hook(ctx, c); handled {
			return err
		}
	}
	for k, err := range r.errs {
		if strings.HasPrefix(q, k) {
			return err
		}
	}
	for k, v := range r.fail {
		if strings.HasPrefix(q, k) {
			return &command.Error{Argv: c.Argv, ExitCode: 1, Stderr: v, Err: errors.New("exit status 1")}
		}
	}
	for k, v := range r.out {
		if strings.HasPrefix(q, k) && c.Stdout != nil {
			_, _ = io.WriteString(c.Stdout, v)
		}
	}
	return nil
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestJournalRoundTrip(t *testing.T) {
	j := &Journal{Op: "promote", From: "zpool/proto@1", To: "zpool/proto@2", Step: "switch", WasRunning: true}
	got, err := parseJournal(j.String())
	if err != nil || *got != *j {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	for _, s := range []string{"", "-", "none"} {
		if j, err := parseJournal(s); j != nil || err != nil {
			t.Errorf("parseJournal(%q) = %v %v", s, j, err)
		}
	}
	if _, err := parseJournal("op=promote garbage"); err == nil {
		t.Error("garbage accepted")
	}
}

func TestLoadStateAndCommit(t *testing.T) {
	r := &recorder{out: map[string]string{
		"/sbin/zfs get": "rollout:snapshot\tzpool/proto@2\nrollout:previous\tzpool/proto@1\nrollout:history\tnone\nrollout:pending\tnone\ncompression\tlz4\n",
	}}
	st, err := LoadState(context.Background(), r, "vhost1", "zpool/vhost1")
	if err != nil {
		t.Fatal(err)
	}
	if st.Snapshot != "zpool/proto@2" || st.Previous != "zpool/proto@1" || st.Pending != nil || len(st.History) != 0 {
		t.Fatalf("state %+v", st)
	}
	r.calls = nil
	if err := commit(context.Background(), r, st, "zpool/proto@3"); err != nil {
		t.Fatal(err)
	}
	want := "/sbin/zfs set rollout:history=zpool/proto@1 rollout:pending=none rollout:previous=zpool/proto@2 rollout:snapshot=zpool/proto@3 zpool/vhost1"
	if len(r.calls) != 1 || r.calls[0] != want {
		t.Fatalf("commit ran %q, want one transaction %q", r.calls, want)
	}
	// a corrupt property is refused, naming the vhost
	r.out["/sbin/zfs get"] = "rollout:snapshot\tzpool/proto@2;reboot\n"
	if _, err := LoadState(context.Background(), r, "vhost1", "zpool/vhost1"); err == nil || !strings.Contains(err.Error(), "vhost vhost1") {
		t.Fatalf("corrupt state: %v", err)
	}
	if st.Needed()[0] != "zpool/proto@2" || st.Needed()[1] != "zpool/proto@1" {
		t.Errorf("Needed = %v", st.Needed())
	}
}

// steps builds a vhost plan whose steps log their names and fail where told.
func steps(log *[]string, mu *sync.Mutex, vhost string, failAt string, names ...string) []Step {
	var s []Step
	for _, n := range names {
		s = append(s, Step{Name: n, run: func(context.Context) error {
			mu.Lock()
			*log = append(*log, vhost+":"+n)
			mu.Unlock()
			if n == failAt {
				return errors.New("boom")
			}
			return nil
		}})
	}
	return s
}

func TestExecuteUndoAfterFailedStart(t *testing.T) {
	var log []string
	var mu sync.Mutex
	vp := &VhostPlan{Vhost: "vhost1", From: "zpool/proto@1", To: "zpool/proto@2",
		Steps: steps(&log, &mu, "vhost1", "start", "hold", "journal", "stop", "fstab", "start", "commit"),
		Undo:  steps(&log, &mu, "vhost1-undo", "", "stop", "fstab", "start", "journal")}
	var out bytes.Buffer
	m := &Manager{Log: quietLog(), Out: &out, Cfg: &config.Config{StateDir: t.TempDir()}}
	res, err := m.Execute(context.Background(), &Plan{Vhosts: []*VhostPlan{vp}})
	if err == nil || !strings.Contains(err.Error(), "vhost vhost1: start failed: boom; back on zpool/proto@1") {
		t.Fatalf("err = %v", err)
	}
	want := "vhost1:hold vhost1:journal vhost1:stop vhost1:fstab vhost1:start vhost1-undo:stop vhost1-undo:fstab vhost1-undo:start vhost1-undo:journal"
	if strings.Join(log, " ") != want {
		t.Fatalf("ran %v\nwant %s", log, want)
	}
	if !res[0].RolledBack || res[0].OK {
		t.Fatalf("result %+v", res[0])
	}
}

func TestExecuteNoUndoBeforeStop(t *testing.T) {
	var log []string
	var mu sync.Mutex
	vp := &VhostPlan{Vhost: "vhost1", Steps: steps(&log, &mu, "vhost1", "hold", "hold", "journal", "stop"),
		Undo: steps(&log, &mu, "undo", "", "stop")}
	m := &Manager{Log: quietLog(), Cfg: &config.Config{StateDir: t.TempDir()}}
	if _, err := m.Execute(context.Background(), &Plan{Vhosts: []*VhostPlan{vp}}); err == nil {
		t.Fatal("no error")
	}
	if strings.Join(log, " ") != "vhost1:hold" {
		t.Fatalf("a failure before the jail stopped must not run undo: %v", log)
	}
}

func TestExecuteCanaryAndParallel(t *testing.T) {
	var log []string
	var mu sync.Mutex
	mk := func(name, failAt string) *VhostPlan {
		return &VhostPlan{Vhost: name, Steps: steps(&log, &mu, name, failAt, "stop", "start")}
	}
	m := &Manager{Log: quietLog(), Cfg: &config.Config{StateDir: t.TempDir()}}
	// failed canary: nobody else is touched
	res, err := m.Execute(context.Background(), &Plan{Vhosts: []*VhostPlan{mk("a", "start"), mk("b", ""), mk("c", "")}})
	if err == nil || strings.Join(log, " ") != "a:stop a:start" || !res[1].Skipped || !res[2].Skipped {
		t.Fatalf("canary: %v %v %+v", err, log, res)
	}
	// canary fine: the others run; one failure does not stop the rest, and is reported
	log = nil
	res, err = m.Execute(context.Background(), &Plan{Parallel: 2, Vhosts: []*VhostPlan{mk("a", ""), mk("b", "start"), mk("c", "")}})
	if err == nil || !strings.Contains(err.Error(), "vhost b: start failed") || strings.Contains(err.Error(), "vhost c") {
		t.Fatalf("err = %v", err)
	}
	if len(log) != 6 || log[0] != "a:stop" || log[1] != "a:start" || !res[0].OK || res[1].OK || !res[2].OK {
		t.Fatalf("ran %v, results %+v", log, res)
	}
}

// repair and boot: no canary. A vhost that cannot be repaired does not keep the others broken.
func TestExecuteIndependent(t *testing.T) {
	var log []string
	var mu sync.Mutex
	mk := func(name, failAt string) *VhostPlan {
		return &VhostPlan{Vhost: name, Steps: steps(&log, &mu, name, failAt, "conf", "stop", "fstab")}
	}
	m := &Manager{Log: quietLog(), Cfg: &config.Config{StateDir: t.TempDir()}}
	res, err := m.Execute(context.Background(), &Plan{Independent: true, Vhosts: []*VhostPlan{mk("a", "stop"), mk("b", ""), mk("c", "")}})
	if err == nil || !strings.Contains(err.Error(), "vhost a: stop failed") {
		t.Fatalf("err = %v", err)
	}
	if strings.Join(log, " ") != "a:conf a:stop b:conf b:stop b:fstab c:conf c:stop c:fstab" || res[1].Skipped || !res[1].OK || !res[2].OK {
		t.Fatalf("ran %v, results %+v", log, res)
	}
}

func TestPlanPrint(t *testing.T) {
	p := &Plan{Op: "promote zpool/proto@2 vhost1 vhost2", Checks: []string{"zpool/proto@2 exists"},
		Vhosts: []*VhostPlan{
			{Vhost: "vhost1", From: "zpool/proto@1", To: "zpool/proto@2", Steps: []Step{{Name: "stop", Cmds: []string{"jail -f /etc/jail.conf.d/vhost1.conf -r vhost1"}}},
				Undo: []Step{{Name: "start", Cmds: []string{"jail -c"}}}},
			{Vhost: "vhost2", Noop: "already on zpool/proto@2"}}}
	var b bytes.Buffer
	p.Print(&b)
	for _, want := range []string{"plan: promote", "checked: zpool/proto@2 exists", "vhost vhost1: zpool/proto@1 -> zpool/proto@2 (canary",
		"stop     jail -f /etc/jail.conf.d/vhost1.conf -r vhost1", "if the start or health check fails, back to zpool/proto@1", "vhost vhost2: nothing to do"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("plan output lacks %q:\n%s", want, b.String())
		}
	}
}

// Each thing status must flag is an attention reason; a vhost that is fine, or stopped on
// purpose, or not created yet, has none.
func TestStatusAttentionReasons(t *testing.T) {
	fine := VhostStatus{Vhost: "v", Snapshot: "zpool/proto@2", Held: true, Running: true, Boot: true, Fstab: "2"}
	for _, c := range []struct {
		edit func(*VhostStatus)
		want string
	}{
		{func(*VhostStatus) {}, ""},
		{func(s *VhostStatus) { s.Running, s.Boot = false, false }, ""},
		{func(s *VhostStatus) { *s = VhostStatus{Vhost: "v", Boot: true} }, ""},
		{func(s *VhostStatus) { s.Pending = "op=promote" }, "unfinished operation: op=promote (rollout repair v)"},
		{func(s *VhostStatus) { s.Held = false }, "snapshot zpool/proto@2 is not held"},
		{func(s *VhostStatus) { s.FstabProblem = "edited by hand" }, "fstab edited by hand"},
		{func(s *VhostStatus) { s.Running = false }, "not running, but to run (rollout start v)"},
		{func(s *VhostStatus) { s.UnsavedEtc = []string{"modified rc.conf", "added x"} }, "2 unsaved /etc edits (rollout etc diff v)"},
	} {
		s := fine
		c.edit(&s)
		s.attention()
		got := strings.Join(s.Attention, "; ")
		if s.Attention == nil || (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%+v: attention %q, want %q", s, got, c.want)
		}
	}
}

// prune keeps the newest keep snapshots, those a vhost needs and those anyone holds, and
// destroys the rest (oldest first), stopping at the first failure; a dry run destroys nothing.
func TestPrune(t *testing.T) {
	ctx := context.Background()
	// vhost1 runs on @1 (held by rollout); @3 is held by someone else (zfs hold -r: one hold on
	// each of its two datasets); keep 2: @4 and @5
	var snaps string
	for i, n := range []string{"1", "2", "3", "4", "5"} {
		refs := map[string]int{"1": 1, "3": 1}[n]
		snaps += fmt.Sprintf("zpool/proto@%s\t%d1\t%d0\t176400000%d\t0\t%d\nzpool/proto/etc@%s\t%d2\t%d0\t176400000%d\t0\t%d\n",
			n, i, i+1, i, refs, n, i, i+1, i, refs)
	}
	want := []PruneItem{
		{Snapshot: "zpool/proto@1", Reason: "a vhost runs on it or would roll back to it"},
		{Snapshot: "zpool/proto@2", Destroy: true, Reason: "old and unused"},
		{Snapshot: "zpool/proto@3", Reason: "held (2 holds)"},
		{Snapshot: "zpool/proto@4", Reason: "among the newest 2"},
		{Snapshot: "zpool/proto@5", Reason: "among the newest 2"},
	}
	destroys := func(fh *fakeHost) []string {
		var d []string
		for _, c := range fh.calls() {
			if strings.HasPrefix(c, "/sbin/zfs destroy") {
				d = append(d, c)
			}
		}
		return d
	}
	for _, dry := range []bool{true, false} {
		fh := newFakeHost(t, 1)
		fh.r.out[zfsListSnap] = snaps
		fh.r.out[zfsHolds] += "zpool/proto@3\tbackup\tThu Nov 26 10:00 2026\n"
		items, err := fh.m.Prune(ctx, 2, dry)
		if err != nil {
			t.Fatal(err)
		}
		w := slices.Clone(want)
		if !dry {
			w[1].Destroyed = true
		}
		if !slices.Equal(items, w) {
			t.Errorf("dry run %v: prune\n  %+v\nwant\n  %+v", dry, items, w)
		}
		if d, wd := destroys(fh), map[bool][]string{true: nil, false: {"/sbin/zfs destroy -r zpool/proto@2"}}[dry]; !slices.Equal(d, wd) {
			t.Errorf("dry run %v: ran %q, want %q", dry, d, wd)
		}
	}

	// keep 1 is the least; 0 is refused before anything is read
	fh := newFakeHost(t, 1)
	if _, err := fh.m.Prune(ctx, 0, true); err == nil || len(fh.calls()) != 0 {
		t.Errorf("keep 0: %v, ran %q", err, fh.calls())
	}
	fh.r.out[zfsListSnap] = snaps
	items, err := fh.m.Prune(ctx, 1, true)
	if err != nil || len(items) != 5 || items[3].Destroy != true || items[4].Reason != "among the newest 1" {
		t.Errorf("keep 1: %+v, %v", items, err)
	}

	// the first destroy that fails stops prune: what it was to destroy after it stays
	fh = newFakeHost(t, 1)
	fh.r.out[zfsListSnap] = snaps
	fh.r.fail = map[string]string{"/sbin/zfs destroy -r zpool/proto@2": "dataset is busy"}
	items, err = fh.m.Prune(ctx, 1, false)
	if err == nil || items[1].Destroyed || !strings.Contains(items[1].Error, "dataset is busy") || items[3].Destroyed ||
		!slices.Equal(destroys(fh), []string{"/sbin/zfs destroy -r zpool/proto@2"}) {
		t.Errorf("failed destroy: %+v, %v, ran %q", items, err, destroys(fh))
	}
}

// within sets a deadline only for a positive d, and names it when fn fails on it.
func TestWithin(t *testing.T) {
	ctx := context.Background()
	if err := within(ctx, 0, func(ctx context.Context) error {
		if _, ok := ctx.Deadline(); ok {
			return errors.New("a deadline with d 0")
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	// fn waits for the deadline (a few seconds at most, should it not come)
	wait := func(ctx context.Context) {
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Second):
		}
	}
	err := within(ctx, time.Millisecond, func(ctx context.Context) error { wait(ctx); return errors.New("jail -c: killed") })
	if err == nil || err.Error() != "jail -c: killed (gave up after 1ms)" {
		t.Errorf("failed on the deadline: %v", err)
	}
	if err := within(ctx, time.Millisecond, func(ctx context.Context) error { wait(ctx); return nil }); err != nil {
		t.Errorf("succeeded after the deadline: %v", err)
	}
	boom := errors.New("boom")
	if err := within(ctx, time.Hour, func(context.Context) error { return boom }); err != boom {
		t.Errorf("failed before the deadline: %v", err)
	}
}
