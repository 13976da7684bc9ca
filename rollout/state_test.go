package rollout

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/rollout-dev/rollout/rollout/config"
)

func TestParseJournalFields(t *testing.T) {
	for s, want := range map[string]Journal{
		"op=promote from=zpool/proto@1 to=zpool/proto@2 step=switch running=true": {Op: "promote", From: "zpool/proto@1", To: "zpool/proto@2", Step: "switch", WasRunning: true},
		"running=false to=zpool/proto@10 op=rollback":                             {Op: "rollback", To: "zpool/proto@10"},
		"op=promote to=zpool/proto@2 running=yes":                                 {Op: "promote", To: "zpool/proto@2"},
		"op=promote to=zpool/proto@2 later=field step=":                           {Op: "promote", To: "zpool/proto@2"},
		"  op=promote\tto=zpool/proto@2  ":                                        {Op: "promote", To: "zpool/proto@2"},
	} {
		j, err := parseJournal(s)
		if err != nil || j == nil || *j != want {
			t.Errorf("parseJournal(%q) = %+v, %v; want %+v", s, j, err, want)
		}
	}
	for s, want := range map[string]string{
		"op=promote from=zpool/proto@1":    "incomplete",
		"to=zpool/proto@2 step=switch":     "incomplete",
		"op= to=zpool/proto@2":             "incomplete",
		"op=promote to=zpool/proto@2 step": `field "step" has no '='`,
	} {
		if j, err := parseJournal(s); err == nil || j != nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), s) {
			t.Errorf("parseJournal(%q) = %+v, %v; want an error naming it with %q", s, j, err, want)
		}
	}
	j := &Journal{Op: "rollback", From: "a@1", To: "a@2", Step: "fstab"}
	if got := j.String(); got != "op=rollback from=a@1 to=a@2 step=fstab running=false" {
		t.Errorf("String() = %q", got)
	}
}

func TestStateOf(t *testing.T) {
	st, err := stateOf("vhost1", "zpool/vhost1", map[string]string{})
	if err != nil || st.Snapshot != "" || st.Previous != "" || st.History != nil || st.Pending != nil || !st.Boot ||
		st.Vhost != "vhost1" || st.Dataset != "zpool/vhost1" {
		t.Errorf("no properties: %+v, %v; want an empty state that boots", st, err)
	}
	st, err = stateOf("vhost1", "zpool/vhost1", map[string]string{
		propSnapshot: "zpool/proto@12", propPrevious: "none", propHistory: "zpool/proto@10,zpool/proto@9",
		propPending: "op=promote from=zpool/proto@12 to=zpool/proto@13 step=hold running=true", propBoot: "off",
	})
	if err != nil || st.Snapshot != "zpool/proto@12" || st.Previous != "" || st.Boot ||
		!reflect.DeepEqual(st.History, []string{"zpool/proto@10", "zpool/proto@9"}) ||
		st.Pending == nil || st.Pending.To != "zpool/proto@13" || !st.Pending.WasRunning {
		t.Errorf("state %+v (pending %+v), %v", st, st.Pending, err)
	}
	for _, h := range []string{"-", "none", ""} {
		if st, err := stateOf("v", "zpool/v", map[string]string{propHistory: h, propBoot: "on"}); err != nil || st.History != nil || !st.Boot {
			t.Errorf("history %q: %+v, %v; want none", h, st, err)
		}
	}
	for prop, bad := range map[string]string{
		propSnapshot: "zpool/proto@1;reboot",
		propPrevious: "zpool/proto",
		propHistory:  "zpool/proto@1,zpool/proto@2 3",
		propPending:  "op=promote",
	} {
		_, err := stateOf("vhost7", "zpool/vhost7", map[string]string{propSnapshot: "zpool/proto@1", prop: bad})
		if err == nil || !strings.Contains(err.Error(), "vhost vhost7: "+prop+" on zpool/vhost7") {
			t.Errorf("%s=%q: %v; want an error naming the vhost, property and dataset", prop, bad, err)
		}
	}
}

func snaps(from, to int) []string {
	var s []string
	for i := from; i >= to; i-- {
		s = append(s, fmt.Sprintf("zpool/proto@%d", i))
	}
	return s
}

