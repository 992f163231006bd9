package workerpool_test

// Round 3 of adversarial tests: the three that failed, each a documented
// promise (or an invariant the brief asked for) that did not hold, kept as
// regression tests of their fixes.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

// TestAttack3CtxEndedWhileQueuedIsAccounted: a task accepted by Do, Submit
// and GoReport whose submitter's context ends while it is queued does not
// run; once the pool has stopped, every accepted task is counted either as
// done or as dropped, and none stays queued.
func TestAttack3CtxEndedWhileQueuedIsAccounted(t *testing.T) {
	p, app := atkStart[W](t, "a3ctxq", workerpool.Workers(1), workerpool.QueueSize(8))
	release := atkBlock(t, p, 1)
	ctx, cancel := context.WithCancelCause(context.Background())
	why := errors.New("client left")
	var ran atomic.Int32
	task := func(context.Context, W) error { ran.Add(1); return nil }
	doErr := make(chan error, 1)
	go func() { doErr <- p.Do(ctx, task) }()
	f, err := workerpool.Submit(ctx, p, func(ctx context.Context, w W) (int, error) { return 1, task(ctx, w) })
	if err != nil {
		t.Fatal(err)
	}
	rep := make(chan error, 1)
	if err := p.GoReport(ctx, task, func(o workerpool.Outcome, err error) {
		if o != workerpool.NotRun {
			err = fmt.Errorf("outcome %v: %w", o, err)
		}
		rep <- err
	}); err != nil {
		t.Fatal(err)
	}
	atkPoll(t, "3 queued", a3Hang, func() bool { return p.Stats().Queued == 3 })
	cancel(why)
	within(t, "Do", func() {
		if err := <-doErr; !errors.Is(err, why) && !errors.Is(err, context.Canceled) {
			t.Errorf("Do = %v, want the cause", err)
		}
	})
	release()
	within(t, "Future", func() {
		if _, err := f.Wait(context.Background()); !errors.Is(err, why) && !errors.Is(err, context.Canceled) {
			t.Errorf("Future.Wait = %v, want the cause", err)
		}
	})
	within(t, "report", func() {
		if err := <-rep; !errors.Is(err, why) {
			t.Errorf("report = %v, want NotRun with the cause", err)
		}
	})
	if err := app.Stop(a3Ctx(t, a3Hang)); err != nil {
		t.Fatal(err)
	}
	if ran.Load() != 0 {
		t.Errorf("%d tasks ran after their context ended", ran.Load())
	}
	s := p.Stats()
	t.Logf("stats %+v", s)
	if s.Queued != 0 {
		t.Errorf("Queued = %d after stop", s.Queued)
	}
	if s.Done+s.Dropped != 4 {
		t.Errorf("Done %d + Dropped %d != 4 accepted (1 blocker + 3 whose context ended): tasks unaccounted for", s.Done, s.Dropped)
	}
}

// TestAttack3OptionsFromPanicIsAnError: "Bad input gets a clear error,
// never a hang or a panic of the pool: options, constructors of every
// shape"; a panic in a per-worker constructor is an error naming it, and
// one in a callback is logged, never a crash. OptionsFrom's f is the user's
// code that the pool runs while fx.New builds it; its panic escapes
// fx.New instead of failing it with an error naming the pool and the
// option.
func TestAttack3OptionsFromPanicIsAnError(t *testing.T) {
	var app *fx.App
	pan, _ := a3Call(t, "fx.New", func() error {
		app = fx.New(fx.NopLogger,
			fx.Supply(a3Config{}),
			workerpool.Provide[W]("a3bad", workerpool.OptionsFrom(func(a3Config) []workerpool.Option { panic("config is bad") })),
			fx.Invoke(func(*workerpool.Pool[W]) {}))
		return nil
	})
	if pan != nil {
		t.Fatalf("fx.New panicked (the panic of OptionsFrom's f escaped): %v", pan)
	}
	err := app.Err()
	if err == nil || !strings.Contains(err.Error(), "a3bad") || !strings.Contains(err.Error(), "config is bad") {
		t.Errorf("fx.New() = %v, want an error naming the pool and the panic", err)
	}
}

// TestAttack3SecondStopErrorNamesTheStuckWorker: Stop "blocks until the
// pool has stopped or nine tenths of ctx's budget are gone, and returns the
// joined teardown errors, or an error naming every worker still stuck and
// what it is stuck in"; "a second Stop" waits for the stop under way. A
// second Stop whose budget runs out while a task holds the pool returns a
// bare "context deadline exceeded", which names neither the pool nor the
// worker nor the task it is stuck in (the first stop, with a deadline,
// names "worker 0: stuck in a task that ignores its context").
func TestAttack3SecondStopErrorNamesTheStuckWorker(t *testing.T) {
	p, _ := atkStart[W](t, "a3stop2name", workerpool.Workers(1))
	release := make(chan struct{})
	running := make(chan struct{})
	if err := p.Go(context.Background(), func(context.Context, W) error {
		close(running)
		<-release // ignores its context
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	<-running
	first := make(chan error, 1)
	go func() { first <- p.Stop(context.Background(), workerpool.Drain) }()
	atkPoll(t, "the first stop refuses tasks", a3Hang, func() bool {
		return errors.Is(p.Go(context.Background(), func(context.Context, W) error { return nil }), workerpool.ErrClosed)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var err error
	within(t, "second Stop", func() { err = p.Stop(ctx, workerpool.Drain) })
	close(release)
	within(t, "first Stop", func() { <-first })
	if err == nil {
		t.Fatal("second Stop = nil while a task held the pool")
	}
	for _, want := range []string{"a3stop2name", "worker 0"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("second Stop = %q: does not name %q", err, want)
		}
	}
}
