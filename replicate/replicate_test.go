package replicate

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rollout-dev/rollout/proto/command"
	"github.com/rollout-dev/rollout/proto/zfs"
)

// fakeHost answers zfs commands from a script, as a test double for a host's zfs: listing
// commands print canned output, zfs send writes a deterministic stream, zfs receive reads its
// stdin (and can be told to fail, or to exit 0, part-way). It records every command it ran.
type fakeHost struct {
	name      string
	outputs   map[string]string // command line -> stdout; "ERR:msg" fails (1), "EXIT:N:msg" exits N
	failAfter int64             // receive fails after this many bytes; <0 never
	quitAfter int64             // receive exits 0 after this many bytes; 0 never
	stream    []byte            // what zfs send writes
	// onReceive replaces outputs once a receive has read its whole stream: what the
	// host then lists
	onReceive map[string]string
	// onRun replaces outputs once the command line it is keyed by has run (as zfs receive -A
	// takes a resume token away), a receive once it has read its whole stream
	onRun map[string]map[string]string
	// afterSend, when set, ends zfs send once its stream is written: a send that fails late, or
	// stalls until it is cancelled
	afterSend func(ctx context.Context) error

	mu       sync.Mutex
	ran      []string
	received [][32]byte
}

func (h *fakeHost) Host() string { return h.name }

func (h *fakeHost) Run(ctx context.Context, c command.Cmd) error {
	line := command.Quote(c.Argv)
	h.mu.Lock()
	h.ran = append(h.ran, line)
	h.mu.Unlock()
	fail := func(msg string) error {
		return &command.Error{Host: h.name, Argv: c.Argv, ExitCode: 1, Stderr: msg, Err: fmt.Errorf("exit status 1")}
	}
	switch {
	case strings.HasPrefix(line, "/sbin/zfs send ") && !strings.HasPrefix(line, "/sbin/zfs send -n "):
		_, err := c.Stdout.Write(h.stream)
		if err == nil && h.afterSend != nil {
			err = h.afterSend(ctx)
		}
		return err
	case strings.HasPrefix(line, "/sbin/zfs receive") && !strings.HasPrefix(line, "/sbin/zfs receive -A"):
		if h.failAfter >= 0 {
			io.CopyN(io.Discard, c.Stdin, h.failAfter)
			return fail("cannot receive incremental stream: checksum mismatch")
		}
		if h.quitAfter > 0 {
			io.CopyN(io.Discard, c.Stdin, h.quitAfter)
			return nil
		}
		// a stream that ends in an error is not received, as zfs receive fails on a cut stream
		s := sha256.New()
		if _, err := io.Copy(s, c.Stdin); err != nil {
			return err
		}
		var sum [32]byte
		copy(sum[:], s.Sum(nil))
		h.mu.Lock()
		h.received = append(h.received, sum)
		for k, v := range h.onReceive {
			h.outputs[k] = v
		}
		for k, v := range h.onRun[line] {
			h.outputs[k] = v
		}
		h.mu.Unlock()
		return nil
	}
	h.mu.Lock()
	if rec := h.outputs["record"]; strings.HasPrefix(line, "/sbin/zfs set 'rollout:replicated:") && rec != "" {
		h.mu.Unlock()
		if strings.HasPrefix(rec, "ERR:") {
			return fail(strings.TrimPrefix(rec, "ERR:"))
		}
		return nil
	}
	out, ok := h.outputs[line]
	for k, v := range h.onRun[line] {
		h.outputs[k] = v
	}
	h.mu.Unlock()
	if !ok && line == command.Quote(recordsArgv("zpool/proto")) {
		ok = true // no slave recorded on the master, unless the test says
	}
	if !ok {
		return fail("fake: unexpected command " + line)
	}
	if strings.HasPrefix(out, "ERR:") {
		return fail(strings.TrimPrefix(out, "ERR:"))
	}
	if rest, ok := strings.CutPrefix(out, "EXIT:"); ok {
		code, msg, _ := strings.Cut(rest, ":")
		n, _ := strconv.Atoi(code)
		return &command.Error{Host: h.name, Argv: c.Argv, ExitCode: n, Stderr: msg, Err: fmt.Errorf("exit status %d", n)}
	}
	if c.Stdout != nil {
		io.WriteString(c.Stdout, out)
	}
	return nil
}

func (h *fakeHost) commands() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.ran...)
}

const listSnaps = "/sbin/zfs list -H -p -t snapshot -o name,guid,createtxg,creation,used,userrefs -s createtxg -r "

func snapLines(root string, guidBase uint64, names ...string) string {
	var b strings.Builder
	for _, s := range snaps(root, guidBase, names...) {
		fmt.Fprintf(&b, "%s\t%d\t%d\t1700000000\t0\t0\n", s.FullName(), s.GUID, s.CreateTXG)
	}
	return b.String()
}

func slaveHost(name string, have ...string) *fakeHost {
	h := &fakeHost{name: name, failAfter: -1, outputs: map[string]string{
		command.Quote(inUseArgv("tank")):       "tank/vhost1\trollout:snapshot\ttank/proto@1\n",
		"/sbin/zfs set readonly=on tank/proto": "",
		command.Quote(mountListArgv()): "tank\tno\ton\tnone\ntank/proto\tno\ton\t/jail/proto\n" +
			"tank/proto/etc\tno\ton\t/jail/proto/etc\ntank/vhost1\tno\toff\tnone\n",
		"/sbin/zfs mount tank/proto":                       "",
		"/sbin/zfs mount tank/proto/etc":                   "",
		command.Quote(lockArgv(DefaultStateDir + "/lock")): "",
	}, onReceive: map[string]string{
		// the stream brings the target, zpool/proto@3 (guids as snapLines gives the master's)
		listSnaps + "tank/proto": snapLines("tank/proto", 1000, "1", "2", "3"),
	}}
	if len(have) == 0 {
		h.outputs[listSnaps+"tank/proto"] = "ERR:cannot open 'tank/proto': dataset does not exist"
		h.outputs[command.Quote(stateArgv("tank/proto"))] = "ERR:cannot open 'tank/proto': dataset does not exist"
	} else {
		h.outputs[listSnaps+"tank/proto"] = snapLines("tank/proto", 1000, have...)
		h.outputs[command.Quote(stateArgv("tank/proto"))] = "tank/proto\treceive_resume_token\t-\ntank/proto\twritten\t0\n" +
			"tank/proto/etc\treceive_resume_token\t-\ntank/proto/etc\twritten\t0\n"
	}
	return h
}

