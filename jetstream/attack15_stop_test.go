package jetstream_test

// Adversarial round 15: stops of every shape. Written from the public
// documentation only; every deadline is a hang guard.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool"
	"github.com/fxpool/fxpool/jetstream"
	"github.com/fxpool/fxpool/jetstream/embedded"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

// a15Stop runs f in a goroutine and fails the test if it does not return
// within the hang guard.
func a15Stop(t *testing.T, what string, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(a15Hang):
		t.Fatalf("%s hangs", what)
		return nil
	}
}

// a15Outcomes records per message what its handlers returned.
type a15Outcomes struct {
	mu    sync.Mutex
	nils  map[int]int
	calls map[int]int
}

func newA15Outcomes() *a15Outcomes {
	return &a15Outcomes{nils: map[int]int{}, calls: map[int]int{}}
}

func (o *a15Outcomes) call(i int) {
	o.mu.Lock()
	o.calls[i]++
	o.mu.Unlock()
}

func (o *a15Outcomes) ok(i int) {
	o.mu.Lock()
	o.nils[i]++
	o.mu.Unlock()
}

func (o *a15Outcomes) nilCount() (n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, k := range o.nils {
		n += k
	}
	return n
}

// TestAttack15JSStartContextOnlyBoundsStart: Start's ctx bounds the start;
// the consumer runs until Consumer.Stop ("stop it with Consumer.Stop").
// Cancelling Start's ctx right after it returned must not stop the
// consumption nor strand messages.
func TestAttack15JSStartContextOnlyBoundsStart(t *testing.T) {
	srv := startServer(t, t.TempDir())
	conn := dial(t, srv)
	js := conn.JetStream()
	setupStream(t, js, 5*time.Minute, -1)
	pool := startPool(t, 2)
	s := newSeen()
	ctx, cancel := context.WithCancel(context.Background())
	c, err := jetstream.Start(ctx, js, pool, testStream, testConsumer, ids(),
		func(_ context.Context, _ worker, i int) error { s.add(i); return nil })
	cancel()
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
	const n = 50
	publish(t, js, 0, n)
	waitFor(t, 30*time.Second, "every message handled after Start's ctx was cancelled (AckWait 5m)", func() bool { return s.distinct() == n })
	waitFor(t, 30*time.Second, "all settled", settledAll(t, js, n))
}

