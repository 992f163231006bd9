package workerpool_test

// Round 8: conc's WithMaxGoroutines / tunny's fixed size — a pool never runs
// more tasks at once than its workers (MaxWorkers: "the most workers the pool
// runs at once"), whatever the API, through recycles (MaxTasksPerWorker),
// restarts (panic, Goexit, ErrBroken) and elastic growth and retirement. And
// each worker owns one set of resources: never more live sets than workers.

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

type a8Res struct{ w resources.Worker }

type a8BoundDeps struct {
	fx.In
	R *a8Res
	W resources.Worker
}

type a8Gauge struct{ cur, max atomic.Int64 }

func (g *a8Gauge) up() {
	n := g.cur.Add(1)
	for {
		m := g.max.Load()
		if n <= m || g.max.CompareAndSwap(m, n) {
			return
		}
	}
}
func (g *a8Gauge) down() { g.cur.Add(-1) }

func TestAttack8NeverMoreTasksOrResourcesThanWorkers(t *testing.T) {
	cases := []struct {
		name string
		max  int
		opts []workerpool.Option
	}{
		{"fixed1", 1, []workerpool.Option{workerpool.Workers(1), workerpool.QueueSize(8)}},
		{"fixed1q0", 1, []workerpool.Option{workerpool.Workers(1), workerpool.QueueSize(0)}},
		{"fixed3recycle", 3, []workerpool.Option{workerpool.Workers(3), workerpool.MaxTasksPerWorker(2)}},
		{"elastic0to3", 3, []workerpool.Option{workerpool.Elastic(0, 3, time.Millisecond), workerpool.QueueSize(4)}},
		{"elastic1to2recycle", 2, []workerpool.Option{workerpool.Elastic(1, 2, 500*time.Microsecond), workerpool.MaxTasksPerWorker(3), workerpool.QueueSize(1)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var tasks, live a8Gauge
			var opens, closes atomic.Int64
			opts := append([]workerpool.Option{
				workerpool.ErrorHandler(func(error) {}),
				workerpool.Resources(resources.PerWorker(func(w resources.Worker) (*a8Res, func(), error) {
					live.up()
					opens.Add(1)
					return &a8Res{w}, func() { live.down(); closes.Add(1) }, nil
				})),
			}, c.opts...)
			p, app := atkStart[a8BoundDeps](t, "a8bound"+c.name, opts...)
			body := func(i int) func(context.Context, a8BoundDeps) error {
				return func(ctx context.Context, d a8BoundDeps) error {
					tasks.up()
					defer tasks.down()
					if d.R == nil || d.R.w != d.W {
						t.Errorf("task %d: resource %+v of another worker than %+v", i, d.R, d.W)
					}
					if i%5 == 0 {
						runtime.Gosched()
					}
					switch i % 37 {
					case 11:
						panic("a8 panic")
					case 23:
						runtime.Goexit()
					case 31:
						return fmt.Errorf("a8: %w", resources.ErrBroken)
					}
					return nil
				}
			}
			var wg sync.WaitGroup
			for g := range 6 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ctx := context.Background()
					for i := range 150 {
						n := g*1000 + i
						var err error
						switch (g + i) % 5 {
						case 0:
							err = p.Go(ctx, body(n))
						case 1:
							err = p.Do(ctx, body(n))
						case 2:
							var f *workerpool.Future[int]
							f, err = workerpool.Submit(ctx, p, func(ctx context.Context, d a8BoundDeps) (int, error) { return 0, body(n)(ctx, d) })
							if err == nil {
								_, err = f.Wait(ctx)
							}
						case 3:
							g, _ := p.Group(ctx)
							g.Go(body(n))
							g.Go(body(n + 500))
							err = g.Wait()
						case 4:
							if !p.TryGo(body(n)) {
								time.Sleep(50 * time.Microsecond)
							}
						}
						var pe *workerpool.PanicError
						if err != nil && !errors.As(err, &pe) && !errors.Is(err, workerpool.ErrGoexit) && !errors.Is(err, resources.ErrBroken) {
							t.Errorf("submit %d: %v", n, err)
							return
						}
						if i%40 == 0 {
							time.Sleep(3 * time.Millisecond) // let elastic workers retire
						}
					}
				}()
			}
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			atkWait(t, "load", 60*time.Second, done)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := app.Stop(ctx); err != nil {
				t.Errorf("Stop: %v", err)
			}
			if m := tasks.max.Load(); m > int64(c.max) {
				t.Errorf("%d tasks ran at once on a pool of at most %d workers", m, c.max)
			}
			if m := live.max.Load(); m > int64(c.max) {
				t.Errorf("%d sets of resources were open at once on a pool of at most %d workers (opens %d)", m, c.max, opens.Load())
			}
			if opens.Load() != closes.Load() {
				t.Errorf("opens %d, closes %d", opens.Load(), closes.Load())
			}
			t.Logf("max tasks %d, max live sets %d, opens %d, stats %+v", tasks.max.Load(), live.max.Load(), opens.Load(), p.Stats())
		})
	}
}
