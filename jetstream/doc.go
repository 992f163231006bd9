// Package jetstream feeds fxpool's worker pools from NATS JetStream: the
// same pool, its tasks taken from a durable stream, on any number of
// machines, with no task lost across a graceful stop, a crash or kill -9.
//
// This package is the client side, on nats.go alone: an app that connects
// to a cluster by URL never compiles the server. Package embedded runs the
// server in-process, for an app that is its own broker.
//
// # Wiring
//
//	fx.New(
//		fxpool.Module,
//		embedded.Module(dir),                  // or nothing, with a URL below
//		jetstream.Connect(jetstream.Embedded), // or jetstream.Connect("nats://...")
//		workerpool.Provide[Deps]("billing", ...),
//		jetstream.Consume("ORDERS", "billing", jetstream.JSON[Order](), handle),
//	)
//
// [Consume] feeds the pool from a durable pull consumer that exists, with
// explicit acks and an unlimited MaxDeliver. The handler runs on a worker,
// with its R, the decoded message and a context that carries the [Delivery]
// (see [DeliveryFrom]). [Start] does the same without fx.
//
// # Settling
//
// Every message fetched is settled exactly once:
//
//   - acked once its handler returned nil, never before;
//   - Nak'd with backoff (see [Backoff]) when its handler failed or
//     panicked; the pool still counts and logs the panic;
//   - Term'd with a reason when it cannot be decoded, when its handler's
//     error wraps [ErrPermanent], or when its last attempt failed (see
//     [MaxAttempts]); it is logged, counted in [Stats] and given to the
//     [OnDeadLetter] hook;
//   - handed back (Nak'd with a delay of 1ns) when it never ran, or when
//     the stop gave up on it.
//
// A Nak always carries a delay: a plain Nak lives only in the server's
// memory, and a server that restarts forgets it, so that the message waits
// out AckWait. A Nak with a delay is stored.
//
// Attempts are counted here, from the server's delivery count, and not by
// the server's MaxDeliver: a server-side limit strands a message whose last
// delivery was cut short by a stop or a crash — never delivered again, never
// removed. [Start] refuses such a consumer.
//
// While a message is un-settled — waiting to enter the pool, queued in it,
// or running — the consumer tells the server every AckWait/3 that it is in
// progress, so that neither a long task nor one that waits is redelivered;
// a settle ends its notices. Should the server deliver again a message
// still held un-settled (its notices did not reach the server in time),
// the new delivery is not handled again: the held one's settle settles
// both (see [Stats].Duplicates).
//
// # The window
//
// A consumer holds at most [Window] messages un-settled, by default the
// pool's capacity ([workerpool.Capacity.InFlight]). Every message fetched
// counts, from its arrival to its settle: the pull loop takes each into the
// window at once and never blocks on the pool; a goroutine of its own, the
// submitter, hands them to the pool in the order they came, and waits when
// the pool is full — with a larger window (a prefetch), or a pool that
// others fill too. It sends its own pull requests, on one
// subscription that lives as long as the consumer: as soon as a quarter of
// the window is free — messages un-settled and messages asked for but not
// yet come both count as taken — it asks for the free part, while the
// messages of earlier requests are still coming or running. Each request
// expires after [FetchExpiry]. A status that ends requests early (a new
// leader, a deleted consumer) is retried with backoff; a request whose
// status was lost (a reconnect) gives its part of the window back once
// FetchExpiry and a second have passed. The consumer's MaxAckPending on the
// server must cover the windows of every process that consumes from it.
//
// # Stopping
//
// The consumer's OnStop hook runs before the pool's (it was appended
// after): see [Consumer.Stop] for the split of its budget. It stops
// pulling, hands back at once the messages still waiting to enter the
// pool, waits for the pull requests in progress to end — abandoning them
// would leave the messages the server sends un-acked until AckWait — and
// hands back at once what they bring; it lets the tasks in flight finish
// and acks them; past two fifths of the budget it cancels the rest, and
// past half it hands back whatever is still un-settled. Last, one request
// through the connection's ack queue makes sure the server has taken every
// ack: plain acks still queued when a server shuts down can be dropped.
// Then the pool closes its workers' resources, the connection flushes and
// closes, and the embedded server shuts down.
//
// The consumer is also the pool's feeder ([workerpool.Pool.AddFeeder]):
// a stop of the pool that begins first — workerpool.StopGuard, Pool.Stop —
// stops the pulling first too, and the pool's own drain and cancel settle
// the tasks.
//
// # Delivery guarantees
//
// At least once: a message is acked only after its handler returned nil,
// so a crash between the two redelivers it — a duplicate, never a loss.
// Handlers must be idempotent. With an embedded server, the server dies with
// the process: kill -9 loses nothing the server had written to its store,
// but may lose the last acks it had not yet recorded, and those messages
// are handled again. See package embedded for what a power loss can lose.
//
// # Goroutines
//
// Each consumer starts three, from one place ([Start]), each with an owner
// that ends it and waits for it:
//
//	goroutine   started by   ended by                           waited for by
//	pull loop   Start        the stop's close of its stop        Consumer.Stop (and the pool's
//	                         channel, once the pull requests    feeder stop), through its
//	                         in progress end (FetchExpiry)      done channel, within the
//	                                                            stop's budget
//	submitter   Start        the end of the pull loop, once     Consumer.Stop, through its
//	                         nothing waits (the stop hands      done channel
//	                         back what waits; a submission in
//	                         progress ends when the pool takes
//	                         it, closes, or the stop cancels
//	                         the tasks)
//	heartbeats  Start        Consumer.Stop, once every          Consumer.Stop, through its
//	                         message is settled or handed back  done channel
//
// The messages come on a channel subscription, handed over by nats.go's
// reading goroutine: no goroutine of nats.go is started for them. Handlers
// run on the pool's workers, never on the consumer's goroutines.
package jetstream
