package host

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Reading /proc is not running a program, so it does not go through the Runner; the
// directory is a field so that tests can give a fake one.

type procStat struct {
	PPID  int
	State byte
	Start uint64 // start time in clock ticks after boot: tells a reused pid apart
}

// readStat parses /proc/PID/stat. The command name, field 2, may contain blanks and
// parentheses, so fields are counted from its closing parenthesis.
func readStat(procDir string, pid int) (procStat, error) {
	data, err := os.ReadFile(filepath.Join(procDir, strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, err
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("%s/%d/stat: no command name", procDir, pid)
	}
	f := strings.Fields(string(data[i+1:]))
	// after the name: state(3) ppid(4) ... starttime(22)
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, fmt.Errorf("%s/%d/stat: too few fields", procDir, pid)
	}
	ppid, err1 := strconv.Atoi(f[1])
	start, err2 := strconv.ParseUint(f[19], 10, 64)
	if err1 != nil || err2 != nil {
		return procStat{}, fmt.Errorf("%s/%d/stat: bad ppid or start time", procDir, pid)
	}
	return procStat{PPID: ppid, State: f[0][0], Start: start}, nil
}

// alive reports whether pid exists and is not a zombie.
func alive(procDir string, pid int) bool {
	st, err := readStat(procDir, pid)
	return err == nil && st.State != 'Z' && st.State != 'X'
}

func pids(procDir string) ([]int, error) {
	ents, err := os.ReadDir(procDir)
	if err != nil {
		return nil, err
	}
	var out []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil && pid > 0 {
			out = append(out, pid)
		}
	}
	return out, nil
}

// children returns the live children of ppid.
func children(procDir string, ppid int) ([]int, error) {
	all, err := pids(procDir)
	if err != nil {
		return nil, err
	}
	var out []int
	for _, pid := range all {
		if st, err := readStat(procDir, pid); err == nil && st.PPID == ppid && st.State != 'Z' {
			out = append(out, pid)
		}
	}
	return out, nil
}

// nsMembers returns the live processes in the pid namespace of pid, other than pid.
func nsMembers(procDir string, pid int) ([]int, error) {
	ns, err := os.Readlink(filepath.Join(procDir, strconv.Itoa(pid), "ns", "pid"))
	if err != nil {
		return nil, err
	}
	all, err := pids(procDir)
	if err != nil {
		return nil, err
	}
	var out []int
	for _, p := range all {
		if p == pid {
			continue
		}
		if l, err := os.Readlink(filepath.Join(procDir, strconv.Itoa(p), "ns", "pid")); err == nil && l == ns && alive(procDir, p) {
			out = append(out, p)
		}
	}
	return out, nil
}

// parseMountinfo reads /proc/self/mountinfo (proc(5)): mount point is field 5, then
// optional fields up to "-", then type, source and super options. Blanks, tabs, newlines
// and backslashes in names are written as \040, \011, \012 and \134.
func parseMountinfo(data []byte) ([]mountEntry, error) {
	var ms []mountEntry
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if len(f) < 6 || sep < 0 || sep+2 >= len(f) {
			return nil, fmt.Errorf("unexpected mountinfo line %q", line)
		}
		ms = append(ms, mountEntry{Source: unescapeOctal(f[sep+2]), Target: unescapeOctal(f[4]), FSType: f[sep+1], Options: f[5]})
	}
	return ms, nil
}
