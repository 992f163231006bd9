package jetstream_test

// Adversarial round 15: the server goes away, the consumer is deleted,
// misconfigured or starved. Written from the public documentation only.

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fxpool/fxpool/jetstream"
	"github.com/fxpool/fxpool/jetstream/embedded"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
)

// a15Listening starts a listening embedded server on dir and returns a
// restartable handle: the current server is shut down at the end of the
// test, after everything registered later.
type a15Listening struct {
	t    *testing.T
	dir  string
	addr string
	mu   sync.Mutex
	cur  *embedded.Server
}

func newA15Listening(t *testing.T) *a15Listening {
	l := &a15Listening{t: t, dir: t.TempDir(), addr: "127.0.0.1:0"}
	l.start()
	l.addr = strings.TrimPrefix(l.cur.ClientURL(), "nats://")
	t.Cleanup(l.shutdown)
	return l
}

func (l *a15Listening) start() {
	l.t.Helper()
	srv, err := embedded.New(l.dir, embedded.Listen(l.addr))
	if err != nil {
		l.t.Fatal(err)
	}
	l.mu.Lock()
	l.cur = srv
	l.mu.Unlock()
}

func (l *a15Listening) shutdown() {
	l.mu.Lock()
	srv := l.cur
	l.cur = nil
	l.mu.Unlock()
	if srv != nil {
		srv.Shutdown()
	}
}

func (l *a15Listening) url() string { return "nats://" + l.addr }