// Four slaves: two need the same increment (one zfs send feeds both), one is up to date, and one
// fails part-way through the shared stream; the others still get every byte, and the error
// names the failed slave.
func TestRunSharesSendAndIsolatesFailures(t *testing.T) {
	stream := randomBytes(5<<20 + 99)
	want := sha256.Sum256(stream)
	local := &fakeHost{name: "local", failAfter: -1, stream: stream, outputs: map[string]string{
		"/sbin/zfs list -H -o name -t filesystem -r zpool/proto": "zpool/proto\nzpool/proto/etc\n",
		listSnaps + "zpool/proto":                                snapLines("zpool/proto", 1000, "1", "2", "3"),
		"/sbin/zfs send -n -v -P -R -I @2 zpool/proto@3":         "incremental\t2\tzpool/proto@3\t5243000\nsize\t5243000\n",
		"/sbin/zfs send -n -v -P -R zpool/proto@3":               "full\tzpool/proto@3\t9000000\nsize\t9000000\n",
		"record": "yes", // rollout:replicated:SLAVE is set
		// s3 got @3 (guid 1004) in an earlier run; s1 has an older record
		command.Quote(recordsArgv("zpool/proto")): "mountpoint\t/jail/proto\nrollout:replicated:s3\t1700000000 zpool/proto@3 1004\n" +
			"rollout:replicated:s1\t1700000000 zpool/proto@2 1002\n",
	}}
	s1, s2, s3, bad, fresh := slaveHost("s1", "1", "2"), slaveHost("s2", "1", "2"), slaveHost("s3", "1", "2", "3"), slaveHost("bad", "1", "2"), slaveHost("fresh")
	bad.failAfter = 2 << 20
	var slaves []Slave
	for _, h := range []*fakeHost{s1, s2, s3, bad, fresh} {
		slaves = append(slaves, Slave{Name: h.name, Runner: h, Pool: "tank"})
	}
	rep := &Replicator{Local: local, Dataset: "zpool/proto"}
	results, err := rep.Run(context.Background(), slaves, Options{})
	if err == nil || !strings.Contains(err.Error(), "bad: ") || strings.Contains(err.Error(), "s1") || strings.Contains(err.Error(), "\n") {
		t.Errorf("error %v, want one line naming only slave bad", err)
	}

	sends := 0
	for _, c := range local.commands() {
		if strings.HasPrefix(c, "/sbin/zfs send -R") {
			sends++
		}
	}
	if sends != 2 { // one shared incremental, one full
		t.Errorf("%d zfs send processes, want 2: %q", sends, local.commands())
	}
	for _, h := range []*fakeHost{s1, s2, fresh} {
		if len(h.received) != 1 || h.received[0] != want {
			t.Errorf("%s did not receive the whole stream", h.name)
		}
	}
	if !contains(fresh.commands(), "/sbin/zfs receive -s -u -o readonly=on -d tank") || !contains(s1.commands(), "/sbin/zfs receive -s -u -d tank") {
		t.Errorf("receive commands: fresh %q, s1 %q", fresh.commands(), s1.commands())
	}
	if !contains(s1.commands(), "/sbin/zfs set readonly=on tank/proto") || contains(bad.commands(), "/sbin/zfs set readonly=on tank/proto") {
		t.Errorf("readonly=on should follow successful receives only")
	}
	// received replicas are mounted, parents first; a failed or up-to-date slave is left alone
	for _, h := range []*fakeHost{s1, s2, fresh} {
		c := h.commands()
		if !contains(c, "/sbin/zfs mount tank/proto") || !contains(c, "/sbin/zfs mount tank/proto/etc") || slices.Index(c, "/sbin/zfs mount tank/proto") > slices.Index(c, "/sbin/zfs mount tank/proto/etc") {
			t.Errorf("%s: mounts %q", h.name, c)
		}
	}
	for _, h := range []*fakeHost{s3, bad} {
		if contains(h.commands(), "/sbin/zfs mount tank/proto") {
			t.Errorf("%s: mounted", h.name)
		}
	}
	if len(s3.received) != 0 {
		t.Errorf("up-to-date slave received a stream")
	}
	byName := map[string]Result{}
	for _, r := range results {
		byName[r.Slave] = r
	}
	if r := byName["s1"]; r.Mode != ModeIncremental || r.Base != "zpool/proto@2" || r.Target != "zpool/proto@3" || r.Bytes != int64(len(stream)) || r.Error != "" {
		t.Errorf("s1 result %+v", r)
	}
	if r := byName["s1"]; strings.Join(r.SharedWith, " ") != "s2 bad" || strings.Join(r.Mounted, " ") != "tank/proto tank/proto/etc" {
		t.Errorf("s1 result %+v", r)
	}
	if r := byName["s3"]; r.Mode != ModeNone || r.Error != "" {
		t.Errorf("s3 result %+v", r)
	}
	if r := byName["bad"]; !strings.Contains(r.Error, "checksum mismatch") {
		t.Errorf("bad result %+v", r)
	}
	// the master records each slave that received the target, and no other (s3 has its record)
	records := map[string]string{}
	for _, c := range local.commands() {
		if rest, ok := strings.CutPrefix(c, "/sbin/zfs set 'rollout:replicated:"); ok {
			slave, val, _ := strings.Cut(rest, "=")
			records[slave] = val
		}
	}
	if len(records) != 3 || records["s1"] == "" || records["s2"] == "" || records["fresh"] == "" {
		t.Errorf("records %q, want s1, s2 and fresh", records)
	}
	for slave, val := range records {
		// guid 1004: the third snapshot of snapLines("zpool/proto", 1000, ...)
		if f := strings.Fields(strings.TrimSuffix(val, "' zpool/proto")); len(f) != 3 || f[1] != "zpool/proto@3" || f[2] != "1004" {
			t.Errorf("%s: recorded %q, want UNIX-TIME zpool/proto@3 1004 on zpool/proto", slave, val)
		}
	}
}

