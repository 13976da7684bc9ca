package replicate

import (
	"context"
	"crypto/sha256"
	"slices"
	"strings"
	"testing"

	"github.com/rollout-dev/rollout/proto/command"
)

func TestParseSendFlags(t *testing.T) {
	for _, c := range []struct {
		in, want string // want: SendFlags.String(), or "ERR:" and a part of the error
	}{
		{"", "auto"}, {"auto", "auto"}, {" auto ", "auto"}, {"none", "none"},
		{"-c -L", "-c -L"}, {"-L  -c", "-c -L"}, {"-w -e -L -c", "-c -L -e -w"}, {"-e", "-e"},
		{"-c -c", "ERR:-c given twice"}, {"-cL", `ERR:"-cL" is not one of`}, {"-R", `ERR:"-R" is not one of`},
		{"-c; reboot", `ERR:"-c;" is not one of`}, {"auto -c", `ERR:"auto" is not one of`}, {"AUTO", `ERR:"AUTO"`},
		{"-c --raw", `ERR:"--raw" is not one of`},
	} {
		f, err := ParseSendFlags(c.in)
		if want, ok := strings.CutPrefix(c.want, "ERR:"); ok {
			if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), c.in) {
				t.Errorf("%q: %v, %v; want an error naming it with %q", c.in, f, err, want)
			}
			continue
		}
		if err != nil || f.String() != c.want {
			t.Errorf("%q: %q, %v; want %q", c.in, f, err, c.want)
		}
	}
}

// modern is an OpenZFS 2 pool that has every feature the stream flags need.
func modern() *Features {
	return &Features{Version: "zfs-2.2.6-1", Pool: map[string]string{"large_blocks": "active", "embedded_data": "active",
		"lz4_compress": "active", "zstd_compress": "enabled", "encryption": "enabled"}}
}

func withFeatures(f *Features, set map[string]string) *Features {
	out := &Features{Version: f.Version, Pool: map[string]string{}}
	for k, v := range f.Pool {
		out.Pool[k] = v
	}
	for k, v := range set {
		out.Pool[k] = v
	}
	return out
}

