//go:build !fxsumtest

package main

import (
	"context"
	"time"
)

// The queue's test hooks are empty in a binary built without the fxsumtest
// tag: see queue_testhook.go.

func queueAckWait() time.Duration { return defaultAckWait }

type workerHooks struct{}

func newWorkerHooks() *workerHooks              { return &workerHooks{} }
func (*workerHooks) beforeHash(context.Context) {}
func (*workerHooks) path(p string) string       { return p }
