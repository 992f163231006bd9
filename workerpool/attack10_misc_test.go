package workerpool_test

// Round 10: odds and ends on the paths that changed.
//   - a QueueSize(0) pool whose workers' opens grew their stacks: every
//     worker is reachable by TryGo (a worker that serves on a fresh goroutine
//     waits for tasks like any other) and a fifth TryGo is refused while all
//     four are busy;
//   - a stop whose cleanups ignore their context, among many workers some of
//     whose opens grew their stacks: the stop returns an error naming each
//     stuck worker and its resource, and once the cleanups return every
//     resource has closed exactly once (goleak in TestMain).

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
	"go.uber.org/zap"
)

func TestAttack10HandOffPoolTryGo(t *testing.T) {
	for _, kib := range []int{0, 96} {
		for _, locked := range []bool{false, true} {
			t.Run(fmt.Sprintf("%dKiB/locked=%v", kib, locked), func(t *testing.T) {
				opts := []workerpool.Option{workerpool.Workers(4), workerpool.QueueSize(0),
					workerpool.Resources(resources.PerWorker(func() *A10Deep { return &A10Deep{sum: deep(kib)} }))}
				if locked {
					opts = append(opts, workerpool.LockOSThread())
				}
				var p *workerpool.Pool[*A10Deep]
				app := a10app(t, &p, "a10q0", nil, opts...)
				ctx, cancel := a10ctx(20 * time.Second)
				defer cancel()
				if err := app.Start(ctx); err != nil {
					t.Fatal(err)
				}
				release := make(chan struct{})
				var running atomic.Int32
				accepted := 0
				deadline := time.Now().Add(10 * time.Second)
				for accepted < 4 && time.Now().Before(deadline) {
					if p.TryGo(func(context.Context, *A10Deep) error { running.Add(1); <-release; return nil }) {
						accepted++
					} else {
						time.Sleep(time.Millisecond)
					}
				}
				if accepted != 4 {
					t.Fatalf("only %d of 4 idle workers took a TryGo within 10s", accepted)
				}
				atkPoll(t, "4 running", 10*time.Second, func() bool { return running.Load() == 4 })
				if p.TryGo(func(context.Context, *A10Deep) error { return nil }) {
					t.Error("a fifth TryGo was taken while every worker of a QueueSize(0) pool was busy")
				}
				close(release)
				if err := app.Stop(ctx); err != nil {
					t.Error(err)
				}
			})
		}
	}
}

func TestAttack10StuckCleanupsNamed(t *testing.T) {
	const workers = 300
	stuck := map[int]bool{7: true, 150: true, 299: true}
	release := make(chan struct{})
	var mu sync.Mutex
	opened, closed := map[int]int{}, map[int]int{}
	var p *workerpool.Pool[*A10C]
	app := a10app(t, &p, "a10stuck", []fx.Option{fx.Supply(zap.NewNop())},
		workerpool.Workers(workers),
		workerpool.Resources(resources.PerWorker(func(w W) (*A10C, func(), error) {
			if w.ID%2 == 0 {
				deep(64)
			}
			mu.Lock()
			opened[w.ID]++
			mu.Unlock()
			return &A10C{w}, func() {
				if stuck[w.ID] {
					<-release
				}
				mu.Lock()
				closed[w.ID]++
				mu.Unlock()
			}, nil
		}, resources.Name("stuckres"))))
	ctx, cancel := a10ctx(20 * time.Second)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var err error
	a10within(t, "a stop of 300ms", 20*time.Second, func() {
		sctx, scancel := a10ctx(300 * time.Millisecond)
		defer scancel()
		err = p.Stop(sctx, workerpool.Drain)
	})
	if err == nil {
		t.Fatal("a stop with three cleanups stuck past its budget returned nil")
	}
	msg := err.Error()
	for id := range stuck {
		if !strings.Contains(msg, fmt.Sprintf("worker %d", id)) {
			t.Errorf("the stop's error does not name stuck worker %d: %v", id, err)
		}
	}
	if !strings.Contains(msg, "stuckres") {
		t.Errorf("the stop's error does not name the resource: %v", err)
	}
	close(release)
	_ = app.Stop(ctx)
	atkPoll(t, "the stuck workers close on their own", 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for id := range stuck {
			if closed[id] != 1 {
				return false
			}
		}
		return true
	})
	mu.Lock()
	defer mu.Unlock()
	for id := range workers {
		if opened[id] != 1 || closed[id] != 1 {
			t.Errorf("worker %d: opened %d, closed %d", id, opened[id], closed[id])
		}
	}
}
