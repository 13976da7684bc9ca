package replicate

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/rollout-dev/rollout/proto/command"
	"github.com/rollout-dev/rollout/proto/zfs"
)

// snaps makes the snapshots of a recursive `zfs snapshot -r` for each name: the top dataset and
// its child etc, guids derived from guidBase so that master and slave copies can match or not.
func snaps(root string, guidBase uint64, names ...string) []zfs.Snapshot {
	var out []zfs.Snapshot
	for i, n := range names {
		txg := uint64(100 * (i + 1))
		out = append(out,
			zfs.Snapshot{Dataset: root, Name: n, GUID: guidBase + uint64(i)*2, CreateTXG: txg},
			zfs.Snapshot{Dataset: root + "/etc", Name: n, GUID: guidBase + uint64(i)*2 + 1, CreateTXG: txg})
	}
	return out
}

// replica returns the slave copies of master snapshots: same names and guids, the slave's own
// dataset names and createtxgs.
func replica(slaveRoot, masterRoot string, ms []zfs.Snapshot) []zfs.Snapshot {
	var out []zfs.Snapshot
	for _, s := range ms {
		s.Dataset = slaveRoot + strings.TrimPrefix(s.Dataset, masterRoot)
		s.CreateTXG += 7
		out = append(out, s)
	}
	return out
}

func master(names ...string) MasterState {
	return MasterState{Dataset: "zpool/proto", Snapshots: snaps("zpool/proto", 1000, names...)}
}

func slave(ms MasterState, upto int, extra ...zfs.Snapshot) SlaveState {
	have := replica("tank/proto", "zpool/proto", ms.Snapshots[:2*upto])
	return SlaveState{Dataset: "tank/proto", Exists: true, Filesystems: []string{"tank/proto", "tank/proto/etc"},
		Snapshots: append(have, extra...), Written: map[string]uint64{}, InUse: map[string][]string{}}
}

var req = Request{Slave: "slave2", Pool: "tank", Target: "3"}

func mustPlan(t *testing.T, m MasterState, s SlaveState, r Request) *Plan {
	t.Helper()
	p, err := MakePlan(m, s, r)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	return p
}

func mustRefuse(t *testing.T, m MasterState, s SlaveState, r Request, want ...string) string {
	t.Helper()
	p, err := MakePlan(m, s, r)
	var ref *Refused
	if !errors.As(err, &ref) {
		t.Fatalf("plan %+v, err %v: want a refusal", p, err)
	}
	msg := err.Error()
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("refusal %q lacks %q", msg, w)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("refusal is not one line: %q", msg)
	}
	return msg
}

func argv(a []string) string { return command.Quote(a) }

func TestPlanUpToDate(t *testing.T) {
	m := master("1", "2", "3")
	p := mustPlan(t, m, slave(m, 3), req)
	if p.Mode != ModeNone || p.SendArgv != nil {
		t.Errorf("plan %+v, want nothing to do", p)
	}
	if got := p.String(); got != "slave2: up to date at zpool/proto@3\n" {
		t.Errorf("String() = %q", got)
	}
	// an older target the slave has is also nothing to do
	r := req
	r.Target = "2"
	if p := mustPlan(t, m, slave(m, 3), r); p.Mode != ModeNone {
		t.Errorf("older target: mode %s", p.Mode)
	}
}

func TestPlanFull(t *testing.T) {
	m := master("1", "2", "3")
	s := SlaveState{Dataset: "tank/proto"}
	p := mustPlan(t, m, s, req)
	if p.Mode != ModeFull || p.Base != "" || p.Target != "zpool/proto@3" || p.Force {
		t.Errorf("plan %+v", p)
	}
	if got := argv(p.SendArgv); got != "/sbin/zfs send -R zpool/proto@3" {
		t.Errorf("send %q", got)
	}
	if got := argv(p.ReceiveArgv); got != "/sbin/zfs receive -s -u -o readonly=on -d tank" {
		t.Errorf("receive %q", got)
	}
	if got := argv(p.AfterArgv); got != "/sbin/zfs set readonly=on tank/proto" {
		t.Errorf("after %q", got)
	}
}