// TestAttack15JSPoolStopEachPolicy: Pool.Stop on demand, with each
// StopPolicy, while the consumer's window (twice the pool's capacity) is
// full: half the messages finish at once, the others wait for their
// context. The consumer, as the pool's feeder, stops pulling; the pool's
// drain and cancel settle the tasks; a later Consumer.Stop returns. Every
// message is settled once: acked exactly when its handler returned nil,
// handed back otherwise; a new consumer then handles every message not
// acked, and none that was (no duplicate after a stop that succeeded).
func TestAttack15JSPoolStopEachPolicy(t *testing.T) {
	for _, policy := range []workerpool.StopPolicy{workerpool.Drain, workerpool.Cancel, workerpool.DropQueued} {
		t.Run(policy.String(), func(t *testing.T) {
			srv := startServer(t, t.TempDir())
			conn := dial(t, srv)
			js := conn.JetStream()
			setupStream(t, js, 5*time.Minute, -1)
			pool, stopPool := startPoolManual(t, 2)
			defer stopPool()
			window := 2 * pool.Capacity().InFlight()
			out := newA15Outcomes()
			var busy atomic.Int32
			c, err := jetstream.Start(t.Context(), js, pool, testStream, testConsumer, ids(),
				func(ctx context.Context, _ worker, i int) error {
					out.call(i)
					if i%2 == 0 { // quick
						out.ok(i)
						return nil
					}
					busy.Add(1)
					<-ctx.Done()
					return context.Cause(ctx)
				}, jetstream.Window(window))
			if err != nil {
				t.Fatal(err)
			}
			n := 4 * window
			publish(t, js, 0, n)
			waitFor(t, a15Hang, "busy workers, a full pool and messages waiting to enter it", func() bool {
				return busy.Load() >= 2 && c.Stats().Waiting > 0
			})
			poolErr := a15Stop(t, "Pool.Stop", func() error {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				defer cancel()
				return pool.Stop(ctx, policy)
			})
			t.Logf("Pool.Stop(%v): %v", policy, poolErr)
			consErr := a15Stop(t, "Consumer.Stop after Pool.Stop", func() error {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				return c.Stop(ctx)
			})
			t.Logf("Consumer.Stop: %v; stats %+v", consErr, c.Stats())
			st := c.Stats()
			checkSettledOnce(t, c)
			if int(st.Acked) != out.nilCount() {
				t.Errorf("stats %+v: %d acked, but handlers returned nil %d times", st, st.Acked, out.nilCount())
			}
			if st.Termed != 0 {
				t.Errorf("stats %+v: Term'd at a stop", st)
			}
			if info := consumerInfo(t, js); info.NumAckPending != int(st.Naked) {
				t.Errorf("after the stops: %d ack-pending on the server, %d Nak'd here", info.NumAckPending, st.Naked)
			}

			// A new pool and consumer handle what is left.
			pool2, stopPool2 := startPoolManual(t, 2)
			defer stopPool2()
			second := newSeen()
			c2, err := jetstream.Start(t.Context(), js, pool2, testStream, testConsumer, ids(),
				func(_ context.Context, _ worker, i int) error { second.add(i); return nil })
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_ = c2.Stop(ctx)
			}()
			waitFor(t, a15Hang, "all settled by the second consumer (AckWait 5m)", settledAll(t, js, n))
			out.mu.Lock()
			defer out.mu.Unlock()
			second.mu.Lock()
			defer second.mu.Unlock()
			lost, dups := 0, 0
			for i := range n {
				switch {
				case out.nils[i] == 0 && second.n[i] == 0:
					lost++
				case out.nils[i] > 0 && second.n[i] > 0:
					dups++
				}
			}
			if lost > 0 {
				t.Errorf("%d messages never handled to nil", lost)
			}
			if dups > 0 {
				t.Errorf("%d messages acked by the first consumer handled again by the second", dups)
			}
		})
	}
}

// TestAttack15JSStopTinyBudgetDuringPull: Consumer.Stop with an expired,
// a 1 ms and a 50 ms budget while a pull request waits (FetchExpiry 2 s) and
// messages are published into it. Whatever Stop returns, the messages that
// pull brings must not be stranded until AckWait (5 min): a new consumer
// handles all of them well within the hang guard; the first consumer ends
// with nothing pending and its books balanced.
func TestAttack15JSStopTinyBudgetDuringPull(t *testing.T) {
	budgets := []time.Duration{-1, time.Millisecond, 50 * time.Millisecond}
	for _, budget := range budgets {
		t.Run(fmt.Sprint(budget), func(t *testing.T) {
			srv := startServer(t, t.TempDir())
			conn := dial(t, srv)
			js := conn.JetStream()
			setupStream(t, js, 5*time.Minute, -1)
			pool := startPool(t, 2)
			first := newSeen()
			c, err := jetstream.Start(t.Context(), js, pool, testStream, testConsumer, ids(),
				func(_ context.Context, _ worker, i int) error { first.add(i); return nil })
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond) // the pull waits
			const n = 40
			pubDone := make(chan struct{})
			go func() {
				defer close(pubDone)
				publish(t, js, 0, n)
			}()
			err = a15Stop(t, "Consumer.Stop", func() error {
				ctx, cancel := context.WithTimeout(context.Background(), budget)
				defer cancel()
				return c.Stop(ctx)
			})
			t.Logf("Stop with budget %v: %v; stats %+v", budget, err, c.Stats())
			<-pubDone
			waitFor(t, a15Hang, "the first consumer settles everything it fetched", func() bool {
				st := c.Stats()
				return st.Pending == 0 && st.Acked+st.Naked+st.Termed == st.Fetched-st.Duplicates
			})
			second := newSeen()
			consume(t, conn, pool, func(_ context.Context, _ worker, i int) error { second.add(i); return nil })
			waitFor(t, 30*time.Second, "every message handled (AckWait is 5m: a stranded one never comes)", func() bool {
				for i := range n {
					first.mu.Lock()
					a := first.n[i]
					first.mu.Unlock()
					second.mu.Lock()
					b := second.n[i]
					second.mu.Unlock()
					if a+b == 0 {
						return false
					}
				}
				return true
			})
			waitFor(t, a15Hang, "all settled", settledAll(t, js, n))
			t.Logf("first consumer at the end: %+v, %d handled", c.Stats(), first.distinct())
			if st := c.Stats(); int(st.Acked) != first.distinct() {
				t.Errorf("first consumer: stats %+v, %d handled", st, first.distinct())
			}
		})
	}
}

