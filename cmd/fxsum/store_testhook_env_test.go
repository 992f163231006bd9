//go:build !fxsumtest

package main

// The names the tests give the database's hooks of a binary built with the
// fxsumtest tag, as store_testhook.go has them.
const (
	envFirstRuns    = "FXSUM_TEST_FIRST_RUNS"
	envFirstRunsDir = "FXSUM_TEST_FIRST_RUNS_DIR"
)