// A slave whose receive worked but whose replication cannot be recorded on the master fails,
// naming both; the plan shows the zfs set.
func TestRunRecordFailure(t *testing.T) {
	local := &fakeHost{name: "local", failAfter: -1, stream: randomBytes(1000), outputs: map[string]string{
		"/sbin/zfs list -H -o name -t filesystem -r zpool/proto": "zpool/proto\nzpool/proto/etc\n",
		listSnaps + "zpool/proto":                                snapLines("zpool/proto", 1000, "1", "2", "3"),
		"/sbin/zfs send -n -v -P -R -I @2 zpool/proto@3":         "size\t1000\n",
		"record": "ERR:cannot set property for 'zpool/proto': pool is read-only",
	}}
	s1 := slaveHost("s1", "1", "2")
	rep := &Replicator{Local: local, Dataset: "zpool/proto"}
	plans, err := rep.Plan(context.Background(), []Slave{{Name: "s1", Runner: s1, Pool: "tank"}}, Options{})
	if err != nil || len(plans) != 1 {
		t.Fatalf("plan: %v %v", plans, err)
	}
	if rec := command.Quote(plans[0].RecordArgv); !strings.HasPrefix(rec, "/sbin/zfs set 'rollout:replicated:s1=") || !strings.HasSuffix(rec, " zpool/proto@3 1004' zpool/proto") ||
		!strings.Contains(plans[0].String(), "local:  "+rec+"\n") {
		t.Errorf("plan record %q in\n%s", rec, plans[0].String())
	}
	if len(s1.received) != 0 || slices.ContainsFunc(local.commands(), func(c string) bool { return strings.HasPrefix(c, "/sbin/zfs set") }) {
		t.Errorf("planning received or recorded something")
	}
	results, err := rep.Run(context.Background(), []Slave{{Name: "s1", Runner: s1, Pool: "tank"}}, Options{})
	if err == nil || !strings.Contains(err.Error(), "s1: received, but recording it on zpool/proto: ") || !strings.Contains(err.Error(), "read-only") ||
		len(results) != 1 || results[0].Error == "" || len(s1.received) != 1 {
		t.Errorf("results %+v, err %v", results, err)
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// A mountpoint that some other file system is mounted on is never mounted over.
func TestMountReplicaRefusesCoveredMountpoint(t *testing.T) {
	h := &fakeHost{name: "s1", failAfter: -1, outputs: map[string]string{
		command.Quote(mountListArgv()): "zpool\tno\ton\tnone\nzpool/proto\tyes\ton\t/jail/proto\n" +
			"tank\tno\ton\tnone\ntank/proto\tno\ton\t/jail/proto\ntank/proto/etc\tyes\ton\t/x\ntank/proto/lib\tno\tnoauto\t/y\n",
	}}
	mounted, err := mountReplica(context.Background(), h, "tank/proto")
	if err == nil || !strings.Contains(err.Error(), "s1: tank/proto: received, but not mounted: its mountpoint /jail/proto is in use by zpool/proto") || len(mounted) != 0 {
		t.Errorf("mounted %q, err %v", mounted, err)
	}
	for _, c := range h.commands() {
		if strings.HasPrefix(c, "/sbin/zfs mount") {
			t.Errorf("ran %s", c)
		}
	}
}

// A zfs list line that is not name, mounted, canmount, mountpoint stops the mounts, named; blank
// lines are skipped.
func TestMountReplicaBadListLine(t *testing.T) {
	h := &fakeHost{name: "s1", failAfter: -1, outputs: map[string]string{
		command.Quote(mountListArgv()): "tank\tno\ton\tnone\n\ntank/proto\tno\t/jail/proto\n",
	}}
	mounted, err := mountReplica(context.Background(), h, "tank/proto")
	if err == nil || err.Error() != `s1: unexpected zfs list line "tank/proto\tno\t/jail/proto"` || len(mounted) != 0 {
		t.Errorf("mounted %q, err %v", mounted, err)
	}
}

// A resume whose snapshot is gone on the master is recognised however the failure reached us:
// from the dry run directly, or wrapped in the receive's error after the send failed.
func TestStaleResume(t *testing.T) {
	send := &command.Error{Host: "local", Argv: []string{"zfs", "send", "-t", "1-x"}, ExitCode: 255,
		Stderr: "cannot resume send: 'zpool/proto@3' used in the initial send no longer exists\n", Err: fmt.Errorf("exit status 255")}
	recv := &command.Error{Host: "slave1", Argv: []string{"zfs", "receive"}, ExitCode: 1,
		Err: fmt.Errorf("stdin: %w", fmt.Errorf("/sbin/zfs send failed: %w", send))}
	for _, err := range []error{send, recv, fmt.Errorf("slave1: %w", recv)} {
		if !staleResume(err) {
			t.Errorf("not seen as stale: %v", err)
		}
	}
	other := &command.Error{Host: "slave1", Argv: []string{"zfs", "receive"}, ExitCode: 1, Stderr: "cannot receive: checksum mismatch", Err: fmt.Errorf("exit status 1")}
	if staleResume(other) || staleResume(nil) {
		t.Error("a checksum error is not a stale token")
	}
}

func masterHost(stream []byte) *fakeHost {
	return &fakeHost{name: "local", failAfter: -1, stream: stream, outputs: map[string]string{
		"/sbin/zfs list -H -o name -t filesystem -r zpool/proto": "zpool/proto\nzpool/proto/etc\n",
		listSnaps + "zpool/proto":                                snapLines("zpool/proto", 1000, "1", "2", "3"),
		"/sbin/zfs send -n -v -P -R -I @2 zpool/proto@3":         "size\t5243000\n",
		"record": "ok", // rollout:replicated:SLAVE is set
	}}
}

// In a shared stream, a receiver that reads half and exits 0 has not received it: that slave
// fails, and gets neither readonly nor a mount; the others, fed from the same send, succeed.
// A receiver that took every byte but whose slave lacks the target afterwards (over SSH, bytes
// the slave never read look sent) fails the same way.
func TestRunEarlyExitReceiverFails(t *testing.T) {
	stream := randomBytes(3<<20 + 7)
	local := masterHost(stream)
	good, quit, lost := slaveHost("good", "1", "2"), slaveHost("quit", "1", "2"), slaveHost("lost", "1", "2")
	quit.quitAfter = int64(len(stream) / 2)
	lost.onReceive = nil // took it all, has nothing to show for it
	var slaves []Slave
	for _, h := range []*fakeHost{good, quit, lost} {
		slaves = append(slaves, Slave{Name: h.name, Runner: h, Pool: "tank"})
	}
	results, err := (&Replicator{Local: local, Dataset: "zpool/proto"}).Run(context.Background(), slaves, Options{})
	if err == nil || strings.Contains(err.Error(), "good") || !strings.Contains(err.Error(), "quit: zfs receive exited before the end of the stream") ||
		!strings.Contains(err.Error(), "lost: zfs receive exited 0, but tank/proto/etc@3 is not there") {
		t.Errorf("error %v", err)
	}
	for _, r := range results {
		if (r.Error == "") != (r.Slave == "good") || len(r.SharedWith) != 2 {
			t.Errorf("result %+v", r)
		}
	}
	for _, h := range []*fakeHost{quit, lost} {
		for _, c := range h.commands() {
			if strings.HasPrefix(c, "/sbin/zfs set readonly") || strings.HasPrefix(c, "/sbin/zfs mount") {
				t.Errorf("%s: ran %s on an incomplete replica", h.name, c)
			}
		}
	}
	if c := good.commands(); !contains(c, "/sbin/zfs set readonly=on tank/proto") || !contains(c, "/sbin/zfs mount tank/proto") {
		t.Errorf("good: %q", c)
	}
}

// The token is decoded on the master (zfs send -n -v -t) before anything is sent from it: a
// token naming a snapshot outside the prototype is refused and nothing is sent; one naming
// the prototype's snapshot by guid resumes.
func TestRunResumeChecksTokenOnMaster(t *testing.T) {
	const tok = "1-c49b979a2-e0-789c6360"
	contents := func(name string, guid uint64) string {
		return fmt.Sprintf("resume token contents:\nnvlist version: 0\n\tfromguid = %#x\n\tobject = 0x1\n\toffset = 0x0\n\tbytes = 0x0\n\ttoguid = %#x\n\ttoname = %s\n", 1003, guid, name)
	}
	for _, c := range []struct {
		name, toname string
		guid         uint64
		want         string // "" resumes
	}{
		{"foreign", "zpool/secret@x", 1005, "slave2: refusing to replicate: tank/proto/etc: its resume token names zpool/secret@x, not a snapshot of zpool/proto/etc; fix: zfs receive -A tank/proto/etc on slave2"},
		{"other guid", "zpool/proto/etc@3", 31337, "names zpool/proto/etc@3 with guid 31337, but the master's has guid 1005"},
		{"matching", "zpool/proto/etc@3", 1005, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			stream := randomBytes(4096)
			local := masterHost(stream)
			local.outputs["/sbin/zfs send -n -v -t "+tok] = contents(c.toname, c.guid)
			local.outputs["/sbin/zfs send -n -v -P -t "+tok] = contents(c.toname, c.guid) + "size\t4096\n"
			h := slaveHost("slave2", "1", "2")
			h.outputs[command.Quote(stateArgv("tank/proto"))] = "tank/proto\treceive_resume_token\t-\ntank/proto\twritten\t0\n" +
				"tank/proto/etc\treceive_resume_token\t" + tok + "\ntank/proto/etc\twritten\t0\n"
			h.onReceive[command.Quote(stateArgv("tank/proto"))] = "tank/proto\treceive_resume_token\t-\ntank/proto\twritten\t0\n" +
				"tank/proto/etc\treceive_resume_token\t-\ntank/proto/etc\twritten\t0\n"
			results, err := (&Replicator{Local: local, Dataset: "zpool/proto"}).Run(context.Background(), []Slave{{Name: "slave2", Runner: h, Pool: "tank"}}, Options{})
			if !contains(local.commands(), "/sbin/zfs send -n -v -t "+tok) {
				t.Errorf("token not decoded: %q", local.commands())
			}
			if c.want != "" {
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Errorf("error %v, want %q", err, c.want)
				}
				for _, cmd := range local.commands() {
					if cmd == "/sbin/zfs send -t "+tok || strings.HasPrefix(cmd, "/sbin/zfs send -R") {
						t.Errorf("sent: %s", cmd)
					}
				}
				return
			}
			if err != nil || len(results) != 1 || !contains(local.commands(), "/sbin/zfs send -t "+tok) || strings.Join(results[0].Resumed, " ") != "tank/proto/etc" {
				t.Errorf("err %v, result %+v, ran %q", err, results[0], local.commands())
			}
		})
	}
}

