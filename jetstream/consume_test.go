package jetstream_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/jetstream"
	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	natsjs "github.com/nats-io/nats.go/jetstream"
)

type worker = resources.Worker

// consume starts a consumer on pool and stops it at the end of the test,
// before the pool.
func consume(t *testing.T, conn *jetstream.Conn, pool *workerpool.Pool[worker], h jetstream.Handler[worker, int], opts ...jetstream.Option) *jetstream.Consumer {
	t.Helper()
	c, err := jetstream.Start(t.Context(), conn.JetStream(), pool, testStream, testConsumer, ids(), h, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.Stop(ctx); err != nil {
			t.Error(err)
		}
	})
	return c
}

// settledAll holds once every message up to the stream sequence last is
// settled: acked or Term'd.
func settledAll(t *testing.T, js natsjs.JetStream, last int) func() bool {
	return func() bool {
		info := consumerInfo(t, js)
		return info.NumPending == 0 && info.NumAckPending == 0 && info.AckFloor.Stream >= uint64(last)
	}
}

// TestEveryMessageAcked: messages whose tasks fail once or panic once are
// Nak'd and redelivered, and every message ends acked. Repeated, no run may
// stall: the fetch stalls seen with the Messages iterator held a run for
// about 30 s, where a run takes well under a second; a run over ten times
// the median and over 5 s is one, a margin no busy machine comes near.
func TestEveryMessageAcked(t *testing.T) {
	const n, runs = 10000, 5
	srv := startServer(t, t.TempDir())
	conn := dial(t, srv)
	js := conn.JetStream()
	setupStream(t, js, 30*time.Second, -1)
	pool := startPool(t, 4)

	var took []time.Duration
	for run := range runs {
		s := newSeen()
		var c *jetstream.Consumer
		func() {
			c2, err := jetstream.Start(t.Context(), js, pool, testStream, testConsumer, ids(),
				func(ctx context.Context, _ worker, i int) error {
					d, _ := jetstream.DeliveryFrom(ctx)
					s.add(i)
					if d.Meta.NumDelivered == 1 && i%100 == 7 {
						return errors.New("fails once")
					}
					if d.Meta.NumDelivered == 1 && i%1000 == 3 {
						panic("panics once")
					}
					return nil
				}, jetstream.Backoff(time.Millisecond, 10*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			c = c2
		}()
		began := time.Now()
		publish(t, js, run*n, (run+1)*n)
		waitFor(t, time.Minute, "every message acked", settledAll(t, js, (run+1)*n))
		took = append(took, time.Since(began))
		if err := c.Stop(t.Context()); err != nil {
			t.Fatal(err)
		}
		st := c.Stats()
		if st.Acked != n || st.Termed != 0 || st.Naked != n/100+n/1000 || st.Panics != n/1000 {
			t.Errorf("run %d: stats %+v, want %d acked, %d Nak'd, %d panics", run, st, n, n/100+n/1000, n/1000)
		}
		if lost, _ := s.check((run + 1) * n); len(lost) != run*n {
			t.Errorf("run %d: %d of the %d messages not handled", run, len(lost)-run*n, n)
		}
	}
	sorted := slices.Clone(took)
	slices.Sort(sorted)
	median := sorted[len(sorted)/2]
	t.Logf("%d messages a run: %v (median %v)", n, took, median)
	for i, d := range took {
		if d > 10*median && d > 5*time.Second {
			t.Errorf("run %d took %v, over 10x the median %v: a stall", i, d, median)
		}
	}
}

// TestTermsPoisonMessages: an undecodable message, a permanent error and
// the last of MaxAttempts end Term'd, each given to the dead-letter hook
// with its reason; nothing is left pending.
func TestTermsPoisonMessages(t *testing.T) {
	srv := startServer(t, t.TempDir())
	conn := dial(t, srv)
	js := conn.JetStream()
	setupStream(t, js, 30*time.Second, -1)
	pool := startPool(t, 2)

	var mu sync.Mutex
	var dead []jetstream.DeadLetter
	var attempts atomic.Int32
	c := consume(t, conn, pool, func(_ context.Context, _ worker, i int) error {
		switch i {
		case 1:
			return jetstream.Permanent(errors.New("bad input"))
		case 2:
			attempts.Add(1)
			return errors.New("flaky forever")
		}
		return nil
	}, jetstream.MaxAttempts(3), jetstream.Backoff(time.Millisecond, time.Millisecond),
		jetstream.OnDeadLetter(func(_ context.Context, dl jetstream.DeadLetter) {
			mu.Lock()
			dead = append(dead, dl)
			mu.Unlock()
		}))
	for _, data := range []string{"not a number", "1", "2", "3"} {
		if _, err := js.Publish(t.Context(), "tasks.n", []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "all settled", settledAll(t, js, 4))
	waitFor(t, time.Second, "three dead letters", func() bool { mu.Lock(); defer mu.Unlock(); return len(dead) == 3 })

	mu.Lock()
	defer mu.Unlock()
	slices.SortFunc(dead, func(a, b jetstream.DeadLetter) int { return int(a.Meta.Sequence.Stream) - int(b.Meta.Sequence.Stream) })
	wantReasons := []string{"undecodable", "permanent: bad input", "attempt 3 of 3 failed: flaky forever"}
	for i, dl := range dead {
		if !strings.Contains(dl.Reason, wantReasons[i]) {
			t.Errorf("dead letter %d: reason %q, want it to contain %q", i, dl.Reason, wantReasons[i])
		}
	}
	if !errors.Is(dead[1].Err, jetstream.ErrPermanent) {
		t.Errorf("permanent error %v does not wrap ErrPermanent", dead[1].Err)
	}
	if got := attempts.Load(); got != 3 {
		t.Errorf("flaky message handled %d times, want 3", got)
	}
	if st := c.Stats(); st.Termed != 3 || st.Acked != 1 || st.Naked != 2 {
		t.Errorf("stats %+v, want 3 Term'd, 1 acked, 2 Nak'd", st)
	}
}

// TestRedeliversNakd: a failed task's message comes back with backoff and
// is acked once its task succeeds.
func TestRedeliversNakd(t *testing.T) {
	srv := startServer(t, t.TempDir())
	conn := dial(t, srv)
	js := conn.JetStream()
	setupStream(t, js, 30*time.Second, -1)
	pool := startPool(t, 2)
	var deliveries []uint64
	var mu sync.Mutex
	consume(t, conn, pool, func(ctx context.Context, _ worker, _ int) error {
		d, _ := jetstream.DeliveryFrom(ctx)
		mu.Lock()
		deliveries = append(deliveries, d.Meta.NumDelivered)
		mu.Unlock()
		if d.Meta.NumDelivered < 3 {
			return errors.New("not yet")
		}
		return nil
	}, jetstream.Backoff(20*time.Millisecond, 40*time.Millisecond))
	publish(t, js, 0, 1)
	waitFor(t, 10*time.Second, "acked", settledAll(t, js, 1))
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(deliveries, []uint64{1, 2, 3}) {
		t.Errorf("deliveries %v, want [1 2 3]", deliveries)
	}
}

// TestHeartbeatsKeepLongTasks: a task that runs past AckWait is not
// redelivered, thanks to the in-progress notices.
func TestHeartbeatsKeepLongTasks(t *testing.T) {
	srv := startServer(t, t.TempDir())
	conn := dial(t, srv)
	js := conn.JetStream()
	setupStream(t, js, time.Second, -1)
	pool := startPool(t, 2)
	var handled atomic.Int32
	c := consume(t, conn, pool, func(ctx context.Context, _ worker, _ int) error {
		handled.Add(1)
		select {
		case <-time.After(2500 * time.Millisecond):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	publish(t, js, 0, 2)
	waitFor(t, 10*time.Second, "acked", settledAll(t, js, 2))
	if got := handled.Load(); got != 2 {
		t.Errorf("handled %d times, want 2: a long task was redelivered", got)
	}
	if st := c.Stats(); st.Heartbeat == 0 {
		t.Errorf("no heartbeat sent: %+v", st)
	}
}

// TestWindowBound: the consumer never holds more un-settled messages than
// its window, whatever the pool could take.
func TestWindowBound(t *testing.T) {
	srv := startServer(t, t.TempDir())
	conn := dial(t, srv)
	js := conn.JetStream()
	setupStream(t, js, 30*time.Second, -1)
	pool := startPool(t, 8)
	var running, most atomic.Int32
	c := consume(t, conn, pool, func(context.Context, worker, int) error {
		n := running.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		time.Sleep(2 * time.Millisecond)
		running.Add(-1)
		return nil
	}, jetstream.Window(3))
	publish(t, js, 0, 300)
	waitFor(t, 30*time.Second, "acked", settledAll(t, js, 300))
	st := c.Stats()
	if st.MaxWindow > 3 || most.Load() > 3 || st.Window != 3 {
		t.Errorf("window 3, but %d un-settled and %d running at once", st.MaxWindow, most.Load())
	}
	if st.MaxWindow < 2 {
		t.Errorf("at most %d un-settled at once: the window is not used", st.MaxWindow)
	}
}

// TestDefaultWindowIsCapacity: by default the window is the pool's
// capacity.
func TestDefaultWindowIsCapacity(t *testing.T) {
	srv := startServer(t, t.TempDir())
	conn := dial(t, srv)
	setupStream(t, conn.JetStream(), 30*time.Second, -1)
	pool := startPool(t, 3)
	c := consume(t, conn, pool, func(context.Context, worker, int) error { return nil })
	if got, want := c.Stats().Window, pool.Capacity().InFlight(); got != want {
		t.Errorf("window %d, want the pool's capacity %d", got, want)
	}
}

// TestRefusesStrandingConsumer: a consumer with a server-side MaxDeliver
// would strand a message whose last delivery was cut short: refused.
func TestRefusesStrandingConsumer(t *testing.T) {
	srv := startServer(t, t.TempDir())
	conn := dial(t, srv)
	setupStream(t, conn.JetStream(), 30*time.Second, 5)
	pool := startPool(t, 1)
	_, err := jetstream.Start(t.Context(), conn.JetStream(), pool, testStream, testConsumer, ids(),
		func(context.Context, worker, int) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "MaxDeliver 5 strands") {
		t.Errorf("Start = %v, want a refusal of MaxDeliver", err)
	}
}

// TestOptionErrors: invalid options are errors, and options name
// themselves.
func TestOptionErrors(t *testing.T) {
	tests := []struct {
		give jetstream.Option
		want string
	}{
		{jetstream.Window(0), "jetstream.Window(0)"},
		{jetstream.FetchExpiry(time.Millisecond), "jetstream.FetchExpiry(1ms)"},
		{jetstream.Backoff(time.Second, time.Millisecond), "jetstream.Backoff(1s, 1ms)"},
		{jetstream.MaxAttempts(-1), "jetstream.MaxAttempts(-1)"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.give.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
			_, err := jetstream.Start[worker](t.Context(), nil, nil, testStream, testConsumer, ids(), nil, tt.give)
			if err == nil {
				t.Error("no error")
			}
		})
	}
}
