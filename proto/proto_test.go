package proto

import (
	"context"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/rollout-dev/rollout/proto/command"
)

// pool is a command.Runner that answers the zfs calls proto makes from a list of file systems
// and `zfs list -t snapshot` lines, and records every argv; zfs snapshot -r adds a line.
type pool struct {
	fss   []string
	snaps []string // name guid createtxg creation used userrefs, tab separated
	calls []string
	fail  string // argv prefix that fails with this stderr: "prefix|stderr"
}

func (p *pool) Host() string { return "test" }

func (p *pool) Run(_ context.Context, c command.Cmd) error {
	q := command.Quote(c.Argv)
	p.calls = append(p.calls, q)
	if prefix, stderr, ok := strings.Cut(p.fail, "|"); ok && strings.HasPrefix(q, prefix) {
		return &command.Error{Argv: c.Argv, ExitCode: 1, Stderr: stderr, Err: errors.New("exit status 1")}
	}
	var out string
	switch {
	case strings.HasPrefix(q, "/sbin/zfs list -H -o name -t filesystem -r "):
		out = strings.Join(p.fss, "\n") + "\n"
	case strings.HasPrefix(q, "/sbin/zfs list -H -p -t snapshot "):
		out = strings.Join(p.snaps, "\n") + "\n"
	case strings.HasPrefix(q, "/sbin/zfs list -H -o name -t all "):
	case strings.HasPrefix(q, "/sbin/zfs snapshot -r "):
		full := c.Argv[len(c.Argv)-1]
		_, name, _ := strings.Cut(full, "@")
		for _, fs := range p.fss {
			p.snaps = append(p.snaps, fs+"@"+name+"\t900\t99\t1764900000\t0\t0")
		}
	default:
		return errors.New("unexpected command " + q)
	}
	if c.Stdout != nil {
		_, _ = io.WriteString(c.Stdout, out)
	}
	return nil
}

// snapshots made in the order 2, 10, 1, 9, 11, pre (createtxg 5, 7, 12, 30, 31, 40): neither
// the names, as strings or numbers, nor the guids sort that way; the listing is shuffled, and
// zpool/proto/etc has no @9.
func shuffled() *pool {
	return &pool{
		fss: []string{"zpool/proto", "zpool/proto/etc"},
		snaps: []string{
			"zpool/proto@9\t500\t30\t1764000300\t0\t0",
			"zpool/proto/etc@10\t601\t7\t1764000070\t0\t0",
			"zpool/proto@1\t100\t12\t1764000120\t0\t0",
			"zpool/proto@pre\t200\t40\t1764000400\t0\t0",
			"zpool/proto@10\t600\t7\t1764000070\t0\t0",
			"zpool/proto/etc@2\t301\t5\t1764000050\t0\t0",
			"zpool/proto@11\t50\t31\t1764000310\t0\t1",
			"zpool/proto/etc@1\t101\t12\t1764000120\t0\t0",
			"zpool/proto@2\t300\t5\t1764000050\t0\t0",
			"zpool/proto/etc@11\t51\t31\t1764000310\t0\t0",
			"zpool/proto/etc@pre\t201\t40\t1764000400\t0\t0",
		},
	}
}

func TestVersionsInCreationOrder(t *testing.T) {
	p := &Proto{Dataset: "zpool/proto", R: shuffled()}
	vs, err := p.Versions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	var guids []uint64
	for _, v := range vs {
		names = append(names, v.Name)
		guids = append(guids, v.GUID)
		if v.Dataset != "zpool/proto" {
			t.Errorf("version %s of dataset %s, want only the top dataset's", v.Name, v.Dataset)
		}
	}
	if want := []string{"2", "10", "1", "9", "11", "pre"}; !reflect.DeepEqual(names, want) {
		t.Errorf("versions %v, want creation order %v", names, want)
	}
	if want := []uint64{300, 600, 100, 500, 50, 200}; !reflect.DeepEqual(guids, want) {
		t.Errorf("guids %v, want the top dataset's %v", guids, want)
	}
	for _, v := range vs {
		if v.Name == "9" {
			if v.Complete() || v.Datasets != 1 || !reflect.DeepEqual(v.Missing, []string{"zpool/proto/etc"}) {
				t.Errorf("@9: complete %t, %d datasets, missing %v; want incomplete, 1, [zpool/proto/etc]", v.Complete(), v.Datasets, v.Missing)
			}
		} else if !v.Complete() || v.Datasets != 2 || v.Missing != nil {
			t.Errorf("@%s: complete %t, %d datasets, missing %v; want complete on 2", v.Name, v.Complete(), v.Datasets, v.Missing)
		}
	}
	if vs[4].UserRefs != 1 || vs[4].CreateTXG != 31 {
		t.Errorf("@11: %+v", vs[4].Snapshot)
	}
}

func TestVersionsErrors(t *testing.T) {
	for _, fail := range []string{"/sbin/zfs list -H -o name -t filesystem|boom", "/sbin/zfs list -H -p -t snapshot|boom"} {
		r := shuffled()
		r.fail = fail
		if _, err := (&Proto{Dataset: "zpool/proto", R: r}).Versions(context.Background()); err == nil ||
			!strings.Contains(err.Error(), "zpool/proto") {
			t.Errorf("%s: err %v, want one naming zpool/proto", fail, err)
		}
	}
	r := shuffled()
	r.snaps = append(r.snaps, "zpool/proto@x\tnot-a-guid\t1\t1\t0\t0")
	if _, err := (&Proto{Dataset: "zpool/proto", R: r}).Versions(context.Background()); err == nil {
		t.Error("a bad zfs list line: no error")
	}
}

