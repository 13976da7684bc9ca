package command

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
)

func TestQuote(t *testing.T) {
	cases := []struct {
		in   []string
		want string
	}{
		{[]string{"zfs", "snapshot", "-r", "zpool/proto@1"}, "zfs snapshot -r zpool/proto@1"},
		{[]string{"echo", "a b"}, "echo 'a b'"},
		{[]string{"echo", "it's"}, `echo 'it'\''s'`},
		{[]string{"echo", ""}, "echo ''"},
		{[]string{"echo", "$(reboot)", "a;b", "`x`", "*"}, `echo '$(reboot)' 'a;b' '` + "`x`" + `' '*'`},
	}
	for _, c := range cases {
		if got := Quote(c.in); got != c.want {
			t.Errorf("Quote(%q) = %s, want %s", c.in, got, c.want)
		}
	}
}

// Quoted words must come back unchanged through a real shell.
func TestQuoteRoundTripThroughSh(t *testing.T) {
	words := []string{"plain", "a b", "it's", `"dq"`, "$HOME", "a;b|c&d", "\\", "new\nline", "*?[", ""}
	out, err := exec.Command("sh", "-c", "printf '%s\\0' "+Quote(words)).Output()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	if strings.Join(got, "|") != strings.Join(words, "|") {
		t.Fatalf("round trip: got %q, want %q", got, words)
	}
}

func TestLocalError(t *testing.T) {
	err := Local{}.Run(context.Background(), Cmd{Argv: []string{"sh", "-c", "echo 'cannot open': no such pool >&2; exit 3"}})
	var ce *Error
	if !errors.As(err, &ce) || ce.ExitCode != 3 || ExitCode(err) != 3 {
		t.Fatalf("want *Error with exit 3, got %#v", err)
	}
	if !strings.Contains(err.Error(), "cannot open: no such pool") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("error should carry stderr on one line: %q", err)
	}
}

func TestLocalOutputAndContext(t *testing.T) {
	out, err := Output(context.Background(), Local{}, "printf", "x%s", "y")
	if err != nil || string(out) != "xy" {
		t.Fatalf("Output = %q, %v", out, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := (Local{}).Run(ctx, Cmd{Argv: []string{"sleep", "5"}}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: got %v", err)
	}
}
