//go:build linux

package workerpool_test

// Round 10: LockOSThread and a constructor that grows its goroutine's stack.
// The docs: "LockOSThread locks each worker's goroutine to an OS thread of
// its own, from its first open to its last close, rebuilds included". A
// worker that serves on a fresh goroutine once its open grew the stack must
// not leave its thread behind: the open, every task and the close of a
// generation run on one thread, and no two live workers share one.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
)

type A10Aff struct {
	tid int
	w   W
}

type a10tlog struct {
	mu     sync.Mutex
	opened map[string]int // worker/gen -> tid
	errs   []string
	closes int
	opens  int
}

func (l *a10tlog) errf(f string, a ...any) {
	l.mu.Lock()
	l.errs = append(l.errs, fmt.Sprintf(f, a...))
	l.mu.Unlock()
}

func TestAttack10LockOSThreadDeepOpen(t *testing.T) {
	for _, kib := range []int{0, 64} {
		for _, rebuild := range []string{"none", "broken", "maxtasks"} {
			t.Run(fmt.Sprintf("stack%dKiB/%s", kib, rebuild), func(t *testing.T) {
				l := &a10tlog{opened: map[string]int{}}
				key := func(w W) string { return fmt.Sprintf("%d/%d", w.ID, w.Generation) }
				opts := []workerpool.Option{
					workerpool.LockOSThread(), workerpool.Workers(4), workerpool.QueueSize(0),
					workerpool.Resources(resources.PerWorker(func(w W) (*A10Aff, func(), error) {
						deep(kib)
						tid := syscall.Gettid()
						l.mu.Lock()
						l.opened[key(w)] = tid
						l.opens++
						l.mu.Unlock()
						return &A10Aff{tid, w}, func() {
							if got := syscall.Gettid(); got != tid {
								l.errf("close of %s on thread %d, opened on %d", key(w), got, tid)
							}
							l.mu.Lock()
							l.closes++
							l.mu.Unlock()
						}, nil
					})),
				}
				if rebuild == "maxtasks" {
					opts = append(opts, workerpool.MaxTasksPerWorker(3))
				}
				var p *workerpool.Pool[*A10Aff]
				app := a10app(t, &p, "a10thr", nil, opts...)
				ctx, cancel := a10ctx(20 * time.Second)
				defer cancel()
				if err := app.Start(ctx); err != nil {
					t.Fatal(err)
				}
				// Hold all four workers at once: their threads must differ.
				var wg sync.WaitGroup
				tids := make(chan int, 4)
				barrier := make(chan struct{})
				var arrived sync.WaitGroup
				arrived.Add(4)
				for range 4 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						err := p.Do(ctx, func(_ context.Context, a *A10Aff) error {
							tids <- syscall.Gettid()
							arrived.Done()
							<-barrier
							return nil
						})
						if err != nil {
							l.errf("Do: %v", err)
						}
					}()
				}
				a10within(t, "4 workers busy at once", 15*time.Second, arrived.Wait)
				close(barrier)
				wg.Wait()
				close(tids)
				seen := map[int]bool{}
				for tid := range tids {
					if seen[tid] {
						t.Errorf("two workers ran on thread %d at once", tid)
					}
					seen[tid] = true
				}
				for i := range 40 {
					err := p.Do(ctx, func(_ context.Context, a *A10Aff) error {
						if got := syscall.Gettid(); got != a.tid {
							l.errf("task %d of %d/%d on thread %d, opened on %d", i, a.w.ID, a.w.Generation, got, a.tid)
						}
						if rebuild == "broken" && i%3 == 0 {
							return fmt.Errorf("again: %w", resources.ErrBroken)
						}
						return nil
					})
					if err != nil && !errors.Is(err, resources.ErrBroken) {
						t.Fatalf("Do %d: %v", i, err)
					}
				}
				if err := app.Stop(ctx); err != nil {
					t.Fatal(err)
				}
				l.mu.Lock()
				defer l.mu.Unlock()
				for _, e := range l.errs {
					t.Error(e)
				}
				if l.opens != l.closes {
					t.Errorf("%d opens, %d closes", l.opens, l.closes)
				}
				if rebuild != "none" && l.opens <= 4 {
					t.Errorf("no rebuild happened: %d opens", l.opens)
				}
			})
		}
	}
}
