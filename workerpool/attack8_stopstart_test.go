package workerpool_test

// Round 8: Pool.Stop called on demand while the pool's own OnStart is still
// opening its workers (a command told to quit during a slow start). "Stop is
// safe for concurrent use"; "A pool starts once". Whatever the start's
// result, once both have returned the pool refuses tasks with ErrClosed,
// runs no worker, and every resource that opened closed exactly once; nothing
// hangs, nothing leaks.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/fxpool/fxpool/fxpooltest"
	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

func TestAttack8StopWhileStarting(t *testing.T) {
	policies := []workerpool.StopPolicy{workerpool.Drain, workerpool.Cancel, workerpool.DropQueued}
	for round := range 6 {
		policy := policies[round%3]
		before := round >= 3 // Stop races the start's beginning instead
		t.Run(fmt.Sprintf("%d-%v-racing=%v", round, policy, before), func(t *testing.T) {
			l := newLedger()
			inOpen, gate := make(chan struct{}), make(chan struct{})
			var entered sync.Once
			rec := fxpooltest.NewRecorder()
			var p *workerpool.Pool[AB]
			app := fxpooltest.New(t,
				fx.StartTimeout(10*time.Second), fx.StopTimeout(10*time.Second),
				workerpool.Provide[AB](fmt.Sprintf("a8stopstart%d", round),
					workerpool.Workers(4), workerpool.StartConcurrency(2), rec.Option(),
					workerpool.Resources(
						resources.PerWorker(func(ctx context.Context, w W) (*ResA, func(), error) {
							if w.ID == 0 && w.Generation == 0 {
								entered.Do(func() { close(inOpen) })
								// held until the concurrent Stop has returned
								// (or 2s, so a Stop that waits for the start
								// is not a deadlock of the test)
								select {
								case <-gate:
								case <-time.After(2 * time.Second):
								case <-ctx.Done():
									return nil, nil, context.Cause(ctx)
								}
							}
							l.add("open", "A", w)
							return &ResA{w}, func() { l.add("close", "A", w) }, nil
						}),
						resources.PerWorker(func(a *ResA, w W) (*ResB, func(), error) {
							l.add("open", "B", w)
							return &ResB{a, w}, func() { l.add("close", "B", w) }, nil
						}),
					),
				),
				fx.Populate(&p),
			)
			var wg sync.WaitGroup
			var startErr, stopErr error
			var stopTook time.Duration
			wg.Add(2)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				startErr = app.Start(ctx)
			}()
			go func() {
				defer wg.Done()
				if !before {
					<-inOpen // the start is under way: worker 0 is opening
				}
				defer close(gate)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				t0 := time.Now()
				stopErr = p.Stop(ctx, policy)
				stopTook = time.Since(t0)
			}()
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			atkWait(t, "Start and a concurrent Stop", 15*time.Second, done)
			t.Logf("start: %v; stop: %v (took %v; Is ErrNotStarted %v, Is ErrClosed %v)", startErr, stopErr, stopTook,
				errors.Is(stopErr, workerpool.ErrNotStarted), errors.Is(stopErr, workerpool.ErrClosed))
			// Whatever the start did, the pool was stopped: it refuses tasks.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := p.Do(ctx, func(context.Context, AB) error { return nil }); !errors.Is(err, workerpool.ErrClosed) {
				t.Errorf("Do after Stop (start: %v) = %v, want ErrClosed", startErr, err)
			}
			if p.TryGo(func(context.Context, AB) error { return nil }) {
				t.Error("TryGo after Stop = true")
			}
			if c := p.Capacity(); c.Workers != 0 {
				t.Errorf("Capacity after Stop = %+v, want 0 workers", c)
			}
			// The app's own stop waits for the stop already made and returns.
			stopDone := make(chan struct{})
			go func() {
				defer close(stopDone)
				if startErr == nil {
					_ = app.Stop(ctx)
				}
			}()
			atkWait(t, "app.Stop after Pool.Stop", 10*time.Second, stopDone)
			if s := p.Stats(); s.Workers != 0 || s.Opening != 0 || s.Closing != 0 || s.Busy != 0 {
				t.Errorf("Stats after both stops = %+v", s)
			}
			l.check(t)
			o, c := l.counts()
			if o != c {
				t.Errorf("opened %d, closed %d", o, c)
			}
			if startErr == nil {
				rec.Verify(t)
			}
			app.VerifyNoLeaks()
		})
	}
}
