// Package sshx is rollout's SSH transport to slaves, on golang.org/x/crypto/ssh. Host keys are
// always checked against a known_hosts file: an unknown or changed key is refused with a message
// that says what to do, never a prompt. Commands run through Runner, a command.Runner.
package sshx

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Defaults for Config's zero values.
const (
	DefaultConnectTimeout    = 15 * time.Second
	DefaultKeepaliveInterval = 15 * time.Second
	DefaultKeepaliveMax      = 3
)

// Ciphers is the cipher preference: AES-GCM first, because with AES-NI it is the fastest AEAD in
// x/crypto/ssh (measured: replicate/bench/ssh-throughput.sh).
var ciphers = []string{
	ssh.CipherAES128GCM, ssh.CipherAES256GCM, ssh.CipherChaCha20Poly1305,
	ssh.CipherAES128CTR, ssh.CipherAES256CTR,
}

// Config says how to reach one slave.
type Config struct {
	Name       string // the slave's name in rollout.toml, for errors and logs
	Address    string // host name or IP
	Port       int    // 0: 22
	User       string
	Identity   string // private key file; "" for none
	Agent      bool   // also offer the keys of the ssh-agent at $SSH_AUTH_SOCK
	KnownHosts string // known_hosts file the host key must be in

	ConnectTimeout    time.Duration // TCP connect plus SSH handshake; 0: DefaultConnectTimeout
	KeepaliveInterval time.Duration // 0: DefaultKeepaliveInterval
	KeepaliveMax      int           // missed keepalives before the link is declared dead; 0: DefaultKeepaliveMax

	Logger *slog.Logger // nil: slog.Default()
}

func (c *Config) hostPort() string {
	port := c.Port
	if port == 0 {
		port = 22
	}
	return net.JoinHostPort(c.Address, strconv.Itoa(port))
}

func (c *Config) port() int {
	if c.Port == 0 {
		return 22
	}
	return c.Port
}

// Client is one SSH connection to a slave. Sessions over it are cheap; Runner opens one per command.
type Client struct {
	cfg  Config
	conn *ssh.Client
	log  *slog.Logger

	done      chan struct{}
	closeOnce sync.Once
	mu        sync.Mutex
	deadErr   error // set when keepalives stopped being answered
}

// Dial connects and authenticates, verifying the host key against cfg.KnownHosts.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.KeepaliveInterval == 0 {
		cfg.KeepaliveInterval = DefaultKeepaliveInterval
	}
	if cfg.KeepaliveMax == 0 {
		cfg.KeepaliveMax = DefaultKeepaliveMax
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	fail := func(err error) error { return fmt.Errorf("%s: %w", cfg.Name, err) }

	if cfg.KnownHosts == "" {
		return nil, fail(errors.New("no known_hosts file configured; host keys are always verified"))
	}
	known, err := loadKnownHosts(cfg.KnownHosts)
	if err != nil {
		return nil, fail(fmt.Errorf("known_hosts: %w", err))
	}
	auth, closeAgent, err := authMethods(cfg)
	if err != nil {
		return nil, fail(err)
	}
	defer closeAgent()

	ctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	defer cancel()
	d := net.Dialer{KeepAlive: cfg.KeepaliveInterval}
	addr := cfg.hostPort()
	tcp, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fail(fmt.Errorf("connect %s: %w", addr, err))
	}
	// the handshake has no context; a deadline on the socket bounds it, and ctx can cut it short
	deadline, _ := ctx.Deadline()
	_ = tcp.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { tcp.Close() })
	defer stop()

	var keyErr error
	check := func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		if err := known.check(hostname, remote, key); err != nil {
			keyErr = hostKeyError(cfg, hostname, key, err)
			return keyErr
		}
		return nil
	}
	sc := &ssh.ClientConfig{
		User:              cfg.User,
		Auth:              auth,
		HostKeyCallback:   check,
		HostKeyAlgorithms: known.algorithms(addr, tcp.RemoteAddr()),
		Timeout:           cfg.ConnectTimeout,
	}
	sc.Ciphers = ciphers
	c, chans, reqs, err := ssh.NewClientConn(tcp, addr, sc)
	if err != nil {
		tcp.Close()
		if keyErr != nil {
			return nil, fail(keyErr)
		}
		if ctx.Err() != nil {
			return nil, fail(fmt.Errorf("ssh %s: %w (%w)", addr, ctx.Err(), err))
		}
		return nil, fail(fmt.Errorf("ssh %s@%s: %w", cfg.User, addr, err))
	}
	_ = tcp.SetDeadline(time.Time{})
	cl := &Client{cfg: cfg, conn: ssh.NewClient(c, chans, reqs), log: log, done: make(chan struct{})}
	go cl.keepalive()
	log.Debug("ssh connected", "slave", cfg.Name, "addr", addr, "server", string(c.ServerVersion()))
	return cl, nil
}

// Name is the slave's name.
func (c *Client) Name() string { return c.cfg.Name }

// Close closes the connection and every session on it.
func (c *Client) Close() error {
	c.closeOnce.Do(func() { close(c.done) })
	return c.conn.Close()
}

// dead returns why the connection was given up, or nil.
func (c *Client) dead() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.deadErr
}

// keepalive sends keepalive@openssh.com requests; any reply (OpenSSH answers "failure") proves the
// peer is alive. After KeepaliveMax unanswered intervals the connection is closed, so that a
// receive on a dead link fails instead of hanging for the TCP timeout (hours).
func (c *Client) keepalive() {
	t := time.NewTicker(c.cfg.KeepaliveInterval)
	defer t.Stop()
	missed := 0
	reply := make(chan error, 1)
	pending := false
	for {
		select {
		case <-c.done:
			return
		case err := <-reply:
			pending = false
			if err != nil { // the connection is gone; sessions report it themselves
				return
			}
			missed = 0
		case <-t.C:
			if pending {
				missed++
				if missed >= c.cfg.KeepaliveMax {
					c.mu.Lock()
					c.deadErr = fmt.Errorf("connection to %s lost: no reply to %d keepalives in %s",
						c.cfg.hostPort(), missed, time.Duration(missed)*c.cfg.KeepaliveInterval)
					c.mu.Unlock()
					c.log.Warn("ssh keepalive timeout", "slave", c.cfg.Name)
					c.conn.Close()
					return
				}
				continue
			}
			pending = true
			go func() {
				_, _, err := c.conn.SendRequest("keepalive@openssh.com", true, nil)
				reply <- err
			}()
		}
	}
}

// authMethods offers the identity file's key first, then the agent's.
func authMethods(cfg Config) ([]ssh.AuthMethod, func(), error) {
	var signers []ssh.Signer
	if cfg.Identity != "" {
		pem, err := os.ReadFile(cfg.Identity)
		if err != nil {
			return nil, nil, fmt.Errorf("identity: %w", err)
		}
		s, err := ssh.ParsePrivateKey(pem)
		var pp *ssh.PassphraseMissingError
		if errors.As(err, &pp) {
			return nil, nil, fmt.Errorf("identity %s is passphrase-protected: load it into ssh-agent and set agent = true", cfg.Identity)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("identity %s: %w", cfg.Identity, err)
		}
		signers = append(signers, s)
	}
	closeAgent := func() {}
	var ag agent.ExtendedAgent
	if cfg.Agent {
		sock := os.Getenv("SSH_AUTH_SOCK")
		if sock == "" {
			if cfg.Identity == "" {
				return nil, nil, errors.New("agent = true but SSH_AUTH_SOCK is not set")
			}
		} else {
			conn, err := net.Dial("unix", sock)
			if err != nil {
				return nil, nil, fmt.Errorf("ssh-agent at %s: %w", sock, err)
			}
			// the agent is needed only during authentication
			closeAgent = func() { conn.Close() }
			ag = agent.NewClient(conn)
		}
	}
	if len(signers) == 0 && ag == nil {
		return nil, nil, errors.New("no identity file and no ssh-agent to authenticate with")
	}
	cb := func() ([]ssh.Signer, error) {
		out := slices.Clone(signers)
		if ag != nil {
			as, err := ag.Signers()
			if err != nil {
				return nil, fmt.Errorf("ssh-agent: %w", err)
			}
			out = append(out, as...)
		}
		return out, nil
	}
	return []ssh.AuthMethod{ssh.PublicKeysCallback(cb)}, closeAgent, nil
}

