package replicate

import (
	"strings"
	"testing"

	"github.com/rollout-dev/rollout/proto/zfs"
)

// created in the order 2, 10, 1, 9, 11, 12 (createtxg 5, 7, 12, 30, 31, 40): neither the names,
// as strings or numbers, nor the guids sort that way, and the list comes shuffled.
func shuffledMaster() MasterState {
	order := []struct {
		name string
		guid uint64
		txg  uint64
	}{{"9", 500, 30}, {"12", 200, 40}, {"1", 100, 12}, {"10", 600, 7}, {"11", 50, 31}, {"2", 300, 5}}
	var s []zfs.Snapshot
	for _, o := range order {
		s = append(s, zfs.Snapshot{Dataset: "zpool/proto/etc", Name: o.name, GUID: o.guid + 1, CreateTXG: o.txg},
			zfs.Snapshot{Dataset: "zpool/proto", Name: o.name, GUID: o.guid, CreateTXG: o.txg})
	}
	return MasterState{Dataset: "zpool/proto", Snapshots: s}
}

// slaveWith has the master's snapshots of the given names (their guids), with createtxgs of its
// own, also shuffled.
func slaveWith(m MasterState, names ...string) SlaveState {
	var have []zfs.Snapshot
	for _, n := range names {
		for _, x := range m.Snapshots {
			if x.Name == n {
				have = append(have, x)
			}
		}
	}
	s := slave(m, 0)
	s.Snapshots = replica("tank/proto", "zpool/proto", have)
	return s
}

// The base of an increment is the newest common snapshot in creation order: not the highest
// name, nor the highest guid.
func TestPlanBaseByCreationOrder(t *testing.T) {
	m := shuffledMaster()
	r := req
	r.Target = "12"
	p := mustPlan(t, m, slaveWith(m, "10", "9", "2", "1"), r)
	if p.Mode != ModeIncremental || p.Base != "zpool/proto@9" || p.Force || len(p.Destroys) != 0 {
		t.Fatalf("plan %+v, want an increment from @9", p)
	}
	if got := argv(p.SendArgv); got != "/sbin/zfs send -R -I @9 zpool/proto@12" {
		t.Errorf("send %q", got)
	}
	// to @11 from 2, 10, 1: the base is @1, made after @10
	r.Target = "11"
	p = mustPlan(t, m, slaveWith(m, "2", "10", "1"), r)
	if p.Base != "zpool/proto@1" || argv(p.SendArgv) != "/sbin/zfs send -R -I @1 zpool/proto@11" {
		t.Errorf("to @11 from 2,10,1: base %q, send %q; want @1", p.Base, argv(p.SendArgv))
	}
	// the slave has the first snapshot only: it is the base
	r.Target = "1"
	p = mustPlan(t, m, slaveWith(m, "2"), r)
	if p.Base != "zpool/proto@2" || argv(p.SendArgv) != "/sbin/zfs send -R -I @2 zpool/proto@1" {
		t.Errorf("to @1 from 2: base %q, send %q; want @2", p.Base, argv(p.SendArgv))
	}
	// the first snapshot as the target of a full send
	r.Target = "2"
	p = mustPlan(t, m, SlaveState{Dataset: "tank/proto"}, r)
	if p.Mode != ModeFull || argv(p.SendArgv) != "/sbin/zfs send -R zpool/proto@2" {
		t.Errorf("full to @2: %+v", p)
	}
	// the slave has @12, the newest: up to date at @11 and @12
	for _, target := range []string{"11", "12"} {
		r.Target = target
		if p := mustPlan(t, m, slaveWith(m, "2", "10", "1", "9", "11", "12"), r); p.Mode != ModeNone {
			t.Errorf("to @%s with all: mode %s", target, p.Mode)
		}
	}
}

// A slave snapshot the master has but that is newer than the target is outside the stream:
// receive -F would destroy it, so it needs --force; one no newer than the target is kept.
func TestPlanSendSetIsUpToTarget(t *testing.T) {
	m := shuffledMaster()
	r := req
	r.Target = "9"
	// the slave has 2, 10, 1 and 11 (made after 9): an increment 1 -> 9 with receive -F
	// would destroy @11
	msg := mustRefuse(t, m, slaveWith(m, "2", "10", "1", "11"), r, "tank/proto has snapshots newer than the base that the master lacks: @11")
	if strings.Contains(msg, "@10") || strings.Contains(msg, "@2,") {
		t.Errorf("refusal names snapshots before the base: %q", msg)
	}
	r.Force = true
	p := mustPlan(t, m, slaveWith(m, "2", "10", "1", "11"), r)
	if p.Base != "zpool/proto@1" || strings.Join(p.Destroys, " ") != "tank/proto@11 tank/proto/etc@11" {
		t.Errorf("forced: base %q, destroys %q", p.Base, p.Destroys)
	}
}

