package workerpool_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/fxpool/fxpool/fxpooltest"
	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/zap/zapcore"
)

const a16lSlow = 30 * time.Millisecond

// a16lSlowApp: every open and close of the chain takes at least a16lSlow
// (so a worker's open and close take at least 3 x a16lSlow: the chain is
// sequential), one worker, which panics once (a rebuild).
func a16lSlowRun(t *testing.T, extra ...workerpool.Option) *a16lH {
	t.Helper()
	h := a16lNew()
	h.setOpen(func(ctx context.Context, res string, w resources.Worker) error {
		time.Sleep(a16lSlow)
		return nil
	})
	h.setClose(func(ctx context.Context, res string, w resources.Worker) error {
		time.Sleep(a16lSlow)
		return nil
	})
	var p *workerpool.Pool[a16lDeps]
	app := h.app(&p, append([]workerpool.Option{workerpool.Workers(1)}, extra...))
	ctx, cancel := a16lCtx(a16lGuard)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	_ = p.Do(ctx, func(context.Context, a16lDeps) error { panic("a16l") })
	_ = a16lGenOf(t, ctx, p, h)
	if err := app.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	h.checkLifecycle(t, true)
	return h
}

// Took is how long the constructor, cleanup, worker open or close, start or
// stop ran: never less than what the test made them take.
func a16lCheckTook(t *testing.T, h *a16lH) {
	t.Helper()
	for _, e := range a16lEvents[workerpool.ResourceOpened](h) {
		if e.Took < a16lSlow {
			t.Errorf("ResourceOpened %s %v: Took %v < %v", e.Resource, e.Worker, e.Took, a16lSlow)
		}
	}
	for _, e := range a16lEvents[workerpool.ResourceClosed](h) {
		if e.Took < a16lSlow {
			t.Errorf("ResourceClosed %s %v: Took %v < %v", e.Resource, e.Worker, e.Took, a16lSlow)
		}
	}
	wo := a16lEvents[workerpool.WorkerOpened](h)
	wc := a16lEvents[workerpool.WorkerClosed](h)
	if len(wo) != 2 || len(wc) != 2 {
		t.Fatalf("WorkerOpened %d, WorkerClosed %d: want 2 each (a start, a rebuild, a stop)", len(wo), len(wc))
	}
	for _, e := range wo {
		if e.Took < 3*a16lSlow {
			t.Errorf("WorkerOpened %v: Took %v < %v", e.Worker, e.Took, 3*a16lSlow)
		}
	}
	for _, e := range wc {
		if e.Took < 3*a16lSlow {
			t.Errorf("WorkerClosed %v: Took %v < %v", e.Worker, e.Took, 3*a16lSlow)
		}
	}
	if ps := a16lEvents[workerpool.PoolStarted](h); len(ps) != 1 || ps[0].Took < 3*a16lSlow {
		t.Errorf("PoolStarted %+v: want one with Took >= %v", ps, 3*a16lSlow)
	}
	if ps := a16lEvents[workerpool.PoolStopped](h); len(ps) != 1 || ps[0].Took < 3*a16lSlow {
		t.Errorf("PoolStopped %+v: want one with Took >= %v", ps, 3*a16lSlow)
	}
}

func TestA16lEventsTookIsHowLongItRan(t *testing.T) {
	a16lCheckTook(t, a16lSlowRun(t))
}

// The same with a test clock (WithClock), which the docs say times worker
// age and restart backoff: how long a constructor ran is still how long it
// ran.
func TestA16lEventsTookWithTestClock(t *testing.T) {
	a16lCheckTook(t, a16lSlowRun(t, fxpooltest.NewClock().Option()))
}

