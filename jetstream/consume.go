package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/fxpool/fxpool/workerpool"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"go.uber.org/fx"
	"go.uber.org/zap"
)

// A Decoder turns a message's data into the value its handler receives.
// An error Terms the message as undecodable: no retry can cure it.
type Decoder[M any] func(data []byte) (M, error)

// JSON decodes each message as JSON into an M.
func JSON[M any]() Decoder[M] {
	return func(data []byte) (M, error) {
		var m M
		err := json.Unmarshal(data, &m)
		return m, err
	}
}

// Bytes hands each message's data to the handler as it is.
func Bytes() Decoder[[]byte] {
	return func(data []byte) ([]byte, error) { return data, nil }
}

// A Handler processes one decoded message on a worker of the pool, with the
// worker's R. ctx carries the [Delivery] (see [DeliveryFrom]) and ends when
// the pool's or the consumer's stop says so. Returning nil acks the message;
// an error Naks it with backoff, or Terms it if it wraps [ErrPermanent] or
// this was the last attempt (see [MaxAttempts]).
type Handler[R, M any] func(ctx context.Context, r R, m M) error

// Delivery is what a handler knows of the message it is given.
type Delivery struct {
	Subject string
	Header  nats.Header
	// Meta is the delivery's JetStream metadata: stream and consumer
	// sequences, the delivery count (NumDelivered: 1 on the first
	// attempt), the time it was published.
	Meta natsjs.MsgMetadata
}

type deliveryKey struct{}

// DeliveryFrom returns the delivery whose handler got ctx.
func DeliveryFrom(ctx context.Context) (Delivery, bool) {
	d, ok := ctx.Value(deliveryKey{}).(*delivery)
	if !ok {
		return Delivery{}, false
	}
	return Delivery{Subject: d.msg.Subject, Header: d.msg.Header, Meta: d.meta}, true
}

// DeadLetter is a message the consumer Term'd, given to the
// [OnDeadLetter] hook.
type DeadLetter struct {
	Delivery
	Data   []byte
	Reason string // as sent with the Term
	Err    error  // the decode or handler error
}

// Stats counts what a consumer did. Settled is Acked + Naked + Termed; once
// nothing is pending, it is Fetched - Duplicates.
type Stats struct {
	Fetched   uint64 // messages received, duplicates included
	Acked     uint64 // handler returned nil
	Naked     uint64 // failed, panicked, not run, or handed back at stop
	Termed    uint64 // undecodable, permanent error, or last attempt
	Panics    uint64 // handlers that panicked or called runtime.Goexit
	Heartbeat uint64 // in-progress notices sent
	Pending   int    // un-settled now: waiting to enter the pool, queued in it, or running
	Waiting   int    // of Pending, those not yet accepted by the pool
	MaxWindow int    // most un-settled at once so far
	Window    int    // the bound of Pending
	// Duplicates counts the redeliveries of a message that this consumer
	// still held un-settled: not handled again, nor settled on their own
	// (see [Consumer]).
	Duplicates uint64
}

