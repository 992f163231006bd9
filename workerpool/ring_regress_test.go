package workerpool_test

// Regression tests of this round's findings in the pool's stop.

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/workerpool"
)

// TestSecondStopWhileTheGrowerLaunches: a second Stop whose budget ends
// while the first is still stopping its feeders names the workers still
// running; meanwhile the elastic pool still takes tasks and grows. The
// second stop read each worker's exit channel while the grower made new
// ones, unsynchronized: the race detector caught it in the soak.
func TestSecondStopWhileTheGrowerLaunches(t *testing.T) {
	p, _ := atkStart[W](t, "second-stop-grower",
		workerpool.Elastic(0, 64, time.Millisecond), workerpool.QueueSize(1))
	feederStopping := make(chan struct{})
	if err := p.AddFeeder(func(ctx context.Context) error {
		close(feederStopping)
		time.Sleep(200 * time.Millisecond) // keeps the first stop in its feeders' share
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var (
		wg   sync.WaitGroup
		quit atomic.Bool
	)
	for range 4 {
		wg.Go(func() {
			for !quit.Load() {
				err := p.Go(context.Background(), func(context.Context, W) error {
					time.Sleep(100 * time.Microsecond)
					return nil
				})
				if err != nil {
					return
				}
			}
		})
	}
	first := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		first <- p.Stop(ctx, workerpool.Drain)
	}()
	<-feederStopping
	for range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		err := p.Stop(ctx, workerpool.Drain)
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("second Stop: %v, want nil or the deadline", err)
		}
	}
	quit.Store(true)
	wg.Wait()
	if err := <-first; err != nil {
		t.Errorf("first Stop: %v", err)
	}
}
