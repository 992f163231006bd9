package workerpool_test

// Round 6: Stop racing TryGo and Go churn must return within its budget.
// "It blocks until the pool has stopped or nine tenths of ctx's budget are
// gone." Once (1 run in about 3,000 of this scenario, GOMAXPROCS 2, -race),
// a Stop(Drain) with a 25s budget was seen spinning for over a minute in the
// pool's wakeWaiting (runtime.Gosched in a loop, stop.go:123), while the one
// worker left was parked in ring.Pop(nil, nil). This test repeats the scenario
// with a hang guard; it has not reproduced that hang again.

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/fxpool/fxpool/workerpool"
)

func TestAttack6_StopRacingTryGoReturns(t *testing.T) {
	deadline := time.Now().Add(10 * time.Second)
	rounds := 0
	for round := 0; time.Now().Before(deadline); round++ {
		rounds++
		q := []int{100000, 0, 3}[round%3]
		p, _ := atkStart[W](t, "a6stophang", workerpool.Workers(2), workerpool.QueueSize(q),
			workerpool.OnDropped[W](func(context.Context, func(context.Context, W) error) {}),
			workerpool.ErrorHandler(func(error) {}))
		var wg sync.WaitGroup
		started := make(chan struct{})
		var once sync.Once
		for s := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i <= 3000; i++ {
					if i == 20 {
						once.Do(func() { close(started) })
					}
					task := func(context.Context, W) error { return nil }
					if s == 0 && round%2 == 0 {
						if p.Go(context.Background(), task) != nil {
							return
						}
					} else if !p.TryGo(task) && p.Stats().Workers == 0 {
						return
					}
				}
			}()
		}
		atkWait(t, "submitters", 20*time.Second, started)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		done := make(chan error, 1)
		go func() { done <- p.Stop(ctx, workerpool.Drain) }()
		select {
		case <-done:
		case <-time.After(12 * time.Second):
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("round %d (QueueSize %d): Stop with a 5s budget still running after 12s; Stats %+v\n%s", round, q, p.Stats(), buf)
		}
		cancel()
		wg.Wait()
	}
	t.Logf("%d rounds", rounds)
}
