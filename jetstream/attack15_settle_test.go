package jetstream_test

// Adversarial round 15: settlement, attempts, poison messages, Stats
// against the server. Written from the public documentation only.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/jetstream"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
)

const a15Hang = 60 * time.Second

// a15DeadLetters collects the dead letters the hook is given.
type a15DeadLetters struct {
	mu  sync.Mutex
	dls []jetstream.DeadLetter
	ctx []jetstream.Delivery
	ok  []bool
}

func (d *a15DeadLetters) hook(ctx context.Context, dl jetstream.DeadLetter) {
	got, ok := jetstream.DeliveryFrom(ctx)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dls = append(d.dls, dl)
	d.ctx = append(d.ctx, got)
	d.ok = append(d.ok, ok)
}

func (d *a15DeadLetters) all() []jetstream.DeadLetter {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]jetstream.DeadLetter(nil), d.dls...)
}

func (d *a15DeadLetters) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.dls)
}

// TestAttack15JSPanicWithPermanentIsNaked: a handler that panics with an
// error wrapping ErrPermanent has panicked — the docs say a panic is Nak'd
// with backoff — so its message is retried, not Term'd; its second attempt
// succeeds and nothing reaches the dead-letter hook.
func TestAttack15JSPanicWithPermanentIsNaked(t *testing.T) {
	srv := startServer(t, t.TempDir())
	conn := dial(t, srv)
	js := conn.JetStream()
	setupStream(t, js, 30*time.Second, -1)
	pool := startPool(t, 2)
	att := newAttempts()
	var dead a15DeadLetters
	c := consume(t, conn, pool, func(ctx context.Context, _ worker, i int) error {
		if n := att.add(ctx, i); n == 1 {
			panic(jetstream.Permanent(errors.New("a panic value that wraps ErrPermanent")))
		}
		return nil
	}, jetstream.Backoff(time.Millisecond, 2*time.Millisecond), jetstream.OnDeadLetter(dead.hook))
	publish(t, js, 0, 3)
	waitFor(t, a15Hang, "all settled", settledAll(t, js, 3))
	waitFor(t, a15Hang, "nothing pending", func() bool { return c.Stats().Pending == 0 })
	for i := range 3 {
		if got := att.get(i); len(got) != 2 {
			t.Errorf("message %d: deliveries %v, want 2 (a panic is Nak'd and retried)", i, got)
		}
	}
	if n := dead.len(); n != 0 {
		t.Errorf("%d dead letters for panics: %+v", n, dead.all())
	}
	st := c.Stats()
	if st.Acked != 3 || st.Naked != 3 || st.Termed != 0 || st.Panics != 3 {
		t.Errorf("stats %+v, want 3 acked, 3 Nak'd, 0 Term'd, 3 panics", st)
	}
	checkSettledOnce(t, c)
}

// TestAttack15JSMaxAttemptsOne: with MaxAttempts(1) the first failure, of
// any kind, is the last: Term'd at once on delivery 1, never retried, one
// dead letter each carrying its Delivery in the hook's context.
func TestAttack15JSMaxAttemptsOne(t *testing.T) {
	srv := startServer(t, t.TempDir())
	conn := dial(t, srv)
	js := conn.JetStream()
	setupStream(t, js, 30*time.Second, -1)
	pool := startPool(t, 2)
	att := newAttempts()
	var dead a15DeadLetters
	c := consume(t, conn, pool, func(ctx context.Context, _ worker, i int) error {
		att.add(ctx, i)
		switch i % 3 {
		case 0:
			return errors.New("fails")
		case 1:
			panic("panics")
		}
		return nil
	}, jetstream.MaxAttempts(1), jetstream.Backoff(time.Millisecond, time.Millisecond), jetstream.OnDeadLetter(dead.hook))
	const n = 12
	publish(t, js, 0, n)
	waitFor(t, a15Hang, "all settled", settledAll(t, js, n))
	waitFor(t, a15Hang, "8 dead letters", func() bool { return dead.len() >= 8 })
	time.Sleep(200 * time.Millisecond) // room for a wrong retry
	for i := range n {
		if got := att.get(i); len(got) != 1 || got[0] != 1 {
			t.Errorf("message %d: deliveries %v, want only [1]", i, got)
		}
	}
	dls := dead.all()
	if len(dls) != 8 {
		t.Errorf("%d dead letters, want 8", len(dls))
	}
	dead.mu.Lock()
	for k, dl := range dls {
		if dl.Meta.NumDelivered != 1 || dl.Reason == "" || dl.Err == nil {
			t.Errorf("dead letter %q: delivery %d, reason %q, err %v", dl.Data, dl.Meta.NumDelivered, dl.Reason, dl.Err)
		}
		if !dead.ok[k] || dead.ctx[k].Meta.Sequence.Stream != dl.Meta.Sequence.Stream {
			t.Errorf("dead letter %q: the hook's ctx carries delivery %v (ok %v), want sequence %d", dl.Data, dead.ctx[k].Meta.Sequence, dead.ok[k], dl.Meta.Sequence.Stream)
		}
	}
	dead.mu.Unlock()
	st := c.Stats()
	if st.Acked != 4 || st.Termed != 8 || st.Naked != 0 {
		t.Errorf("stats %+v, want 4 acked, 8 Term'd, 0 Nak'd", st)
	}
	checkSettledOnce(t, c)
}

