//go:build !fxsumtest

package main

import (
	"context"
	"io"
)

// testHooks are empty in a binary built without the fxsumtest tag: see
// testhook.go.
type testHooks struct{}

func newTestHooks(io.Writer) (testHooks, error)           { return testHooks{}, nil }
func (testHooks) beforeTask(context.Context, func() bool) {}
func (testHooks) afterRun()                               {}
func (testHooks) batchRows() int                          { return defaultBatchRows }
