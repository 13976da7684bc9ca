// Package fstabgen renders and parses the per-vhost fstab that jail(8) mounts from (mount.fstab).
// It imports nothing of package rollout or its configuration: callers map theirs to a Spec.
//
// The file is written in mount order (jail(8) mounts in file order and unmounts in reverse): the
// prototype snapshot as the jail's root, the snapshot's /etc at conf/base/etc, a tmpfs /etc when
// that backend is chosen, then the vhost's own datasets. Its first line is a header naming the
// vhost, the snapshot and a checksum of the lines below it, so that Parse can tell a file rollout
// wrote from one edited by hand.
package fstabgen

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/rollout-dev/rollout/proto/zfs"
)

// Mount is one of the vhost's own datasets and where it is mounted.
type Mount struct {
	Dataset string // zpool/vhost1/var
	Dir     string // /jail/vhost1/var
}

// Spec is everything a vhost's fstab is made of.
type Spec struct {
	Vhost              string  // vhost1
	ProtoMountpoint    string  // /jail/proto
	ProtoEtcMountpoint string  // /jail/proto/etc
	Snapshot           string  // short name: 2
	SnapshotFull       string  // zpool/proto@2, for the header
	JailPath           string  // /jail/vhost1
	Datasets           []Mount // in mount order
	EtcBackend         string  // "md" or "tmpfs"
	EtcSize            string  // 32m; used by tmpfs only
}

// Entry is one fstab(5) line.
type Entry struct {
	Spec, File, VFSType, MntOps string
	Freq, PassNo                int
	Line                        int // in the file, from 1
}

// ParseError is a line Parse cannot read.
type ParseError struct {
	Line int
	Msg  string
}

func (e *ParseError) Error() string { return fmt.Sprintf("fstab line %d: %s", e.Line, e.Msg) }

// Fstab is a parsed fstab.
type Fstab struct {
	Entries []Entry
	// Vhost is the vhost named in rollout's header; empty when there is none.
	Vhost string
	// Snapshot is the short snapshot name N of the first nullfs line mounting .../.zfs/snapshot/N.
	Snapshot string
	// Generated: the first line is rollout's header.
	Generated bool
	// Edited: Generated, but the lines below the header are not those rollout wrote.
	Edited bool
}

const headerPrefix = "# rollout:"

// Render returns the fstab for s, or an error naming the first bad value.
func Render(s Spec) ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, fmt.Errorf("fstab for vhost %q: %w", s.Vhost, err)
	}
	snapDir := func(mp string) string { return path.Join(mp, ".zfs/snapshot", s.Snapshot) }
	es := []Entry{
		{Spec: snapDir(s.ProtoMountpoint), File: s.JailPath, VFSType: "nullfs", MntOps: "ro"},
		{Spec: snapDir(s.ProtoEtcMountpoint), File: path.Join(s.JailPath, "conf/base/etc"), VFSType: "nullfs", MntOps: "ro"},
	}
	if s.EtcBackend == "tmpfs" {
		// md needs no line: the exec.prestart hook creates it after these mounts
		es = append(es, Entry{Spec: "tmpfs", File: path.Join(s.JailPath, "etc"), VFSType: "tmpfs", MntOps: "rw,size=" + s.EtcSize + ",mode=0755"})
	}
	for _, m := range s.Datasets {
		es = append(es, Entry{Spec: m.Dataset, File: m.Dir, VFSType: "zfs", MntOps: "rw"})
	}
	body := format(es)
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s vhost=%s snapshot=%s sum=%s -- generated, do not edit; rollout fstab --write %s regenerates it\n",
		headerPrefix, s.Vhost, s.SnapshotFull, checksum(body), s.Vhost)
	b.Write(body)
	return b.Bytes(), nil
}

func format(es []Entry) []byte {
	var w [3]int
	for _, e := range es {
		w[0] = max(w[0], len(e.Spec))
		w[1] = max(w[1], len(e.File))
		w[2] = max(w[2], len(e.VFSType))
	}
	var b bytes.Buffer
	for _, e := range es {
		fmt.Fprintf(&b, "%-*s  %-*s  %-*s %s %d %d\n", w[0], e.Spec, w[1], e.File, w[2], e.VFSType, e.MntOps, e.Freq, e.PassNo)
	}
	return b.Bytes()
}

// checksum covers the exact bytes below the header: any change there is a hand edit.
func checksum(body []byte) string {
	h := sha256.Sum256(body)
	return "sha256:" + hex.EncodeToString(h[:8])
}

func (s Spec) check() error {
	if err := zfs.ValidateComponent("vhost name", s.Vhost); err != nil {
		return err
	}
	if err := zfs.ValidateSnapshotName(s.Snapshot); err != nil {
		return err
	}
	if _, name, err := zfs.SplitSnapshot(s.SnapshotFull); err != nil {
		return err
	} else if name != s.Snapshot {
		return fmt.Errorf("snapshot %q does not match snapshot name %q", s.SnapshotFull, s.Snapshot)
	}
	for _, p := range []struct{ what, p string }{
		{"prototype mountpoint", s.ProtoMountpoint},
		{"prototype /etc mountpoint", s.ProtoEtcMountpoint},
		{"jail path", s.JailPath},
	} {
		if err := checkPath(p.what, p.p); err != nil {
			return err
		}
	}
	if s.JailPath == "/" {
		return fmt.Errorf("jail path %q: must not be /", s.JailPath)
	}
	switch s.EtcBackend {
	case "md":
	case "tmpfs":
		if !validSize(s.EtcSize) {
			return fmt.Errorf("invalid /etc size %q: must be a number with a unit k, m, g or t, such as 32m", s.EtcSize)
		}
	default:
		return fmt.Errorf("invalid /etc backend %q: must be \"md\" or \"tmpfs\"", s.EtcBackend)
	}
	reserved := map[string]bool{s.JailPath: true, path.Join(s.JailPath, "etc"): true, path.Join(s.JailPath, "conf/base/etc"): true}
	for _, m := range s.Datasets {
		if err := zfs.ValidateDataset(m.Dataset); err != nil {
			return err
		}
		if err := checkPath("mount point", m.Dir); err != nil {
			return err
		}
		if !strings.HasPrefix(m.Dir, s.JailPath+"/") {
			return fmt.Errorf("mount point %q of %s is not inside the jail path %q", m.Dir, m.Dataset, s.JailPath)
		}
		if reserved[m.Dir] {
			return fmt.Errorf("mount point %q of %s is used twice", m.Dir, m.Dataset)
		}
		reserved[m.Dir] = true
	}
	return nil
}

