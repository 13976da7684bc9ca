//go:build linux

package main

// lockf(1), as usr.bin/lockf/lockf.c does it: open the file with O_EXLOCK (an flock(2) lock;
// O_CREAT unless -n, O_NONBLOCK when -t 0), run the command, unlink the file afterwards unless
// -k. Exit statuses from sysexits(3): 75 (EX_TEMPFAIL) when the lock is held past the timeout,
// 73 (EX_CANTCREAT) with "cannot open FILE: ERROR" when it cannot be opened, 69
// (EX_UNAVAILABLE) for -n and no file, 64 for usage; otherwise the command's own status.

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

func lockfMain(args []string) int {
	keep, silent, create, write := false, false, true, false
	wait := -1 // seconds; -1 waits for ever, as lockf does without -t
	for len(args) > 0 && len(args[0]) > 1 && args[0][0] == '-' {
		opt := args[0]
		args = args[1:]
		if opt == "--" {
			break
		}
		for i := 1; i < len(opt); i++ {
			switch opt[i] {
			case 'k':
				keep = true
			case 's':
				silent = true
			case 'n':
				create = false
			case 'w':
				write = true
			case 't':
				val := opt[i+1:]
				if val == "" {
					if len(args) == 0 {
						return lockfUsage()
					}
					val, args = args[0], args[1:]
				}
				n, err := strconv.Atoi(val)
				if err != nil || n < 0 {
					warnx("lockf", "invalid timeout \"%s\"", val)
					return 64
				}
				wait, i = n, len(opt)
			default:
				return lockfUsage()
			}
		}
	}
	if len(args) < 2 {
		return lockfUsage()
	}
	name := args[0]
	flags := syscall.O_RDONLY | syscall.O_CLOEXEC
	if write {
		flags = syscall.O_WRONLY | syscall.O_CLOEXEC
	}
	if create {
		flags |= syscall.O_CREAT
	}
	fd, err := syscall.Open(name, flags, 0o666)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) && !create {
			if !silent {
				warnx("lockf", "%s: %s", name, errno(err))
			}
			return 69
		}
		warnx("lockf", "cannot open %s: %s", name, errno(err))
		return 73
	}
	deadline := time.Now().Add(time.Duration(wait) * time.Second)
	for {
		err = syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || (wait >= 0 && !time.Now().Before(deadline)) {
			if !silent {
				warnx("lockf", "%s: already locked", name)
			}
			return 75
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd := exec.Command(args[1], args[2:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	rc := 0
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			warnx("lockf", "%s: %s", args[1], errno(err))
			rc = 71 // EX_OSERR: the fork or exec failed
		} else if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Exited() {
			rc = ws.ExitStatus()
		} else {
			rc = 70 // EX_SOFTWARE: lockf.c's answer for a command killed by a signal
		}
	}
	if keep {
		_ = syscall.Flock(fd, syscall.LOCK_UN)
	} else {
		_ = os.Remove(name)
	}
	return rc
}

func lockfUsage() int {
	os.Stderr.WriteString("usage: lockf [-knsw] [-t seconds] file command [arguments]\n")
	return 64
}
