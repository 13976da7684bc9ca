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

// The limits are exact: 255 characters for a dataset and for dataset@snapshot, 253 for a
// snapshot name alone; one more is refused, with the length named.
func TestNameLengthLimits(t *testing.T) {
	ds255 := "zpool/" + long(MaxNameLen-len("zpool/"))
	if err := ValidateDataset(ds255); err != nil {
		t.Errorf("255-character dataset: %v", err)
	}
	if err := ValidateDataset(ds255 + "a"); err == nil || !strings.Contains(err.Error(), "longer than 255") {
		t.Errorf("256-character dataset: %v", err)
	}
	if err := ValidateSnapshotName(long(MaxNameLen - 1)); err == nil || !strings.Contains(err.Error(), "254 characters") {
		t.Errorf("254-character snapshot name: %v", err)
	}
	// dataset@snapshot at exactly 255, then 256 with either part one longer
	ds := "zpool/" + long(200-len("zpool/"))
	snap := long(MaxNameLen - 200 - 1)
	if d, n, err := SplitSnapshot(ds + "@" + snap); err != nil || d != ds || n != snap {
		t.Errorf("255-character snapshot: %q %q %v", d, n, err)
	}
	for _, full := range []string{ds + "a@" + snap, ds + "@" + snap + "a"} {
		if _, _, err := SplitSnapshot(full); err == nil || !strings.Contains(err.Error(), "longer than 255") {
			t.Errorf("%d-character snapshot: %v", len(full), err)
		}
	}
}

// Every character at the edges of the allowed ranges, and the ones just outside them.
func TestValidateComponentCharacters(t *testing.T) {
	for _, s := range []string{"a", "z", "A", "Z", "0", "9", "_", ".x", "x-", ":", "az09AZ_-.:"} {
		if err := ValidateComponent("name", s); err != nil {
			t.Errorf("ValidateComponent(%q) = %v", s, err)
		}
	}
	for _, s := range []string{"`", "{", "@", "[", "/", ";", "x y", "é", "~", "-x", ".", ".."} {
		if err := ValidateComponent("name", s); err == nil {
			t.Errorf("ValidateComponent(%q) = nil", s)
		} else if !strings.HasPrefix(err.Error(), "invalid name ") {
			t.Errorf("ValidateComponent(%q) = %q: does not name the kind", s, err)
		}
	}
}

// A pool name begins with a letter, at either end of either case; digits, '_', '.', ':' and
// '-' are allowed after the first character only.
func TestPoolFirstCharacter(t *testing.T) {
	for _, p := range []string{"a", "z", "A", "Z", "a1", "z_.-:"} {
		if err := ValidatePool(p); err != nil {
			t.Errorf("ValidatePool(%q) = %v", p, err)
		}
		if err := ValidateDataset(p + "/x"); err != nil {
			t.Errorf("ValidateDataset(%q) = %v", p+"/x", err)
		}
	}
	for _, p := range []string{"0", "9x", "_x", ".x", ":x"} {
		if err := ValidatePool(p); err == nil || !strings.Contains(err.Error(), "must begin with a letter") {
			t.Errorf("ValidatePool(%q) = %v", p, err)
		}
		if err := ValidateDataset(p + "/x"); err == nil || !strings.Contains(err.Error(), "must begin with a letter") {
			t.Errorf("ValidateDataset(%q) = %v", p+"/x", err)
		}
	}
	if err := ValidateUserProperty(":x"); err == nil || !strings.Contains(err.Error(), "module:") {
		t.Errorf("ValidateUserProperty(\":x\") = %v", err)
	}
}

// A one-component name's error says "invalid dataset" once; a longer name's error names the
// whole name and the bad component.
func TestValidateDatasetErrorNames(t *testing.T) {
	err := ValidateDataset("a b")
	if err == nil || strings.Count(err.Error(), "invalid dataset") != 1 || !strings.Contains(err.Error(), `"a b"`) {
		t.Errorf(`ValidateDataset("a b") = %v`, err)
	}
	err = ValidateDataset("zpool/a b/c")
	if err == nil || !strings.HasPrefix(err.Error(), `invalid dataset "zpool/a b/c": invalid dataset "a b": `) {
		t.Errorf(`ValidateDataset("zpool/a b/c") = %v`, err)
	}
}
