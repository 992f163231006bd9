package main

import (
	"math"
	"os"
	"runtime/debug"
)

// Garbage collection during an index run. A run allocates a few small
// objects per file (the task, the path, the digest, the row's values for
// the driver) and keeps little: its live heap is a few MiB whatever the
// size of the tree, while at the default GOGC=100 the collector ran about
// every 4 MiB allocated and took a tenth of the CPU time on a folder of
// small files. indexGCPercent lets the heap grow to five times the live
// one between collections, and indexMemoryLimit caps that growth, so that
// the peak stays far below the 100 MiB that fxsum promises for 1,000,000
// files (SQLite's page cache is not in the Go heap).
const (
	indexGCPercent   = 400
	indexMemoryLimit = 64 << 20
)

// tuneGC sets the collector for an index run, unless the user has set
// GOGC or GOMEMLIMIT, and returns the function that restores the previous
// settings. It is meant for the main goroutine of a run.
func tuneGC() (restore func()) {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return func() {}
	}
	limit := debug.SetMemoryLimit(-1)
	if limit != math.MaxInt64 {
		return func() {} // set by someone else in this process
	}
	debug.SetMemoryLimit(indexMemoryLimit)
	percent := debug.SetGCPercent(indexGCPercent)
	return func() {
		debug.SetGCPercent(percent)
		debug.SetMemoryLimit(limit)
	}
}
