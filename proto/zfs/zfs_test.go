package zfs

import (
	"strings"
	"testing"
	"time"
)

func TestParseSnapshots(t *testing.T) {
	out := "zpool/proto@2\t222\t20\t1764100000\t4096\t1\n" +
		"zpool/proto@1\t111\t10\t1764000000\t0\t0\n" +
		"zpool/proto/etc@1\t112\t10\t1764000000\t0\t0\n"
	snaps, err := ParseSnapshots([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if len(snaps) != 3 || snaps[0].FullName() != "zpool/proto@1" || snaps[1].FullName() != "zpool/proto/etc@1" ||
		snaps[2].Name != "2" || snaps[2].GUID != 222 || snaps[2].CreateTXG != 20 || snaps[2].UserRefs != 1 ||
		!snaps[2].Creation.Equal(time.Unix(1764100000, 0)) || snaps[2].Used != 4096 {
		t.Fatalf("parsed %+v", snaps)
	}
	for _, bad := range []string{"zpool/proto@1\t1\t2\n", "zpool/proto\t1\t2\t3\t4\t5\n", "zpool/proto@1\tx\t2\t3\t4\t5\n"} {
		if _, err := ParseSnapshots([]byte(bad)); err == nil {
			t.Errorf("ParseSnapshots(%q): no error", bad)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "512": 512, "32m": 32 << 20, "32M": 32 << 20, "1g": 1 << 30, "2k": 2048, "1t": 1 << 40} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "m", "-1", "32 m", "32mb", "1.5g", "99999999999999999999", "9999999999t"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
	if HumanBytes(1536) != "1.5K" || HumanBytes(10) != "10B" {
		t.Errorf("HumanBytes: %s %s", HumanBytes(1536), HumanBytes(10))
	}
}

func TestParseHolds(t *testing.T) {
	got, err := parseHolds([]byte("zpool/proto@2\trollout\tThu Nov 26 10:00 2026\nzpool/proto@2\tbackup\tThu Nov 26 10:01 2026\n"), []string{"zpool/proto@2", "zpool/proto@3"})
	if err != nil || len(got) != 1 || len(got["zpool/proto@2"]) != 2 || got["zpool/proto@2"][1] != "backup" {
		t.Fatalf("parseHolds = %v %v", got, err)
	}
	for _, bad := range []string{"zpool/proto@2\trollout\n", "zpool/proto@9\trollout\tThu Nov 26 10:00 2026\n", "zpool/proto@2\t\tx\n"} {
		if _, err := parseHolds([]byte(bad), []string{"zpool/proto@2"}); err == nil || !strings.Contains(err.Error(), "unexpected zfs holds line") {
			t.Errorf("parseHolds(%q): err = %v", bad, err)
		}
	}
}

// HumanBytes changes unit at exactly 1024 of the one below.
func TestHumanBytesEdges(t *testing.T) {
	for n, want := range map[int64]string{0: "0B", 1023: "1023B", 1024: "1.0K", 1<<20 - 1: "1024.0K", 1 << 20: "1.0M",
		1<<30 + 1<<29: "1.5G", 1 << 40: "1.0T"} {
		if got := HumanBytes(n); got != want {
			t.Errorf("HumanBytes(%d) = %s, want %s", n, got, want)
		}
	}
}

// The largest size ParseSize takes is 1<<62 bytes, in any unit; negative sizes are refused.
func TestParseSizeLimits(t *testing.T) {
	for in, want := range map[string]int64{"4611686018427387904": 1 << 62, "4194304t": 1 << 62, "4294967296G": 1 << 62} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"4611686018427387905", "4194305t", "-1", "-1k", "", "k"} {
		if got, err := ParseSize(bad); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("ParseSize(%q) = %d, %v; want an error naming it", bad, got, err)
		}
	}
}