// commit's one zfs set: the history keeps the previous snapshot first and at most 8 entries,
// without the new snapshot, the current one, duplicates or "none".
func TestCommitHistory(t *testing.T) {
	for _, c := range []struct {
		name string
		st   State
		to   string
		want string // the zfs set arguments
	}{
		{"first", State{}, "zpool/proto@1",
			"rollout:history=none rollout:pending=none rollout:previous=none rollout:snapshot=zpool/proto@1"},
		{"second", State{Snapshot: "zpool/proto@1"}, "zpool/proto@2",
			"rollout:history=none rollout:pending=none rollout:previous=zpool/proto@1 rollout:snapshot=zpool/proto@2"},
		{"same snapshot: only the journal closes", State{Snapshot: "zpool/proto@2", Previous: "zpool/proto@1"}, "zpool/proto@2",
			"rollout:pending=none"},
		{"7 kept: previous and 7 older make 8", State{Snapshot: "zpool/proto@10", Previous: "zpool/proto@9", History: snaps(8, 2)}, "zpool/proto@11",
			"rollout:history=" + strings.Join(snaps(9, 2), ",") + " rollout:pending=none rollout:previous=zpool/proto@10 rollout:snapshot=zpool/proto@11"},
		{"8 kept: the oldest goes", State{Snapshot: "zpool/proto@10", Previous: "zpool/proto@9", History: snaps(8, 1)}, "zpool/proto@11",
			"rollout:history=" + strings.Join(snaps(9, 2), ",") + " rollout:pending=none rollout:previous=zpool/proto@10 rollout:snapshot=zpool/proto@11"},
		{"rollback: the target and the current leave the history", State{Snapshot: "zpool/proto@12", Previous: "zpool/proto@11",
			History: []string{"zpool/proto@10", "zpool/proto@12", "none", "", "zpool/proto@10", "zpool/proto@9"}}, "zpool/proto@11",
			"rollout:history=zpool/proto@10,zpool/proto@9 rollout:pending=none rollout:previous=zpool/proto@12 rollout:snapshot=zpool/proto@11"},
		{"no previous", State{Snapshot: "zpool/proto@3", History: []string{"zpool/proto@1"}}, "zpool/proto@4",
			"rollout:history=zpool/proto@1 rollout:pending=none rollout:previous=zpool/proto@3 rollout:snapshot=zpool/proto@4"},
	} {
		r := &recorder{}
		st := c.st
		st.Dataset = "zpool/vhost1"
		hist := append([]string(nil), st.History...)
		if err := commit(context.Background(), r, &st, c.to); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if want := []string{"/sbin/zfs set " + c.want + " zpool/vhost1"}; !reflect.DeepEqual(r.calls, want) {
			t.Errorf("%s: ran\n%q\nwant\n%q", c.name, r.calls, want)
		}
		if !reflect.DeepEqual(st.History, hist) && (st.History != nil || hist != nil) {
			t.Errorf("%s: commit changed the state's history to %v", c.name, st.History)
		}
	}
}

func TestNeeded(t *testing.T) {
	for _, c := range []struct {
		st   State
		want []string
	}{
		{State{}, nil},
		{State{Snapshot: "zpool/proto@2"}, []string{"zpool/proto@2"}},
		{State{Snapshot: "none", Previous: "zpool/proto@1"}, []string{"zpool/proto@1"}},
		{State{Snapshot: "zpool/proto@2", Previous: "zpool/proto@1", History: []string{"zpool/proto@0"}},
			[]string{"zpool/proto@2", "zpool/proto@1"}},
		{State{Snapshot: "zpool/proto@2", Pending: &Journal{Op: "promote", From: "zpool/proto@2", To: "zpool/proto@3"}},
			[]string{"zpool/proto@2", "zpool/proto@2", "zpool/proto@3"}},
	} {
		if got := c.st.Needed(); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Needed(%+v) = %q, want %q", c.st, got, c.want)
		}
	}
}

// A commit whose zfs set failed, and whose properties cannot be read again, fails with both.
func TestCommitSwitchUnreadable(t *testing.T) {
	r := &recorder{fail: map[string]string{"/sbin/zfs set": "signal: terminated", "/sbin/zfs get": "I/O error"}}
	m := &Manager{R: r, Log: quietLog(), Cfg: &config.Config{}}
	st := &State{Vhost: "vhost1", Dataset: "zpool/vhost1", Snapshot: "zpool/proto@1"}
	err := m.commitSwitch(context.Background(), st, "zpool/proto@2")
	if err == nil || !strings.Contains(err.Error(), "signal: terminated") || !strings.Contains(err.Error(), "reading zpool/vhost1 again") ||
		!strings.Contains(err.Error(), "I/O error") {
		t.Errorf("commitSwitch = %v", err)
	}
	// read again, the properties name a different snapshot: the set's own error
	r = &recorder{fail: map[string]string{"/sbin/zfs set": "signal: terminated"},
		out: map[string]string{"/sbin/zfs get": "rollout:snapshot\tzpool/proto@3\nrollout:pending\tnone\n"}}
	m.R = r
	if err := m.commitSwitch(context.Background(), st, "zpool/proto@2"); err == nil || strings.Contains(err.Error(), "again") {
		t.Errorf("commitSwitch with other props = %v", err)
	}
}
