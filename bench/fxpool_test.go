package bench

import (
	"context"
	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

// The fxpool side of every figure. A pool is declared as a user would: one
// fx app, workerpool.Provide with a per-worker resource, the pool taken from
// the graph. Dispatch figures build and start the app before the timer
// starts; start+stop figures build it inside the timed loop.

// connDecl opens a [Conn] per worker; Conn has Close() error, so fxpool
// closes it when the worker stops.
func connDecl() resources.Declaration {
	return resources.PerWorker(func(w resources.Worker) *Conn { return openConn(w.ID) })
}

// slowConnDecl opens a [SlowConn] per worker: 10 ms to open, 10 ms to close.
func slowConnDecl() resources.Declaration {
	return resources.PerWorker(func(w resources.Worker) *SlowConn { return openSlowConn(w.ID) })
}

// newFxApp builds an app with one pool of w workers whose R is *Conn.
func newFxApp[R any](w int, decl resources.Declaration, p **workerpool.Pool[R], opts ...workerpool.Option) *fx.App {
	opts = append([]workerpool.Option{
		workerpool.Workers(w),
		workerpool.QueueSize(QueueSize),
		workerpool.Resources(decl),
	}, opts...)
	return fx.New(
		fx.NopLogger,
		workerpool.Provide[R]("bench", opts...),
		fx.Populate(p),
	)
}

// startFxpool builds and starts an app with one pool of w workers with a
// [Conn] each and returns the pool and a function that stops the app.
// Dispatch benchmarks stop it with [untimed].
func startFxpool(b *testing.B, w int, opts ...workerpool.Option) (*workerpool.Pool[*Conn], func()) {
	b.Helper()
	var p *workerpool.Pool[*Conn]
	app := newFxApp(w, connDecl(), &p, opts...)
	ctx, cancel := context.WithTimeout(context.Background(), ctxTimeout)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		b.Fatal(err)
	}
	return p, func() {
		ctx, cancel := context.WithTimeout(context.Background(), ctxTimeout)
		defer cancel()
		if err := app.Stop(ctx); err != nil {
			b.Error(err)
		}
	}
}

// untimed stops the timer, then calls stop.
func untimed(b *testing.B, stop func()) {
	b.StopTimer()
	stop()
}

func staticFxTask(context.Context, *Conn) error {
	Sink(0)
	pending.Done()
	return nil
}

func goFxpool(b *testing.B, w int, k taskKind) {
	steps := k.steps()
	p, stop := startFxpool(b, w)
	defer untimed(b, stop)
	ctx := context.Background()
	pending.Add(b.N)
	b.ResetTimer()
	for i := range b.N {
		task := staticFxTask
		if !k.static {
			task = func(context.Context, *Conn) error {
				Work(steps)
				Sink(uint64(i))
				pending.Done()
				return nil
			}
		}
		if err := p.Go(ctx, task); err != nil {
			b.Fatal(err)
		}
	}
	pending.Wait()
}

func doFxpool(b *testing.B, w int, k taskKind) {
	steps := k.steps()
	p, stop := startFxpool(b, w)
	defer untimed(b, stop)
	ctx := context.Background()
	runCallers(b, func(i int, _ chan struct{}) {
		err := p.Do(ctx, func(context.Context, *Conn) error {
			Work(steps)
			Sink(uint64(i))
			return nil
		})
		if err != nil {
			b.Error(err)
		}
	})
}

func doFxpoolSubmit(b *testing.B, w int, k taskKind) {
	steps := k.steps()
	p, stop := startFxpool(b, w)
	defer untimed(b, stop)
	ctx := context.Background()
	runCallers(b, func(i int, _ chan struct{}) {
		f, err := workerpool.Submit(ctx, p, func(context.Context, *Conn) (int, error) {
			Work(steps)
			Sink(uint64(i))
			return i, nil
		})
		if err != nil {
			b.Error(err)
			return
		}
		if _, err := f.Wait(ctx); err != nil {
			b.Error(err)
		}
	})
}

func resourceFxpool(b *testing.B, w int, k taskKind) {
	steps := k.steps()
	p, stop := startFxpool(b, w)
	defer untimed(b, stop)
	ctx := context.Background()
	pending.Add(b.N)
	b.ResetTimer()
	for i := range b.N {
		err := p.Go(ctx, func(_ context.Context, c *Conn) error {
			c.Use()
			Work(steps)
			Sink(uint64(i))
			pending.Done()
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	pending.Wait()
}

// startStopFxpool times fx.New, app.Start and app.Stop of an app with one
// pool of c.workers workers.
func startStopFxpool(b *testing.B, c lifecycleCase) {
	if c.slow {
		startStopFx[*SlowConn](b, c.workers, slowConnDecl())
		return
	}
	startStopFx[*Conn](b, c.workers, connDecl())
}

func startStopFx[R any](b *testing.B, n int, decl resources.Declaration) {
	var ph phases
	for b.Loop() {
		var p *workerpool.Pool[R]
		app := newFxApp(n, decl, &p)
		if err := app.Err(); err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), ctxTimeout)
		t0 := time.Now()
		if err := app.Start(ctx); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := app.Stop(ctx); err != nil {
			b.Fatal(err)
		}
		ph.start += t1.Sub(t0)
		ph.stop += time.Since(t1)
		cancel()
	}
	ph.report(b)
}

func idleFxpool(b *testing.B, n int) func() {
	_, stop := startFxpool(b, n)
	return stop
}
