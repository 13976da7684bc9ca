package rollout

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rollout-dev/rollout/proto/command"
)

// tryWorld is the fake host's ZFS and jails as far as a try changes them, behind the recorder:
// zfs set/snapshot/create/clone/destroy/hold/release/list/get and jail/jls/jexec read and change
// it as FreeBSD would (a snapshot with a clone cannot be destroyed, a release of a hold that is
// not there fails with "no such tag"). Production's datasets are the fake host's.
type tryWorld struct {
	mu       sync.Mutex
	base     string                       // the fake host's zfs get -r output
	existing map[string]bool              // its file systems
	props    map[string]map[string]string // file system -> rollout:try / rollout:try-of set since
	made     map[string]string            // file systems made since -> origin snapshot ("" for the try's parent)
	snaps    map[string]bool              // snapshots taken since
	holds    map[string]bool              // "TAG SNAPSHOT"
	jails    map[string]string            // running jail -> path
	health   error                        // what jexec returns
	paths    map[string]string            // jail -> its path, from the config
}

const tryNow = 1764000000

func newTryWorld(t *testing.T) (*fakeHost, *tryWorld) {
	t.Helper()
	fh := newFakeHost(t, 2)
	tw := &tryWorld{base: fh.r.out[zfsGetAll], existing: map[string]bool{}, props: map[string]map[string]string{},
		made: map[string]string{}, snaps: map[string]bool{}, holds: map[string]bool{"rollout zpool/proto@1": true},
		jails: map[string]string{"vhost1": fh.m.Cfg.Vhosts["vhost1"].Path}}
	for _, l := range strings.Split(tw.base, "\n") {
		if f := strings.Split(l, "\t"); len(f) == 4 {
			tw.existing[f[0]] = true
		}
	}
	tw.paths = map[string]string{}
	for n, v := range fh.m.Cfg.Vhosts {
		tw.paths[n] = v.Path
	}
	for n, v := range fh.m.Cfg.Tries {
		tw.paths[n] = v.Path
	}
	fh.r.hook = tw.hook
	fh.m.Now = func() time.Time { return time.Unix(tryNow, 0) }
	health := []string{"/usr/local/bin/check", "--quick"}
	fh.m.Cfg.Vhosts["vhost1"].Health = health
	fh.m.Cfg.Tries["vhost1-try"].Health = health
	return fh, tw
}

func cmdErr(a []string, stderr string) error {
	return &command.Error{Argv: a, ExitCode: 1, Stderr: stderr, Err: fmt.Errorf("exit status 1")}
}

func (w *tryWorld) exists(n string) bool {
	if strings.Contains(n, "@") {
		return w.snaps[n]
	}
	_, made := w.made[n]
	return w.existing[n] || made
}