// newest picks the snapshot with the highest createtxg of the dataset, whatever the order.
func TestNewest(t *testing.T) {
	s := replica("tank/proto", "zpool/proto", shuffledMaster().Snapshots)
	if got := newest(s, "tank/proto"); got != "tank/proto@12" {
		t.Errorf("newest = %s, want tank/proto@12", got)
	}
	if got := newest(s, "tank/proto/etc"); got != "tank/proto/etc@12" {
		t.Errorf("newest etc = %s", got)
	}
	if got := newest(s, "tank/other"); got != "" {
		t.Errorf("newest of none = %q", got)
	}
}

// A child created after the prototype's first snapshot: its own first snapshot is the base
// of its completion, and a child whose first snapshot is the target cannot be completed.
// A child made after the target is not in the stream at all.
func TestPlanCompleteChildrenOfOtherAges(t *testing.T) {
	snap := func(ds, name string, guid, txg uint64) zfs.Snapshot {
		return zfs.Snapshot{Dataset: ds, Name: name, GUID: guid, CreateTXG: txg}
	}
	top := []zfs.Snapshot{snap("zpool/proto", "1", 11, 100), snap("zpool/proto", "2", 21, 200), snap("zpool/proto", "3", 31, 300),
		snap("zpool/proto", "4", 41, 400), snap("zpool/proto", "5", 51, 500)}
	etc := []zfs.Snapshot{snap("zpool/proto/etc", "2", 22, 200), snap("zpool/proto/etc", "3", 32, 300), // made at @2
		snap("zpool/proto/etc", "4", 42, 400), snap("zpool/proto/etc", "5", 52, 500)}
	later := []zfs.Snapshot{snap("zpool/proto/later", "4", 43, 400), snap("zpool/proto/later", "5", 53, 500)} // made at @4
	m := MasterState{Dataset: "zpool/proto", Snapshots: append(append(append([]zfs.Snapshot{}, top...), etc...), later...)}
	// the slave's top got @3, its etc only @2 (the first one etc has)
	s := slave(m, 0)
	s.Snapshots = replica("tank/proto", "zpool/proto", append(append([]zfs.Snapshot{}, top[:3]...), etc[0]))
	p := mustPlan(t, m, s, req)
	if p.Mode != ModeComplete || p.Base != "zpool/proto@2" || len(p.Steps) != 1 ||
		argv(p.Steps[0].SendArgv) != "/sbin/zfs send -I @2 zpool/proto/etc@3" || p.Steps[0].Dataset != "tank/proto/etc" {
		t.Fatalf("plan %+v, want etc completed from its first snapshot @2", p)
	}

	// a child whose first snapshot is the target (made at @3), not on the slave yet: sent
	// whole, on its own, after etc's increment
	fresh := []zfs.Snapshot{snap("zpool/proto/fresh", "3", 34, 300)}
	m.Snapshots = append(m.Snapshots, fresh...)
	p = mustPlan(t, m, s, req)
	if p.Mode != ModeComplete || p.Force || len(p.Steps) != 2 || p.Steps[1].Dataset != "tank/proto/fresh" ||
		argv(p.Steps[1].SendArgv) != "/sbin/zfs send -R zpool/proto/fresh@3" ||
		argv(p.Steps[1].ReceiveArgv) != "/sbin/zfs receive -s -u -o readonly=on -d tank" {
		t.Errorf("plan %+v, want etc completed and fresh sent whole", p)
	}
	// ... but one the slave has, empty (a full receive was cut and its partial state
	// discarded): only receive -F would take a full stream, so the -R stream's rules apply
	s.Filesystems = append(s.Filesystems, "tank/proto/fresh")
	p = mustPlan(t, m, s, req)
	if p.Mode != ModeIncremental || p.Steps != nil || argv(p.SendArgv) != "/sbin/zfs send -R -I @2 zpool/proto@3" || !p.Force {
		t.Errorf("plan %+v, want the whole stream from @2 again", p)
	}
}

