package workerpool_test

// Round 3 of adversarial tests: contexts that ended before submission,
// groups at their edges, and StopGuard over Named and Private pools.

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool"
	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

// TestAttack3EndedContextNeverRuns: "a task whose context ended before a
// worker took it does not run" — so one submitted with a context already
// ended never runs, on idle workers, through Do, Submit, GoReport, Group
// and Map; each caller is told the context's cause, GoReport exactly once.
func TestAttack3EndedContextNeverRuns(t *testing.T) {
	p, _ := atkStart[W](t, "a3ended", workerpool.Workers(4))
	why := errors.New("request abandoned")
	var ran atomic.Int32
	task := func(context.Context, W) error { ran.Add(1); return nil }
	for i := range 200 {
		ctx, cancel := context.WithCancelCause(context.Background())
		cancel(why)
		switch i % 5 {
		case 0:
			if err := p.Do(ctx, task); !errors.Is(err, why) && !errors.Is(err, context.Canceled) {
				t.Fatalf("Do with an ended ctx = %v", err)
			}
		case 1:
			f, err := workerpool.Submit(ctx, p, func(ctx context.Context, w W) (int, error) { return 1, task(ctx, w) })
			if err == nil {
				_, err = f.Wait(context.Background())
			}
			if !errors.Is(err, why) && !errors.Is(err, context.Canceled) {
				t.Fatalf("Submit with an ended ctx: %v", err)
			}
		case 2:
			var n atomic.Int32
			got := make(chan workerpool.Outcome, 2)
			err := p.GoReport(ctx, task, func(o workerpool.Outcome, err error) {
				n.Add(1)
				if o == workerpool.NotRun && !errors.Is(err, why) {
					t.Errorf("GoReport NotRun with %v, want the cause", err)
				}
				got <- o
			})
			if err == nil {
				within(t, "report", func() {
					if o := <-got; o != workerpool.NotRun {
						t.Errorf("GoReport with an ended ctx: %v", o)
					}
				})
			}
			if n.Load() > 1 {
				t.Errorf("report called %d times", n.Load())
			}
		case 3:
			g, _ := p.Group(ctx)
			g.Go(task)
			var err error
			within(t, "Group.Wait", func() { err = g.Wait() })
			if err == nil {
				t.Error("Group of an ended ctx: Wait = nil")
			}
		case 4:
			for _, err := range workerpool.Map(ctx, p, func(yield func(int) bool) { yield(1) }, func(ctx context.Context, w W, _ int) (int, error) {
				return 0, task(ctx, w)
			}) {
				if err == nil {
					t.Error("Map with an ended ctx yielded a result")
				}
			}
		}
	}
	if ran.Load() != 0 {
		t.Errorf("%d tasks ran with a context that had ended before they were submitted", ran.Load())
	}
}

// TestAttack3GroupEdges: Group.Go(nil) fails the group with ErrNilTask;
// Group.TryGo on a stopped pool returns false and does not fail it; Wait
// from several goroutines at once returns the same first error; a group
// whose task panics reports a *PanicError.
func TestAttack3GroupEdges(t *testing.T) {
	p, app := atkStart[W](t, "a3group", workerpool.Workers(2))
	t.Run("nil task", func(t *testing.T) {
		g, gctx := p.Group(context.Background())
		var err error
		pan, _ := a3Call(t, "Group.Go(nil)", func() error { g.Go(nil); return nil })
		if pan != nil {
			t.Fatalf("Group.Go(nil) panicked: %v", pan)
		}
		within(t, "Wait", func() { err = g.Wait() })
		if !errors.Is(err, workerpool.ErrNilTask) {
			t.Errorf("Wait after Go(nil) = %v, want ErrNilTask", err)
		}
		if gctx.Err() == nil {
			t.Error("the group's context is not cancelled after Wait")
		}
	})
	t.Run("concurrent Wait", func(t *testing.T) {
		g, _ := p.Group(context.Background())
		boom := errors.New("boom")
		release := make(chan struct{})
		g.Go(func(context.Context, W) error { <-release; return boom })
		g.Go(func(ctx context.Context, _ W) error { <-ctx.Done(); return errors.New("second") })
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			wg.Add(1)
			go func() { defer wg.Done(); errs[i] = g.Wait() }()
		}
		close(release)
		within(t, "Waits", wg.Wait)
		for i, err := range errs {
			if !errors.Is(err, boom) {
				t.Errorf("Wait #%d = %v, want the first error", i, err)
			}
		}
	})
	t.Run("panic", func(t *testing.T) {
		g, _ := p.Group(context.Background())
		g.Go(func(context.Context, W) error { panic("group boom") })
		var pe *workerpool.PanicError
		var err error
		within(t, "Wait", func() { err = g.Wait() })
		if !errors.As(err, &pe) {
			t.Errorf("Wait = %v, want a *PanicError", err)
		}
	})
	t.Run("after stop", func(t *testing.T) {
		g, _ := p.Group(context.Background())
		if err := app.Stop(a3Ctx(t, a3Hang)); err != nil {
			t.Fatal(err)
		}
		if g.TryGo(func(context.Context, W) error { return nil }) {
			t.Error("Group.TryGo on a stopped pool = true")
		}
		var err error
		within(t, "Wait", func() { err = g.Wait() })
		if err != nil {
			t.Errorf("Wait after a refused TryGo = %v: TryGo's refusal must not fail the group", err)
		}
		g2, g2ctx := p.Group(context.Background())
		g2.Go(func(context.Context, W) error { return nil })
		within(t, "Wait", func() { err = g2.Wait() })
		if !errors.Is(err, workerpool.ErrClosed) {
			t.Errorf("Group.Go on a stopped pool: Wait = %v, want ErrClosed", err)
		}
		if !errors.Is(context.Cause(g2ctx), workerpool.ErrClosed) {
			t.Errorf("group context cause = %v", context.Cause(g2ctx))
		}
	})
}

