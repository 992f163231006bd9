//go:build fxsumtest

package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Test-only hooks of the queue, compiled in only with the fxsumtest build
// tag, as those of testhook.go:
//
//	FXSUM_TEST_ACK_WAIT=D      the AckWait of the workers' consumer, instead
//	                           of 30s: how soon the files of a worker that
//	                           died go to another.
//	FXSUM_TEST_STALL_AFTER=N   after N files have started hashing in this
//	                           process, every further file waits until its
//	                           task's context ends: the worker holds them,
//	                           un-acked. "fxsum: test hook: stalled" is
//	                           printed once on stderr when the first waits.
//	FXSUM_TEST_PATH_PREFIX=P   the hashing workers of this process look for
//	                           each file under P: a machine that does not
//	                           see the files at the same paths.
const (
	envAckWait    = "FXSUM_TEST_ACK_WAIT"
	envStallAfter = "FXSUM_TEST_STALL_AFTER"
	envPathPrefix = "FXSUM_TEST_PATH_PREFIX"
	stallMessage  = "fxsum: test hook: stalled"
)

func queueAckWait() time.Duration {
	if d, err := time.ParseDuration(os.Getenv(envAckWait)); err == nil && d > 0 {
		return d
	}
	return defaultAckWait
}

type workerHooks struct {
	after   int64 // -1: off
	started atomic.Int64
	once    sync.Once
	prefix  string
}

func newWorkerHooks() *workerHooks {
	h := &workerHooks{after: -1, prefix: os.Getenv(envPathPrefix)}
	if n, err := strconv.ParseInt(os.Getenv(envStallAfter), 10, 64); err == nil && n >= 0 {
		h.after = n
	}
	return h
}

func (h *workerHooks) beforeHash(ctx context.Context) {
	if h.after < 0 || h.started.Add(1) <= h.after {
		return
	}
	h.once.Do(func() { fmt.Fprintln(os.Stderr, stallMessage) })
	<-ctx.Done()
}

// path is where the worker looks for the file at p.
func (h *workerHooks) path(p string) string { return h.prefix + p }
