package sshx

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/rollout-dev/rollout/proto/command"
)

type fixture struct {
	srv      *testServer
	dir      string
	identity string
	known    string
}

func setup(t *testing.T, handle func(string, ssh.Channel) uint32, opts ...func(*testServer)) *fixture {
	t.Helper()
	dir := t.TempDir()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := ssh.NewSignerFromKey(priv)
	srv := startServer(t, signer.PublicKey(), handle, opts...)
	return &fixture{srv: srv, dir: dir, identity: writeKey(t, dir, priv),
		known: srv.knownHostsFile(t, dir, srv.hostKey.PublicKey())}
}

func (f *fixture) dial(t *testing.T) *Client {
	t.Helper()
	c, err := Dial(context.Background(), f.srv.config(f.identity, f.known))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestUnknownHostKeyRefused(t *testing.T) {
	f := setup(t, sinkHandler)
	// known_hosts knows some other host only
	other := newKey(t).PublicKey()
	f.srv.addr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2), Port: f.srv.addr.Port}
	known := f.srv.knownHostsFile(t, f.dir, other)
	f.srv.addr.IP = net.IPv4(127, 0, 0, 1)

	_, err := Dial(context.Background(), f.srv.config(f.identity, known))
	if err == nil {
		t.Fatal("connected to a host whose key is not in known_hosts")
	}
	msg := err.Error()
	want := []string{
		"slave2: ",
		"is not in " + known,
		ssh.FingerprintSHA256(f.srv.hostKey.PublicKey()),
		fmt.Sprintf("ssh-keyscan -p %d 127.0.0.1 >> %s", f.srv.addr.Port, known),
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q lacks %q", msg, w)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("error is not one line: %q", msg)
	}
	if n := len(f.srv.commands()); n != 0 {
		t.Errorf("server ran %d commands", n)
	}
}

func TestChangedHostKeyRefused(t *testing.T) {
	f := setup(t, sinkHandler)
	old := newKey(t).PublicKey()
	known := f.srv.knownHostsFile(t, f.dir, old)
	_, err := Dial(context.Background(), f.srv.config(f.identity, known))
	if err == nil {
		t.Fatal("connected although the host key changed")
	}
	msg := err.Error()
	for _, w := range []string{"HOST KEY CHANGED", known + ":2", ssh.FingerprintSHA256(old),
		ssh.FingerprintSHA256(f.srv.hostKey.PublicKey())} {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q lacks %q", msg, w)
		}
	}
}

// A server with several host keys must be asked for the type known_hosts has; otherwise it
// offers its preferred key and a good host looks like a changed one.
func TestHostKeyAlgorithmsFollowKnownHosts(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecSigner, _ := ssh.NewSignerFromKey(ec)
	// the server offers both; known_hosts has only the ed25519 key, while x/crypto/ssh by
	// default prefers ECDSA host keys
	f := setup(t, sinkHandler, func(s *testServer) { s.extraKeys = []ssh.Signer{ecSigner} })
	c, err := Dial(context.Background(), f.srv.config(f.identity, f.known))
	if err != nil {
		t.Fatalf("dial with only the ed25519 key known: %v", err)
	}
	c.Close()
}

// runArgv runs argv through the Runner against a server that evaluates the received command
// line with a real /bin/sh, the way sshd hands it to the user's shell, and prints the words
// it got NUL-separated.
func TestRemoteQuoting(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	f := setup(t, func(cmd string, ch ssh.Channel) uint32 {
		out, err := exec.Command(sh, "-c", `printword() { for a in "$@"; do printf '%s\0' "$a"; done; }; printword `+cmd).Output()
		if err != nil {
			io.WriteString(ch.Stderr(), err.Error())
			return 1
		}
		ch.Write(out)
		return 0
	})
	r := f.dial(t).Runner()
	argv := []string{"zfs", "set", "rollout:note=it's a \"test\"; rm -rf / $(id) `id` $HOME *", "",
		"zpool/proto@3", "tab\there", "new\nline", `back\slash`, "-o", "'"}
	var out bytes.Buffer
	if err := r.Run(context.Background(), command.Cmd{Argv: argv, Stdout: &out}); err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(out.String(), "\x00"), "\x00")
	if strings.Join(got, "|") != strings.Join(argv, "|") || len(got) != len(argv) {
		t.Errorf("remote got %q\nwant %q", got, argv)
	}
	if cmds := f.srv.commands(); len(cmds) != 1 || cmds[0] != command.Quote(argv) {
		t.Errorf("exec request %q, want %q", cmds, command.Quote(argv))
	}
}

