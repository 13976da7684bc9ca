package sshx

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/rollout-dev/rollout/proto/command"
)

// Without a known_hosts file, or with one that cannot be read, nothing is dialled.
func TestDialNeedsKnownHosts(t *testing.T) {
	f := setup(t, sinkHandler)
	for _, c := range []struct{ known, want string }{
		{"", "slave2: no known_hosts file configured"},
		{filepath.Join(f.dir, "missing"), "slave2: known_hosts: open " + filepath.Join(f.dir, "missing")},
	} {
		_, err := Dial(context.Background(), f.srv.config(f.identity, c.known))
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("known_hosts %q: %v, want %q", c.known, err, c.want)
		}
	}
	if n := len(f.srv.commands()); n != 0 {
		t.Errorf("server ran %d commands", n)
	}
}

// A host key that an @revoked line has is refused even though a plain line lists it, and the
// message says where it is revoked.
func TestRevokedHostKeyRefused(t *testing.T) {
	f := setup(t, sinkHandler)
	hk := f.srv.hostKey.PublicKey()
	lines := knownhosts.Line([]string{knownhosts.Normalize(f.srv.addr.String())}, hk) + "\n" +
		"@revoked * " + string(ssh.MarshalAuthorizedKey(hk))
	known := filepath.Join(f.dir, "known_hosts_revoked")
	if err := os.WriteFile(known, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Dial(context.Background(), f.srv.config(f.identity, known))
	var he *HostKeyError
	if !errors.As(err, &he) {
		t.Fatalf("Dial with a revoked host key: %v, want a *HostKeyError", err)
	}
	for _, w := range []string{"marked revoked in " + known + ":2", ssh.FingerprintSHA256(hk)} {
		if !strings.Contains(he.Problem, w) {
			t.Errorf("problem %q lacks %q", he.Problem, w)
		}
	}
	if he.Fix != "refusing to connect" || err.Error() != "slave2: "+he.Problem+"; "+he.Fix {
		t.Errorf("error %q, fix %q", err, he.Fix)
	}
	if n := len(f.srv.commands()); n != 0 {
		t.Errorf("server ran %d commands", n)
	}
}

// known_hosts has an ECDSA key and a wrong ed25519 key for the host, which has only an ed25519
// key: the changed-key message compares with the line of the offered key's type.
func TestChangedHostKeyNamesLineOfSameType(t *testing.T) {
	f := setup(t, sinkHandler)
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecPub, err := ssh.NewPublicKey(&ec.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	old := newKey(t).PublicKey()
	host := []string{knownhosts.Normalize(f.srv.addr.String())}
	known := filepath.Join(f.dir, "known_hosts_two")
	if err := os.WriteFile(known, []byte(knownhosts.Line(host, ecPub)+"\n"+knownhosts.Line(host, old)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Dial(context.Background(), f.srv.config(f.identity, known))
	if err == nil {
		t.Fatal("connected although the host key changed")
	}
	want := fmt.Sprintf("HOST KEY CHANGED for %s: server offered %s %s but %s:2 has %s %s", f.srv.addr, ssh.KeyAlgoED25519,
		ssh.FingerprintSHA256(f.srv.hostKey.PublicKey()), known, ssh.KeyAlgoED25519, ssh.FingerprintSHA256(old))
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q lacks %q", err, want)
	}
}

// algorithms asks for the types known_hosts has for the address, an RSA key as its SHA-2
// signature algorithms first; host certificates first when a @cert-authority line matches;
// nothing when nothing is known.
func TestKnownAlgorithms(t *testing.T) {
	dir := t.TempDir()
	rk, err := rsa.GenerateKey(rand.Reader, 1024) // only its type matters here
	if err != nil {
		t.Fatal(err)
	}
	rsaPub, err := ssh.NewPublicKey(&rk.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	ed := newKey(t).PublicKey()
	const addr = "[192.0.2.7]:2222"
	for _, c := range []struct {
		name, file string
		want       []string
	}{
		{"nothing known", knownhosts.Line([]string{"other"}, ed) + "\n", nil},
		{"rsa then ed25519", knownhosts.Line([]string{addr}, rsaPub) + "\n" + knownhosts.Line([]string{addr}, ed) + "\n",
			[]string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA, ssh.KeyAlgoED25519}},
		{"ed25519 twice", knownhosts.Line([]string{addr}, ed) + "\n" + knownhosts.Line([]string{addr}, newKey(t).PublicKey()) + "\n",
			[]string{ssh.KeyAlgoED25519}},
		{"cert-authority", "@cert-authority " + knownhosts.Line([]string{addr}, ed) + "\n",
			append(append([]string(nil), certAlgorithms...), ssh.KeyAlgoED25519)},
	} {
		p := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_"))
		if err := os.WriteFile(p, []byte(c.file), 0o600); err != nil {
			t.Fatal(err)
		}
		known, err := loadKnownHosts(p)
		if err != nil {
			t.Fatal(err)
		}
		got := known.algorithms(addr, &net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 2222})
		if strings.Join(got, " ") != strings.Join(c.want, " ") {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

// Each way authentication cannot even be tried is its own one-line error, before any connection.
func TestAuthMethodErrors(t *testing.T) {
	dir := t.TempDir()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	blk, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "test", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	locked := filepath.Join(dir, "id_locked")
	if err := os.WriteFile(locked, pem.EncodeToMemory(blk), 0o600); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "id_garbage")
	if err := os.WriteFile(garbage, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := writeKey(t, dir, priv)
	for _, c := range []struct {
		name     string
		identity string
		agent    bool
		sock     string
		want     string // "" for success
	}{
		{"missing identity", filepath.Join(dir, "nope"), false, "", "identity: open " + filepath.Join(dir, "nope")},
		{"passphrase", locked, false, "", "identity " + locked + " is passphrase-protected: load it into ssh-agent and set agent = true"},
		{"garbage", garbage, false, "", "identity " + garbage + ": "},
		{"nothing", "", false, "", "no identity file and no ssh-agent to authenticate with"},
		{"agent without socket", "", true, "", "agent = true but SSH_AUTH_SOCK is not set"},
		{"agent socket missing", "", true, filepath.Join(dir, "no.sock"), "ssh-agent at " + filepath.Join(dir, "no.sock") + ": "},
		{"identity, agent without socket", good, true, "", ""},
		{"identity only", good, false, "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("SSH_AUTH_SOCK", c.sock)
			auth, closeAgent, err := authMethods(Config{Identity: c.identity, Agent: c.agent})
			if c.want == "" {
				if err != nil || len(auth) != 1 {
					t.Fatalf("authMethods: %d methods, %v", len(auth), err)
				}
				closeAgent()
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("authMethods: %v, want %q", err, c.want)
			}
		})
	}
}

// The error of a failed command keeps the first 64 KiB of its stderr, not all of it.
func TestRunStderrBounded(t *testing.T) {
	f := setup(t, func(_ string, ch ssh.Channel) uint32 {
		io.WriteString(ch.Stderr(), strings.Repeat("e", maxStderr+1000))
		return 2
	})
	r := f.dial(t).Runner()
	var all strings.Builder
	err := r.Run(context.Background(), command.Cmd{Argv: []string{"zfs", "receive"}, Stderr: &all})
	var ce *command.Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %v is not a *command.Error", err)
	}
	if ce.ExitCode != 2 || len(ce.Stderr) != maxStderr {
		t.Errorf("exit %d, stderr of %d bytes; want 2, %d", ce.ExitCode, len(ce.Stderr), maxStderr)
	}
	if all.Len() != maxStderr+1000 {
		t.Errorf("the caller's Stderr got %d bytes, want all %d", all.Len(), maxStderr+1000)
	}
	if err := r.Run(context.Background(), command.Cmd{}); err == nil {
		t.Error("Run with an empty argv succeeded")
	}
}

// A link that answers keepalives for a while and then dies is given up after KeepaliveMax
// (0: DefaultKeepaliveMax) missed intervals; answered ones do not count.
func TestKeepaliveDefaultsAndLateDeath(t *testing.T) {
	f := setup(t, func(_ string, ch ssh.Channel) uint32 {
		io.Copy(io.Discard, ch)
		return 0
	}, func(s *testServer) { s.ignoreGlobal, s.answerGlobal = true, 5 })
	cfg := f.srv.config(f.identity, f.known)
	cfg.KeepaliveInterval = 50 * time.Millisecond
	cfg.KeepaliveMax = 0
	c, err := Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pr, pw := io.Pipe()
	defer pw.Close()
	done := make(chan error, 1)
	go func() {
		done <- c.Runner().Run(context.Background(), command.Cmd{Argv: []string{"zfs", "receive"}, Stdin: pr})
	}()
	select {
	case err := <-done:
		want := fmt.Sprintf("no reply to %d keepalives in %s", DefaultKeepaliveMax, DefaultKeepaliveMax*cfg.KeepaliveInterval)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want %q", err, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a link that died after answering keepalives was not noticed")
	}
}

// ConnectTimeout 0 is DefaultConnectTimeout; a set one bounds a server that accepts the TCP
// connection and never speaks.
func TestConnectTimeout(t *testing.T) {
	f := setup(t, sinkHandler)
	cfg := f.srv.config(f.identity, f.known)
	cfg.ConnectTimeout = 0
	c, err := Dial(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Dial with the default timeout: %v", err)
	}
	c.Close()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { conn.Close() })
		}
	}()
	cfg.Port = ln.Addr().(*net.TCPAddr).Port
	cfg.ConnectTimeout = 300 * time.Millisecond
	start := time.Now()
	_, err = Dial(context.Background(), cfg)
	addr := ln.Addr().String()
	if err == nil || !strings.HasPrefix(err.Error(), "slave2: ssh ") || !strings.Contains(err.Error(), addr) {
		t.Errorf("Dial to a silent server: %v, want a failure naming %s", err, addr)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Dial to a silent server took %s", d)
	}
	// the caller's context cuts the handshake short, and the error says so
	cfg.ConnectTimeout = 0
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start = time.Now()
	_, err = Dial(ctx, cfg)
	if err == nil || !strings.HasPrefix(err.Error(), "slave2: ssh "+addr+": "+context.Canceled.Error()) {
		t.Errorf("Dial canceled during the handshake: %v, want %q first", err, context.Canceled)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("canceled Dial took %s", d)
	}
}