// TestAttack3StopGuardNamedAndPrivate: StopGuard guards "every pool of the
// app (registered with the Registry of fxpool.Module)": two Named pools of
// one task type and a Private one in an fx.Module. A hook that stops before
// them all takes the whole stop budget; once app.Stop has returned, each
// refuses tasks and has closed its resources exactly once.
func TestAttack3StopGuardNamedAndPrivate(t *testing.T) {
	type pools struct {
		fx.In
		A *workerpool.Pool[AB] `name:"a3gA"`
		B *workerpool.Pool[AB] `name:"a3gB"`
	}
	la, lb, lc := newLedger(), newLedger(), newLedger()
	var ps pools
	var pc *workerpool.Pool[AB]
	var reg *workerpool.Registry
	app := fx.New(fx.NopLogger,
		fx.StopTimeout(2*time.Second),
		fxpool.Module,
		workerpool.Provide[AB]("a3gA", workerpool.Named(), workerpool.Workers(2), abResources(la)),
		workerpool.Provide[AB]("a3gB", workerpool.Named(), workerpool.Workers(1), abResources(lb)),
		fx.Module("priv",
			workerpool.Provide[AB]("a3gC", workerpool.Private(), workerpool.Workers(1), abResources(lc)),
			fx.Invoke(func(p *workerpool.Pool[AB]) { pc = p }),
		),
		fx.Populate(&ps, &reg),
		// Appended after every pool's hooks: stops before them, and takes
		// the whole budget.
		fx.Invoke(func(lc fx.Lifecycle, _ pools) {
			lc.Append(fx.StopHook(func(ctx context.Context) { <-ctx.Done() }))
		}),
		workerpool.StopGuard(),
	)
	if err := app.Err(); err != nil {
		t.Fatal(err)
	}
	if err := app.Start(a3Ctx(t, a3Hang)); err != nil {
		t.Fatal(err)
	}
	if got := reg.Names(); len(got) != 3 {
		t.Errorf("Registry.Names() = %v, want the 3 pools", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	within(t, "app.Stop", func() { _ = app.Stop(ctx) })
	for name, p := range map[string]*workerpool.Pool[AB]{"a3gA": ps.A, "a3gB": ps.B, "a3gC": pc} {
		if err := p.Go(context.Background(), func(context.Context, AB) error { return nil }); !errors.Is(err, workerpool.ErrClosed) {
			t.Errorf("%s: Go after app.Stop = %v, want ErrClosed (StopGuard did not stop it)", name, err)
		}
		if p.Name() != name {
			t.Errorf("Name() = %q, want %q", p.Name(), name)
		}
	}
	for name, l := range map[string]*ledger{"a3gA": la, "a3gB": lb, "a3gC": lc} {
		o, c := l.counts()
		if o == 0 || o != c {
			t.Errorf("%s: %d opened, %d closed once app.Stop returned", name, o, c)
		}
		l.check(t)
	}
}

// TestAttack3PerWorkerValuesAreOwn: a task parameter of two per-worker
// resources gets its own worker's, and resources.Worker in the task is
// the worker's identity, generation included, across rebuilds.
func TestAttack3PerWorkerValuesAreOwn(t *testing.T) {
	l := newLedger()
	p, app := atkStart[AB](t, "a3own", workerpool.Workers(3), workerpool.QueueSize(16), abResources(l))
	var wg sync.WaitGroup
	var bad atomic.Int32
	for i := range 300 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = p.Do(context.Background(), func(_ context.Context, d AB) error {
				if d.B.w != d.W || d.B.a.w != d.W {
					bad.Add(1)
				}
				if i%17 == 0 {
					return resources.ErrBroken
				}
				return nil
			})
		}()
	}
	within(t, "tasks", wg.Wait)
	if bad.Load() != 0 {
		t.Errorf("%d tasks saw resources of another worker or generation", bad.Load())
	}
	if err := app.Stop(a3Ctx(t, a3Hang)); err != nil {
		t.Fatal(err)
	}
	l.check(t)
}