// A slave where a promote is under way (its journal, rollout:pending, goes from @2 to @local)
// or where rollout runs (its lock is held) is not replicated to: the journal's snapshots are in
// use, and receive -F would destroy @local, even with --force.
func TestPlanSlaveJournalAndLock(t *testing.T) {
	local := masterHost(nil)
	h := slaveHost("slave2", "1", "2")
	h.outputs[listSnaps+"tank/proto"] = snapLines("tank/proto", 1000, "1", "2") + "tank/proto@local\t77\t900\t1700000000\t0\t0\n"
	h.outputs[command.Quote(inUseArgv("tank"))] = "tank/vhost1\trollout:snapshot\ttank/proto@1\n" +
		"tank/vhost2\trollout:pending\top=promote from=tank/proto@2 to=tank/proto@local step=jail-start running=true\n"
	rep := &Replicator{Local: local, Dataset: "zpool/proto"}
	slaves := []Slave{{Name: "slave2", Runner: h, Pool: "tank"}}
	_, err := rep.Plan(context.Background(), slaves, Options{Force: true})
	if err == nil || !strings.Contains(err.Error(), "tank/proto@local (used by tank/vhost2)") {
		t.Errorf("journal: error %v", err)
	}

	// rollout holds its lock on the slave (lockf -t 0 gives up: EX_TEMPFAIL)
	h = slaveHost("slave2", "1", "2")
	h.outputs[command.Quote(lockArgv("/var/db/rollout/lock"))] = "EXIT:75:"
	slaves = []Slave{{Name: "slave2", Runner: h, Pool: "tank", StateDir: "/var/db/rollout"}}
	_, err = rep.Plan(context.Background(), slaves, Options{Force: true})
	if err == nil || !strings.Contains(err.Error(), "slave2: refusing to replicate: rollout is running on the slave (its lock /var/db/rollout/lock is held)") {
		t.Errorf("lock: error %v", err)
	}
	if !contains(h.commands(), "/usr/bin/lockf -k -s -t 0 /var/db/rollout/lock /usr/bin/true") {
		t.Errorf("ran %q", h.commands())
	}
	// no state_dir on the slave: no rollout ever ran there
	h.outputs[command.Quote(lockArgv("/var/db/rollout/lock"))] = "EXIT:73:lockf: cannot open /var/db/rollout/lock: No such file or directory"
	if ps, err := rep.Plan(context.Background(), slaves, Options{}); err != nil || ps[0].Mode != ModeIncremental {
		t.Errorf("no state_dir: %v", err)
	}
	// any other failure of the check is an error, not a pass
	h.outputs[command.Quote(lockArgv("/var/db/rollout/lock"))] = "EXIT:127:lockf: not found"
	if _, err := rep.Plan(context.Background(), slaves, Options{}); err == nil || !strings.Contains(err.Error(), "checking rollout's lock /var/db/rollout/lock") {
		t.Errorf("lockf missing: %v", err)
	}
}

func TestReplicatedProp(t *testing.T) {
	if p, err := ReplicatedProp("Slave-2.dc1"); err != nil || p != "rollout:replicated:slave-2.dc1" {
		t.Errorf("ReplicatedProp = %q, %v", p, err)
	}
	if _, err := ReplicatedProp(strings.Repeat("s", 240)); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("long name: %v", err)
	}
	// the longest property ZFS takes, 255 characters, is accepted; one more is not
	longest := strings.Repeat("s", zfs.MaxNameLen-len(PropReplicatedPrefix))
	if p, err := ReplicatedProp(longest); err != nil || len(p) != zfs.MaxNameLen {
		t.Errorf("255 characters: %q, %v", p, err)
	}
	if _, err := ReplicatedProp(longest + "s"); err == nil || !strings.Contains(err.Error(), "longer than 255") {
		t.Errorf("256 characters: %v", err)
	}
	l, err := ParseReplicated("rollout:replicated:slave2", "1700000000 zpool/proto@5 18446744073709551615")
	if err != nil || l.Slave != "slave2" || l.Time.Unix() != 1700000000 || l.Snapshot != "zpool/proto@5" || l.GUID != 18446744073709551615 {
		t.Errorf("parse: %+v %v", l, err)
	}
	for _, v := range []string{"", "1700000000 zpool/proto@5", "x zpool/proto@5 1", "1 zpool/proto 1", "1 zpool/proto@5 -1"} {
		if _, err := ParseReplicated("rollout:replicated:slave2", v); err == nil || !strings.Contains(err.Error(), "rollout:replicated:slave2") {
			t.Errorf("%q: %v", v, err)
		}
	}
}

