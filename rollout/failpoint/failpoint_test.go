package failpoint

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Point
	}{
		{"before:stop", Point{When: "before", Step: "stop", Action: "kill"}},
		{"after:fstab@vhost2", Point{When: "after", Step: "fstab", Target: "vhost2", Action: "kill"}},
		{"before:receive@slave2=pause", Point{When: "before", Step: "receive", Target: "slave2", Action: "pause"}},
	} {
		p, err := Parse(c.in)
		if err != nil || *p != c.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", c.in, p, err, c.want)
		}
	}
	if p, err := Parse(""); p != nil || err != nil {
		t.Errorf("Parse(\"\") = %v, %v", p, err)
	}
	for _, bad := range []string{"stop", "during:stop", "before:", "before:st op", "before:stop@a/b", "before:stop=maim", "before:stop@"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

func TestMatches(t *testing.T) {
	var none *Point
	if none.Matches("before", "stop", "vhost1") {
		t.Error("a nil point matched")
	}
	none.Hit("before", "stop", "vhost1") // must return
	p, _ := Parse("after:stop@vhost2")
	for _, c := range []struct {
		when, step, target string
		want               bool
	}{
		{"after", "stop", "vhost2", true},
		{"before", "stop", "vhost2", false},
		{"after", "start", "vhost2", false},
		{"after", "stop", "vhost1", false},
	} {
		if got := p.Matches(c.when, c.step, c.target); got != c.want {
			t.Errorf("%+v.Matches(%s, %s, %s) = %v", p, c.when, c.step, c.target, got)
		}
	}
	any, _ := Parse("before:commit")
	if !any.Matches("before", "commit", "whatever") {
		t.Error("a point without a target did not match every target")
	}
}

// TestHitKills runs this test binary again with the point armed: the child must die of
// SIGKILL at the boundary, not return.
func TestHitKills(t *testing.T) {
	if os.Getenv("FAILPOINT_CHILD") == "1" {
		p, err := Parse(os.Getenv(Env))
		if err != nil {
			os.Exit(3)
		}
		p.Hit("before", "stop", "other") // not armed for this target
		p.Hit("before", "stop", "vhost1")
		os.Exit(0) // reached only if the kill did not happen
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHitKills$")
	cmd.Env = append(os.Environ(), "FAILPOINT_CHILD=1", Env+"=before:stop@vhost1")
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("child: %v", err)
	}
	ws := ee.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, want death by SIGKILL", ws)
	}
}
