package host

import (
	"fmt"
	"strings"
)

// fstabEntry is one fstab(5) line, as far as the Linux stand-in needs it. fstabgen owns the
// real format; this reads only what it writes.
type fstabEntry struct {
	Spec, File, VFSType string
	Opts                []string
}

func (e fstabEntry) has(opt string) bool {
	for _, o := range e.Opts {
		if o == opt {
			return true
		}
	}
	return false
}

// parseFstab reads fstab(5) lines in file order; blank lines and '#' comments are skipped.
func parseFstab(file string, data []byte) ([]fstabEntry, error) {
	var out []fstabEntry
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 {
			return nil, fmt.Errorf("%s:%d: want at least 4 fields (spec file vfstype mntops), got %d", file, i+1, len(f))
		}
		if err := checkPath("mount point", f[1]); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", file, i+1, err)
		}
		out = append(out, fstabEntry{Spec: unescapeOctal(f[0]), File: f[1], VFSType: f[2], Opts: strings.Split(f[3], ",")})
	}
	return out, nil
}

// unescapeOctal undoes the \040-style escapes that fstab(5) and /proc/self/mountinfo use
// for blanks and backslashes in names.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }
