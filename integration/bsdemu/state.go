//go:build linux

package main

// The emulation's "kernel state": jails, md units and the FreeBSD names of mounts live in
// files under stateDir, a directory on the guest's /run tmpfs, so they vanish at reboot as
// kernel state does. Writers take stateDir/lock (flock) around read-modify-write steps.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

const (
	stateDir   = "/run/bsdemu"
	jailsDir   = stateDir + "/jails"
	mdDir      = stateDir + "/md"     // md unit records
	mdStore    = stateDir + "/mdswap" // a dedicated tmpfs: the "swap" behind -t swap units
	mountsDir  = stateDir + "/mounts" // FreeBSD names of mounts (nullfs, devfs), keyed by mount
	holderName = "bsdemu-jail-holder"
	attachName = "bsdemu-jail-attach"
	pinName    = "bsdemu-snapshot-pin"
)

// lockState takes the state lock; the returned func releases it.
func lockState() (func(), error) {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(stateDir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}

func writeJSON(path string, v any) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// procStart returns a process's start time (field 22 of /proc/PID/stat) and whether it is
// alive (not a zombie); a pid reused by another process has another start time.
func procStart(pid int) (uint64, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, false
	}
	st, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, false
	}
	return st, f[0] != "Z" && f[0] != "X"
}

// mountEntry is one line of /proc/self/mountinfo.
type mountEntry struct {
	ID, Parent int
	Dev        string // major:minor
	Root       string
	Target     string
	Opts       string // per-mount options
	FSType     string
	Source     string
	Super      string
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func mountInfo() ([]mountEntry, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []mountEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		sep := -1
		for i, x := range f {
			if x == "-" {
				sep = i
				break
			}
		}
		if sep < 6 || len(f) < sep+4 {
			continue
		}
		id, _ := strconv.Atoi(f[0])
		parent, _ := strconv.Atoi(f[1])
		out = append(out, mountEntry{ID: id, Parent: parent, Dev: f[2], Root: unescapeMount(f[3]),
			Target: unescapeMount(f[4]), Opts: f[5], FSType: f[sep+1], Source: unescapeMount(f[sep+2]), Super: f[sep+3]})
	}
	return out, sc.Err()
}

// topMountAt returns the mount on top at exactly target, if any.
func topMountAt(ms []mountEntry, target string) (mountEntry, bool) {
	var found mountEntry
	ok := false
	for _, m := range ms {
		if m.Target == target {
			found, ok = m, true
		}
	}
	return found, ok
}

// coveringMount returns the mount a path lives on: the last mounted at the longest
// mount point that is a prefix of path (what statfs(2) reports as f_mntonname).
func coveringMount(ms []mountEntry, path string) (mountEntry, bool) {
	var best mountEntry
	ok := false
	for _, m := range ms {
		if m.Target == path || m.Target == "/" || strings.HasPrefix(path, m.Target+"/") {
			if !ok || len(m.Target) >= len(best.Target) {
				best, ok = m, true
			}
		}
	}
	return best, ok
}

// mountRecord gives a Linux mount its FreeBSD identity (nullfs or devfs, and the spec
// it was mounted from). It is keyed by mount ID and checked against the mount's target,
// device and root, so a record left by a mount that is gone never names another mount.
type mountRecord struct {
	ID     int
	Target string
	Dev    string
	Root   string
	Type   string
	Spec   string
}

func recordMount(target, fstype, spec string) error {
	ms, err := mountInfo()
	if err != nil {
		return err
	}
	m, ok := topMountAt(ms, target)
	if !ok {
		return fmt.Errorf("%s: not mounted after mount", target)
	}
	return writeJSON(filepath.Join(mountsDir, strconv.Itoa(m.ID)+".json"),
		mountRecord{ID: m.ID, Target: m.Target, Dev: m.Dev, Root: m.Root, Type: fstype, Spec: spec})
}

// recordFor returns the record that names m, if it is m's own.
func recordFor(m mountEntry) (mountRecord, bool) {
	var r mountRecord
	if err := readJSON(filepath.Join(mountsDir, strconv.Itoa(m.ID)+".json"), &r); err != nil {
		return r, false
	}
	return r, r.ID == m.ID && r.Target == m.Target && r.Dev == m.Dev && r.Root == m.Root
}

// pruneMountRecords removes records whose mount is gone.
func pruneMountRecords(ms []mountEntry) {
	live := map[int]bool{}
	for _, m := range ms {
		if _, ok := recordFor(m); ok {
			live[m.ID] = true
		}
	}
	ents, _ := os.ReadDir(mountsDir)
	for _, e := range ents {
		id, err := strconv.Atoi(strings.TrimSuffix(e.Name(), ".json"))
		if err == nil && !live[id] {
			os.Remove(filepath.Join(mountsDir, e.Name()))
		}
	}
}

// freebsdType is the file system type name FreeBSD's statfs(2) would give a mount.
func freebsdType(m mountEntry) string {
	if r, ok := recordFor(m); ok {
		return r.Type
	}
	switch m.FSType {
	case "ext2", "ext3", "ext4":
		if strings.HasPrefix(m.Source, "/dev/md") {
			return "ufs" // newfs(8) made it: see newfsMain
		}
		return "ext2fs"
	case "devtmpfs":
		return "devfs"
	case "proc":
		return "procfs"
	}
	return m.FSType
}

// sortedNames lists a directory's *.json records by name without the suffix.
func sortedNames(dir string) []string {
	ents, _ := os.ReadDir(dir)
	var out []string
	for _, e := range ents {
		if n, ok := strings.CutSuffix(e.Name(), ".json"); ok {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}
