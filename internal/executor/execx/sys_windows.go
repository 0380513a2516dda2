package execx

import (
	"os"
	"os/exec"
	"syscall"
)

// Windows has no process groups or signals as Unix has them: a stopped run's command is
// killed at once, without a grace period, and its children are not tracked.

func sysProcAttr() *syscall.SysProcAttr { return nil }

func commandLine(prog string, args []string) (string, []string) {
	return prog, append([]string{prog}, args...)
}

func watchExit(cmd *exec.Cmd) (exited <-chan struct{}, reap func() error) {
	ch := make(chan struct{})
	var err error
	go func() {
		err = cmd.Wait()
		close(ch)
	}()
	return ch, func() error { <-ch; return err }
}

func killGroup(pid int, sig syscall.Signal) {
	if sig != syscall.SIGKILL && sig != syscall.SIGTERM {
		return
	}
	if p, err := os.FindProcess(pid); err == nil {
		_ = p.Kill()
	}
}