func TestChooseFlags(t *testing.T) {
	old := withFeatures(modern(), map[string]string{"large_blocks": "disabled", "zstd_compress": "", "encryption": ""})
	old.Version = "" // FreeBSD 12's zfs: no zfs version
	noLB := withFeatures(modern(), map[string]string{"large_blocks": "disabled"})
	auto := SendFlags{Auto: true}
	for _, c := range []struct {
		name           string
		setting        SendFlags
		master, slave  *Features
		encryption     string
		flags, why     string
		whyAlso, whyNo string
		refuse         []string // a refusal with these in it
	}{
		{name: "both modern", setting: auto, master: modern(), slave: modern(), encryption: "off",
			flags: "-c -L -e", why: "slave2 has zfs-2.2.6-1, large_blocks, embedded_data"},
		{name: "enabled counts", setting: auto, master: modern(), slave: withFeatures(modern(), map[string]string{"large_blocks": "enabled", "embedded_data": "enabled"}),
			flags: "-c -L -e", why: "slave2 has zfs-2.2.6-1, large_blocks, embedded_data"},
		{name: "slave without large_blocks", setting: auto, master: modern(), slave: noLB, encryption: "off",
			flags: "-c -e", why: "slave2 has zfs-2.2.6-1, embedded_data; no -L: slave2 lacks large_blocks"},
		{name: "old slave", setting: auto, master: modern(), slave: old, encryption: "off",
			flags: "-e", why: "slave2 has embedded_data; no -c: slave2's zfs is older than OpenZFS 0.8 (no zfs version); no -L: slave2 lacks large_blocks"},
		{name: "slave with none of them", setting: auto, master: modern(),
			slave: withFeatures(old, map[string]string{"embedded_data": "disabled"}), encryption: "off", flags: "",
			why: "no -c: slave2's zfs is older than OpenZFS 0.8 (no zfs version); no -L: slave2 lacks large_blocks; no -e: slave2 lacks embedded_data"},
		{name: "master without large_blocks", setting: auto, master: noLB, slave: modern(),
			flags: "-c -e", whyAlso: "no -L: this host lacks large_blocks"},
		{name: "master uses zstd, slave lacks it", setting: auto, master: withFeatures(modern(), map[string]string{"zstd_compress": "active"}),
			slave: withFeatures(modern(), map[string]string{"zstd_compress": "disabled"}),
			flags: "-L -e", whyAlso: "no -c: slave2 lacks zstd_compress, which this host uses"},
		{name: "master uses lz4, slave lacks it", setting: auto, master: modern(), slave: withFeatures(modern(), map[string]string{"lz4_compress": "disabled"}),
			flags: "-L", whyAlso: "no -e: slave2 lacks lz4_compress, which this host uses", whyNo: "embedded_data"},
		{name: "encrypted, slave cannot keep it", setting: auto, master: modern(), slave: old, encryption: "aes-256-gcm",
			refuse: []string{"zpool/proto is encrypted (encryption=aes-256-gcm)", "needs the encryption feature on pool tank of slave2 (it has no such feature)"}},
		{name: "encrypted, slave can keep it", setting: auto, master: modern(), slave: modern(), encryption: "aes-256-gcm",
			flags: "-w", why: "zpool/proto is encrypted (aes-256-gcm): raw, it stays encrypted on slave2 (-w implies -L -e -c)"},
		{name: "none", setting: SendFlags{}, master: modern(), slave: modern(), flags: "", why: `send_flags = "none"`},
		{name: "explicit", setting: SendFlags{Fixed: []string{"-c", "-L"}}, master: nil, slave: old,
			flags: "-c -L", why: `send_flags = "-c -L"`},
	} {
		m := master("1", "2", "3")
		m.Features, m.Encryption = c.master, c.encryption
		s := slave(m, 2)
		s.Features = c.slave
		r := req
		r.SendFlags = c.setting
		if c.refuse != nil {
			mustRefuse(t, m, s, r, c.refuse...)
			continue
		}
		p := mustPlan(t, m, s, r)
		if got := strings.Join(p.SendFlags, " "); got != c.flags {
			t.Errorf("%s: flags %q, want %q (%s)", c.name, got, c.flags, p.SendFlagsWhy)
		}
		wantSend := strings.Join(slices.DeleteFunc([]string{"/sbin/zfs send", c.flags, "-R -I @2 zpool/proto@3"}, func(s string) bool { return s == "" }), " ")
		if got := argv(p.SendArgv); got != wantSend {
			t.Errorf("%s: send %q, want %q", c.name, got, wantSend)
		}
		if c.why != "" && p.SendFlagsWhy != c.why {
			t.Errorf("%s: why %q, want %q", c.name, p.SendFlagsWhy, c.why)
		}
		if !strings.Contains(p.SendFlagsWhy, c.whyAlso) || (c.whyNo != "" && strings.Contains(p.SendFlagsWhy, "has "+c.whyNo)) {
			t.Errorf("%s: why %q, want %q in it", c.name, p.SendFlagsWhy, c.whyAlso)
		}
	}
}