// A resume plan does not know the size of what it sends.
func TestPlanResumeSizeUnknown(t *testing.T) {
	m := master("1", "2", "3")
	s := slave(m, 2)
	s.ResumeTokens = map[string]string{"tank/proto/etc": "1-abc-def-0123"}
	s.Tokens = map[string]TokenCheck{"tank/proto/etc": {Token: &ResumeToken{ToName: "zpool/proto/etc@3", ToGUID: 1005, FromGUID: 1003}}}
	if p := mustPlan(t, m, s, req); p.Mode != ModeResume || p.EstimatedBytes != -1 || p.Then == nil || p.Then.EstimatedBytes != -1 {
		t.Errorf("plan %+v, want estimated bytes -1", p)
	}
}

// A slave file system with no snapshots (not from the master) does not count as a modified
// replica, however much was written to it.
func TestPlanWrittenWithoutSnapshots(t *testing.T) {
	m := master("1", "2", "3")
	s := slave(m, 2)
	s.Filesystems = append(s.Filesystems, "tank/proto/scratch")
	s.Written["tank/proto/scratch"] = 4096
	p := mustPlan(t, m, s, req)
	if p.Mode != ModeIncremental || p.Force || strings.Contains(strings.Join(p.Reasons, " "), "modified") {
		t.Errorf("plan %+v, want a plain increment", p)
	}
}

// A vhost that uses both the top's and the child's snapshot is named once.
func TestPlanInUseNamesEachUserOnce(t *testing.T) {
	m := master("1", "2", "3")
	r := req
	r.Force = true
	s := slave(m, 2, zfs.Snapshot{Dataset: "tank/proto/etc", Name: "local", GUID: 78, CreateTXG: 800})
	s.InUse["tank/proto@local"] = []string{"tank/vhost1", "tank/vhost2"}
	s.InUse["tank/proto/etc@local"] = []string{"tank/vhost1"}
	mustRefuse(t, m, s, r, "tank/proto/etc@local (used by tank/vhost1, tank/vhost2)")
}

// The exact dry run of a resume: the discarded token's abort, the resumed one's check and
// pipeline, the mount, then the plan after it, indented; and a size of 0 bytes is shown.
func TestPlanRenderResumeAndComplete(t *testing.T) {
	m := master("1", "2", "3")
	s := slave(m, 2)
	s.ResumeTokens = map[string]string{"tank/proto": "1-abc-def-4567", "tank/proto/etc": "1-abc-def-0123"}
	s.Tokens = map[string]TokenCheck{
		"tank/proto":     {Err: "gone"},
		"tank/proto/etc": {Token: &ResumeToken{ToName: "zpool/proto/etc@3", ToGUID: 1005, FromGUID: 1003}},
	}
	r := req
	r.Force = true
	p := mustPlan(t, m, s, r)
	p.Then.EstimatedBytes = 0
	want := "slave2: resume interrupted receive\n" +
		"  # tank/proto: the master could not read its resume token: gone: discarding the partial receive (--force)\n" +
		"  # receive into tank/proto/etc was interrupted; resuming it first, then planning again\n" +
		"  slave2: /sbin/zfs receive -A tank/proto\n" +
		"  local:  /sbin/zfs send -n -v -t 1-abc-def-0123  # names zpool/proto/etc@3, guid checked\n" +
		"  local:  /sbin/zfs send -t 1-abc-def-0123 | slave2: /sbin/zfs receive -s -u tank/proto/etc\n" +
		"  slave2: /sbin/zfs mount DATASET, for each file system below tank/proto not yet mounted\n" +
		"  then, as it looks now (planned again after the resume):\n" +
		"  slave2: incremental zpool/proto@2 -> zpool/proto@3, about 0B\n" +
		"    # newest common snapshot (by guid): @2\n" +
		"    local:  /sbin/zfs send -R -I @2 zpool/proto@3   (flags: none: send_flags = \"none\")\n" +
		"    slave2: /sbin/zfs receive -s -u -d tank\n" +
		"    slave2: /sbin/zfs set readonly=on tank/proto\n" +
		"    slave2: /sbin/zfs mount DATASET, for each file system below tank/proto not yet mounted\n"
	if got := p.String(); got != want {
		t.Errorf("String():\n%s\nwant:\n%s", got, want)
	}

	// completing children: the mount follows the steps
	s = slave(m, 2)
	s.Snapshots = append(s.Snapshots, replica("tank/proto", "zpool/proto", m.Snapshots[4:5])...)
	p = mustPlan(t, m, s, req)
	if got := p.String(); !strings.HasSuffix(got, "/sbin/zfs receive -s -u tank/proto/etc\n"+
		"  (flags: none: send_flags = \"none\")\n"+
		"  slave2: /sbin/zfs mount DATASET, for each file system below tank/proto not yet mounted\n") {
		t.Errorf("complete String():\n%s", got)
	}
}
