//go:build !fxsumtest

package main

// The names the tests give the hooks of a binary built with the fxsumtest
// tag, as testhook.go has them.
const (
	envHoldAfter = "FXSUM_TEST_HOLD_AFTER"
	envBatchRows = "FXSUM_TEST_BATCH_ROWS"
	holdMessage  = "fxsum: test hook: holding"
	heldMessage  = "fxsum: test hook: held"
)
