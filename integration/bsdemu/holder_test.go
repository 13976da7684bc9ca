//go:build linux

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
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

// A pin's cheap check: a directory is on the device its stat shows, in mountinfo's
// "major:minor", and on no other.
func TestSameDev(t *testing.T) {
	dir := t.TempDir()
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	dev := fmt.Sprintf("%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev))
	if !sameDev(dir, dev) {
		t.Errorf("%s is not on its own device %s", dir, dev)
	}
	if sameDev(dir, dev+"1") || sameDev(filepath.Join(dir, "missing"), dev) {
		t.Error("another device, or a missing directory, counts as the same")
	}
	if !sameDev("/proc", mountDevOf(t, "/proc")) {
		t.Error("/proc: stat and mountinfo disagree")
	}
}

// mountDevOf is the device mountinfo gives for the mount at target.
func mountDevOf(t *testing.T, target string) string {
	t.Helper()
	ms, err := mountInfo()
	if err != nil {
		t.Fatal(err)
	}
	m, ok := topMountAt(ms, target)
	if !ok {
		t.Fatalf("%s is not mounted", target)
	}
	return m.Dev
}