// Consume feeds the app's *workerpool.Pool[R] from the durable pull
// consumer named consumer on stream, through the app's *[Conn]: each message
// is decoded with decode and handled by handle on a worker, and settled by
// the handler's outcome. The consumer must exist, with explicit acks and an
// unlimited MaxDeliver (see [Start]).
//
// The consumer starts in an OnStart hook appended after the pool's, so the
// pool is serving; its pull loop is registered as the pool's feeder, so that
// any stop of the pool first stops the pulling. Its OnStop hook, which runs
// before the pool's, is [Consumer.Stop]: every message it fetched is settled
// before the pool and the connection stop. The app's *zap.Logger is used if
// it has one.
func Consume[R, M any](stream, consumer string, decode Decoder[M], handle Handler[R, M], opts ...Option) fx.Option {
	cfg := defaultConfig()
	for _, o := range opts {
		if o == nil {
			return fx.Error(errors.New("jetstream: Consume: nil option"))
		}
		if err := o.apply(&cfg); err != nil {
			return fx.Error(err)
		}
	}
	poolTag := ""
	if cfg.poolName != "" {
		poolTag = fmt.Sprintf("name:%q", cfg.poolName)
	}
	// The connection first: when neither was built before, the pool's hooks
	// then come after the connection's, and the app stops the consumer,
	// the pool, the connection and the server, in that order.
	invoke := func(lc fx.Lifecycle, conn *Conn, pool *workerpool.Pool[R], log *zap.Logger) {
		if log != nil && cfg.logger == nil {
			cfg.logger = log.Named("jetstream").With(zap.String("stream", stream), zap.String("consumer", consumer))
		}
		var c *Consumer
		lc.Append(fx.Hook{
			OnStart: func(ctx context.Context) error {
				var err error
				c, err = start(ctx, conn.JetStream(), pool, stream, consumer, decode, handle, cfg)
				return err
			},
			OnStop: func(ctx context.Context) error {
				if c == nil {
					return nil
				}
				return c.Stop(ctx)
			},
		})
	}
	return fx.Invoke(fx.Annotate(invoke, fx.ParamTags("", "", poolTag, `optional:"true"`)))
}

// Start starts consuming from the durable pull consumer named consumer on
// stream, without fx: as [Consume], on the given pool, which must be
// serving (see [workerpool.Pool.Serving]): Start refuses a pool that has
// not started, or has failed or stopped. It returns once the pull loop
// runs; stop it with [Consumer.Stop].
//
// The consumer must use explicit acks and have an unlimited MaxDeliver
// (0 or -1): a server-side limit strands a message whose last delivery was
// cut short by a stop or a crash — never delivered again, never removed.
// Use [MaxAttempts] instead. Start refuses any other consumer.
func Start[R, M any](ctx context.Context, js natsjs.JetStream, pool *workerpool.Pool[R], stream, consumer string, decode Decoder[M], handle Handler[R, M], opts ...Option) (*Consumer, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if o == nil {
			return nil, errors.New("jetstream: Start: nil option")
		}
		if err := o.apply(&cfg); err != nil {
			return nil, err
		}
	}
	return start(ctx, js, pool, stream, consumer, decode, handle, cfg)
}

