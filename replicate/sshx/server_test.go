package sshx

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// testServer is an in-process SSH server on 127.0.0.1 that accepts one client key and runs exec
// requests through handle. It records every command line it was asked to run.
type testServer struct {
	t       *testing.T
	addr    *net.TCPAddr
	hostKey ssh.Signer
	// extraKeys are further host keys the server offers.
	extraKeys []ssh.Signer
	clientPK  ssh.PublicKey
	// handle runs one exec request: it gets the command line and the channel (stdin/stdout),
	// and returns the exit status.
	handle func(cmd string, ch ssh.Channel) uint32
	// ignoreGlobal leaves keepalives unanswered, as a dead peer would; after answering the
	// first answerGlobal of them, as a link that dies later.
	ignoreGlobal bool
	answerGlobal int
	// rejectExec refuses every exec request, as sshd does when it cannot start the shell.
	rejectExec bool

	mu   sync.Mutex
	cmds []string
}

func newKey(t *testing.T) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// writeKey writes priv as an OpenSSH private key file.
func writeKey(t *testing.T, dir string, priv ed25519.PrivateKey) string {
	t.Helper()
	blk, err := ssh.MarshalPrivateKey(priv, "test")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(p, pem.EncodeToMemory(blk), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func startServer(t *testing.T, clientPK ssh.PublicKey, handle func(string, ssh.Channel) uint32, opts ...func(*testServer)) *testServer {
	t.Helper()
	s := &testServer{t: t, hostKey: newKey(t), clientPK: clientPK, handle: handle}
	for _, o := range opts { // before the server runs: its goroutines read these
		o(s)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s.addr = ln.Addr().(*net.TCPAddr)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(c)
		}
	}()
	return s
}

func (s *testServer) serve(c net.Conn) {
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			if string(k.Marshal()) == string(s.clientPK.Marshal()) {
				return nil, nil
			}
			return nil, fmt.Errorf("unknown key")
		},
	}
	cfg.AddHostKey(s.hostKey)
	for _, k := range s.extraKeys {
		cfg.AddHostKey(k)
	}
	conn, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		c.Close()
		return
	}
	defer conn.Close()
	if s.ignoreGlobal {
		go func() {
			n := 0
			for r := range reqs { // the client's keepalives go unanswered
				if n < s.answerGlobal {
					r.Reply(false, nil)
					n++
				}
			}
		}()
	} else {
		go ssh.DiscardRequests(reqs)
	}
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "no")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			return
		}
		go func() {
			for r := range creqs {
				if r.Type != "exec" {
					r.Reply(r.Type == "signal", nil)
					continue
				}
				var p struct{ Cmd string }
				if err := ssh.Unmarshal(r.Payload, &p); err != nil || s.rejectExec {
					r.Reply(false, nil)
					continue
				}
				r.Reply(true, nil)
				s.mu.Lock()
				s.cmds = append(s.cmds, p.Cmd)
				s.mu.Unlock()
				go func() {
					code := s.handle(p.Cmd, ch)
					var b [4]byte
					binary.BigEndian.PutUint32(b[:], code)
					ch.SendRequest("exit-status", false, b[:])
					ch.Close()
				}()
			}
		}()
	}
}

func (s *testServer) commands() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.cmds...)
}

// knownHostsFile writes a known_hosts file with key for the server's [127.0.0.1]:port.
func (s *testServer) knownHostsFile(t *testing.T, dir string, key ssh.PublicKey) string {
	t.Helper()
	p := filepath.Join(dir, "known_hosts")
	line := "# a comment, so that the key is on line 2\n" +
		knownhosts.Line([]string{knownhosts.Normalize(s.addr.String())}, key) + "\n"
	if err := os.WriteFile(p, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func (s *testServer) config(identity, knownHosts string) Config {
	return Config{Name: "slave2", Address: "127.0.0.1", Port: s.addr.Port, User: "root",
		Identity: identity, KnownHosts: knownHosts, ConnectTimeout: 5 * time.Second}
}

// sinkHandler reads stdin to the end and prints how many bytes it got.
func sinkHandler(_ string, ch ssh.Channel) uint32 {
	n, _ := io.Copy(io.Discard, ch)
	io.WriteString(ch, strconv.FormatInt(n, 10))
	return 0
}