func TestRunExitStatusAndStderr(t *testing.T) {
	f := setup(t, func(_ string, ch ssh.Channel) uint32 {
		io.WriteString(ch.Stderr(), "cannot receive incremental stream:\ndestination zpool/proto has been modified\n")
		return 1
	})
	r := f.dial(t).Runner()
	err := r.Run(context.Background(), command.Cmd{Argv: []string{"zfs", "receive", "-d", "zpool"}})
	var ce *command.Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %v is not a *command.Error", err)
	}
	if ce.Host != "slave2" || ce.ExitCode != 1 {
		t.Errorf("host %q exit %d, want slave2 1", ce.Host, ce.ExitCode)
	}
	if msg := err.Error(); !strings.Contains(msg, "has been modified") || strings.Contains(msg, "\n") {
		t.Errorf("error %q", msg)
	}
}

// zeros is an endless source of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestRunStdinDelivered(t *testing.T) {
	f := setup(t, sinkHandler)
	r := f.dial(t).Runner()
	const n = 5<<20 + 17
	var out bytes.Buffer
	err := r.Run(context.Background(), command.Cmd{Argv: []string{"cat"}, Stdin: io.LimitReader(zeros{}, n), Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != strconv.Itoa(n) {
		t.Errorf("remote read %s bytes, want %d", out.String(), n)
	}
}

// A failing stdin (the local zfs send died) must not look like the end of the stream to the
// remote command: the session is ended instead of sending EOF.
func TestRunStdinErrorEndsSession(t *testing.T) {
	gotEOF := make(chan bool, 1)
	f := setup(t, func(_ string, ch ssh.Channel) uint32 {
		_, err := io.Copy(io.Discard, ch)
		gotEOF <- err == nil
		return 0
	})
	r := f.dial(t).Runner()
	pr, pw := io.Pipe()
	go func() {
		pw.Write(make([]byte, 100))
		pw.CloseWithError(errors.New("zfs send died"))
	}()
	err := r.Run(context.Background(), command.Cmd{Argv: []string{"cat"}, Stdin: pr})
	if err == nil || !strings.Contains(err.Error(), "zfs send died") {
		t.Errorf("error %v, want the stdin failure", err)
	}
}

func TestRunCancel(t *testing.T) {
	f := setup(t, func(_ string, ch ssh.Channel) uint32 {
		io.Copy(io.Discard, ch) // until the client goes away
		return 0
	})
	r := f.dial(t).Runner()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	pr, pw := io.Pipe()
	defer pw.Close()
	start := time.Now()
	err := r.Run(ctx, command.Cmd{Argv: []string{"sleep", "1000"}, Stdin: pr})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("cancel took %s", d)
	}
}

func TestKeepaliveNoticesDeadLink(t *testing.T) {
	f := setup(t, func(_ string, ch ssh.Channel) uint32 {
		io.Copy(io.Discard, ch)
		return 0
	}, func(s *testServer) { s.ignoreGlobal = true })
	cfg := f.srv.config(f.identity, f.known)
	cfg.KeepaliveInterval = 50 * time.Millisecond
	cfg.KeepaliveMax = 3
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
		if err == nil || !strings.Contains(err.Error(), "no reply to 3 keepalives") {
			t.Errorf("error %v, want the keepalive failure", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a dead link was not noticed")
	}
}

func TestAgentAuth(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(priv)
	srv := startServer(t, signer.PublicKey(), sinkHandler)
	dir := t.TempDir()
	known := srv.knownHostsFile(t, dir, srv.hostKey.PublicKey())

	keyring := agent.NewKeyring()
	if err := keyring.Add(agent.AddedKey{PrivateKey: priv}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go agent.ServeAgent(keyring, c)
		}
	}()
	t.Setenv("SSH_AUTH_SOCK", sock)
	cfg := srv.config("", known)
	cfg.Agent = true
	c, err := Dial(context.Background(), cfg)
	if err != nil {
		t.Fatalf("agent auth: %v", err)
	}
	c.Close()
}

