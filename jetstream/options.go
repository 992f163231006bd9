package jetstream

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"
)

// An Option configures a consumer made by [Consume] or [Start].
type Option interface {
	apply(*config) error
	String() string
}

type config struct {
	window      int
	expiry      time.Duration
	backoffMin  time.Duration
	backoffMax  time.Duration
	maxAttempts int
	deadLetter  func(context.Context, DeadLetter)
	poolName    string
	logger      *zap.Logger
}

func defaultConfig() config {
	return config{
		expiry:     2 * time.Second,
		backoffMin: 100 * time.Millisecond,
		backoffMax: 30 * time.Second,
	}
}

// Window bounds how many messages the consumer holds un-settled at once —
// fetched and not yet acked, Nak'd or Term'd, whether they wait to enter
// the pool, are queued in it or run. Every one of them gets the in-progress
// notices. The default is the pool's capacity, [workerpool.Capacity.InFlight]:
// if no one else submits to the pool, every message fetched enters it at
// once.
//
// A window larger than the capacity prefetches: the messages beyond what
// the pool takes wait in the consumer, in the order they came, and enter
// the pool as it makes room, so that a worker that frees up need not wait
// for a pull request. They are held all that time — another process that
// consumes from the same consumer cannot take them — and a stop hands them
// back at once, un-run. A smaller window leaves part of the pool to other
// submitters.
//
// The consumer's MaxAckPending must cover the windows of every process
// that consumes from it, or the server stops delivering before the
// windows are full.
type Window int

func (o Window) apply(c *config) error {
	if o < 1 {
		return fmt.Errorf("jetstream: Window(%d): must be at least 1", int(o))
	}
	c.window = int(o)
	return nil
}

func (o Window) String() string { return fmt.Sprintf("jetstream.Window(%d)", int(o)) }

// FetchExpiry sets how long one pull request waits for messages, from
// 100ms to 1m; the default is 2s. A stop waits for the pull requests in
// progress, so it also bounds how long a stop waits before the pulling has
// ended.
type FetchExpiry time.Duration

func (o FetchExpiry) apply(c *config) error {
	if time.Duration(o) < 100*time.Millisecond || time.Duration(o) > time.Minute {
		return fmt.Errorf("jetstream: FetchExpiry(%v): must be between 100ms and 1m", time.Duration(o))
	}
	c.expiry = time.Duration(o)
	return nil
}

func (o FetchExpiry) String() string {
	return fmt.Sprintf("jetstream.FetchExpiry(%v)", time.Duration(o))
}

type backoffOption struct{ min, max time.Duration }

// Backoff sets the delay of the Nak of a failed or panicked delivery: min
// after the first attempt, doubling with each attempt up to max. The default
// is Backoff(100ms, 30s).
func Backoff(min, max time.Duration) Option { return backoffOption{min, max} }

func (o backoffOption) apply(c *config) error {
	if o.min <= 0 || o.max < o.min {
		return fmt.Errorf("jetstream: %v: want 0 < min <= max", o)
	}
	c.backoffMin, c.backoffMax = o.min, o.max
	return nil
}

func (o backoffOption) String() string {
	return fmt.Sprintf("jetstream.Backoff(%v, %v)", o.min, o.max)
}

// MaxAttempts Terms a message whose n-th delivery failed or panicked,
// instead of Nak'ing it, and gives it to the [DeadLetter] hook. Attempts are
// counted by the consumer, from the delivery count of the server, because a
// server-side MaxDeliver strands a message whose last delivery was cut short
// by a stop or a crash. Every delivery counts, a run or not: one handed back
// by a stop, or taken by a process that died, is one attempt used. The
// default, 0, retries without limit.
type MaxAttempts int

func (o MaxAttempts) apply(c *config) error {
	if o < 0 {
		return fmt.Errorf("jetstream: MaxAttempts(%d): must not be negative", int(o))
	}
	c.maxAttempts = int(o)
	return nil
}

func (o MaxAttempts) String() string { return fmt.Sprintf("jetstream.MaxAttempts(%d)", int(o)) }

type deadLetterOption func(context.Context, DeadLetter)

// OnDeadLetter gives f every message the consumer Terms: on a decode error,
// a permanent error or the last allowed attempt. f runs on a worker's or the
// pull loop's goroutine, after the Term was sent; it must be quick and safe
// for concurrent use. ctx carries the [Delivery]. A panic in f is logged.
func OnDeadLetter(f func(ctx context.Context, dl DeadLetter)) Option {
	return deadLetterOption(f)
}

func (o deadLetterOption) apply(c *config) error {
	if o == nil {
		return fmt.Errorf("jetstream: OnDeadLetter(nil)")
	}
	c.deadLetter = o
	return nil
}

func (o deadLetterOption) String() string { return "jetstream.OnDeadLetter(...)" }

// PoolName makes [Consume] feed the pool provided under that name, as
// workerpool.Named provides it, instead of the unnamed one.
type PoolName string

func (o PoolName) apply(c *config) error {
	c.poolName = string(o)
	return nil
}

func (o PoolName) String() string { return fmt.Sprintf("jetstream.PoolName(%q)", string(o)) }

type loggerOption struct{ l *zap.Logger }

// Logger sets the logger of a consumer made by [Start]. [Consume] takes the
// app's *zap.Logger, if it has one. The default discards everything.
func Logger(l *zap.Logger) Option { return loggerOption{l} }

func (o loggerOption) apply(c *config) error {
	if o.l == nil {
		return fmt.Errorf("jetstream: Logger(nil)")
	}
	c.logger = o.l
	return nil
}

func (o loggerOption) String() string { return "jetstream.Logger(...)" }