// The dry run shows the flags on the send line, with what chose them; a full send and the
// completion of an interrupted stream carry them too, a resume (the token has its flags) never.
func TestPlanShowsSendFlags(t *testing.T) {
	m := master("1", "2", "3")
	m.Features, m.Encryption = modern(), "off"
	s := slave(m, 2)
	s.Features = withFeatures(modern(), map[string]string{"zstd_compress": "disabled"})
	s.Features.Version = ""
	r := req
	r.SendFlags = SendFlags{Auto: true}
	p := mustPlan(t, m, s, r)
	line := "  local:  /sbin/zfs send -L -e -R -I @2 zpool/proto@3   (flags: -L -e: slave2 has large_blocks, embedded_data; no -c: slave2's zfs is older than OpenZFS 0.8 (no zfs version))\n"
	if !strings.Contains(p.String(), line) {
		t.Errorf("dry run:\n%s\nwant the line:\n%s", p, line)
	}

	full := mustPlan(t, m, SlaveState{Dataset: "tank/proto", Features: modern()}, r)
	if got := argv(full.SendArgv); got != "/sbin/zfs send -c -L -e -R zpool/proto@3" ||
		!strings.Contains(full.String(), "zpool/proto@3   (flags: -c -L -e: slave2 has zfs-2.2.6-1, large_blocks, embedded_data)\n") {
		t.Errorf("full send %q:\n%s", got, full)
	}

	// the top has @3, the child not: each child's send has the flags of the stream it completes
	s = slave(m, 2)
	s.Features = modern()
	s.Snapshots = append(s.Snapshots, replica("tank/proto", "zpool/proto", m.Snapshots[4:5])...)
	p = mustPlan(t, m, s, r)
	if p.Mode != ModeComplete || len(p.Steps) != 1 || argv(p.Steps[0].SendArgv) != "/sbin/zfs send -c -L -e -I @2 zpool/proto/etc@3" ||
		!strings.Contains(p.String(), "  (flags: -c -L -e: slave2 has") {
		t.Errorf("complete plan %+v:\n%s", p.Steps, p)
	}

	// an interrupted receive resumes with the token alone; the plan after it has the flags
	s = slave(m, 2)
	s.Features = modern()
	s.ResumeTokens = map[string]string{"tank/proto/etc": "1-abc-def-0123"}
	s.Tokens = map[string]TokenCheck{"tank/proto/etc": {Token: &ResumeToken{ToName: "zpool/proto/etc@3", ToGUID: 1005, FromGUID: 1003}}}
	p = mustPlan(t, m, s, r)
	if p.Mode != ModeResume || argv(p.Resume[0].SendArgv) != "/sbin/zfs send -t 1-abc-def-0123" || p.SendFlags != nil ||
		p.Then == nil || argv(p.Then.SendArgv) != "/sbin/zfs send -c -L -e -R -I @2 zpool/proto@3" {
		t.Errorf("resume plan %+v then %+v", p, p.Then)
	}

	// an up-to-date slave is not refused over flags it would need for a stream
	m.Encryption = "aes-256-gcm"
	s = slave(m, 3)
	s.Features = withFeatures(modern(), map[string]string{"encryption": "disabled"})
	if p := mustPlan(t, m, s, r); p.Mode != ModeNone {
		t.Errorf("up to date: %+v", p)
	}
	mustRefuse(t, m, slave(m, 2), Request{Slave: "slave2", Pool: "tank", Target: "3", SendFlags: r.SendFlags}, "pool features of this host or of the slave were not read")
}

// featureLines is `zpool get -H -p -o property,value all POOL` output with these features.
func featureLines(f *Features) string {
	var b strings.Builder
	b.WriteString("size\t1000000\nreadonly\toff\n")
	for _, k := range sortedKeys(f.Pool) {
		if f.Pool[k] != "" {
			b.WriteString("feature@" + k + "\t" + f.Pool[k] + "\n")
		}
	}
	return b.String()
}

func answerFeatures(h *fakeHost, pool string, f *Features) {
	h.outputs[command.Quote(poolFeaturesArgv(pool))] = featureLines(f)
	if f.Version == "" {
		h.outputs[command.Quote(versionArgv())] = "ERR:unrecognized command 'version'"
	} else {
		h.outputs[command.Quote(versionArgv())] = f.Version + "\nzfs-kmod-" + strings.TrimPrefix(f.Version, "zfs-") + "\n"
	}
}

