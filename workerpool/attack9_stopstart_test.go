package workerpool_test

// Round 9, item 1: Pool.Stop while the pool's OnStart still opens workers.
// Docs: "A Pool.Stop while the pool starts makes the start give up: it rolls
// back and fails with ErrClosed, and the stop returns once the rollback is
// over." Each opened resource closes exactly once, in reverse order; the
// pool refuses tasks afterwards; Stats settle to zero; nothing leaks.

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

	"github.com/fxpool/fxpool"
	"github.com/fxpool/fxpool/fxpooltest"
	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

type s9cfg struct {
	name    string
	workers int
	conc    int           // StartConcurrency; 0: default
	delay   time.Duration // B's constructor takes this long
	honour  bool          // B's constructor honours its ctx
	fault   string        // "", fail, panic, goexit: worker faultW's B
	faultW  int
	elastic bool
	queue0  bool
	lock    bool
	guard   bool
	feeder  bool
	stopAt  string // before, firstOpen, lastOpen, afterStart, random
	nstops  int
}

type s9Events struct {
	mu sync.Mutex
	ev []workerpool.Event
}

func (e *s9Events) add(ev workerpool.Event) { e.mu.Lock(); e.ev = append(e.ev, ev); e.mu.Unlock() }
func (e *s9Events) all() []workerpool.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]workerpool.Event(nil), e.ev...)
}