func (w *tryWorld) hook(_ context.Context, c command.Cmd) (bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	a := c.Argv
	out := func(s string) {
		if c.Stdout != nil {
			_, _ = c.Stdout.Write([]byte(s))
		}
	}
	last := a[len(a)-1]
	switch {
	case a[0] == "/sbin/zfs" && a[1] == "get" && slices.Contains(a, "-r"):
		out(w.base)
		var names []string
		for n := range w.props {
			names = append(names, n)
		}
		for n := range w.made {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range slices.Compact(names) {
			out(n + "\trollout:snapshot\t-\t-\n")
			for k, v := range w.props[n] {
				out(n + "\t" + k + "\t" + v + "\tlocal\n")
			}
		}
	case a[0] == "/sbin/zfs" && a[1] == "get": // zfs get -H -p -o value PROP DS
		v, ok := w.props[last][a[len(a)-2]]
		if !ok {
			v = "-"
		}
		out(v + "\n")
	case a[0] == "/sbin/zfs" && a[1] == "set":
		if w.props[last] == nil {
			w.props[last] = map[string]string{}
		}
		for _, kv := range a[2 : len(a)-1] {
			k, v, _ := strings.Cut(kv, "=")
			w.props[last][k] = v
		}
	case a[0] == "/sbin/zfs" && a[1] == "snapshot":
		for _, s := range a[2:] {
			if w.snaps[s] {
				return true, cmdErr(a, "cannot create snapshot '"+s+"': dataset already exists")
			}
		}
		for _, s := range a[2:] {
			w.snaps[s] = true
		}
	case a[0] == "/sbin/zfs" && a[1] == "create":
		w.made[last] = ""
		for i, x := range a {
			if x == "-o" && strings.HasPrefix(a[i+1], propTryOf+"=") {
				w.props[last] = map[string]string{propTryOf: strings.TrimPrefix(a[i+1], propTryOf+"=")}
			}
		}
	case a[0] == "/sbin/zfs" && a[1] == "clone":
		origin := a[len(a)-2]
		if !w.snaps[origin] {
			return true, cmdErr(a, "cannot open '"+origin+"': dataset does not exist")
		}
		w.made[last] = origin
	case a[0] == "/sbin/zfs" && a[1] == "list" && slices.Contains(a, "all"):
		if !w.exists(last) {
			return true, cmdErr(a, "cannot open '"+last+"': dataset does not exist")
		}
		out(last + "\n")
	case a[0] == "/sbin/zfs" && a[1] == "destroy" && strings.Contains(last, "@"):
		for _, o := range w.made {
			if o == last {
				return true, cmdErr(a, "cannot destroy '"+last+"': snapshot has dependent clones")
			}
		}
		delete(w.snaps, last)
	case a[0] == "/sbin/zfs" && a[1] == "destroy":
		for n := range w.made {
			if n == last || strings.HasPrefix(n, last+"/") {
				delete(w.made, n)
				delete(w.props, n)
			}
		}
	case a[0] == "/sbin/zfs" && a[1] == "hold":
		w.holds[a[3]+" "+a[4]] = true
	case a[0] == "/sbin/zfs" && a[1] == "release":
		if !w.holds[a[3]+" "+a[4]] {
			return true, cmdErr(a, "cannot release hold from snapshot '"+a[4]+"': no such tag on this dataset")
		}
		delete(w.holds, a[3]+" "+a[4])
	case a[0] == "/usr/sbin/jls" && a[1] == "-j":
		p, ok := w.jails[a[2]]
		if !ok {
			return true, cmdErr(a, `jls: jail "`+a[2]+`" not found`)
		}
		out("7 " + a[2] + " " + p + "\n")
	case a[0] == "/usr/sbin/jls":
		for n := range w.jails {
			out("7 " + n + "\n")
		}
	case a[0] == "/usr/sbin/jail" && a[3] == "-c":
		w.jails[a[4]] = w.paths[a[4]]
	case a[0] == "/usr/sbin/jail" && a[3] == "-r":
		if _, ok := w.jails[a[4]]; !ok {
			return true, cmdErr(a, `jail: "`+a[4]+`" not found`)
		}
		delete(w.jails, a[4])
	case a[0] == "/usr/sbin/jexec":
		return true, w.health
	default:
		return false, nil
	}
	return true, nil
}

// left lists what a try made that is still there; empty when nothing is.
func (w *tryWorld) left(fh *fakeHost) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var l []string
	for n := range w.made {
		l = append(l, "dataset "+n)
	}
	for s := range w.snaps {
		l = append(l, "snapshot "+s)
	}
	for h := range w.holds {
		if h != "rollout zpool/proto@1" {
			l = append(l, "hold "+h)
		}
	}
	if _, ok := w.jails["vhost1-try"]; ok {
		l = append(l, "jail vhost1-try")
	}
	if v := w.props["zpool/vhost1"][propTry]; v != "" && v != none {
		l = append(l, "rollout:try="+v)
	}
	t := fh.m.Cfg.Tries["vhost1-try"]
	for _, f := range []string{fh.m.Host.ConfFile(fh.m.Jail(t)), fh.m.Cfg.FstabPath(t), t.Path} {
		if _, err := os.Stat(f); err == nil {
			l = append(l, "file "+f)
		}
	}
	sort.Strings(l)
	return l
}