func TestPlanIncrementalFromNewestCommonByGUID(t *testing.T) {
	m := master("1", "2", "3", "4")
	p := mustPlan(t, m, slave(m, 2), req)
	if p.Mode != ModeIncremental || p.Base != "zpool/proto@2" || p.Force || len(p.Destroys) != 0 {
		t.Fatalf("plan %+v", p)
	}
	if got := argv(p.SendArgv); got != "/sbin/zfs send -R -I @2 zpool/proto@3" {
		t.Errorf("send %q", got)
	}
	if got := argv(p.ReceiveArgv); got != "/sbin/zfs receive -s -u -d tank" {
		t.Errorf("receive %q", got)
	}
	want := "slave2: incremental zpool/proto@2 -> zpool/proto@3\n" +
		"  # newest common snapshot (by guid): @2\n" +
		"  local:  /sbin/zfs send -R -I @2 zpool/proto@3   (flags: none: send_flags = \"none\")\n" +
		"  slave2: /sbin/zfs receive -s -u -d tank\n" +
		"  slave2: /sbin/zfs set readonly=on tank/proto\n" +
		"  slave2: /sbin/zfs mount DATASET, for each file system below tank/proto not yet mounted\n"
	if got := p.String(); got != want {
		t.Errorf("String():\n%s\nwant:\n%s", got, want)
	}

	// the slave lost @2 (destroyed there): the base is @1
	s := slave(m, 2)
	s.Snapshots = append(s.Snapshots[:2:2], zfs.Snapshot{Dataset: "tank/proto", Name: "old", GUID: 1, CreateTXG: 1})
	p = mustPlan(t, m, s, req)
	if p.Base != "zpool/proto@1" {
		t.Errorf("base %q, want zpool/proto@1", p.Base)
	}
}

func TestPlanDivergedByGUID(t *testing.T) {
	m := master("1", "2", "3")
	// the slave has a @3 of its own: same name, other guid
	own := []zfs.Snapshot{{Dataset: "tank/proto", Name: "3", GUID: 9, CreateTXG: 900}, {Dataset: "tank/proto/etc", Name: "3", GUID: 10, CreateTXG: 900}}
	s := slave(m, 2, own...)
	mustRefuse(t, m, s, req, "slave2: refusing", "diverged", "@3 (guid 9 on the slave, 1004 on the master)", "--force")

	r := req
	r.Force = true
	p := mustPlan(t, m, s, r)
	if p.Mode != ModeIncremental || !p.Force || argv(p.ReceiveArgv) != "/sbin/zfs receive -s -u -F -d tank" {
		t.Errorf("forced plan %+v", p)
	}
	if got := strings.Join(p.Destroys, " "); got != "tank/proto@3 tank/proto/etc@3" {
		t.Errorf("destroys %q", got)
	}
}

func TestPlanSlaveHasNewerSnapshots(t *testing.T) {
	m := master("1", "2", "3")
	s := slave(m, 2, zfs.Snapshot{Dataset: "tank/proto", Name: "local", GUID: 77, CreateTXG: 800})
	mustRefuse(t, m, s, req, "tank/proto has snapshots newer than the base that the master lacks: @local", "--force")

	r := req
	r.Force = true
	p := mustPlan(t, m, s, r)
	if !p.Force || strings.Join(p.Destroys, " ") != "tank/proto@local" {
		t.Errorf("forced plan %+v", p)
	}
}

