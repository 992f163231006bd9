package workerpool_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

type msgID struct{}

// OnDropped identifies tasks via ctx; re-running a dropped Submit task in
// OnDropped must not race with Future.Wait, nor change what Wait returns.
func TestAttackOnDroppedRerunSubmitNoRace(t *testing.T) {
	var mu sync.Mutex
	seen := map[any]int{}
	var rerunErrs []error
	p, _ := atkStart[W](t, "dropper", workerpool.Workers(1), workerpool.QueueSize(16),
		workerpool.OnDropped(func(ctx context.Context, task func(context.Context, W) error) {
			err := task(ctx, W{}) // re-run the dropped task here
			mu.Lock()
			seen[ctx.Value(msgID{})]++
			rerunErrs = append(rerunErrs, err)
			mu.Unlock()
		}))
	release := atkBlock(t, p, 1)
	_ = release
	const n = 10
	futs := make([]*workerpool.Future[int], n)
	for i := range n {
		ctx := context.WithValue(context.Background(), msgID{}, i)
		f, err := workerpool.Submit(ctx, p, func(context.Context, W) (int, error) { return i + 100, nil })
		if err != nil {
			t.Fatal(err)
		}
		futs[i] = f
	}
	var wg sync.WaitGroup
	results := make([]error, n)
	vals := make([]int, n)
	for i := range n {
		wg.Add(2)
		go func() {
			defer wg.Done()
			ctx, c := context.WithTimeout(context.Background(), 5*time.Second)
			defer c()
			vals[i], results[i] = futs[i].Wait(ctx)
		}()
		go func() { // a second concurrent waiter
			defer wg.Done()
			ctx, c := context.WithTimeout(context.Background(), 5*time.Second)
			defer c()
			futs[i].Wait(ctx)
		}()
	}
	sctx, c := context.WithTimeout(context.Background(), 2*time.Second)
	defer c()
	go func() { time.Sleep(20 * time.Millisecond); release() }()
	_ = p.Stop(sctx, workerpool.Cancel)
	wg.Wait()
	for i := range n {
		if !errors.Is(results[i], workerpool.ErrClosed) || vals[i] != 0 {
			t.Errorf("future %d: Wait = %d, %v; want 0, ErrClosed (re-run in OnDropped must not change it)", i, vals[i], results[i])
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for i := range n {
		if seen[i] != 1 {
			t.Errorf("OnDropped saw task %d %d times", i, seen[i])
		}
	}
	for _, e := range rerunErrs {
		if e != nil {
			t.Errorf("re-run in OnDropped returned %v", e)
		}
	}
}

// TryGo'd task dropped: OnDropped ctx is Background (no values), Go task
// dropped gets ErrClosed at ErrorHandler; panics in OnDropped/ErrorHandler/
// Events are logged, not crashes, and every dropped task still reaches OnDropped.
func TestAttackPanickingCallbacks(t *testing.T) {
	var dropped, handled, events atomic.Int32
	p, app := atkStart[W](t, "panicky", workerpool.Workers(1), workerpool.QueueSize(8),
		workerpool.OnDropped(func(ctx context.Context, task func(context.Context, W) error) {
			dropped.Add(1)
			panic("ondropped panic")
		}),
		workerpool.ErrorHandler(func(err error) {
			handled.Add(1)
			panic("handler panic")
		}),
		workerpool.Events(func(workerpool.Event) {
			events.Add(1)
			panic("events panic")
		}))
	// errors to the handler: pool must go on
	for range 3 {
		if err := p.Go(context.Background(), func(context.Context, W) error { return errors.New("x") }); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Do(context.Background(), func(context.Context, W) error { return nil }); err != nil {
		t.Fatalf("Do after ErrorHandler panics = %v", err)
	}
	if handled.Load() != 3 {
		t.Errorf("ErrorHandler ran %d times, want 3", handled.Load())
	}
	if s := p.Stats(); s.Workers != 1 {
		t.Errorf("Workers = %d after handler panics", s.Workers)
	}
	atkBlock(t, p, 1)
	for range 4 {
		if !p.TryGo(func(context.Context, W) error { return nil }) {
			t.Fatal("TryGo refused")
		}
	}
	sctx, c := context.WithTimeout(context.Background(), 2*time.Second)
	defer c()
	err := p.Stop(sctx, workerpool.Cancel)
	if dropped.Load() != 4 {
		t.Errorf("OnDropped ran %d times, want 4 (a panic in it must not stop the others)", dropped.Load())
	}
	if handled.Load() != 3+4 {
		t.Errorf("ErrorHandler ran %d times, want 7 (3 errors + 4 ErrClosed)", handled.Load())
	}
	if events.Load() == 0 {
		t.Error("Events never called")
	}
	_ = err
	_ = app
}

// Drain runs every queued task; DropQueued none, but running tasks may
// finish with their ctx live until 2/5; Cancel cancels running at once.
func TestAttackStopPolicies(t *testing.T) {
	for _, pol := range []workerpool.StopPolicy{workerpool.Drain, workerpool.DropQueued, workerpool.Cancel} {
		t.Run(pol.String(), func(t *testing.T) {
			p, _ := atkStart[W](t, "pol", workerpool.Workers(1), workerpool.QueueSize(5))
			started := make(chan struct{})
			hold := make(chan struct{})
			var runningCtxEndedEarly atomic.Bool
			var cause atomic.Value
			runDone := make(chan struct{})
			if err := p.Go(context.Background(), func(ctx context.Context, _ W) error {
				close(started)
				select {
				case <-hold:
				case <-ctx.Done():
					runningCtxEndedEarly.Store(true)
					cause.Store(context.Cause(ctx))
				}
				close(runDone)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			atkWait(t, "start", 5*time.Second, started)
			var ran atomic.Int32
			for range 5 {
				if err := p.Go(context.Background(), func(context.Context, W) error { ran.Add(1); return nil }); err != nil {
					t.Fatal(err)
				}
			}
			stopDone := make(chan error, 1)
			stopStart := time.Now()
			go func() {
				ctx, c := context.WithTimeout(context.Background(), 5*time.Second)
				defer c()
				stopDone <- p.Stop(ctx, pol)
			}()
			// during stop, the pool refuses new tasks (no feeders)
			atkPoll(t, "refuses", 5*time.Second, func() bool {
				return errors.Is(p.Go(context.Background(), func(context.Context, W) error { return nil }), workerpool.ErrClosed)
			})
			switch pol {
			case workerpool.Cancel:
				atkWait(t, "running task cancelled at once", 1500*time.Millisecond, runDone)
				if !runningCtxEndedEarly.Load() {
					t.Error("Cancel: running ctx not cancelled")
				} else if c, _ := cause.Load().(error); !errors.Is(c, workerpool.ErrClosed) {
					t.Errorf("cause = %v, want ErrClosed", c)
				}
			default:
				time.Sleep(200 * time.Millisecond) // give a wrong implementation time to cancel
				if runningCtxEndedEarly.Load() {
					t.Errorf("%v: running task ctx cancelled %v into a 5s stop, before two fifths", pol, time.Since(stopStart))
				}
				close(hold)
			}
			select {
			case err := <-stopDone:
				if err != nil {
					t.Errorf("Stop = %v", err)
				}
			case <-time.After(6 * time.Second):
				t.Fatal("Stop hung")
			}
			want := int32(0)
			if pol == workerpool.Drain {
				want = 5
			}
			if ran.Load() != want {
				t.Errorf("%v ran %d queued tasks, want %d", pol, ran.Load(), want)
			}
			if s := p.Stats(); s.Workers != 0 || s.Busy != 0 || s.Queued != 0 {
				t.Errorf("Stats after Stop = %+v", s)
			}
		})
	}
}

// A task that ignores its ctx: Stop returns by 9/10 of the budget with an
// error naming pool and worker; the worker closes when it comes back.
func TestAttackStopHungTaskBudget(t *testing.T) {
	l := newLedger()
	p, _ := atkStart[AB](t, "hungpool", workerpool.Workers(2), abResources(l))
	hold := make(chan struct{})
	started := make(chan struct{})
	if err := p.Go(context.Background(), func(context.Context, AB) error { close(started); <-hold; return nil }); err != nil {
		t.Fatal(err)
	}
	atkWait(t, "start", 5*time.Second, started)
	budget := time.Second
	ctx, c := context.WithTimeout(context.Background(), budget)
	defer c()
	var err error
	// Returning at all is the point (the task never does until released);
	// when exactly is the machine's business.
	atkWait(t, "Stop with a hung task", 10*time.Second, func() chan struct{} {
		done := make(chan struct{})
		go func() { defer close(done); err = p.Stop(ctx, workerpool.Drain) }()
		return done
	}())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Stop = %v, want the budget's deadline as the cause", err)
	}
	if err == nil {
		t.Fatal("Stop = nil with a hung task")
	}
	msg := err.Error()
	if !strings.Contains(msg, "hungpool") || !strings.Contains(msg, "worker") {
		t.Errorf("Stop error does not name pool/worker: %q", msg)
	}
	t.Logf("stop error: %v", err)
	close(hold)
	atkPoll(t, "hung worker closes after coming back", 5*time.Second, func() bool {
		o, c := l.counts()
		return o == c
	})
	l.check(t)
	// second Stop returns the same result at once
	ctx2, c2 := context.WithTimeout(context.Background(), time.Second)
	defer c2()
	if err2 := p.Stop(ctx2, workerpool.Cancel); err2 == nil || err2.Error() != msg {
		t.Errorf("second Stop = %v, want the first's result", err2)
	}
}

// Restart after stop: a second Start fails with ErrClosed; tasks get ErrClosed.
func TestAttackRestartAfterStop(t *testing.T) {
	var p *workerpool.Pool[W]
	app := fx.New(fx.NopLogger, workerpool.Provide[W]("restart", workerpool.Workers(1)), fx.Populate(&p))
	ctx, c := context.WithTimeout(context.Background(), 5*time.Second)
	defer c()
	if err := p.Go(ctx, func(context.Context, W) error { return nil }); !errors.Is(err, workerpool.ErrNotStarted) {
		t.Errorf("Go before start = %v, want ErrNotStarted", err)
	}
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := app.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	err := app.Start(ctx)
	if !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("second Start = %v, want ErrClosed", err)
	}
	if err := p.Do(ctx, func(context.Context, W) error { return nil }); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("Do after restart attempt = %v, want ErrClosed", err)
	}
	if err := p.Resize(2); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("Resize after stop = %v, want ErrClosed", err)
	}
	if err := p.AddFeeder(func(context.Context) error { return nil }); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("AddFeeder after stop = %v, want ErrClosed", err)
	}
	_ = app.Stop(ctx)
}
