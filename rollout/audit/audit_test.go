package audit

import (
	"errors"
	"testing"
)

func TestLine(t *testing.T) {
	for _, c := range []struct {
		ch   Change
		want string
	}{
		{Change{Op: "promote", Subject: "vhost1", From: "zpool/proto@1", To: "zpool/proto@2"}, "promote vhost1 zpool/proto@1 -> zpool/proto@2: ok"},
		{Change{Op: "create", Subject: "vhost1", To: "zpool/proto@2"}, "create vhost1 - -> zpool/proto@2: ok"},
		{Change{Op: "start", Subject: "vhost1", From: "zpool/proto@2", To: "zpool/proto@2"}, "start vhost1 on zpool/proto@2: ok"},
		{Change{Op: "promote", Subject: "vhost1", From: "zpool/proto@2", To: "zpool/proto@2", Note: "nothing to do: already on zpool/proto@2"},
			"promote vhost1 on zpool/proto@2: ok (nothing to do: already on zpool/proto@2)"},
		{Change{Op: "promote", Subject: "vhost2", From: "a@1", To: "a@2", Skipped: "not started: the canary failed"}, "promote vhost2 a@1 -> a@2: skipped: not started: the canary failed"},
		{Change{Op: "snapshot", Subject: "zpool/proto@3"}, "snapshot zpool/proto@3: ok"},
		// one line, no terminal escapes, whatever the error quotes
		{Change{Op: "replicate", Subject: "slave2", From: "p@3", To: "p@5", Err: errors.New("slave2: zfs receive:\ncannot receive\t\x1b[31mred")},
			"replicate slave2 p@3 -> p@5: failed: slave2: zfs receive:; cannot receive ?[31mred"},
	} {
		if got := c.ch.Line(); got != c.want {
			t.Errorf("%+v:\n got %q\nwant %q", c.ch, got, c.want)
		}
	}
}

type rec struct{ info, err []string }

func (r *rec) Info(l string) error { r.info = append(r.info, l); return nil }
func (r *rec) Err(l string) error  { r.err = append(r.err, l); return nil }

// Failures go out at priority err, the rest at notice.
func TestWritePriority(t *testing.T) {
	r := &rec{}
	Write(r, Change{Op: "stop", Subject: "v"})
	Write(r, Change{Op: "stop", Subject: "w", Err: errors.New("boom")})
	if len(r.info) != 1 || r.info[0] != "stop v: ok" || len(r.err) != 1 || r.err[0] != "stop w: failed: boom" {
		t.Errorf("info %q, err %q", r.info, r.err)
	}
}
