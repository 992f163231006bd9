package workerpool

import "syscall"

// threadID returns the OS thread the calling goroutine runs on.
func threadID() int32 { return int32(syscall.Gettid()) } // a Linux thread ID is at most 2^22
