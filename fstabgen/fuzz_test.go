package fstabgen

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"reflect"
	"strings"
	"testing"
)

// FuzzParse reads arbitrary fstabs. Whatever Parse accepts must be what the file says: written
// out again (fstab(5) escapes for the bytes that need them) it parses to the same entries with
// the same verdict from Check; a file rollout wrote and nobody edited must be one whose body
// matches its header's checksum and snapshot; and a file laid out as rollout lays it out must
// render from its Spec to a file that parses back to that Spec, unedited.
func FuzzParse(f *testing.F) {
	f.Add([]byte(paperFstab))
	f.Add([]byte(strings.Replace(paperFstab, "/1 ", "/2 ", 1)))
	f.Add([]byte("# rollout: vhost=a snapshot=p@1 sum=x -- y\n/a/.zfs/snapshot/1 /b nullfs ro\n"))
	f.Add([]byte("a\\04 b\\ c d\\377 \\1234\n"))
	f.Add([]byte("# comment\n\n  \t\n/a\\040b /mnt/x\\011y nullfs ro # trailing\nfoo /bar zfs rw 1\n"))
	for _, g := range []string{"fstab.vhost1.md", "fstab.vhost1.tmpfs"} {
		data, err := os.ReadFile("testdata/" + g)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fs, err := Parse(data)
		if err != nil {
			if pe, ok := err.(*ParseError); !ok || strings.Contains(err.Error(), "\n") || pe.Line < 1 || pe.Line > bytes.Count(data, []byte("\n"))+1 {
				t.Fatalf("error %q is not a one-line ParseError naming a line of the file", err)
			}
			return
		}
		checkParsed(t, data, fs)
		checkReformat(t, fs)
		checkRender(t, fs)
	})
}

func checkParsed(t *testing.T, data []byte, fs *Fstab) {
	t.Helper()
	first, body, _ := bytes.Cut(data, []byte("\n"))
	if fs.Generated != bytes.HasPrefix(first, []byte(headerPrefix)) || fs.Edited && !fs.Generated {
		t.Fatalf("Generated=%v Edited=%v for a file beginning %.40q", fs.Generated, fs.Edited, first)
	}
	if fs.Generated && !fs.Edited {
		h := parseHeader(string(first))
		if h["sum"] != checksum(body) || !strings.HasSuffix(h["snapshot"], "@"+fs.Snapshot) {
			t.Fatalf("not edited, but the header %q does not match the body (snapshot %q)", first, fs.Snapshot)
		}
		// any line added below the header is an edit
		if again, err := Parse(append(bytes.Clone(data), "\n/x /y/z nullfs ro 0 0\n"...)); err != nil || !again.Edited {
			t.Fatalf("a line added to an unedited file: Parse = %+v, %v; want Edited", again, err)
		}
	}
	last := 0
	for _, e := range fs.Entries {
		if e.Line <= last || e.Line > bytes.Count(data, []byte("\n"))+1 || e.Freq < 0 || e.PassNo < 0 || e.Spec == "" || e.File == "" {
			t.Fatalf("entry %+v after line %d", e, last)
		}
		last = e.Line
	}
	want := ""
	for _, e := range fs.Entries {
		if n := snapshotOf(e.Spec); e.VFSType == "nullfs" && n != "" {
			want = n
			break
		}
	}
	if fs.Snapshot != want {
		t.Fatalf("Snapshot %q, but the first nullfs line mounting a snapshot mounts %q", fs.Snapshot, want)
	}
}