// TestAttack15JSMaxAttemptsCountsEarlierDeliveries: attempts are counted
// from the server's delivery count: a message already delivered (and Nak'd)
// three times by another client is on its 4th delivery when this consumer,
// with MaxAttempts(2), gets it; its failure is past the last attempt and is
// Term'd at once, not retried.
func TestAttack15JSMaxAttemptsCountsEarlierDeliveries(t *testing.T) {
	srv := startServer(t, t.TempDir())
	conn := dial(t, srv)
	js := conn.JetStream()
	setupStream(t, js, 30*time.Second, -1)
	publish(t, js, 0, 1)
	cons, err := js.Consumer(t.Context(), testStream, testConsumer)
	if err != nil {
		t.Fatal(err)
	}
	for k := 1; k <= 3; k++ {
		msg, err := cons.Next(natsjs.FetchMaxWait(10 * time.Second))
		if err != nil {
			t.Fatalf("raw delivery %d: %v", k, err)
		}
		md, _ := msg.Metadata()
		if md.NumDelivered != uint64(k) {
			t.Fatalf("raw delivery %d has NumDelivered %d", k, md.NumDelivered)
		}
		if err := msg.NakWithDelay(time.Nanosecond); err != nil {
			t.Fatal(err)
		}
	}
	pool := startPool(t, 1)
	att := newAttempts()
	var dead a15DeadLetters
	c := consume(t, conn, pool, func(ctx context.Context, _ worker, i int) error {
		att.add(ctx, i)
		return errors.New("fails")
	}, jetstream.MaxAttempts(2), jetstream.Backoff(time.Millisecond, time.Millisecond), jetstream.OnDeadLetter(dead.hook))
	waitFor(t, a15Hang, "the message settled", settledAll(t, js, 1))
	waitFor(t, a15Hang, "a dead letter", func() bool { return dead.len() == 1 })
	time.Sleep(200 * time.Millisecond)
	if got := att.get(0); len(got) != 1 || got[0] != 4 {
		t.Errorf("handled on deliveries %v, want only [4]", got)
	}
	if dls := dead.all(); len(dls) != 1 || dls[0].Meta.NumDelivered != 4 {
		t.Errorf("dead letters %+v, want one on delivery 4", dls)
	}
	checkSettledOnce(t, c)
}

type a15Order struct {
	ID    int `json:"id"`
	Items int `json:"items"`
}

