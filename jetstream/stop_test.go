package jetstream_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool"
	"github.com/fxpool/fxpool/jetstream"
	"github.com/fxpool/fxpool/jetstream/embedded"
	"github.com/fxpool/fxpool/workerpool"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"go.uber.org/fx"
	"go.uber.org/zap"
)

// TestGracefulStopThenRestart: a stop in the middle of the stream lets the
// tasks in flight finish and acks them, hands back the rest, and leaves
// nothing ack-pending; a consumer started after it handles the rest, with
// no message handled twice.
func TestGracefulStopThenRestart(t *testing.T) {
	const n = 2000
	srv := startServer(t, t.TempDir())
	conn := dial(t, srv)
	js := conn.JetStream()
	setupStream(t, js, time.Minute, -1)
	pool := startPool(t, 4)
	s := newSeen()
	h := func(context.Context, worker, int) error { time.Sleep(time.Millisecond); return nil }
	handler := func(ctx context.Context, w worker, i int) error {
		err := h(ctx, w, i)
		s.add(i)
		return err
	}
	publish(t, js, 0, n)

	c, err := jetstream.Start(t.Context(), js, pool, testStream, testConsumer, ids(), handler)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "a quarter handled", func() bool { return s.distinct() >= n/4 })
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	// Only the messages handed back (Nak'd with a delay of 1ns) are still
	// ack-pending: the server redelivers them at the next pull.
	info := consumerInfo(t, js)
	st := c.Stats()
	if info.NumAckPending != int(st.Naked) {
		t.Errorf("after the stop: %d ack-pending, %d handed back", info.NumAckPending, st.Naked)
	}
	if st.Pending != 0 || st.Acked != uint64(s.distinct()) {
		t.Errorf("after the stop: %+v, with %d handled", st, s.distinct())
	}
	t.Logf("stopped after %d of %d, %d pending in the stream", s.distinct(), n, info.NumPending)

	consume(t, conn, pool, handler)
	waitFor(t, 30*time.Second, "all handled", settledAll(t, js, n))
	lost, dups := s.check(n)
	if len(lost) != 0 || dups != 0 {
		t.Errorf("%d lost, %d duplicates", len(lost), dups)
	}
}

// TestAcksSurviveShutdown: the acks sent just before the stop are taken by
// the server before the connection and the embedded server stop — plain
// acks still queued at shutdown can be dropped otherwise — so that nothing
// is redelivered after a restart.
func TestAcksSurviveShutdown(t *testing.T) {
	const n, rounds = 500, 3
	dir := t.TempDir()
	for round := range rounds {
		srv, err := newServerNoCleanup(dir)
		if err != nil {
			t.Fatal(err)
		}
		conn, err := jetstream.Dial(jetstream.Embedded, srv)
		if err != nil {
			t.Fatal(err)
		}
		js := conn.JetStream()
		if round == 0 {
			setupStream(t, js, 30*time.Second, -1)
		}
		publish(t, js, round*n, (round+1)*n)
		func() {
			pool, stopPool := startPoolManual(t, 4)
			defer stopPool()
			var handled atomic.Int32
			c, err := jetstream.Start(t.Context(), js, pool, testStream, testConsumer, ids(),
				func(context.Context, worker, int) error { handled.Add(1); return nil })
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, 30*time.Second, "all handled", func() bool { return handled.Load() == n })
			// Stop at once: the last acks are still on their way.
			if err := c.Stop(t.Context()); err != nil {
				t.Error(err)
			}
		}()
		if err := conn.Close(t.Context()); err != nil {
			t.Error(err)
		}
		srv.Shutdown()

		srv, err = newServerNoCleanup(dir)
		if err != nil {
			t.Fatal(err)
		}
		conn, err = jetstream.Dial(jetstream.Embedded, srv)
		if err != nil {
			t.Fatal(err)
		}
		info := consumerInfo(t, conn.JetStream())
		if info.NumAckPending != 0 || info.NumPending != 0 || info.AckFloor.Stream != uint64((round+1)*n) {
			t.Errorf("round %d, after a restart: %d ack-pending, %d pending, ack floor %d, want 0, 0, %d",
				round, info.NumAckPending, info.NumPending, info.AckFloor.Stream, (round+1)*n)
		}
		_ = conn.Close(t.Context())
		srv.Shutdown()
	}
}

