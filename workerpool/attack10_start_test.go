package workerpool_test

// Round 10: a start whose open fails, panics, calls runtime.Goexit (after
// growing its stack or not), or runs out of budget, among many workers
// opening in parallel: every opened resource is closed exactly once before
// OnStart returns, the error names the pool and the culprit, the Events
// hook sees the culprit's failed open with its Err, and the pool refuses
// tasks.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"

	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
	"go.uber.org/zap"
)

type A10A struct{ w W }
type A10B struct{ w W }
type A10AB struct {
	fx.In
	B *A10B
}

var errA10Boom = errors.New("a10 boom")

func TestAttack10StartFaultRollsBack(t *testing.T) {
	faults := []string{"error", "panic", "goexit", "deep-goexit", "deep-panic", "budget", "goexit-in-A"}
	for _, fault := range faults {
		for _, conc := range []int{0, 3} {
			t.Run(fmt.Sprintf("%s/conc%d", fault, conc), func(t *testing.T) {
				reps := 6
				if fault == "budget" {
					reps = 2
				}
				for rep := range reps {
					a10startFault(t, fault, conc, rep)
				}
			})
		}
	}
}

func a10startFault(t *testing.T, fault string, conc, rep int) {
	const n = 200
	culprit := rand.IntN(n)
	l := newLedger()
	evs := &a10Events{}
	name := fmt.Sprintf("a10sf-%s-%d-%d", fault, conc, rep)
	opts := []workerpool.Option{
		workerpool.Workers(n),
		workerpool.Events(evs.add),
		workerpool.Resources(
			resources.PerWorker(func(w W) (*A10A, func(), error) {
				if w.ID == culprit && fault == "goexit-in-A" {
					runtime.Goexit()
				}
				l.add("open", "A", w)
				return &A10A{w}, func() { l.add("close", "A", w) }, nil
			}, resources.Name("resA")),
			resources.PerWorker(func(ctx context.Context, a *A10A, w W) (*A10B, func(), error) {
				if w.ID == culprit {
					switch fault {
					case "error":
						return nil, nil, errA10Boom
					case "panic":
						panic(errA10Boom)
					case "goexit":
						runtime.Goexit()
					case "deep-goexit":
						deep(64)
						runtime.Goexit()
					case "deep-panic":
						deep(64)
						panic(errA10Boom)
					case "budget":
						<-ctx.Done()
						return nil, nil, ctx.Err()
					}
				}
				if w.ID%7 == 0 {
					deep(48) // some neighbours grow their stacks too
				}
				l.add("open", "B", w)
				return &A10B{w}, func() { l.add("close", "B", w) }, nil
			}, resources.Name("resB")),
		),
	}
	if conc > 0 {
		opts = append(opts, workerpool.StartConcurrency(conc))
	}
	var p *workerpool.Pool[A10AB]
	app := a10app(t, &p, name, []fx.Option{fx.Supply(zap.NewNop())}, opts...)
	budget := 20 * time.Second
	if fault == "budget" {
		budget = 600 * time.Millisecond
	}
	ctx, cancel := a10ctx(budget)
	defer cancel()
	var err error
	a10within(t, "Start", 30*time.Second, func() { err = app.Start(ctx) })
	if err == nil {
		t.Fatalf("%s: start succeeded", name)
	}
	// the rollback is over before OnStart returned.
	l.check(t)
	opens, closes := l.counts()
	msg := err.Error()
	if !strings.Contains(msg, name) {
		t.Errorf("%s: error does not name the pool: %v", name, err)
	}
	culpritRes := "resB"
	if fault == "goexit-in-A" {
		culpritRes = "resA"
	}
	if !strings.Contains(msg, culpritRes) {
		t.Errorf("%s: error does not name the resource %s: %v", name, culpritRes, err)
	}
	if !strings.Contains(msg, fmt.Sprint(culprit)) {
		t.Errorf("%s: error does not name worker %d: %v", name, culprit, err)
	}
	switch fault {
	case "error", "panic", "deep-panic":
		if !errors.Is(err, errA10Boom) {
			t.Errorf("%s: errors.Is(err, boom) false: %v", name, err)
		}
		var oe *resources.OpenError
		if !errors.As(err, &oe) || oe.Resource != "resB" {
			t.Errorf("%s: no *resources.OpenError for resB in %v", name, err)
		}
	case "goexit", "deep-goexit", "goexit-in-A":
		if !strings.Contains(strings.ToLower(msg), "goexit") {
			t.Errorf("%s: error does not say Goexit: %v", name, err)
		}
	}
	// The culprit's failed open reached the Events hook with its Err (the
	// ResourceOpened of a Goexit is TestAttack10GoexitConstructorEvent's).
	if fault != "budget" {
		sawW, sawR := false, false
		for _, e := range evs.all() {
			switch e := e.(type) {
			case workerpool.WorkerOpened:
				if e.Worker.ID == culprit && e.Err != nil {
					sawW = true
				}
			case workerpool.ResourceOpened:
				if e.Worker.ID == culprit && e.Resource == culpritRes && e.Err != nil {
					sawR = true
				}
			}
		}
		if strings.Contains(fault, "goexit") {
			sawR = true
		}
		if !sawW || !sawR {
			t.Errorf("%s: culprit %d's failed open not seen by Events: WorkerOpened %v, ResourceOpened %v", name, culprit, sawW, sawR)
		}
	}
	// Every ResourceOpened without Err has exactly one ResourceClosed.
	a10checkResourceEvents(t, name, evs.all())
	if e := p.Go(context.Background(), func(context.Context, A10AB) error { return nil }); e == nil {
		t.Errorf("%s: a pool whose start failed took a task", name)
	}
	sctx, scancel := a10ctx(10 * time.Second)
	defer scancel()
	_ = app.Stop(sctx)
	if o2, c2 := l.counts(); o2 != opens || c2 != closes {
		t.Errorf("%s: opens/closes moved after the failed start: %d/%d -> %d/%d", name, opens, closes, o2, c2)
	}
}

func a10checkResourceEvents(t *testing.T, name string, evs []workerpool.Event) {
	t.Helper()
	opened, closed, wopened, wclosed := a10eventCounts(evs)
	for k, n := range opened {
		if n != 1 || closed[k] != 1 {
			t.Errorf("%s: event ResourceOpened %s x%d, ResourceClosed x%d", name, k, n, closed[k])
		}
	}
	for k, n := range closed {
		if opened[k] == 0 {
			t.Errorf("%s: event ResourceClosed %s x%d never opened", name, k, n)
		}
	}
	for k, n := range wopened {
		if n != 1 || wclosed[k] != 1 {
			t.Errorf("%s: event WorkerOpened %s x%d, WorkerClosed x%d", name, k, n, wclosed[k])
		}
	}
}