// A run cut after its receive (before readonly, the mounts or the record): the next plain run
// finds the slave up to date and does only what was left, sending nothing. A slave that is up
// to date and finished, with its record, is left alone.
func TestRunFinishesRunCutAfterReceive(t *testing.T) {
	master := func(records string) *fakeHost {
		return &fakeHost{name: "local", failAfter: -1, outputs: map[string]string{
			"/sbin/zfs list -H -o name -t filesystem -r zpool/proto": "zpool/proto\nzpool/proto/etc\n",
			listSnaps + "zpool/proto":                                snapLines("zpool/proto", 1000, "1", "2", "3"),
			command.Quote(recordsArgv("zpool/proto")):                records,
			"record": "yes",
		}}
	}
	recorded := "rollout:replicated:s\t1700000000 zpool/proto@3 1004\n"
	state := func(readonly, mounted string) string {
		var b strings.Builder
		for _, fs := range []string{"tank/proto", "tank/proto/etc"} {
			fmt.Fprintf(&b, "%s\treceive_resume_token\t-\n%s\twritten\t0\n%s\treadonly\t%s\n%s\tmounted\t%s\n%s\tcanmount\ton\n%s\tmountpoint\t/jail/proto%s\n",
				fs, fs, fs, readonly, fs, mounted, fs, fs, strings.TrimPrefix(fs, "tank/proto"))
		}
		return b.String()
	}
	for _, c := range []struct {
		name, readonly, mounted, records string
		want                             []string // commands run on the slave after planning
		record                           bool
	}{
		{"cut before readonly", "off", "no", "", []string{"/sbin/zfs set readonly=on tank/proto", "/sbin/zfs mount tank/proto", "/sbin/zfs mount tank/proto/etc"}, true},
		{"cut before the mounts", "on", "no", "", []string{"/sbin/zfs set readonly=on tank/proto", "/sbin/zfs mount tank/proto", "/sbin/zfs mount tank/proto/etc"}, true},
		{"cut before the record", "on", "yes", "", nil, true},
		{"finished", "on", "yes", recorded, nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			local := master(c.records)
			s := slaveHost("s", "1", "2", "3")
			s.outputs[command.Quote(stateArgv("tank/proto"))] = state(c.readonly, c.mounted)
			res, err := (&Replicator{Local: local, Dataset: "zpool/proto"}).Run(context.Background(), []Slave{{Name: "s", Runner: s, Pool: "tank"}}, Options{})
			if err != nil || len(res) != 1 || res[0].Mode != ModeNone {
				t.Fatalf("run: %v %+v", err, res)
			}
			var after []string
			for _, cmd := range s.commands() {
				if strings.HasPrefix(cmd, "/sbin/zfs set ") || strings.HasPrefix(cmd, "/sbin/zfs mount ") || strings.HasPrefix(cmd, "/sbin/zfs receive") {
					after = append(after, cmd)
				}
			}
			if strings.Join(after, "\n") != strings.Join(c.want, "\n") {
				t.Errorf("slave ran %q, want %q", after, c.want)
			}
			rec := slices.ContainsFunc(local.commands(), func(cmd string) bool { return strings.HasPrefix(cmd, "/sbin/zfs set 'rollout:replicated:s=") })
			if rec != c.record {
				t.Errorf("recorded %v, want %v: %q", rec, c.record, local.commands())
			}
			for _, cmd := range local.commands() {
				if strings.HasPrefix(cmd, "/sbin/zfs send") {
					t.Errorf("sent: %s", cmd)
				}
			}
		})
	}
}

// status reads every slave's record from the master's prototype, by slave name; a record that
// does not parse, or a failed read, is an error naming the dataset.
func TestLastReplications(t *testing.T) {
	h := &fakeHost{name: "local", failAfter: -1, outputs: map[string]string{
		command.Quote(recordsArgv("zpool/proto")): "rollout:snapshot\tzpool/proto@3\n" +
			"rollout:replicated:s2\t1700000200 zpool/proto@3 1004\n" +
			"rollout:replicated:s10\t1700000100 zpool/proto@2 1003\n",
	}}
	last, err := LastReplications(context.Background(), h, "zpool/proto")
	if err != nil || len(last) != 2 || last[0].Slave != "s10" || last[0].Snapshot != "zpool/proto@2" || last[0].Time.Unix() != 1700000100 ||
		last[1].Slave != "s2" || last[1].GUID != 1004 {
		t.Errorf("LastReplications = %+v, %v", last, err)
	}
	h.outputs[command.Quote(recordsArgv("zpool/proto"))] = "rollout:replicated:s2\t1700000200 zpool/proto@3\n"
	if _, err := LastReplications(context.Background(), h, "zpool/proto"); err == nil || !strings.HasPrefix(err.Error(), "zpool/proto: rollout:replicated:s2=") {
		t.Errorf("bad record: %v", err)
	}
	h.outputs[command.Quote(recordsArgv("zpool/proto"))] = "ERR:cannot open 'zpool/proto': dataset does not exist"
	if _, err := LastReplications(context.Background(), h, "zpool/proto"); err == nil || !strings.HasPrefix(err.Error(), "zpool/proto: ") {
		t.Errorf("failed read: %v", err)
	}
}

// With no target asked, the newest snapshot that every prototype dataset has is sent: not a
// newer one that a child lacks, and the only one when there is one.
func TestTargetNewestComplete(t *testing.T) {
	local := masterHost(nil)
	local.outputs[listSnaps+"zpool/proto"] = snapLines("zpool/proto", 1000, "1", "2") + "zpool/proto@3\t1004\t300\t1700000000\t0\t0\n"
	rep := &Replicator{Local: local, Dataset: "zpool/proto"}
	if got, err := rep.Target(context.Background(), ""); err != nil || got != "2" {
		t.Errorf("newest complete: %q, %v; want 2", got, err)
	}
	local.outputs[listSnaps+"zpool/proto"] = snapLines("zpool/proto", 1000, "1")
	if got, err := rep.Target(context.Background(), ""); err != nil || got != "1" {
		t.Errorf("one snapshot: %q, %v; want 1", got, err)
	}
	local.outputs[listSnaps+"zpool/proto"] = "zpool/proto@1\t1000\t100\t1700000000\t0\t0\n"
	if _, err := rep.Target(context.Background(), ""); err == nil || err.Error() != "zpool/proto has no snapshot to replicate (rollout snapshot makes one)" {
		t.Errorf("none complete: %v", err)
	}
	// an asked target is resolved, or refused
	local.outputs[listSnaps+"zpool/proto"] = snapLines("zpool/proto", 1000, "1", "2")
	if got, err := rep.Target(context.Background(), "zpool/proto@1"); err != nil || got != "1" {
		t.Errorf("asked 1: %q, %v", got, err)
	}
	if got, err := rep.Target(context.Background(), "9"); err == nil || got != "" {
		t.Errorf("asked 9: %q, %v", got, err)
	}
}