// TestAttack15JSStopCauseIsErrStopping: a task still running when the
// consumer's stop gives up waiting has its context cancelled with cause
// ErrStopping; its message is handed back (not acked), and comes back on
// the next delivery.
func TestAttack15JSStopCauseIsErrStopping(t *testing.T) {
	srv := startServer(t, t.TempDir())
	conn := dial(t, srv)
	js := conn.JetStream()
	setupStream(t, js, 5*time.Minute, -1)
	pool := startPool(t, 1)
	causes := make(chan error, 1)
	started := make(chan struct{}, 1)
	c, err := jetstream.Start(t.Context(), js, pool, testStream, testConsumer, ids(),
		func(ctx context.Context, _ worker, i int) error {
			started <- struct{}{}
			<-ctx.Done()
			causes <- context.Cause(ctx)
			return context.Cause(ctx)
		}, jetstream.FetchExpiry(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	publish(t, js, 0, 1)
	select {
	case <-started:
	case <-time.After(a15Hang):
		t.Fatal("never started")
	}
	err = a15Stop(t, "Stop", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return c.Stop(ctx)
	})
	t.Logf("Stop: %v", err)
	select {
	case cause := <-causes:
		if !errors.Is(cause, jetstream.ErrStopping) {
			t.Errorf("the task's context ended with cause %v, want ErrStopping", cause)
		}
	case <-time.After(a15Hang):
		t.Fatal("the task's context never ended")
	}
	st := c.Stats()
	if st.Acked != 0 || st.Naked != 1 || st.Termed != 0 || st.Pending != 0 {
		t.Errorf("stats %+v, want the one message Nak'd", st)
	}
	att := newAttempts()
	consume(t, conn, pool, func(ctx context.Context, _ worker, i int) error { att.add(ctx, i); return nil })
	waitFor(t, 30*time.Second, "the message back (AckWait 5m)", settledAll(t, js, 1))
	if got := att.get(0); len(got) != 1 || got[0] != 2 {
		t.Errorf("deliveries %v, want [2]", got)
	}
}

// TestAttack15JSStopWithoutDeadlineWaits: "A stop without a deadline waits
// for every task": a handler deaf to its context holds Stop(Background)
// until it returns; its nil is then acked, and a second Stop returns the
// first's result.
func TestAttack15JSStopWithoutDeadlineWaits(t *testing.T) {
	srv := startServer(t, t.TempDir())
	conn := dial(t, srv)
	js := conn.JetStream()
	setupStream(t, js, 5*time.Minute, -1)
	pool := startPool(t, 1)
	release := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	started := make(chan struct{}, 1)
	c, err := jetstream.Start(t.Context(), js, pool, testStream, testConsumer, ids(),
		func(ctx context.Context, _ worker, i int) error {
			started <- struct{}{}
			<-release
			return nil
		}, jetstream.FetchExpiry(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	publish(t, js, 0, 1)
	<-started
	stopped := make(chan error, 1)
	go func() { stopped <- c.Stop(context.Background()) }()
	select {
	case err := <-stopped:
		t.Fatalf("Stop without a deadline returned %v while a task still ran", err)
	case <-time.After(500 * time.Millisecond):
	}
	once.Do(func() { close(release) })
	var err1 error
	select {
	case err1 = <-stopped:
	case <-time.After(a15Hang):
		t.Fatal("Stop hangs after the task returned")
	}
	if err1 != nil {
		t.Errorf("Stop: %v", err1)
	}
	err2 := a15Stop(t, "second Stop", func() error { return c.Stop(context.Background()) })
	if (err1 == nil) != (err2 == nil) {
		t.Errorf("second Stop %v, first %v", err2, err1)
	}
	if st := c.Stats(); st.Acked != 1 || st.Naked != 0 || st.Pending != 0 {
		t.Errorf("stats %+v, want the task acked", st)
	}
	if info := consumerInfo(t, js); info.AckFloor.Stream != 1 || info.NumAckPending != 0 {
		t.Errorf("server: ack floor %d, %d ack-pending", info.AckFloor.Stream, info.NumAckPending)
	}
}

// TestAttack15JSConcurrentStops: Consumer.Stop from several goroutines at
// once, with budgets from 1 ms to 3 s, racing a Pool.Stop(Cancel): every
// call returns, the Consumer.Stop calls agree, nothing is acked (no
// handler returned nil), everything fetched is handed back once.
func TestAttack15JSConcurrentStops(t *testing.T) {
	srv := startServer(t, t.TempDir())
	conn := dial(t, srv)
	js := conn.JetStream()
	setupStream(t, js, 5*time.Minute, -1)
	pool, stopPool := startPoolManual(t, 2)
	defer stopPool()
	var busy atomic.Int32
	c, err := jetstream.Start(t.Context(), js, pool, testStream, testConsumer, ids(),
		func(ctx context.Context, _ worker, i int) error {
			busy.Add(1)
			<-ctx.Done()
			return ctx.Err()
		}, jetstream.Window(3*pool.Capacity().InFlight()), jetstream.FetchExpiry(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	publish(t, js, 0, 100)
	waitFor(t, a15Hang, "busy", func() bool { return busy.Load() >= 2 })
	budgets := []time.Duration{time.Millisecond, 10 * time.Millisecond, 200 * time.Millisecond, time.Second, 3 * time.Second}
	errs := make([]error, len(budgets))
	var wg sync.WaitGroup
	for k, b := range budgets {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), b)
			defer cancel()
			errs[k] = c.Stop(ctx)
		})
	}
	wg.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = pool.Stop(ctx, workerpool.Cancel)
	})
	a15Stop(t, "the concurrent stops", func() error { wg.Wait(); return nil })
	for k := range errs {
		if (errs[k] == nil) != (errs[0] == nil) {
			t.Errorf("Stop results disagree: %v", errs)
			break
		}
	}
	t.Logf("Stop results: %v", errs)
	st := c.Stats()
	checkSettledOnce(t, c)
	if st.Acked != 0 || st.Naked != st.Fetched-st.Duplicates {
		t.Errorf("stats %+v: want nothing acked, everything handed back", st)
	}
	if info := consumerInfo(t, js); info.NumAckPending != int(st.Naked) || info.AckFloor.Stream != 0 {
		t.Errorf("server: %d ack-pending, ack floor %d; %d Nak'd here", info.NumAckPending, info.AckFloor.Stream, st.Naked)
	}
}

