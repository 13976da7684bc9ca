package zfs

import (
	"strings"
	"testing"
)

func TestValidateDataset(t *testing.T) {
	good := []string{"zpool", "zpool/proto", "zpool/proto/etc", "tank/a_b-c.d:e", "Z/x"}
	for _, n := range good {
		if err := ValidateDataset(n); err != nil {
			t.Errorf("ValidateDataset(%q) = %v, want ok", n, err)
		}
	}
	bad := map[string]string{
		"":                    "empty",
		"zpool/":              "empty",
		"/zpool":              "empty",
		"zpool//proto":        "empty",
		"zpool/../etc":        `".." is not allowed`,
		"zpool/./x":           `"." is not allowed`,
		"zpool/pro to":        "' '",
		"zpool/proto;reboot":  "';'",
		"zpool/$(reboot)":     "'$'",
		"zpool/`id`":          "'`'",
		"zpool/a'b":           `'\''`,
		`zpool/a"b`:           `'"'`,
		"zpool/a|b":           "'|'",
		"zpool/proto@1":       "'@'",
		"zpool/-x":            "begin with '-'",
		"1pool/x":             "must begin with a letter",
		"zpool/" + long(300):  "longer than",
		"zpool/new\nline":     "'\\n'",
		"zpool/a&b":           "'&'",
		"zpool/a>b":           "'>'",
		"zpool/proto\x00evil": "'\\x00'",
	}
	for n, want := range bad {
		err := ValidateDataset(n)
		if err == nil {
			t.Errorf("ValidateDataset(%q) = nil, want error", n)
			continue
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("ValidateDataset(%q) = %q, want it to mention %s", n, err, want)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("ValidateDataset(%q): error is not one line: %q", n, err)
		}
	}
}

func long(n int) string { return strings.Repeat("a", n) }

func TestSplitSnapshot(t *testing.T) {
	ds, n, err := SplitSnapshot("zpool/proto@12")
	if err != nil || ds != "zpool/proto" || n != "12" {
		t.Fatalf("SplitSnapshot = %q %q %v", ds, n, err)
	}
	for _, bad := range []string{"zpool/proto", "zpool/proto@", "zpool/proto@2;reboot", "zpool/proto@../etc",
		"zpool/proto@a/b", "zpool/proto@1@2", "@1", "zpool/proto@ 1", "zpool/proto@.."} {
		if _, _, err := SplitSnapshot(bad); err == nil {
			t.Errorf("SplitSnapshot(%q) = nil error", bad)
		} else if !strings.Contains(err.Error(), bad) {
			t.Errorf("SplitSnapshot(%q): error %q does not name the value", bad, err)
		}
	}
}

func TestValidateSnapshotNameAndPool(t *testing.T) {
	for _, ok := range []string{"1", "2026-11-25", "pre_upgrade.1"} {
		if err := ValidateSnapshotName(ok); err != nil {
			t.Errorf("ValidateSnapshotName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "..", "a/b", "a b", "x;y", "-n"} {
		if ValidateSnapshotName(bad) == nil {
			t.Errorf("ValidateSnapshotName(%q) = nil", bad)
		}
	}
	if ValidatePool("zpool") != nil || ValidatePool("zpool/x") == nil || ValidatePool("9p") == nil {
		t.Error("ValidatePool")
	}
	if ValidateUserProperty("rollout:current") != nil || ValidateUserProperty("current") == nil ||
		ValidateUserProperty("rollout:a b") == nil {
		t.Error("ValidateUserProperty")
	}
}

// ZFS allows 255 characters for dataset@snapshot, so a snapshot name alone can have at most
// 253; a 300-character name was accepted here and refused only by zfs(8).
func TestValidateSnapshotNameLength(t *testing.T) {
	if err := ValidateSnapshotName(long(MaxNameLen - 2)); err != nil {
		t.Errorf("253 characters: %v", err)
	}
	err := ValidateSnapshotName(long(300))
	if err == nil || !strings.Contains(err.Error(), "300 characters") || strings.Contains(err.Error(), long(40)) {
		t.Errorf("300 characters: %v", err)
	}
	if _, _, err := SplitSnapshot("zpool/proto@" + long(300)); err == nil {
		t.Error("SplitSnapshot accepted a 300-character snapshot name")
	}
}
