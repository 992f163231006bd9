package jetstream_test

// The failing test of the adversarial round, kept as a regression test,
// and the tests of its fix: every message fetched and not settled —
// waiting to enter the pool, queued in it or running — is in the window
// and under the heartbeats; a redelivery of a message still held is not
// handled again; the stop hands back at once what waits to enter the pool.

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/jetstream"
)

// TestAttackWindowOverCapacityRedelivers: with a Window larger than the
// pool's capacity (here 10 against 5), the messages the consumer holds
// beyond what the pool takes get no in-progress heartbeats: they are
// redelivered after AckWait and handled twice, and MaxWindow never reaches
// the window. The default window (the capacity) passes.
func TestAttackWindowOverCapacityRedelivers(t *testing.T) {
	for _, ackWait := range []time.Duration{time.Second, 3 * time.Second} {
		for _, window := range []int{0, 10} {
			t.Run(fmt.Sprintf("AckWait%v/Window%d", ackWait, window), func(t *testing.T) {
				srv := startServer(t, t.TempDir())
				conn := dial(t, srv)
				js := conn.JetStream()
				setupStream(t, js, ackWait, -1)
				pool := startPool(t, 1)
				att := newAttempts()
				var opts []jetstream.Option
				if window > 0 {
					opts = append(opts, jetstream.Window(window))
				}
				c := consume(t, conn, pool, func(ctx context.Context, _ worker, i int) error {
					att.add(ctx, i)
					select {
					case <-time.After(ackWait * 2 / 5):
						return nil
					case <-ctx.Done():
						return ctx.Err()
					}
				}, opts...)
				const n = 10
				publish(t, js, 0, n)
				waitFor(t, attackHang, "all acked", settledAll(t, js, n))
				t.Logf("capacity %d, stats %+v", pool.Capacity().InFlight(), c.Stats())
				for i := range n {
					if got := att.get(i); len(got) != 1 || got[0] != 1 {
						t.Errorf("message %d: deliveries %v, want only the first: redelivered while queued", i, got)
					}
				}
				waitFor(t, attackHang, "nothing pending", func() bool { return c.Stats().Pending == 0 })
				checkSettledOnce(t, c)
			})
		}
	}
}

// TestRedeliveryOfHeldMessageNotHandledAgain: the server delivers again a
// message whose handler still runs (here the handler itself Naks its
// delivery, as a lapse of heartbeats would have the server do): the new
// delivery is counted as a duplicate, not handled, and the running
// handler's ack settles the message.
func TestRedeliveryOfHeldMessageNotHandledAgain(t *testing.T) {
	srv := startServer(t, t.TempDir())
	conn := dial(t, srv)
	js := conn.JetStream()
	setupStream(t, js, 30*time.Second, -1)
	pool := startPool(t, 2)
	att := newAttempts()
	var cons atomic.Pointer[jetstream.Consumer]
	started := make(chan struct{})
	c := consume(t, conn, pool, func(ctx context.Context, _ worker, i int) error {
		att.add(ctx, i)
		if i != 0 {
			return nil
		}
		<-started // cons is set
		d, _ := jetstream.DeliveryFrom(ctx)
		m := d.Meta
		ack := fmt.Sprintf("$JS.ACK.%s.%s.%d.%d.%d.%d.%d", m.Stream, m.Consumer, m.NumDelivered,
			m.Sequence.Stream, m.Sequence.Consumer, m.Timestamp.UnixNano(), m.NumPending)
		if err := js.Conn().Publish(ack, []byte("-NAK")); err != nil {
			return err
		}
		deadline := time.Now().Add(attackHang) // against a hang only
		for cons.Load().Stats().Duplicates == 0 {
			if time.Now().After(deadline) {
				return fmt.Errorf("no redelivery seen in %v", attackHang)
			}
			time.Sleep(5 * time.Millisecond)
		}
		return nil
	})
	cons.Store(c)
	close(started)
	const n = 5
	publish(t, js, 0, n)
	waitFor(t, attackHang, "all acked", settledAll(t, js, n))
	waitFor(t, attackHang, "nothing pending", func() bool { return c.Stats().Pending == 0 })
	for i := range n {
		if got := att.get(i); len(got) != 1 {
			t.Errorf("message %d: deliveries %v, want one: a redelivery of a held message was handled", i, got)
		}
	}
	st := c.Stats()
	if st.Duplicates != 1 || st.Fetched != n+1 || st.Acked != n || st.Naked != 0 {
		t.Errorf("stats %+v: want %d fetched, 1 duplicate, %d acked, none Nak'd", st, n+1, n)
	}
	checkSettledOnce(t, c)
}

// TestStopHandsBackWaiting: with a window over the pool's capacity, the
// messages waiting to enter the pool are in the window; the stop Naks them
// back at once, before the tasks in the pool finish, and lets the one
// being handed over enter the pool and run.
func TestStopHandsBackWaiting(t *testing.T) {
	srv := startServer(t, t.TempDir())
	conn := dial(t, srv)
	js := conn.JetStream()
	setupStream(t, js, 30*time.Second, -1)
	pool := startPool(t, 1)
	capacity := pool.Capacity().InFlight() // 1 running, the rest queued
	window := 2 * capacity
	release := make(chan struct{})
	var mu sync.Mutex
	handled := map[int]int{}
	c := consume(t, conn, pool, func(ctx context.Context, _ worker, i int) error {
		mu.Lock()
		handled[i]++
		mu.Unlock()
		<-release
		return nil
	}, jetstream.Window(window))
	publish(t, js, 0, window)
	// capacity in the pool; the rest waits, one of them in the submitter's
	// hands, blocked until the pool has room.
	waitFor(t, attackHang, "a full window", func() bool {
		st := c.Stats()
		return st.Pending == window && st.Waiting == window-capacity
	})
	if st := c.Stats(); st.MaxWindow != window {
		t.Errorf("stats %+v: MaxWindow, want the window %d", st, window)
	}
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), attackHang)
		defer cancel()
		stopped <- c.Stop(ctx)
	}()
	waitFor(t, attackHang, "the waiting messages handed back", func() bool {
		return c.Stats().Naked == uint64(window-capacity-1)
	})
	close(release)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	st := c.Stats()
	if st.Acked != uint64(capacity+1) || st.Naked != uint64(window-capacity-1) || st.Pending != 0 {
		t.Errorf("stats %+v: want %d acked (the pool's and the one handed over), %d Nak'd", st, capacity+1, window-capacity-1)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, k := range handled {
		if k != 1 {
			t.Errorf("message %d handled %d times", i, k)
		}
	}
	if len(handled) != capacity+1 {
		t.Errorf("%d messages handled, want %d", len(handled), capacity+1)
	}
}
