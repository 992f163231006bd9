package workerpool_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

// startPool starts an app holding one pool and returns the pool; the app
// stops when the benchmark ends.
func startPool[R any](b *testing.B, opts ...workerpool.Option) *workerpool.Pool[R] {
	b.Helper()
	var p *workerpool.Pool[R]
	app := fx.New(fx.NopLogger, workerpool.Provide[R]("bench", opts...), fx.Populate(&p))
	if err := app.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := app.Stop(context.Background()); err != nil {
			b.Error(err)
		}
	})
	return p
}

func nop(context.Context, resources.Worker) error { return nil }

// BenchmarkGo compares Go with a trivial task against the floor: a
// hand-written loop of W goroutines reading func() tasks from a channel of
// the same size, in the same run.
func BenchmarkGo(b *testing.B) {
	const queue = 8
	for _, workers := range []int{2, 64} {
		b.Run(fmt.Sprintf("W=%d/impl=floor", workers), func(b *testing.B) {
			b.ReportAllocs()
			q := make(chan func(), queue)
			var wg sync.WaitGroup
			for range workers {
				wg.Go(func() {
					for f := range q {
						f()
					}
				})
			}
			f := func() {}
			for b.Loop() {
				q <- f
			}
			close(q)
			wg.Wait()
		})
		b.Run(fmt.Sprintf("W=%d/impl=fxpool", workers), func(b *testing.B) {
			b.ReportAllocs()
			p := startPool[resources.Worker](b, workerpool.Workers(workers), workerpool.QueueSize(queue))
			ctx := context.Background()
			for b.Loop() {
				if err := p.Go(ctx, nop); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDo measures request/response with 64 concurrent callers: Do
// against Submit and Future.Wait, and Do with a cancellable context.
func BenchmarkDo(b *testing.B) {
	cancelled, cancel := context.WithCancel(context.Background())
	defer cancel()
	tests := []struct {
		name string
		ctx  context.Context
		call func(context.Context, *workerpool.Pool[resources.Worker]) error
	}{
		{"impl=do", context.Background(), func(ctx context.Context, p *workerpool.Pool[resources.Worker]) error {
			return p.Do(ctx, nop)
		}},
		{"impl=do-cancellable", cancelled, func(ctx context.Context, p *workerpool.Pool[resources.Worker]) error {
			return p.Do(ctx, nop)
		}},
		{"impl=submit", context.Background(), func(ctx context.Context, p *workerpool.Pool[resources.Worker]) error {
			f, err := workerpool.Submit(ctx, p, func(context.Context, resources.Worker) (int, error) { return 1, nil })
			if err != nil {
				return err
			}
			_, err = f.Wait(ctx)
			return err
		}},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			b.ReportAllocs()
			p := startPool[resources.Worker](b, workerpool.Workers(2))
			b.SetParallelism(32) // 64 callers on 2 cores
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := tt.call(tt.ctx, p); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkStartStop starts and stops 1,000 workers whose resource takes
// 10 ms to open and 10 ms to close: the workers open in parallel, so each
// phase costs about one open, not a thousand. Reports ms for each phase.
func BenchmarkStartStop(b *testing.B) {
	type Slow struct{}
	var start, stop time.Duration
	for b.Loop() {
		app := fx.New(fx.NopLogger,
			workerpool.Provide[*Slow]("slow",
				workerpool.Workers(1000),
				workerpool.Resources(resources.PerWorker(func() (*Slow, func(), error) {
					time.Sleep(10 * time.Millisecond)
					return &Slow{}, func() { time.Sleep(10 * time.Millisecond) }, nil
				})),
			),
			fx.Invoke(func(*workerpool.Pool[*Slow]) {}),
		)
		t0 := time.Now()
		if err := app.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := app.Stop(context.Background()); err != nil {
			b.Fatal(err)
		}
		start += t1.Sub(t0)
		stop += time.Since(t1)
	}
	b.ReportMetric(float64(start.Milliseconds())/float64(b.N), "start-ms/op")
	b.ReportMetric(float64(stop.Milliseconds())/float64(b.N), "stop-ms/op")
}

// BenchmarkMap compares Map with a hand-written ordered fan-out: W
// goroutines read indexed inputs from a channel and write each result into
// its slot of a window; the consumer reads the window in order. Both keep at
// most 2W inputs in flight and run the same ~1µs function.
func BenchmarkMap(b *testing.B) {
	const workers = 2
	const window = 2 * workers
	work := func(x int) int {
		s := x
		for i := range 300 {
			s = s*31 + i
		}
		return s
	}
	b.Run("impl=floor", func(b *testing.B) {
		b.ReportAllocs()
		type job struct{ i, x int }
		var (
			in    = make(chan job, window)
			slots [window]chan int
			wg    sync.WaitGroup
		)
		for i := range slots {
			slots[i] = make(chan int, 1)
		}
		for range workers {
			wg.Go(func() {
				for j := range in {
					slots[j.i%window] <- work(j.x)
				}
			})
		}
		sum := 0
		i, next := 0, 0
		for b.Loop() {
			if i-next == window {
				sum += <-slots[next%window]
				next++
			}
			in <- job{i, i}
			i++
		}
		for ; next < i; next++ {
			sum += <-slots[next%window]
		}
		close(in)
		wg.Wait()
		sink = sum
	})
	b.Run("impl=fxpool", func(b *testing.B) {
		b.ReportAllocs()
		p := startPool[resources.Worker](b, workerpool.Workers(workers))
		seq := func(yield func(int) bool) {
			for i := 0; b.Loop(); i++ {
				if !yield(i) {
					return
				}
			}
		}
		sum := 0
		for v, err := range workerpool.Map(context.Background(), p, seq, func(_ context.Context, _ resources.Worker, x int) (int, error) {
			return work(x), nil
		}, workerpool.InFlight(window)) {
			if err != nil {
				b.Fatal(err)
			}
			sum += v
		}
		sink = sum
	})
}

var sink int
