package workerpool_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
	"go.uber.org/zap"
)

// TestAttack13StopRacingStartAndSubmitters: Pool.Stop at a random moment of
// app.Start (workers whose open takes 0–300 µs), with submitters retrying
// Go, GoReport and Submit from before the start until ErrClosed. No task is
// accepted before the start (ErrNotStarted); every accepted one runs or is
// reported exactly once; a start the stop interrupted fails with ErrClosed;
// every resource that opened closed once.
func TestAttack13StopRacingStartAndSubmitters(t *testing.T) {
	deadline := time.Now().Add(4 * time.Second)
	rounds, startFailed := 0, 0
	for ; rounds < 3000 && time.Now().Before(deadline); rounds++ {
		seed := uint64(time.Now().UnixNano())
		rng := rand.New(rand.NewPCG(seed, 3))
		workers := 1 + rng.IntN(4)
		queue := rng.IntN(3)
		policy := allPolicies13[rng.IntN(3)]
		var opened, closed atomic.Int32
		var p *workerpool.Pool[*res13]
		app := fx.New(fx.NopLogger, fx.Supply(zap.NewNop()),
			workerpool.Provide[*res13]("atk13ss",
				workerpool.Workers(workers),
				workerpool.QueueSize(queue),
				workerpool.ErrorHandler(func(error) {}),
				workerpool.OnDropped(func(ctx context.Context, task func(context.Context, *res13) error) {
					_ = task(context.WithValue(ctx, drop13Key{}, true), nil)
				}),
				workerpool.Resources(resources.PerWorker(func(w W) (*res13, func(), error) {
					time.Sleep(time.Duration(rng2(300)) * time.Microsecond)
					opened.Add(1)
					return &res13{w: w}, func() { closed.Add(1) }, nil
				})),
			),
			fx.Populate(&p))
		if err := app.Err(); err != nil {
			t.Fatal(err)
		}
		type rec struct {
			accepted     bool
			ran, dropped atomic.Int32
			reports      atomic.Int32
			futErr       error
			api          int
		}
		recs := make([]*rec, 0, 256)
		var mu sync.Mutex
		var wg sync.WaitGroup
		stopSubs := make(chan struct{})
		for s := 0; s < 2; s++ {
			wg.Add(1)
			go func(s int) {
				defer wg.Done()
				for i := 0; i < 40; i++ {
					select {
					case <-stopSubs:
						return
					default:
					}
					rc := &rec{api: (s + i) % 3}
					task := func(ctx context.Context, _ *res13) error {
						if ctx.Value(drop13Key{}) != nil {
							rc.dropped.Add(1)
						} else {
							rc.ran.Add(1)
						}
						return nil
					}
					var err error
					var fut *workerpool.Future[int]
					switch rc.api {
					case 0:
						err = p.Go(context.Background(), task)
					case 1:
						err = p.GoReport(context.Background(), task, func(workerpool.Outcome, error) { rc.reports.Add(1) })
					case 2:
						fut, err = workerpool.Submit(context.Background(), p, func(ctx context.Context, r *res13) (int, error) { return 0, task(ctx, r) })
					}
					switch {
					case err == nil:
						rc.accepted = true
						if fut != nil {
							wctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
							_, rc.futErr = fut.Wait(wctx)
							cancel()
						}
					case errors.Is(err, workerpool.ErrNotStarted):
						i-- // retry until the pool serves or closes
					case errors.Is(err, workerpool.ErrClosed):
						return
					default:
						t.Errorf("submit: %v", err)
						return
					}
					mu.Lock()
					recs = append(recs, rc)
					mu.Unlock()
				}
			}(s)
		}
		startErr := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			startErr <- app.Start(ctx)
		}()
		time.Sleep(time.Duration(rng.IntN(2500)) * time.Microsecond)
		sctx, scancel := context.WithTimeout(context.Background(), 25*time.Second)
		stopErr := p.Stop(sctx, policy)
		scancel()
		serr := <-startErr
		if serr != nil {
			startFailed++
			if !errors.Is(serr, workerpool.ErrClosed) {
				t.Errorf("round %d: a start interrupted by Pool.Stop failed with %v, want ErrClosed", rounds, serr)
			}
		}
		if stopErr != nil {
			t.Errorf("round %d: Pool.Stop: %v", rounds, stopErr)
		}
		close(stopSubs)
		wg.Wait()
		actx, acancel := context.WithTimeout(context.Background(), 25*time.Second)
		_ = app.Stop(actx)
		acancel()
		for i, rc := range recs {
			ran, dr := rc.ran.Load(), rc.dropped.Load()
			if !rc.accepted {
				continue
			}
			if serr != nil {
				t.Errorf("round %d: task %d accepted by a pool whose start failed", rounds, i)
			}
			if ran+dr != 1 {
				t.Errorf("round %d: task %d (api %d, %v) accepted: ran %d, dropped %d", rounds, i, rc.api, policy, ran, dr)
			}
			if rc.api == 1 && rc.reports.Load() != 1 {
				t.Errorf("round %d: task %d: reported %d times", rounds, i, rc.reports.Load())
			}
			if rc.api == 2 && (rc.futErr == nil) != (ran == 1) {
				t.Errorf("round %d: task %d: Future %v, ran %d", rounds, i, rc.futErr, ran)
			}
		}
		if o, c := opened.Load(), closed.Load(); o != c {
			t.Errorf("round %d: %d resources opened, %d closed", rounds, o, c)
		}
		if t.Failed() {
			t.Fatalf("seed %#x workers %d queue %d %v", seed, workers, queue, policy)
		}
	}
	t.Logf("%d rounds, %d starts interrupted", rounds, startFailed)
}

var rng2Mu sync.Mutex
var rng2Src = rand.New(rand.NewPCG(1, 2))

func rng2(n int) int {
	rng2Mu.Lock()
	defer rng2Mu.Unlock()
	return rng2Src.IntN(n)
}
