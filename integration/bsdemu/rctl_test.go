//go:build linux

package main

import "testing"

// rctl's parsing: rctl.c expand_amount (expand_number), kern_rctl.c rctl_string_to_rule.
func TestRctlParse(t *testing.T) {
	for s, want := range map[string]rctlRule{
		"jail:t:memoryuse:deny=64M": {"memoryuse", "deny", 64 << 20},
		"j:t:MAXPROC:Deny=5":        {"maxproc", "deny", 5},
		"jail:t:pcpu:deny=50":       {"pcpu", "deny", 50},
	} {
		id, r, set, err := rctlParse(s)
		if err != nil || id != "t" || r != want || !set {
			t.Errorf("%s: %q %+v %v %v", s, id, r, set, err)
		}
	}
	if id, r, set, err := rctlParse("jail:t"); err != nil || id != "t" || r != (rctlRule{}) || set {
		t.Errorf("filter jail:t: %q %+v %v %v", id, r, set, err)
	}
	for _, s := range []string{"jail:t:memory:deny=1", "jail:t:memoryuse:refuse=1", "jail:t:memoryuse:deny=1x",
		"jail:t:memoryuse:deny=8e", "jail:t:cputime:log=9223372036855", "user:0:maxproc:deny=1"} {
		if _, r, _, err := rctlParse(s); err == nil {
			t.Errorf("%s accepted: %+v", s, r)
		}
	}
}
