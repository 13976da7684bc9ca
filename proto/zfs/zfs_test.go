package zfs

import (
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
