package workerpool_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
)

// Affine is a resource that must stay on the thread that opened it.
type Affine struct {
	tid int
	w   resources.Worker
}

// threadLog records, per worker generation, the threads seen by its open,
// its tasks and its close.
type threadLog struct {
	mu   sync.Mutex
	seen map[string]map[int]bool // "worker/generation" → threads
	errs []string
}

func (l *threadLog) see(w resources.Worker, what string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	key := fmt.Sprintf("%d/%d", w.ID, w.Generation)
	if l.seen == nil {
		l.seen = map[string]map[int]bool{}
	}
	if l.seen[key] == nil {
		l.seen[key] = map[int]bool{}
	}
	l.seen[key][syscall.Gettid()] = true
	if len(l.seen[key]) > 1 {
		l.errs = append(l.errs, fmt.Sprintf("%s of worker %s on a second thread", what, key))
	}
}

func affine(l *threadLog) workerpool.Option {
	return workerpool.Resources(resources.PerWorker(func(w resources.Worker) (*Affine, func(), error) {
		l.see(w, "open")
		return &Affine{tid: syscall.Gettid(), w: w}, func() { l.see(w, "close") }, nil
	}))
}

func TestLockOSThread(t *testing.T) {
	var l threadLog
	p, app := start[*Affine](t,
		workerpool.LockOSThread(),
		workerpool.Workers(3),
		workerpool.MaxTasksPerWorker(7),
		affine(&l),
	)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for i := range 200 {
		wg.Add(1)
		err := p.GoReport(t.Context(), func(ctx context.Context, a *Affine) error {
			if tid := syscall.Gettid(); tid != a.tid {
				return fmt.Errorf("task %d on thread %d, its resource opened on %d", i, tid, a.tid)
			}
			runtime.Gosched() // a chance to move, were the goroutine not locked
			if i%50 == 0 {
				panic("rebuild") // rebuilt on the same thread
			}
			return nil
		}, func(o workerpool.Outcome, err error) {
			defer wg.Done()
			if o == workerpool.Failed {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	// A Goexit ends the thread: the worker goes on on a fresh one, and
	// closes the resources of the old one there.
	var goexited resources.Worker
	if err := p.Do(t.Context(), func(_ context.Context, a *Affine) error {
		goexited = a.w
		runtime.Goexit()
		return nil
	}); !errors.Is(err, workerpool.ErrGoexit) {
		t.Errorf("Do() = %v, want ErrGoexit", err)
	}
	for range 20 {
		if err := p.Do(t.Context(), func(_ context.Context, a *Affine) error {
			if tid := syscall.Gettid(); tid != a.tid {
				return fmt.Errorf("after Goexit: task on thread %d, resource on %d", tid, a.tid)
			}
			return nil
		}); err != nil {
			t.Error(err)
		}
	}
	app.RequireStop()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.errs {
		if e != fmt.Sprintf("close of worker %d/%d on a second thread", goexited.ID, goexited.Generation) {
			t.Error(e)
		}
	}
	if len(l.seen) < 3+200/7 {
		t.Errorf("%d generations seen, want at least %d (recycling every 7 tasks)", len(l.seen), 3+200/7)
	}
}

// A task that unlocks the thread: the worker notices once it has moved and
// opens fresh resources on a locked thread.
func TestLockOSThreadNoticesAnUnlockedThread(t *testing.T) {
	var l threadLog
	p, _ := start[*Affine](t, workerpool.LockOSThread(), workerpool.Workers(1), affine(&l))
	if err := p.Do(t.Context(), func(context.Context, *Affine) error {
		runtime.UnlockOSThread()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Move the goroutine: a locked goroutine elsewhere keeps its thread
	// busy, and the scheduler puts the worker on another.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		err := p.Do(t.Context(), func(_ context.Context, a *Affine) error {
			if tid := syscall.Gettid(); tid != a.tid {
				return fmt.Errorf("task on thread %d, resource on %d", tid, a.tid)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if p.Stats().Restarts > 0 {
			return // noticed and rebuilt
		}
		done := make(chan struct{})
		go func() { runtime.LockOSThread(); time.Sleep(time.Millisecond); runtime.UnlockOSThread(); close(done) }()
		<-done
	}
	t.Log("the unlocked worker never moved within 5s: nothing to notice")
}
