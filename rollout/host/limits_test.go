package host

import (
	"context"
	"strings"
	"testing"
)

const (
	rctlR     = "/usr/bin/rctl -r jail:vhost1"
	rctlESRCH = "rctl: failed to remove rule 'jail:vhost1': No such process"
)

func limited() Jail {
	j := vhost1()
	j.Limits = []string{"maxproc:deny=200", "memoryuse:deny=512m", "pcpu:deny=50"}
	return j
}

// Each rule is added by its own exec.created command, in order, and exec.poststop removes them
// all after rollout's /etc hook; the argv is rctl(8)'s "rctl -a jail:NAME:RESOURCE:ACTION=AMOUNT".
func TestRenderConfLimits(t *testing.T) {
	got, err := newFreeBSD(newFake()).RenderConf(limited())
	if err != nil {
		t.Fatal(err)
	}
	want := "\texec.poststop = \"" + etcCleanup + "\";\n" +
		"\texec.created = \"/usr/bin/rctl -a jail:vhost1:maxproc:deny=200\";\n" +
		"\texec.created += \"/usr/bin/rctl -a jail:vhost1:memoryuse:deny=512m\";\n" +
		"\texec.created += \"/usr/bin/rctl -a jail:vhost1:pcpu:deny=50\";\n" +
		"\texec.poststop += \"" + rctlR + "\";\n" +
		"\tallow.raw_sockets;\n"
	if !strings.Contains(string(got), want) {
		t.Fatalf("RenderConf:\n%s\nwant it to contain:\n%s", got, want)
	}
	// without a hook of rollout's, the removal is the only exec.poststop command
	j := Jail{Name: "v2", Path: "/jail/v2", Fstab: "/etc/fstab.v2", ExecStart: "/bin/sh /etc/rc", Limits: []string{"openfiles:sigterm=1000"}}
	got, err = newFreeBSD(newFake()).RenderConf(j)
	if err != nil {
		t.Fatal(err)
	}
	want = "\texec.created = \"/usr/bin/rctl -a jail:v2:openfiles:sigterm=1000\";\n\texec.poststop = \"/usr/bin/rctl -r jail:v2\";\n}\n"
	if !strings.HasSuffix(string(got), want) {
		t.Fatalf("RenderConf:\n%s\nwant it to end with:\n%s", got, want)
	}
	// a vhost without limits has no rctl command
	got, _ = newFreeBSD(newFake()).RenderConf(vhost1())
	if strings.Contains(string(got), "rctl") || strings.Contains(string(got), "exec.created") {
		t.Fatalf("no limits, yet:\n%s", got)
	}
}

func TestRenderConfRefusesBadLimits(t *testing.T) {
	for _, l := range []string{"memoryuse:deny=512m;reboot", "memoryuse", "memoryuse:deny=1 g", `memoryuse:deny="1g"`, "jail:x:memoryuse:deny=1g", "memoryuse:deny=$x"} {
		j := vhost1()
		j.Limits = []string{l}
		if _, err := newFreeBSD(newFake()).RenderConf(j); err == nil || !strings.Contains(err.Error(), "invalid rctl rule") {
			t.Errorf("limit %q: err = %v", l, err)
		}
	}
	j := vhost1()
	j.Params = map[string]string{"exec.created": "/bin/true"}
	if _, err := newFreeBSD(newFake()).RenderConf(j); err == nil {
		t.Error("exec.created accepted in params")
	}
}

// A jail that disappeared without jail -r (so without exec.poststop) leaves its rules in the
// kernel: Stop removes them, and "none left" is no error.
func TestStopRemovesLimitsOfVanishedJail(t *testing.T) {
	r := newFake().on(jailR, fail(1, jailRNotFound)).on(mountP, ok(hostMounts)).on(rctlR, fail(1, rctlESRCH))
	if err := newFreeBSD(r).Stop(context.Background(), limited()); err != nil {
		t.Fatal(err)
	}
	r.want(t, jailR, rctlR, mountP)

	// jail -r removed the jail itself: its exec.poststop did, nothing more to run
	r = newFake().on(mountP, ok(hostMounts))
	if err := newFreeBSD(r).Stop(context.Background(), limited()); err != nil {
		t.Fatal(err)
	}
	r.want(t, jailR, mountP)

	// any other rctl failure is logged; the jail is stopped all the same
	r = newFake().on(jailR, fail(1, jailRNotFound)).on(mountP, ok(hostMounts)).on(rctlR, fail(1, "rctl: RACCT/RCTL present, but disabled; enable using kern.racct.enable=1 tunable"))
	if err := newFreeBSD(r).Stop(context.Background(), limited()); err != nil {
		t.Fatal(err)
	}
	r.want(t, jailR, rctlR, mountP)
}

// jail(8) unwinds a failed create without exec.poststop, after exec.created may have added
// rules: the undo removes them.
func TestStartFailureRemovesLimits(t *testing.T) {
	r := newFake().
		on(jlsV1, fail(1, jlsNotFound)).
		on(mountP, ok(hostMounts), ok(hostMounts)).
		on(jailC, fail(1, "jail: vhost1: /usr/bin/rctl -a jail:vhost1:memoryuse:deny=512m: failed")).
		on(mdList, ok(""))
	if err := newFreeBSD(r).Start(context.Background(), limited()); err == nil {
		t.Fatal("no error")
	}
	r.want(t, jlsV1, mountP, jailC, jlsV1, rctlR, mountP, mdList)
}
