package workerpool_test

// Round 3 of adversarial tests: stops without a deadline ("a stop without
// a deadline waits for everything") where "everything" could be forever —
// a pool with no worker to drain its queue — and random stops under load.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

// a3Settle counts what became of each accepted task, from its submitter's
// side: every accepted task must be settled exactly once.
type a3Settle struct {
	mu      sync.Mutex
	ran     map[int]int
	told    map[int]int // told it did not run (ErrClosed) or its outcome
	next    int
	accepts map[int]bool
}

func newA3Settle() *a3Settle {
	return &a3Settle{ran: map[int]int{}, told: map[int]int{}, accepts: map[int]bool{}}
}

func (s *a3Settle) id() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next++
	return s.next
}

func (s *a3Settle) accepted(id int) { s.mu.Lock(); s.accepts[id] = true; s.mu.Unlock() }
func (s *a3Settle) run(id int)      { s.mu.Lock(); s.ran[id]++; s.mu.Unlock() }
func (s *a3Settle) tell(id int)     { s.mu.Lock(); s.told[id]++; s.mu.Unlock() }

// TestAttack3DrainWithoutDeadlineNoWorker: Stop(context.Background(),
// Drain) "waits for everything"; when no worker can ever take the queued
// tasks — the only worker's reopen keeps failing, an elastic pool at zero
// — the stop must still end: the stop ends the retries, and the queued
// tasks are reported as not run (ErrClosed).
func TestAttack3DrainWithoutDeadlineNoWorker(t *testing.T) {
	t.Run("reopen fails forever", func(t *testing.T) {
		var p *workerpool.Pool[*ResA]
		var failedOpens atomic.Int32
		app := fx.New(fx.NopLogger,
			workerpool.Provide[*ResA]("a3reopen", workerpool.Workers(1), workerpool.QueueSize(4),
				workerpool.Events(func(e workerpool.Event) {
					if o, ok := e.(workerpool.WorkerOpened); ok && o.Err != nil {
						failedOpens.Add(1)
					}
				}),
				workerpool.RestartBackoff(time.Millisecond, 5*time.Millisecond),
				workerpool.Resources(resources.PerWorker(func(w W) (*ResA, error) {
					if w.Generation > 0 {
						return nil, errors.New("the server is gone")
					}
					return &ResA{w}, nil
				}))),
			fx.Populate(&p))
		if err := app.Start(a3Ctx(t, a3Hang)); err != nil {
			t.Fatal(err)
		}
		if err := p.Do(context.Background(), func(context.Context, *ResA) error {
			return resources.ErrBroken
		}); !errors.Is(err, resources.ErrBroken) {
			t.Fatalf("Do = %v", err)
		}
		futs := make([]*workerpool.Future[int], 3)
		for i := range futs {
			f, err := workerpool.Submit(context.Background(), p, func(context.Context, *ResA) (int, error) { return i, nil })
			if err != nil {
				t.Fatal(err)
			}
			futs[i] = f
		}
		atkPoll(t, "the worker retries", a3Hang, func() bool { return failedOpens.Load() >= 2 })
		var err error
		within(t, "Stop(Background, Drain) with no worker able to open", func() { err = p.Stop(context.Background(), workerpool.Drain) })
		t.Logf("Stop = %v", err)
		for i, f := range futs {
			if _, err := f.Wait(a3Ctx(t, a3Hang)); !errors.Is(err, workerpool.ErrClosed) {
				t.Errorf("future %d: %v, want ErrClosed", i, err)
			}
		}
		if s := p.Stats(); s.Done != 1 || s.Dropped != 3 {
			t.Errorf("Stats %+v: want Done 1, Dropped 3", s)
		}
		within(t, "app.Stop", func() { _ = app.Stop(a3Ctx(t, a3Hang)) })
	})
	t.Run("elastic at zero", func(t *testing.T) {
		for i := range 30 {
			var p *workerpool.Pool[W]
			var ran atomic.Int32
			app := newAtkApp(t, &p, "a3el0", workerpool.Elastic(0, 2, time.Millisecond), workerpool.QueueSize(8))
			if err := app.Start(a3Ctx(t, a3Hang)); err != nil {
				t.Fatal(err)
			}
			if i%2 == 1 {
				// let the pool grow and retire back to zero
				_ = p.Do(context.Background(), func(context.Context, W) error { return nil })
				atkPoll(t, "retired to zero", a3Hang, func() bool { return p.Stats().Workers == 0 })
			}
			n := 1 + i%4
			errs := make(chan error, n)
			for range n {
				go func() {
					errs <- p.Do(context.Background(), func(context.Context, W) error { ran.Add(1); return nil })
				}()
			}
			atkPoll(t, "every Do accepted", a3Hang, func() bool {
				s := p.Stats()
				return s.Queued+s.Busy+int(s.Done)-i%2 == n
			})
			var err error
			within(t, fmt.Sprintf("#%d Stop(Background, Drain) of an elastic pool", i), func() { err = p.Stop(context.Background(), workerpool.Drain) })
			if err != nil {
				t.Errorf("#%d: Stop = %v", i, err)
			}
			okN := 0
			for range n {
				var e error
				within(t, "Do", func() { e = <-errs })
				switch {
				case e == nil:
					okN++
				case errors.Is(e, workerpool.ErrClosed):
				default:
					t.Errorf("#%d: Do = %v", i, e)
				}
			}
			if int(ran.Load()) != okN {
				t.Errorf("#%d: %d ran, %d Do returned nil", i, ran.Load(), okN)
			}
			within(t, "app.Stop", func() { _ = app.Stop(a3Ctx(t, a3Hang)) })
			if s := p.Stats(); s.Done+s.Dropped != uint64(n+i%2) {
				t.Errorf("#%d: Done %d + Dropped %d != %d accepted", i, s.Done, s.Dropped, n+i%2)
			}
		}
	})
}

