//go:build unix

package command

import (
	"os/exec"
	"syscall"
)

// setProcessGroup puts the program in a process group of its own and makes cancellation
// send SIGTERM to the whole group: jail(8) and the hooks it runs, or zfs send and its
// children, all get the chance to clean up. Run kills the program after its WaitDelay.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	}
}
