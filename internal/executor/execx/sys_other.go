//go:build unix && !linux

package execx

import (
	"os/exec"
	"syscall"
)

// sysProcAttr puts the child in its own process group. Outside Linux there is no parent
// death signal: children of a node killed with SIGKILL may outlive it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// commandLine returns the path and argv that run prog with args: the command itself.
func commandLine(prog string, args []string) (string, []string) {
	return prog, append([]string{prog}, args...)
}

// watchExit closes the returned channel when the started cmd has exited. Without
// waitid(WNOWAIT) the leader is reaped at once, so a group signal sent afterwards could in
// theory reach a new group that reused the id.
func watchExit(cmd *exec.Cmd) (exited <-chan struct{}, reap func() error) {
	ch := make(chan struct{})
	var err error
	go func() {
		err = cmd.Wait()
		close(ch)
	}()
	return ch, func() error { <-ch; return err }
}

// killGroup sends sig to every process of the group led by pid.
func killGroup(pid int, sig syscall.Signal) {
	_ = syscall.Kill(-pid, sig)
}
