package workerpool_test

// Round 8: errgroup's recursive pattern — tasks that call Group.Go (and
// Group.TryGo) for their children while Wait is already waiting. Wait
// "blocks until every task submitted to the group has finished": a child
// submitted by a running task is submitted before its parent finishes, so
// Wait must see it.

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/workerpool"
)

func TestAttack8GroupTreeFromInsideTasks(t *testing.T) {
	for _, q := range []int{0, 4, 2048} {
		t.Run(fmt.Sprintf("queue=%d", q), func(t *testing.T) {
			// QueueSize(0) with 4 workers: a parent blocked in Go holds its
			// worker; only tryGo-children are safe there. With a big queue
			// every child fits.
			p, _ := atkStart[W](t, fmt.Sprintf("a8tree%d", q), workerpool.Workers(4), workerpool.QueueSize(q))
			for round := range 20 {
				g, gctx := p.Group(context.Background())
				var ran, tried, tryRefused atomic.Int64
				const depth = 6 // binary tree: 2^7-1 = 127 nodes when every Go is taken
				var node func(d int) func(context.Context, W) error
				node = func(d int) func(context.Context, W) error {
					return func(ctx context.Context, _ W) error {
						ran.Add(1)
						if d == depth {
							time.Sleep(10 * time.Microsecond)
							return nil
						}
						for range 2 {
							if q == 2048 {
								g.Go(node(d + 1))
							} else {
								tried.Add(1)
								if !g.TryGo(node(d + 1)) {
									tryRefused.Add(1)
									// run the child inline, as a caller of a full pool would
									if err := node(d+1)(ctx, W{}); err != nil {
										return err
									}
								}
							}
						}
						return nil
					}
				}
				g.Go(node(0))
				done := make(chan error, 1)
				go func() { done <- g.Wait() }()
				select {
				case err := <-done:
					if err != nil {
						t.Fatalf("round %d: Wait = %v", round, err)
					}
				case <-time.After(20 * time.Second):
					t.Fatalf("round %d: Wait hung; ran %d; Stats %+v", round, ran.Load(), p.Stats())
				}
				if n := ran.Load(); n != 127 {
					t.Fatalf("round %d: Wait returned nil after %d of 127 nodes ran (TryGo tried %d, refused %d)", round, n, tried.Load(), tryRefused.Load())
				}
				if gctx.Err() == nil {
					t.Fatalf("round %d: group context not done after Wait", round)
				}
			}
		})
	}
}

// A failing leaf deep in the tree: Wait returns its error (the first
// failure), never before the tasks already running have finished, and
// no task of the group begins after Wait returned.
func TestAttack8GroupTreeFailureStopsTheTree(t *testing.T) {
	p, _ := atkStart[W](t, "a8treefail", workerpool.Workers(4), workerpool.QueueSize(4096))
	boom := errors.New("boom")
	for round := range 20 {
		g, gctx := p.Group(context.Background())
		var running, afterFailure atomic.Int64
		var failed, waited atomic.Bool
		var node func(d, i int) func(context.Context, W) error
		node = func(d, i int) func(context.Context, W) error {
			return func(ctx context.Context, _ W) error {
				running.Add(1)
				defer running.Add(-1)
				if waited.Load() {
					afterFailure.Add(1)
				}
				if d == 5 && i == 7 {
					failed.Store(true)
					return boom
				}
				if d == 8 {
					return nil
				}
				g.Go(node(d+1, 2*i))
				g.Go(node(d+1, 2*i+1))
				return nil
			}
		}
		g.Go(node(0, 0))
		var err error
		within(t, "Wait", func() { err = g.Wait() })
		waited.Store(true)
		if !errors.Is(err, boom) {
			t.Fatalf("round %d: Wait = %v, want boom", round, err)
		}
		if !errors.Is(context.Cause(gctx), boom) {
			t.Fatalf("round %d: group cause = %v, want boom", round, context.Cause(gctx))
		}
		if n := running.Load(); n != 0 {
			t.Fatalf("round %d: Wait returned with %d tasks still running", round, n)
		}
		time.Sleep(2 * time.Millisecond)
		if n := afterFailure.Load(); n != 0 {
			t.Fatalf("round %d: %d tasks of the group began after Wait returned", round, n)
		}
	}
}
