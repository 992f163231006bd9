//go:build fxsumtest

package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Test-only hooks of the database's creation, compiled in only with the
// fxsumtest build tag, as those of testhook.go. They make first runs that
// start together on a database that does not exist yet meet in the order
// that made them fail before: one made the schema, another held the write
// lock while it looked whether the schema was made, and the first one's
// switch to WAL was refused at once (SQLite does not wait for a lock that
// it would have to upgrade to).
//
//	FXSUM_TEST_FIRST_RUNS=N     N runs start together (each one marks
//	FXSUM_TEST_FIRST_RUNS_DIR   itself in the folder DIR and waits for
//	                            the others after checkDB, so that all of
//	                            them find no database); the run that makes
//	                            the schema waits, after its commit, until
//	                            another holds the write lock having found
//	                            it made; that one holds the lock until a
//	                            switch to WAL has been tried.
//
// Every wait gives up after firstRunsWait: the hooks order the runs, they
// never make one fail.
const (
	envFirstRuns    = "FXSUM_TEST_FIRST_RUNS"
	envFirstRunsDir = "FXSUM_TEST_FIRST_RUNS_DIR"
	firstRunsWait   = 10 * time.Second
)

// firstRuns is the number of runs and the folder of FXSUM_TEST_FIRST_RUNS,
// or 0 and "" when the hooks are off.
func firstRuns() (int, string) {
	n, err := strconv.Atoi(os.Getenv(envFirstRuns))
	dir := os.Getenv(envFirstRunsDir)
	if err != nil || n < 1 || dir == "" {
		return 0, ""
	}
	return n, dir
}

// hookChecked is called by every run after checkDB: it waits until all N
// runs have checked.
func hookChecked() {
	n, dir := firstRuns()
	if n == 0 {
		return
	}
	hookMark(filepath.Join(dir, "checked."+strconv.Itoa(os.Getpid())))
	hookWait(func() bool {
		ents, _ := os.ReadDir(dir)
		k := 0
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), "checked.") {
				k++
			}
		}
		return k >= n
	})
}

// hookMade is called by the run that made the schema, after its commit.
func hookMade() {
	if _, dir := firstRuns(); dir != "" {
		hookWait(hookExists(filepath.Join(dir, "found")))
	}
}

// hookFound is called by a run that found the schema made, while it holds
// the write lock.
func hookFound() {
	if _, dir := firstRuns(); dir != "" {
		hookMark(filepath.Join(dir, "found"))
		hookWait(hookExists(filepath.Join(dir, "wal-tried")))
	}
}

// hookWALTried is called after each try to switch the database to WAL.
func hookWALTried() {
	if _, dir := firstRuns(); dir != "" {
		hookMark(filepath.Join(dir, "wal-tried"))
	}
}

func hookMark(path string) {
	if f, err := os.Create(path); err == nil {
		_ = f.Close()
	}
}

func hookExists(path string) func() bool {
	return func() bool { _, err := os.Stat(path); return err == nil }
}

func hookWait(done func() bool) {
	for end := time.Now().Add(firstRunsWait); !done() && time.Now().Before(end); {
		time.Sleep(time.Millisecond)
	}
}
