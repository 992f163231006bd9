package workerpool_test

// Round 8: a cleanup that fails when its worker leaves the pool before the
// stop — removed by Resize, retired by an elastic pool, rebuilt after
// ErrBroken, recycled by MaxTasksPerWorker. Each failure is reported when it
// happens (its ResourceClosed event has the error), and none is the later
// stop's: the stop "joins its teardown errors", those of the closes it
// made. (Before the fix, a Resize's failed close failed the app's stop.)

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/fxpooltest"
	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

func TestAttack8EarlyCloseFailureAndTheStopsError(t *testing.T) {
	stopErrs := map[string]error{}
	for _, mode := range []string{"resize", "elastic", "broken", "recycle"} {
		t.Run(mode, func(t *testing.T) {
			var failedCloses atomic.Int64
			opts := []workerpool.Option{
				workerpool.QueueSize(4),
				workerpool.Events(func(e workerpool.Event) {
					if c, ok := e.(workerpool.ResourceClosed); ok && c.Err != nil {
						failedCloses.Add(1)
					}
				}),
				workerpool.Resources(resources.PerWorker(fxpooltest.Inject(
					func(w W) (*a8Hung, func(), error) { return &a8Hung{w}, func() {}, nil },
					fxpooltest.OnClose(1, fxpooltest.Fail),
				))),
			}
			switch mode {
			case "elastic":
				opts = append(opts, workerpool.Elastic(1, 2, 10*time.Millisecond))
			case "recycle":
				opts = append(opts, workerpool.Workers(2), workerpool.MaxTasksPerWorker(1))
			default:
				opts = append(opts, workerpool.Workers(2))
			}
			var p *workerpool.Pool[a8HungDeps]
			app := fx.New(fx.NopLogger, workerpool.Provide[a8HungDeps]("a8fail"+mode, opts...), fx.Populate(&p))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := app.Start(ctx); err != nil {
				t.Fatal(err)
			}
			switch mode {
			case "resize":
				if err := p.Resize(1); err != nil {
					t.Fatal(err)
				}
			case "elastic":
				release := atkBlock(t, p, 2)
				release()
			case "broken", "recycle":
				err := p.Do(ctx, func(context.Context, a8HungDeps) error {
					if mode == "broken" {
						return fmt.Errorf("a8: %w", resources.ErrBroken)
					}
					return nil
				})
				if err != nil && !errors.Is(err, resources.ErrBroken) {
					t.Fatal(err)
				}
			}
			atkPoll(t, "the failed close", 10*time.Second, func() bool { return failedCloses.Load() == 1 })
			atkPoll(t, "no worker closing", 10*time.Second, func() bool { return p.Stats().Closing == 0 })
			for range 5 {
				if err := p.Do(ctx, func(context.Context, a8HungDeps) error { return nil }); err != nil {
					t.Fatal(err)
				}
			}
			stopErrs[mode] = app.Stop(ctx)
			if failedCloses.Load() != 1 {
				t.Errorf("%d failed closes, want 1", failedCloses.Load())
			}
		})
	}
	joined := 0
	for mode, err := range stopErrs {
		t.Logf("%s: app.Stop = %v", mode, err)
		if err != nil {
			joined++
			if !errors.Is(err, fxpooltest.ErrInjected) {
				t.Errorf("%s: app.Stop = %v: an error not of the injected fault", mode, err)
			}
		}
	}
	// A stop reports the closes it made; one made before it was reported
	// then, by its events.
	if joined != 0 {
		t.Errorf("the close failure of a worker that left before the stop fails the app's stop for %d of %d ways of leaving: %v", joined, len(stopErrs), stopErrs)
	}
}