// Never, even with --force: receive -F would destroy (or, while busy, rename) a snapshot that a
// slave vhost runs on or would roll back to.
func TestPlanInUseProtected(t *testing.T) {
	m := master("1", "2", "3")
	r := req
	r.Force = true

	s := slave(m, 2, zfs.Snapshot{Dataset: "tank/proto", Name: "local", GUID: 77, CreateTXG: 800},
		zfs.Snapshot{Dataset: "tank/proto/etc", Name: "local", GUID: 78, CreateTXG: 800})
	s.InUse["tank/proto@local"] = []string{"tank/vhost1"}
	// the child's snapshot is protected through the top's name: the vhost mounts both
	msg := mustRefuse(t, m, s, r, "tank/proto@local (used by tank/vhost1)", "tank/proto/etc@local (used by tank/vhost1)", "never, even with --force")
	if strings.Contains(msg, "--force would") {
		t.Errorf("refusal suggests --force: %q", msg)
	}

	// a slave-only child file system goes with -F, and so would a vhost's snapshot in it
	s = slave(m, 2)
	s.Filesystems = append(s.Filesystems, "tank/proto/usr")
	s.Snapshots = append(s.Snapshots, zfs.Snapshot{Dataset: "tank/proto/usr", Name: "1", GUID: 55, CreateTXG: 150})
	s.Written["tank/proto"] = 4096
	s.InUse["tank/proto/usr@1"] = []string{"tank/vhost2"}
	mustRefuse(t, m, s, r, "tank/proto/usr (used by tank/vhost2)")

	// in use but kept (older than the base, no -F): fine
	s = slave(m, 2)
	s.InUse["tank/proto@1"] = []string{"tank/vhost1"}
	if p := mustPlan(t, m, s, req); p.Mode != ModeIncremental {
		t.Errorf("plan %+v", p)
	}
}

func TestPlanModifiedReplica(t *testing.T) {
	m := master("1", "2", "3")
	s := slave(m, 2)
	s.Written["tank/proto/etc"] = 1536
	mustRefuse(t, m, s, req, "tank/proto/etc was modified since its newest snapshot (written=1536)", "--force")
	r := req
	r.Force = true
	if p := mustPlan(t, m, s, r); !p.Force || len(p.Destroys) != 0 {
		t.Errorf("forced plan %+v", p)
	}
}

func TestPlanNoCommonSnapshot(t *testing.T) {
	m := master("1", "2", "3")
	s := slave(m, 0, snaps("tank/proto", 5000, "1", "2")...)
	r := req
	r.Force = true // -F cannot receive a full stream over snapshots: refused all the same
	mustRefuse(t, m, s, r, "no snapshot in common", "zfs destroy -r tank/proto")
}

func TestPlanEmptyDatasetOnSlave(t *testing.T) {
	m := master("1", "2", "3")
	s := slave(m, 0)
	mustRefuse(t, m, s, req, "tank/proto exists on the slave but has no snapshots", "--force")
	r := req
	r.Force = true
	p := mustPlan(t, m, s, r)
	if p.Mode != ModeFull || argv(p.ReceiveArgv) != "/sbin/zfs receive -s -u -o readonly=on -F -d tank" {
		t.Errorf("forced plan %+v", p)
	}
}

