package workerpool_test

// Edges the peers' suites probe less directly: Wait waiting for the tasks
// a failure did not stop, counters seen from callbacks, accounting under
// cancellation races, resize storms, elastic pools without a queue, stops
// bounded by their budget.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

// errgroup: Wait returns only once every task has returned, even after the
// first failure; a task that ignores the cancellation is waited for.
func TestAttack15PeerGroupWaitWaitsForAll(t *testing.T) {
	e := a15New(t, workerpool.Workers(2))
	g, _ := e.P.Group(context.Background())
	var slowDone atomic.Bool
	slowStarted := make(chan struct{})
	g.Go(func(context.Context, a15Deps) error {
		close(slowStarted)
		time.Sleep(50 * time.Millisecond) // ignores its context
		slowDone.Store(true)
		return nil
	})
	a15Recv(t, slowStarted, "slow task")
	g.Go(func(context.Context, a15Deps) error { return errA15 })
	if err := a15Recv(t, a15Go(g.Wait), "Wait"); !errors.Is(err, errA15) {
		t.Errorf("Wait = %v", err)
	}
	if !slowDone.Load() {
		t.Errorf("Wait returned before a running task of the group finished")
	}
}

// "The task it hears of is counted in Pool.Stats already" (ErrorHandler)
// and "counts before its submitter hears" (GoReport): the counters, read
// from the callback, include the task.
func TestAttack15PeerStatsCountedBeforeCallbacks(t *testing.T) {
	var p *workerpool.Pool[a15Deps]
	var handled atomic.Uint64
	var bad atomic.Int32
	var msg atomic.Value
	e := a15New(t, workerpool.Workers(2), workerpool.ErrorHandler(func(err error) {
		n := handled.Add(1)
		if s := p.Stats(); s.Failed < n || s.Done < n {
			bad.Add(1)
			msg.Store(fmt.Sprintf("ErrorHandler heard of failure %d; stats %+v", n, s))
		}
	}))
	p = e.P
	const n = 3000
	for i := range n {
		if err := e.P.Go(context.Background(), func(context.Context, a15Deps) error {
			if i%3 == 0 {
				return errA15
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	var reported atomic.Uint64
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		if err := e.P.GoReport(context.Background(), a15Noop, func(workerpool.Outcome, error) {
			defer wg.Done()
			r := reported.Add(1)
			if s := p.Stats(); s.Done < r {
				bad.Add(1)
				msg.Store(fmt.Sprintf("report %d heard before it counted; stats %+v", r, s))
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	a15Recv(t, done, "reports")
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	if bad.Load() != 0 {
		t.Errorf("%d callbacks ran before their task counted; last: %v", bad.Load(), msg.Load())
	}
	if handled.Load() != n/3 {
		t.Errorf("ErrorHandler heard %d, want %d", handled.Load(), n/3)
	}
}

// pond's CanceledTasks, fxpool's Dropped: Do callers whose contexts end at
// random moments; afterwards Done counts exactly the tasks that ran and
// Done + Dropped every task accepted.
func TestAttack15PeerCancelRaceAccounting(t *testing.T) {
	e := a15New(t, workerpool.Workers(2), workerpool.QueueSize(4))
	var ran, accepted atomic.Int64
	var wg sync.WaitGroup
	for c := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(c), 7))
			for range 150 {
				ctx, cancel := context.WithCancel(context.Background())
				if r.IntN(2) == 0 {
					d := time.Duration(r.IntN(50)) * time.Microsecond
					go func() {
						time.Sleep(d)
						cancel()
					}()
				}
				err := e.P.Do(ctx, func(context.Context, a15Deps) error {
					ran.Add(1)
					time.Sleep(20 * time.Microsecond)
					return nil
				})
				cancel()
				// Do refuses before accepting only for an already ended context.
				if err == nil || errors.Is(err, context.Canceled) {
					accepted.Add(1)
				} else {
					t.Errorf("Do: %v", err)
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	a15Recv(t, done, "callers")
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	s := e.P.Stats()
	if int64(s.Done) != ran.Load() {
		t.Errorf("Done %d, but %d tasks ran", s.Done, ran.Load())
	}
	// A Do whose context had ended before it was called is refused, not
	// accepted, so Done+Dropped may be below the calls: it must not exceed.
	if int64(s.Done+s.Dropped) > accepted.Load() {
		t.Errorf("Done %d + Dropped %d > %d calls", s.Done, s.Dropped, accepted.Load())
	}
	if len(e.Dropped()) != 0 {
		t.Errorf("OnDropped saw %d tasks whose submitters gave up", len(e.Dropped()))
	}
	e.VerifyResources()
}

// ants Tune and pond Resize in storms: resizes in quick succession, with
// slow opens, converge on the last size; every resource closes once.
func TestAttack15PeerResizeStorm(t *testing.T) {
	var opened, closed atomic.Int32
	var p *workerpool.Pool[*a15Res]
	app := fx.New(
		fx.NopLogger,
		workerpool.Provide[*a15Res]("storm",
			workerpool.Workers(3),
			workerpool.Resources(resources.PerWorker(func(ctx context.Context, w resources.Worker) (*a15Res, func(), error) {
				select {
				case <-time.After(time.Duration(w.ID%4) * time.Millisecond):
				case <-ctx.Done():
					return nil, nil, ctx.Err()
				}
				opened.Add(1)
				return &a15Res{W: w}, func() { closed.Add(1) }, nil
			})),
		),
		fx.Populate(&p),
	)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = app.Stop(ctx)
		}
	}()
	r := rand.New(rand.NewPCG(1, 2))
	var wg sync.WaitGroup
	stopLoad := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stopLoad:
					return
				default:
				}
				_ = p.Do(context.Background(), func(_ context.Context, res *a15Res) error {
					res.enter()
					defer res.leave()
					return nil
				})
			}
		}()
	}
	last := 0
	for range 200 {
		last = 1 + r.IntN(12)
		if err := p.Resize(last); err != nil {
			t.Fatalf("Resize(%d): %v", last, err)
		}
		if r.IntN(4) == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	if c := p.Capacity(); c.Workers != last {
		t.Errorf("capacity %+v after the last Resize(%d)", c, last)
	}
	a15Eventually(t, fmt.Sprintf("storm converges on %d workers", last), func() bool {
		s := p.Stats()
		return s.Workers == last && s.Opening == 0 && s.Closing == 0 && int(opened.Load()-closed.Load()) == last
	})
	close(stopLoad)
	wg.Wait()
	if err := app.Stop(ctx); err != nil {
		t.Errorf("stop: %v", err)
	}
	stopped = true
	if opened.Load() != closed.Load() {
		t.Errorf("opened %d, closed %d", opened.Load(), closed.Load())
	}
}

// ants Tune down while every worker is busy: the removed workers finish
// their tasks, and from then on no more tasks run at once than the new size.
func TestAttack15PeerResizeDownWhileBusy(t *testing.T) {
	e := a15New(t, workerpool.Workers(4), workerpool.QueueSize(64))
	gate := a15NewGate(t)
	var running atomic.Int32
	var finished atomic.Int32
	for range 4 {
		if err := e.P.Go(context.Background(), func(c context.Context, _ a15Deps) error {
			running.Add(1)
			defer running.Add(-1)
			defer finished.Add(1)
			return gate.Wait(c)
		}); err != nil {
			t.Fatal(err)
		}
	}
	a15Eventually(t, "4 running", func() bool { return running.Load() == 4 })
	if err := e.P.Resize(1); err != nil {
		t.Fatal(err)
	}
	var active, peak atomic.Int32
	for range 40 {
		if err := e.P.Go(context.Background(), func(context.Context, a15Deps) error {
			n := active.Add(1)
			defer active.Add(-1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			time.Sleep(100 * time.Microsecond)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	gate.Open()
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	if finished.Load() != 4 {
		t.Errorf("%d of 4 running tasks finished", finished.Load())
	}
	if p := peak.Load(); p != 1 {
		t.Errorf("after Resize(1), %d tasks ran at once", p)
	}
	e.VerifyResources()
}

// Elastic with no queue: fx.New refuses the pair, naming both options (the
// documentation of Elastic and QueueSize does not say so).
func TestAttack15PeerElasticNoQueue(t *testing.T) {
	var p *workerpool.Pool[a15Deps]
	app := fx.New(fx.NopLogger,
		workerpool.Provide[a15Deps]("peer",
			workerpool.Resources(resources.PerWorker(func() *a15Res { return &a15Res{} })),
			workerpool.Elastic(0, 2, 50*time.Millisecond), workerpool.QueueSize(0)),
		fx.Populate(&p))
	err := app.Err()
	if err == nil || !strings.Contains(err.Error(), "Elastic") || !strings.Contains(err.Error(), "QueueSize(0)") {
		t.Errorf("fx.New = %v, want an error naming Elastic and QueueSize(0)", err)
	}
}

// MaxTasksPerWorker with fire-and-forget tasks, which the counters batch:
// the recycle still comes after every n tasks.
func TestAttack15PeerMaxTasksPerWorkerWithGo(t *testing.T) {
	e := a15New(t, workerpool.Workers(1), workerpool.MaxTasksPerWorker(5), workerpool.QueueSize(64))
	gens := make([]int, 38) // not a multiple of 5: no question of a recycle after the last
	gate := a15NewGate(t)
	if err := e.P.Go(context.Background(), func(c context.Context, _ a15Deps) error { return gate.Wait(c) }); err != nil {
		t.Fatal(err)
	}
	for i := range 37 {
		if err := e.P.Go(context.Background(), func(_ context.Context, d a15Deps) error {
			gens[i+1] = d.W.Generation
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	gate.Open()
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < 38; i++ {
		if gens[i] != i/5 {
			t.Errorf("Go task %d ran on generation %d, want %d", i, gens[i], i/5)
			break
		}
	}
	if s := e.P.Stats(); s.Recycles != 7 {
		t.Errorf("Recycles %d, want 7", s.Recycles)
	}
	e.VerifyResources()
}

// MaxRestarts, the supervisor's intensity: past it the pool fails, refuses
// tasks, reports its queued ones and asks fx to stop with exit code 1.
func TestAttack15PeerMaxRestartsFailsPool(t *testing.T) {
	e := a15New(t, workerpool.Workers(1), workerpool.MaxRestarts(2, time.Hour), workerpool.QueueSize(8))
	wait := e.App.Wait()
	for i := range 3 {
		err := e.P.Do(context.Background(), func(context.Context, a15Deps) error { panic(fmt.Sprint("boom ", i)) })
		var pe *workerpool.PanicError
		if !errors.As(err, &pe) {
			t.Errorf("Do %d = %v, want *PanicError", i, err)
		}
	}
	sig := a15Recv(t, wait, "the pool asking fx to stop")
	if sig.ExitCode != 1 {
		t.Errorf("exit code %d, want 1", sig.ExitCode)
	}
	a15Eventually(t, "the failed pool refuses", func() bool {
		return errors.Is(e.P.Go(context.Background(), a15Noop), workerpool.ErrClosed)
	})
	if err := e.P.Do(context.Background(), a15Noop); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("Do on a failed pool = %v", err)
	}
	_ = e.Stop()
	e.VerifyResources()
}

// GoReport's report comes exactly once per accepted task, whatever the
// outcome, with a Cancel stop racing the submissions.
func TestAttack15PeerGoReportExactlyOnce(t *testing.T) {
	e := a15New(t, workerpool.Workers(3), workerpool.QueueSize(16), workerpool.OnStop(workerpool.Cancel))
	const n = 3000
	counts := make([]atomic.Int32, n)
	outcomes := make([]atomic.Int32, n)
	var accepted atomic.Int32
	var wg sync.WaitGroup
	var stopping <-chan error
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 4 {
				if i == n/2 {
					stopping = a15Go(e.Stop)
				}
				err := e.P.GoReport(context.Background(), func(ctx context.Context, _ a15Deps) error {
					switch i % 4 {
					case 1:
						return errA15
					case 2:
						panic("p")
					case 3:
						select {
						case <-ctx.Done():
							return ctx.Err()
						case <-time.After(time.Millisecond):
						}
					}
					return nil
				}, func(o workerpool.Outcome, err error) {
					counts[i].Add(1)
					outcomes[i].Store(int32(o))
				})
				if err == nil {
					accepted.Add(1)
				} else if !errors.Is(err, workerpool.ErrClosed) {
					t.Errorf("GoReport: %v", err)
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	a15Recv(t, done, "submitters")
	if err := a15Recv(t, stopping, "stop"); err != nil {
		t.Errorf("stop: %v", err)
	}
	reported := 0
	for i := range n {
		c := counts[i].Load()
		if c > 1 {
			t.Errorf("task %d reported %d times", i, c)
		}
		if c == 1 {
			reported++
			o := workerpool.Outcome(outcomes[i].Load())
			if o == workerpool.Succeeded && i%4 != 0 && i%4 != 3 || o == workerpool.Panicked && i%4 != 2 || o == workerpool.Failed && i%4 != 1 && i%4 != 3 {
				t.Errorf("task %d (kind %d) reported %v", i, i%4, o)
			}
		}
	}
	if reported != int(accepted.Load()) {
		t.Errorf("%d tasks accepted, %d reported", accepted.Load(), reported)
	}
	if s := e.P.Stats(); int(s.Done+s.Dropped) != int(accepted.Load()) {
		t.Errorf("stats %+v, accepted %d", s, accepted.Load())
	}
}

// Map with InFlight(1) runs one element at a time, whatever the workers;
// a panicking f yields a *PanicError and the loop goes on; a panic in the
// loop's body leaves nothing running.
func TestAttack15PeerMapInFlightAndPanics(t *testing.T) {
	e := a15New(t, workerpool.Workers(4))
	var active, peak atomic.Int32
	in := func(yield func(int) bool) {
		for i := range 50 {
			if !yield(i) {
				return
			}
		}
	}
	i := 0
	for v, err := range workerpool.Map(context.Background(), e.P, in, func(_ context.Context, _ a15Deps, x int) (int, error) {
		n := active.Add(1)
		defer active.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(100 * time.Microsecond)
		if x == 10 {
			panic("element ten")
		}
		return x, nil
	}, workerpool.InFlight(1)) {
		var pe *workerpool.PanicError
		if i == 10 {
			if !errors.As(err, &pe) || pe.Value != "element ten" {
				t.Errorf("element 10: %v", err)
			}
		} else if err != nil || v != i {
			t.Errorf("element %d: %v %v", i, v, err)
		}
		i++
	}
	if i != 50 || peak.Load() != 1 {
		t.Errorf("%d results, peak %d in flight; want 50, 1", i, peak.Load())
	}

	var running atomic.Int32
	func() {
		defer func() {
			if r := recover(); r != "body" {
				t.Errorf("recovered %v", r)
			}
		}()
		inf := func(yield func(int) bool) {
			for i := 0; ; i++ {
				if !yield(i) {
					return
				}
			}
		}
		for range workerpool.Map(context.Background(), e.P, inf, func(context.Context, a15Deps, int) (int, error) {
			running.Add(1)
			defer running.Add(-1)
			time.Sleep(time.Millisecond)
			return 0, nil
		}) {
			panic("body")
		}
	}()
	if r := running.Load(); r != 0 {
		t.Errorf("%d f calls running after a panic in Map's body", r)
	}
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
}

// "A task or cleanup that ignores its context does not hold the stop past
// nine tenths: the stop returns an error naming the worker ... and that
// worker closes on its own when it comes back."
func TestAttack15PeerStopBoundedByHungTask(t *testing.T) {
	e := a15New(t, workerpool.Workers(2))
	gate := a15NewGate(t)
	started := make(chan struct{})
	if err := e.P.Go(context.Background(), func(_ context.Context, d a15Deps) error {
		close(started)
		<-gate.C() // ignores its context
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	a15Recv(t, started, "hung task")
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := a15Recv(t, a15Go(func() error { return e.P.Stop(ctx, workerpool.Drain) }), "Stop with a hung task")
	if err == nil || !strings.Contains(err.Error(), "worker") {
		t.Errorf("Stop = %v, want an error naming the stuck worker", err)
	}
	gate.Open()
	a15Eventually(t, "the hung worker closes when it comes back", func() bool {
		for _, r := range e.Opened() {
			if r.closed.Load() != 1 {
				return false
			}
		}
		return true
	})
	_ = e.Stop()
	e.VerifyResources()
}

// Drain with a budget: at two fifths the running task's context ends with
// ErrClosed and the tasks still queued are reported as not run.
func TestAttack15PeerDrainBudgetReportsQueued(t *testing.T) {
	e := a15New(t, workerpool.Workers(1), workerpool.QueueSize(8))
	started := make(chan struct{})
	var cause error
	if err := e.P.Go(context.Background(), func(c context.Context, _ a15Deps) error {
		close(started)
		<-c.Done()
		cause = context.Cause(c)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	a15Recv(t, started, "running task")
	var ran atomic.Int32
	outcomes := make(chan workerpool.Outcome, 5)
	for range 5 {
		if err := e.P.GoReport(context.Background(), func(context.Context, a15Deps) error { ran.Add(1); return nil },
			func(o workerpool.Outcome, _ error) { outcomes <- o }); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := a15Recv(t, a15Go(func() error { return e.P.Stop(ctx, workerpool.Drain) }), "Stop"); err != nil {
		t.Errorf("Stop = %v", err)
	}
	if !errors.Is(cause, workerpool.ErrClosed) {
		t.Errorf("running task's cause %v, want ErrClosed", cause)
	}
	for range 5 {
		if o := a15Recv(t, outcomes, "report"); o != workerpool.NotRun {
			t.Errorf("queued task %v, want NotRun", o)
		}
	}
	if ran.Load() != 0 {
		t.Errorf("%d queued tasks ran", ran.Load())
	}
	if len(e.Dropped()) != 5 {
		t.Errorf("OnDropped saw %d, want 5", len(e.Dropped()))
	}
	e.VerifyResources()
}

// A task that stops its own pool (a fatal condition found by a task): the
// stop cannot wait for the task that called it, but it must not hang: it is
// bounded by nine tenths of its budget like any stuck task.
func TestAttack15PeerStopFromInsideTask(t *testing.T) {
	e := a15New(t, workerpool.Workers(2))
	res := make(chan error, 1)
	if err := e.P.Go(context.Background(), func(context.Context, a15Deps) error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		res <- e.P.Stop(ctx, workerpool.DropQueued)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	err := a15Recv(t, res, "Stop called from a task of the pool")
	t.Logf("Stop from inside a task: %v", err)
	if err := e.P.Go(context.Background(), a15Noop); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("Go after the stop = %v", err)
	}
	a15Eventually(t, "every resource closed", func() bool {
		for _, r := range e.Opened() {
			if r.closed.Load() != 1 {
				return false
			}
		}
		return true
	})
	_ = e.Stop()
	e.VerifyResources()
}

// A stop before the start: "A pool that has not started is simply closed";
// submitters then get ErrClosed and the start fails with ErrClosed.
func TestAttack15PeerStopBeforeStart(t *testing.T) {
	e := a15Build(t, workerpool.Workers(2))
	ctx, cancel := context.WithTimeout(context.Background(), a15Guard)
	defer cancel()
	if err := e.P.Stop(ctx, workerpool.Drain); err != nil {
		t.Errorf("Stop before start = %v", err)
	}
	if err := e.P.Go(ctx, a15Noop); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("Go after a stop before start = %v, want ErrClosed", err)
	}
	if err := e.App.Start(ctx); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("app.Start after the pool stopped = %v, want ErrClosed", err)
	}
	_ = e.App.Stop(ctx)
	if n := len(e.Opened()); n != 0 {
		t.Errorf("%d resources opened", n)
	}
}

// panic(err): errors.Is sees through the *PanicError.
func TestAttack15PeerPanicWithError(t *testing.T) {
	e := a15New(t, workerpool.Workers(1))
	err := e.P.Do(context.Background(), func(context.Context, a15Deps) error { panic(errA15) })
	var pe *workerpool.PanicError
	if !errors.As(err, &pe) || !errors.Is(err, errA15) {
		t.Errorf("Do = %v, want a *PanicError that Is errA15", err)
	}
}