func start[R, M any](ctx context.Context, js natsjs.JetStream, pool *workerpool.Pool[R], stream, consumer string, decode Decoder[M], handle Handler[R, M], cfg config) (*Consumer, error) {
	if js == nil || pool == nil || decode == nil || handle == nil {
		return nil, errors.New("jetstream: Start: nil JetStream, pool, decoder or handler")
	}
	if !pool.Serving() {
		// Every message fetched would be handed back at once, and
		// fetched again: a spin that uses up its attempts.
		return nil, fmt.Errorf("jetstream: consumer %s/%s: the pool is not serving (start it first; a stopped or failed pool takes no tasks)", stream, consumer)
	}
	cons, err := js.Consumer(ctx, stream, consumer)
	if err != nil {
		return nil, fmt.Errorf("jetstream: consumer %s/%s: %w", stream, consumer, err)
	}
	info := cons.CachedInfo()
	switch {
	case info.Config.AckPolicy != natsjs.AckExplicitPolicy:
		return nil, fmt.Errorf("jetstream: consumer %s/%s: ack policy %v, want explicit", stream, consumer, info.Config.AckPolicy)
	case info.Config.MaxDeliver > 0:
		return nil, fmt.Errorf("jetstream: consumer %s/%s: MaxDeliver %d strands a message whose last delivery is cut short by a stop or crash: "+
			"use -1 and jetstream.MaxAttempts", stream, consumer, info.Config.MaxDeliver)
	case info.Config.DeliverSubject != "":
		return nil, fmt.Errorf("jetstream: consumer %s/%s: a push consumer, want a pull consumer", stream, consumer)
	}
	if cfg.window == 0 {
		cfg.window = max(1, pool.Capacity().InFlight())
	}
	if cfg.logger == nil {
		cfg.logger = zap.NewNop()
	}
	ackWait := info.Config.AckWait
	if ackWait <= 0 {
		ackWait = 30 * time.Second
	}
	nc := js.Conn()
	c := &Consumer{
		name:        stream + "/" + consumer,
		nc:          nc,
		cfg:         cfg,
		log:         cfg.logger,
		hbEvery:     ackWait / 3,
		nextSubject: apiPrefix(js) + "CONSUMER.MSG.NEXT." + stream + "." + consumer,
		inbox:       nc.NewInbox(),
		pullAt:      max(1, cfg.window/4),
		pending:     make(map[*delivery]struct{}, cfg.window),
		bySeq:       make(map[uint64]*delivery, cfg.window),
		queued:      make(chan struct{}, 1),
		freed:       make(chan struct{}, 1),
		stopPull:    make(chan struct{}),
		loopDone:    make(chan struct{}),
		subDone:     make(chan struct{}),
		hbStop:      make(chan struct{}),
		hbDone:      make(chan struct{}),
	}
	c.tasks, c.cancelTasks = context.WithCancelCause(context.Background())
	c.submit = func(d *delivery) {
		if c.stopping() {
			// Never accepted by the pool: back at once, as at the stop.
			c.nak(d, time.Nanosecond)
			return
		}
		m, err := decode(d.msg.Data)
		if err != nil {
			c.term(d, "undecodable: "+err.Error(), err)
			return
		}
		task := func(ctx context.Context, r R) error {
			d.started()
			return handle(context.WithValue(ctx, deliveryKey{}, d), r, m)
		}
		if err := pool.GoReport(c.tasks, task, func(o workerpool.Outcome, err error) { c.settle(d, o, err) }); err != nil {
			// Not accepted: the pool is stopping; another consumer takes it.
			c.nak(d, time.Nanosecond)
		}
	}
	// Room for every message of the window and a status for each pull
	// request: a full channel would drop what comes.
	msgs := make(chan *nats.Msg, 2*cfg.window+16)
	sub, err := nc.ChanSubscribe(c.inbox, msgs)
	if err != nil {
		c.cancelTasks(ErrStopping)
		return nil, fmt.Errorf("jetstream: consumer %s: subscribe: %w", c.name, err)
	}
	if err := pool.AddFeeder(c.stopPulling); err != nil {
		_ = sub.Unsubscribe()
		c.cancelTasks(ErrStopping)
		return nil, fmt.Errorf("jetstream: consumer %s: %w", c.name, err)
	}
	go c.pullLoop(sub, msgs)
	go c.submitter()
	go c.heartbeats()
	return c, nil
}

