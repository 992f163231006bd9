package jetstream_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/jetstream"
	natsjs "github.com/nats-io/nats.go/jetstream"
)

// Adversarial tests of Consume / Start, written from the package
// documentation only. Every wait has a generous deadline that only a hang
// trips; no verdict depends on timing.

// attackHang bounds every wait of these tests: far longer than any run
// takes, so that only a hang fails them.
const attackHang = 60 * time.Second

// checkSettledOnce asserts the consumer's books balance once it is idle:
// every fetched message settled exactly once (a redelivery of a message
// still held is settled with it), nothing pending.
func checkSettledOnce(t *testing.T, c *jetstream.Consumer) {
	t.Helper()
	st := c.Stats()
	if st.Pending != 0 {
		t.Errorf("stats %+v: %d still pending", st, st.Pending)
	}
	if settled := st.Acked + st.Naked + st.Termed; settled != st.Fetched-st.Duplicates {
		t.Errorf("stats %+v: settled %d, fetched %d: not one settle per delivery", st, settled, st.Fetched)
	}
}

// attempts records, per message, the delivery counts its handler saw.
type attempts struct {
	mu sync.Mutex
	n  map[int][]uint64
}

func newAttempts() *attempts { return &attempts{n: make(map[int][]uint64)} }

func (a *attempts) add(ctx context.Context, i int) uint64 {
	d, ok := jetstream.DeliveryFrom(ctx)
	if !ok {
		panic("no Delivery in the handler's context")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.n[i] = append(a.n[i], d.Meta.NumDelivered)
	return d.Meta.NumDelivered
}

func (a *attempts) get(i int) []uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]uint64(nil), a.n[i]...)
}

// TestAttackGoexitIsRetried: a handler that calls runtime.Goexit on its
// first attempt neither loses its message nor strands it under
// heartbeats: it is settled once (Nak'd) and the redelivery is acked.
func TestAttackGoexitIsRetried(t *testing.T) {
	srv := startServer(t, t.TempDir())
	conn := dial(t, srv)
	js := conn.JetStream()
	setupStream(t, js, 30*time.Second, -1)
	pool := startPool(t, 2)
	att := newAttempts()
	var ok sync.Map
	c := consume(t, conn, pool, func(ctx context.Context, _ worker, i int) error {
		if n := att.add(ctx, i); i%5 == 0 && n == 1 {
			runtime.Goexit()
		}
		ok.Store(i, true)
		return nil
	}, jetstream.Backoff(time.Millisecond, 2*time.Millisecond))
	const n = 40
	publish(t, js, 0, n)
	// AckWait is 30 s and heartbeats keep a stranded message forever:
	// only a settle of the Goexit'd deliveries brings them back.
	waitFor(t, attackHang, "every message acked after Goexits", settledAll(t, js, n))
	for i := range n {
		got := att.get(i)
		want := 1
		if i%5 == 0 {
			want = 2
		}
		if len(got) != want {
			t.Errorf("message %d: deliveries %v, want %d", i, got, want)
		}
		if _, done := ok.Load(i); !done {
			t.Errorf("message %d never succeeded", i)
		}
	}
	st := c.Stats()
	if st.Acked != n || st.Naked != n/5 || st.Termed != 0 {
		t.Errorf("stats %+v, want %d acked, %d Nak'd (the Goexits), 0 Term'd", st, n, n/5)
	}
	checkSettledOnce(t, c)
}