// TestAttack15JSPoisonPayloads: with the JSON decoder, an empty body, a
// type mismatch, garbage and a truncated object are Term'd once each, their
// data given intact to the hook; "null" and a payload of ~900 KB (an
// unknown field padding it) decode and are acked; the handler never sees a
// poison message.
func TestAttack15JSPoisonPayloads(t *testing.T) {
	srv := startServer(t, t.TempDir())
	conn := dial(t, srv)
	js := conn.JetStream()
	setupStream(t, js, 30*time.Second, -1)
	pool := startPool(t, 2)
	var mu sync.Mutex
	handled := map[int]int{}
	var handledNull atomic.Int32
	var dead a15DeadLetters
	big := fmt.Sprintf(`{"id": 77, "items": 3, "pad": %q}`, strings.Repeat("x", 900_000))
	poison := []string{"", `{"id": "seven"}`, "\xff\xfe garbage", `{"id": 1,`, "   "}
	good := []string{"null", big, `{"id": 5}`}
	c, err := jetstream.Start(t.Context(), js, pool, testStream, testConsumer, jetstream.JSON[a15Order](),
		func(ctx context.Context, _ worker, o a15Order) error {
			mu.Lock()
			defer mu.Unlock()
			if o.ID == 0 {
				handledNull.Add(1)
			}
			handled[o.ID]++
			return nil
		}, jetstream.OnDeadLetter(dead.hook))
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
	all := append(append([]string(nil), poison...), good...)
	for _, p := range all {
		if _, err := js.Publish(t.Context(), "tasks.p", []byte(p)); err != nil {
			t.Fatalf("publish %d bytes: %v", len(p), err)
		}
	}
	waitFor(t, a15Hang, "all settled", settledAll(t, js, len(all)))
	waitFor(t, a15Hang, "the dead letters", func() bool { return dead.len() >= len(poison) })
	waitFor(t, a15Hang, "nothing pending", func() bool { return c.Stats().Pending == 0 })
	time.Sleep(200 * time.Millisecond)
	dls := dead.all()
	if len(dls) != len(poison) {
		t.Errorf("%d dead letters, want %d", len(dls), len(poison))
	}
	for _, p := range poison {
		k := 0
		for _, dl := range dls {
			if bytes.Equal(dl.Data, []byte(p)) {
				k++
				if dl.Reason == "" || dl.Err == nil || dl.Meta.NumDelivered != 1 {
					t.Errorf("dead letter %q: reason %q, err %v, delivery %d", p, dl.Reason, dl.Err, dl.Meta.NumDelivered)
				}
			}
		}
		if k != 1 {
			t.Errorf("poison %q: %d dead letters, want 1", p, k)
		}
	}
	mu.Lock()
	if handled[77] != 1 || handled[5] != 1 || handledNull.Load() != 1 || len(handled) != 3 {
		t.Errorf("handled %v (null %d times), want 77, 5 and the null (0) once each", handled, handledNull.Load())
	}
	mu.Unlock()
	st := c.Stats()
	if st.Termed != uint64(len(poison)) || st.Acked != uint64(len(good)) || st.Naked != 0 {
		t.Errorf("stats %+v, want %d Term'd, %d acked", st, len(poison), len(good))
	}
	checkSettledOnce(t, c)
}

var errA15Decode = errors.New("a15: custom decoder refuses")

// TestAttack15JSDeliveryAndDecoderError: the handler's Delivery carries the
// subject, the headers and the stream/consumer metadata; DeliveryFrom on a
// context that is not a handler's reports false; a custom decoder's error
// reaches the dead letter as its Err (errors.Is), with the headers.
func TestAttack15JSDeliveryAndDecoderError(t *testing.T) {
	srv := startServer(t, t.TempDir())
	conn := dial(t, srv)
	js := conn.JetStream()
	setupStream(t, js, 30*time.Second, -1)
	pool := startPool(t, 1)
	if _, ok := jetstream.DeliveryFrom(context.Background()); ok {
		t.Error("DeliveryFrom(context.Background()) reports a delivery")
	}
	var dead a15DeadLetters
	got := make(chan jetstream.Delivery, 4)
	decode := func(b []byte) ([]byte, error) {
		if string(b) == "bad" {
			return nil, fmt.Errorf("wrapped: %w", errA15Decode)
		}
		return b, nil
	}
	c, err := jetstream.Start(t.Context(), js, pool, testStream, testConsumer, decode,
		func(ctx context.Context, _ worker, b []byte) error {
			d, ok := jetstream.DeliveryFrom(ctx)
			if !ok {
				return jetstream.Permanent(errors.New("no delivery"))
			}
			got <- d
			return nil
		}, jetstream.OnDeadLetter(dead.hook))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = c.Stop(ctx)
	})
	msg := &nats.Msg{Subject: "tasks.hdr", Header: nats.Header{"X-A15": []string{"forty-two"}}, Data: []byte("ok")}
	if _, err := js.PublishMsg(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	bad := &nats.Msg{Subject: "tasks.bad", Header: nats.Header{"X-A15": []string{"bad"}}, Data: []byte("bad")}
	if _, err := js.PublishMsg(t.Context(), bad); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-got:
		if d.Subject != "tasks.hdr" || d.Header.Get("X-A15") != "forty-two" || d.Meta.Stream != testStream ||
			d.Meta.Consumer != testConsumer || d.Meta.Sequence.Stream != 1 || d.Meta.NumDelivered != 1 {
			t.Errorf("delivery %+v", d)
		}
	case <-time.After(a15Hang):
		t.Fatal("the good message was never handled")
	}
	waitFor(t, a15Hang, "the dead letter", func() bool { return dead.len() == 1 })
	dl := dead.all()[0]
	if !errors.Is(dl.Err, errA15Decode) || dl.Subject != "tasks.bad" || dl.Header.Get("X-A15") != "bad" || string(dl.Data) != "bad" {
		t.Errorf("dead letter %+v (err %v): want the decoder's error, the subject and the header", dl, dl.Err)
	}
	waitFor(t, a15Hang, "all settled", settledAll(t, js, 2))
}

// TestAttack15JSStatsMatchServer: a mixed run — messages that always
// fail, fail once, panic once, fail permanently, succeed — under
// MaxAttempts(3) and Window(3): every counter of Stats equals what the
// handler and the hook saw, the dead letters match Termed, MaxWindow stays
// within the window, and the server ends with nothing pending and the ack
// floor at the last message.
func TestAttack15JSStatsMatchServer(t *testing.T) {
	srv := startServer(t, t.TempDir())
	conn := dial(t, srv)
	js := conn.JetStream()
	setupStream(t, js, 30*time.Second, -1)
	pool := startPool(t, 3)
	att := newAttempts()
	var dead a15DeadLetters
	var calls atomic.Uint64
	c := consume(t, conn, pool, func(ctx context.Context, _ worker, i int) error {
		calls.Add(1)
		n := att.add(ctx, i)
		switch i % 10 {
		case 0:
			return errors.New("always")
		case 1:
			if n == 1 {
				return errors.New("once")
			}
		case 2:
			return jetstream.Permanent(errors.New("permanent"))
		case 3:
			if n == 1 {
				panic("once")
			}
		}
		return nil
	}, jetstream.MaxAttempts(3), jetstream.Window(3), jetstream.Backoff(time.Millisecond, 2*time.Millisecond), jetstream.OnDeadLetter(dead.hook))
	const n = 100
	publish(t, js, 0, n)
	waitFor(t, a15Hang, "all settled", settledAll(t, js, n))
	waitFor(t, a15Hang, "20 dead letters", func() bool { return dead.len() >= 20 })
	waitFor(t, a15Hang, "nothing pending", func() bool { return c.Stats().Pending == 0 })
	time.Sleep(200 * time.Millisecond)
	st := c.Stats()
	want := jetstream.Stats{Fetched: 140, Acked: 80, Naked: 40, Termed: 20, Panics: 10}
	if st.Fetched != want.Fetched || st.Acked != want.Acked || st.Naked != want.Naked || st.Termed != want.Termed ||
		st.Panics != want.Panics || st.Duplicates != 0 || calls.Load() != 140 {
		t.Errorf("stats %+v, handler calls %d; want %+v and 140 calls", st, calls.Load(), want)
	}
	if st.MaxWindow > 3 || st.Window != 3 {
		t.Errorf("stats %+v: MaxWindow %d, Window %d, want within 3", st, st.MaxWindow, st.Window)
	}
	if dls := dead.all(); len(dls) != 20 {
		t.Errorf("%d dead letters, want 20", len(dls))
	} else {
		for _, dl := range dls {
			var i int
			fmt.Sscan(string(dl.Data), &i)
			want := uint64(3)
			if i%10 == 2 {
				want = 1
			}
			if i%10 != 0 && i%10 != 2 || dl.Meta.NumDelivered != want {
				t.Errorf("dead letter %d on delivery %d", i, dl.Meta.NumDelivered)
			}
		}
	}
	info := consumerInfo(t, js)
	if info.NumAckPending != 0 || info.NumPending != 0 || info.AckFloor.Stream != n {
		t.Errorf("server: %d ack-pending, %d pending, ack floor %d", info.NumAckPending, info.NumPending, info.AckFloor.Stream)
	}
	checkSettledOnce(t, c)
}
