package workerpool_test

// Round 6: Resize against the ring's parking. "Removed workers ... a waiting
// worker retires at once." A retired worker that was parked on an empty
// queue must not still count as a free worker: with QueueSize(0), "every
// submission waits for a free worker", so once the remaining workers are all
// busy, TryGo refuses and Go blocks.

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/workerpool"
)

func TestAttack6_ResizeDownQueueZeroNoGhostWorker(t *testing.T) {
	for _, q := range []int{0, 2} {
		for _, from := range []int{2, 8} {
			t.Run(fmt.Sprintf("q%d_from%d", q, from), func(t *testing.T) {
				p, _ := atkStart[W](t, "a6rsz", workerpool.Workers(from), workerpool.QueueSize(q))
				var ran atomic.Int64
				for round := range 10 {
					// All workers idle and parked.
					atkPoll(t, "workers up", 20*time.Second, func() bool { s := p.Stats(); return s.Workers == from && s.Busy == 0 })
					time.Sleep(2 * time.Millisecond)
					if err := p.Resize(1); err != nil {
						t.Fatal(err)
					}
					atkPoll(t, "retired", 20*time.Second, func() bool { return p.Stats().Workers == 1 })
					b := a6Block(t, p, 1)
					for i := range q {
						if !p.TryGo(func(context.Context, W) error { ran.Add(1); return nil }) {
							t.Fatalf("round %d: TryGo %d refused with room in a queue of %d", round, i, q)
						}
					}
					for i := range 50 {
						if p.TryGo(func(context.Context, W) error { ran.Add(1); return nil }) {
							t.Fatalf("round %d: TryGo %d accepted with the one worker busy and a full queue of %d after Resize(1) from %d (Stats %+v)", round, i, q, from, p.Stats())
						}
					}
					b.releaseAll()
					want := int64((round + 1) * q)
					atkPoll(t, "queued run", 20*time.Second, func() bool { return ran.Load() == want })
					if err := p.Resize(from); err != nil {
						t.Fatal(err)
					}
				}
			})
		}
	}
}

// Elastic retirement of parked workers: after the pool shrinks back to min,
// tasks offered with TryGo while everything is busy are bounded by
// Capacity().InFlight(), and every accepted one runs once released.
func TestAttack6_ElasticRetiredWorkersTakeNoTask(t *testing.T) {
	const max = 4
	p, _ := atkStart[W](t, "a6elastic", workerpool.Elastic(1, max, time.Millisecond), workerpool.QueueSize(1))
	c := p.Capacity()
	if c.MaxWorkers != max || c.Queue != 1 || c.InFlight() != max+1 {
		t.Fatalf("Capacity %+v", c)
	}
	var ran atomic.Int64
	total := int64(0)
	for round := range 8 {
		// Grow: max tasks that wait together.
		gate := make(chan struct{})
		for range max {
			if err := p.Go(context.Background(), func(context.Context, W) error { <-gate; ran.Add(1); return nil }); err != nil {
				t.Fatal(err)
			}
		}
		total += max
		atkPoll(t, "grown", 20*time.Second, func() bool { return p.Stats().Busy == max })
		close(gate)
		atkPoll(t, "ran", 20*time.Second, func() bool { return ran.Load() == total })
		atkPoll(t, "retired to min", 20*time.Second, func() bool { return p.Stats().Workers == 1 && p.Stats().Opening == 0 })
		// Offer blocking tasks with TryGo until refused; never more than InFlight.
		gate2 := make(chan struct{})
		accepted := 0
		for i := 0; i < 200; i++ {
			if p.TryGo(func(context.Context, W) error { <-gate2; ran.Add(1); return nil }) {
				accepted++
				if accepted > max+1 {
					t.Fatalf("round %d: TryGo accepted %d blocking tasks; InFlight is %d", round, accepted, max+1)
				}
			}
			time.Sleep(50 * time.Microsecond)
		}
		total += int64(accepted)
		close(gate2)
		atkPoll(t, fmt.Sprintf("round %d: the %d accepted tasks run", round, accepted), 20*time.Second, func() bool { return ran.Load() == total })
	}
	if err := a6Stop(t, p, workerpool.Drain); err != nil {
		t.Fatal(err)
	}
	if s := p.Stats(); s.Done != uint64(total) || s.Dropped != 0 {
		t.Fatalf("Stats %+v, ran %d", s, total)
	}
}
