package rollout

import (
	"strings"
	"testing"
)

// FuzzParseJournal reads arbitrary rollout:pending values. A journal it accepts has an
// operation and a target, and what String writes of it (what writeJournal stores) parses back
// to the same journal.
func FuzzParseJournal(f *testing.F) {
	for _, s := range []string{
		"none", "-", "",
		"op=promote from=zpool/proto@1 to=zpool/proto@2 step=stop running=true",
		"op=rollback from=zpool/proto@2 to=zpool/proto@1 step=fstab running=false",
		"op=promote from= to=zpool/proto@1 step=start running=false",
		"op=promote to=zpool/proto@2", "op=promote", "to=zpool/proto@2", "op=promote to",
		"op=a=b to=c extra=1 op=promote",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		j, err := parseJournal(s)
		if err != nil {
			if strings.Contains(err.Error(), "\n") && !strings.Contains(s, "\n") {
				t.Fatalf("error not one line: %q", err)
			}
			return
		}
		if j == nil {
			if s != "" && s != "none" && s != "-" {
				t.Fatalf("parseJournal(%q) = no journal", s)
			}
			return
		}
		if j.Op == "" || j.To == "" {
			t.Fatalf("parseJournal(%q) = %+v: no operation or target", s, j)
		}
		again, err := parseJournal(j.String())
		if err != nil || again == nil || *again != *j {
			t.Fatalf("parseJournal(%q) = %+v, written as %q, read back as %+v, %v", s, j, j.String(), again, err)
		}
	})
}
