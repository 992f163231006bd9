//go:build !fxsumtest

package main

// The names the tests give the queue's hooks of a binary built with the
// fxsumtest tag, as queue_testhook.go has them.
const (
	envAckWait    = "FXSUM_TEST_ACK_WAIT"
	envStallAfter = "FXSUM_TEST_STALL_AFTER"
	envPathPrefix = "FXSUM_TEST_PATH_PREFIX"
	stallMessage  = "fxsum: test hook: stalled"
)
