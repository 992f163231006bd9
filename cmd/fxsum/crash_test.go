package main

import (
	"bufio"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// crashPoints is how many times TestCrashPoints interrupts an index run.
const crashPoints = 20

// TestCrashPoints interrupts re-hashing runs of one database at 20 random
// points, alternately with SIGINT and kill -9. Half the points are a random
// number of hashing tasks in (through the FXSUM_TEST_HOLD_AFTER hook), half
// a random delay after the process started, which may fall before the pool
// starts, while it opens, or after the run finished. After each: the
// database passes PRAGMA integrity_check, a rerun completes with the right
// digests, and the manifest passes sha256sum -c.
func TestCrashPoints(t *testing.T) {
	tr := genTree(t, 250, 256<<10)
	work := t.TempDir()
	dbFile := filepath.Join(work, "fxsum.db")
	mustOK(t, fxsum(t, work, nil, tr.root))

	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, seed))
	t.Logf("seed %#x", seed)
	maxDelay := 150 * time.Millisecond
	if raceEnabled {
		maxDelay = 600 * time.Millisecond
	}
	for i := range crashPoints {
		sig := []os.Signal{syscall.SIGINT, os.Kill}[i%2]
		byHook := i%4 < 2
		hold := rng.IntN(len(tr.files))
		delay := time.Duration(rng.Int64N(int64(maxDelay)))
		point := "after " + delay.String()
		if byHook {
			point = "after " + strconv.Itoa(hold) + " tasks"
		}
		t.Logf("point %d: %v %s", i, sig, point)

		cmd := command(t, work, []string{envBatchRows + "=" + strconv.Itoa(1+rng.IntN(16))}, "--rehash", tr.root)
		if byHook {
			cmd.Env = append(cmd.Env, envHoldAfter+"="+strconv.Itoa(hold))
		}
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1)
		go func() { // ends when the process exits and the pipe closes
			defer close(lines)
			sc := bufio.NewScanner(stderr)
			var all strings.Builder
			held := false
			for sc.Scan() {
				all.WriteString(sc.Text() + "\n")
				if sc.Text() == holdMessage && !held {
					held = true
					lines <- ""
				}
			}
			if !held {
				lines <- all.String()
			}
		}()
		if byHook {
			// The run holds once hold tasks started, or ends first if
			// hold is past the last file to hash.
			select {
			case <-lines:
			case <-time.After(2 * time.Minute):
				t.Fatalf("point %d: fxsum neither held nor ended", i)
			}
		} else {
			time.Sleep(delay)
		}
		_ = cmd.Process.Signal(sig) // fails only if it already exited
		exited := make(chan error, 1)
		go func() {
			for range lines { // drain the pipe so that Wait returns
			}
			exited <- cmd.Wait()
		}()
		select {
		case <-exited:
		case <-time.After(2 * time.Minute):
			_ = cmd.Process.Kill()
			<-exited
			t.Fatalf("point %d: fxsum did not exit 2 minutes after %v", i, sig)
		}
		// A SIGINT that arrives before fxsum installs its handler kills it
		// as it would any program.
		ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
		if code := cmd.ProcessState.ExitCode(); sig == syscall.SIGINT && code != 130 && code != 0 && !(ws.Signaled() && ws.Signal() == syscall.SIGINT) {
			t.Errorf("point %d: exit %d after SIGINT, want 130 (or 0 if it had finished)", i, code)
		}

		integrityCheck(t, dbFile)
		mustOK(t, fxsum(t, work, nil, tr.root))
		checkIndex(t, dbFile, tr)
		m := mustOK(t, fxsum(t, work, nil, "manifest"))
		sha256sumCheck(t, "/", m.stdout, len(tr.files))
		if t.Failed() {
			t.Fatalf("point %d (%v %s) failed; seed %#x", i, sig, point, seed)
		}
	}
}
