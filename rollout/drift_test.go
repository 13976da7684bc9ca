package rollout

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rollout-dev/rollout/etcmerge"
	"github.com/rollout-dev/rollout/rollout/config"
	"github.com/rollout-dev/rollout/rollout/host"
)

// driftManager is a Manager on the FreeBSD host with a recorder for every command: the
// prototype zpool/proto has snapshots 1 and 2 (their /etc under its .zfs/snapshot in a
// temporary directory), vhost1 runs on 1 with its /cfg mounted (zfs). sshd_config changed
// from 1 to 2 and vhost1's /cfg overrides it.
func driftManager(t *testing.T) (*Manager, *recorder, string) {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "rollout.toml")
	cfgText := fmt.Sprintf("pool = \"zpool\"\nstate_dir = %q\njail_root = %q\nfstab_dir = %q\n[proto]\nmountpoint = %q\n[vhost.vhost1]\n",
		filepath.Join(dir, "state"), filepath.Join(dir, "jail"), dir, filepath.Join(dir, "proto"))
	if err := os.WriteFile(file, []byte(cfgText), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	v := cfg.Vhosts["vhost1"]
	write := func(p, data string) {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{"1", "2"} {
		root := filepath.Join(cfg.Proto.Mountpoint, ".zfs", "snapshot", n)
		for _, d := range append([]string{"conf/base/etc", "etc", "dev"}, v.Datasets...) {
			if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		write(filepath.Join(cfg.Proto.EtcMountpoint(), ".zfs", "snapshot", n, "ssh", "sshd_config"), "Port 22\nsnapshot "+n+"\n")
	}
	write(filepath.Join(v.Path, "cfg", "ssh", "sshd_config"), "Port 2222\nsnapshot 1\n")
	snaps := "zpool/proto@1\t11\t100\t1700000000\t0\t1\nzpool/proto/etc@1\t12\t100\t1700000000\t0\t1\n" +
		"zpool/proto@2\t21\t200\t1700000100\t0\t0\nzpool/proto/etc@2\t22\t200\t1700000100\t0\t0\n"
	r := &recorder{out: map[string]string{
		"/sbin/zfs list -H -o name -t filesystem": "zpool/proto\nzpool/proto/etc\n",
		"/sbin/zfs list -H -p -t snapshot":        snaps,
		"/sbin/zfs get -H -p -s local":            "rollout:snapshot\tzpool/proto@1\nrollout:previous\t-\n",
		"/sbin/zfs get -H -p -r": "zpool/proto\trollout:snapshot\t-\t-\nzpool/proto/etc\trollout:snapshot\t-\t-\n" +
			"zpool/vhost1\trollout:snapshot\tzpool/proto@1\tlocal\nzpool/vhost1\trollout:previous\t-\t-\n" +
			"zpool/vhost1/cfg\trollout:snapshot\tzpool/proto@1\tinherited from zpool/vhost1\nzpool/vhost1/var\trollout:snapshot\tzpool/proto@1\tinherited from zpool/vhost1\n" +
			"zpool/vhost1/home\trollout:snapshot\tzpool/proto@1\tinherited from zpool/vhost1\n",
		"/usr/sbin/jls jid name":  "1 vhost1\n",
		"/sbin/zfs holds -H":      "zpool/proto@1\trollout\tThu Nov 26 10:00 2026\n",
		"/usr/sbin/jls -j vhost1": "1 vhost1 " + v.Path + "\n",
		"/sbin/mount -p":          "zpool/vhost1/cfg\t" + filepath.Join(v.Path, "cfg") + "\tzfs\trw\t0 0\n",
	}}
	m := &Manager{Cfg: cfg, R: r, Host: host.NewFreeBSD(r, quietLog()), Log: quietLog(), Out: &bytes.Buffer{}, Self: "/usr/local/sbin/rollout"}
	return m, r, filepath.Join(v.Path, "cfg")
}

func TestPromotePlanListsDrift(t *testing.T) {
	m, r, _ := driftManager(t)
	ctx := context.Background()
	p, err := m.PlanPromote(ctx, "proto@2", []string{"vhost1"}, SwitchOptions{Parallel: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Vhosts) != 1 || len(p.Vhosts[0].Drift) != 1 || p.Vhosts[0].Drift[0].Path != "ssh/sshd_config" {
		t.Fatalf("plan drift %+v", p.Vhosts[0])
	}
	var b bytes.Buffer
	p.Print(&b)
	if want := "  warning: its /cfg overrides files the base changed from proto@1 to proto@2, not merged (rollout etc merge vhost1 proto@2): ssh/sshd_config (changed)\n"; !strings.Contains(b.String(), want) {
		t.Errorf("plan output lacks %q:\n%s", want, b.String())
	}
	// --strict: refused while planning, before any step runs, naming the vhost and the file
	r.calls = nil
	_, err = m.PlanPromote(ctx, "proto@2", []string{"vhost1"}, SwitchOptions{Parallel: 1, Strict: true})
	if err == nil || !strings.Contains(err.Error(), "promote --strict") || !strings.Contains(err.Error(), "vhost vhost1: ssh/sshd_config (changed)") ||
		strings.Contains(err.Error(), "\n") {
		t.Fatalf("strict: %v", err)
	}
	for _, c := range r.calls {
		if strings.Contains(c, "/usr/sbin/jail ") || strings.Contains(c, "zfs hold ") || strings.Contains(c, "zfs set") {
			t.Errorf("--strict refusal ran %q", c)
		}
	}
	// merged: no drift, --strict lets it through
	_, _, res, err := m.EtcMerge(ctx, "vhost1", "proto@2", etcmerge.MergeOptions{})
	if err == nil || !errors.Is(err, etcmerge.ErrConflicts) || len(res) != 1 || res[0].State != etcmerge.MergeConflict {
		t.Fatalf("merge of a conflicting change: %+v, %v", res, err)
	}
	if !strings.Contains(string(mustRead(t, m, "cfg/ssh/sshd_config")), "snapshot 1") {
		t.Error("a conflicting merge wrote the file")
	}
	if _, _, _, err := m.EtcMerge(ctx, "vhost1", "proto@2", etcmerge.MergeOptions{Resolved: true, Paths: []string{"ssh/sshd_config"}}); err != nil {
		t.Fatal(err)
	}
	p, err = m.PlanPromote(ctx, "proto@2", []string{"vhost1"}, SwitchOptions{Parallel: 1, Strict: true})
	if err != nil || len(p.Vhosts[0].Drift) != 0 || len(p.Vhosts[0].Warnings) != 0 {
		t.Fatalf("after resolving: %v, %+v", err, p)
	}
}

func TestEtcDriftAndCleanMerge(t *testing.T) {
	m, _, cfgDir := driftManager(t)
	ctx := context.Background()
	// /cfg changed another line than the base: a clean merge
	if err := os.WriteFile(filepath.Join(cfgDir, "ssh", "sshd_config"), []byte("Port 2222\nsnapshot 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	newEtc := filepath.Join(m.Cfg.Proto.EtcMountpoint(), ".zfs", "snapshot", "2", "ssh", "sshd_config")
	if err := os.WriteFile(newEtc, []byte("Port 22\nsnapshot 1\nUseDNS no\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	from, to, ds, err := m.EtcDrift(ctx, "vhost1", "proto@2")
	if err != nil || from != "zpool/proto@1" || to != "zpool/proto@2" || len(ds) != 1 || ds[0].Kind != etcmerge.BaseChanged {
		t.Fatalf("EtcDrift = %s %s %+v %v", from, to, ds, err)
	}
	_, _, res, err := m.EtcMerge(ctx, "vhost1", "proto@2", etcmerge.MergeOptions{})
	if err != nil || len(res) != 1 || !res[0].Written {
		t.Fatalf("EtcMerge: %+v %v", res, err)
	}
	if got := string(mustRead(t, m, "cfg/ssh/sshd_config")); got != "Port 2222\nsnapshot 1\nUseDNS no\n" {
		t.Errorf("merged: %q", got)
	}
	if _, _, ds, err := m.EtcDrift(ctx, "vhost1", "proto@2"); err != nil || len(ds) != 0 {
		t.Errorf("drift after merge: %+v %v", ds, err)
	}
}

func mustRead(t *testing.T, m *Manager, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(m.Cfg.Vhosts["vhost1"].Path, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