// productionUntouched fails when any command stopped, started or changed vhost1 (or vhost2)
// beyond the try's snapshot of its datasets and its journal.
func productionUntouched(t *testing.T, fh *fakeHost, w *tryWorld) {
	t.Helper()
	for _, c := range fh.calls() {
		switch {
		case strings.HasPrefix(c, "/usr/sbin/jail ") && !strings.HasSuffix(c, " vhost1-try"),
			strings.HasPrefix(c, "/sbin/zfs set rollout:snapshot"), strings.HasPrefix(c, "/sbin/zfs set 'rollout:pending"),
			strings.HasPrefix(c, "/sbin/zfs destroy") && !strings.Contains(c, "vhost1-try") && !strings.Contains(c, "@rollout-try-"):
			t.Errorf("production touched: %s", c)
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.jails["vhost1"]; !ok {
		t.Error("vhost1 no longer runs")
	}
}

func execute(t *testing.T, fh *fakeHost, p *Plan) error {
	t.Helper()
	_, err := fh.m.Execute(context.Background(), p)
	return err
}

var tryMakeSteps = "journal snapshot hold datasets conf fstab start health commit"
var tryEndNames = "end conf stop etc destroy snapshots release files forget"

// The plan of a try, with --keep and without, and of its end: these steps, these exact
// commands; planning (the dry run) changes nothing.
func TestPlanTryArgv(t *testing.T) {
	ctx := context.Background()
	fh, w := newTryWorld(t)
	p, err := fh.m.PlanTry(ctx, "proto@2", "vhost1", TryOptions{Keep: true})
	if err != nil {
		t.Fatal(err)
	}
	vp := p.Vhosts[0]
	if stepNames(vp.Steps) != tryMakeSteps || stepNames(vp.Undo) != tryEndNames || !vp.UndoAny {
		t.Fatalf("steps %q undo %q (any %v)", stepNames(vp.Steps), stepNames(vp.Undo), vp.UndoAny)
	}
	conf := "/etc/jail.conf.d/vhost1-try.conf" // jail(8)'s argv as FreeBSD's host writes it
	s := "@rollout-try-1764000000"
	want := map[string][]string{
		"journal":  {"/sbin/zfs set 'rollout:try=name=vhost1-try snap=rollout-try-1764000000 to=zpool/proto@2 state=making' zpool/vhost1"},
		"snapshot": {"/sbin/zfs snapshot zpool/vhost1/cfg" + s + " zpool/vhost1/var" + s + " zpool/vhost1/home" + s},
		"hold":     {"/sbin/zfs hold -r rollout:try:vhost1-try zpool/proto@2"},
		"datasets": {"/sbin/zfs create -o mountpoint=legacy -o rollout:try-of=vhost1 zpool/vhost1-try",
			"/sbin/zfs clone -o mountpoint=legacy zpool/vhost1/cfg" + s + " zpool/vhost1-try/cfg",
			"/sbin/zfs clone -o mountpoint=legacy zpool/vhost1/var" + s + " zpool/vhost1-try/var",
			"/sbin/zfs clone -o mountpoint=legacy zpool/vhost1/home" + s + " zpool/vhost1-try/home"},
		"start":  {"/usr/sbin/jls -j vhost1-try jid name path", "/sbin/mount -p", "/usr/sbin/jail -f " + conf + " -c vhost1-try", "/usr/sbin/jls -j vhost1-try jid name path"},
		"health": {"/usr/sbin/jexec vhost1-try /usr/local/bin/check --quick"},
		"commit": {"/sbin/zfs set 'rollout:try=name=vhost1-try snap=rollout-try-1764000000 to=zpool/proto@2 state=live' zpool/vhost1"},
	}
	for _, st := range vp.Steps {
		if w, ok := want[st.Name]; ok && strings.Join(st.Cmds, "\n") != strings.Join(w, "\n") {
			t.Errorf("step %s:\n%s\nwant\n%s", st.Name, strings.Join(st.Cmds, "\n"), strings.Join(w, "\n"))
		}
	}
	wantEnd := map[string][]string{
		"end":       {"/sbin/zfs set 'rollout:try=name=vhost1-try snap=rollout-try-1764000000 to=zpool/proto@2 state=ending' zpool/vhost1"},
		"stop":      {"/usr/sbin/jail -f " + conf + " -r vhost1-try", "/sbin/mount -p"},
		"destroy":   {"/sbin/zfs destroy -r zpool/vhost1-try"},
		"snapshots": {"/sbin/zfs destroy zpool/vhost1/cfg" + s, "/sbin/zfs destroy zpool/vhost1/var" + s, "/sbin/zfs destroy zpool/vhost1/home" + s},
		"release":   {"/sbin/zfs release -r rollout:try:vhost1-try zpool/proto@2"},
		"forget":    {"/sbin/zfs set rollout:try=none zpool/vhost1"},
	}
	for _, st := range vp.Undo {
		if w, ok := wantEnd[st.Name]; ok && strings.Join(st.Cmds, "\n") != strings.Join(w, "\n") {
			t.Errorf("end step %s:\n%s\nwant\n%s", st.Name, strings.Join(st.Cmds, "\n"), strings.Join(w, "\n"))
		}
	}
	// the dry run read the host and changed nothing
	for _, c := range fh.calls() {
		if !strings.HasPrefix(c, "/sbin/zfs get") && !strings.HasPrefix(c, "/sbin/zfs list") && !strings.HasPrefix(c, "/sbin/zfs holds") &&
			!strings.HasPrefix(c, "/usr/sbin/jls") && !strings.HasPrefix(c, "/sbin/mount -p") {
			t.Errorf("planning ran %s", c)
		}
	}
	if l := w.left(fh); len(l) > 0 {
		t.Errorf("planning left %v", l)
	}
	// without --keep the try ends as soon as it is healthy
	p, err = fh.m.PlanTry(ctx, "proto@2", "vhost1", TryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := stepNames(p.Vhosts[0].Steps); got != tryMakeSteps+" "+tryEndNames {
		t.Errorf("without --keep: %s", got)
	}
}

// try --keep leaves a healthy try running beside production, which runs on untouched; status
// shows it; --end leaves nothing of it; a second --end is a one-line error.
func TestTryKeepAndEnd(t *testing.T) {
	ctx := context.Background()
	fh, w := newTryWorld(t)
	p, err := fh.m.PlanTry(ctx, "proto@2", "vhost1", TryOptions{Keep: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := execute(t, fh, p); err != nil {
		t.Fatal(err)
	}
	want := []string{"dataset zpool/vhost1-try", "dataset zpool/vhost1-try/cfg", "dataset zpool/vhost1-try/home", "dataset zpool/vhost1-try/var",
		"hold rollout:try:vhost1-try zpool/proto@2", "jail vhost1-try"}
	got := strings.Join(w.left(fh), "\n")
	for _, x := range want {
		if !strings.Contains(got, x) {
			t.Errorf("after try --keep, missing %s; there is:\n%s", x, got)
		}
	}
	fstab, err := os.ReadFile(fh.m.Cfg.FstabPath(fh.m.Cfg.Tries["vhost1-try"]))
	if err != nil || !strings.Contains(string(fstab), "zpool/vhost1-try/var") || !strings.Contains(string(fstab), "/.zfs/snapshot/2") ||
		strings.Contains(string(fstab), "zpool/vhost1/") {
		t.Errorf("the try's fstab (%v):\n%s", err, fstab)
	}
	productionUntouched(t, fh, w)
	st, err := fh.m.Status(ctx, []string{"vhost1"}, StatusOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if tr := st[0].Try; tr == nil || tr.Name != "vhost1-try" || tr.Snapshot != "zpool/proto@2" || tr.State != "live" || !tr.Running {
		t.Errorf("status try: %+v", st[0].Try)
	}
	// a second try of the same vhost is refused
	if _, err := fh.m.PlanTry(ctx, "proto@2", "vhost1", TryOptions{}); err == nil || !strings.Contains(err.Error(), "already has a try") {
		t.Errorf("second try: %v", err)
	}
	p, err = fh.m.PlanTryEnd(ctx, "vhost1")
	if err != nil {
		t.Fatal(err)
	}
	if err := execute(t, fh, p); err != nil {
		t.Fatal(err)
	}
	if l := w.left(fh); len(l) > 0 {
		t.Errorf("after --end: %v", l)
	}
	productionUntouched(t, fh, w)
	if _, err := fh.m.PlanTryEnd(ctx, "vhost1"); err == nil || err.Error() != "vhost vhost1 has no try (rollout try proto@N vhost1 starts one)" {
		t.Errorf("--end without a try: %v", err)
	}
}

// Without --keep: started, health-checked, ended; a failing health check tears it down too.
func TestTryEndsAfterHealth(t *testing.T) {
	ctx := context.Background()
	for _, fail := range []bool{false, true} {
		fh, w := newTryWorld(t)
		if fail {
			w.health = cmdErr([]string{"/usr/sbin/jexec"}, "connection refused")
		}
		p, err := fh.m.PlanTry(ctx, "proto@2", "vhost1", TryOptions{})
		if err != nil {
			t.Fatal(err)
		}
		err = execute(t, fh, p)
		if fail != (err != nil) || fail && !strings.Contains(err.Error(), "vhost vhost1-try: health failed") {
			t.Errorf("health fails %v: %v", fail, err)
		}
		if !slices.Contains(fh.calls(), "/usr/sbin/jexec vhost1-try /usr/local/bin/check --quick") {
			t.Errorf("health fails %v: no health check ran", fail)
		}
		if l := w.left(fh); len(l) > 0 {
			t.Errorf("health fails %v: left %v", fail, l)
		}
		productionUntouched(t, fh, w)
	}
}

// A try killed before any of its steps, or an --end killed before any of its steps, is torn
// down completely by one repair, and production is not touched; a live try is left alone.
func TestTryRepairAfterCrash(t *testing.T) {
	ctx := context.Background()
	for _, end := range []bool{false, true} {
		names := strings.Fields(tryMakeSteps)
		if end {
			names = strings.Fields(tryEndNames)
		}
		for k := range names {
			fh, w := newTryWorld(t)
			p, err := fh.m.PlanTry(ctx, "proto@2", "vhost1", TryOptions{Keep: true})
			if err != nil {
				t.Fatal(err)
			}
			steps := p.Vhosts[0].Steps
			if end {
				if err := execute(t, fh, p); err != nil {
					t.Fatal(err)
				}
				if p, err = fh.m.PlanTryEnd(ctx, "vhost1"); err != nil {
					t.Fatal(err)
				}
				steps = p.Vhosts[0].Steps
			}
			// the crash: the steps before k ran, nothing else
			for _, s := range steps[:k] {
				if err := s.run(ctx); err != nil {
					t.Fatalf("step %s: %v", s.Name, err)
				}
			}
			where := fmt.Sprintf("end %v, killed before %s", end, names[k])
			rp, err := fh.m.PlanRepair(ctx, nil)
			if err != nil {
				t.Fatalf("%s: repair: %v", where, err)
			}
			if k == 0 && !end {
				if len(rp.Vhosts) != 2 { // nothing happened yet: nothing to tear down
					t.Errorf("%s: repair plans %d vhosts", where, len(rp.Vhosts))
				}
			}
			if err := execute(t, fh, rp); err != nil {
				t.Fatalf("%s: repair: %v", where, err)
			}
			if end && k == 0 {
				// --end died before it began: the try is live, and stays
				if l := w.left(fh); !slices.Contains(l, "jail vhost1-try") {
					t.Errorf("%s: the live try is gone: %v", where, l)
				}
				continue
			}
			if l := w.left(fh); len(l) > 0 {
				t.Errorf("%s: repair left %v", where, l)
			}
			productionUntouched(t, fh, w)
		}
	}
	// a live try is the admin's: repair leaves it
	fh, w := newTryWorld(t)
	p, err := fh.m.PlanTry(ctx, "proto@2", "vhost1", TryOptions{Keep: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := execute(t, fh, p); err != nil {
		t.Fatal(err)
	}
	before := w.left(fh)
	rp, err := fh.m.PlanRepair(ctx, []string{"vhost1-try"})
	if err != nil {
		t.Fatal(err)
	}
	if err := execute(t, fh, rp); err != nil {
		t.Fatal(err)
	}
	if after := w.left(fh); !slices.Equal(before, after) {
		t.Errorf("repair changed a live try: %v -> %v", before, after)
	}
}

// prune keeps the snapshot a try runs on, saying so.
func TestPruneKeepsTrySnapshot(t *testing.T) {
	ctx := context.Background()
	fh, w := newTryWorld(t)
	p, err := fh.m.PlanTry(ctx, "proto@2", "vhost1", TryOptions{Keep: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := execute(t, fh, p); err != nil {
		t.Fatal(err)
	}
	fh.r.out[zfsListSnap] += "zpool/proto@3\t331\t30\t1764200000\t0\t0\nzpool/proto/etc@3\t332\t30\t1764200000\t0\t0\n"
	items, err := fh.m.Prune(ctx, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		if it.Snapshot == "zpool/proto@2" && (it.Destroy || it.Reason != "in use by the try vhost1-try of vhost vhost1 (rollout try --end vhost1)") {
			t.Errorf("prune: %+v", it)
		}
	}
	for _, c := range fh.calls() {
		if strings.HasPrefix(c, "/sbin/zfs destroy") {
			t.Errorf("prune ran %s", c)
		}
	}
	if l := w.left(fh); !slices.Contains(l, "hold rollout:try:vhost1-try zpool/proto@2") {
		t.Errorf("the try's hold is gone: %v", l)
	}
}

// Bad input changes nothing: an unknown vhost, a snapshot that does not exist, a try dataset
// that rollout did not make, a try name jail already in use.
func TestTryRefusals(t *testing.T) {
	ctx := context.Background()
	fh, w := newTryWorld(t)
	for _, c := range []struct {
		ref, vhost, want string
		edit             func()
	}{
		{"proto@2", "vhost9", `unknown vhost "vhost9"`, nil},
		{"proto@7", "vhost1", "proto@7", nil},
		{"proto@2", "vhost3", "dataset zpool/vhost3 does not exist", nil},
		{"proto@2", "vhost1", "zpool/vhost1-try already exists", func() { w.existing["zpool/vhost1-try"] = true; w.base += "zpool/vhost1-try\trollout:snapshot\t-\t-\n" }},
	} {
		if c.edit != nil {
			c.edit()
		}
		fh.reset()
		_, err := fh.m.PlanTry(ctx, c.ref, c.vhost, TryOptions{})
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("try %s %s: %v, want %q", c.ref, c.vhost, err, c.want)
		}
		for _, call := range fh.calls() {
			if !strings.HasPrefix(call, "/sbin/zfs get") && !strings.HasPrefix(call, "/sbin/zfs list") && !strings.HasPrefix(call, "/sbin/zfs holds") &&
				!strings.HasPrefix(call, "/usr/sbin/jls") && !strings.HasPrefix(call, "/sbin/mount -p") {
				t.Errorf("try %s %s ran %s", c.ref, c.vhost, call)
			}
		}
	}
	// a dataset of that name that is not the vhost's try is never destroyed by --end
	w.props["zpool/vhost1"] = map[string]string{propTry: "name=vhost1-try snap=rollout-try-5 to=zpool/proto@2 state=ending"}
	w.made["zpool/vhost1-try"] = ""
	w.props["zpool/vhost1-try"] = map[string]string{propTryOf: "vhost2"}
	p, err := fh.m.PlanTryEnd(ctx, "vhost1")
	if err != nil {
		t.Fatal(err)
	}
	if err := execute(t, fh, p); err == nil || !strings.Contains(err.Error(), "not the try of vhost vhost1") {
		t.Errorf("--end of a foreign dataset: %v", err)
	}
	if !w.exists("zpool/vhost1-try") {
		t.Error("--end destroyed a dataset that was not the try's")
	}
}

func TestTryRecordRoundTrip(t *testing.T) {
	r := &TryRecord{Name: "vhost1-try", Snap: "rollout-try-17", To: "zpool/proto@2", State: "live"}
	if got, err := parseTry(r.String()); err != nil || *got != *r {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	for _, s := range []string{"", "-", "none"} {
		if r, err := parseTry(s); r != nil || err != nil {
			t.Errorf("parseTry(%q) = %v %v", s, r, err)
		}
	}
	for _, bad := range []string{
		"name=a;b snap=rollout-try-1 to=zpool/proto@2 state=live",
		"name=t snap=other to=zpool/proto@2 state=live",
		"name=t snap=rollout-try-1 to=zpool/proto state=live",
		"name=t snap=rollout-try-1 to=zpool/proto@2 state=odd",
		"name=t garbage",
	} {
		if _, err := parseTry(bad); err == nil {
			t.Errorf("parseTry(%q) accepted", bad)
		}
	}
}

// status flags a try that did not finish and a live try whose jail is gone (after a reboot).
func TestStatusTryAttention(t *testing.T) {
	for _, c := range []struct {
		try  *TryStatus
		want string
	}{
		{&TryStatus{Name: "v-try", State: "live", Running: true}, ""},
		{&TryStatus{Name: "v-try", State: "making"}, "unfinished try v-try in state making (rollout repair v)"},
		{&TryStatus{Name: "v-try", State: "live"}, "try v-try is not running (rollout try --end v)"},
	} {
		s := VhostStatus{Vhost: "v", Try: c.try}
		s.attention()
		if got := strings.Join(s.Attention, "; "); got != c.want {
			t.Errorf("%+v: attention %q, want %q", c.try, got, c.want)
		}
	}
}