// checkPath accepts absolute clean paths that fstab(5), jail.conf(5) and sh read literally.
func checkPath(what, p string) error {
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("invalid %s %q: not an absolute path", what, p)
	}
	if path.Clean(p) != p {
		return fmt.Errorf("invalid %s %q: not a clean path (no '..', '.', '//' or trailing '/')", what, p)
	}
	for _, r := range p {
		if !(r == '/' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-+:@", r)) {
			return fmt.Errorf("invalid %s %q: character %q not allowed", what, p, r)
		}
	}
	return nil
}

// validSize accepts a number with a k, m, g or t suffix (either case). The unit is required: a
// bare tmpfs size=32 is 32 bytes, and mdconfig -s 32 is 32 sectors.
func validSize(s string) bool {
	if len(s) < 2 || !strings.ContainsRune("kmgtKMGT", rune(s[len(s)-1])) {
		return false
	}
	// base 10 ParseUint takes digits only: no sign, no '_'; tmpfs reads size=0 as "no limit"
	n, err := strconv.ParseUint(s[:len(s)-1], 10, 32)
	return err == nil && n > 0
}

// Parse reads fstab(5) syntax: '#' comment lines, blank lines, 4 to 6 whitespace-separated
// fields with octal escapes such as \040. It works on any fstab; rollout's header is optional.
func Parse(data []byte) (*Fstab, error) {
	f := &Fstab{}
	body := data
	if first, rest, _ := bytes.Cut(data, []byte("\n")); bytes.HasPrefix(first, []byte(headerPrefix)) {
		f.Generated = true
		body = rest
		h := parseHeader(string(first))
		f.Vhost = h["vhost"]
		f.Edited = h["sum"] != checksum(body)
		defer func() {
			// a header that names another snapshot than the mounts is an edit too
			if _, name, ok := strings.Cut(h["snapshot"], "@"); !ok || name != f.Snapshot {
				f.Edited = true
			}
		}()
	}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		fields := strings.Fields(line)
		// as getfsent(3): a field starting with '#' ends the line
		for j, fl := range fields {
			if fl[0] == '#' {
				fields = fields[:j]
				break
			}
		}
		if len(fields) < 4 || len(fields) > 6 {
			return nil, &ParseError{i + 1, fmt.Sprintf("%d fields, want 4 to 6: %.60q", len(fields), line)}
		}
		e := Entry{Spec: unescape(fields[0]), File: unescape(fields[1]), VFSType: fields[2], MntOps: fields[3], Line: i + 1}
		for k, dst := range []*int{&e.Freq, &e.PassNo} {
			if len(fields) > 4+k {
				n, err := strconv.Atoi(fields[4+k])
				if err != nil || n < 0 {
					return nil, &ParseError{i + 1, fmt.Sprintf("field %d %.20q is not a number", 5+k, fields[4+k])}
				}
				*dst = n
			}
		}
		f.Entries = append(f.Entries, e)
		if f.Snapshot == "" && e.VFSType == "nullfs" {
			f.Snapshot = snapshotOf(e.Spec)
		}
	}
	return f, nil
}

// Check reports what would make jail(8) mount the wrong thing: a mount point listed twice (the
// paper's upgrade example repeats its /etc line) or nullfs lines naming different snapshots.
func (f *Fstab) Check() error {
	seen := map[string]bool{}
	for _, e := range f.Entries {
		if seen[e.File] {
			return fmt.Errorf("fstab: %s is mounted twice", e.File)
		}
		seen[e.File] = true
		if n := snapshotOf(e.Spec); e.VFSType == "nullfs" && n != "" && n != f.Snapshot {
			return fmt.Errorf("fstab: %s mounts snapshot %s but the root mounts snapshot %s", e.File, n, f.Snapshot)
		}
	}
	return nil
}

func parseHeader(line string) map[string]string {
	h := map[string]string{}
	line, _, _ = strings.Cut(strings.TrimPrefix(line, headerPrefix), " -- ")
	for _, kv := range strings.Fields(line) {
		if k, v, ok := strings.Cut(kv, "="); ok {
			h[k] = v
		}
	}
	return h
}

// snapshotOf returns N from ".../.zfs/snapshot/N", or "".
func snapshotOf(src string) string {
	_, after, ok := strings.Cut(src, "/.zfs/snapshot/")
	if !ok {
		return ""
	}
	n, _, _ := strings.Cut(after, "/")
	if zfs.ValidateSnapshotName(n) != nil {
		return ""
	}
	return n
}

// unescape decodes \ooo octal escapes, as fstab(5) allows for spaces (\040) and tabs (\011).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil && n > 0 {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }
