//go:build linux

package workerpool_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
)

// a2Threads records the threads of each generation's open, tasks and close.
type a2Threads struct {
	mu     sync.Mutex
	open   map[resources.Worker]int
	closed map[resources.Worker]int
	errs   []string
}

type A2Aff struct {
	tid int
	w   resources.Worker
}

func (l *a2Threads) option() workerpool.Option {
	return workerpool.Resources(resources.PerWorker(func(w resources.Worker) (*A2Aff, func(), error) {
		tid := syscall.Gettid()
		l.mu.Lock()
		if l.open == nil {
			l.open, l.closed = map[resources.Worker]int{}, map[resources.Worker]int{}
		}
		l.open[w] = tid
		l.mu.Unlock()
		return &A2Aff{tid, w}, func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.closed[w] = syscall.Gettid()
		}, nil
	}))
}

func (l *a2Threads) check(t *testing.T, exempt map[resources.Worker]bool) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for w, tid := range l.open {
		c, ok := l.closed[w]
		if !ok {
			t.Errorf("worker %d gen %d never closed", w.ID, w.Generation)
		} else if c != tid && !exempt[w] {
			t.Errorf("worker %d gen %d opened on thread %d, closed on %d", w.ID, w.Generation, tid, c)
		}
	}
	for _, e := range l.errs {
		t.Error(e)
	}
}

func a2task(l *a2Threads) func(context.Context, *A2Aff) error {
	return func(_ context.Context, a *A2Aff) error {
		if tid := syscall.Gettid(); tid != a.tid {
			return fmt.Errorf("task of worker %d gen %d on thread %d, opened on %d", a.w.ID, a.w.Generation, tid, a.tid)
		}
		runtime.Gosched()
		if tid := syscall.Gettid(); tid != a.tid {
			return fmt.Errorf("task of worker %d gen %d moved to thread %d, opened on %d", a.w.ID, a.w.Generation, tid, a.tid)
		}
		return nil
	}
}

// hog keeps locked goroutines busy so that unlocked ones get moved.
func a2hog(stop <-chan struct{}, wg *sync.WaitGroup) {
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			for {
				select {
				case <-stop:
					return
				default:
					runtime.Gosched()
				}
			}
		}()
	}
}

func TestAttack2ThreadRecycleResizeGoexit(t *testing.T) {
	var l a2Threads
	p, app := start[*A2Aff](t, workerpool.LockOSThread(), workerpool.Workers(2), workerpool.MaxTasksPerWorker(3), l.option())
	ctx := t.Context()
	run := func(n int) {
		for range n {
			if err := p.Do(ctx, a2task(&l)); err != nil {
				t.Error(err)
			}
		}
	}
	run(10)
	for _, n := range []int{1, 3, 1, 2} {
		if err := p.Resize(n); err != nil {
			t.Fatal(err)
		}
		run(7)
	}
	// Goexit: the generation it ends closes on a new thread (exempt); the next
	// generation opens, runs and closes on one thread.
	var goexited resources.Worker
	if err := p.Do(ctx, func(_ context.Context, a *A2Aff) error { goexited = a.w; runtime.Goexit(); return nil }); err != workerpool.ErrGoexit {
		t.Errorf("Do = %v, want ErrGoexit", err)
	}
	run(10)
	if err := app.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	l.check(t, map[resources.Worker]bool{goexited: true})
}

func TestAttack2ThreadElastic(t *testing.T) {
	var l a2Threads
	p, app := start[*A2Aff](t, workerpool.LockOSThread(), workerpool.Elastic(0, 3, time.Hour), l.option())
	ctx := t.Context()
	release := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for range 3 {
		wg.Add(1)
		if err := p.GoReport(ctx, func(c context.Context, a *A2Aff) error {
			<-release
			return a2task(&l)(c, a)
		}, func(_ workerpool.Outcome, err error) { errs <- err; wg.Done() }); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for p.Stats().Busy < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if err := app.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	l.check(t, nil)
	if len(l.open) < 2 {
		t.Errorf("elastic opened %d workers, want >= 2", len(l.open))
	}
}

// A task unlocks but does not move; the next task did nothing wrong, yet the
// worker, left unlocked, may move in the middle of it.
func TestAttack2ThreadUnlockedThenMovesMidTask(t *testing.T) {
	var l a2Threads
	p, app := start[*A2Aff](t, workerpool.LockOSThread(), workerpool.Workers(1), l.option())
	ctx := t.Context()
	if err := p.Do(ctx, func(context.Context, *A2Aff) error { runtime.UnlockOSThread(); return nil }); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var hogs sync.WaitGroup
	a2hog(stop, &hogs)
	var moved error
	for i := 0; i < 200 && moved == nil; i++ {
		moved = p.Do(ctx, func(_ context.Context, a *A2Aff) error {
			if syscall.Gettid() != a.tid {
				return nil // the worker noticed a move before the task: fine
			}
			for range 50 {
				runtime.Gosched()
				if tid := syscall.Gettid(); tid != a.tid {
					return fmt.Errorf("a task that never unlocked moved from thread %d to %d mid-task (worker %d gen %d)", a.tid, tid, a.w.ID, a.w.Generation)
				}
			}
			return nil
		})
	}
	close(stop)
	hogs.Wait()
	if moved != nil {
		t.Error(moved)
	}
	if err := app.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

// A task that unlocks and moves within itself: the next task must run on the
// thread its (rebuilt) resources opened on, and that generation closes there.
func TestAttack2ThreadUnlockMoveThenRecycle(t *testing.T) {
	var l a2Threads
	p, app := start[*A2Aff](t, workerpool.LockOSThread(), workerpool.Workers(1), workerpool.MaxTasksPerWorker(2), l.option())
	ctx := t.Context()
	stop := make(chan struct{})
	var hogs sync.WaitGroup
	a2hog(stop, &hogs)
	var movedGen resources.Worker
	err := p.Do(ctx, func(_ context.Context, a *A2Aff) error {
		movedGen = a.w
		runtime.UnlockOSThread()
		for range 2000 {
			runtime.Gosched()
			if syscall.Gettid() != a.tid {
				break
			}
		}
		return nil
	})
	close(stop)
	hogs.Wait()
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if err := p.Do(ctx, a2task(&l)); err != nil {
			t.Error(err)
		}
	}
	if err := app.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	l.check(t, map[resources.Worker]bool{movedGen: true})
}
