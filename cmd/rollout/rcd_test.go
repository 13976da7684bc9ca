package main

import (
	"os"
	"os/exec"
	"regexp"
	"testing"
)

// rc.d/rollout must parse, and rcorder(8) must place it after ZFS has mounted the pool and
// before rc.d/jail, so that the vhosts are back (and jail.conf.d written) before jails start.
func TestRCScript(t *testing.T) {
	const script = "rc.d/rollout"
	if out, err := exec.Command("sh", "-n", script).CombinedOutput(); err != nil {
		t.Fatalf("sh -n %s: %v\n%s", script, err, out)
	}
	b, err := os.ReadFile(script)
	if err != nil {
		t.Fatal(err)
	}
	for _, re := range []string{
		`(?m)^# PROVIDE: rollout$`,
		`(?m)^# REQUIRE: .*\bzfs\b`,
		`(?m)^# BEFORE: .*\bjail\b`,
		`(?m)^# KEYWORD: .*\bshutdown\b`,
		`(?m)^rcvar="rollout_enable"$`,
		`(?m)\$\{command\} --config "\$\{rollout_config\}" boot$`,
		`(?m)\$\{command\} --config "\$\{rollout_config\}" shutdown$`,
	} {
		if !regexp.MustCompile(re).Match(b) {
			t.Errorf("%s does not match %s", script, re)
		}
	}
}
