package sshx

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// fuzzKeys are fixed host keys, so that seeds can name them.
func fuzzKeys(tb testing.TB) []ssh.PublicKey {
	var keys []ssh.PublicKey
	for i := range 4 {
		s, err := ssh.NewSignerFromKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{byte(i + 1)}, ed25519.SeedSize)))
		if err != nil {
			tb.Fatal(err)
		}
		keys = append(keys, s.PublicKey())
	}
	return keys
}

// FuzzKnownHosts checks host keys against arbitrary known_hosts files, as Dial does. A key is
// accepted only for a host a line without a marker lists with that key (plainly, bracketed
// with its port, hashed or by pattern, and not negated), never when an @revoked line has it,
// and never for a host only an @cert-authority line names; a key such a line lists is
// accepted; a refusal is one line; nothing panics.
func FuzzKnownHosts(f *testing.F) {
	keys := fuzzKeys(f)
	line := func(k int, hosts ...string) string { return knownhosts.Line(hosts, keys[k]) + "\n" }
	ak := func(k int) string { return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(keys[k]))) }
	seeds := []struct {
		file string
		host string
		port uint16
		key  uint8
	}{
		{line(0, "slave2.domain.local"), "slave2.domain.local", 22, 0},
		{line(0, "slave2.domain.local"), "slave2.domain.local", 22, 1},
		{line(0, "slave2.domain.local"), "slave3.domain.local", 22, 0},
		{line(0, "slave2.domain.local:2222"), "slave2.domain.local", 2222, 0},
		{line(1, "[192.0.2.7]:2222", "192.0.2.7"), "192.0.2.7", 2222, 1},
		{"# hashed, as HashKnownHosts yes writes them\n" + line(2, knownhosts.HashHostname("slave2")), "slave2", 22, 2},
		{line(2, knownhosts.HashHostname("[slave2]:2222")), "slave2", 2222, 2},
		{"@cert-authority *.domain.local " + ak(3) + "\n", "slave2.domain.local", 22, 3},
		{"@revoked * " + ak(0) + "\n" + line(0, "slave2"), "slave2", 22, 0},
		{"*.domain.local,!evil.domain.local " + ak(1) + "\n", "evil.domain.local", 22, 1},
		{"slave? " + ak(1) + " comment\n\n   \t# x\n" + line(0, "slave2"), "slave2", 22, 1},
		{"@cert-authority @revoked slave2 " + ak(0) + "\n", "slave2", 22, 0},
		{"slave2 ssh-rsa " + strings.Fields(ak(0))[1] + "\n" + line(1, "slave2"), "slave2", 22, 0},
		{"[slave2 " + ak(0) + "\n", "slave2", 22, 0},
		{"::1 " + ak(0) + "\n" + line(0, "[::1]:22"), "::1", 22, 0},
	}
	for _, s := range seeds {
		f.Add([]byte(s.file), s.host, s.port, s.key)
	}
	f.Fuzz(func(t *testing.T, data []byte, host string, port uint16, which uint8) {
		// the configuration refuses such addresses (rollout/config)
		if host == "" || port == 0 || strings.ContainsAny(host, " \t/@;'\"`$[]\n\r") {
			return
		}
		key := keys[int(which)%len(keys)]
		file := filepath.Join(t.TempDir(), "known_hosts")
		if err := os.WriteFile(file, data, 0o600); err != nil {
			t.Fatal(err)
		}
		known, err := loadKnownHosts(file)
		if err != nil {
			return
		}
		cfg := Config{Name: "s", Address: host, Port: int(port), KnownHosts: file}
		hostport := cfg.hostPort()
		err = known.check(hostport, &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: int(port)}, key)
		listed, revoked := modelKnownHosts(data, host, strconv.Itoa(int(port)), key)
		switch {
		case err == nil && revoked:
			t.Fatalf("accepted a key an @revoked line has, for %s", hostport)
		case err == nil && !listed:
			t.Fatalf("accepted a key no line lists for %s", hostport)
		case err != nil && listed && !revoked:
			t.Fatalf("refused a key listed for %s: %v", hostport, err)
		case err != nil:
			if msg := hostKeyError(cfg, hostport, key, err).Error(); strings.ContainsAny(msg, "\n\r") {
				t.Fatalf("refusal is not one line: %q", msg)
			}
		}
	})
}

// modelKnownHosts says, from sshd(8)'s SSH_KNOWN_HOSTS_FILE_FORMAT as x/crypto reads it,
// whether a line without a marker lists key for host:port, and whether an @revoked line has key.
func modelKnownHosts(data []byte, host, port string, key ssh.PublicKey) (listed, revoked bool) {
	word := func(b []byte) ([]byte, []byte) {
		if i := bytes.IndexAny(b, " \t"); i >= 0 {
			return b[:i], bytes.Trim(b[i:], " \t")
		}
		return b, nil
	}
	name := knownhosts.Normalize(net.JoinHostPort(host, port))
	for _, l := range strings.Split(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n") {
		rest := bytes.Trim([]byte(l), " \t")
		if len(rest) == 0 || rest[0] == '#' {
			continue
		}
		marker := ""
		if w, r := word(rest); string(w) == "@revoked" || string(w) == "@cert-authority" {
			marker, rest = string(w), r
		}
		hosts, rest := word(rest)
		typ, rest := word(rest)
		blob, _ := word(rest)
		b, err := base64.StdEncoding.DecodeString(string(blob))
		if len(hosts) == 0 || hosts[0] == '@' || len(blob) == 0 || err != nil || string(typ) != key.Type() || !bytes.Equal(b, key.Marshal()) {
			continue
		}
		switch marker {
		case "@revoked":
			revoked = true
		case "":
			if matchHosts(string(hosts), host, port, name) {
				listed = true
			}
		}
	}
	return listed, revoked
}

// matchHosts: a hashed name, or comma-separated patterns ('*', '?', "[host]:port", '!').
func matchHosts(field, host, port, name string) bool {
	if field[0] == '|' {
		parts := strings.Split(field, "|")
		if len(parts) != 4 || parts[1] != "1" {
			return false
		}
		salt, err1 := base64.StdEncoding.DecodeString(parts[2])
		hash, err2 := base64.StdEncoding.DecodeString(parts[3])
		if err1 != nil || err2 != nil {
			return false
		}
		m := hmac.New(sha1.New, salt)
		m.Write([]byte(name))
		return hmac.Equal(m.Sum(nil), hash)
	}
	matched := false
	for _, p := range strings.Split(field, ",") {
		if p == "" {
			continue
		}
		neg := p[0] == '!'
		if neg {
			p = p[1:]
		}
		if p == "" {
			return false // the line is invalid
		}
		h, pp, err := net.SplitHostPort(p)
		if err != nil {
			if p[0] == '[' {
				return false // invalid
			}
			h, pp = p, "22"
		}
		if pp == port && wildcard(h, host) {
			if neg {
				return false
			}
			matched = true
		}
	}
	return matched
}

// wildcard matches as x/crypto does: a '*' at the end matches one character or more (OpenSSH:
// zero or more), which makes it refuse more, never accept more.
func wildcard(pat, s string) bool {
	if pat == "" || s == "" {
		return pat == s
	}
	if pat[0] == '*' {
		for i := 0; i <= len(s); i++ {
			if wildcard(pat[1:], s[i:]) {
				return true
			}
		}
		return false
	}
	return s != "" && (pat[0] == '?' || pat[0] == s[0]) && wildcard(pat[1:], s[1:])
}