func (l *a15Listening) dial() *jetstream.Conn {
	l.t.Helper()
	conn, err := jetstream.Dial(l.url(), nil, nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// TestAttack15JSServerRestartMidRun: the only server shuts down while a
// consumer, connected by URL, is mid-stream, and comes back on the same
// address and store. The client reconnects on its own; every message is
// handled (duplicates counted, allowed by at-least-once), nothing is left
// pending on the server nor in the consumer, and its books balance.
func TestAttack15JSServerRestartMidRun(t *testing.T) {
	l := newA15Listening(t)
	conn := l.dial()
	js := conn.JetStream()
	setupStream(t, js, 2*time.Second, -1)
	pool := startPool(t, 4)
	s := newSeen()
	c := consume(t, conn, pool, func(ctx context.Context, _ worker, i int) error {
		time.Sleep(2 * time.Millisecond)
		s.add(i)
		return nil
	})
	const n = 600
	publish(t, js, 0, n)
	waitFor(t, a15Hang, "a third handled", func() bool { return s.distinct() >= n/3 })
	l.shutdown()
	time.Sleep(500 * time.Millisecond)
	l.start()
	waitFor(t, a15Hang, "every message handled after the server came back", func() bool { return s.distinct() == n })
	waitFor(t, a15Hang, "all settled on the server", settledAll(t, js, n))
	waitFor(t, a15Hang, "nothing pending in the consumer", func() bool { return c.Stats().Pending == 0 })
	lost, dups := s.check(n)
	t.Logf("%d lost, %d duplicates; stats %+v", len(lost), dups, c.Stats())
	if len(lost) > 0 {
		t.Errorf("lost %v", lost)
	}
	checkSettledOnce(t, c)
}

// TestAttack15JSStopWhileServerDown: Consumer.Stop while the server is
// down, with tasks in flight, returns within its budget (an error is
// fine) and leaves nothing pending in the consumer; once the server is
// back, a new consumer handles every message not handled before: none lost.
func TestAttack15JSStopWhileServerDown(t *testing.T) {
	l := newA15Listening(t)
	conn := l.dial()
	js := conn.JetStream()
	setupStream(t, js, 2*time.Second, -1)
	pool := startPool(t, 2)
	s := newSeen()
	release := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	c, err := jetstream.Start(t.Context(), js, pool, testStream, testConsumer, ids(),
		func(ctx context.Context, _ worker, i int) error {
			if i >= 50 {
				select {
				case <-release:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			s.add(i)
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	const n = 100
	publish(t, js, 0, n)
	waitFor(t, a15Hang, "the first 50 handled", func() bool { return s.distinct() >= 50 })
	l.shutdown()
	once.Do(func() { close(release) }) // the tasks in flight finish while the server is down
	err = a15Stop(t, "Stop while the server is down", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		return c.Stop(ctx)
	})
	t.Logf("Stop while the server is down: %v; stats %+v", err, c.Stats())
	if st := c.Stats(); st.Pending != 0 {
		t.Errorf("after Stop: %+v still pending", st)
	}
	l.start()
	consume(t, conn, pool, func(_ context.Context, _ worker, i int) error { s.add(i); return nil })
	waitFor(t, a15Hang, "every message handled after the server came back", func() bool { return s.distinct() == n })
	waitFor(t, a15Hang, "all settled", settledAll(t, js, n))
	lost, dups := s.check(n)
	t.Logf("%d lost, %d duplicates", len(lost), dups)
	if len(lost) > 0 {
		t.Errorf("lost %v", lost)
	}
}

// TestAttack15JSConsumerDeletedAndRecreated: the durable consumer is
// deleted under a running Consumer ("a status that ends requests early (a
// deleted consumer) is retried with backoff") and created again with the
// same name: the Consumer keeps pulling, handles the messages published
// after, and stops cleanly.
func TestAttack15JSConsumerDeletedAndRecreated(t *testing.T) {
	srv := startServer(t, t.TempDir())
	conn := dial(t, srv)
	js := conn.JetStream()
	setupStream(t, js, 30*time.Second, -1)
	pool := startPool(t, 2)
	s := newSeen()
	c, err := jetstream.Start(t.Context(), js, pool, testStream, testConsumer, ids(),
		func(_ context.Context, _ worker, i int) error { s.add(i); return nil },
		jetstream.FetchExpiry(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	publish(t, js, 0, 10)
	waitFor(t, a15Hang, "the first 10", func() bool { return s.distinct() == 10 })
	if err := js.DeleteConsumer(t.Context(), testStream, testConsumer); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if _, err := js.CreateConsumer(t.Context(), testStream, natsjs.ConsumerConfig{
		Durable:       testConsumer,
		AckPolicy:     natsjs.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxDeliver:    -1,
		MaxAckPending: 1000,
		DeliverPolicy: natsjs.DeliverNewPolicy,
	}); err != nil {
		t.Fatal(err)
	}
	publish(t, js, 10, 30)
	waitFor(t, a15Hang, "the messages published after the consumer came back", func() bool { return s.distinct() == 30 })
	err = a15Stop(t, "Stop", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return c.Stop(ctx)
	})
	if err != nil {
		t.Errorf("Stop: %v", err)
	}
	lost, dups := s.check(30)
	if len(lost) > 0 || dups > 0 {
		t.Errorf("%d lost, %d duplicates", len(lost), dups)
	}
	checkSettledOnce(t, c)
}

// TestAttack15JSMaxAckPendingBelowWindow: a consumer whose MaxAckPending
// (1) is far below the window only slows the consumer down ("the server
// stops delivering before the windows are full"): every message is handled
// once, none stalls, the stop is clean.
func TestAttack15JSMaxAckPendingBelowWindow(t *testing.T) {
	srv := startServer(t, t.TempDir())
	conn := dial(t, srv)
	js := conn.JetStream()
	if _, err := js.CreateStream(t.Context(), natsjs.StreamConfig{Name: testStream, Subjects: []string{"tasks.>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateConsumer(t.Context(), testStream, natsjs.ConsumerConfig{
		Durable: testConsumer, AckPolicy: natsjs.AckExplicitPolicy, AckWait: 30 * time.Second, MaxDeliver: -1, MaxAckPending: 1,
	}); err != nil {
		t.Fatal(err)
	}
	pool := startPool(t, 4)
	s := newSeen()
	c := consume(t, conn, pool, func(_ context.Context, _ worker, i int) error { s.add(i); return nil })
	const n = 150
	publish(t, js, 0, n)
	waitFor(t, a15Hang, "every message handled with MaxAckPending 1", func() bool { return s.distinct() == n })
	waitFor(t, a15Hang, "all settled", settledAll(t, js, n))
	lost, dups := s.check(n)
	if len(lost) > 0 || dups > 0 {
		t.Errorf("%d lost, %d duplicates", len(lost), dups)
	}
	if st := c.Stats(); st.MaxWindow > 1 {
		t.Logf("MaxWindow %d with MaxAckPending 1", st.MaxWindow)
	}
	checkSettledOnce(t, c)
}

// TestAttack15JSTinyFetchExpiry: pull requests that expire after 100 ms (the
// least accepted; 5 ms is refused),
// many of them ending empty while messages trickle in, with a window of 2:
// every message handled exactly once, no stall, no leak.
func TestAttack15JSTinyFetchExpiry(t *testing.T) {
	srv := startServer(t, t.TempDir())
	conn := dial(t, srv)
	js := conn.JetStream()
	setupStream(t, js, 30*time.Second, -1)
	pool := startPool(t, 2)
	s := newSeen()
	h := func(_ context.Context, _ worker, i int) error { s.add(i); return nil }
	// Below the documented range an option error names FetchExpiry.
	if c, err := jetstream.Start(t.Context(), js, pool, testStream, testConsumer, ids(), h, jetstream.FetchExpiry(5*time.Millisecond)); err == nil {
		_ = c.Stop(context.Background())
		t.Error("FetchExpiry(5ms) accepted")
	} else if !strings.Contains(err.Error(), "FetchExpiry") {
		t.Errorf("error %q does not name FetchExpiry", err)
	}
	c := consume(t, conn, pool, h, jetstream.FetchExpiry(100*time.Millisecond), jetstream.Window(2))
	const n = 300
	for k := 0; k < n; k += 30 {
		publish(t, js, k, k+30)
		time.Sleep(20 * time.Millisecond)
	}
	waitFor(t, a15Hang, "every message handled", func() bool { return s.distinct() == n })
	waitFor(t, a15Hang, "all settled", settledAll(t, js, n))
	lost, dups := s.check(n)
	if len(lost) > 0 || dups > 0 {
		t.Errorf("%d lost, %d duplicates", len(lost), dups)
	}
	if st := c.Stats(); st.MaxWindow > 2 {
		t.Errorf("stats %+v: MaxWindow over Window(2)", st)
	}
	checkSettledOnce(t, c)
}

// TestAttack15JSRefusesPushAndMisconfigured: Start refuses, with an error
// naming the consumer, a push consumer (it needs a durable pull consumer),
// and Consume's app fails to start on it too.
func TestAttack15JSRefusesPushAndMisconfigured(t *testing.T) {
	srv := startServer(t, t.TempDir())
	conn := dial(t, srv)
	js := conn.JetStream()
	setupStream(t, js, 30*time.Second, -1)
	legacy, err := conn.NATS().JetStream()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := legacy.AddConsumer(testStream, &nats.ConsumerConfig{
		Durable: "pushy", DeliverSubject: "deliver.pushy", AckPolicy: nats.AckExplicitPolicy, MaxDeliver: -1,
	}); err != nil {
		t.Fatal(err)
	}
	pool := startPool(t, 2)
	var c *jetstream.Consumer
	err = a15Stop(t, "Start", func() error {
		var err error
		c, err = jetstream.Start(t.Context(), js, pool, testStream, "pushy", ids(),
			func(context.Context, worker, int) error { return nil })
		return err
	})
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = c.Stop(ctx)
		t.Fatal("Start accepted a push consumer")
	}
	if !strings.Contains(err.Error(), "pushy") {
		t.Errorf("error %q does not name the consumer", err)
	}
	t.Logf("push consumer: %v", err)
}