// TestAttack15JSTwoConsumersGracefulStop: two consumers, each on its own
// pool, share one durable consumer; one is stopped gracefully halfway, the
// other finishes: every message handled exactly once (a graceful stop acks
// what finished and hands back the rest, un-run), the Stats add up.
func TestAttack15JSTwoConsumersGracefulStop(t *testing.T) {
	srv := startServer(t, t.TempDir())
	conn := dial(t, srv)
	js := conn.JetStream()
	setupStream(t, js, 5*time.Minute, -1)
	poolA := startPool(t, 2)
	poolB := startPool(t, 3)
	s := newSeen()
	h := func(_ context.Context, _ worker, i int) error {
		time.Sleep(time.Millisecond)
		s.add(i)
		return nil
	}
	a, err := jetstream.Start(t.Context(), js, poolA, testStream, testConsumer, ids(), h, jetstream.Window(2*poolA.Capacity().InFlight()))
	if err != nil {
		t.Fatal(err)
	}
	b := consume(t, conn, poolB, h)
	const n = 1000
	publish(t, js, 0, n)
	waitFor(t, a15Hang, "a quarter handled", func() bool { return s.distinct() >= n/4 })
	err = a15Stop(t, "Stop A", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return a.Stop(ctx)
	})
	if err != nil {
		t.Errorf("graceful stop of A: %v", err)
	}
	waitFor(t, a15Hang, "all settled", settledAll(t, js, n))
	waitFor(t, a15Hang, "B idle", func() bool { return b.Stats().Pending == 0 })
	lost, dups := s.check(n)
	if len(lost) != 0 || dups != 0 {
		t.Errorf("%d lost, %d duplicates", len(lost), dups)
	}
	sa, sb := a.Stats(), b.Stats()
	if sa.Acked+sb.Acked != n {
		t.Errorf("acked %d + %d, want %d", sa.Acked, sb.Acked, n)
	}
	checkSettledOnce(t, a)
	checkSettledOnce(t, b)
	t.Logf("A %+v; B %+v", sa, sb)
}

