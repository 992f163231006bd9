package jetstream_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/fxpool/fxpool"
	"github.com/fxpool/fxpool/jetstream"
	"github.com/fxpool/fxpool/jetstream/embedded"
	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
	"go.uber.org/goleak"
	"go.uber.org/zap"
)

func TestMain(m *testing.M) {
	if os.Getenv(childRecords) != "" {
		os.Exit(runChild())
	}
	goleak.VerifyTestMain(m)
}

const (
	testStream   = "TASKS"
	testConsumer = "workers"
)

// startServer starts an embedded server on dir and shuts it down at the
// end of the test, unless the test did.
func startServer(t testing.TB, dir string) *embedded.Server {
	t.Helper()
	srv, err := embedded.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	t.Cleanup(func() { once.Do(srv.Shutdown) })
	return srv
}

func dial(t testing.TB, srv *embedded.Server) *jetstream.Conn {
	t.Helper()
	conn, err := jetstream.Dial(jetstream.Embedded, srv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// setupStream makes the stream and the durable pull consumer of the tests.
func setupStream(t testing.TB, js natsjs.JetStream, ackWait time.Duration, maxDeliver int) {
	t.Helper()
	ctx := t.Context()
	if _, err := js.CreateStream(ctx, natsjs.StreamConfig{Name: testStream, Subjects: []string{"tasks.>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateConsumer(ctx, testStream, natsjs.ConsumerConfig{
		Durable:       testConsumer,
		AckPolicy:     natsjs.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxDeliver:    maxDeliver,
		MaxAckPending: 100_000,
	}); err != nil {
		t.Fatal(err)
	}
}

// publish publishes the numbers from..to-1 as messages.
func publish(t testing.TB, js natsjs.JetStream, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if _, err := js.PublishAsync("tasks.n", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(30 * time.Second):
		t.Fatal("publishing took over 30s")
	}
}

func consumerInfo(t *testing.T, js natsjs.JetStream) *natsjs.ConsumerInfo {
	t.Helper()
	c, err := js.Consumer(t.Context(), testStream, testConsumer)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// waitFor polls cond every 10ms until it holds or d has passed.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startPool starts an fx app with a pool of n workers and stops it at the
// end of the test, after any consumer that feeds it.
func startPool(t testing.TB, n int) *workerpool.Pool[resources.Worker] {
	t.Helper()
	var pool *workerpool.Pool[resources.Worker]
	app := fxtest.New(t,
		fx.NopLogger,
		fx.Supply(zap.NewNop()),
		fxpool.Module,
		workerpool.Provide[resources.Worker]("consumer", workerpool.Workers(n)),
		fx.Populate(&pool),
	)
	app.RequireStart()
	t.Cleanup(func() { app.RequireStop() })
	return pool
}

// ids decodes a message as its number.
func ids() jetstream.Decoder[int] {
	return func(b []byte) (int, error) { return strconv.Atoi(string(b)) }
}

// seen counts how often each number was handled.
type seen struct {
	mu sync.Mutex
	n  map[int]int
}

func newSeen() *seen { return &seen{n: make(map[int]int)} }

func (s *seen) add(i int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n[i]++
	return len(s.n)
}

func (s *seen) distinct() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.n)
}

// check returns the numbers of 0..n-1 never seen and the duplicates.
func (s *seen) check(n int) (lost []int, dups int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range n {
		switch c := s.n[i]; {
		case c == 0:
			lost = append(lost, i)
		case c > 1:
			dups += c - 1
		}
	}
	return lost, dups
}

func (s *seen) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("%d distinct", len(s.n))
}
