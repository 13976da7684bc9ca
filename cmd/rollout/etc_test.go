package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/rollout-dev/rollout/etcmerge"
)

// Issue 8, finding 4: etc diff and etc save printed the tenant's file names raw: a name with
// a newline forged lines, one with "\x1b[2J" cleared the admin's terminal, and in the JSON a
// byte that is not UTF-8 became U+FFFD. The names come from etcmerge.Diff on real trees.
func TestEtcNamesEscaped(t *testing.T) {
	dir := t.TempDir()
	base, overlay, live := filepath.Join(dir, "base"), filepath.Join(dir, "cfg"), filepath.Join(dir, "live")
	evil := []string{"evil\nadded     forged", "clear\x1b[2J", "bad\xff", "bad\xfe"}
	for _, d := range []string{base, overlay, live} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range evil {
		if err := os.WriteFile(filepath.Join(live, n), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ch, err := etcmerge.Diff(context.Background(), base, overlay, live)
	if err != nil || len(ch) != len(evil) {
		t.Fatalf("Diff: %v %v", ch, err)
	}
	var out bytes.Buffer
	res := printEtcDiff(&out, "vhost1", ch)
	text := out.String()
	if strings.Count(text, "\n") != len(evil) || strings.IndexFunc(text, func(r rune) bool { return r == 0x1b || r == utf8.RuneError }) >= 0 {
		t.Errorf("etc diff printed raw names:\n%q", text)
	}
	for _, want := range []string{`/etc/evil\012added     forged`, `/etc/clear\033[2J`, `/etc/bad\377`, `/etc/bad\376`} {
		if !strings.Contains(text, "added     "+want+"\n") {
			t.Errorf("etc diff output lacks %q:\n%s", want, text)
		}
	}
	// the JSON names them as the text does: two names that differ print differently
	b, err := json.Marshal(res)
	if err != nil || strings.Contains(string(b), `\ufffd`) || !strings.Contains(string(b), `"/etc/bad\\377"`) || !strings.Contains(string(b), `"/etc/bad\\376"`) {
		t.Errorf("JSON results: %s %v", b, err)
	}
	// etc save prints through the same helper
	if got := etcPath("clear\x1b[2J"); got != `/etc/clear\033[2J` {
		t.Errorf("etcPath = %q", got)
	}
	// and an error carrying such a name is printed escaped, on one line
	var stderr bytes.Buffer
	exitCode(errors.New("etc save: /jail/v/etc/clear\x1b[2J: device node"), &stderr)
	if s := stderr.String(); s != "rollout: etc save: /jail/v/etc/clear\\033[2J: device node\n" {
		t.Errorf("error printed as %q", s)
	}
	// an ordinary error with a quoted value is left as it is
	stderr.Reset()
	exitCode(errors.New(`bad value "a\"b"`), &stderr)
	if s := stderr.String(); s != "rollout: bad value \"a\\\"b\"\n" {
		t.Errorf("ordinary error printed as %q", s)
	}
}