// Event order per worker generation: its resources' ResourceOpened in
// dependency order, then WorkerOpened; ResourceClosed in reverse, then
// WorkerClosed; PoolStarted after the first WorkerOpened, PoolStopped last.
func TestA16lEventsOrderPerGeneration(t *testing.T) {
	h := a16lSlowRun(t)
	type gen struct{ id, g int }
	var seq []string
	perGen := map[gen][]string{}
	for _, e := range h.snapshot() {
		if e.op != "ev" {
			continue
		}
		switch ev := e.ev.(type) {
		case workerpool.ResourceOpened:
			k := gen{ev.Worker.ID, ev.Worker.Generation}
			perGen[k] = append(perGen[k], "open "+ev.Resource)
			if ev.Closed {
				t.Errorf("ResourceOpened with Closed true: %+v", ev)
			}
		case workerpool.ResourceClosed:
			k := gen{ev.Worker.ID, ev.Worker.Generation}
			perGen[k] = append(perGen[k], "close "+ev.Resource)
			if !ev.Closed {
				t.Errorf("ResourceClosed with Closed false: %+v", ev)
			}
		case workerpool.WorkerOpened:
			k := gen{ev.Worker.ID, ev.Worker.Generation}
			perGen[k] = append(perGen[k], "worker opened")
			seq = append(seq, "worker opened")
		case workerpool.WorkerClosed:
			k := gen{ev.Worker.ID, ev.Worker.Generation}
			perGen[k] = append(perGen[k], "worker closed")
			seq = append(seq, "worker closed")
		case workerpool.WorkerRebuilt:
			seq = append(seq, "rebuilt")
			if ev.Level() != zapcore.InfoLevel {
				t.Errorf("a restart's WorkerRebuilt has level %v, want info", ev.Level())
			}
		case workerpool.PoolStarted:
			seq = append(seq, "pool started")
		case workerpool.PoolStopped:
			seq = append(seq, "pool stopped")
		}
	}
	want := []string{"open A", "open B", "open C", "worker opened", "close C", "close B", "close A", "worker closed"}
	for _, g := range []gen{{0, 0}, {0, 1}} {
		got := perGen[g]
		if len(got) != len(want) {
			t.Errorf("generation %v events %v, want %v", g, got, want)
			continue
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("generation %v events %v, want %v", g, got, want)
				break
			}
		}
	}
	if len(seq) == 0 || seq[len(seq)-1] != "pool stopped" {
		t.Errorf("pool events %v: want PoolStopped last", seq)
	}
	started := -1
	for i, s := range seq {
		if s == "pool started" {
			started = i
			break
		}
	}
	if started < 1 || seq[0] != "worker opened" {
		t.Errorf("pool events %v: want WorkerOpened before PoolStarted", seq)
	}
}

// A failed open: ResourceOpened with the error (level warn), WorkerOpened
// with it, no ResourceClosed of the failed resource, PoolStarted with the
// error (level error); the recorder agrees.
func TestA16lEventsOfAFailedOpen(t *testing.T) {
	h := a16lNew()
	h.setOpen(func(ctx context.Context, res string, w resources.Worker) error {
		if res == "B" {
			return errA16lInjected
		}
		return nil
	})
	rec := fxpooltest.NewRecorder()
	var p *workerpool.Pool[a16lDeps]
	app := h.app(&p, []workerpool.Option{workerpool.Workers(2), rec.Option()})
	if err := app.Start(context.Background()); !errors.Is(err, errA16lInjected) {
		t.Fatalf("start: %v", err)
	}
	var failedB int
	for _, e := range a16lEvents[workerpool.ResourceOpened](h) {
		if e.Resource == "B" {
			if e.Err == nil || !errors.Is(e.Err, errA16lInjected) {
				t.Errorf("ResourceOpened of B without the error: %+v", e)
			}
			if e.Level() != zapcore.WarnLevel {
				t.Errorf("failed ResourceOpened level %v", e.Level())
			}
			failedB++
		}
		if e.Resource == "C" {
			t.Errorf("C opened after B failed: %+v", e)
		}
	}
	if failedB == 0 {
		t.Errorf("no ResourceOpened event of the failed B")
	}
	for _, e := range a16lEvents[workerpool.ResourceClosed](h) {
		if e.Resource != "A" {
			t.Errorf("closed %s, which never opened", e.Resource)
		}
	}
	if n := len(a16lEvents[workerpool.ResourceClosed](h)); n != a16lCount(h.snapshot(), "open", "A", -1) {
		t.Errorf("%d ResourceClosed for %d opened A", n, a16lCount(h.snapshot(), "open", "A", -1))
	}
	for _, e := range a16lEvents[workerpool.WorkerOpened](h) {
		if e.Err == nil {
			t.Errorf("WorkerOpened without error: %+v", e)
		}
	}
	ps := a16lEvents[workerpool.PoolStarted](h)
	if len(ps) != 1 || ps[0].Err == nil || ps[0].Level() != zapcore.ErrorLevel {
		t.Errorf("PoolStarted %+v: want one, with the error, at level error", ps)
	}
	_ = app.Stop(context.Background())
	rec.Verify(t)
	h.checkLifecycle(t, true)
}
