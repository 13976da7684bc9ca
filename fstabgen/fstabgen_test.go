package fstabgen

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// testSpec is vhost1 of the paper on snapshot 2, with the defaults rollout's config gives.
func testSpec(t *testing.T, backend string) Spec {
	t.Helper()
	s := Spec{
		Vhost:              "vhost1",
		ProtoMountpoint:    "/jail/proto",
		ProtoEtcMountpoint: "/jail/proto/etc",
		Snapshot:           "2",
		SnapshotFull:       "zpool/proto@2",
		JailPath:           "/jail/vhost1",
		EtcBackend:         backend,
		EtcSize:            "32m",
	}
	for _, d := range []string{"cfg", "var", "home"} {
		s.Datasets = append(s.Datasets, Mount{Dataset: "zpool/vhost1/" + d, Dir: "/jail/vhost1/" + d})
	}
	return s
}

func TestRenderGolden(t *testing.T) {
	for _, backend := range []string{"md", "tmpfs"} {
		t.Run(backend, func(t *testing.T) {
			got, err := Render(testSpec(t, backend))
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "fstab.vhost1."+backend)
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("Render:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestParseRoundTrip(t *testing.T) {
	for _, backend := range []string{"md", "tmpfs"} {
		s := testSpec(t, backend)
		data, err := Render(s)
		if err != nil {
			t.Fatal(err)
		}
		f, err := Parse(data)
		if err != nil {
			t.Fatal(err)
		}
		if !f.Generated || f.Edited || f.Vhost != "vhost1" || f.Snapshot != "2" {
			t.Errorf("%s: Parse = %+v, want generated, not edited, vhost1, snapshot 2", backend, f)
		}
		if err := f.Check(); err != nil {
			t.Errorf("%s: Check: %v", backend, err)
		}
		// line 1 is the header; one mount a line after it
		want := []Entry{
			{"/jail/proto/.zfs/snapshot/2", "/jail/vhost1", "nullfs", "ro", 0, 0, 2},
			{"/jail/proto/etc/.zfs/snapshot/2", "/jail/vhost1/conf/base/etc", "nullfs", "ro", 0, 0, 3},
		}
		if backend == "tmpfs" {
			want = append(want, Entry{"tmpfs", "/jail/vhost1/etc", "tmpfs", "rw,size=32m,mode=0755", 0, 0, len(want) + 2})
		}
		for _, d := range []string{"cfg", "var", "home"} {
			want = append(want, Entry{"zpool/vhost1/" + d, "/jail/vhost1/" + d, "zfs", "rw", 0, 0, len(want) + 2})
		}
		if !reflect.DeepEqual(f.Entries, want) {
			t.Errorf("%s: entries\n%+v\nwant\n%+v", backend, f.Entries, want)
		}
	}
}

// The hand-written fstab of the paper, section 3.6.
const paperFstab = `/jail/proto/.zfs/snapshot/1 /jail/vhost1 nullfs ro 0 0
/jail/proto/etc/.zfs/snapshot/1 /jail/vhost1/conf/base/etc nullfs ro 0 0
zpool/vhost1/cfg /jail/vhost1/cfg zfs rw 0 0
zpool/vhost1/var /jail/vhost1/var zfs rw 0 0
zpool/vhost1/home /jail/vhost1/home zfs rw 0 0
`

func TestParsePaper(t *testing.T) {
	f, err := Parse([]byte(paperFstab))
	if err != nil {
		t.Fatal(err)
	}
	if f.Snapshot != "1" || f.Generated || f.Edited || f.Vhost != "" || len(f.Entries) != 5 {
		t.Errorf("Parse(paper) = %+v", f)
	}
	if err := f.Check(); err != nil {
		t.Error(err)
	}
	// section 2.4's upgraded file repeats the /etc line, and a half-done edit mixes snapshots
	dup := strings.Replace(paperFstab, "/1 ", "/2 ", 2) + "/jail/proto/etc/.zfs/snapshot/2 /jail/vhost1/conf/base/etc nullfs ro 0 0\n"
	if f, err := Parse([]byte(dup)); err != nil || f.Snapshot != "2" || f.Check() == nil {
		t.Errorf("duplicated line: Parse = %+v, %v; Check should fail", f, err)
	}
	mixed := strings.Replace(paperFstab, "/1 ", "/2 ", 1)
	if f, err := Parse([]byte(mixed)); err != nil || f.Snapshot != "2" || f.Check() == nil {
		t.Errorf("mixed snapshots: Parse = %+v, %v; Check should fail", f, err)
	}
}

func TestParseSyntax(t *testing.T) {
	in := "# comment\n\n  \t\n/a\\040b /mnt/x\\011y nullfs ro # trailing\nfoo /bar zfs rw 1\n"
	f, err := Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{{"/a b", "/mnt/x\ty", "nullfs", "ro", 0, 0, 4}, {"foo", "/bar", "zfs", "rw", 1, 0, 5}}
	if !reflect.DeepEqual(f.Entries, want) || f.Snapshot != "" {
		t.Errorf("Parse = %+v", f)
	}
	for _, bad := range []string{"a b c\n", "a b c d 0 0 7\n", "a b c d x\n", "a b c d 0 -1\n"} {
		if _, err := Parse([]byte(bad)); err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("Parse(%q) = %v, want a one-line error", bad, err)
		}
	}
}

func TestParseDetectsHandEdit(t *testing.T) {
	data, err := Render(testSpec(t, "md"))
	if err != nil {
		t.Fatal(err)
	}
	edits := map[string]string{
		"snapshot changed": strings.ReplaceAll(string(data), "snapshot/2 ", "snapshot/3 "),
		"line added":       string(data) + "/dev/md9 /jail/vhost1/tmp ufs rw 0 0\n",
		"line removed":     string(data[:bytes.LastIndex(data[:len(data)-1], []byte("\n"))+1]),
		"realigned":        strings.Replace(string(data), "zpool/vhost1/cfg ", "zpool/vhost1/cfg\t", 1),
		"header snapshot":  strings.Replace(string(data), "zpool/proto@2", "zpool/proto@3", 1),
		"checksum removed": strings.Replace(string(data), " sum=", " x=", 1),
	}
	for name, e := range edits {
		if e == string(data) {
			t.Fatalf("%s: edit did not change the file", name)
		}
		f, err := Parse([]byte(e))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !f.Generated || !f.Edited {
			t.Errorf("%s: Generated=%v Edited=%v, want both", name, f.Generated, f.Edited)
		}
	}
}

func TestRenderRefusesBadValues(t *testing.T) {
	cases := []struct {
		name  string
		edit  func(*Spec)
		inErr string
	}{
		{"snapshot with ;", func(s *Spec) { s.Snapshot, s.SnapshotFull = "2;reboot", "zpool/proto@2;reboot" }, `"2;reboot"`},
		{"relative path", func(s *Spec) { s.ProtoEtcMountpoint = "../etc" }, `"../etc"`},
		{"dotdot in path", func(s *Spec) { s.JailPath = "/jail/../etc" }, `"/jail/../etc"`},
		{"path with space", func(s *Spec) { s.JailPath = "/jail/vhost 1" }, `"/jail/vhost 1"`},
		{"path with tab", func(s *Spec) { s.ProtoMountpoint = "/jail/pro\tto" }, `"/jail/pro\tto"`},
		{"path with newline", func(s *Spec) { s.Datasets[0].Dir = "/jail/vhost1/x\n/ / nullfs" }, `x\n`},
		{"vhost", func(s *Spec) { s.Vhost = "vh ost" }, `"vh ost"`},
		{"dataset", func(s *Spec) { s.Datasets[1].Dataset = "zpool/vhost1/v ar" }, `"zpool/vhost1/v ar"`},
		{"mount outside jail", func(s *Spec) { s.Datasets[1].Dir = "/etc" }, `"/etc"`},
		{"mount over /etc", func(s *Spec) { s.Datasets[1].Dir = "/jail/vhost1/etc" }, `"/jail/vhost1/etc"`},
		{"snapshot mismatch", func(s *Spec) { s.SnapshotFull = "zpool/proto@3" }, `"zpool/proto@3"`},
		{"backend", func(s *Spec) { s.EtcBackend = "ramdisk" }, `"ramdisk"`},
		{"size", func(s *Spec) { s.EtcBackend, s.EtcSize = "tmpfs", "32m,uid=0" }, `"32m,uid=0"`},
		{"size without unit", func(s *Spec) { s.EtcBackend, s.EtcSize = "tmpfs", "32" }, `"32"`},
		{"size zero", func(s *Spec) { s.EtcBackend, s.EtcSize = "tmpfs", "0m" }, `"0m"`},
		{"size unit only", func(s *Spec) { s.EtcBackend, s.EtcSize = "tmpfs", "m" }, `"m"`},
		{"size two units", func(s *Spec) { s.EtcBackend, s.EtcSize = "tmpfs", "32mk" }, `"32mk"`},
		{"size signed", func(s *Spec) { s.EtcBackend, s.EtcSize = "tmpfs", "+32m" }, `"+32m"`},
	}
	for _, c := range cases {
		s := testSpec(t, "md")
		c.edit(&s)
		_, err := Render(s)
		if err == nil {
			t.Errorf("%s: Render accepted %+v", c.name, s)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, c.inErr) || strings.Contains(msg, "\n") {
			t.Errorf("%s: error %q should be one line naming %s", c.name, msg, c.inErr)
		}
	}
}

// A unit is accepted in either case, as mdconfig(8) and tmpfs(5) read it.
func TestRenderSizeUnits(t *testing.T) {
	for _, size := range []string{"32m", "32M", "1g", "1G", "65536k", "1t"} {
		s := testSpec(t, "tmpfs")
		s.EtcSize = size
		data, err := Render(s)
		if err != nil {
			t.Errorf("size %q refused: %v", size, err)
			continue
		}
		if !bytes.Contains(data, []byte("rw,size="+size+",mode=0755")) {
			t.Errorf("size %q not written as given:\n%s", size, data)
		}
	}
}