// hostCert makes a host certificate for the server's key, signed by ca.
func hostCert(t *testing.T, ca, host ssh.Signer, principals ...string) ssh.Signer {
	t.Helper()
	cert := &ssh.Certificate{Key: host.PublicKey(), Serial: 7, CertType: ssh.HostCert, KeyId: "slave2",
		ValidPrincipals: principals, ValidAfter: uint64(time.Now().Add(-time.Hour).Unix()), ValidBefore: uint64(time.Now().Add(time.Hour).Unix())}
	if err := cert.SignCert(rand.Reader, ca); err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewCertSigner(cert, host)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A known_hosts with only a @cert-authority line for the host: the server's host certificate
// is asked for and verified (signed by that CA, the host name a principal, not @revoked), never
// refused as a changed key.
func TestCertAuthorityHostKey(t *testing.T) {
	ca, otherCA := newKey(t), newKey(t)
	plain := newKey(t)
	for _, c := range []struct {
		name     string
		signer   ssh.Signer // CA that signed the server's certificate
		princ    string
		revoked  bool
		wantFail string
	}{
		{"trusted", ca, "127.0.0.1", false, ""},
		{"other CA", otherCA, "127.0.0.1", false, "no authorities for hostname"},
		{"other host", ca, "slave9.example", false, "not in the set of valid principals"},
		{"revoked", ca, "127.0.0.1", true, "revoked"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := setup(t, sinkHandler, func(s *testServer) {
				// as sshd does: the plain key and its certificate
				s.hostKey, s.extraKeys = hostCert(t, c.signer, plain, c.princ), []ssh.Signer{plain}
			})
			lines := "@cert-authority " + knownhosts.Line([]string{knownhosts.Normalize(f.srv.addr.String())}, ca.PublicKey()) + "\n"
			if c.revoked {
				lines += "@revoked " + knownhosts.Line([]string{"*"}, plain.PublicKey()) + "\n"
			}
			known := filepath.Join(f.dir, "known_hosts_ca")
			if err := os.WriteFile(known, []byte(lines), 0o600); err != nil {
				t.Fatal(err)
			}
			cl, err := Dial(context.Background(), f.srv.config(f.identity, known))
			if c.wantFail == "" {
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
				defer cl.Close()
				out, err := command.Output(context.Background(), cl.Runner(), "/bin/echo", "hi")
				if err != nil || string(out) != "0" {
					t.Errorf("run: %q, %v", out, err)
				}
				return
			}
			if err == nil {
				cl.Close()
				t.Fatal("connected")
			}
			if !strings.Contains(err.Error(), c.wantFail) || strings.Contains(err.Error(), "HOST KEY CHANGED") || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q, want %q", err, c.wantFail)
			}
		})
	}
}

// The server's key listed only as a certificate authority for its address is no host key of
// it: OpenSSH refuses it, x/crypto's knownhosts alone accepted it (found by FuzzKnownHosts).
func TestCertAuthorityKeyIsNoHostKey(t *testing.T) {
	f := setup(t, sinkHandler)
	line := "@cert-authority " + knownhosts.Normalize(f.srv.addr.String()) + " " + string(ssh.MarshalAuthorizedKey(f.srv.hostKey.PublicKey()))
	known := filepath.Join(f.dir, "ca_known_hosts")
	if err := os.WriteFile(known, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Dial(context.Background(), f.srv.config(f.identity, known))
	if err == nil || !strings.Contains(err.Error(), "is not in "+known) {
		t.Fatalf("Dial with the host key only as @cert-authority: %v, want refused as unknown", err)
	}
	if n := len(f.srv.commands()); n != 0 {
		t.Errorf("server ran %d commands", n)
	}
}
