package zfs

import (
	"errors"
	"strings"
	"testing"

	"github.com/rollout-dev/rollout/proto/command"
)

// shellUnsafe is what a POSIX shell, fstab(5) or jail.conf(5) would read as more than a letter.
const shellUnsafe = " \t\n\r\v\f'\"`$;&|<>()*?[]\\#!~{}=,%^"

// checkAcceptedName states the documented rules for a name ValidateDataset or SplitSnapshot
// accepted: at most MaxNameLen bytes, '/'-separated components that are not empty, "." or ".."
// and do not begin with '-', a pool beginning with a letter, nothing a shell, an fstab or
// jail.conf would interpret; and it goes into a remote command line unquoted, reading back as
// itself.
func checkAcceptedName(t *testing.T, name string) {
	t.Helper()
	if len(name) > MaxNameLen || name == "" {
		t.Fatalf("accepted %q: %d bytes", name, len(name))
	}
	if strings.ContainsAny(name, shellUnsafe) || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r >= 0x7f }) {
		t.Fatalf("accepted %q: characters a shell or fstab interprets", name)
	}
	if c := name[0]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
		t.Fatalf("accepted %q: pool does not begin with a letter", name)
	}
	ds, snap, isSnap := strings.Cut(name, "@")
	for _, c := range strings.Split(ds, "/") {
		if c == "" || c == "." || c == ".." || c[0] == '-' {
			t.Fatalf("accepted %q: component %q", name, c)
		}
	}
	if isSnap && (snap == "" || snap == "." || snap == ".." || snap[0] == '-' || strings.ContainsAny(snap, "@/#")) {
		t.Fatalf("accepted %q: snapshot name %q", name, snap)
	}
	if q := command.QuoteWord(name); q != name {
		t.Fatalf("accepted %q, which the remote command line quotes as %s", name, q)
	}
	if w, err := shellWord(command.Quote([]string{"zfs", "list", name})); err != nil || len(w) != 3 || w[2] != name {
		t.Fatalf("accepted %q: the remote shell reads %q, %v", name, w, err)
	}
}

func FuzzValidateDataset(f *testing.F) {
	for _, s := range []string{"zpool/proto", "zpool/proto/etc", "zpool/../x", "zpool/./x", "zpool//x", "zpool/-x",
		"1pool/x", "zpool/a b", "zpool/x;reboot", "zpool/$(id)", "tank/a_b-c.d:e", "zpool/proto@1", strings.Repeat("a/", 128)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := ValidateDataset(s)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error not one line: %q", err)
			}
			return
		}
		if strings.ContainsAny(s, "@#") {
			t.Fatalf("accepted %q as a dataset", s)
		}
		checkAcceptedName(t, s)
		if pool, _, _ := strings.Cut(s, "/"); ValidatePool(pool) != nil {
			t.Fatalf("accepted %q whose pool %q ValidatePool refuses", s, pool)
		}
	})
}

func FuzzSplitSnapshot(f *testing.F) {
	for _, s := range []string{"zpool/proto@1", "zpool/proto@2026-05-01", "zpool/proto@", "zpool/proto@a@b", "zpool@..",
		"zpool/proto@x/y", "zpool/proto@-n", "zpool/proto@1;reboot", "zpool/proto@" + strings.Repeat("9", 243), "zpool/proto@" + strings.Repeat("9", 244)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ds, snap, err := SplitSnapshot(s)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error not one line: %q", err)
			}
			return
		}
		if ds+"@"+snap != s || ValidateDataset(ds) != nil || ValidateSnapshotName(snap) != nil {
			t.Fatalf("SplitSnapshot(%q) = %q, %q", s, ds, snap)
		}
		checkAcceptedName(t, s)
	})
}

// FuzzQuoteWord: every word, whatever its bytes, reads back as itself from the remote shell.
func FuzzQuoteWord(f *testing.F) {
	for _, s := range []string{"", "zpool/proto@1", "it's", "a b", "'", "''", "$(reboot)", "`id`", "\\", "\n", "x\x00y", "-n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.ContainsRune(s, 0) {
			return // no argv word can hold a NUL
		}
		w, err := shellWord("zfs " + command.QuoteWord(s) + " x")
		if err != nil || len(w) != 3 || w[1] != s {
			t.Fatalf("QuoteWord(%q) = %s, read back as %q, %v", s, command.QuoteWord(s), w, err)
		}
	})
}

// shellWord splits line into words as sh(1) does for what QuoteWord produces: unquoted
// characters, '...' and \x; anything it would expand, redirect or run is an error.
func shellWord(line string) ([]string, error) {
	var words []string
	var w strings.Builder
	in := false
	for i := 0; i < len(line); i++ {
		switch c := line[i]; {
		case c == ' ':
			if in {
				words = append(words, w.String())
				w.Reset()
				in = false
			}
		case c == '\'':
			j := strings.IndexByte(line[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated quote")
			}
			w.WriteString(line[i+1 : i+1+j])
			i += j + 1
			in = true
		case c == '\\':
			if i+1 == len(line) {
				return nil, errors.New("trailing backslash")
			}
			i++
			w.WriteByte(line[i])
			in = true
		case strings.IndexByte(shellUnsafe, c) >= 0 && c != '%' && c != ',' && c != '=' || c < 0x20 || c >= 0x7f:
			return nil, errors.New("unquoted " + string(rune(c)))
		default:
			w.WriteByte(c)
			in = true
		}
	}
	if in {
		words = append(words, w.String())
	}
	return words, nil
}