// With send_flags auto, each end's features are read once; slaves with the same features share
// one zfs send, and a slave without large_blocks gets a send of its own without -L (a shared
// stream never carries a flag one of its receivers lacks).
func TestRunGroupsSlavesBySendFlags(t *testing.T) {
	stream := randomBytes(2<<20 + 5)
	want := sha256.Sum256(stream)
	local := masterHost(stream)
	answerFeatures(local, "zpool", modern())
	local.outputs[command.Quote(encryptionArgv("zpool/proto"))] = "off\n"
	a, b, old := slaveHost("a", "1", "2"), slaveHost("b", "1", "2"), slaveHost("old", "1", "2")
	answerFeatures(a, "tank", modern())
	answerFeatures(b, "tank", modern())
	answerFeatures(old, "tank", withFeatures(modern(), map[string]string{"large_blocks": "disabled"}))
	var slaves []Slave
	for _, h := range []*fakeHost{a, b, old} {
		slaves = append(slaves, Slave{Name: h.name, Runner: h, Pool: "tank"})
	}
	rep := &Replicator{Local: local, Dataset: "zpool/proto", SendFlags: SendFlags{Auto: true}}
	results, err := rep.Run(context.Background(), slaves, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var sends []string
	for _, c := range local.commands() {
		if strings.HasPrefix(c, "/sbin/zfs send ") && !strings.HasPrefix(c, "/sbin/zfs send -n ") {
			sends = append(sends, c)
		}
	}
	slices.Sort(sends)
	if w := []string{"/sbin/zfs send -c -L -e -R -I @2 zpool/proto@3", "/sbin/zfs send -c -e -R -I @2 zpool/proto@3"}; !slices.Equal(sends, w) {
		t.Errorf("sends %q, want %q", sends, w)
	}
	shared := map[string]string{}
	for _, r := range results {
		shared[r.Slave] = strings.Join(r.SharedWith, ",")
		if strings.Join(r.Plan.SendFlags, " ") != map[string]string{"a": "-c -L -e", "b": "-c -L -e", "old": "-c -e"}[r.Slave] {
			t.Errorf("%s: flags %q", r.Slave, r.Plan.SendFlags)
		}
	}
	if shared["a"] != "b" || shared["b"] != "a" || shared["old"] != "" {
		t.Errorf("shared streams %v", shared)
	}
	for _, h := range []*fakeHost{a, b, old} {
		if len(h.received) != 1 || h.received[0] != want {
			t.Errorf("%s did not receive the whole stream", h.name)
		}
		n := 0
		for _, c := range h.commands() {
			if c == command.Quote(poolFeaturesArgv("tank")) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s: pool features read %d times, want once", h.name, n)
		}
	}
	n := 0
	for _, c := range local.commands() {
		if c == command.Quote(poolFeaturesArgv("zpool")) || c == command.Quote(encryptionArgv("zpool/proto")) {
			n++
		}
	}
	if n != 2 {
		t.Errorf("master's features and encryption read %d times, want once each: %q", n, local.commands())
	}
}

// A slave whose pool features cannot be read is not planned (auto needs them); the others are.
// With send_flags none, nothing is read and the sends have no flags.
func TestPlanFeatureReads(t *testing.T) {
	local := masterHost(nil)
	answerFeatures(local, "zpool", modern())
	local.outputs[command.Quote(encryptionArgv("zpool/proto"))] = "off\n"
	good, bad := slaveHost("good", "1", "2"), slaveHost("bad", "1", "2")
	answerFeatures(good, "tank", modern())
	slaves := []Slave{{Name: "good", Runner: good, Pool: "tank"}, {Name: "bad", Runner: bad, Pool: "tank"}}
	plans, err := (&Replicator{Local: local, Dataset: "zpool/proto", SendFlags: SendFlags{Auto: true}}).Plan(context.Background(), slaves, Options{})
	if err == nil || !strings.Contains(err.Error(), "bad: reading the features of pool tank") || plans[0] == nil || plans[1] != nil ||
		argv(plans[0].SendArgv) != "/sbin/zfs send -c -L -e -R -I @2 zpool/proto@3" {
		t.Errorf("plans %v, err %v", plans, err)
	}

	local, bad = masterHost(nil), slaveHost("bad", "1", "2")
	plans, err = (&Replicator{Local: local, Dataset: "zpool/proto"}).Plan(context.Background(), []Slave{{Name: "bad", Runner: bad, Pool: "tank"}}, Options{})
	if err != nil || argv(plans[0].SendArgv) != "/sbin/zfs send -R -I @2 zpool/proto@3" {
		t.Errorf("none: plan %v, err %v", plans, err)
	}
	for _, c := range append(local.commands(), bad.commands()...) {
		if strings.Contains(c, "zpool get") || strings.Contains(c, "zfs version") || strings.Contains(c, "encryption") {
			t.Errorf("send_flags none read %q", c)
		}
	}
}
