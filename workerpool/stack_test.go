package workerpool_test

import (
	"context"
	"runtime"
	"testing"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
)

// deepConn is made by a constructor that needs a deep stack.
type deepConn struct{ sum int }

// deep uses about depth KiB of stack.
//
//go:noinline
func deep(depth int) int {
	var pad [1024]byte
	pad[depth%len(pad)] = byte(depth)
	if depth == 0 {
		return int(pad[0])
	}
	return deep(depth-1) + int(pad[(depth*7)%len(pad)])
}

// A worker serves on a fresh goroutine when its open grew the stack of the
// one that opened, and on that one when it did not: either way an idle
// worker holds a small stack. This test fails if a worker whose
// constructor needed 32 KiB of stack kept it while idle.
func TestIdleWorkerStackAfterDeepOpen(t *testing.T) {
	const workers = 1000
	for _, tc := range []struct {
		name  string
		depth int // KiB of stack the constructor uses
	}{{"light", 0}, {"deep", 32}} {
		t.Run(tc.name, func(t *testing.T) {
			before := stackInUse()
			pool, app := start[*deepConn](t, workerpool.Workers(workers),
				workerpool.Resources(resources.PerWorker(func() *deepConn { return &deepConn{deep(tc.depth)} })))
			perWorker := (stackInUse() - before) / workers
			ran := make(chan int, workers)
			for range workers {
				if err := pool.Go(context.Background(), func(_ context.Context, c *deepConn) error { ran <- c.sum; return nil }); err != nil {
					t.Fatal(err)
				}
			}
			for range workers {
				<-ran
			}
			app.RequireStop()
			// A goroutine's first stack is 2 KiB; a stack that grew to hold
			// the constructor is 32 KiB or more.
			t.Logf("%d bytes of stack a worker", perWorker)
			if perWorker > 8<<10 {
				t.Errorf("an idle worker holds %d bytes of stack after a constructor that used %d KiB; want a fresh goroutine's", perWorker, tc.depth)
			}
		})
	}
}

// stackInUse is the memory in stack spans after the garbage collector has
// freed the stacks of goroutines that ended.
func stackInUse() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.StackInuse)
}