// A server that refuses the client's key: the error names user and address, not a host key.
func TestAuthRefused(t *testing.T) {
	f := setup(t, sinkHandler)
	dir := t.TempDir()
	_, other, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Dial(context.Background(), f.srv.config(writeKey(t, dir, other), f.known))
	want := "slave2: ssh root@" + f.srv.addr.String() + ": "
	if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), "unable to authenticate") {
		t.Errorf("Dial with a key the server refuses: %v, want %q…", err, want)
	}
}

// A command that never ran (no session on a closed connection, exec refused) fails with exit
// code -1, naming the host and the command.
func TestRunNotStarted(t *testing.T) {
	f := setup(t, sinkHandler, func(s *testServer) { s.rejectExec = true })
	c := f.dial(t)
	argv := []string{"zfs", "receive", "-d", "zpool"}
	for _, step := range []string{"exec", "session"} {
		if step == "session" {
			c.Close()
		}
		err := c.Runner().Run(context.Background(), command.Cmd{Argv: argv, Stdin: strings.NewReader("stream")})
		var ce *command.Error
		if !errors.As(err, &ce) || ce.ExitCode != -1 || ce.Host != "slave2" || !strings.Contains(err.Error(), "ssh "+step) ||
			!strings.HasPrefix(err.Error(), command.Quote(argv)+": ") {
			t.Errorf("%s fails: %v, want a *command.Error with exit code -1", step, err)
		}
	}
}