// knownHosts is a known_hosts file, read once per Dial: knownhosts' parse of it, and which
// of its lines carry no marker or @cert-authority, which knownhosts does not tell.
type knownHosts struct {
	db    ssh.HostKeyCallback // knownhosts.New: also takes an @cert-authority line's key as a plain host key
	plain map[int][]byte      // lines without a marker: their keys' wire bytes
	ca    map[int]bool        // @cert-authority lines
}

// loadKnownHosts reads a known_hosts file. The markers are read after knownhosts.New, so a
// file changed in between makes lines disagree and keys be refused, never accepted.
func loadKnownHosts(file string) (*knownHosts, error) {
	db, err := knownhosts.New(file)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	k := &knownHosts{db: db}
	k.plain, k.ca = markedLines(data)
	return k, nil
}

// check is the host key callback: it accepts what OpenSSH accepts. knownhosts alone also
// takes the key of an @cert-authority line as a plain host key of the hosts that line names
// (its checkAddr ignores the marker), where OpenSSH matches a plain key against lines without
// a marker only (hostfile.c, check_hostkeys_by_key_or_type); found by FuzzKnownHosts.
// Certificates are still checked against @cert-authority lines.
func (k *knownHosts) check(hostname string, remote net.Addr, key ssh.PublicKey) error {
	err := k.db(hostname, remote, key)
	if _, cert := key.(*ssh.Certificate); cert {
		return err
	}
	var ke *knownhosts.KeyError
	switch {
	case err == nil: // from a line without a marker, or only from @cert-authority ones
		ke = &knownhosts.KeyError{Want: wantKeys(k.db, hostname, remote)}
	case !errors.As(err, &ke):
		return err
	}
	var kept []knownhosts.KnownKey
	for _, w := range ke.Want {
		if b, ok := k.plain[w.Line]; ok && bytes.Equal(b, w.Key.Marshal()) {
			if bytes.Equal(b, key.Marshal()) {
				return nil
			}
			kept = append(kept, w)
		}
	}
	return &knownhosts.KeyError{Want: kept}
}

// markedLines maps each line of a known_hosts file without a marker to its key's wire bytes,
// and lists its @cert-authority lines, numbering and splitting lines as knownhosts does.
func markedLines(data []byte) (plain map[int][]byte, ca map[int]bool) {
	plain, ca = map[int][]byte{}, map[int]bool{}
	word := func(b []byte) ([]byte, []byte) { // knownhosts' nextWord
		if i := bytes.IndexAny(b, " \t"); i >= 0 {
			return b[:i], bytes.Trim(b[i:], " \t")
		}
		return b, nil
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		host, rest := word(bytes.Trim(sc.Bytes(), " \t"))
		if string(host) == "@cert-authority" {
			ca[n] = true
		}
		_, rest = word(rest)
		blob, _ := word(rest)
		if len(host) == 0 || host[0] == '@' || host[0] == '#' {
			continue
		}
		if b, err := base64.StdEncoding.DecodeString(string(blob)); err == nil && len(b) > 0 {
			plain[n] = b
		}
	}
	return plain, ca
}

// wantKeys lists the keys known_hosts has for hostname, by asking about a key nobody has.
func wantKeys(hostKeys ssh.HostKeyCallback, hostname string, remote net.Addr) []knownhosts.KnownKey {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil
	}
	probe, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil
	}
	var ke *knownhosts.KeyError
	if !errors.As(hostKeys(hostname, remote, probe.PublicKey()), &ke) {
		return nil
	}
	return ke.Want
}

