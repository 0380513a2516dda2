package execx

import (
	"errors"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

// sysProcAttr puts the child in its own process group and sends it SIGHUP when the node
// dies; the guard (see [commandLine]) then kills the whole group.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGHUP}
}

// guard is the process group's leader: a small sh that starts the command and waits for it.
// A parent death signal reaches only the leader, so the leader itself must take the group
// down: on SIGHUP (the node died) it sends SIGKILL to its whole group, grandchildren
// included. SIGTERM and SIGINT are caught and ignored by the guard alone (a caught signal
// resets to its default in the command), so a cancel's SIGTERM reaches the command and the
// guard keeps waiting for it, then exits with its status. The command's stdin is passed on
// through fd 4, since sh gives a background command /dev/null as stdin.
const guard = `trap 'kill -s KILL 0' HUP
trap : TERM INT
exec 4<&0 0</dev/null
"$@" 0<&4 4<&- &
pid=$!
exec 4<&-
while :; do
	wait "$pid"
	st=$?
	kill -0 "$pid" 2>/dev/null || exit "$st"
done`

// commandLine returns the path and argv that run prog with args under the guard.
func commandLine(prog string, args []string) (string, []string) {
	return "/bin/sh", append([]string{"sh", "-c", guard, "spool-guard", prog}, args...)
}

// watchExit closes the returned channel when the started cmd has exited, without reaping it:
// while the leader is a zombie its pid, which is also its process group's id, cannot be
// reused, so signalling the group stays safe until reap (cmd.Wait) is called.
func watchExit(cmd *exec.Cmd) (exited <-chan struct{}, reap func() error) {
	ch := make(chan struct{})
	pid := cmd.Process.Pid
	go func() {
		defer close(ch)
		var info unix.Siginfo
		for {
			err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
			if !errors.Is(err, unix.EINTR) {
				return
			}
		}
	}()
	return ch, cmd.Wait
}

// killGroup sends sig to every process of the group led by pid.
func killGroup(pid int, sig syscall.Signal) {
	_ = syscall.Kill(-pid, sig)
}