func TestPlanResume(t *testing.T) {
	m := master("1", "2", "3")
	s := slave(m, 2)
	s.ResumeTokens = map[string]string{"tank/proto/etc": "1-abc-def-0123"}
	s.Tokens = map[string]TokenCheck{"tank/proto/etc": {Token: &ResumeToken{ToName: "zpool/proto/etc@3", ToGUID: 1005, FromGUID: 1003}}}
	p := mustPlan(t, m, s, req)
	if p.Mode != ModeResume || len(p.Resume) != 1 {
		t.Fatalf("plan %+v", p)
	}
	st := p.Resume[0]
	if argv(st.Check) != "/sbin/zfs send -n -v -t 1-abc-def-0123" || !strings.Contains(p.String(), "local:  /sbin/zfs send -n -v -t 1-abc-def-0123  # names zpool/proto/etc@3, guid checked\n") {
		t.Errorf("check %q, dry run:\n%s", st.Check, p)
	}
	if argv(st.SendArgv) != "/sbin/zfs send -t 1-abc-def-0123" || argv(st.ReceiveArgv) != "/sbin/zfs receive -s -u tank/proto/etc" || st.Rollback != nil {
		t.Errorf("resume step %+v", st)
	}
	if p.Then == nil || p.Then.Mode != ModeIncremental || p.Then.Base != "zpool/proto@2" {
		t.Errorf("then %+v", p.Then)
	}

	// a modified replica cannot resume; --force rolls it back first, keeping the partial state
	s.Written["tank/proto/etc"] = 512
	mustRefuse(t, m, s, req, "tank/proto/etc was modified since tank/proto/etc@2", "--force rolls it back")
	r := req
	r.Force = true
	p = mustPlan(t, m, s, r)
	if got := argv(p.Resume[0].Rollback); got != "/sbin/zfs rollback tank/proto/etc@2" {
		t.Errorf("rollback %q", got)
	}

	// a full receive cut short (the dataset has no snapshot yet): its `written` is the partial
	// receive itself, and it resumes without --force (found in the lab: a first replication
	// cut in a child refused for ever, "modified and has no snapshot to roll back to")
	s = slave(m, 2)
	s.Snapshots = slices.DeleteFunc(s.Snapshots, func(x zfs.Snapshot) bool { return x.Dataset == "tank/proto/etc" })
	s.ResumeTokens = map[string]string{"tank/proto/etc": "1-abc-def-0123"}
	s.Tokens = map[string]TokenCheck{"tank/proto/etc": {Token: &ResumeToken{ToName: "zpool/proto/etc@1", ToGUID: 1001}}}
	s.Written["tank/proto/etc"] = 4 << 20
	if p := mustPlan(t, m, s, req); p.Mode != ModeResume || len(p.Resume) != 1 || p.Resume[0].Rollback != nil || p.Resume[0].SendArgv == nil {
		t.Errorf("plan %+v", p)
	}
}

// After a resumed child (etc got @3 through zfs send -t) the top still lacks @3: only the top
// is sent, from its own @2; no -F, and etc's @3 is not sent again.
func TestPlanCompletesInterruptedStream(t *testing.T) {
	m := master("1", "2", "3")
	s := slave(m, 2)
	s.Snapshots = append(s.Snapshots, replica("tank/proto", "zpool/proto", m.Snapshots[5:6])...) // etc@3
	p := mustPlan(t, m, s, req)
	if p.Mode != ModeComplete || p.Force || len(p.Steps) != 1 || argv(p.Steps[0].SendArgv) != "/sbin/zfs send -I @2 zpool/proto@3" ||
		argv(p.Steps[0].ReceiveArgv) != "/sbin/zfs receive -s -u tank/proto" {
		t.Errorf("plan %+v", p)
	}
	// a child with a snapshot the master lacks cannot be completed on its own: the -R stream
	// with -F, which would destroy it, so only with --force
	s.Snapshots = append(s.Snapshots, zfs.Snapshot{Dataset: "tank/proto/etc", Name: "old", GUID: 3, CreateTXG: 2})
	mustRefuse(t, m, s, req, "would destroy tank/proto/etc@old", "--force")
}

// The case: the slave had @1; a -R -I @1 @3 stream was cut after the top's @2, before
// etc got anything. Every dataset is completed from its own newest snapshot, without --force;
// a plain run used to refuse ("etc lacks @2, the base of the increment") for ever.
func TestPlanCutAfterTopsFirstIncrement(t *testing.T) {
	m := master("1", "2", "3")
	s := slave(m, 1)
	s.Snapshots = append(s.Snapshots, replica("tank/proto", "zpool/proto", m.Snapshots[2:3])...) // proto@2
	p := mustPlan(t, m, s, req)
	if p.Mode != ModeComplete || p.Force || p.Base != "zpool/proto@2" || len(p.Steps) != 2 {
		t.Fatalf("plan %+v", p)
	}
	want := []string{"/sbin/zfs send -I @2 zpool/proto@3", "/sbin/zfs send -I @1 zpool/proto/etc@3"}
	for i, st := range p.Steps {
		if argv(st.SendArgv) != want[i] {
			t.Errorf("step %d: %s, want %s", i, argv(st.SendArgv), want[i])
		}
	}
	// a first (full) stream cut after the top: etc is not on the slave and is sent whole,
	// with the stream flags of the plan
	s = slave(m, 0)
	s.Filesystems = []string{"tank/proto"}
	s.Snapshots = replica("tank/proto", "zpool/proto", []zfs.Snapshot{m.Snapshots[0], m.Snapshots[2], m.Snapshots[4]})
	p = mustPlan(t, m, s, req)
	if p.Mode != ModeComplete || len(p.Steps) != 1 || argv(p.Steps[0].SendArgv) != "/sbin/zfs send -R zpool/proto/etc@3" {
		t.Fatalf("plan %+v", p)
	}
	// a modified child is not completed behind the admin's back: refused as before
	s = slave(m, 1)
	s.Snapshots = append(s.Snapshots, replica("tank/proto", "zpool/proto", m.Snapshots[2:3])...)
	s.Written["tank/proto/etc"] = 4096
	mustRefuse(t, m, s, req, "tank/proto/etc was modified")
	// even datasets (both at @1): one -R -I stream, which slaves can share
	s = slave(m, 1)
	if p := mustPlan(t, m, s, req); p.Mode != ModeIncremental || p.Steps != nil || p.Force {
		t.Errorf("even copy: plan %+v", p)
	}
}