// The plan carries zfs send -nvP's estimate; a dry run that fails or prints no size leaves it
// unknown (-1), and planning goes on.
func TestPlanEstimate(t *testing.T) {
	for out, want := range map[string]int64{"size\t5243000\n": 5243000, "ERR:cannot open": -1, "full\tzpool/proto@3\t9\n": -1} {
		local := masterHost(nil)
		local.outputs["/sbin/zfs send -n -v -P -R -I @2 zpool/proto@3"] = out
		plans, err := (&Replicator{Local: local, Dataset: "zpool/proto"}).Plan(context.Background(),
			[]Slave{{Name: "s1", Runner: slaveHost("s1", "1", "2"), Pool: "tank"}}, Options{})
		if err != nil || len(plans) != 1 || plans[0].EstimatedBytes != want {
			t.Errorf("%q: plans %+v, %v; want an estimate of %d", out, plans, err, want)
		}
	}
}

// A run that finds a -R stream cut before a child got the target completes that child on its
// own, then plans the slave again and finishes it.
func TestRunCompletesInterruptedStream(t *testing.T) {
	local := masterHost(randomBytes(1000))
	s := slaveHost("s1", "1", "2")
	s.outputs[listSnaps+"tank/proto"] = snapLines("tank/proto", 1000, "1", "2") + "tank/proto@3\t1004\t307\t1700000000\t0\t0\n"
	res, err := (&Replicator{Local: local, Dataset: "zpool/proto"}).Run(context.Background(), []Slave{{Name: "s1", Runner: s, Pool: "tank"}}, Options{})
	if err != nil || len(res) != 1 || strings.Join(res[0].Completed, " ") != "tank/proto/etc" || len(s.received) != 1 || res[0].Mode != ModeNone {
		t.Fatalf("run: %+v, %v", res, err)
	}
	if !contains(local.commands(), "/sbin/zfs send -I @2 zpool/proto/etc@3") || !contains(s.commands(), "/sbin/zfs receive -s -u tank/proto/etc") ||
		!contains(s.commands(), "/sbin/zfs set readonly=on tank/proto") {
		t.Errorf("master ran %q, slave ran %q", local.commands(), s.commands())
	}
}

// Completing a child has its progress line too, with the master's estimate when its dry run
// gives one, and none when it fails.
func TestRunCompleteProgressEstimate(t *testing.T) {
	for est, want := range map[string]string{
		"size\t1000\n":        "s1: complete tank/proto/etc, about 1000B\n",
		"ERR:cannot estimate": "s1: complete tank/proto/etc\n",
	} {
		local := masterHost(randomBytes(1000))
		local.outputs["/sbin/zfs send -n -v -P -I @2 zpool/proto/etc@3"] = est
		s := slaveHost("s1", "1", "2")
		s.outputs[listSnaps+"tank/proto"] = snapLines("tank/proto", 1000, "1", "2") + "tank/proto@3\t1004\t307\t1700000000\t0\t0\n"
		res, out, err := runProgress(local, Slave{Name: "s1", Runner: s, Pool: "tank"})
		if err != nil || len(res) != 1 || strings.Join(res[0].Completed, " ") != "tank/proto/etc" {
			t.Fatalf("%q: results %+v, %v", est, res, err)
		}
		if first, _, _ := strings.Cut(out, "\n"); first+"\n" != want {
			t.Errorf("%q: progress %q, want %q first", est, out, want)
		}
	}
}

// runProgress replicates zpool/proto from local to one slave with progress shown, and returns
// the results and everything the progress printed.
func runProgress(local *fakeHost, s Slave) ([]Result, string, error) {
	var out syncBuffer
	prog := NewProgress(&out)
	res, err := (&Replicator{Local: local, Dataset: "zpool/proto", Progress: prog}).Run(context.Background(), []Slave{s}, Options{})
	prog.Close()
	return res, out.String(), err
}

// The progress lines name the stream: an increment its base and target, a full stream its target.
func TestRunProgressLabel(t *testing.T) {
	for have, want := range map[string]string{"2": "s1: incremental zpool/proto@2 -> zpool/proto@3, about 5.0M\n", "": "s1: full zpool/proto@3, about 5.0M\n"} {
		local := masterHost(randomBytes(1000))
		local.outputs["/sbin/zfs send -n -v -P -R zpool/proto@3"] = "size\t5243000\n"
		s := slaveHost("s1")
		if have != "" {
			s = slaveHost("s1", "1", have)
		}
		_, out, err := runProgress(local, Slave{Name: "s1", Runner: s, Pool: "tank"})
		// readonly is set once, after the receive; finishing does not set it again
		if n := slices.Index(s.commands(), "/sbin/zfs set readonly=on tank/proto"); n < 0 || slices.Contains(s.commands()[n+1:], s.commands()[n]) {
			t.Errorf("have @%s: slave ran %q", have, s.commands())
		}
		if first, _, _ := strings.Cut(out, "\n"); first+"\n" != want {
			t.Errorf("have @%s: progress %q (%v), want %q first", have, out, err, want)
		}
	}
}

const resumeTok = "1-c49b979a2-e0-789c6360"

// resumingHosts is a master sending stream and slave2, whose tank/proto/etc holds a receive
// cut on its way to @3 (token resumeTok, naming the master's zpool/proto/etc@3); est is what
// the master's zfs send -nvP -t prints. A receive that reads the whole stream clears the token.
func resumingHosts(stream []byte, est string) (local, slave *fakeHost) {
	local = masterHost(stream)
	local.outputs["/sbin/zfs send -n -v -t "+resumeTok] = "resume token contents:\nnvlist version: 0\n\tfromguid = 0x3eb\n" +
		"\tobject = 0x1\n\toffset = 0x0\n\tbytes = 0x0\n\ttoguid = 0x3ed\n\ttoname = zpool/proto/etc@3\n"
	local.outputs["/sbin/zfs send -n -v -P -t "+resumeTok] = est
	slave = slaveHost("slave2", "1", "2")
	slave.outputs[command.Quote(stateArgv("tank/proto"))] = "tank/proto\treceive_resume_token\t-\ntank/proto\twritten\t0\n" +
		"tank/proto/etc\treceive_resume_token\t" + resumeTok + "\ntank/proto/etc\twritten\t0\n"
	slave.onReceive[command.Quote(stateArgv("tank/proto"))] = "tank/proto\treceive_resume_token\t-\ntank/proto\twritten\t0\n" +
		"tank/proto/etc\treceive_resume_token\t-\ntank/proto/etc\twritten\t0\n"
	return local, slave
}

// A resume's progress line carries the master's estimate of what is left (zfs send -nvP -t);
// an estimate that fails, but not because the token is stale, leaves the size unknown and the
// resume goes on.
func TestRunResumeProgressEstimate(t *testing.T) {
	for est, want := range map[string]string{
		"size\t4096\n":        "slave2: resume tank/proto/etc, about 4.0K\n",
		"ERR:cannot estimate": "slave2: resume tank/proto/etc\n",
	} {
		local, h := resumingHosts(randomBytes(4096), est)
		res, out, err := runProgress(local, Slave{Name: "slave2", Runner: h, Pool: "tank"})
		if err != nil || len(res) != 1 || strings.Join(res[0].Resumed, " ") != "tank/proto/etc" {
			t.Fatalf("%q: results %+v, %v", est, res, err)
		}
		if first, _, _ := strings.Cut(out, "\n"); first+"\n" != want {
			t.Errorf("%q: progress %q, want %q first", est, out, want)
		}
	}
}

