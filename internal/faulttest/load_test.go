package faulttest

import (
	"context"
	"errors"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
	"go.uber.org/goleak"
)

// loadRes is the per-worker resource of the load test: each worker counts
// the tasks it ran in its own.
type loadRes struct{ ran atomic.Int64 }

// heapBound is how far HeapInuse may rise above its level before the load:
// a pool that kept as little as 8 bytes per task would pass it with 10M
// tasks.
const heapBound = 64 << 20

// TestLoadStopAtRandomMoment pushes millions of tiny tasks from 64
// submitters into a 64-worker pool and stops it at a random moment: every
// accepted task either ran or was reported as not run, exactly, and the
// heap stays flat.
func TestLoadStopAtRandomMoment(t *testing.T) {
	total := 10_000_000 // with or without -race: about 1s and 8s on 2 cores
	if testing.Short() {
		total /= 10
	}
	const submitters, workers = 64, 64
	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, seed))
	stopAt := int64(total/4 + rng.IntN(total*3/4))
	policy := []workerpool.StopPolicy{workerpool.Drain, workerpool.Cancel}[rng.IntN(2)]
	budget := []time.Duration{time.Millisecond, 50 * time.Millisecond, 30 * time.Second}[rng.IntN(3)]
	t.Logf("seed %#x: %d tasks, stop after about %d submitted, %v, stop budget %v", seed, total, stopAt, policy, budget)

	var (
		mu        sync.Mutex
		res       []*loadRes
		handled   atomic.Int64 // ErrClosed given to the ErrorHandler
		dropped   atomic.Int64 // OnDropped calls
		otherErrs atomic.Int64
		pool      *workerpool.Pool[*loadRes]
	)
	app := fx.New(
		fx.NopLogger,
		workerpool.Provide[*loadRes]("load",
			workerpool.Workers(workers),
			workerpool.OnStop(policy),
			workerpool.Resources(resources.PerWorker(func() *loadRes {
				r := &loadRes{}
				mu.Lock()
				res = append(res, r)
				mu.Unlock()
				return r
			})),
			workerpool.ErrorHandler(func(err error) {
				if errors.Is(err, workerpool.ErrClosed) {
					handled.Add(1)
				} else {
					otherErrs.Add(1)
				}
			}),
			workerpool.OnDropped(func(_ context.Context, _ func(context.Context, *loadRes) error) { dropped.Add(1) }),
		),
		fx.Populate(&pool),
	)
	if err := app.Err(); err != nil {
		t.Fatal(err)
	}
	before := goleak.IgnoreCurrent()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	baseHeap := ms.HeapInuse

	startCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := app.Start(startCtx); err != nil {
		t.Fatal(err)
	}

	// Sample the heap while the load runs.
	var (
		peakHeap uint64
		samples  int
		sampling = make(chan struct{})
		sampled  = make(chan struct{})
	)
	go func() {
		defer close(sampled)
		tick := time.NewTicker(25 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-sampling:
				return
			case <-tick.C:
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			peakHeap = max(peakHeap, ms.HeapInuse)
			samples++
		}
	}()

	var (
		progress atomic.Int64 // submitted, updated every 1024
		accepted atomic.Int64
		refused  atomic.Int64
		wg       sync.WaitGroup
		task     = func(_ context.Context, r *loadRes) error { r.ran.Add(1); return nil }
	)
	for range submitters {
		wg.Go(func() {
			ctx := context.Background()
			var ok, no int64
			for i := range total / submitters {
				if err := pool.Go(ctx, task); err == nil {
					ok++
				} else {
					no++
				}
				if i%1024 == 1023 {
					progress.Add(1024)
				}
			}
			accepted.Add(ok)
			refused.Add(no)
		})
	}
	began := time.Now()
	for progress.Load() < stopAt && time.Since(began) < 10*time.Minute {
		time.Sleep(time.Millisecond)
	}
	stopCtx, cancelStop := context.WithTimeout(context.Background(), budget)
	defer cancelStop()
	stopErr := app.Stop(stopCtx)
	if stopCtx.Err() != nil {
		// fx runs no OnStop once its context has ended: with a budget of
		// 1 ms on a busy machine, it may skip the pool's. Stop the pool
		// as fx would have had the deadline passed just as it called it.
		// (If its OnStop ran, this waits for that stop.)
		_ = pool.Stop(stopCtx, policy)
	}
	wg.Wait()
	took := time.Since(began)
	close(sampling)
	<-sampled

	// With a short budget, Stop returns before the workers finish; wait for
	// every goroutine to end before counting.
	if err := goleak.Find(before); err != nil {
		t.Fatalf("goroutines left after Stop: %v", err)
	}
	var ran int64
	for _, r := range res {
		ran += r.ran.Load()
	}
	acc, notRun := accepted.Load(), dropped.Load()
	t.Logf("%v: %d accepted, %d refused, %d ran, %d reported not run; Stop: %v; heap in use %d MiB before, peak %d MiB over %d samples",
		took.Round(time.Millisecond), acc, refused.Load(), ran, notRun, stopErr, baseHeap>>20, peakHeap>>20, samples)
	if acc+refused.Load() != int64(total/submitters*submitters) {
		t.Errorf("accepted %d + refused %d != submitted %d", acc, refused.Load(), total)
	}
	if ran+notRun != acc {
		t.Errorf("ran %d + reported not run %d = %d, want accepted %d", ran, notRun, ran+notRun, acc)
	}
	if h := handled.Load(); h != notRun {
		t.Errorf("ErrorHandler got ErrClosed %d times, OnDropped %d", h, notRun)
	}
	if n := otherErrs.Load(); n != 0 {
		t.Errorf("ErrorHandler got %d other errors", n)
	}
	if st := pool.Stats(); st.Done != uint64(ran) || st.Dropped != uint64(notRun) {
		t.Errorf("Stats: done %d, dropped %d; counted %d ran, %d not run", st.Done, st.Dropped, ran, notRun)
	}
	if peakHeap > baseHeap+heapBound {
		t.Errorf("heap in use peaked at %d MiB, %d MiB above its level before the load: it grows with the tasks",
			peakHeap>>20, (peakHeap-baseHeap)>>20)
	}
}
