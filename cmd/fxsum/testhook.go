package main

import (
	"context"
	"io"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
)

// Test-only hooks, read from the environment so that the tests can run the
// binary as a user would and still interrupt it at a known point without
// sleeping. They are not part of fxsum's interface.
//
//	FXSUM_TEST_HOLD_AFTER=N   after N hashing tasks have started, every
//	                          further task waits until the run is interrupted;
//	                          "fxsum: test hook: holding" is printed once on
//	                          stderr when the first one waits.
//	FXSUM_TEST_BATCH_ROWS=N   commit every N rows instead of defaultBatchRows.
const (
	envHoldAfter = "FXSUM_TEST_HOLD_AFTER"
	envBatchRows = "FXSUM_TEST_BATCH_ROWS"
	holdMessage  = "fxsum: test hook: holding"
)

// testHold is the FXSUM_TEST_HOLD_AFTER hook. A nil *testHold does nothing.
type testHold struct {
	after   int64
	started atomic.Int64
	once    sync.Once
	rep     *reporter
}

func testHoldFromEnv(stderr io.Writer) (*testHold, error) {
	s := os.Getenv(envHoldAfter)
	if s == "" {
		return nil, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return nil, usagef("%s=%q: want a count", envHoldAfter, s)
	}
	return &testHold{after: n, rep: &reporter{w: stderr}}, nil
}

// wait blocks, once more than after tasks have started, until ctx is done.
func (h *testHold) wait(ctx context.Context) {
	if h == nil || h.started.Add(1) <= h.after {
		return
	}
	h.once.Do(func() { h.rep.printf("%s\n", holdMessage) })
	<-ctx.Done()
}

func testBatchRowsFromEnv() (int, error) {
	s := os.Getenv(envBatchRows)
	if s == "" {
		return defaultBatchRows, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, usagef("%s=%q: want a positive count", envBatchRows, s)
	}
	return n, nil
}
