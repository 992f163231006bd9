package faulttest

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Environment of the property test:
//
//	FXPOOL_SEED=<n>       replay one trial (decimal or 0x hex), as printed by a failure
//	FXPOOL_SOAK=<d>       run trials for duration d (e.g. 10m) instead of a fixed count
//	FXPOOL_TRIALS=<n>     run n trials (default 1200, 300 with -short)
//	FXPOOL_HANG_ANYWHERE=1
//	                      let cleanups hang during the start's rollback too,
//	                      which then lasts as long as the start budget (30s)
const (
	envSeed         = "FXPOOL_SEED"
	envSoak         = "FXPOOL_SOAK"
	envTrials       = "FXPOOL_TRIALS"
	envHangAnywhere = "FXPOOL_HANG_ANYWHERE"
)

// maxReported bounds the failing trials printed in one run.
const maxReported = 20

// TestPropertyFaultInjection runs random trials — random per-worker
// dependency graphs, constructor forms, fixed or elastic pools, options,
// faults, resizes, tasks submitted every way with their submitters'
// contexts, and a stop racing with them — and checks every guarantee after
// each. The test has four parts, each in its own file: the generator
// (generate_test.go, with the typed menus of enums_test.go), the runner
// (runner_test.go, with the tasks of tasks_test.go), the checks
// (checks_test.go, with the recorder of recorder_test.go) and the fx
// adapter (fxadapter_test.go).
func TestPropertyFaultInjection(t *testing.T) {
	hangAnywhere := os.Getenv(envHangAnywhere) == "1"
	if s := os.Getenv(envSeed); s != "" {
		seed, err := strconv.ParseUint(s, 0, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", envSeed, s, err)
		}
		cfg := generate(seed)
		tr := run(cfg, hangAnywhere)
		if tr.fatal {
			t.Errorf("the trial left goroutines behind")
		}
		t.Logf("trial:\n%v\nstart: %v\npool stop: %v\nevents:\n%v", cfg, tr.startErr, tr.stopErr, &tr.stats)
		report(t, tr)
		return
	}

	trials, soak := 1200, time.Duration(0)
	if testing.Short() {
		trials = 300
	}
	if s := os.Getenv(envTrials); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive count", envTrials, s)
		}
		trials = n
	}
	if s := os.Getenv(envSoak); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			t.Fatalf("%s=%q: want a duration such as 10m", envSoak, s)
		}
		soak = d
	}

	base := rand.Uint64()
	t.Logf("base seed %#x (each trial's seed is printed if it fails; replay one with %s=<seed>)", base, envSeed)
	var (
		total    counters
		byKind   counters
		failed   int
		began    = time.Now()
		lastNote = began
		n        int
	)
	for ; soak > 0 && time.Since(began) < soak || soak == 0 && n < trials; n++ {
		seed := splitmix(base + uint64(n))
		tr := run(generate(seed), hangAnywhere)
		total.merge(&tr.stats)
		if len(tr.violations) > 0 {
			failed++
			for _, v := range tr.violations {
				byKind.add(v.kind, 1)
			}
			if failed <= maxReported {
				report(t, tr)
			}
			if tr.fatal && soak > 0 {
				// A soak goes on: each trial ignores the goroutines that
				// were running before it, so later trials stay meaningful.
				t.Errorf("trial %#x left goroutines behind", seed)
			} else if soak == 0 && failed >= maxReported || tr.fatal {
				if tr.fatal {
					t.Errorf("trial %#x left goroutines behind: stopping here", seed)
				}
				break
			}
		}
		if soak > 0 && time.Since(lastNote) > time.Minute {
			lastNote = time.Now()
			t.Logf("%v: %d trials, %d failed", time.Since(began).Round(time.Second), n+1, failed)
		}
	}
	t.Logf("%d trials in %v, %d failed\nevents and faults injected:\n%v", n, time.Since(began).Round(time.Millisecond), failed, &total)
	if failed > 0 {
		t.Errorf("%d of %d trials broke a guarantee; violations by kind:\n%v", failed, n, &byKind)
	}
}

func report(t *testing.T, tr *trial) {
	t.Helper()
	if len(tr.violations) == 0 {
		return
	}
	var b strings.Builder
	for i, v := range tr.violations {
		if i == 20 {
			fmt.Fprintf(&b, "  ... and %d more\n", len(tr.violations)-i)
			break
		}
		fmt.Fprintf(&b, "  [%s] %s\n", v.kind, v.msg)
	}
	t.Errorf("trial %#x broke a guarantee (replay: %s=%#x go test -race -run TestPropertyFaultInjection ./internal/faulttest)\n%v%s",
		tr.cfg.seed, envSeed, tr.cfg.seed, tr.cfg, b.String())
}