// Consumer is a running pull loop that feeds a pool. It is made by [Start]
// or, in an fx app, by [Consume]. Its methods are safe for concurrent use.
//
// Every message it fetched and has not settled — waiting to enter the
// pool, queued in it, or running — is in its window and gets its
// in-progress notices. Should the server still deliver again a message it
// holds un-settled (its notices did not reach the server in time: a
// reconnect, a stalled process), the new delivery is not handled a second
// time: the one held goes on, and its settle, which the server applies to
// the message whatever the delivery, settles both. It is counted in
// [Stats].Duplicates. A redelivery of a message already settled here is
// handled as any other.
type Consumer struct {
	name    string
	nc      *nats.Conn
	cfg     config
	log     *zap.Logger
	hbEvery time.Duration
	submit  func(*delivery) // decodes and hands one to the pool; may block

	// Of the pull loop alone.
	nextSubject string // where pull requests go
	inbox       string // where their messages come
	reqBuf      []byte
	pullAt      int // the free part of the window worth a pull request

	// tasks is the context of every task submitted; the stop cancels it,
	// with ErrStopping, when it gives up waiting for them.
	tasks       context.Context
	cancelTasks context.CancelCauseFunc

	mu        sync.Mutex
	pending   map[*delivery]struct{} // fetched and not settled
	bySeq     map[uint64]*delivery   // the deliveries of pending by stream sequence
	waiting   []*delivery            // of pending, for the submitter, in order
	handing   bool                   // the submitter hands one to the pool
	credits   int                    // asked for and not yet come (see pull.go)
	wantRoom  bool                   // the pull loop waits for pullAt free
	maxWindow int
	// For the barrier at the stop: the reply subject of the last message
	// acked or Term'd, or else of the last Nak'd and its Nak.
	lastFinal, lastNak string
	stats              Stats
	emptied            chan struct{} // closed when pending empties, if someone waits

	queued   chan struct{} // something waits for the submitter (size 1)
	freed    chan struct{} // pullAt of the window are free (size 1)
	stopOnce sync.Once
	stopPull chan struct{} // closed: stop pulling
	loopDone chan struct{} // closed by the pull loop when it returns
	subDone  chan struct{} // closed by the submitter when it returns
	hbOnce   sync.Once
	hbStop   chan struct{} // closed: stop the heartbeats
	hbDone   chan struct{} // closed by the heartbeat goroutine

	stopMu  sync.Mutex // one Stop at a time
	stopped bool
	stopErr error
}

type delivery struct {
	msg  *nats.Msg
	meta natsjs.MsgMetadata

	mu        sync.Mutex
	settled   bool
	running   bool
	lastTouch time.Time
}

func (d *delivery) started() {
	d.mu.Lock()
	d.running = true
	d.mu.Unlock()
}

func (d *delivery) isSettled() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.settled
}

// Stats returns the consumer's counters. It does not block.
func (c *Consumer) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Pending = len(c.pending)
	s.Waiting = len(c.waiting)
	if c.handing {
		s.Waiting++
	}
	s.MaxWindow = c.maxWindow
	s.Window = c.cfg.window
	return s
}

func (c *Consumer) stopping() bool {
	select {
	case <-c.stopPull:
		return true
	default:
		return false
	}
}

// receive takes one fetched message into the window, where the heartbeats
// cover it, and queues it for the submitter, or, once the stop has begun,
// hands it straight back to the server. It never blocks: the pull loop
// must keep taking what the server sends, or the messages in the
// subscription's channel would be fetched and yet outside the heartbeats.
func (c *Consumer) receive(msg *nats.Msg) {
	d := &delivery{msg: msg, lastTouch: time.Now()}
	d.meta, _ = parseMeta(msg.Reply)
	seq := d.meta.Sequence.Stream
	c.mu.Lock()
	c.credits = max(0, c.credits-1)
	c.stats.Fetched++
	if held := c.bySeq[seq]; held != nil && !held.isSettled() {
		// A redelivery of a message held here: the held delivery settles
		// it (acks, Naks and Terms apply to the stream sequence).
		c.stats.Duplicates++
		c.mu.Unlock()
		c.log.Debug("redelivery of a message still held; not handled again",
			zap.Uint64("stream_seq", seq), zap.Uint64("delivered", d.meta.NumDelivered))
		return
	}
	c.pending[d] = struct{}{}
	if seq != 0 {
		c.bySeq[seq] = d
	}
	c.maxWindow = max(c.maxWindow, len(c.pending))
	stopping := c.stopping()
	if !stopping {
		c.waiting = append(c.waiting, d)
	}
	c.mu.Unlock()
	if stopping {
		c.nak(d, time.Nanosecond)
		return
	}
	select {
	case c.queued <- struct{}{}:
	default:
	}
}

// submitter hands the messages received to the pool, in the order they
// came, blocking while the pool is full; it returns once the pull loop has
// returned and nothing waits.
func (c *Consumer) submitter() {
	defer close(c.subDone)
	ended := c.loopDone
	for {
		c.mu.Lock()
		var d *delivery
		if len(c.waiting) > 0 {
			d = c.waiting[0]
			c.waiting[0] = nil
			c.waiting = c.waiting[1:]
			c.handing = true
		}
		c.mu.Unlock()
		if d != nil {
			c.submit(d)
			c.mu.Lock()
			c.handing = false
			c.mu.Unlock()
			continue
		}
		if ended == nil {
			return // the pull loop has returned; nothing waits
		}
		select {
		case <-c.queued:
		case <-ended:
			ended = nil // one last look
		}
	}
}

// handBackWaiting Naks back at once every message still waiting for the
// submitter. The stop calls it once the pulling is stopped: receive queues
// nothing more.
func (c *Consumer) handBackWaiting() {
	c.mu.Lock()
	w := c.waiting
	c.waiting = nil
	c.mu.Unlock()
	for _, d := range w {
		c.nak(d, time.Nanosecond)
	}
}

// settle acks, Naks or Terms a delivery by its task's outcome.
func (c *Consumer) settle(d *delivery, o workerpool.Outcome, err error) {
	switch {
	case o == workerpool.Succeeded:
		c.finish(d, acked, ackBody)
		return
	case o == workerpool.NotRun:
		c.nak(d, time.Nanosecond)
		return
	case o == workerpool.Panicked:
		c.mu.Lock()
		c.stats.Panics++
		c.mu.Unlock()
		c.log.Warn("handler panicked", zap.Uint64("stream_seq", d.meta.Sequence.Stream), zap.Error(err))
	case errors.Is(err, ErrPermanent):
		c.term(d, err.Error(), err)
		return
	case c.stopping():
		// Cut short by the stop, most likely: back at once, not Term'd.
		c.nak(d, time.Nanosecond)
		return
	}
	attempt := int(d.meta.NumDelivered)
	if c.cfg.maxAttempts > 0 && attempt >= c.cfg.maxAttempts && !c.stopping() {
		c.term(d, fmt.Sprintf("attempt %d of %d failed: %v", attempt, c.cfg.maxAttempts, err), err)
		return
	}
	c.nak(d, c.backoff(attempt))
}

func (c *Consumer) backoff(attempt int) time.Duration {
	d := c.cfg.backoffMin
	for i := 1; i < attempt && d < c.cfg.backoffMax; i++ {
		d *= 2
	}
	d = min(d, c.cfg.backoffMax)
	// Half to all of it, so that failures spread out.
	return d/2 + rand.N(d/2+1)
}

// nak hands a delivery back with a delay. Always a delay: a plain Nak lives
// only in the server's memory, and a server that restarts forgets it.
func (c *Consumer) nak(d *delivery, delay time.Duration) {
	c.finish(d, naked, nakBody(delay))
}

func (c *Consumer) term(d *delivery, reason string, cause error) {
	if c.finish(d, termed, termBody(reason)) {
		c.log.Warn("message terminated", zap.String("subject", d.msg.Subject),
			zap.Uint64("stream_seq", d.meta.Sequence.Stream), zap.String("reason", reason))
		if c.cfg.deadLetter != nil {
			c.deadLetter(d, reason, cause)
		}
	}
}

func (c *Consumer) deadLetter(d *delivery, reason string, cause error) {
	defer func() {
		if v := recover(); v != nil {
			c.log.Error("dead-letter hook panicked", zap.Any("panic", v))
		}
	}()
	ctx := context.WithValue(context.Background(), deliveryKey{}, d)
	dl := DeadLetter{Data: d.msg.Data, Reason: reason, Err: cause}
	dl.Delivery, _ = DeliveryFrom(ctx)
	c.cfg.deadLetter(ctx, dl)
}

type settleKind int

const (
	acked settleKind = iota
	naked
	termed
)

// finish settles d with the reply body, exactly once: it reports whether
// this call did. The delivery's lock keeps a heartbeat from following the
// settle.
func (c *Consumer) finish(d *delivery, kind settleKind, body []byte) bool {
	d.mu.Lock()
	if d.settled {
		d.mu.Unlock()
		return false
	}
	d.settled = true
	err := c.nc.Publish(d.msg.Reply, body)
	d.mu.Unlock()
	if err != nil {
		c.log.Warn("settle failed; the server redelivers after AckWait",
			zap.Uint64("stream_seq", d.meta.Sequence.Stream), zap.Error(err))
	}
	c.mu.Lock()
	delete(c.pending, d)
	if seq := d.meta.Sequence.Stream; c.bySeq[seq] == d {
		delete(c.bySeq, seq)
	}
	if len(c.pending) == 0 && c.emptied != nil {
		close(c.emptied)
		c.emptied = nil
	}
	switch kind {
	case acked:
		c.stats.Acked++
	case naked:
		c.stats.Naked++
	case termed:
		c.stats.Termed++
	}
	if err == nil && kind == naked {
		c.lastNak = d.msg.Reply
	} else if err == nil {
		c.lastFinal = d.msg.Reply
	}
	room := c.roomLocked()
	c.mu.Unlock()
	if room {
		select {
		case c.freed <- struct{}{}:
		default:
		}
	}
	return true
}

// heartbeats tells the server, every AckWait/3, that each un-settled
// delivery is still in progress, so that long tasks are not redelivered.
func (c *Consumer) heartbeats() {
	defer close(c.hbDone)
	tick := time.NewTicker(max(c.hbEvery/2, time.Millisecond))
	defer tick.Stop()
	var due []*delivery
	for {
		select {
		case <-c.hbStop:
			return
		case now := <-tick.C:
			due = c.unsettled(due[:0])
			sent := 0
			for _, d := range due {
				d.mu.Lock()
				if !d.settled && now.Sub(d.lastTouch) >= c.hbEvery {
					if c.nc.Publish(d.msg.Reply, inProgressBody) == nil {
						sent++
					}
					d.lastTouch = now
				}
				d.mu.Unlock()
			}
			c.mu.Lock()
			c.stats.Heartbeat += uint64(sent)
			c.mu.Unlock()
		}
	}
}

// stopPulling is the consumer's feeder stop: it ends the pulling, hands
// back the messages still waiting to enter the pool, and waits, within ctx,
// for the pull requests in progress, whose messages, if any arrive, are
// Nak'd back at once.
func (c *Consumer) stopPulling(ctx context.Context) error {
	c.stopOnce.Do(func() { close(c.stopPull) })
	c.handBackWaiting()
	select {
	case <-c.loopDone:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("jetstream: consumer %s: the pull requests in progress outlived the stop's share: %w", c.name, context.Cause(ctx))
	}
}

// Stop stops the consumer and settles every message it holds, within
// ctx's budget:
//
//   - it stops pulling, Naks back at once the messages still waiting to
//     enter the pool (with a [Window] over the pool's capacity, or a pool
//     that other submitters fill too), and waits for the pull requests in
//     progress (at most the fetch expiry; up to a second and a half more if
//     a reconnect lost their statuses), whose messages it Naks back at
//     once;
//   - it lets the tasks in flight finish, each acked or Nak'd by its
//     outcome, until two fifths of the budget;
//   - then it cancels the context of the tasks left, with cause
//     [ErrStopping], and waits for them until half of the budget;
//   - then it Naks, with a delay of 1ns, every message still un-settled
//     (a task that ignores its context; a task still queued), so that it
//     comes back at once, here after a restart or to another process. It
//     never acks a task that did not finish;
//   - last, it sends one request through the connection's ack queue and
//     waits for the reply, so that the server has processed every ack
//     before the connection or the embedded server stops.
//
// Stop blocks until all that is done, and returns an error if the budget
// ran out first. The pull loop may then outlive it, until its pull
// requests in progress expire (at most the fetch expiry), and Naks back at
// once what they still bring: each such delivery counts toward
// [MaxAttempts], as any delivery does. A stop without a deadline waits for
// every task. A second Stop waits for the first and returns its result. A
// pool's stop that began first has already stopped the pulling, as the
// pool's feeder.
func (c *Consumer) Stop(ctx context.Context) error {
	c.stopMu.Lock()
	defer c.stopMu.Unlock()
	if c.stopped {
		return c.stopErr
	}
	c.stopped = true
	c.stopErr = c.stop(ctx)
	return c.stopErr
}