// A command that exits 0 while its standard input failed (the local zfs send died after the
// remote side stopped reading) has not received the whole stream: Run fails.
func TestRunStdinErrorAfterExitZero(t *testing.T) {
	f := setup(t, func(_ string, ch ssh.Channel) uint32 {
		io.ReadFull(ch, make([]byte, 100))
		return 0
	})
	r := f.dial(t).Runner()
	pr, pw := io.Pipe()
	go func() {
		pw.Write(make([]byte, 100))
		time.Sleep(100 * time.Millisecond)
		pw.CloseWithError(errors.New("zfs send died"))
	}()
	err := r.Run(context.Background(), command.Cmd{Argv: []string{"zfs", "receive"}, Stdin: pr})
	if err == nil || !strings.Contains(err.Error(), "stdin: zfs send died") {
		t.Errorf("error %v, want the stdin failure", err)
	}
}

// Cancelling a command says so once, and keeps what the session said.
func TestRunCancelMessage(t *testing.T) {
	f := setup(t, func(_ string, ch ssh.Channel) uint32 {
		io.Copy(io.Discard, ch)
		return 0
	})
	r := f.dial(t).Runner()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	pr, pw := io.Pipe()
	defer pw.Close()
	err := r.Run(ctx, command.Cmd{Argv: []string{"zfs", "receive"}, Stdin: pr})
	if !errors.Is(err, context.DeadlineExceeded) || strings.Count(err.Error(), context.DeadlineExceeded.Error()) != 1 {
		t.Errorf("error %v, want the deadline once", err)
	}
	if code := command.ExitCode(err); code != -1 {
		t.Errorf("exit code %d of a canceled command, want -1", code)
	}
}

// A command that fails without a word on stderr: the error gives its exit status, and says
// nothing about a standard input it did not have.
func TestRunExitWithoutStderr(t *testing.T) {
	f := setup(t, func(_ string, ch ssh.Channel) uint32 { return 3 })
	r := f.dial(t).Runner()
	err := r.Run(context.Background(), command.Cmd{Argv: []string{"zfs", "receive"}})
	if command.ExitCode(err) != 3 || !strings.HasPrefix(err.Error(), "zfs receive: ") || !strings.Contains(err.Error(), "status 3") ||
		strings.Contains(err.Error(), "stdin") {
		t.Errorf("error %v (exit code %d), want exit status 3 alone", err, command.ExitCode(err))
	}
}
