package replicate

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// A token in the form zfs get receive_resume_token prints (version-checksum-length-hex of the
// compressed nvlist); made up for the seed, not taken from a pool.
const sampleToken = "1-e604ea4bf-e0-789c63a2c2d8a7f36ea8be400b9c9f8b6c70a7ab47e4d81f93e2d7f7e9a8d2d1a4c8c" +
	"0c0c0a27bf5e1a0c02b2d0c0a3a83c3c4e2e6c1e4e0c4e8c88800312c1902b2cb53a14b2b93e3a3ea0cce4c61e0" +
	"ab9e4ebc07c12a1c9f3e8d9fbb6a2a2a4b4b4003d5a1f3e"

// FuzzParseState reads arbitrary `zfs get -H -p -o name,property,value receive_resume_token,
// written` output from a slave. rollout has no decoder of the token itself (it is handed back
// to zfs send -t as it came), so the properties are those of this parse: every file system is
// listed once, in order of appearance; a token or a written value belongs to a listed file
// system; "-" is no token; a token is one line; and what was read, printed again, reads the same.
func FuzzParseState(f *testing.F) {
	f.Add([]byte("tank/proto\treceive_resume_token\t-\ntank/proto\twritten\t0\ntank/proto/etc\treceive_resume_token\t" + sampleToken + "\ntank/proto/etc\twritten\t512\n"))
	f.Add([]byte("tank/proto\treceive_resume_token\t-\ntank/proto\twritten\t-\n"))
	f.Add([]byte("tank/proto\twritten\tx\n"))
	f.Add([]byte("tank/proto receive_resume_token -\n"))
	f.Add([]byte("\n\ntank/proto\treceive_resume_token\ta\tb\n"))
	f.Add([]byte("tank/proto\twritten\t18446744073709551616\n"))
	f.Fuzz(func(t *testing.T, out []byte) {
		fss, tokens, written, err := parseState(out)
		if err != nil {
			return
		}
		listed := map[string]bool{}
		for _, fs := range fss {
			if listed[fs] {
				t.Fatalf("%q listed twice in %q", fs, fss)
			}
			listed[fs] = true
		}
		for fs, tok := range tokens {
			if !listed[fs] || tok == "" || tok == "-" || strings.ContainsAny(tok, "\n\r") {
				t.Fatalf("token %q of %q (listed: %v)", tok, fs, listed[fs])
			}
		}
		for fs := range written {
			if !listed[fs] {
				t.Fatalf("written of unlisted %q", fs)
			}
		}
		var b bytes.Buffer
		for _, fs := range fss {
			tok, ok := tokens[fs]
			if !ok {
				tok = "-"
			}
			fmt.Fprintf(&b, "%s\treceive_resume_token\t%s\n", fs, tok)
			if n, ok := written[fs]; ok {
				fmt.Fprintf(&b, "%s\twritten\t%d\n", fs, n)
			}
		}
		fss2, tokens2, written2, err := parseState(b.Bytes())
		if err != nil || strings.Join(fss2, "\n") != strings.Join(fss, "\n") || fmt.Sprint(tokens2) != fmt.Sprint(tokens) || fmt.Sprint(written2) != fmt.Sprint(written) {
			t.Fatalf("printed again as %q, read as %q %v %v (%v); was %q %v %v", b.Bytes(), fss2, tokens2, written2, err, fss, tokens, written)
		}
	})
}

// FuzzParseSendSize reads arbitrary `zfs send -nvP` output, as for a resume (zfs send -nvP -t
// TOKEN prints the token's contents first). An estimate it returns is the last "size N" line.
func FuzzParseSendSize(f *testing.F) {
	f.Add([]byte("incremental\t2\tzpool/proto@3\t4608\nincremental\t2\tzpool/proto/etc@3\t1024\nsize\t5632\n"))
	f.Add([]byte("resume token contents:\nnvlist version: 0\n\tobject = 0x2\n\toffset = 0x1c3a0\n\tbytes = 0x1d4a8\n" +
		"\ttoname = zpool/proto/etc@3\nfull\tzpool/proto/etc@3\t31744\nsize\t31744\n"))
	f.Add([]byte("full\tzpool/proto@1\t100\n"))
	f.Add([]byte("size\t-5\n"))
	f.Add([]byte("size\t+5\nsize 7\n"))
	f.Add([]byte(strings.Repeat("x", 70000) + "\nsize\t9\n"))
	f.Fuzz(func(t *testing.T, out []byte) {
		n, err := ParseSendSize(out)
		if err != nil {
			if n != -1 || strings.Contains(err.Error(), "\n") {
				t.Fatalf("ParseSendSize = %d, %q", n, err)
			}
			return
		}
		last := int64(-1)
		for _, l := range strings.Split(string(out), "\n") {
			if f := strings.Fields(l); len(f) == 2 && f[0] == "size" {
				last, _ = strconv.ParseInt(f[1], 10, 64)
			}
		}
		if n < 0 || n != last {
			t.Fatalf("ParseSendSize = %d; the last size line says %d", n, last)
		}
	})
}

// A line longer than bufio's default 64 KiB ended the scan silently and hid the size line.
func TestParseSendSizeLongLine(t *testing.T) {
	if n, err := ParseSendSize([]byte(strings.Repeat("x", 70000) + "\nsize\t9\n")); n != 9 || err != nil {
		t.Errorf("ParseSendSize after a 70000-byte line = %d, %v; want 9", n, err)
	}
}

// A receive_resume_token value with a blank or a character outside printable ASCII anywhere,
// first or last character included, is refused as no token; one within it is kept as it is.
func TestParseStateTokenCharacters(t *testing.T) {
	for _, bad := range []string{"1-ab cd-1-2", " 1-ab-1-2", "\x7f1-ab-1-2", "1-ab-1-2\x7f", "1-ab-1-2\xc3\xa9"} {
		_, tokens, _, err := parseState([]byte("tank/proto\treceive_resume_token\t" + bad + "\n"))
		if err == nil || !strings.Contains(err.Error(), "receive_resume_token of tank/proto: not a token") {
			t.Errorf("%q: tokens %q, err %v", bad, tokens, err)
		}
	}
	for _, good := range []string{"!1-ab-1-2~", sampleToken} {
		_, tokens, _, err := parseState([]byte("tank/proto\treceive_resume_token\t" + good + "\n"))
		if err != nil || tokens["tank/proto"] != good {
			t.Errorf("%q: tokens %q, err %v", good, tokens, err)
		}
	}
}

// written is read per file system; "-" (a file system without snapshots) is none, not an error.
func TestParseStateWritten(t *testing.T) {
	fss, _, written, err := parseState([]byte("tank/proto\twritten\t512\ntank/proto/etc\twritten\t-\n"))
	if err != nil || strings.Join(fss, " ") != "tank/proto tank/proto/etc" || len(written) != 1 || written["tank/proto"] != 512 {
		t.Errorf("parseState = %q %v %v", fss, written, err)
	}
}
