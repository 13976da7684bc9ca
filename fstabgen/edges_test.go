package fstabgen

import (
	"reflect"
	"strings"
	"testing"
)

// Paths with letters and digits at the edges of their ranges are rendered; the characters
// just outside them are refused.
func TestCheckPathCharacterEdges(t *testing.T) {
	for _, p := range []string{"/jail/a", "/jail/z", "/jail/A", "/jail/Z", "/jail/0", "/jail/9", "/jail/aZ09._-+:@"} {
		if err := checkPath("jail path", p); err != nil {
			t.Errorf("checkPath(%q) = %v", p, err)
		}
		s := testSpec(t, "md")
		s.JailPath = p
		s.Datasets = nil
		if _, err := Render(s); err != nil {
			t.Errorf("Render with jail path %q: %v", p, err)
		}
	}
	for _, p := range []string{"/jail/`", "/jail/{", "/jail/[", "/jail/?", "/jail/é", "/jail/~"} {
		if err := checkPath("jail path", p); err == nil || !strings.Contains(err.Error(), "not allowed") {
			t.Errorf("checkPath(%q) = %v", p, err)
		}
	}
}

// \ooo escapes: every octal digit decodes, 8 and 9 are not octal, and \000 stays as written.
func TestUnescapeEdges(t *testing.T) {
	for in, want := range map[string]string{
		`/a\040b`:  "/a b",
		`/a\047b`:  "/a'b",
		`/a\170b`:  "/axb",
		`/a\077`:   "/a?",
		`/a\000b`:  `/a\000b`,
		`/a\080b`:  `/a\080b`,
		`/a\04`:    `/a\04`,
		`/a\0400`:  "/a 0",
		`\040\040`: "  ",
	} {
		if got := unescape(in); got != want {
			t.Errorf("unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

// Parse errors name the line (counting from 1) and the field (5 freq, 6 passno).
func TestParseErrorPositions(t *testing.T) {
	for in, want := range map[string]string{
		"a b c\n":                       "fstab line 1: 3 fields",
		"# c\n/a /b nullfs ro\nx y z\n": "fstab line 3: 3 fields",
		"/a /b nullfs ro x\n":           `fstab line 1: field 5 "x" is not a number`,
		"\n/a /b nullfs ro 0 y\n":       `fstab line 2: field 6 "y" is not a number`,
		"/a /b nullfs ro 0 1 2\n":       "fstab line 1: 7 fields",
	} {
		if _, err := Parse([]byte(in)); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want %q", in, err, want)
		}
	}
	f, err := Parse([]byte("/a /b nullfs ro 0 1\n/c /d nullfs rw 3\n"))
	want := []Entry{{"/a", "/b", "nullfs", "ro", 0, 1, 1}, {"/c", "/d", "nullfs", "rw", 3, 0, 2}}
	if err != nil || !reflect.DeepEqual(f.Entries, want) {
		t.Errorf("Parse = %+v, %v", f, err)
	}
}