// TestAttack15JSStartOnPoolNotServing: "the given pool, which must be
// serving": Start on a pool not yet started, or already stopped, fails with
// an error — no hang, no panic, no consumer left running.
func TestAttack15JSStartOnPoolNotServing(t *testing.T) {
	srv := startServer(t, t.TempDir())
	conn := dial(t, srv)
	js := conn.JetStream()
	setupStream(t, js, 5*time.Minute, -1)
	ok := func(context.Context, worker, int) error { return nil }

	stopped, stopPool := startPoolManual(t, 2)
	stopPool()
	var unstarted *workerpool.Pool[worker]
	app := fx.New(fx.NopLogger, fxpool.Module, workerpool.Provide[worker]("consumer", workerpool.Workers(2)), fx.Populate(&unstarted))
	if err := app.Err(); err != nil {
		t.Fatal(err)
	}
	for name, pool := range map[string]*workerpool.Pool[worker]{"stopped": stopped, "unstarted": unstarted} {
		t.Run(name, func(t *testing.T) {
			var c *jetstream.Consumer
			err := a15Stop(t, "Start", func() error {
				var err error
				c, err = jetstream.Start(t.Context(), js, pool, testStream, testConsumer, ids(), ok)
				return err
			})
			if err == nil {
				// What it does with a message meanwhile.
				if _, err := js.Publish(t.Context(), "tasks.n", []byte("0")); err != nil {
					t.Error(err)
				}
				time.Sleep(time.Second)
				st := c.Stats()
				_ = a15Stop(t, "Stop", func() error {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					return c.Stop(ctx)
				})
				t.Fatalf("Start on a %s pool succeeded; one message published then, in one second: %+v (fetched and handed back %d times: each a delivery that counts against MaxAttempts)", name, st, st.Fetched)
			}
			if !strings.Contains(err.Error(), "not serving") {
				t.Errorf("Start on a %s pool: %v, want an error saying the pool is not serving", name, err)
			}
		})
	}
}

// TestAttack15JSAppStopBudgetBelowFetchExpiry: an fx app — embedded server,
// connection, pool, Consume — stopped with budgets of 300 ms and 1 s, below
// the default FetchExpiry of 2 s, while every worker is busy with a task
// that honours its context and a pull request waits. The docs promise that
// the consumer's stop hands back at half its budget and that the pool, the
// connection and the embedded server stop after it: the server must not be
// left running (fx skips the hooks left once the budget is gone), and a
// restart on the same store handles every message, long before AckWait.
func TestAttack15JSAppStopBudgetBelowFetchExpiry(t *testing.T) {
	for _, budget := range []time.Duration{300 * time.Millisecond, time.Second} {
		t.Run(budget.String(), func(t *testing.T) {
			dir := t.TempDir()
			const n = 30
			prepareStore(t, dir, n, 5*time.Minute)
			var conn *jetstream.Conn
			var srv *embedded.Server
			var busy atomic.Int32
			app := fx.New(consumerOptions(dir, 2, func(ctx context.Context, _ worker, i int) error {
				busy.Add(1)
				<-ctx.Done()
				return ctx.Err()
			}, &conn), fx.Populate(&srv))
			if err := app.Err(); err != nil {
				t.Fatal(err)
			}
			startCtx, cancel := context.WithTimeout(context.Background(), a15Hang)
			defer cancel()
			if err := app.Start(startCtx); err != nil {
				t.Fatal(err)
			}
			waitFor(t, a15Hang, "busy", func() bool { return busy.Load() >= 2 })
			err := a15Stop(t, "app.Stop", func() error {
				ctx, cancel := context.WithTimeout(context.Background(), budget)
				defer cancel()
				return app.Stop(ctx)
			})
			t.Logf("app.Stop(%v): %v", budget, err)
			if srv.NATS().Running() {
				t.Errorf("app.Stop(%v) returned %v and left the embedded server running", budget, err)
				// Clean up what fx skipped, so that goleak judges the rest.
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				_ = app.Stop(ctx)
				cancel()
				_ = conn.Close(context.Background())
				srv.Shutdown()
			}

			s := newSeen()
			var conn2 *jetstream.Conn
			app2 := consumerApp(dir, 2, func(_ context.Context, _ worker, i int) error { s.add(i); return nil }, &conn2)
			startCtx2, cancel2 := context.WithTimeout(context.Background(), a15Hang)
			defer cancel2()
			if err := app2.Start(startCtx2); err != nil {
				t.Fatalf("restart: %v", err)
			}
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				if err := app2.Stop(ctx); err != nil {
					t.Errorf("second stop: %v", err)
				}
			}()
			waitFor(t, 30*time.Second, "every message handled after the restart (AckWait 5m)", func() bool { return s.distinct() == n })
			waitFor(t, a15Hang, "all settled", settledAll(t, conn2.JetStream(), n))
		})
	}
}