// A resume whose snapshot is gone on the master (the dry run says so) is discarded before
// anything is sent for it, and the slave gets the increment from its last whole snapshot.
func TestRunDiscardsStaleResume(t *testing.T) {
	stream := randomBytes(4096)
	local, h := resumingHosts(stream, "ERR:cannot resume send: 'zpool/proto/etc@3' used in the initial send no longer exists")
	abort := "/sbin/zfs receive -A tank/proto/etc"
	h.outputs[abort] = ""
	h.onRun = map[string]map[string]string{abort: {command.Quote(stateArgv("tank/proto")): "tank/proto\treceive_resume_token\t-\ntank/proto\twritten\t0\n" +
		"tank/proto/etc\treceive_resume_token\t-\ntank/proto/etc\twritten\t0\n"}}
	res, err := (&Replicator{Local: local, Dataset: "zpool/proto"}).Run(context.Background(), []Slave{{Name: "slave2", Runner: h, Pool: "tank"}}, Options{})
	if err != nil || len(res) != 1 || strings.Join(res[0].Discarded, " ") != "tank/proto/etc" || len(res[0].Resumed) != 0 || res[0].Mode != ModeIncremental {
		t.Fatalf("results %+v, %v", res, err)
	}
	if contains(local.commands(), "/sbin/zfs send -t "+resumeTok) || !contains(local.commands(), "/sbin/zfs send -R -I @2 zpool/proto@3") || !contains(h.commands(), abort) {
		t.Errorf("master ran %q, slave ran %q", local.commands(), h.commands())
	}
	if len(h.received) != 1 || h.received[0] != sha256.Sum256(stream) {
		t.Errorf("slave received %d streams, want the increment", len(h.received))
	}
}