func (c *Consumer) stop(ctx context.Context) error {
	began := time.Now()
	at := func(share float64) (context.Context, context.CancelFunc) {
		dl, ok := ctx.Deadline()
		if !ok {
			return context.WithCancel(ctx)
		}
		return context.WithDeadline(ctx, began.Add(time.Duration(float64(dl.Sub(began))*share)))
	}
	var errs []error

	pullCtx, cancel := at(0.4)
	errs = append(errs, c.stopPulling(pullCtx))
	cancel()

	drainCtx, cancel := at(0.4)
	c.waitSettled(drainCtx)
	cancel()
	c.cancelTasks(ErrStopping)

	cutCtx, cancel := at(0.5)
	c.waitSettled(cutCtx)
	cancel()

	left := c.unsettled(nil)
	running := 0
	for _, d := range left {
		d.mu.Lock()
		if d.running {
			running++
		}
		d.mu.Unlock()
		c.nak(d, time.Nanosecond)
	}
	if running > 0 {
		errs = append(errs, fmt.Errorf("jetstream: consumer %s: %d tasks still running ignored their context; their messages were handed back", c.name, running))
	}

	c.hbOnce.Do(func() { close(c.hbStop) })
	<-c.hbDone

	// A barrier: the server answers a request on an ack subject once it
	// has processed every ack this connection sent before it. An
	// in-progress notice for a message acked or Term'd does nothing else
	// (for one that is Nak'd, it would undo the Nak: its Nak is repeated).
	c.mu.Lock()
	reply, body := c.lastFinal, []byte("+WPI")
	if reply == "" {
		reply, body = c.lastNak, []byte(`-NAK {"delay": 1}`)
	}
	c.mu.Unlock()
	if reply != "" && !c.nc.IsClosed() {
		bctx, cancel := ctx, context.CancelFunc(func() {})
		if _, ok := ctx.Deadline(); !ok {
			bctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		}
		_, err := c.nc.RequestWithContext(bctx, reply, body)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("jetstream: consumer %s: waiting for the server to take the acks: %w", c.name, err))
		}
	}

	select {
	case <-c.loopDone:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("jetstream: consumer %s: the pull requests in progress did not end by the stop's deadline", c.name))
		return errors.Join(errs...)
	}
	// The submitter returns once the pull loop has: its last submission,
	// if any, ended with the cancel of the tasks.
	select {
	case <-c.subDone:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("jetstream: consumer %s: the hand-over to the pool did not end by the stop's deadline", c.name))
	}
	return errors.Join(errs...)
}

// waitSettled waits until nothing is pending or ctx ends.
func (c *Consumer) waitSettled(ctx context.Context) {
	c.mu.Lock()
	if len(c.pending) == 0 {
		c.mu.Unlock()
		return
	}
	if c.emptied == nil {
		c.emptied = make(chan struct{})
	}
	emptied := c.emptied
	c.mu.Unlock()
	select {
	case <-emptied:
	case <-ctx.Done():
	}
}

// unsettled appends the deliveries not settled yet to buf and returns it.
func (c *Consumer) unsettled(buf []*delivery) []*delivery {
	c.mu.Lock()
	defer c.mu.Unlock()
	for d := range c.pending {
		buf = append(buf, d)
	}
	return buf
}
