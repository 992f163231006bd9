package jetstream_test

import (
	"context"
	"strings"
	"sync"
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

// prepareStore makes the stream and consumer of the tests in a store
// folder and publishes n messages, with a server that is shut down again.
func prepareStore(t *testing.T, dir string, n int, ackWait ...time.Duration) {
	t.Helper()
	srv, err := embedded.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	conn, err := jetstream.Dial(jetstream.Embedded, srv)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	wait := 30 * time.Second
	if len(ackWait) > 0 {
		wait = ackWait[0]
	}
	setupStream(t, conn.JetStream(), wait, -1)
	publish(t, conn.JetStream(), 0, n)
}

// consumerApp is an app with the embedded server on dir, a pool of
// workers and Consume.
func consumerApp(dir string, workers int, h jetstream.Handler[worker, int], conn **jetstream.Conn, opts ...jetstream.Option) *fx.App {
	return fx.New(consumerOptions(dir, workers, h, conn, opts...))
}

func consumerOptions(dir string, workers int, h jetstream.Handler[worker, int], conn **jetstream.Conn, opts ...jetstream.Option) fx.Option {
	return fx.Options(
		fx.NopLogger,
		fx.Supply(zap.NewNop()),
		fxpool.Module,
		embedded.Module(dir),
		jetstream.Connect(jetstream.Embedded),
		workerpool.Provide[worker]("consumer", workerpool.Workers(workers)),
		jetstream.Consume(testStream, testConsumer, ids(), h, opts...),
		fx.Populate(conn),
	)
}

// TestAttackAppStopTightBudgetThenRestart: an app whose stop budget is
// tight while every worker is busy — some with handlers that honour their
// context, some deaf to it — acks only what finished, and the same store
// folder, restarted, delivers every other message again: none is lost.
func TestAttackAppStopTightBudgetThenRestart(t *testing.T) {
	dir := t.TempDir()
	const n = 200
	prepareStore(t, dir, n)

	var mu sync.Mutex
	finished := map[int]bool{} // handler returned nil before the stop began
	started := map[int]bool{}
	stopping := make(chan struct{})
	release := make(chan struct{})
	var releaseOnce sync.Once
	defer releaseOnce.Do(func() { close(release) })
	busy := make(chan int, n)
	var conn *jetstream.Conn
	app := consumerApp(dir, 4, func(ctx context.Context, _ worker, i int) error {
		mu.Lock()
		started[i] = true
		mu.Unlock()
		switch {
		case i < 20: // quick: these finish before the stop
		case i%2 == 0: // honours its context
			busy <- i
			<-ctx.Done()
			return ctx.Err()
		default: // deaf to it, returns nil after the stop
			busy <- i
			<-release
			return nil
		}
		select {
		case <-stopping:
			return nil // not recorded: may or may not be acked
		default:
		}
		mu.Lock()
		finished[i] = true
		mu.Unlock()
		return nil
	}, &conn)
	if err := app.Err(); err != nil {
		t.Fatal(err)
	}
	startCtx, cancel := context.WithTimeout(context.Background(), attackHang)
	defer cancel()
	if err := app.Start(startCtx); err != nil {
		t.Fatal(err)
	}
	for range 4 { // every worker busy
		select {
		case <-busy:
		case <-time.After(attackHang):
			t.Fatal("the workers never got busy")
		}
	}
	close(stopping)
	stopDone := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		stopDone <- app.Stop(ctx)
	}()
	select {
	case err := <-stopDone:
		t.Logf("app.Stop with a 2s budget: %v", err)
	case <-time.After(attackHang):
		releaseOnce.Do(func() { close(release) })
		t.Fatal("app.Stop hangs")
	}
	releaseOnce.Do(func() { close(release) })
	mu.Lock()
	firstStarted := len(started)
	mu.Unlock()

	handled := map[int]int{}
	var mu2 sync.Mutex
	var conn2 *jetstream.Conn
	app2 := consumerApp(dir, 4, func(_ context.Context, _ worker, i int) error {
		mu2.Lock()
		handled[i]++
		mu2.Unlock()
		return nil
	}, &conn2)
	startCtx2, cancel2 := context.WithTimeout(context.Background(), attackHang)
	defer cancel2()
	if err := app2.Start(startCtx2); err != nil {
		t.Fatalf("restart on the same store folder: %v", err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := app2.Stop(ctx); err != nil {
			t.Errorf("second stop: %v", err)
		}
	}()
	js := conn2.JetStream()
	waitFor(t, attackHang, "every message settled after the restart", settledAll(t, js, n))

	mu.Lock()
	defer mu.Unlock()
	mu2.Lock()
	defer mu2.Unlock()
	// No handler of a message from 20 on returned nil before the stop
	// (they honour their context with an error, or are deaf and return nil
	// only after it): each must be handled again. The quick ones finished
	// or come again.
	var lost []int
	for i := range n {
		if handled[i] == 0 && (i >= 20 || !finished[i] && !started[i]) {
			lost = append(lost, i)
		}
	}
	if len(lost) > 0 {
		t.Errorf("not handled to the end across the tight stop and restart (acked without finishing, or lost): %v", lost)
	}
	t.Logf("first run: %d started, %d finished; second run: %d handled", firstStarted, len(finished), len(handled))
}

// TestAttackConsumeBadWiring: Consume's bad options and bad wiring make
// fx.New or the start fail, naming the culprit, with no hang or panic; a
// failed start leaves nothing running (goleak).
func TestAttackConsumeBadWiring(t *testing.T) {
	ok := func(context.Context, worker, int) error { return nil }
	tests := []struct {
		name   string
		decode jetstream.Decoder[int]
		handle jetstream.Handler[worker, int]
		opts   []jetstream.Option
		cfg    func(*natsjs.ConsumerConfig)
		want   []string
	}{
		{"NilDecoder", nil, ok, nil, nil, []string{"decode"}},
		{"NilHandler", ids(), nil, nil, nil, []string{"handle"}},
		{"WindowZero", ids(), ok, []jetstream.Option{jetstream.Window(0)}, nil, []string{"Window(0)"}},
		{"WindowNegative", ids(), ok, []jetstream.Option{jetstream.Window(-1)}, nil, []string{"Window(-1)"}},
		{"UnknownPool", ids(), ok, []jetstream.Option{jetstream.PoolName("nosuchpool")}, nil, []string{"nosuchpool"}},
		{"MaxDeliver", ids(), ok, nil, func(c *natsjs.ConsumerConfig) { c.MaxDeliver = 3 }, []string{"MaxDeliver 3"}},
		{"AckAll", ids(), ok, nil, func(c *natsjs.ConsumerConfig) { c.AckPolicy = natsjs.AckAllPolicy }, []string{"ack"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			srv, err := embedded.New(dir)
			if err != nil {
				t.Fatal(err)
			}
			c, err := jetstream.Dial(jetstream.Embedded, srv)
			if err != nil {
				t.Fatal(err)
			}
			cfg := natsjs.ConsumerConfig{Durable: testConsumer, AckPolicy: natsjs.AckExplicitPolicy, MaxDeliver: -1}
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			if _, err := c.JetStream().CreateStream(t.Context(), natsjs.StreamConfig{Name: testStream, Subjects: []string{"tasks.>"}}); err != nil {
				t.Fatal(err)
			}
			if _, err := c.JetStream().CreateConsumer(t.Context(), testStream, cfg); err != nil {
				t.Fatal(err)
			}
			_ = c.Close(context.Background())
			srv.Shutdown()

			var (
				appErr error
				app    *fx.App
			)
			done := make(chan any, 1)
			go func() {
				defer func() { done <- recover() }()
				app = fx.New(
					fx.NopLogger,
					fxpool.Module,
					embedded.Module(dir),
					jetstream.Connect(jetstream.Embedded),
					workerpool.Provide[worker]("consumer", workerpool.Workers(2)),
					jetstream.Consume(testStream, testConsumer, tt.decode, tt.handle, tt.opts...),
				)
				if appErr = app.Err(); appErr != nil {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), attackHang)
				defer cancel()
				appErr = app.Start(ctx)
			}()
			select {
			case p := <-done:
				if p != nil {
					t.Fatalf("panic: %v", p)
				}
			case <-time.After(attackHang + 10*time.Second):
				t.Fatal("fx.New or the start hangs")
			}
			if appErr == nil {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				_ = app.Stop(ctx)
				t.Fatal("the app started")
			}
			for _, w := range tt.want {
				if !strings.Contains(strings.ToLower(appErr.Error()), strings.ToLower(w)) {
					t.Errorf("error %q does not name %q", appErr, w)
				}
			}
		})
	}
}