// TestAttack3ChaosExactlyOnce: submitters on every API, tasks that succeed,
// fail, panic, Goexit or break their worker, Resize and recycling going on,
// and a stop with a random policy at a random moment, racing the app's stop.
// Every accepted task is settled exactly once from its submitter's side
// (it ran, or it was told ErrClosed / NotRun); Stats agree: Done counts
// those that ran, Dropped those told, Failed and Panics match; every
// resource generation closes exactly once, in reverse order.
func TestAttack3ChaosExactlyOnce(t *testing.T) {
	rounds := 60
	if testing.Short() {
		rounds = 5
	}
	for round := range rounds {
		a3ChaosRound(t, round)
		if t.Failed() {
			return
		}
	}
}

func a3ChaosRound(t *testing.T, round int) {
	r := rand.New(rand.NewPCG(uint64(round), 7))
	l := newLedger()
	st := newA3Settle()
	var failedN, panicsN atomic.Int64
	var dropped atomic.Int64
	policy := []workerpool.StopPolicy{workerpool.Drain, workerpool.Cancel, workerpool.DropQueued}[r.IntN(3)]
	var p *workerpool.Pool[AB]
	size := workerpool.Workers(1 + r.IntN(3))
	elastic := round%3 == 2
	if elastic {
		size = workerpool.Elastic(r.IntN(2), 3, time.Millisecond)
	}
	extra := []workerpool.Option{}
	if round%4 == 1 {
		extra = append(extra, workerpool.LockOSThread())
	}
	if round%5 == 3 {
		extra = append(extra, workerpool.CheckIdle(time.Microsecond), workerpool.MaxWorkerAge(time.Millisecond))
	}
	app := fx.New(fx.NopLogger,
		workerpool.Provide[AB]("a3chaos", append(extra,
			size, workerpool.QueueSize(r.IntN(6)+a3B2i(elastic)), abResources(l),
			workerpool.MaxTasksPerWorker(1+r.IntN(5)),
			workerpool.RestartBackoff(time.Millisecond, 2*time.Millisecond),
			workerpool.ErrorHandler(func(error) {}),
			workerpool.OnDropped(func(ctx context.Context, _ func(context.Context, AB) error) {
				dropped.Add(1)
				if id, ok := ctx.Value(a3Key{}).(int); ok {
					_ = id // TryGo tasks carry no context value
				}
			}),
		)...),
		fx.Populate(&p))
	if err := app.Err(); err != nil {
		t.Fatal(err)
	}
	if err := app.Start(a3Ctx(t, a3Hang)); err != nil {
		t.Fatal(err)
	}
	// task makes a task with id of the given behaviour.
	task := func(id, kind int) func(context.Context, AB) error {
		return func(ctx context.Context, _ AB) error {
			st.run(id)
			switch kind {
			case 1:
				failedN.Add(1)
				return errors.New("fails")
			case 2:
				failedN.Add(1)
				panicsN.Add(1)
				panic("boom")
			case 3:
				failedN.Add(1)
				panicsN.Add(1)
				runtime.Goexit()
			case 4:
				failedN.Add(1)
				return resources.ErrBroken
			case 5:
				select {
				case <-ctx.Done():
				case <-time.After(time.Millisecond):
				}
			}
			return nil
		}
	}
	stopAt := 1 + r.IntN(200)
	var wg sync.WaitGroup
	var submitted atomic.Int64
	stopped := make(chan error, 2)
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rg := rand.New(rand.NewPCG(uint64(round), uint64(g)))
			for range 60 {
				if submitted.Add(1) == int64(stopAt) {
					go func() {
						ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
						defer cancel()
						stopped <- p.Stop(ctx, policy)
					}()
				}
				id, kind := st.id(), rg.IntN(6)
				ctx := context.WithValue(context.Background(), a3Key{}, id)
				switch rg.IntN(7) {
				case 0:
					if p.Go(ctx, task(id, kind)) == nil {
						st.accepted(id)
					}
				case 1:
					if p.TryGo(task(id, kind)) {
						st.accepted(id)
					}
				case 2:
					_ = p.Do(ctx, task(id, kind))
				case 3:
					f, err := workerpool.Submit(ctx, p, func(ctx context.Context, d AB) (int, error) { return id, task(id, kind)(ctx, d) })
					if err != nil {
						continue
					}
					st.accepted(id)
					v, err := f.Wait(context.Background())
					if errors.Is(err, workerpool.ErrClosed) && v == 0 {
						st.mu.Lock()
						ran := st.ran[id]
						st.mu.Unlock()
						if ran == 0 {
							st.tell(id)
						}
					}
				case 4:
					if p.GoReport(ctx, task(id, kind), func(o workerpool.Outcome, err error) {
						if o == workerpool.NotRun {
							st.tell(id)
						}
					}) == nil {
						st.accepted(id)
					}
				case 5:
					n := 1 + rg.IntN(3)
					if err := p.Resize(n); err != nil && !errors.Is(err, workerpool.ErrClosed) && !elastic {
						t.Errorf("Resize(%d) = %v", n, err)
					}
				case 6:
					g, _ := p.Group(ctx)
					g.Go(task(id, kind))
					_ = g.Wait()
				}
			}
		}()
	}
	within(t, "submitters", wg.Wait)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	within(t, "app.Stop", func() {
		if err := app.Stop(ctx); err != nil {
			t.Errorf("round %d: app.Stop = %v", round, err)
		}
	})
	if submitted.Load() >= int64(stopAt) {
		within(t, "p.Stop", func() {
			if err := <-stopped; err != nil {
				t.Errorf("round %d: Stop(%v) = %v", round, policy, err)
			}
		})
	}
	s := p.Stats()
	st.mu.Lock()
	defer st.mu.Unlock()
	ranTotal := 0
	for id, n := range st.ran {
		if n != 1 {
			t.Errorf("round %d: task %d ran %d times", round, id, n)
		}
		ranTotal += n
		if st.told[id] != 0 {
			t.Errorf("round %d: task %d ran and was told it did not", round, id)
		}
	}
	for id, n := range st.told {
		if n != 1 {
			t.Errorf("round %d: task %d told %d times", round, id, n)
		}
	}
	if s.Done != uint64(ranTotal) {
		t.Errorf("round %d: Stats.Done %d, but %d tasks ran", round, s.Done, ranTotal)
	}
	if s.Failed != uint64(failedN.Load()) || s.Panics != uint64(panicsN.Load()) {
		t.Errorf("round %d: Stats Failed %d Panics %d, tasks saw %d and %d", round, s.Failed, s.Panics, failedN.Load(), panicsN.Load())
	}
	if s.Dropped != uint64(dropped.Load()) {
		t.Errorf("round %d: Stats.Dropped %d, OnDropped saw %d", round, s.Dropped, dropped.Load())
	}
	if s.Queued != 0 || s.Busy != 0 || s.Workers != 0 || s.Opening != 0 || s.Closing != 0 {
		t.Errorf("round %d: after the stop: %+v", round, s)
	}
	l.mu.Lock()
	evs := len(l.events)
	l.mu.Unlock()
	if evs == 0 && !elastic {
		t.Errorf("round %d: nothing opened", round)
	}
	l.check(t)
}