// certAlgorithms are the host certificate algorithms, asked for when a @cert-authority line
// matches the host: the certificate's own key can be of any type, whatever the CA's is.
var certAlgorithms = []string{
	ssh.CertAlgoED25519v01, ssh.CertAlgoECDSA256v01, ssh.CertAlgoECDSA384v01, ssh.CertAlgoECDSA521v01,
	ssh.CertAlgoRSASHA512v01, ssh.CertAlgoRSASHA256v01, ssh.CertAlgoRSAv01,
}

// algorithms returns the host key algorithms for the key types known_hosts has for addr, so
// that the server is asked for a key we can check (otherwise a server that prefers, say, ecdsa
// while known_hosts has only its ed25519 key looks like a changed key). The types come from
// every line, @cert-authority ones included. A matching @cert-authority line asks for host
// certificates first: offered the CA key's plain type, the server would show its plain key,
// which no CA line vouches for. The certificate is then checked by knownhosts' ssh.CertChecker: signed by a CA whose line matches
// the host, the host name among its principals, valid now, neither it nor its key @revoked.
// Nil when nothing is known: then any offered key is checked, and refused as unknown.
func (k *knownHosts) algorithms(addr string, remote net.Addr) []string {
	want := wantKeys(k.db, addr, remote)
	var algos []string
	add := func(a ...string) {
		for _, x := range a {
			if !slices.Contains(algos, x) {
				algos = append(algos, x)
			}
		}
	}
	for _, w := range want {
		if k.ca[w.Line] {
			add(certAlgorithms...)
		}
	}
	// then plain keys: a CA line's key type too, so that a server without a certificate shows
	// its plain key and is refused as unknown, not for want of a common algorithm
	for _, w := range want {
		switch t := w.Key.Type(); t {
		case ssh.KeyAlgoRSA:
			add(ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA)
		default:
			add(t)
		}
	}
	return algos
}

// HostKeyError is a host key that known_hosts does not vouch for: what is wrong and what to
// do about it, so that `rollout check` can print them apart.
type HostKeyError struct {
	Problem, Fix string
}

func (e *HostKeyError) Error() string {
	if e.Fix == "" {
		return e.Problem
	}
	return e.Problem + "; " + e.Fix
}

// hostKeyError turns a knownhosts verdict into one line an admin can act on.
func hostKeyError(cfg Config, hostname string, key ssh.PublicKey, err error) error {
	seen := key.Type() + " " + ssh.FingerprintSHA256(key)
	var ke *knownhosts.KeyError
	var re *knownhosts.RevokedError
	switch {
	case errors.As(err, &re):
		return &HostKeyError{Problem: fmt.Sprintf("host key of %s (%s) is marked revoked in %s:%d", hostname, seen, re.Revoked.Filename, re.Revoked.Line),
			Fix: "refusing to connect"}
	case errors.As(err, &ke) && len(ke.Want) == 0:
		return &HostKeyError{Problem: fmt.Sprintf("host key of %s is not in %s (server offered %s)", hostname, cfg.KnownHosts, seen),
			Fix: fmt.Sprintf("verify that fingerprint, then add it with: ssh-keyscan -p %d %s >> %s", cfg.port(), cfg.Address, cfg.KnownHosts)}
	case errors.As(err, &ke):
		w := ke.Want[0]
		for _, k := range ke.Want {
			if k.Key.Type() == key.Type() {
				w = k
				break
			}
		}
		return &HostKeyError{Problem: fmt.Sprintf("HOST KEY CHANGED for %s: server offered %s but %s:%d has %s %s",
			hostname, seen, w.Filename, w.Line, w.Key.Type(), ssh.FingerprintSHA256(w.Key)),
			Fix: "if the slave was reinstalled, verify the new key and replace that line, otherwise suspect an attack"}
	default:
		return fmt.Errorf("host key of %s: %w", hostname, err)
	}
}
