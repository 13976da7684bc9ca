package command

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
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

// A child that outlives the program and keeps its stderr (a daemon started without closing
// fd 2) must not hold Run until the child exits: before WaitDelay, Run waited for it.
func TestLocalDoesNotWaitForChildHoldingPipe(t *testing.T) {
	start := time.Now()
	err := Local{WaitDelay: 200 * time.Millisecond}.Run(context.Background(),
		Cmd{Argv: []string{"sh", "-c", "sleep 30 & echo started >&2; exit 0"}})
	if err != nil {
		t.Fatalf("the program exited 0: got %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("Run waited %s for a background child holding stderr", d)
	}
}

// Cancelling signals the program's whole process group, so what it started stops too.
func TestLocalCancelStopsChildren(t *testing.T) {
	dir := t.TempDir()
	pidFile := dir + "/child.pid"
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := Local{WaitDelay: 200 * time.Millisecond}.Run(ctx,
		Cmd{Argv: []string{"sh", "-c", `sleep 30 & echo $! > "$0"; wait`, pidFile}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want a deadline error, got %v", err)
	}
	b, rerr := os.ReadFile(pidFile)
	if rerr != nil {
		t.Fatal(rerr)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	for i := 0; i < 50; i++ {
		// gone, or a zombie waiting for a reaper
		st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if syscall.Kill(pid, 0) != nil || err == nil && strings.Contains(string(st), ") Z ") {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("child %d still runs after its parent's context was cancelled", pid)
}

// Letters and digits at the edges of their ranges need no quotes; the characters just outside
// them do (apart from '@', '/' and ':', which are safe).
func TestQuoteWordEdges(t *testing.T) {
	for _, w := range []string{"a", "z", "A", "Z", "0", "9", "@", "/", ":", "a%+=:,./_-Z"} {
		if got := QuoteWord(w); got != w {
			t.Errorf("QuoteWord(%q) = %s, want it unquoted", w, got)
		}
	}
	for _, w := range []string{"`", "{", "[", "~", "^", "é"} {
		if got := QuoteWord(w); got != "'"+w+"'" {
			t.Errorf("QuoteWord(%q) = %s, want it quoted", w, got)
		}
	}
}

// A program that never ran has no exit code: -1, not 1 or 0.
func TestLocalNotStarted(t *testing.T) {
	err := Local{}.Run(context.Background(), Cmd{Argv: []string{"/nonexistent/program"}})
	var ce *Error
	if !errors.As(err, &ce) || ce.ExitCode != -1 || ExitCode(err) != -1 || ce.Host != "local" {
		t.Fatalf("want *Error with exit -1 on local, got %#v", err)
	}
	if err := (Local{}).Run(context.Background(), Cmd{}); err == nil || !strings.Contains(err.Error(), "empty argv") {
		t.Errorf("empty argv: %v", err)
	}
}
