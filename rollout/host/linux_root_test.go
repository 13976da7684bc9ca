package host

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rollout-dev/rollout/proto/command"
)

// TestLinuxRealJail starts and stops a real jail on this machine: the host's root file
// system, bound read-only, stands in for a snapshot; a tmpfs is its writable /tmp; the
// hooks mount and unmount a tmpfs labelled like the /etc disk. Root only, and skipped
// where mounts or namespaces are not permitted.
func TestLinuxRealJail(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if testing.Short() {
		t.Skip("-short")
	}
	// Not t.TempDir: its RemoveAll would walk into the bound root file system if a test
	// failure left it mounted. Only empty directories are removed here.
	base, err := os.MkdirTemp("/tmp", "rollout-host-")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(base, "jail")
	probe := filepath.Join(base, "probe")
	for _, d := range []string{path, probe} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("mount", "--bind", probe, probe).CombinedOutput(); err != nil {
		_ = os.Remove(probe)
		_ = os.Remove(path)
		_ = os.Remove(base)
		t.Skipf("mount --bind not permitted: %v %s", err, out)
	}
	_ = exec.Command("umount", probe).Run()
	_ = os.Remove(probe)
	if out, err := exec.Command("unshare", "--mount", "--pid", "--fork", "--", "true").CombinedOutput(); err != nil {
		t.Skipf("unshare not permitted: %v %s", err, out)
	}

	fstab := filepath.Join(base, "fstab")
	if err := os.WriteFile(fstab, []byte("/ "+path+" nullfs ro 0 0\ntmpfs "+path+"/tmp tmpfs rw,size=1m,mode=1777 0 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	l := NewLinux(command.Local{Logger: quiet()}, quiet(), state).(*linux)
	j := Jail{
		Name:      "rhtest",
		Path:      path,
		Fstab:     fstab,
		ExecStart: "/bin/sleep 1000 & echo started > /tmp/started",
		ExecStop:  "echo stopping",
		Prestart:  []string{"/bin/sh", "-c", "mount -t tmpfs -o size=1m rollout:rhtest " + path + "/mnt && echo from-prestart > " + path + "/mnt/hook"},
		Poststop:  []string{"umount", path + "/mnt"},
	}
	ctx := context.Background()
	t.Cleanup(func() {
		if err := l.Stop(ctx, j); err != nil {
			t.Errorf("cleanup stop: %v", err)
		}
		if ms, err := l.mounts(); err != nil || len(reverseUnder(ms, base)) > 0 {
			t.Errorf("left mounted under %s (not removed): %v", base, err)
			return
		}
		_ = os.Remove(fstab)
		_ = os.Remove(path)
		_ = os.Remove(base)
	})

	if err := l.Start(ctx, j); err != nil {
		t.Fatal(err)
	}
	st, running, err := l.state(j.Name)
	if err != nil || !running {
		t.Fatalf("not running after start: %v", err)
	}
	for cmd, want := range map[string]string{"/bin/cat /tmp/started": "started\n", "/bin/cat /mnt/hook": "from-prestart\n"} {
		var out bytes.Buffer
		if err := l.Exec(ctx, j.Name, strings.Fields(cmd), &out, nil); err != nil || out.String() != want {
			t.Errorf("Exec %s = %q %v, want %q", cmd, out.String(), err, want)
		}
	}
	if fstype, ok, err := l.Mounted(ctx, path+"/tmp"); err != nil || !ok || fstype != "tmpfs" {
		t.Errorf("Mounted(%s/tmp) = %q %v %v", path, fstype, ok, err)
	}
	if err := l.Start(ctx, j); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("second start: %v", err)
	}

	if err := l.Stop(ctx, j); err != nil {
		t.Fatal(err)
	}
	if alive(l.procDir, st.Init) || alive(l.procDir, st.Holder) {
		t.Errorf("jail processes %d/%d survive the stop", st.Holder, st.Init)
	}
	if ms, _ := l.mounts(); len(reverseUnder(ms, path)) > 0 {
		t.Fatalf("still mounted after stop: %q", reverseUnder(ms, path))
	}

	// a failing exec.start: its output in the error, nothing left behind
	j.ExecStart = "echo rc failed >&2 && exit 3"
	err = l.Start(ctx, j)
	if err == nil || !strings.Contains(err.Error(), "rc failed") {
		t.Fatalf("failing start: %v", err)
	}
	if ms, _ := l.mounts(); len(reverseUnder(ms, path)) > 0 {
		t.Fatalf("still mounted after a failed start: %q", reverseUnder(ms, path))
	}
	if running, _ := l.Running(ctx, j.Name); running {
		t.Fatal("running after a failed start")
	}
}
