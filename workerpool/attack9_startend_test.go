package workerpool_test

// Round 9, item 1, narrowed: a Pool.Stop that lands as the start finishes
// (instant constructors). Docs (Pool.Stop): "Stop stops the pool now ...
// the pool refuses new tasks (ErrClosed)"; "A pool that is starting stops
// starting: its start rolls back what opened and fails with ErrClosed, and
// Stop returns once the rollback is over." Whichever wins, once Stop has
// returned the pool must refuse tasks and have closed its workers.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

func TestAttack9StopRacingStartEnd(t *testing.T) {
	for _, trig := range []string{"random", "lastWorkerOpened", "poolStarted"} {
		t.Run(trig, func(t *testing.T) {
			fails := 0
			const iters = 150
			for i := range iters {
				if s9once(t, trig, i) {
					fails++
				}
			}
			if fails > 0 {
				t.Errorf("%s: %d/%d iterations: Stop lost (pool still serving after Stop returned)", trig, fails, iters)
			}
		})
	}
}

// s9once returns true if the stop was lost.
func s9once(t *testing.T, trig string, i int) (lost bool) {
	l := newLedger()
	const workers = 4
	var p *workerpool.Pool[AB]
	var fire sync.Once
	fireCh := make(chan struct{})
	var opened int
	var mu sync.Mutex
	app := fx.New(fx.NopLogger, fx.StartTimeout(5*time.Second), fx.StopTimeout(5*time.Second),
		workerpool.Provide[AB](fmt.Sprintf("s9e%s%d", trig, i),
			workerpool.Workers(workers),
			abResources(l),
			workerpool.Events(func(e workerpool.Event) {
				switch e := e.(type) {
				case workerpool.WorkerOpened:
					mu.Lock()
					opened++
					n := opened
					mu.Unlock()
					if trig == "lastWorkerOpened" && n == workers && e.Err == nil {
						fire.Do(func() { close(fireCh) })
					}
				case workerpool.PoolStarted:
					if trig == "poolStarted" {
						fire.Do(func() { close(fireCh) })
					}
				}
			}),
		), fx.Populate(&p))
	if err := app.Err(); err != nil {
		t.Fatal(err)
	}
	var startErr, stopErr error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		startErr = app.Start(ctx)
	}()
	go func() {
		defer wg.Done()
		if trig == "random" {
			time.Sleep(time.Duration(rand.IntN(1500)) * time.Microsecond)
		} else {
			<-fireCh
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		stopErr = p.Stop(ctx, workerpool.Drain)
	}()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	atkWait(t, "start and stop", 15*time.Second, done)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	doErr := p.Do(ctx, func(context.Context, AB) error { return nil })
	o, c := l.counts()
	if !errors.Is(doErr, workerpool.ErrClosed) || o != c {
		lost = true
		t.Logf("iter %d: start=%v\n stop=%v\n Do after Stop=%v; opened %d closed %d; stats %+v", i, startErr, stopErr, doErr, o, c, p.Stats())
	}
	// clean up: app.Stop must still close everything
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	if startErr == nil {
		if err := app.Stop(sctx); err != nil {
			t.Logf("iter %d: app.Stop: %v", i, err)
		}
	}
	atkPoll(t, "all closed after app.Stop", 5*time.Second, func() bool { o, c := l.counts(); return o == c })
	l.check(t)
	_ = resources.ErrBroken
	return lost
}