func s9run(t *testing.T, c s9cfg) {
	l := newLedger()
	rec := fxpooltest.NewRecorder()
	evs := &s9Events{}
	var bEntered, lastOpened sync.Once
	entered := make(chan struct{})
	lastCh := make(chan struct{})
	var bOpens atomic.Int64
	var inCtor atomic.Int64 // ctors of B running (ignoring ctx may outlive the start)
	var feederCalls atomic.Int64

	opts := []workerpool.Option{
		workerpool.Workers(c.workers),
		workerpool.Events(func(e workerpool.Event) { rec.Record(e); evs.add(e) }),
		workerpool.Resources(
			resources.PerWorker(func(w W) (*ResA, func(), error) {
				l.add("open", "A", w)
				return &ResA{w}, func() { l.add("close", "A", w) }, nil
			}),
			resources.PerWorker(func(ctx context.Context, a *ResA, w W) (*ResB, func(), error) {
				inCtor.Add(1)
				defer inCtor.Add(-1)
				bEntered.Do(func() { close(entered) })
				if c.fault != "" && w.ID == c.faultW && w.Generation == 0 {
					switch c.fault {
					case "fail":
						return nil, nil, errors.New("s9 injected failure")
					case "panic":
						panic("s9 injected panic")
					case "goexit":
						runtime.Goexit()
					}
				}
				if c.delay > 0 {
					if c.honour {
						select {
						case <-ctx.Done():
							return nil, nil, context.Cause(ctx)
						case <-time.After(c.delay):
						}
					} else {
						time.Sleep(c.delay)
					}
				}
				l.add("open", "B", w)
				if bOpens.Add(1) == int64(c.workers) {
					lastOpened.Do(func() { close(lastCh) })
				}
				return &ResB{a, w}, func() { l.add("close", "B", w) }, nil
			}),
		),
	}
	if c.conc > 0 {
		opts = append(opts, workerpool.StartConcurrency(c.conc))
	}
	if c.elastic {
		opts = append(opts, workerpool.Elastic(c.workers, c.workers+2, time.Hour))
	}
	if c.queue0 {
		opts = append(opts, workerpool.QueueSize(0))
	}
	if c.lock {
		opts = append(opts, workerpool.LockOSThread())
	}
	var p *workerpool.Pool[AB]
	fxo := []fx.Option{
		fx.StartTimeout(20 * time.Second), fx.StopTimeout(20 * time.Second),
		fxpool.Module,
		workerpool.Provide[AB](c.name, opts...),
		fx.Populate(&p),
	}
	if c.guard {
		fxo = append(fxo, workerpool.StopGuard())
	}
	app := fxpooltest.New(t, fxo...)
	if c.feeder {
		if err := p.AddFeeder(func(ctx context.Context) error { feederCalls.Add(1); return nil }); err != nil {
			t.Fatalf("AddFeeder before start: %v", err)
		}
	}
	policies := []workerpool.StopPolicy{workerpool.Drain, workerpool.Cancel, workerpool.DropQueued}
	nstops := max(c.nstops, 1)

	var wg sync.WaitGroup
	var startErr error
	startRet := make(chan struct{})
	stopErrs := make([]error, nstops)
	// balanced[i]: for ctx-honouring constructors, was every opened resource
	// closed at the moment Stop i returned?
	balanced := make([]string, nstops)
	stopCalled := make(chan struct{})
	var stopCalledOnce sync.Once

	doStop := func(i int) {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		stopCalledOnce.Do(func() { close(stopCalled) })
		stopErrs[i] = p.Stop(ctx, policies[i%3])
		if c.honour || c.delay == 0 {
			if n := inCtor.Load(); n != 0 && c.stopAt != "afterStart" {
				balanced[i] = fmt.Sprintf("Stop %d returned with %d ctx-honouring constructors still running", i, n)
			} else if o, cl := l.counts(); o != cl {
				balanced[i] = fmt.Sprintf("Stop %d returned with %d opened, %d closed", i, o, cl)
			}
		}
	}
	startFn := func() {
		defer close(startRet)
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		startErr = app.Start(ctx)
	}
	if c.stopAt == "before" {
		doStop(0)
		for i := 1; i < nstops; i++ {
			doStop(i)
		}
		startFn()
	} else {
		wg.Add(1)
		go func() { defer wg.Done(); startFn() }()
		for i := range nstops {
			wg.Add(1)
			go func() {
				defer wg.Done()
				switch c.stopAt {
				case "firstOpen":
					<-entered
				case "lastOpen":
					select {
					case <-lastCh:
					case <-startRet:
					}
				case "afterStart":
					<-startRet
				case "random":
					time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
				}
				doStop(i)
			}()
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		atkWait(t, "Start and concurrent Stops", 30*time.Second, done)
	}
	t.Logf("%s: start=%v stops=%v", c.name, startErr, stopErrs)

	for _, b := range balanced {
		if b != "" {
			t.Errorf("rollback not over when Stop returned: %s", b)
		}
	}
	// Start's error: nil (stop came after it), ErrClosed (stop cut it),
	// or the injected fault.
	if startErr != nil {
		ok := errors.Is(startErr, workerpool.ErrClosed)
		var oe *resources.OpenError
		if c.fault != "" && errors.As(startErr, &oe) {
			ok = true
		}
		if !ok {
			t.Errorf("start error %v: want it to wrap ErrClosed (or the fault)", startErr)
		}
	} else if c.stopAt == "before" {
		t.Errorf("start after Stop returned nil; want ErrClosed (a pool starts once)")
	} else if c.stopAt == "firstOpen" && c.delay > 0 {
		t.Errorf("Stop while worker opening (ctor honours ctx, slow) but the start succeeded")
	}
	if c.fault != "" && startErr == nil {
		t.Errorf("a constructor %s but the start succeeded", c.fault)
	}
	// The pool refuses tasks.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Do(ctx, func(context.Context, AB) error { return nil }); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("Do after Stop = %v, want ErrClosed", err)
	}
	if p.TryGo(func(context.Context, AB) error { return nil }) {
		t.Error("TryGo after Stop = true")
	}
	if err := p.Resize(c.workers + 1); err == nil && !c.elastic {
		t.Error("Resize after Stop = nil")
	}
	if err := p.AddFeeder(func(context.Context) error { return nil }); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("AddFeeder after Stop = %v, want ErrClosed", err)
	}
	// app.Stop after it all: returns, and (if the start succeeded) with the
	// stop's result.
	if startErr == nil {
		stopDone := make(chan struct{})
		go func() {
			defer close(stopDone)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := app.Stop(ctx); err != nil {
				t.Logf("app.Stop: %v", err)
			}
		}()
		atkWait(t, "app.Stop after Pool.Stop", 15*time.Second, stopDone)
	}
	// Constructors that ignore their ctx: the worker closes when they return.
	atkPoll(t, "every opened resource closed", 10*time.Second, func() bool {
		o, cl := l.counts()
		return o == cl && inCtor.Load() == 0
	})
	atkPoll(t, "stats settle", 10*time.Second, func() bool {
		s := p.Stats()
		return s.Workers == 0 && s.Opening == 0 && s.Closing == 0 && s.Busy == 0 && s.Queued == 0
	})
	if cp := p.Capacity(); cp.Workers != 0 {
		t.Errorf("Capacity after stop = %+v", cp)
	}
	l.check(t)
	if n := feederCalls.Load(); n > 1 {
		t.Errorf("feeder stop called %d times", n)
	}
	// Events: at most one PoolStarted, at most one PoolStopped; a failed
	// start's PoolStarted.Err is the start's error.
	var started, stopped int
	for _, e := range evs.all() {
		switch e := e.(type) {
		case workerpool.PoolStarted:
			started++
			if (e.Err == nil) != (startErr == nil) && c.stopAt != "before" {
				t.Errorf("PoolStarted.Err = %v, start returned %v", e.Err, startErr)
			}
		case workerpool.PoolStopped:
			stopped++
		}
	}
	if started > 1 || stopped > 1 {
		t.Errorf("PoolStarted %d times, PoolStopped %d times", started, stopped)
	}
	if startErr == nil && c.stopAt != "before" && stopped != 1 {
		t.Errorf("started fine and stopped, but PoolStopped %d times", stopped)
	}
	if c.fault == "" && len(rec.Events()) > 0 {
		rec.Verify(t)
	}
	app.VerifyNoLeaks()
}

