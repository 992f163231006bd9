//go:build !linux

package workerpool

// threadID returns 0 where the OS thread cannot be told cheaply: a worker
// locked with LockOSThread then cannot notice a task that unlocked it.
func threadID() int32 { return 0 }
