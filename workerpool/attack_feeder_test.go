package workerpool_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/workerpool"
)

// Feeders stop first, within 2/5 of the budget, while the pool still takes
// their tasks; only then is the pool closed. Every task submitted by the
// feeder is accepted and run (Drain).
func TestAttackFeederStopsBeforePoolRefuses(t *testing.T) {
	p, _ := atkStart[W](t, "fed", workerpool.Workers(2), workerpool.QueueSize(4))
	var submitted, ran, refusedWhileFeeding atomic.Int32
	quit := make(chan struct{})
	feederDone := make(chan struct{})
	go func() {
		defer close(feederDone)
		for {
			select {
			case <-quit:
				// last tasks handed in during stop must be accepted
				for range 3 {
					if err := p.Go(context.Background(), func(context.Context, W) error { ran.Add(1); return nil }); err != nil {
						refusedWhileFeeding.Add(1)
					} else {
						submitted.Add(1)
					}
				}
				return
			default:
			}
			if err := p.Go(context.Background(), func(context.Context, W) error { ran.Add(1); return nil }); err != nil {
				refusedWhileFeeding.Add(1)
				return
			}
			submitted.Add(1)
		}
	}()
	var feederCtxDeadline time.Duration
	var feederCalled atomic.Int32
	var order []string
	var mu sync.Mutex
	if err := p.AddFeeder(func(ctx context.Context) error {
		feederCalled.Add(1)
		dl, ok := ctx.Deadline()
		if ok {
			feederCtxDeadline = time.Until(dl)
		}
		close(quit)
		<-feederDone
		// still serving: a final submission by stop itself
		if err := p.Go(context.Background(), func(context.Context, W) error { ran.Add(1); return nil }); err != nil {
			refusedWhileFeeding.Add(1)
		} else {
			submitted.Add(1)
		}
		mu.Lock()
		order = append(order, "feeder1")
		mu.Unlock()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	errFeeder := errors.New("feeder2 failed")
	if err := p.AddFeeder(func(ctx context.Context) error {
		mu.Lock()
		order = append(order, "feeder2")
		mu.Unlock()
		return errFeeder
	}); err != nil {
		t.Fatal(err)
	}
	if err := p.AddFeeder(func(ctx context.Context) error { panic("feeder3 panic") }); err != nil {
		t.Fatal(err)
	}
	atkPoll(t, "some feeding", 5*time.Second, func() bool { return submitted.Load() > 50 })
	budget := 2 * time.Second
	ctx, c := context.WithTimeout(context.Background(), budget)
	defer c()
	err := p.Stop(ctx, workerpool.Drain)
	if !errors.Is(err, errFeeder) {
		t.Errorf("Stop = %v, want feeder2's error joined", err)
	}
	if err == nil || !containsStr(err.Error(), "feeder3 panic") {
		t.Errorf("Stop = %v, want feeder3's panic joined", err)
	}
	if feederCalled.Load() != 1 {
		t.Errorf("feeder stop called %d times", feederCalled.Load())
	}
	if feederCtxDeadline <= 0 || feederCtxDeadline > budget*2/5+50*time.Millisecond {
		t.Errorf("feeder ctx deadline %v from call, want about 2/5 of %v", feederCtxDeadline, budget)
	}
	if n := refusedWhileFeeding.Load(); n != 0 {
		t.Errorf("pool refused %d tasks while its feeder was stopping", n)
	}
	if ran.Load() != submitted.Load() {
		t.Errorf("Drain: ran %d of %d submitted", ran.Load(), submitted.Load())
	}
	mu.Lock()
	if len(order) != 2 || order[0] != "feeder1" || order[1] != "feeder2" {
		t.Errorf("feeder order = %v", order)
	}
	mu.Unlock()
	if err := p.AddFeeder(func(context.Context) error { return nil }); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("AddFeeder after stop = %v", err)
	}
}

// A feeder that ignores its context: Pool.Stop promises to return by nine
// tenths of its budget ("It blocks until the pool has stopped or nine tenths
// of ctx's budget are gone").
func TestAttackHungFeederBounded(t *testing.T) {
	p, _ := atkStart[W](t, "hungfeeder", workerpool.Workers(1))
	release := make(chan struct{})
	if err := p.AddFeeder(func(ctx context.Context) error { <-release; return nil }); err != nil {
		t.Fatal(err)
	}
	budget := time.Second
	ctx, c := context.WithTimeout(context.Background(), budget)
	defer c()
	t0 := time.Now()
	res := make(chan error, 1)
	go func() { res <- p.Stop(ctx, workerpool.Drain) }()
	select {
	case err := <-res:
		t.Logf("stop: %v in %v", err, time.Since(t0))
		if err == nil {
			t.Error("Stop = nil although a feeder ignored its context")
		}
		close(release)
	case <-time.After(4 * budget):
		close(release)
		err := <-res
		t.Errorf("Stop(1s budget) hung > %v on a feeder that ignores its ctx (returned %v only after the feeder was released)", 4*budget, err)
	}
	if s := p.Stats(); s.Workers != 0 {
		t.Errorf("workers still open after stop: %+v", s)
	}
}

func containsStr(s, sub string) bool {
	return len(sub) == 0 || (len(s) >= len(sub) && (indexOf(s, sub) >= 0))
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

func TestAttackCapacity(t *testing.T) {
	p, _ := atkStart[W](t, "cap", workerpool.Workers(3), workerpool.QueueSize(5))
	c := p.Capacity()
	if c.Workers != 3 || c.MaxWorkers != 3 || c.Queue != 5 || c.InFlight() != 8 {
		t.Errorf("Capacity = %+v InFlight %d", c, c.InFlight())
	}
	// default queue: 4 x Workers
	p2, _ := atkStart[W](t, "cap2", workerpool.Workers(2))
	if c := p2.Capacity(); c.Queue != 8 {
		t.Errorf("default Queue = %d, want 8", c.Queue)
	}
	// QueueSize(0)
	p3, _ := atkStart[W](t, "cap3", workerpool.Workers(2), workerpool.QueueSize(0))
	if c := p3.Capacity(); c.Queue != 0 || c.InFlight() != 2 {
		t.Errorf("QueueSize(0) Capacity = %+v", c)
	}
	// InFlight promise: a feeder keeping InFlight unfinished never blocks in Go.
	rel := atkBlock(t, p3, 2)
	_ = rel
	if p3.TryGo(func(context.Context, W) error { return nil }) {
		t.Error("TryGo with QueueSize(0) and all workers busy = true")
	}
	rel()
	// Resize updates Workers and MaxWorkers
	if err := p.Resize(5); err != nil {
		t.Fatal(err)
	}
	if c := p.Capacity(); c.Workers != 5 || c.MaxWorkers != 5 {
		t.Errorf("after Resize(5) Capacity = %+v", c)
	}
	// elastic
	pe, _ := atkStart[W](t, "capel", workerpool.Elastic(1, 4, time.Minute), workerpool.QueueSize(2))
	if c := pe.Capacity(); c.Workers != 1 || c.MaxWorkers != 4 || c.Queue != 2 || c.InFlight() != 6 {
		t.Errorf("elastic Capacity = %+v", c)
	}
	if err := pe.Resize(3); err == nil {
		t.Error("Resize on elastic pool = nil")
	}
	if err := p.Resize(0); err == nil {
		t.Error("Resize(0) = nil")
	}
}

// Capacity().InFlight(): a feeder that keeps that many unfinished never
// blocks in Go; test with GoReport window.
func TestAttackInFlightWindowNeverBlocks(t *testing.T) {
	p, _ := atkStart[W](t, "window", workerpool.Workers(2), workerpool.QueueSize(3))
	win := p.Capacity().InFlight()
	sem := make(chan struct{}, win)
	var done atomic.Int32
	for i := range 500 {
		sem <- struct{}{}
		t0 := time.Now()
		err := p.GoReport(context.Background(), func(context.Context, W) error { return nil },
			func(workerpool.Outcome, error) { done.Add(1); <-sem })
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(t0); d > 500*time.Millisecond {
			t.Fatalf("task %d: GoReport blocked %v with a window of InFlight=%d", i, d, win)
		}
	}
	atkPoll(t, "all done", 5*time.Second, func() bool { return done.Load() == 500 })
}