// TestAttack3StopBeforeStart: a pool stopped before its app starts "is
// simply closed": submissions before get ErrNotStarted, after ErrClosed;
// the app's start then fails with ErrClosed and opens nothing; its stop
// is clean.
func TestAttack3StopBeforeStart(t *testing.T) {
	l := newLedger()
	var p *workerpool.Pool[AB]
	app := newAtkApp(t, &p, "a3early", workerpool.Workers(2), abResources(l))
	noop := func(context.Context, AB) error { return nil }
	if err := p.Go(context.Background(), noop); !errors.Is(err, workerpool.ErrNotStarted) {
		t.Errorf("Go before start = %v", err)
	}
	if err := p.Resize(3); !errors.Is(err, workerpool.ErrNotStarted) {
		t.Errorf("Resize before start = %v", err)
	}
	if err := p.AddFeeder(func(context.Context) error { return nil }); err != nil {
		t.Errorf("AddFeeder before start = %v", err)
	}
	within(t, "Stop before start", func() {
		if err := p.Stop(context.Background(), workerpool.Drain); err != nil {
			t.Errorf("Stop before start = %v", err)
		}
	})
	if err := p.Go(context.Background(), noop); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("Go after stop = %v, want ErrClosed", err)
	}
	if err := p.AddFeeder(func(context.Context) error { return nil }); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("AddFeeder after stop = %v, want ErrClosed", err)
	}
	err := app.Start(a3Ctx(t, a3Hang))
	if !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("app.Start after the pool's stop = %v, want ErrClosed", err)
	}
	within(t, "app.Stop", func() { _ = app.Stop(a3Ctx(t, a3Hang)) })
	if o, _ := l.counts(); o != 0 {
		t.Errorf("%d resources opened for a pool stopped before its start", o)
	}
	if c := p.Capacity(); c.Workers != 0 {
		t.Errorf("Capacity after stop = %+v", c)
	}
}