func TestAttack9StopDuringStartMatrix(t *testing.T) {
	var cases []s9cfg
	for _, stopAt := range []string{"before", "firstOpen", "lastOpen", "afterStart", "random"} {
		for _, conc := range []int{1, 0} {
			for _, d := range []struct {
				delay  time.Duration
				honour bool
			}{{0, true}, {300 * time.Millisecond, true}, {80 * time.Millisecond, false}} {
				cases = append(cases, s9cfg{workers: 4, conc: conc, delay: d.delay, honour: d.honour, stopAt: stopAt})
			}
		}
	}
	for _, stopAt := range []string{"firstOpen", "lastOpen", "random"} {
		for _, f := range []string{"fail", "panic", "goexit"} {
			cases = append(cases, s9cfg{workers: 4, conc: 2, delay: 50 * time.Millisecond, honour: true, fault: f, faultW: 2, stopAt: stopAt})
			cases = append(cases, s9cfg{workers: 3, delay: 0, honour: true, fault: f, faultW: 0, stopAt: stopAt})
		}
		for _, variant := range []s9cfg{
			{elastic: true}, {queue0: true}, {lock: true}, {guard: true}, {feeder: true},
			{nstops: 4}, {nstops: 3, lock: true, elastic: true, guard: true, feeder: true},
		} {
			for _, d := range []time.Duration{0, 200 * time.Millisecond} {
				v := variant
				v.workers, v.delay, v.honour, v.stopAt, v.conc = 3, d, true, stopAt, 1
				cases = append(cases, v)
			}
		}
	}
	for i, c := range cases {
		c.name = fmt.Sprintf("s9p%d", i)
		t.Run(fmt.Sprintf("%d-%s-c%d-d%v-h%v-f%s-e%v-q%v-l%v-g%v-fd%v-n%d", i, c.stopAt, c.conc, c.delay, c.honour, c.fault, c.elastic, c.queue0, c.lock, c.guard, c.feeder, c.nstops), func(t *testing.T) {
			s9run(t, c)
		})
	}
}
