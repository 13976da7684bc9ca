package replicate

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/rollout-dev/rollout/proto/command"
	"github.com/rollout-dev/rollout/proto/zfs"
)

// ZpoolBin is FreeBSD's zpool(8).
const ZpoolBin = "/sbin/zpool"

// sendFlagOrder is every flag send_flags may name, in the order they are written into argv.
var sendFlagOrder = []string{"-c", "-L", "-e", "-w"}

// SendFlags is the [replicate] send_flags setting: how zfs send's stream flags are chosen.
// The zero value sends none.
type SendFlags struct {
	Auto  bool     // chosen per slave from both ends' pool features, zfs and the encryption
	Fixed []string // when not Auto: exactly these ("none": empty)
}

// ParseSendFlags reads send_flags: "auto" (also ""), "none", or some of -c -L -e -w separated by
// spaces, each at most once. Anything else is refused: the value ends up in zfs send's argv.
func ParseSendFlags(s string) (SendFlags, error) {
	switch strings.TrimSpace(s) {
	case "", "auto":
		return SendFlags{Auto: true}, nil
	case "none":
		return SendFlags{}, nil
	}
	seen := map[string]bool{}
	for _, f := range strings.Fields(s) {
		if !slices.Contains(sendFlagOrder, f) {
			return SendFlags{}, fmt.Errorf("send flags %q: %q is not one of -c -L -e -w (or use \"auto\" or \"none\")", s, f)
		}
		if seen[f] {
			return SendFlags{}, fmt.Errorf("send flags %q: %s given twice", s, f)
		}
		seen[f] = true
	}
	var out SendFlags
	for _, f := range sendFlagOrder {
		if seen[f] {
			out.Fixed = append(out.Fixed, f)
		}
	}
	return out, nil
}

func (f SendFlags) String() string {
	switch {
	case f.Auto:
		return "auto"
	case len(f.Fixed) == 0:
		return "none"
	}
	return strings.Join(f.Fixed, " ")
}

// Features is what one host's ZFS can do with a stream.
type Features struct {
	// Pool maps a feature of the pool ("large_blocks") to its state: enabled, active, disabled.
	Pool map[string]string
	// Version is the first line of `zfs version` ("zfs-2.2.6-1"); "" when zfs has no such
	// subcommand (older than OpenZFS 0.8, or FreeBSD's ZFS before 13).
	Version string
}

// has reports whether the pool can use feature: enabled or active.
func (f *Features) has(feature string) bool {
	v := f.Pool[feature]
	return v == "enabled" || v == "active"
}

func (f *Features) active(feature string) bool { return f.Pool[feature] == "active" }

func poolFeaturesArgv(pool string) []string {
	return []string{ZpoolBin, "get", "-H", "-p", "-o", "property,value", "all", pool}
}

func versionArgv() []string { return []string{zfs.Bin, "version"} }

func encryptionArgv(dataset string) []string {
	return []string{zfs.Bin, "get", "-H", "-o", "value", "encryption", dataset}
}

// ParsePoolFeatures reads `zpool get -H -p -o property,value all POOL`: the feature@ lines.
func ParsePoolFeatures(out []byte) (map[string]string, error) {
	m := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if sc.Text() == "" {
			continue
		}
		prop, val, ok := strings.Cut(sc.Text(), "\t")
		if !ok {
			return nil, fmt.Errorf("unexpected zpool get line %q", sc.Text())
		}
		if name, ok := strings.CutPrefix(prop, "feature@"); ok {
			m[name] = val
		}
	}
	return m, sc.Err()
}

// QueryFeatures reads pool's features and the version of zfs on r's host. The two run at once
// (over SSH, as two sessions of the one connection: one round trip), each with its own exit
// status: a zfs without the version subcommand is an old zfs, not a failed read.
func QueryFeatures(ctx context.Context, r command.Runner, pool string) (*Features, error) {
	var poolOut, verOut []byte
	var poolErr, verErr error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); poolOut, poolErr = command.Output(ctx, r, poolFeaturesArgv(pool)...) }()
	go func() { defer wg.Done(); verOut, verErr = command.Output(ctx, r, versionArgv()...) }()
	wg.Wait()
	if poolErr != nil {
		return nil, fmt.Errorf("%s: reading the features of pool %s: %w", r.Host(), pool, poolErr)
	}
	f := &Features{}
	var err error
	if f.Pool, err = ParsePoolFeatures(poolOut); err != nil {
		return nil, fmt.Errorf("%s: pool %s: %w", r.Host(), pool, err)
	}
	var ce *command.Error
	switch {
	case verErr == nil:
		line, _, _ := strings.Cut(strings.TrimSpace(string(verOut)), "\n")
		f.Version = strings.TrimSpace(line)
	case errors.As(verErr, &ce) && ce.ExitCode > 0:
		// "unrecognized command 'version'": Version stays ""
	default:
		return nil, fmt.Errorf("%s: zfs version: %w", r.Host(), verErr)
	}
	return f, nil
}