// A partial receive that planning finds unusable (the snapshot its token names is gone on the
// master) is discarded with zfs receive -A, and the slave gets the increment instead; when the
// discard fails, the slave fails, naming the dataset, and nothing is sent to it.
func TestRunPlannedAbort(t *testing.T) {
	abort := "/sbin/zfs receive -A tank/proto/etc"
	for _, out := range []string{"", "ERR:cannot abort: dataset is busy"} {
		local, h := resumingHosts(randomBytes(4096), "size\t4096\n")
		local.outputs["/sbin/zfs send -n -v -t "+resumeTok] = strings.Replace(local.outputs["/sbin/zfs send -n -v -t "+resumeTok], "etc@3", "etc@9", 1)
		h.outputs[abort] = out
		h.onRun = map[string]map[string]string{abort: {command.Quote(stateArgv("tank/proto")): h.onReceive[command.Quote(stateArgv("tank/proto"))]}}
		res, err := (&Replicator{Local: local, Dataset: "zpool/proto"}).Run(context.Background(), []Slave{{Name: "slave2", Runner: h, Pool: "tank"}}, Options{})
		discarded := "tank/proto/etc"
		if out != "" {
			discarded = ""
		}
		if len(res) != 1 || strings.Join(res[0].Discarded, " ") != discarded || !contains(h.commands(), abort) {
			t.Errorf("%q: results %+v, slave ran %q", out, res, h.commands())
		}
		if out == "" {
			if err != nil || res[0].Mode != ModeIncremental || len(h.received) != 1 {
				t.Errorf("results %+v, %v; want the increment received", res, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), "slave2: tank/proto/etc: discarding the partial receive: ") || len(h.received) != 0 {
			t.Errorf("error %v, %d streams received; want the discard's error, nothing sent", err, len(h.received))
		}
	}
}

// With --force, a partially received dataset that was written to since its last snapshot is
// rolled back to it, then resumed; when the rollback fails, the slave fails, naming the dataset,
// and nothing is resumed.
func TestRunForcedRollbackBeforeResume(t *testing.T) {
	rollback := "/sbin/zfs rollback tank/proto/etc@2"
	for _, out := range []string{"", "ERR:cannot rollback: dataset is busy"} {
		local, h := resumingHosts(randomBytes(4096), "size\t4096\n")
		h.outputs[command.Quote(stateArgv("tank/proto"))] = strings.Replace(h.outputs[command.Quote(stateArgv("tank/proto"))], "etc\twritten\t0", "etc\twritten\t8192", 1)
		h.outputs[rollback] = out
		res, err := (&Replicator{Local: local, Dataset: "zpool/proto"}).Run(context.Background(), []Slave{{Name: "slave2", Runner: h, Pool: "tank"}}, Options{Force: true})
		if len(res) != 1 || !contains(h.commands(), rollback) {
			t.Fatalf("%q: results %+v, slave ran %q", out, res, h.commands())
		}
		if out == "" {
			if err != nil || strings.Join(res[0].Resumed, " ") != "tank/proto/etc" {
				t.Errorf("results %+v, %v; want tank/proto/etc resumed", res, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), "slave2: tank/proto/etc: ") || !strings.Contains(err.Error(), "dataset is busy") || len(res[0].Resumed) != 0 || len(h.received) != 0 {
			t.Errorf("results %+v, %v; want the rollback's error, nothing resumed", res, err)
		}
	}
}

// A -R stream cut part-way is finished over more than one round: a resume (or a discard of a
// partial receive that cannot resume) then the completion of the child it left behind. The
// slave is then finished (readonly, mounted) and recorded, even when the master's record
// already named the target.
func TestRunResumeThenCompleteFinishes(t *testing.T) {
	const tokParent = "1-d00d1e-e0-789c6360"
	noTokens := "tank/proto\treceive_resume_token\t-\ntank/proto\twritten\t0\ntank/proto/etc\treceive_resume_token\t-\ntank/proto/etc\twritten\t0\n"
	parentAt3 := snapLines("tank/proto", 1000, "1", "2") + "tank/proto@3\t1004\t307\t1700000000\t0\t0\n"
	for _, c := range []struct {
		name, tok, toname, record string
		resumed, discarded        string
	}{
		{"resume, complete", tokParent, "zpool/proto@3", "rollout:replicated:slave2\t1700000000 zpool/proto@3 1004\n", "tank/proto", ""},
		{"discard, complete", resumeTok, "zpool/proto/etc@9", "", "", "tank/proto/etc"},
	} {
		t.Run(c.name, func(t *testing.T) {
			local := masterHost(randomBytes(1000))
			local.outputs[command.Quote(recordsArgv("zpool/proto"))] = c.record
			local.outputs["/sbin/zfs send -n -v -t "+c.tok] = "resume token contents:\nnvlist version: 0\n\tfromguid = 0x3ea\n" +
				"\tobject = 0x1\n\toffset = 0x0\n\tbytes = 0x0\n\ttoguid = 0x3ec\n\ttoname = " + c.toname + "\n"
			local.outputs["/sbin/zfs send -n -v -P -t "+c.tok] = "size\t1000\n"
			h := slaveHost("slave2", "1", "2")
			h.onReceive = nil
			h.outputs[command.Quote(stateArgv("tank/proto"))] = "tank/proto\treceive_resume_token\t-\ntank/proto\twritten\t0\n" +
				"tank/proto/etc\treceive_resume_token\t-\ntank/proto/etc\twritten\t0\n"
			ds := "tank/proto/etc"
			if c.resumed != "" {
				ds = "tank/proto"
			} else {
				h.outputs[listSnaps+"tank/proto"] = parentAt3
				h.outputs["/sbin/zfs receive -A tank/proto/etc"] = ""
			}
			h.outputs[command.Quote(stateArgv("tank/proto"))] = strings.Replace(h.outputs[command.Quote(stateArgv("tank/proto"))], ds+"\treceive_resume_token\t-", ds+"\treceive_resume_token\t"+c.tok, 1)
			h.onRun = map[string]map[string]string{
				// the parent's resume brings it to @3, the discard leaves the child at @2; the
				// completion brings the child to @3
				"/sbin/zfs receive -s -u tank/proto":     {command.Quote(stateArgv("tank/proto")): noTokens, listSnaps + "tank/proto": parentAt3},
				"/sbin/zfs receive -A tank/proto/etc":    {command.Quote(stateArgv("tank/proto")): noTokens},
				"/sbin/zfs receive -s -u tank/proto/etc": {listSnaps + "tank/proto": snapLines("tank/proto", 1000, "1", "2", "3")},
			}
			res, err := (&Replicator{Local: local, Dataset: "zpool/proto"}).Run(context.Background(), []Slave{{Name: "slave2", Runner: h, Pool: "tank"}}, Options{})
			if err != nil || len(res) != 1 || res[0].Mode != ModeNone || strings.Join(res[0].Resumed, " ") != c.resumed ||
				strings.Join(res[0].Discarded, " ") != c.discarded || strings.Join(res[0].Completed, " ") != "tank/proto/etc" {
				t.Fatalf("results %+v, %v", res, err)
			}
			if cmds := h.commands(); !contains(cmds, "/sbin/zfs set readonly=on tank/proto") || !contains(cmds, "/sbin/zfs mount tank/proto/etc") {
				t.Errorf("slave not finished: %q", cmds)
			}
			if !slices.ContainsFunc(local.commands(), func(cmd string) bool { return strings.HasPrefix(cmd, "/sbin/zfs set 'rollout:replicated:slave2=") }) {
				t.Errorf("not recorded: %q", local.commands())
			}
		})
	}
}

// A resume goes to one slave alone: if its receive exits 0 part-way, no receiver is left for
// the rest of the stream, and the resume fails for the early exit.
func TestRunResumeReceiverExitsEarly(t *testing.T) {
	local, h := resumingHosts(randomBytes(1000), "size\t1000\n")
	h.quitAfter = 500
	_, err := (&Replicator{Local: local, Dataset: "zpool/proto"}).Run(context.Background(), []Slave{{Name: "slave2", Runner: h, Pool: "tank"}}, Options{})
	if err == nil || !strings.Contains(err.Error(), "slave2: zfs receive exited before the end of the stream") {
		t.Errorf("error %v, want the early exit", err)
	}
}

// A slave whose receive is still partial after two rounds of resuming is given up on, naming
// what was resumed, instead of being resumed for ever.
func TestRunResumeGivesUp(t *testing.T) {
	local, h := resumingHosts(randomBytes(1000), "size\t1000\n")
	h.onReceive = nil // every resume leaves the token there
	done := make(chan error, 1)
	go func() {
		_, err := (&Replicator{Local: local, Dataset: "zpool/proto"}).Run(context.Background(), []Slave{{Name: "slave2", Runner: h, Pool: "tank"}}, Options{})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || err.Error() != "slave2: tank/proto: still incomplete after tank/proto/etc, tank/proto/etc; see rollout replicate --dry-run" {
			t.Errorf("error %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("still resuming")
	}
}

// A send that fails fails its receive, even one that read every byte it was given and exited 0.
func TestRunResumeSendFailsLate(t *testing.T) {
	stream := randomBytes(1000)
	local, h := resumingHosts(stream, "size\t1000\n")
	local.afterSend = func(context.Context) error { return fmt.Errorf("zfs send: I/O error") }
	h.quitAfter = int64(len(stream))
	_, err := (&Replicator{Local: local, Dataset: "zpool/proto"}).Run(context.Background(), []Slave{{Name: "slave2", Runner: h, Pool: "tank"}}, Options{})
	if err == nil || !strings.Contains(err.Error(), "slave2: zfs send: I/O error") {
		t.Errorf("error %v, want the send's", err)
	}
}

// Once every receiver has failed, a zfs send that stalls is cancelled: the run ends with the
// receive's error instead of waiting for the send forever.
func TestRunCancelsSendWithoutReceivers(t *testing.T) {
	local := masterHost(randomBytes(ChunkSize))
	local.afterSend = func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	h := slaveHost("s1", "1", "2")
	h.failAfter = 0
	done := make(chan error, 1)
	go func() {
		_, err := (&Replicator{Local: local, Dataset: "zpool/proto"}).Run(context.Background(), []Slave{{Name: "s1", Runner: h, Pool: "tank"}}, Options{})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "checksum mismatch") {
			t.Errorf("error %v, want the receive's", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the run still waits for a stalled zfs send with no receiver left")
	}
}

// What finishing mounted is logged, and only when it mounted something.
func TestRunLogsMounts(t *testing.T) {
	for _, c := range []struct {
		name, mounted, want string
	}{
		{"unmounted", "no", `msg=mounted slave=s1 datasets="tank/proto tank/proto/etc"`},
		{"already mounted", "yes", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			var log syncBuffer
			h := slaveHost("s1", "1", "2")
			h.outputs[command.Quote(mountListArgv())] = "tank\tno\ton\tnone\ntank/proto\t" + c.mounted + "\ton\t/jail/proto\n" +
				"tank/proto/etc\t" + c.mounted + "\ton\t/jail/proto/etc\n"
			rep := &Replicator{Local: masterHost(randomBytes(1000)), Dataset: "zpool/proto", Log: slog.New(slog.NewTextHandler(&log, nil))}
			if _, err := rep.Run(context.Background(), []Slave{{Name: "s1", Runner: h, Pool: "tank"}}, Options{}); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, l := range strings.Split(log.String(), "\n") {
				if strings.Contains(l, "msg=mounted") {
					got = append(got, l[strings.Index(l, "msg="):])
				}
			}
			if strings.Join(got, "\n") != c.want {
				t.Errorf("logged %q, want %q", got, c.want)
			}
		})
	}
}
