package workerpool

import "syscall"

// threadID returns the OS thread the calling goroutine runs on.
func threadID() int { return syscall.Gettid() }