// QueryEncryption reads the prototype's encryption property ("off", "aes-256-gcm", ...).
func QueryEncryption(ctx context.Context, r command.Runner, dataset string) (string, error) {
	out, err := command.Output(ctx, r, encryptionArgv(dataset)...)
	if err != nil {
		return "", fmt.Errorf("%s: encryption of %s: %w", r.Host(), dataset, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// encrypted reports whether an encryption property value means an encrypted dataset. A zfs
// without encryption ("-" or nothing: no such property) has none.
func encrypted(v string) bool { return v != "" && v != "off" && v != "-" }

// chooseFlags decides zfs send's stream flags for one slave. why says what decided them, for
// the plan; refuse is set when no stream can be sent safely (an encrypted prototype whose slave
// cannot keep it encrypted).
func chooseFlags(m MasterState, s SlaveState, req Request) (flags []string, why, refuse string) {
	if !req.SendFlags.Auto {
		return req.SendFlags.Fixed, fmt.Sprintf("send_flags = %q", req.SendFlags.String()), ""
	}
	mf, sf := m.Features, s.Features
	if mf == nil || sf == nil {
		// not guessed: an encrypted prototype needs -w
		return nil, "", "send_flags is auto, but the pool features of this host or of the slave were not read"
	}
	if encrypted(m.Encryption) {
		// without -w, a replication stream (-R) of an encrypted dataset is refused by zfs send;
		// with it, the blocks go as they are on disk and the slave never needs the key
		if !sf.has("encryption") {
			return nil, "", fmt.Sprintf("%s is encrypted (encryption=%s) and is sent raw (zfs send -w), which needs the encryption feature on pool %s of %s (it has %s)",
				m.Dataset, m.Encryption, req.Pool, req.Slave, orNone(sf.Pool["encryption"]))
		}
		return []string{"-w"}, fmt.Sprintf("%s is encrypted (%s): raw, it stays encrypted on %s (-w implies -L -e -c)", m.Dataset, m.Encryption, req.Slave), ""
	}

	var has, not []string
	// lacks names the end that lacks feature, or "" when both have it
	lacks := func(feature string) string {
		switch {
		case !mf.has(feature):
			return "this host lacks " + feature
		case !sf.has(feature):
			return req.Slave + " lacks " + feature
		}
		return ""
	}
	// -c: compressed blocks go as they are; both zfs must know the compressed stream (OpenZFS
	// 0.7; `zfs version` exists from 0.8), and the slave the algorithms the master's pool uses
	c := ""
	switch {
	case mf.Version == "":
		c = "this host's zfs is older than OpenZFS 0.8 (no zfs version)"
	case sf.Version == "":
		c = req.Slave + "'s zfs is older than OpenZFS 0.8 (no zfs version)"
	default:
		for _, alg := range []string{"lz4_compress", "zstd_compress"} {
			if mf.active(alg) && !sf.has(alg) {
				c = req.Slave + " lacks " + alg + ", which this host uses"
				break
			}
		}
	}
	if c == "" {
		flags = append(flags, "-c")
		has = append(has, sf.Version)
	} else {
		not = append(not, "no -c: "+c)
	}
	// -L: blocks over 128 KiB go whole (without it they are split, and -c must decompress them)
	if l := lacks("large_blocks"); l == "" {
		flags = append(flags, "-L")
		has = append(has, "large_blocks")
	} else {
		not = append(not, "no -L: "+l)
	}
	// -e: blocks small enough to live in their block pointer go as they are; their data is
	// lz4-compressed when the master's pool uses lz4
	e := lacks("embedded_data")
	if e == "" && mf.active("lz4_compress") && !sf.has("lz4_compress") {
		e = req.Slave + " lacks lz4_compress, which this host uses"
	}
	if e == "" {
		flags = append(flags, "-e")
		has = append(has, "embedded_data")
	} else {
		not = append(not, "no -e: "+e)
	}
	var parts []string
	if len(has) > 0 {
		parts = append(parts, req.Slave+" has "+strings.Join(has, ", "))
	}
	return flags, strings.Join(append(parts, not...), "; "), ""
}

func orNone(s string) string {
	if s == "" {
		return "no such feature"
	}
	return s
}

// withFlags puts flags right after "zfs send".
func withFlags(send []string, flags []string) []string {
	out := append([]string{}, send[:2]...)
	out = append(out, flags...)
	return append(out, send[2:]...)
}
