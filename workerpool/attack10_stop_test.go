package workerpool_test

// Round 10: the stop of pools with many workers (every worker gets its pill
// at once): under Drain every task queued before the stop runs; under
// DropQueued and Cancel every one is reported not run, exactly once, to its
// submitter and to OnDropped; every resource closes exactly once; and a
// Pool.Stop at a random moment of a start of many workers cancels it: the
// start fails with ErrClosed and, once Stop has returned, everything that
// opened has closed.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
	"go.uber.org/zap"
)

func TestAttack10StopManyWorkers(t *testing.T) {
	for _, pol := range []workerpool.StopPolicy{workerpool.Drain, workerpool.DropQueued, workerpool.Cancel} {
		for _, via := range []string{"app", "pool"} {
			t.Run(fmt.Sprintf("%v/%s", pol, via), func(t *testing.T) { a10stopMany(t, pol, via) })
		}
	}
}

func a10stopMany(t *testing.T, pol workerpool.StopPolicy, via string) {
	const workers, queue = 1500, 1024
	l := newLedger()
	var dropped atomic.Int64
	var p *workerpool.Pool[AB]
	app := a10app(t, &p, "a10stopmany", []fx.Option{fx.Supply(zap.NewNop())},
		workerpool.Workers(workers), workerpool.QueueSize(queue), abResources(l),
		workerpool.OnStop(pol),
		workerpool.OnDropped(func(context.Context, func(context.Context, AB) error) { dropped.Add(1) }))
	ctx, cancel := a10ctx(30 * time.Second)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	release := atkBlock(t, p, workers)
	var ran atomic.Int64
	var wg sync.WaitGroup
	results := make([]error, queue)
	for i := range queue {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = p.Do(context.Background(), func(context.Context, AB) error { ran.Add(1); return nil })
		}()
	}
	atkPoll(t, "queue full", 20*time.Second, func() bool { return p.Stats().Queued == queue })
	stopped := make(chan error, 1)
	go func() {
		sctx, scancel := a10ctx(25 * time.Second)
		defer scancel()
		if via == "pool" {
			stopped <- p.Stop(sctx, pol)
		} else {
			stopped <- app.Stop(sctx)
		}
	}()
	// The stop has begun once the pool refuses tasks.
	atkPoll(t, "the stop refuses tasks", 20*time.Second, func() bool {
		return p.TryGo(func(context.Context, AB) error { return nil }) == false && p.Stats().Queued == queue ||
			p.Stats().Queued < queue
	})
	time.Sleep(20 * time.Millisecond)
	release()
	var err error
	select {
	case err = <-stopped:
	case <-time.After(30 * time.Second):
		t.Fatal("stop hung")
	}
	if err != nil {
		t.Errorf("stop: %v", err)
	}
	if via == "pool" {
		_ = app.Stop(ctx)
	}
	a10within(t, "Do callers", 10*time.Second, wg.Wait)
	okN, closedN := 0, 0
	for _, e := range results {
		switch {
		case e == nil:
			okN++
		case errors.Is(e, workerpool.ErrClosed):
			closedN++
		default:
			t.Errorf("Do: %v", e)
		}
	}
	switch pol {
	case workerpool.Drain:
		if okN != queue || ran.Load() != queue {
			t.Errorf("Drain: %d of %d queued tasks ran (%d said ok, %d ErrClosed)", ran.Load(), queue, okN, closedN)
		}
	default:
		if ran.Load() != 0 || closedN != queue || dropped.Load() != queue {
			t.Errorf("%v: %d queued ran, %d told ErrClosed, %d to OnDropped; want 0, %d, %d", pol, ran.Load(), closedN, dropped.Load(), queue, queue)
		}
	}
	if int(ran.Load()) != okN {
		t.Errorf("%d ran, %d Do returned nil", ran.Load(), okN)
	}
	l.check(t)
	if o, c := l.counts(); o != 2*workers || c != 2*workers {
		t.Errorf("opens %d closes %d, want %d each", o, c, 2*workers)
	}
	s := p.Stats()
	if s.Workers != 0 || s.Queued != 0 || s.Busy != 0 {
		t.Errorf("stats after stop: %+v", s)
	}
}

// Pool.Stop at a random moment of the start of many workers.
func TestAttack10StopDuringBigStart(t *testing.T) {
	for rep := range 12 {
		const workers = 800
		l := newLedger()
		var p *workerpool.Pool[AB]
		conc := []int{0, 4, 64}[rep%3]
		opts := []workerpool.Option{workerpool.Workers(workers), abResources(l)}
		if conc > 0 {
			opts = append(opts, workerpool.StartConcurrency(conc))
		}
		app := a10app(t, &p, fmt.Sprintf("a10bigstart%d", rep), []fx.Option{fx.Supply(zap.NewNop())}, opts...)
		ctx, cancel := a10ctx(30 * time.Second)
		startErr := make(chan error, 1)
		go func() { startErr <- app.Start(ctx) }()
		time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
		var stopErr error
		a10within(t, "Pool.Stop during the start", 20*time.Second, func() {
			sctx, scancel := a10ctx(20 * time.Second)
			defer scancel()
			stopErr = p.Stop(sctx, workerpool.Drain)
		})
		// Once Stop returned, the rollback (or the stop) is over.
		l.check(t)
		o, c := l.counts()
		var se error
		select {
		case se = <-startErr:
		case <-time.After(20 * time.Second):
			t.Fatal("start hung")
		}
		if se == nil {
			// the start had won: the stop was an ordinary stop.
			if o != 2*workers {
				t.Errorf("rep %d: start succeeded with %d opens", rep, o)
			}
		} else if !errors.Is(se, workerpool.ErrClosed) {
			t.Errorf("rep %d: start failed with %v, want ErrClosed", rep, se)
		}
		if stopErr != nil {
			t.Errorf("rep %d: Stop: %v", rep, stopErr)
		}
		if err := p.Go(context.Background(), func(context.Context, AB) error { return nil }); err == nil {
			t.Errorf("rep %d: a stopped pool took a task", rep)
		}
		_ = app.Stop(ctx)
		if o2, c2 := l.counts(); o2 != o || c2 != c {
			t.Errorf("rep %d: opens/closes moved after Stop returned: %d/%d -> %d/%d", rep, o, c, o2, c2)
		}
		t.Logf("rep %d conc %d: start failed %v, %d opens", rep, conc, se != nil, o)
		cancel()
	}
}
