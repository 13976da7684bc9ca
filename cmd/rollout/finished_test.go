package main

import (
	"testing"

	"github.com/rollout-dev/rollout/replicate"
)

// A run that resumed or completed an interrupted replication says so, in its message and its
// syslog line, instead of a bare "up to date".
func TestFinishedSaysWhatWasDone(t *testing.T) {
	for _, c := range []struct {
		r    replicate.Result
		want string
	}{
		{replicate.Result{Mode: replicate.ModeNone}, ""},
		{replicate.Result{Mode: replicate.ModeNone, Resumed: []string{"tank/proto/b"}, Completed: []string{"tank/proto/a", "tank/proto/etc"}, Bytes: 3 << 20},
			" (resumed tank/proto/b, completed tank/proto/a tank/proto/etc, 3.0M)"},
		{replicate.Result{Mode: replicate.ModeIncremental, Discarded: []string{"tank/proto"}, Bytes: 1 << 20}, " (discarded tank/proto)"},
	} {
		if got := finished(c.r); got != c.want {
			t.Errorf("finished(%+v) = %q, want %q", c.r, got, c.want)
		}
	}
}