// TestNakStoredAcrossRestart: a task that ignores its context does not hold
// the stop past its deadline, and its message, Nak'd with a delay — a plain
// Nak lives only in the server's memory — comes back at once after the
// embedded server restarts, not after AckWait.
func TestNakStoredAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	srv, err := newServerNoCleanup(dir)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := jetstream.Dial(jetstream.Embedded, srv)
	if err != nil {
		t.Fatal(err)
	}
	js := conn.JetStream()
	setupStream(t, js, time.Minute, -1)
	publish(t, js, 0, 1)

	release := make(chan struct{})
	defer close(release)
	pool, stopPool := startPoolManual(t, 1)
	started := make(chan struct{}, 1)
	c, err := jetstream.Start(t.Context(), js, pool, testStream, testConsumer, ids(),
		func(context.Context, worker, int) error {
			started <- struct{}{}
			<-release // ignores its context
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	<-started
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	began := time.Now()
	err = c.Stop(ctx)
	if took := time.Since(began); took > 1500*time.Millisecond {
		t.Errorf("stop took %v, past its deadline of 1s", took)
	}
	if err == nil {
		t.Error("Stop = nil, want an error naming the task that ignored its context")
	}
	_ = conn.Close(t.Context())
	srv.Shutdown()

	srv, err = newServerNoCleanup(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	conn, err = jetstream.Dial(jetstream.Embedded, srv)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	cons, err := conn.JetStream().Consumer(t.Context(), testStream, testConsumer)
	if err != nil {
		t.Fatal(err)
	}
	began = time.Now()
	msg, err := cons.Next(natsjsMaxWait(5 * time.Second))
	if err != nil {
		t.Fatalf("the Nak'd message did not come back within 5s of the restart (AckWait is 1m): %v", err)
	}
	t.Logf("redelivered %v after the restart", time.Since(began))
	_ = msg.Ack()
	release <- struct{}{}
	stopPool()
}

// TestStopWaitsForPullInProgress: a stop while a pull waits for messages
// does not strand the messages the server sends it — cancelling a fetch
// leaves them un-acked until AckWait — it waits for the pull and hands them
// back at once.
func TestStopWaitsForPullInProgress(t *testing.T) {
	srv := startServer(t, t.TempDir())
	conn := dial(t, srv)
	js := conn.JetStream()
	setupStream(t, js, time.Minute, -1)
	pool := startPool(t, 2)
	var handled atomic.Int32
	h := func(context.Context, worker, int) error { handled.Add(1); return nil }
	c, err := jetstream.Start(t.Context(), js, pool, testStream, testConsumer, ids(), h, jetstream.FetchExpiry(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the pull is waiting

	stopped := make(chan error, 1)
	go func() { stopped <- c.Stop(t.Context()) }()
	publish(t, js, 0, 50) // into the pull in progress, while the stop waits
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	st := c.Stats()
	t.Logf("during the stop: %d fetched, %d handed back", st.Fetched, st.Naked)
	// Those that the pull brought were handed back, not stranded.
	if info := consumerInfo(t, js); info.NumAckPending != int(st.Naked) {
		t.Errorf("after the stop: %d ack-pending, %d handed back", info.NumAckPending, st.Naked)
	}
	began := time.Now()
	consume(t, conn, pool, h)
	waitFor(t, 10*time.Second, "all handled, long before AckWait", settledAll(t, js, 50))
	t.Logf("all handled %v after the restart", time.Since(began))
	if got := handled.Load(); got != 50 {
		t.Errorf("handled %d, want 50", got)
	}
}

func newServerNoCleanup(dir string) (*embedded.Server, error) { return embedded.New(dir) }

func natsjsMaxWait(d time.Duration) natsjs.FetchOpt { return natsjs.FetchMaxWait(d) }

// startPoolManual starts a pool as startPool does, but returns its stop.
func startPoolManual(t *testing.T, n int) (*workerpool.Pool[worker], func()) {
	t.Helper()
	var pool *workerpool.Pool[worker]
	app := fx.New(
		fx.NopLogger,
		fx.Supply(zap.NewNop()),
		fxpool.Module,
		workerpool.Provide[worker]("consumer", workerpool.Workers(n)),
		fx.Populate(&pool),
	)
	if err := app.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	return pool, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = app.Stop(ctx)
	}
}
