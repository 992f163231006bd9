package workerpool_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

// Batch is a per-worker resource that must be flushed on close.
type Batch struct{ flushed *atomic.Int32 }

func (b *Batch) Close(ctx context.Context) error {
	b.flushed.Add(1)
	return ctx.Err()
}

func TestStopGuard(t *testing.T) {
	// A slow hook that stops before the pool (appended after it) uses up
	// the whole stop budget, as a graceful HTTP shutdown with long
	// requests does. fx then skips the pool's OnStop.
	slowHook := fx.Invoke(func(lc fx.Lifecycle, _ *workerpool.Pool[*Batch]) {
		lc.Append(fx.StopHook(func(ctx context.Context) { <-ctx.Done() }))
	})
	newApp := func(flushed *atomic.Int32, notRun *atomic.Int32, guard bool, poolStop *func(context.Context) error) (*fx.App, **workerpool.Pool[*Batch]) {
		var p *workerpool.Pool[*Batch]
		opts := []fx.Option{
			fx.NopLogger,
			// Keep the pool's OnStop, to call it by hand when fx skips it.
			fx.Decorate(func(lc fx.Lifecycle) fx.Lifecycle { return hookSpy{lc, poolStop} }),
			fx.Provide(workerpool.NewRegistry),
			workerpool.Provide[*Batch]("flusher",
				workerpool.Workers(2),
				workerpool.ErrorHandler(func(err error) {
					if errors.Is(err, workerpool.ErrClosed) {
						notRun.Add(1)
					}
				}),
				workerpool.Resources(resources.PerWorker(func() *Batch { return &Batch{flushed: flushed} })),
			),
			fx.Populate(&p),
			slowHook,
		}
		if guard {
			opts = append(opts, workerpool.StopGuard())
		}
		return fx.New(opts...), &p
	}
	run := func(t *testing.T, guard bool) (flushed, notRun int32, stopErr error) {
		var (
			f, n     atomic.Int32
			poolStop func(context.Context) error
		)
		app, p := newApp(&f, &n, guard, &poolStop)
		if err := app.Err(); err != nil {
			t.Fatal(err)
		}
		if err := app.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		// Every worker busy until the stop cancels it, and a task queued.
		release := make(chan struct{})
		for range 2 {
			if err := (*p).Go(t.Context(), func(ctx context.Context, _ *Batch) error {
				select {
				case <-ctx.Done():
				case <-release:
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		if err := (*p).Go(t.Context(), func(context.Context, *Batch) error { return nil }); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
		defer cancel()
		stopErr = app.Stop(ctx)
		close(release)
		if !guard {
			// fx skipped the pool: it still takes tasks. Stop it by hand
			// so that nothing leaks.
			if err := (*p).Go(t.Context(), func(context.Context, *Batch) error { return nil }); err != nil {
				t.Errorf("Go after app.Stop without StopGuard = %v, want nil: fx skipped the pool's OnStop", err)
			}
			flushedByApp := f.Load()
			if err := poolStop(context.Background()); err != nil {
				t.Error(err)
			}
			return flushedByApp, n.Load(), stopErr
		}
		return f.Load(), n.Load(), stopErr
	}

	t.Run("ClosesThePoolBeforeFxGivesUp", func(t *testing.T) {
		flushed, notRun, err := run(t, true)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("app.Stop = %v, want the slow hook's deadline", err)
		}
		if flushed != 2 {
			t.Errorf("%d batches flushed, want 2: the pool closed within the budget", flushed)
		}
		if notRun+0 > 1 {
			t.Errorf("%d tasks reported not run, want at most the one queued", notRun)
		}
	})
	t.Run("WithoutItFxSkipsThePool", func(t *testing.T) {
		flushed, _, _ := run(t, false)
		if flushed != 0 {
			t.Errorf("%d batches flushed by app.Stop without StopGuard: fx ran the pool's OnStop; this test's premise is wrong", flushed)
		}
	})
}

// hookSpy is an fx.Lifecycle that keeps the OnStop of the first hook
// appended: the pool's.
type hookSpy struct {
	fx.Lifecycle
	stop *func(context.Context) error
}

func (s hookSpy) Append(h fx.Hook) {
	if *s.stop == nil {
		*s.stop = h.OnStop
	}
	s.Lifecycle.Append(h)
}
