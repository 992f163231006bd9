//go:build unix

package main

import (
	"os/exec"
	"syscall"
)

// asNobody makes cmd run as the unprivileged user nobody, so that file
// modes apply to it even when the tests run as root, as CI does.
func asNobody(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
}
