package bench

import (
	"context"
	"testing"

	"github.com/fxpool/fxpool/workerpool"
)

// The new submission paths of the task API v2 and of LockOSThread, each
// measured as one more impl of an existing figure, so that its cost sits
// next to the old path's in the same run:
//
//	Go figure:  fxpool-ctxvalue  Go with a context carrying a value (vs fxpool: context.Background)
//	            fxpool-goreport  GoReport: Go with a per-task outcome
//	            fxpool-group     a Group, one Group.Go per task, then Wait (vs errgroup)
//	            fxpool-locked    Go to workers under LockOSThread (vs fxpool: unlocked)
//	Do figure:  fxpool-ctxcancel Do with a cancellable context (vs fxpool: context.Background)
//	            fxpool-submit    Submit and Future.Wait (vs fxpool: Do)
//	            fxpool-locked    Do to workers under LockOSThread (vs fxpool: unlocked)
//
// Map has a figure of its own (BenchmarkMap).

type ctxKey struct{}

// valueCtx is a context carrying a request-scoped value, as a traced request's.
var valueCtx = context.WithValue(context.Background(), ctxKey{}, "request-1")

// fxGoTask is the fxpool form of the i-th fire-and-forget task of kind k.
func fxGoTask(k taskKind, steps, i int) func(context.Context, *Conn) error {
	if k.static {
		return staticFxTask
	}
	return func(context.Context, *Conn) error {
		Work(steps)
		Sink(uint64(i))
		pending.Done()
		return nil
	}
}

// goFxpoolWith runs the Go figure on a pool made with opts, submitting each
// task with submit.
func goFxpoolWith(b *testing.B, w int, k taskKind, opts []workerpool.Option, submit func(p *workerpool.Pool[*Conn], task func(context.Context, *Conn) error) error) {
	steps := k.steps()
	p, stop := startFxpool(b, w, opts...)
	defer untimed(b, stop)
	pending.Add(b.N)
	b.ResetTimer()
	for i := range b.N {
		if err := submit(p, fxGoTask(k, steps, i)); err != nil {
			b.Fatal(err)
		}
	}
	pending.Wait()
}

func goFxpoolCtxValue(b *testing.B, w int, k taskKind) {
	goFxpoolWith(b, w, k, nil, func(p *workerpool.Pool[*Conn], task func(context.Context, *Conn) error) error {
		return p.Go(valueCtx, task)
	})
}

func ignoreOutcome(workerpool.Outcome, error) {}

func goFxpoolReport(b *testing.B, w int, k taskKind) {
	ctx := context.Background()
	goFxpoolWith(b, w, k, nil, func(p *workerpool.Pool[*Conn], task func(context.Context, *Conn) error) error {
		return p.GoReport(ctx, task, ignoreOutcome)
	})
}

func goFxpoolLocked(b *testing.B, w int, k taskKind) {
	ctx := context.Background()
	goFxpoolWith(b, w, k, []workerpool.Option{workerpool.LockOSThread()}, func(p *workerpool.Pool[*Conn], task func(context.Context, *Conn) error) error {
		return p.Go(ctx, task)
	})
}

// goFxpoolGroup: one group for the b.N tasks, as errgroup's figure has one
// errgroup.Group; Wait is timed.
func goFxpoolGroup(b *testing.B, w int, k taskKind) {
	steps := k.steps()
	p, stop := startFxpool(b, w)
	defer untimed(b, stop)
	pending.Add(b.N)
	b.ResetTimer()
	g, _ := p.Group(context.Background())
	for i := range b.N {
		g.Go(fxGoTask(k, steps, i))
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	pending.Wait()
}

// doFxpoolWith runs the Do figure on a pool made with opts; each caller
// submits with the context ctx returns (made before the timer starts).
func doFxpoolWith(b *testing.B, w int, k taskKind, opts []workerpool.Option, ctx context.Context) {
	steps := k.steps()
	p, stop := startFxpool(b, w, opts...)
	defer untimed(b, stop)
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

func doFxpoolCtxCancel(b *testing.B, w int, k taskKind) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	doFxpoolWith(b, w, k, nil, ctx)
}

func doFxpoolLocked(b *testing.B, w int, k taskKind) {
	doFxpoolWith(b, w, k, []workerpool.Option{workerpool.LockOSThread()}, context.Background())
}
