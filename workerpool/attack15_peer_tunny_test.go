package workerpool_test

// Ports of tunny v0.1.4's tunny_test.go, and pond's TestPoolResize.

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/workerpool"
)

// tunny TestParallelJobs: as many concurrent Do callers as workers all run
// at once, each on a worker of its own with resources of its own.
func TestAttack15PeerTunnyParallelJobs(t *testing.T) {
	const n = 10
	e := a15New(t, workerpool.Workers(n))
	var barrier sync.WaitGroup
	barrier.Add(n)
	var mu sync.Mutex
	ids := map[int]bool{}
	res := map[*a15Res]bool{}
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var out int
			err := e.P.Do(context.Background(), func(_ context.Context, d a15Deps) error {
				d.Res.enter()
				defer d.Res.leave()
				barrier.Done()
				barrier.Wait()
				mu.Lock()
				ids[d.W.ID] = true
				res[d.Res] = true
				mu.Unlock()
				out = i * 2
				return nil
			})
			if err != nil || out != i*2 {
				t.Errorf("Do %d: %v %d", i, err, out)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	a15Recv(t, done, "10 tasks at once on 10 workers")
	if len(ids) != n || len(res) != n {
		t.Errorf("%d worker IDs, %d resources, want %d each", len(ids), len(res), n)
	}
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	e.VerifyResources()
}

// tunny TestFuncJobCtx "Returns err when ctx canceled": a Do whose context
// has already ended returns its error and its task does not run.
func TestAttack15PeerTunnyDoExpiredContext(t *testing.T) {
	e := a15New(t, workerpool.Workers(1))
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	var ran atomic.Bool
	err := e.P.Do(ctx, func(context.Context, a15Deps) error { ran.Store(true); return nil })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Do = %v, want DeadlineExceeded", err)
	}
	f, err := workerpool.Submit(ctx, e.P, func(context.Context, a15Deps) (int, error) { ran.Store(true); return 1, nil })
	if err == nil {
		wctx, wcancel := context.WithTimeout(context.Background(), a15Guard)
		defer wcancel()
		_, err = f.Wait(wctx)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Submit/Wait = %v, want DeadlineExceeded", err)
	}
	reported := make(chan workerpool.Outcome, 1)
	if err := e.P.GoReport(ctx, func(context.Context, a15Deps) error { ran.Store(true); return nil }, func(o workerpool.Outcome, err error) {
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("GoReport error %v, want DeadlineExceeded", err)
		}
		reported <- o
	}); err == nil {
		if o := a15Recv(t, reported, "report"); o != workerpool.NotRun {
			t.Errorf("GoReport outcome %v, want NotRun", o)
		}
	} else if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("GoReport = %v", err)
	}
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	if ran.Load() {
		t.Errorf("a task submitted with an ended context ran")
	}
}

// tunny TestPoolSizeAdjustment: Resize up and down; the size follows, the
// workers removed close their resources exactly once, the pool still works.
func TestAttack15PeerTunnySizeAdjustment(t *testing.T) {
	e := a15New(t, workerpool.Workers(10))
	for _, n := range []int{10, 9, 10, 1, 10} {
		if err := e.P.Resize(n); err != nil {
			t.Fatalf("Resize(%d): %v", n, err)
		}
		if c := e.P.Capacity(); c.Workers != n {
			t.Errorf("after Resize(%d): capacity %+v", n, c)
		}
		a15Eventually(t, "workers settle", func() bool {
			s := e.P.Stats()
			return s.Workers == n && s.Opening == 0 && s.Closing == 0
		})
		closed := 0
		for _, r := range e.Opened() {
			closed += int(r.closed.Load())
		}
		if open := len(e.Opened()) - closed; open != n {
			t.Errorf("after Resize(%d): %d resources open", n, open)
		}
	}
	var got int
	if err := e.P.Do(context.Background(), func(context.Context, a15Deps) error { got = 20; return nil }); err != nil || got != 20 {
		t.Errorf("Do after resizing: %v", err)
	}
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	if n := len(e.Opened()); n != 20 {
		t.Errorf("%d resources opened, want 20 (10, +1, +9)", n)
	}
	if s := e.P.Stats(); s.Workers != 0 {
		t.Errorf("stats after stop %+v", s)
	}
	e.VerifyResources()
}

