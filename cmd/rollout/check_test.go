package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// rollout check: silent with exit 0 when the configuration is fine; one line per problem
// and exit 1 otherwise; --json lists the problems as {what, problem, fix}.
func TestCheckExitAndJSON(t *testing.T) {
	file, dir := testConfig(t)
	// --config-only: the file alone, silently
	if out, errOut, code := run(t, "check", "--config-only", "--config", file); code != 0 || out != "" || errOut != "" {
		t.Errorf("check --config-only: exit %d, stdout %q, stderr %q; want silence and 0", code, out, errOut)
	}
	out, _, code := run(t, "check", "--config-only", "--json", "--config", file)
	env := decodeEnvelope(t, []string{"check"}, out)
	if code != 0 || !env.OK || env.Exit != 0 || env.Command != "check" || len(env.Results) != 0 {
		t.Errorf("check --config-only --json: exit %d, %+v", code, env)
	}
	// a bad file: its line, exit 1, nothing looked at on the host
	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte("pool = \"zpool\"\n[vhost.vhost1]\nfrob = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"check", "--config-only"}, {"check"}} {
		out, errOut, code := run(t, append(args, "--config", bad)...)
		if code != 1 || out != "" || !strings.Contains(errOut, bad+`:3: unknown key "vhost.vhost1.frob"`) {
			t.Errorf("%v on a bad config: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
	// the host: the test pool does not exist (nor, where this is developed, /sbin/zfs), and
	// slave1's known_hosts is missing
	out, errOut, code := run(t, "check", "--config", file)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if code != 1 || len(lines) != 2 || !strings.Contains(errOut, "check: 2 problems found") {
		t.Fatalf("check: exit %d, stdout %q, stderr %q; want 2 problems and exit 1", code, out, errOut)
	}
	if !strings.HasPrefix(lines[0], "/sbin/zfs: not found; ") && !strings.HasPrefix(lines[0], "pool "+testPool+": does not exist") {
		t.Errorf("first problem %q: want zfs or the pool", lines[0])
	}
	if !strings.HasPrefix(lines[1], "slave slave1: known_hosts: open "+filepath.Join(dir, "known_hosts")) || !strings.Contains(lines[1], "; verify the slave's fingerprint, then add it with: ssh-keyscan -p 1 127.0.0.1") {
		t.Errorf("slave problem %q", lines[1])
	}
	out, _, code = run(t, "check", "--json", "--no-slaves", "--config", file)
	env = decodeEnvelope(t, []string{"check"}, out)
	if code != 1 || env.OK || env.Exit != 1 || env.Error != "check: 1 problem found" || len(env.Results) != 1 {
		t.Fatalf("check --json --no-slaves: exit %d, %+v", code, env)
	}
	var p map[string]string
	if err := json.Unmarshal(env.Results[0], &p); err != nil {
		t.Fatal(err)
	}
	if len(p) != 3 || p["what"] == "" || p["problem"] == "" || p["fix"] == "" {
		t.Errorf("result %s: want what, problem, fix", env.Results[0])
	}
	// usage errors
	for _, args := range [][]string{{"check", "vhost1"}, {"check", "--timeout", "0s"}, {"check", "--timeout", "soon"}} {
		if _, errOut, code := run(t, append(args, "--config", file)...); code != 2 {
			t.Errorf("%v: exit %d, %q; want 2", args, code, errOut)
		}
	}
}
