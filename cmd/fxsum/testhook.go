//go:build fxsumtest

package main

import (
	"context"
	"io"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Test-only hooks, compiled in only with the fxsumtest build tag (the
// tests build the binary with it), read from the environment so that the
// tests can run the binary as a user would and still interrupt it at a
// known point without sleeping. A binary built without the tag has the
// empty hooks of testhook_off.go, which the compiler removes.
//
//	FXSUM_TEST_HOLD_AFTER=N   after N hashing tasks have started, every
//	                          further task waits until the run halts (an
//	                          interrupt) and the pool's stop has taken hold,
//	                          then hashes its file: it was in flight.
//	                          "fxsum: test hook: holding" is printed once on
//	                          stderr when the first one waits, and "fxsum:
//	                          test hook: held K" at the end of the run, K the
//	                          number of tasks that started after the first N:
//	                          one in flight per worker at the interrupt, and
//	                          at most one more each that a worker took in the
//	                          instant between the stop's refusal of new tasks
//	                          and its drop of queued ones.
//	FXSUM_TEST_BATCH_ROWS=N   commit every N rows instead of defaultBatchRows.
const (
	envHoldAfter = "FXSUM_TEST_HOLD_AFTER"
	envBatchRows = "FXSUM_TEST_BATCH_ROWS"
	holdMessage  = "fxsum: test hook: holding"
	heldMessage  = "fxsum: test hook: held"
)

// testHooks are the hooks of one index run.
type testHooks struct {
	hold *testHold
	rows int
}

type testHold struct {
	after   int64
	started atomic.Int64
	held    atomic.Int64
	once    sync.Once
	rep     *reporter
}

func newTestHooks(stderr io.Writer) (testHooks, error) {
	h := testHooks{rows: defaultBatchRows}
	if s := os.Getenv(envHoldAfter); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return h, usagef("%s=%q: want a count", envHoldAfter, s)
		}
		h.hold = &testHold{after: n, rep: &reporter{w: stderr}}
	}
	if s := os.Getenv(envBatchRows); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return h, usagef("%s=%q: want a positive count", envBatchRows, s)
		}
		h.rows = n
	}
	return h, nil
}

// beforeTask blocks, once more than FXSUM_TEST_HOLD_AFTER tasks have
// started, until ctx is done and the pool's stop has taken hold: it
// refuses tasks (refusing reports true), and drops what is queued right
// after. The stop begins on a goroutine of its own when ctx ends; waiting
// for it keeps the held workers from taking queued tasks before it does, so
// that the tests can count which tasks were in flight.
func (h testHooks) beforeTask(ctx context.Context, refusing func() bool) {
	if h.hold == nil || h.hold.started.Add(1) <= h.hold.after {
		return
	}
	h.hold.held.Add(1)
	h.hold.once.Do(func() { h.hold.rep.printf("%s\n", holdMessage) })
	<-ctx.Done()
	for !refusing() {
		time.Sleep(time.Millisecond)
	}
}

// afterRun prints, once the run's pool has stopped, how many tasks held.
func (h testHooks) afterRun() {
	if h.hold != nil {
		h.hold.rep.printf("%s %d\n", heldMessage, h.hold.held.Load())
	}
}

// batchRows is the number of rows a worker commits at a time.
func (h testHooks) batchRows() int { return h.rows }
