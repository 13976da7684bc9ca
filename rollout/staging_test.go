package rollout

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/rollout-dev/rollout/proto/command"
	"github.com/rollout-dev/rollout/rollout/config"
	"github.com/rollout-dev/rollout/rollout/host"
)

// Issue 8, finding 5: after a kill -9 during promote, the next one failed on rollout's own
// staging directory in state_dir (a file system still mounted in it). Repair's orphans step
// now unmounts (/sbin/umount, by absolute path) and removes such leftovers, only names rollout
// makes, without following symbolic links.
func TestOrphansStepCleansStaging(t *testing.T) {
	tmp := t.TempDir()
	state := filepath.Join(tmp, "state")
	trial := filepath.Join(state, "etc-trial-vhost1-123")
	mustMkdir(t, filepath.Join(trial, "etc", "ssh"), filepath.Join(trial, "empty-cfg"))
	mustWrite(t, filepath.Join(trial, "etc", "rc.conf"), filepath.Join(trial, "etc", "ssh", "sshd_config"))
	// a link named like a leftover: removed, its target left alone
	outside := filepath.Join(tmp, "outside")
	mustMkdir(t, outside)
	mustWrite(t, filepath.Join(outside, "keep"), filepath.Join(state, "lock"), filepath.Join(state, "etc-vhost1.json"))
	mustMkdir(t, filepath.Join(state, "other"))
	if err := os.Symlink(outside, filepath.Join(state, "etc-trial-vhost2-456")); err != nil {
		t.Fatal(err)
	}

	// the mount table: a memory disk mounted twice (stacked) on the trial's etc
	var mu sync.Mutex
	mounted := []string{filepath.Join(trial, "etc"), filepath.Join(trial, "etc")}
	var umounts []string
	r := &recorder{hook: func(_ context.Context, c command.Cmd) (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		switch c.Argv[0] {
		case "/sbin/mount":
			_, _ = io.WriteString(c.Stdout, "zpool/root / zfs rw 0 0\n")
			for _, mp := range mounted {
				_, _ = io.WriteString(c.Stdout, "/dev/md9 "+mp+" ufs rw 0 0\n")
			}
			return true, nil
		case "/sbin/umount":
			umounts = append(umounts, command.Quote(c.Argv))
			if i := slices.Index(mounted, c.Argv[1]); i >= 0 {
				// a file of the mounted file system must not be removed through the mount
				if _, err := os.Stat(filepath.Join(trial, "etc", "rc.conf")); err != nil {
					t.Errorf("the mounted file system was emptied before its unmount: %v", err)
				}
				mounted = slices.Delete(mounted, len(mounted)-1, len(mounted))
			}
			return true, nil
		}
		return false, nil
	}}
	m := &Manager{R: r, Host: host.NewFreeBSD(r, quietLog()), Log: quietLog(), Out: io.Discard, Cfg: &config.Config{StateDir: state}}
	if err := m.orphansStep().run(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := "/sbin/umount " + filepath.Join(trial, "etc")
	if len(umounts) != 2 || umounts[0] != want || umounts[1] != want {
		t.Errorf("unmounts %q, want %q twice", umounts, want)
	}
	left, _ := os.ReadDir(state)
	var names []string
	for _, e := range left {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "etc-vhost1.json lock other" {
		t.Errorf("state_dir holds %v, want etc-vhost1.json lock other", names)
	}
	if _, err := os.Stat(filepath.Join(outside, "keep")); err != nil {
		t.Errorf("the symlink's target lost its file: %v", err)
	}

	// still mounted after the unmount (busy): reported, the directory kept
	mustMkdir(t, filepath.Join(trial, "etc"))
	mu.Lock()
	mounted = []string{filepath.Join(trial, "etc")}
	mu.Unlock()
	r.fail = map[string]string{"/sbin/umount": "Device busy"}
	r.hook = func(_ context.Context, c command.Cmd) (bool, error) {
		if c.Argv[0] == "/sbin/mount" {
			_, _ = io.WriteString(c.Stdout, "/dev/md9 "+filepath.Join(trial, "etc")+" ufs rw 0 0\n")
			return true, nil
		}
		return false, nil
	}
	if _, err := m.CleanStaging(context.Background()); err == nil || !strings.Contains(err.Error(), "unmount "+filepath.Join(trial, "etc")) {
		t.Errorf("busy mount: %v", err)
	}
	if _, err := os.Stat(filepath.Join(trial, "etc")); err != nil {
		t.Errorf("a busy mount point was removed: %v", err)
	}
}

// A mount that is still there after every unmount (stacked without end) is given up after
// maxStacked unmounts, not unmounted forever; its directory stays.
func TestCleanStagingGivesUpOnEndlessMounts(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	trial := filepath.Join(state, "etc-trial-vhost1-1")
	mustMkdir(t, trial)
	umounts := 0
	r := &recorder{hook: func(_ context.Context, c command.Cmd) (bool, error) {
		switch c.Argv[0] {
		case "/sbin/mount":
			_, _ = io.WriteString(c.Stdout, "/dev/md9 "+trial+" ufs rw 0 0\n")
			return true, nil
		case "/sbin/umount":
			if umounts++; umounts > 100 {
				return true, errors.New("unmounted 100 times") // ends the test's loop, should it not end
			}
			return true, nil
		}
		return false, nil
	}}
	m := &Manager{R: r, Host: host.NewFreeBSD(r, quietLog()), Log: quietLog(), Out: io.Discard, Cfg: &config.Config{StateDir: state}}
	if _, err := m.CleanStaging(context.Background()); err == nil || !strings.Contains(err.Error(), trial+": still mounted after 16 unmounts") || umounts != maxStacked {
		t.Errorf("%d unmounts, %v", umounts, err)
	}
	if _, err := os.Stat(trial); err != nil {
		t.Errorf("a mount point was removed: %v", err)
	}
}

func mustMkdir(t *testing.T, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
}

func mustWrite(t *testing.T, files ...string) {
	t.Helper()
	for _, f := range files {
		if err := os.WriteFile(f, []byte("x\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
