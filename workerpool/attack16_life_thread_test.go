//go:build linux

package workerpool_test

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"testing"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
	"go.uber.org/zap"
)

type a16lTid struct{ w resources.Worker }

//go:noinline
func a16lGrowStack(n int) int {
	var buf [512]byte
	buf[n%512] = byte(n)
	if n == 0 {
		return int(buf[0])
	}
	return a16lGrowStack(n-1) + int(buf[n%512])
}

// LockOSThread: a worker's resources are opened, used and closed on one
// thread, from its first open to its last close, rebuilds after a panic and
// recycles included — also when a constructor grows its goroutine's stack a
// lot (a deep cgo-like call chain) before the worker serves.
func TestA16lLockOSThreadOneThreadPerWorkerDeepStack(t *testing.T) {
	for _, deep := range []bool{false, true} {
		t.Run(fmt.Sprintf("deep=%v", deep), func(t *testing.T) {
			var mu sync.Mutex
			tids := map[int]map[string]int{} // worker ID -> what -> tid
			seen := map[int]map[int]bool{}   // worker ID -> tids
			note := func(id int, what string) {
				tid := syscall.Gettid()
				mu.Lock()
				if tids[id] == nil {
					tids[id] = map[string]int{}
					seen[id] = map[int]bool{}
				}
				tids[id][what] = tid
				seen[id][tid] = true
				mu.Unlock()
			}
			var p *workerpool.Pool[*a16lTid]
			app := fx.New(fx.NopLogger, fx.Supply(zap.NewNop()),
				workerpool.Provide[*a16lTid]("locked",
					workerpool.Workers(2),
					workerpool.LockOSThread(),
					workerpool.MaxTasksPerWorker(5),
					workerpool.Resources(resources.PerWorker(func(w resources.Worker) (*a16lTid, func(), error) {
						if deep {
							_ = a16lGrowStack(2000) // about 1 MiB of stack
						}
						note(w.ID, fmt.Sprintf("open g%d", w.Generation))
						return &a16lTid{w: w}, func() { note(w.ID, fmt.Sprintf("close g%d", w.Generation)) }, nil
					})),
				),
				fx.Populate(&p),
			)
			ctx, cancel := a16lCtx(a16lGuard)
			defer cancel()
			if err := app.Start(ctx); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 12; i++ {
				_ = p.Do(ctx, func(_ context.Context, r *a16lTid) error {
					note(r.w.ID, fmt.Sprintf("task g%d", r.w.Generation))
					if i == 3 {
						panic("a16l: rebuild")
					}
					return nil
				})
			}
			if err := app.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			for id, ts := range seen {
				if len(ts) != 1 {
					t.Errorf("worker %d used %d threads: %v", id, len(ts), tids[id])
				}
			}
			if len(seen) == 0 {
				t.Fatal("nothing recorded")
			}
		})
	}
}