// TestAttack15JSNoHandlingAfterStopReturned: once Consumer.Stop has
// returned — even with an error, its budget (expired, 1 ms) shorter than
// the pull request in progress (FetchExpiry 2 s) — the consumer handles
// nothing more: messages published after that are never handled by it, and
// are not stranded either (AckWait 5 min): a new consumer handles them all.
// The round found the stopped consumer still fetching them, until its pull
// request expired; the docs now say so ("The pull loop may then outlive
// it ... and Naks back at once what they still bring"): each it fetched,
// it handed back.
func TestAttack15JSNoHandlingAfterStopReturned(t *testing.T) {
	for _, budget := range []time.Duration{-1, time.Millisecond} {
		t.Run(fmt.Sprint(budget), func(t *testing.T) {
			srv := startServer(t, t.TempDir())
			conn := dial(t, srv)
			js := conn.JetStream()
			setupStream(t, js, 5*time.Minute, -1)
			pool := startPool(t, 2)
			var stopped atomic.Bool
			var late atomic.Int32
			first := newSeen()
			c, err := jetstream.Start(t.Context(), js, pool, testStream, testConsumer, ids(),
				func(_ context.Context, _ worker, i int) error {
					if stopped.Load() {
						late.Add(1)
					}
					first.add(i)
					return nil
				})
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond) // the pull waits
			err = a15Stop(t, "Consumer.Stop", func() error {
				ctx, cancel := context.WithTimeout(context.Background(), budget)
				defer cancel()
				return c.Stop(ctx)
			})
			stopped.Store(true)
			t.Logf("Stop(%v): %v", budget, err)
			const n = 20
			publish(t, js, 0, n)
			second := newSeen()
			att := newAttempts()
			consume(t, conn, pool, func(ctx context.Context, _ worker, i int) error { att.add(ctx, i); second.add(i); return nil })
			waitFor(t, 30*time.Second, "every message handled (AckWait 5m)", func() bool {
				return first.distinct()+second.distinct() >= n
			})
			burned := 0
			for i := range n {
				if got := att.get(i); len(got) > 0 && got[0] > 1 {
					burned++
				}
			}
			t.Logf("%d of %d messages published after the Stop came to the new consumer on delivery 2 or later", burned, n)
			waitFor(t, a15Hang, "all settled", settledAll(t, js, n))
			st := c.Stats()
			t.Logf("stopped consumer: %+v; handled %d after its Stop returned", st, late.Load())
			if late.Load() > 0 {
				t.Errorf("the stopped consumer handled %d messages published after its Stop returned", late.Load())
			}
			if st.Acked != 0 || st.Naked != st.Fetched || st.Pending != 0 {
				t.Errorf("the stopped consumer fetched %d messages published after its Stop returned and did not hand each back: %+v", st.Fetched, st)
			}
		})
	}
}
