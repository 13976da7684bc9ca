package etcmerge

import "testing"

// Issue 8, finding 4: tenant-chosen names were printed raw; a newline forged an extra line and
// "\x1b[2J" cleared the admin's terminal.
func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"rc.conf":               "rc.conf",
		"évian/ß.conf":          "évian/ß.conf",
		"x\nadded    /etc/evil": `x\012added    /etc/evil`,
		"a\x1b[2Jb":             `a\033[2Jb`,
		`back\slash`:            `back\\slash`,
		`\012`:                  `\\012`, // not the same as a real newline
		"bad\xffutf8":           `bad\377utf8`,
		"tab\there":             `tab\011here`,
		"rtl\u202eevil":         `rtl\342\200\256evil`,
		"nbsp\u00a0x":           `nbsp\302\240x`,
	} {
		if got := Escape(in); got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
		if NeedsEscape(in) != (in != want) {
			t.Errorf("NeedsEscape(%q) = %t", in, NeedsEscape(in))
		}
	}
}