// The top got the target through a resumed stream, the child did not: not up to date; the
// stream from the snapshot before completes it.
func TestPlanTopHasTargetChildLacksIt(t *testing.T) {
	m := master("1", "2", "3")
	s := slave(m, 2)
	s.Snapshots = append(s.Snapshots, replica("tank/proto", "zpool/proto", m.Snapshots[4:5])...) // proto@3 only
	p := mustPlan(t, m, s, req)
	if p.Mode != ModeComplete || p.Base != "zpool/proto@2" || p.Force || p.SendArgv != nil || len(p.Steps) != 1 {
		t.Fatalf("plan %+v", p)
	}
	if st := p.Steps[0]; st.Dataset != "tank/proto/etc" || argv(st.SendArgv) != "/sbin/zfs send -I @2 zpool/proto/etc@3" || argv(st.ReceiveArgv) != "/sbin/zfs receive -s -u tank/proto/etc" {
		t.Errorf("step %+v", st)
	}
	if !strings.Contains(p.String(), "local:  /sbin/zfs send -I @2 zpool/proto/etc@3 | slave2: /sbin/zfs receive -s -u tank/proto/etc") {
		t.Errorf("dry run:\n%s", p)
	}
	// a child that lacks every earlier snapshot too: the whole -R stream again, with -F
	s.Snapshots = slices.DeleteFunc(s.Snapshots, func(x zfs.Snapshot) bool { return x.Dataset == "tank/proto/etc" })
	if p := mustPlan(t, m, s, req); p.Mode != ModeIncremental || !p.Force || len(p.Destroys) != 0 {
		t.Errorf("plan %+v", p)
	}
}

// --force allows -F; it does not use it when a plain receive does the job, so a slave's older
// snapshots (which a vhost may run on) are kept.
func TestPlanForceOnlyWhenNeeded(t *testing.T) {
	m := master("2", "3")
	m.Snapshots = snaps("zpool/proto", 1002, "2", "3") // @1 pruned on the master
	s := slave(master("1", "2", "3"), 2)
	s.InUse["tank/proto@1"] = []string{"tank/vhost1"}
	r := req
	r.Force = true
	p := mustPlan(t, m, s, r)
	if p.Mode != ModeIncremental || p.Force || len(p.Destroys) != 0 || argv(p.ReceiveArgv) != "/sbin/zfs receive -s -u -d tank" {
		t.Errorf("plan %+v", p)
	}
}

func TestPlanUnknownTarget(t *testing.T) {
	m := master("1", "2")
	mustRefuse(t, m, slave(m, 1), req, "the master has no snapshot zpool/proto@3")
}

func TestSlaveDataset(t *testing.T) {
	for _, c := range [][3]string{{"zpool/proto", "tank", "tank/proto"}, {"zpool/jails/proto", "zpool", "zpool/jails/proto"}} {
		if got := SlaveDataset(c[0], c[1]); got != c[2] {
			t.Errorf("SlaveDataset(%q, %q) = %q, want %q", c[0], c[1], got, c[2])
		}
	}
}

// The slave chooses the resume token, and zfs send -t sends whatever snapshot of the master's
// pool has its toguid: only a token naming this dataset's own snapshot, by guid, is resumed.
func TestPlanResumeTokenMustNamePrototypeSnapshot(t *testing.T) {
	m := master("1", "2", "3")
	withToken := func(tc TokenCheck, tok string) SlaveState {
		s := slave(m, 2)
		s.ResumeTokens = map[string]string{"tank/proto/etc": tok}
		s.Tokens = map[string]TokenCheck{"tank/proto/etc": tc}
		return s
	}
	const tok = "1-f00-e0-789c63"
	tokenFor := func(name string, to, from uint64) TokenCheck {
		return TokenCheck{Token: &ResumeToken{ToName: name, ToGUID: to, FromGUID: from}}
	}

	// another dataset of the master's pool: refused, naming the slave and the token's toname
	for _, name := range []string{"zpool/secret@x", "zpool/proto@3", "zpool/protox/etc@3", "zpool/proto/etc"} {
		msg := mustRefuse(t, m, withToken(tokenFor(name, 1005, 0), tok), req, "slave2: refusing", "names "+name+", not a snapshot of zpool/proto/etc", "zfs receive -A tank/proto/etc on slave2")
		if strings.Contains(msg, tok) {
			t.Errorf("refusal shows the token: %q", msg)
		}
	}
	// the right name, another guid (a snapshot elsewhere in the pool): refused
	mustRefuse(t, m, withToken(tokenFor("zpool/proto/etc@3", 4242, 1003), tok), req, "names zpool/proto/etc@3 with guid 4242, but the master's has guid 1005")
	// not decoded, or not a token at all: refused, and the odd token is never run
	mustRefuse(t, m, withToken(TokenCheck{Err: "exit status 255"}, tok), req, "the master could not read its resume token")
	mustRefuse(t, m, withToken(TokenCheck{}, "1-0-0-0; rm -rf /"), req, `receive_resume_token "1-0-0-0; rm -rf /" is not a resume token`)

	// --force discards the partial receive instead: nothing is sent from the token
	r := req
	r.Force = true
	p := mustPlan(t, m, withToken(tokenFor("zpool/secret@x", 1005, 0), tok), r)
	if st := p.Resume[0]; st.SendArgv != nil || st.Check != nil || argv(st.Abort) != "/sbin/zfs receive -A tank/proto/etc" {
		t.Errorf("forced step %+v", st)
	}
	if strings.Contains(p.String(), "send -t") || !strings.Contains(p.String(), "slave2: /sbin/zfs receive -A tank/proto/etc\n") {
		t.Errorf("dry run:\n%s", p)
	}
	// a token whose snapshot (or base) is gone on the master is stale: discarded, as before
	for _, tc := range []TokenCheck{tokenFor("zpool/proto/etc@9", 1, 0), tokenFor("zpool/proto/etc@3", 1005, 77), {Err: "cannot resume send: resume token is corrupt"}} {
		p := mustPlan(t, m, withToken(tc, tok), req)
		if st := p.Resume[0]; st.SendArgv != nil || st.Abort == nil {
			t.Errorf("stale token %+v: step %+v", tc, st)
		}
	}
	// the matching token resumes; a full stream's token has no fromguid
	p = mustPlan(t, m, withToken(tokenFor("zpool/proto/etc@3", 1005, 0), tok), req)
	if st := p.Resume[0]; argv(st.SendArgv) != "/sbin/zfs send -t "+tok || st.Abort != nil {
		t.Errorf("step %+v", st)
	}
}