// pond TestPoolResize: resizing a busy pool up and down; waiting and
// running counts follow, a removed worker takes no new task.
func TestAttack15PeerPondResizeBusy(t *testing.T) {
	e := a15New(t, workerpool.Workers(1), workerpool.QueueSize(10))
	ctx := context.Background()
	proceed := make(chan struct{}, 10)
	finish := make(chan struct{}, 10)
	all := a15NewGate(t)
	var ran atomic.Int32
	for range 10 {
		if err := e.P.Go(ctx, func(c context.Context, _ a15Deps) error {
			select {
			case <-proceed:
			case <-all.C():
			}
			select {
			case <-finish:
			case <-all.C():
			}
			ran.Add(1)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		proceed <- struct{}{}
	}
	waitFor := func(queued, busy int) {
		t.Helper()
		a15Eventually(t, "stats", func() bool { s := e.P.Stats(); return s.Queued == queued && s.Busy == busy })
	}
	waitFor(9, 1)
	if err := e.P.Resize(3); err != nil {
		t.Fatal(err)
	}
	if c := e.P.Capacity(); c.Workers != 3 || c.MaxWorkers != 3 {
		t.Errorf("capacity %+v after Resize(3)", c)
	}
	for range 3 {
		proceed <- struct{}{}
	}
	waitFor(7, 3)
	if err := e.P.Resize(2); err != nil {
		t.Fatal(err)
	}
	if c := e.P.Capacity(); c.Workers != 2 {
		t.Errorf("capacity %+v after Resize(2)", c)
	}
	for range 3 {
		finish <- struct{}{}
	}
	for range 4 {
		proceed <- struct{}{}
	}
	waitFor(5, 2)
	time.Sleep(50 * time.Millisecond)
	if s := e.P.Stats(); s.Busy != 2 || s.Queued != 5 {
		t.Errorf("a removed worker took a task: %+v", s)
	}
	all.Open()
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	if ran.Load() != 10 {
		t.Errorf("%d tasks ran, want 10", ran.Load())
	}
	e.VerifyResources()
}

// pond TestPoolResizeWithZeroMaxConcurrency / Negative and tunny's sizes,
// in fxpool's terms: Resize refuses n < 1, elastic pools, and pools not
// serving.
func TestAttack15PeerPondResizeInvalid(t *testing.T) {
	pre := a15Build(t, workerpool.Workers(2))
	if err := pre.P.Resize(3); !errors.Is(err, workerpool.ErrNotStarted) {
		t.Errorf("Resize before start: %v, want ErrNotStarted", err)
	}
	if err := pre.P.Go(context.Background(), a15Noop); !errors.Is(err, workerpool.ErrNotStarted) {
		t.Errorf("Go before start: %v, want ErrNotStarted", err)
	}
	if err := pre.P.Do(context.Background(), a15Noop); !errors.Is(err, workerpool.ErrNotStarted) {
		t.Errorf("Do before start: %v, want ErrNotStarted", err)
	}
	if pre.P.TryGo(a15Noop) {
		t.Errorf("TryGo before start accepted")
	}
	e := a15New(t, workerpool.Workers(2))
	for _, n := range []int{0, -1} {
		if err := e.P.Resize(n); err == nil {
			t.Errorf("Resize(%d) = nil", n)
		}
	}
	if c := e.P.Capacity(); c.Workers != 2 {
		t.Errorf("capacity %+v after refused resizes", c)
	}
	el := a15New(t, workerpool.Elastic(1, 4, time.Second))
	if err := el.P.Resize(2); err == nil {
		t.Errorf("Resize of an elastic pool = nil")
	}
}

// tunny TestCustomWorker: a worker's resource is opened once, used by one
// task at a time, and terminated (closed) exactly once when the pool stops.
func TestAttack15PeerTunnyCustomWorker(t *testing.T) {
	e := a15New(t, workerpool.Workers(3))
	if n := len(e.Opened()); n != 3 {
		t.Errorf("%d resources open after start, want 3", n)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 300 {
				_ = e.P.Do(context.Background(), func(_ context.Context, d a15Deps) error {
					d.Res.enter()
					defer d.Res.leave()
					if d.Res.W.ID != d.W.ID || d.Res.closed.Load() != 0 {
						t.Errorf("task of worker %d got resource %+v (closed %d)", d.W.ID, d.Res.W, d.Res.closed.Load())
					}
					return nil
				})
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	a15Recv(t, done, "callers")
	for _, r := range e.Opened() {
		if r.closed.Load() != 0 {
			t.Errorf("resource %+v closed while its pool serves", r.W)
		}
	}
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	if n := len(e.Opened()); n != 3 {
		t.Errorf("%d resources opened, want 3", n)
	}
	e.VerifyResources()
}