// TestAttack3FeederReentrant: a feeder's stop that stops the pool itself
// (with its own context, as a consumer told to quit might), and one that
// adds a feeder: no deadlock; AddFeeder during the stop is ErrClosed;
// every stop returns.
func TestAttack3FeederReentrant(t *testing.T) {
	p, app := atkStart[W](t, "a3feedre", workerpool.Workers(1))
	addErr := make(chan error, 1)
	innerStop := make(chan error, 1)
	if err := p.AddFeeder(func(ctx context.Context) error {
		addErr <- p.AddFeeder(func(context.Context) error { return nil })
		innerStop <- p.Stop(ctx, workerpool.Cancel)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var err error
	within(t, "Stop with a reentrant feeder", func() { err = p.Stop(ctx, workerpool.Drain) })
	t.Logf("Stop = %v", err)
	within(t, "feeder", func() {
		if e := <-addErr; !errors.Is(e, workerpool.ErrClosed) {
			t.Errorf("AddFeeder from a feeder's stop = %v, want ErrClosed", e)
		}
		t.Logf("inner Stop = %v", <-innerStop)
	})
	within(t, "app.Stop", func() { _ = app.Stop(a3Ctx(t, a3Hang)) })
}

// TestAttack3FailedPoolReportsEveryTask: a pool past MaxRestarts "reports
// every queued task as not run": to Do (ErrClosed), to futures, to
// GoReport (NotRun), to the ErrorHandler for Go, and to OnDropped; and then
// refuses new tasks with ErrClosed; the app is asked to stop.
func TestAttack3FailedPoolReportsEveryTask(t *testing.T) {
	l := newLedger()
	var handlerClosed, onDropped atomic.Int32
	var p *workerpool.Pool[AB]
	var sd fx.Shutdowner
	app := fx.New(fx.NopLogger,
		workerpool.Provide[AB]("a3failed", workerpool.Workers(1), workerpool.QueueSize(8), abResources(l),
			workerpool.MaxRestarts(1, time.Hour),
			workerpool.ErrorHandler(func(err error) {
				if errors.Is(err, workerpool.ErrClosed) {
					handlerClosed.Add(1)
				}
			}),
			workerpool.OnDropped(func(context.Context, func(context.Context, AB) error) { onDropped.Add(1) }),
		),
		fx.Populate(&p, &sd))
	if err := app.Start(a3Ctx(t, a3Hang)); err != nil {
		t.Fatal(err)
	}
	done := app.Done()
	if err := p.Do(context.Background(), func(context.Context, AB) error { return resources.ErrBroken }); !errors.Is(err, resources.ErrBroken) {
		t.Fatalf("first breaker: %v", err)
	}
	release := make(chan struct{})
	brk := make(chan error, 1)
	go func() {
		brk <- p.Do(context.Background(), func(context.Context, AB) error { <-release; return resources.ErrBroken })
	}()
	atkPoll(t, "the breaker runs", a3Hang, func() bool { return p.Stats().Busy == 1 })
	doErr := make(chan error, 1)
	go func() { doErr <- p.Do(context.Background(), func(context.Context, AB) error { return nil }) }()
	f, err := workerpool.Submit(context.Background(), p, func(context.Context, AB) (int, error) { return 1, nil })
	if err != nil {
		t.Fatal(err)
	}
	rep := make(chan workerpool.Outcome, 1)
	if err := p.GoReport(context.Background(), func(context.Context, AB) error { return nil }, func(o workerpool.Outcome, _ error) { rep <- o }); err != nil {
		t.Fatal(err)
	}
	if err := p.Go(context.Background(), func(context.Context, AB) error { return nil }); err != nil {
		t.Fatal(err)
	}
	atkPoll(t, "4 queued", a3Hang, func() bool { return p.Stats().Queued == 4 })
	close(release)
	within(t, "the failed pool's reports", func() {
		if err := <-brk; !errors.Is(err, resources.ErrBroken) {
			t.Errorf("breaker: %v", err)
		}
		if err := <-doErr; !errors.Is(err, workerpool.ErrClosed) {
			t.Errorf("Do queued on a failing pool = %v, want ErrClosed", err)
		}
		if _, err := f.Wait(context.Background()); !errors.Is(err, workerpool.ErrClosed) {
			t.Errorf("Future = %v", err)
		}
		if o := <-rep; o != workerpool.NotRun {
			t.Errorf("GoReport = %v, want NotRun", o)
		}
		<-done
	})
	atkPoll(t, "the handler hears of the Go task", a3Hang, func() bool { return handlerClosed.Load() == 1 })
	if err := p.Go(context.Background(), func(context.Context, AB) error { return nil }); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("Go on a failed pool = %v", err)
	}
	if err := p.Resize(2); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("Resize on a failed pool = %v", err)
	}
	within(t, "app.Stop", func() { _ = app.Stop(a3Ctx(t, a3Hang)) })
	if onDropped.Load() != 4 {
		t.Errorf("OnDropped saw %d, want 4", onDropped.Load())
	}
	if s := p.Stats(); s.Dropped != 4 || s.Done != 2 {
		t.Errorf("Stats = %+v, want Done 2, Dropped 4", s)
	}
	l.check(t)
}

func a3B2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