// OpenZFS prints the token's nvlist for zfs send -n -v -t, before it fails on a snapshot that
// is gone (example output as libzfs_sendrecv.c and nvlist_print write it).
func TestParseTokenContents(t *testing.T) {
	out := "resume token contents:\nnvlist version: 0\n\tfromguid = 0x595d9f81aa9dddab\n\tobject = 0x1\n\toffset = 0x0\n" +
		"\tbytes = 0x0\n\ttoguid = 0x854f02a2dd32cf0d\n\ttoname = pool1/test@b\n\tredact_snaps = \n\t\ttoname = nested@x\n" +
		"incremental\tpool1/test@a\tpool1/test@b\t4096\nsize\t4096\n"
	tok, err := ParseTokenContents([]byte(out))
	if err != nil || tok != (ResumeToken{ToName: "pool1/test@b", ToGUID: 0x854f02a2dd32cf0d, FromGUID: 0x595d9f81aa9dddab}) {
		t.Errorf("ParseTokenContents = %+v, %v", tok, err)
	}
	if _, err := ParseTokenContents([]byte("cannot resume send: resume token is corrupt\n")); err == nil {
		t.Error("no contents accepted")
	}
	if _, err := ParseTokenContents([]byte("resume token contents:\nnvlist version: 0\n\ttoname = a@b\n\ttoguid = banana\n")); err == nil {
		t.Error("bad guid accepted")
	}
	for tok, ok := range map[string]bool{"1-bf31b879a-b8-789c6360": true, "1-abc": false, "1-a-b-c d": false, "1-a-b-'x'": false, "": false, "1-A-B-C": false} {
		if (ValidToken(tok) == nil) != ok {
			t.Errorf("ValidToken(%q): %v", tok, ValidToken(tok))
		}
	}
	// up to 64 KiB is a token; the error quotes at most 40 characters of what it refuses
	long := "1-a-b-" + strings.Repeat("c", maxToken-6)
	if err := ValidToken(long); err != nil {
		t.Errorf("a token of %d characters: %v", len(long), err)
	}
	if err := ValidToken(long + "c"); err == nil || !strings.Contains(err.Error(), `"1-a-b-cccccccccccccccccccccccccccccccccc..."`) {
		t.Errorf("a token of %d characters: %v", len(long)+1, err)
	}
	forty := "1-a-b-" + strings.Repeat("Z", 34)
	if err := ValidToken(forty); err == nil || !strings.Contains(err.Error(), `"`+forty+`" is not`) {
		t.Errorf("40 characters: %v", err)
	}
}

// TestParseInUseAsRolloutWritesIt: the slave's listing as `rollout create` and a promote cut
// short leave it (previous and pending "none" until set), not only the properties that name
// snapshots. A slave running vhosts made every replication fail on "none" before.
func TestParseInUseAsRolloutWritesIt(t *testing.T) {
	out := "zpool/vhost3\trollout:snapshot\tzpool/proto@1\n" +
		"zpool/vhost3\trollout:previous\tnone\n" +
		"zpool/vhost3\trollout:pending\tnone\n" +
		"zpool/vhost4\trollout:snapshot\tzpool/proto@1\n" +
		"zpool/vhost4\trollout:previous\t-\n" +
		"zpool/vhost4\trollout:pending\top=promote from=zpool/proto@1 to=zpool/proto@2 step=start running=true\n" +
		"zpool/vhost5\trollout:snapshot\tzpool/proto@2\n" +
		"zpool/vhost5\trollout:previous\tzpool/proto@1\n" +
		"zpool/vhost5\trollout:pending\top=create from=none to=zpool/proto@2 step=fstab running=false\n"
	use, err := ParseInUse([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"zpool/proto@1": {"zpool/vhost3", "zpool/vhost4", "zpool/vhost5"},
		"zpool/proto@2": {"zpool/vhost4", "zpool/vhost5"},
	}
	if !reflect.DeepEqual(use, want) {
		t.Fatalf("ParseInUse = %v, want %v", use, want)
	}
	for _, bad := range []string{"zpool/vhost3\trollout:previous\tproto1\n", "zpool/vhost3\trollout:pending\top=promote from=x to=zpool/proto@2\n"} {
		if _, err := ParseInUse([]byte(bad)); err == nil {
			t.Errorf("ParseInUse(%q) accepted a value that is not a snapshot", bad)
		}
	}
}
