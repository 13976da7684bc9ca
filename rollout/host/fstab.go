package host

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/rollout-dev/rollout/fstabgen"
)

// fstabEntry is one line of the fstab that fstabgen wrote, as the Linux stand-in mounts it.
type fstabEntry struct {
	Spec, File, VFSType string
	Opts                []string
}

func (e fstabEntry) has(opt string) bool { return slices.Contains(e.Opts, opt) }

// parseFstab reads the fstab with fstabgen's parser, so that the lab mounts exactly what
// fstabgen wrote and FreeBSD's jail(8) would read, and checks every mount point.
func parseFstab(file string, data []byte) ([]fstabEntry, error) {
	f, err := fstabgen.Parse(data)
	if err != nil {
		var pe *fstabgen.ParseError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("%s:%d: %s", file, pe.Line, pe.Msg)
		}
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	out := make([]fstabEntry, 0, len(f.Entries))
	for _, e := range f.Entries {
		if err := checkPath("mount point", e.File); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", file, e.Line, err)
		}
		out = append(out, fstabEntry{Spec: e.Spec, File: e.File, VFSType: e.VFSType, Opts: strings.Split(e.MntOps, ",")})
	}
	return out, nil
}

// unescapeOctal undoes the \040-style escapes that /proc/self/mountinfo uses for blanks
// and backslashes in names.
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
