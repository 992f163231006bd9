package workerpool_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
)

// Under load, each counter read alone stays within its bounds and the
// monotonic ones never go back; after the stop they are exact.
func TestA16tStatsBoundsUnderLoad(t *testing.T) {
	const workers, queue = 3, 5
	p, _ := a16tStart(t, workerpool.Workers(workers), workerpool.QueueSize(queue),
		workerpool.ErrorHandler(func(error) {}))
	var stopPoll atomic.Bool
	var bad atomic.Value
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		var last workerpool.Stats
		for !stopPoll.Load() {
			st := p.Stats()
			var msg string
			switch {
			case st.Busy < 0 || st.Busy > workers:
				msg = fmt.Sprintf("Busy %d", st.Busy)
			case st.Queued < 0: // its upper bound: TestA16tStatsQueuedNeverAboveQueueSize
				msg = fmt.Sprintf("Queued %d", st.Queued)
			case st.Workers < 0 || st.Workers > workers:
				msg = fmt.Sprintf("Workers %d", st.Workers)
			case st.Done < last.Done || st.Failed < last.Failed || st.Panics < last.Panics || st.Dropped < last.Dropped || st.Restarts < last.Restarts:
				msg = fmt.Sprintf("a counter went back: %+v after %+v", st, last)
			}
			if msg != "" {
				bad.CompareAndSwap(nil, msg)
			}
			last = st
		}
	}()
	var wg sync.WaitGroup
	var accepted atomic.Int64
	for s := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			for i := range 2000 {
				var err error
				task := func(context.Context, resources.Worker) error {
					if i%7 == 0 {
						return errors.New("x")
					}
					if i%101 == 0 {
						panic("a16t")
					}
					return nil
				}
				switch (s + i) % 3 {
				case 0:
					err = p.Go(ctx, task)
				case 1:
					err = p.Do(ctx, task)
					if err != nil && !errors.Is(err, workerpool.ErrClosed) {
						err = nil // the task's own error: accepted
					}
				case 2:
					if !p.TryGo(task) {
						continue
					}
				}
				if err == nil {
					accepted.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if err := a16tStop(t, p, workerpool.Drain); err != nil {
		t.Fatal(err)
	}
	stopPoll.Store(true)
	<-polled
	if m := bad.Load(); m != nil {
		t.Errorf("Stats out of bounds under load: %v", m)
	}
	st := p.Stats()
	if int64(st.Done) != accepted.Load() || st.Dropped != 0 {
		t.Errorf("Done %d Dropped %d, accepted %d", st.Done, st.Dropped, accepted.Load())
	}
	if st.Panics == 0 || st.Restarts != st.Panics || st.Failed < st.Panics {
		t.Errorf("Stats %+v", st)
	}
}

// Queued is "the number of accepted tasks waiting for a worker". A worker
// that ran a run of Go tasks back to back and is now blocked in the last
// one leaves nothing waiting: Queued must read 0 (not the tasks it ran),
// and Busy 1. Deterministic: the counters are read with nothing running
// but the one blocked task.
func TestA16tQueuedAfterBackToBackGoTasks(t *testing.T) {
	for _, quick := range []int{3, 40, 90} {
		t.Run(fmt.Sprint(quick), func(t *testing.T) {
			p, _ := a16tStart(t, workerpool.Workers(1), workerpool.QueueSize(100))
			b0 := a16tOccupy(t, p, 1)
			var ran atomic.Int32
			for range quick {
				if err := p.Go(context.Background(), func(context.Context, resources.Worker) error { ran.Add(1); return nil }); err != nil {
					t.Fatal(err)
				}
			}
			b1 := a16tNewBlocker()
			if err := p.Go(context.Background(), b1.task); err != nil {
				t.Fatal(err)
			}
			if q := p.Stats().Queued; q != quick+1 {
				t.Errorf("before: Queued %d, want %d", q, quick+1)
			}
			b0.open()
			a16tRecv(t, b1.started, "the last task to start")
			if int(ran.Load()) != quick {
				t.Fatalf("ran %d", ran.Load())
			}
			st := p.Stats()
			if st.Queued != 0 || st.Busy != 1 {
				t.Errorf("with every task taken and one running: Queued %d Busy %d, want 0 and 1 (Done %d)", st.Queued, st.Busy, st.Done)
			}
			b1.open()
		})
	}
}

// Queued is "the number of accepted tasks waiting for a worker", and at
// most QueueSize tasks may wait. Under a load of Go tasks from several
// submitters, a reader must never see more waiting than the queue holds.
// (A correct pool passes always; the read is not a timing assertion.)
func TestA16tStatsQueuedNeverAboveQueueSize(t *testing.T) {
	const workers, queue = 3, 5
	p, _ := a16tStart(t, workerpool.Workers(workers), workerpool.QueueSize(queue))
	var stopPoll atomic.Bool
	var worst atomic.Int64
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		for !stopPoll.Load() {
			if q := int64(p.Stats().Queued); q > worst.Load() {
				worst.Store(q)
			}
		}
	}()
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 60000 {
				if err := p.Go(context.Background(), func(context.Context, resources.Worker) error { return nil }); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	stopPoll.Store(true)
	<-polled
	if w := worst.Load(); w > queue {
		t.Errorf("Stats.Queued read %d with QueueSize(%d): more tasks waiting than the queue can hold", w, queue)
	}
}