// checkReformat writes the entries out again and parses them back.
func checkReformat(t *testing.T, fs *Fstab) {
	t.Helper()
	var b bytes.Buffer
	for _, e := range fs.Entries {
		fmt.Fprintf(&b, "%s\t%s\t%s\t%s\t%d\t%d\n", escape(e.Spec), escape(e.File), e.VFSType, e.MntOps, e.Freq, e.PassNo)
	}
	again, err := Parse(b.Bytes())
	if err != nil {
		t.Fatalf("re-written fstab refused: %v\n%s", err, b.Bytes())
	}
	if len(again.Entries) != len(fs.Entries) || again.Snapshot != fs.Snapshot || again.Generated {
		t.Fatalf("re-written fstab parses to %+v, was %+v", again, fs)
	}
	for i, e := range again.Entries {
		e.Line = fs.Entries[i].Line
		if e != fs.Entries[i] {
			t.Fatalf("entry %d re-parsed as %+v, was %+v", i, e, fs.Entries[i])
		}
	}
	if a, b := fs.Check(), again.Check(); (a == nil) != (b == nil) {
		t.Fatalf("Check changed after rewriting: %v, then %v", a, b)
	}
}

// escape writes s as one fstab(5) field: \ooo for what would split or end it.
func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != 0 && (c <= ' ' || c >= 0x7f || c == '#' || c == '\\') {
			fmt.Fprintf(&b, `\%03o`, c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// checkRender: an fstab laid out as rollout writes it gives a Spec; that Spec, if Render takes
// it, renders to a file that parses back to the same Spec, generated and unedited, that Check
// accepts.
func checkRender(t *testing.T, fs *Fstab) {
	t.Helper()
	s, ok := specOf(fs)
	if !ok {
		return
	}
	data, err := Render(s)
	if err != nil {
		return
	}
	back, err := Parse(data)
	if err != nil {
		t.Fatalf("rendered fstab refused: %v\n%s", err, data)
	}
	if !back.Generated || back.Edited || back.Vhost != s.Vhost || back.Snapshot != s.Snapshot || back.Check() != nil {
		t.Fatalf("rendered fstab parses to %+v (Check %v)\n%s", back, back.Check(), data)
	}
	if s2, ok := specOf(back); !ok || !reflect.DeepEqual(s, s2) {
		t.Fatalf("Spec %+v rendered and parsed back as %+v", s, s2)
	}
}

// specOf recovers the Spec of an fstab in rollout's layout.
func specOf(fs *Fstab) (Spec, bool) {
	es := fs.Entries
	if len(es) < 2 || es[0].VFSType != "nullfs" || es[1].VFSType != "nullfs" {
		return Spec{}, false
	}
	snap := fs.Snapshot
	suffix := "/.zfs/snapshot/" + snap
	if snap == "" || !strings.HasSuffix(es[0].Spec, suffix) || !strings.HasSuffix(es[1].Spec, suffix) ||
		es[1].File != path.Join(es[0].File, "conf/base/etc") {
		return Spec{}, false
	}
	vhost := fs.Vhost
	if vhost == "" {
		vhost = path.Base(es[0].File)
	}
	mountpoint := func(src string) string { // path.Join("/", ".zfs/snapshot/N") has no "/" left before it
		if mp := strings.TrimSuffix(src, suffix); mp != "" {
			return mp
		}
		return "/"
	}
	s := Spec{Vhost: vhost, Snapshot: snap, SnapshotFull: "zpool/proto@" + snap,
		ProtoMountpoint: mountpoint(es[0].Spec), ProtoEtcMountpoint: mountpoint(es[1].Spec),
		JailPath: es[0].File, EtcBackend: "md", EtcSize: "32m"}
	es = es[2:]
	if len(es) > 0 && es[0].VFSType == "tmpfs" && es[0].Spec == "tmpfs" && es[0].File == path.Join(s.JailPath, "etc") {
		size, ok1 := strings.CutPrefix(es[0].MntOps, "rw,size=")
		size, ok2 := strings.CutSuffix(size, ",mode=0755")
		if !ok1 || !ok2 {
			return Spec{}, false
		}
		s.EtcBackend, s.EtcSize = "tmpfs", size
		es = es[1:]
	}
	for _, e := range es {
		if e.VFSType != "zfs" || e.MntOps != "rw" {
			return Spec{}, false
		}
		s.Datasets = append(s.Datasets, Mount{Dataset: e.Spec, Dir: e.File})
	}
	return s, true
}