// TestAttackLastAttemptEveryWay: with MaxAttempts(2), a message that
// always panics, one that always calls Goexit, one that always fails, one
// that fails once, a permanent error wrapped with %w and an undecodable
// message: each poison one is Term'd once, on the right attempt, and given
// once to the dead-letter hook; the hook's own panic is not a crash.
func TestAttackLastAttemptEveryWay(t *testing.T) {
	srv := startServer(t, t.TempDir())
	conn := dial(t, srv)
	js := conn.JetStream()
	setupStream(t, js, 30*time.Second, -1)
	pool := startPool(t, 2)
	att := newAttempts()
	var mu sync.Mutex
	dead := map[string][]jetstream.DeadLetter{}
	var hookCalls atomic.Int32
	c := consume(t, conn, pool, func(ctx context.Context, _ worker, i int) error {
		n := att.add(ctx, i)
		switch i {
		case 1:
			panic("always")
		case 2:
			runtime.Goexit()
		case 3:
			return errors.New("always fails")
		case 4:
			if n == 1 {
				return errors.New("fails once")
			}
		case 5:
			return fmt.Errorf("wrapped: %w", jetstream.ErrPermanent)
		}
		return nil
	}, jetstream.MaxAttempts(2), jetstream.Backoff(time.Millisecond, time.Millisecond),
		jetstream.OnDeadLetter(func(_ context.Context, dl jetstream.DeadLetter) {
			mu.Lock()
			dead[string(dl.Data)] = append(dead[string(dl.Data)], dl)
			mu.Unlock()
			if hookCalls.Add(1) == 1 {
				panic("the dead-letter hook panics")
			}
		}))
	for _, data := range []string{"1", "2", "3", "4", "5", "6", "\xff not a number"} {
		if _, err := js.Publish(t.Context(), "tasks.n", []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, attackHang, "all settled", settledAll(t, js, 7))
	waitFor(t, attackHang, "five dead letters", func() bool { return hookCalls.Load() >= 5 })
	time.Sleep(200 * time.Millisecond) // a sixth would be a double Term

	wantAttempts := map[int]int{1: 2, 2: 2, 3: 2, 4: 2, 5: 1, 6: 1}
	for i, want := range wantAttempts {
		if got := att.get(i); len(got) != want {
			t.Errorf("message %d: handled on deliveries %v, want %d attempts", i, got, want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	wantDead := map[string]uint64{"1": 2, "2": 2, "3": 2, "5": 1, "\xff not a number": 1}
	for data, delivered := range wantDead {
		dls := dead[data]
		if len(dls) != 1 {
			t.Errorf("message %q: %d dead letters, want 1", data, len(dls))
			continue
		}
		dl := dls[0]
		if dl.Meta.NumDelivered != delivered || dl.Reason == "" || dl.Err == nil {
			t.Errorf("message %q: dead letter on delivery %d, reason %q, err %v; want delivery %d, a reason and an error",
				data, dl.Meta.NumDelivered, dl.Reason, dl.Err, delivered)
		}
	}
	if !errors.Is(dead["5"][0].Err, jetstream.ErrPermanent) {
		t.Errorf("the permanent error %v does not wrap ErrPermanent", dead["5"][0].Err)
	}
	for data := range dead {
		if _, want := wantDead[data]; !want {
			t.Errorf("message %q dead-lettered, want it acked", data)
		}
	}
	st := c.Stats()
	if st.Termed != 5 || st.Acked != 2 || st.Panics < 2 {
		t.Errorf("stats %+v, want 5 Term'd, 2 acked, at least 2 panics", st)
	}
	checkSettledOnce(t, c)
	info := consumerInfo(t, js)
	if info.NumAckPending != 0 || info.NumRedelivered != 0 || info.NumPending != 0 {
		t.Errorf("consumer after the Terms: %d ack-pending, %d redelivered, %d pending", info.NumAckPending, info.NumRedelivered, info.NumPending)
	}
}

// TestAttackQueuedPastAckWait: messages that wait in the pool's queue
// behind a single slow worker for longer than AckWait are kept by
// heartbeats too ("queued or running"): none is delivered twice. (The
// default window, the pool's capacity; see attack_failing_test.go for a
// larger one.)
func TestAttackQueuedPastAckWait(t *testing.T) {
	srv := startServer(t, t.TempDir())
	conn := dial(t, srv)
	js := conn.JetStream()
	setupStream(t, js, time.Second, -1)
	pool := startPool(t, 1)
	att := newAttempts()
	c := consume(t, conn, pool, func(ctx context.Context, _ worker, i int) error {
		att.add(ctx, i)
		select {
		case <-time.After(400 * time.Millisecond):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	const n = 10
	publish(t, js, 0, n)
	waitFor(t, attackHang, "all acked", settledAll(t, js, n))
	for i := range n {
		if got := att.get(i); len(got) != 1 || got[0] != 1 {
			t.Errorf("message %d: deliveries %v, want only the first: redelivered while queued", i, got)
		}
	}
	if st := c.Stats(); st.Acked != n || st.Naked != 0 {
		t.Errorf("stats %+v, want %d acked and nothing Nak'd", st, n)
	}
	checkSettledOnce(t, c)
}

// TestAttackStopWithDeafHandler: a stop while one handler ignores its
// context and another honours it returns (the deaf one does not hold it),
// hands both messages back at once (not after AckWait), never acks the
// deaf one when it finally returns nil, and a new consumer gets both again.
func TestAttackStopWithDeafHandler(t *testing.T) {
	srv := startServer(t, t.TempDir())
	conn := dial(t, srv)
	js := conn.JetStream()
	setupStream(t, js, 5*time.Minute, -1) // only a Nak can bring them back in time
	pool := startPool(t, 2)
	release := make(chan struct{})
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
	var running sync.WaitGroup
	running.Add(2)
	var deafReturned atomic.Bool
	c, err := jetstream.Start(t.Context(), js, pool, testStream, testConsumer, ids(),
		func(ctx context.Context, _ worker, i int) error {
			running.Done()
			if i == 0 {
				<-release // deaf to ctx
				deafReturned.Store(true)
				return nil
			}
			<-ctx.Done()
			return context.Cause(ctx)
		}, jetstream.FetchExpiry(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	publish(t, js, 0, 2)
	running.Wait()

	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		stopped <- c.Stop(ctx)
	}()
	select {
	case err := <-stopped:
		t.Logf("Stop: %v", err)
	case <-time.After(attackHang):
		t.Fatal("Stop hangs on a handler that ignores its context")
	}
	if deafReturned.Load() {
		t.Fatal("the deaf handler returned before its release")
	}
	st := c.Stats()
	if st.Acked != 0 || st.Naked != 2 || st.Pending != 0 {
		t.Errorf("after the stop: stats %+v, want 0 acked, 2 handed back, 0 pending", st)
	}
	releaseOnce.Do(func() { close(release) })
	waitFor(t, attackHang, "the deaf handler returns", deafReturned.Load)
	time.Sleep(100 * time.Millisecond) // room for a wrong late ack
	if st := c.Stats(); st.Acked != 0 {
		t.Errorf("the deaf handler's late nil was acked after the stop handed it back: %+v", st)
	}
	// A Nak with a delay stays ack-pending on the server until its
	// redelivery; only an ack would move the floor.
	if info := consumerInfo(t, js); info.AckFloor.Stream != 0 {
		t.Errorf("after the stop: ack floor %d; want both handed back, not acked", info.AckFloor.Stream)
	}

	att := newAttempts()
	consume(t, conn, pool, func(ctx context.Context, _ worker, i int) error {
		att.add(ctx, i)
		return nil
	})
	waitFor(t, attackHang, "both handled again, long before AckWait", settledAll(t, js, 2))
	for i := range 2 {
		if got := att.get(i); len(got) != 1 || got[0] != 2 {
			t.Errorf("message %d: deliveries %v after the restart, want [2]", i, got)
		}
	}
}

// TestAttackOptionErrors: bad options and bad consumers are errors of
// Start that name the culprit, never a hang or a panic.
func TestAttackOptionErrors(t *testing.T) {
	srv := startServer(t, t.TempDir())
	conn := dial(t, srv)
	js := conn.JetStream()
	setupStream(t, js, 30*time.Second, -1)
	ctx := t.Context()
	if _, err := js.CreateConsumer(ctx, testStream, natsjs.ConsumerConfig{Durable: "acknone", AckPolicy: natsjs.AckNonePolicy}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateConsumer(ctx, testStream, natsjs.ConsumerConfig{Durable: "maxdeliver1", AckPolicy: natsjs.AckExplicitPolicy, MaxDeliver: 1}); err != nil {
		t.Fatal(err)
	}
	pool := startPool(t, 2)
	ok := func(context.Context, worker, int) error { return nil }
	tests := []struct {
		name     string
		stream   string
		consumer string
		decode   jetstream.Decoder[int]
		handle   jetstream.Handler[worker, int]
		opts     []jetstream.Option
		want     []string // each, case-insensitively, in the error
	}{
		{"NilDecoder", testStream, testConsumer, nil, ok, nil, []string{"decode"}},
		{"NilHandler", testStream, testConsumer, ids(), nil, nil, []string{"handle"}},
		{"WindowZero", testStream, testConsumer, ids(), ok, []jetstream.Option{jetstream.Window(0)}, []string{"Window(0)"}},
		{"WindowNegative", testStream, testConsumer, ids(), ok, []jetstream.Option{jetstream.Window(-5)}, []string{"Window(-5)"}},
		{"FetchExpiryNegative", testStream, testConsumer, ids(), ok, []jetstream.Option{jetstream.FetchExpiry(-time.Second)}, []string{"FetchExpiry"}},
		{"BackoffNegative", testStream, testConsumer, ids(), ok, []jetstream.Option{jetstream.Backoff(-time.Second, time.Second)}, []string{"Backoff"}},
		{"MaxAttemptsNegative", testStream, testConsumer, ids(), ok, []jetstream.Option{jetstream.MaxAttempts(-2)}, []string{"MaxAttempts(-2)"}},
		{"NoSuchStream", "NOPE", testConsumer, ids(), ok, nil, []string{"NOPE"}},
		{"NoSuchConsumer", testStream, "nobody", ids(), ok, nil, []string{"nobody"}},
		{"AckNone", testStream, "acknone", ids(), ok, nil, []string{"acknone", "ack"}},
		{"MaxDeliverOne", testStream, "maxdeliver1", ids(), ok, nil, []string{"maxdeliver1", "MaxDeliver 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				c   *jetstream.Consumer
				err error
			)
			done := make(chan any, 1)
			go func() {
				defer func() { done <- recover() }()
				ctx, cancel := context.WithTimeout(t.Context(), attackHang)
				defer cancel()
				c, err = jetstream.Start(ctx, js, pool, tt.stream, tt.consumer, tt.decode, tt.handle, tt.opts...)
			}()
			select {
			case p := <-done:
				if p != nil {
					t.Fatalf("Start panicked: %v", p)
				}
			case <-time.After(attackHang + 10*time.Second):
				t.Fatal("Start hangs")
			}
			if err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_ = c.Stop(ctx)
				t.Fatal("Start accepted it")
			}
			for _, w := range tt.want {
				if !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(w)) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
		})
	}
}
