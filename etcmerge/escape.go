package etcmerge

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Escape makes a tenant-chosen name safe to print, as vis(3) with VIS_OCTAL does: a byte of
// a non-printable character (controls, terminal escapes, bidirectional overrides), a byte that
// is not UTF-8 and a blank other than ' ' become \ooo, and '\' becomes \\. A name prints on one
// line, cannot move the cursor or rewrite the terminal, and two different names never print the
// same. Printable names without '\' are unchanged.
func Escape(s string) string {
	if !NeedsEscape(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == utf8.RuneError && n <= 1, !unicode.IsPrint(r):
			for _, c := range []byte(s[i : i+n]) {
				fmt.Fprintf(&b, `\%03o`, c)
			}
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// NeedsEscape reports whether Escape would change s.
func NeedsEscape(s string) bool {
	if !utf8.ValidString(s) {
		return true
	}
	return strings.IndexFunc(s, func(r rune) bool { return r == '\\' || !unicode.IsPrint(r) }) >= 0
}
