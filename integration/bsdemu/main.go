//go:build linux

// Command bsdemu makes a Linux lab guest speak FreeBSD's jail userland: jail(8), jls(8),
// jexec(8), mdconfig(8), newfs(8), mount(8) -p, mount_nullfs(8), umount(8) and the
// ifconfig(8) alias forms, lockf(1) and rctl(8) for jails, at FreeBSD's paths. It is a multi-call binary: the name it is
// run as (basename of argv[0]) picks the program, as FreeBSD's crunched binaries do.
//
// It is lab code only (integration/lab installs it into each guest); the product never
// carries it. Every emulated behaviour names the FreeBSD source it copies; README.md beside
// this file lists what is emulated and what cannot be.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	prog := filepath.Base(os.Args[0])
	args := os.Args[1:]
	// "bsdemu NAME ARGS..." runs NAME, for use before the links exist
	if prog == "bsdemu" && len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		prog, args = args[0], args[1:]
	}
	var rc int
	switch prog {
	case "jail":
		rc = jailMain(args)
	case "jls":
		rc = jlsMain(args)
	case "jexec":
		rc = jexecMain(args)
	case "mdconfig":
		rc = mdconfigMain(args)
	case "newfs":
		rc = newfsMain(args)
	case "mount":
		rc = mountMain(args)
	case "umount":
		rc = umountMain(args)
	case "mount.nullfs", "mount_nullfs":
		rc = mountNullfsMain(args)
	case "ifconfig":
		rc = ifconfigMain(args)
	case "lockf":
		rc = lockfMain(args)
	case "rctl":
		rc = rctlMain(args)
	case holderName:
		rc = holderMain(args)
	case attachName:
		rc = attachMain(args)
	case pinName:
		rc = pinMain(args)
	default:
		fmt.Fprintf(os.Stderr, "bsdemu: unknown program %q (run as jail, jls, jexec, mdconfig, newfs, mount, umount, mount.nullfs, ifconfig, lockf or rctl)\n", prog)
		rc = 2
	}
	os.Exit(rc)
}

// warnx prints "prog: message" on stderr, as err(3)'s warnx does.
func warnx(prog, format string, a ...any) {
	fmt.Fprintf(os.Stderr, "%s: %s\n", prog, fmt.Sprintf(format, a...))
}

// errno names an error the way FreeBSD's strerror(3) words it, for messages that copy
// err(3) output; Linux's wording differs for a few.
func errno(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	switch s {
	case "device or resource busy":
		return "Device busy"
	case "no such file or directory":
		return "No such file or directory"
	case "file exists":
		return "File exists"
	case "permission denied":
		return "Permission denied"
	case "not a directory":
		return "Not a directory"
	case "invalid argument":
		return "Invalid argument"
	case "cannot assign requested address":
		return "Can't assign requested address"
	case "numerical result out of range":
		return "Result too large"
	}
	if s != "" {
		return strings.ToUpper(s[:1]) + s[1:]
	}
	return s
}