// NextName counts numerically: after @9 and @10 comes @11, not @10 again; other names do not count.
func TestNextName(t *testing.T) {
	vs, err := (&Proto{Dataset: "zpool/proto", R: shuffled()}).Versions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		vs   []Version
		want string
	}{
		{nil, "1"},
		{vs, "12"},
		{vs[:4], "11"}, // 2 10 1 9
		{vs[2:4], "10"},
		{vs[5:], "1"}, // only @pre
	} {
		if got := NextName(c.vs); got != c.want {
			t.Errorf("NextName(%d versions) = %s, want %s", len(c.vs), got, c.want)
		}
	}
}

func TestParseRef(t *testing.T) {
	p := &Proto{Dataset: "zpool/jails/proto"}
	for _, ref := range []string{"12", "proto@12", "zpool/jails/proto@12"} {
		if name, err := p.ParseRef(ref); err != nil || name != "12" {
			t.Errorf("ParseRef(%q) = %q, %v; want 12", ref, name, err)
		}
	}
	for ref, want := range map[string]string{
		"jails/proto@12": "not of the prototype zpool/jails/proto",
		"other@12":       "not of the prototype",
		"zpool/other@12": "not of the prototype",
		"proto@1 2":      `snapshot "proto@1 2"`,
		"":               "empty",
		"proto@":         "empty",
	} {
		if _, err := p.ParseRef(ref); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseRef(%q) = %v, want an error with %q", ref, err, want)
		}
	}
	// a top-level prototype: its base name is the whole name
	if name, err := (&Proto{Dataset: "proto"}).ParseRef("proto@3"); err != nil || name != "3" {
		t.Errorf("top-level ParseRef = %q, %v", name, err)
	}
}

func TestResolve(t *testing.T) {
	ctx := context.Background()
	p := &Proto{Dataset: "zpool/proto", R: shuffled()}
	v, err := p.Resolve(ctx, "proto@10")
	if err != nil || v.FullName() != "zpool/proto@10" || v.GUID != 600 || v.CreateTXG != 7 {
		t.Errorf("Resolve(proto@10) = %+v, %v", v, err)
	}
	v, err = p.Resolve(ctx, "9")
	if err == nil || !strings.Contains(err.Error(), "zpool/proto@9 is missing on zpool/proto/etc") || v.GUID != 500 {
		t.Errorf("Resolve(9) = %+v, %v; want @9 and a missing error", v, err)
	}
	if _, err := p.Resolve(ctx, "12"); err == nil || !strings.Contains(err.Error(), "zpool/proto@12 does not exist") {
		t.Errorf("Resolve(12) = %v", err)
	}
	r := p.R.(*pool)
	calls := len(r.calls)
	if _, err := p.Resolve(ctx, "x;y"); err == nil || len(r.calls) != calls {
		t.Errorf("Resolve(x;y) = %v after %d zfs calls; want an error before any", err, len(r.calls)-calls)
	}
}

func TestCreate(t *testing.T) {
	ctx := context.Background()
	r := shuffled()
	p := &Proto{Dataset: "zpool/proto", R: r}
	v, err := p.Create(ctx, "")
	if err != nil || v.FullName() != "zpool/proto@12" || !v.Complete() {
		t.Fatalf("Create(\"\") = %+v, %v; want zpool/proto@12", v, err)
	}
	if last := r.calls[len(r.calls)-3]; last != "/sbin/zfs snapshot -r zpool/proto@12" {
		t.Errorf("snapshot call %q", last)
	}
	if _, err := p.Create(ctx, "10"); err == nil || !strings.Contains(err.Error(), "zpool/proto@10 already exists") {
		t.Errorf("Create(10) = %v", err)
	}
	calls := len(r.calls)
	if _, err := p.Create(ctx, "a b"); err == nil || len(r.calls) != calls {
		t.Errorf("Create(\"a b\") = %v after %d calls; want an error before any", err, len(r.calls)-calls)
	}
	r.fail = "/sbin/zfs list -H -o name -t all|cannot open 'zpool/proto': dataset does not exist"
	if _, err := p.Create(ctx, "20"); err == nil || !strings.Contains(err.Error(), `prototype dataset "zpool/proto" does not exist`) {
		t.Errorf("Create without the dataset = %v", err)
	}
	r.fail = "/sbin/zfs list -H -o name -t all|permission denied"
	if _, err := p.Create(ctx, "20"); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("Create with zfs failing = %v", err)
	}
	r.fail = "/sbin/zfs snapshot|out of space"
	if _, err := p.Create(ctx, "20"); err == nil || !strings.Contains(err.Error(), "zpool/proto@20: ") {
		t.Errorf("Create with zfs snapshot failing = %v", err)
	}
}

// rollout's "none" and zfs's "-" are unset alike; any other value, "none" inside a name
// included, is itself.
func TestPropValue(t *testing.T) {
	for in, want := range map[string]string{"": "", "-": "", "none": "", "zpool/proto@2": "zpool/proto@2",
		"zpool/none@1": "zpool/none@1", "None": "None", "--": "--"} {
		if got := PropValue(in); got != want {
			t.Errorf("PropValue(%q) = %q, want %q", in, got, want)
		}
	}
}
