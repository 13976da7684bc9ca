//go:build linux

package main

import (
	"os"
	"path/filepath"
	"testing"
)

// The holder's cheap answer: a cgroup.procs with a pid is company; an empty one, a missing
// file or no cgroup at all is not final (the walk of /proc decides).
func TestCgroupPopulated(t *testing.T) {
	if cgroupPopulated(nil) {
		t.Error("no cgroup: populated")
	}
	dir := t.TempDir()
	cg, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer cg.Close()
	if cgroupPopulated(cg) {
		t.Error("no cgroup.procs: populated")
	}
	for content, want := range map[string]bool{"": false, "4242\n": true, "1\n2\n": true} {
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := cgroupPopulated(cg); got != want {
			t.Errorf("cgroup.procs %q: populated %v, want %v", content, got, want)
		}
	}
}
