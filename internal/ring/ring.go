// Package ring is the queue of a worker pool: a bounded FIFO queue for many
// producers and many consumers that takes no lock while it is neither empty
// nor full, and parks a consumer on an empty queue and a producer on a full
// one.
//
// The slots are D. Vyukov's bounded MPMC queue: each slot carries a
// sequence number that says whose turn it is, producers claim a position
// with a CAS on the tail and consumers with a CAS on the head, and a value
// is published by storing its slot's sequence. A channel serializes every
// send and receive on one lock, which a pool's submitter and its workers
// take in turn for every task; here they touch different words.
//
// Parking uses a channel of tokens, as a semaphore would. A consumer that
// finds the queue empty registers itself idle, looks again, and only then
// waits for a token; a producer publishes its value and then, if it sees
// an idle registration, claims it (a CAS on the count) and sends a token
// for it. Go's atomics are sequentially consistent, so of the two — the
// consumer's registration and look, the producer's publication and look —
// one sees the other. Every registration ends exactly once: claimed by a
// producer, whose token its consumer — or one that leaves in its stead —
// takes; or withdrawn by its consumer, which found a value or gave up. A
// woken consumer always looks again, and one that takes a value while
// more wait and others are idle wakes one of them: a value is never left
// behind by consumers that all wait. Full producers park on tokens of
// their own, sent by consumers that make room.
package ring

import (
	"fmt"
	"runtime"
	"sync/atomic"
)

// Ring is a bounded FIFO queue. Its zero value is not usable: see [New].
type Ring[T any] struct {
	_     [64]byte // keep tail, head and the counts on lines of their own
	tail  atomic.Uint64
	_     [56]byte
	head  atomic.Uint64
	_     [56]byte
	idle  atomic.Int64 // consumers that found the queue empty and may wait
	_     [56]byte
	full  atomic.Int64 // producers that found the queue full and may wait
	_     [56]byte
	wake  chan struct{} // a token per claimed registration of an idle consumer
	room  chan struct{} // tokens for full producers
	slots []slot[T]
	size  uint64            // len(slots)
	mask  uint64            // size-1 if size is a power of two, else 0
	hand  bool              // a hand-off queue: see New
	spin  int               // yields of an empty Pop before it waits: see New
	ends  atomic.Int64      // takes of an empty queue still to get end: see End
	end   atomic.Pointer[T] // their value
}

type slot[T any] struct {
	// 2*pos: free for the producer of position pos; 2*pos+1: holds its
	// value. Doubled, so that the two differ even in a queue of one slot.
	seq atomic.Uint64
	val T
}

// New returns a queue that holds up to size values. A size of 0 makes a
// hand-off queue: a value is taken only while a consumer waits for one
// that no producer has woken yet (Idle is more than 0), and waits in a
// slot of its own until a consumer takes it.
//
// A Pop that finds the queue empty yields its processor up to spin times,
// looking again after each, before it waits: a consumer parked and woken
// for each value costs a producer and a consumer more than the queue
// itself, while a yield lets the producer run and a value arrive. Yields
// cost the most to goroutines locked to their thread, which should not
// spin.
func New[T any](size, spin int) *Ring[T] {
	r := &Ring[T]{size: uint64(max(size, 1)), hand: size == 0, spin: spin}
	if r.size&(r.size-1) == 0 {
		r.mask = r.size - 1
	}
	r.slots = make([]slot[T], r.size)
	for i := range r.slots {
		r.slots[i].seq.Store(2 * uint64(i))
	}
	// Tokens take no memory: a buffer as large as any number of consumers
	// lets a producer send without ever blocking.
	r.wake = make(chan struct{}, 1<<30)
	r.room = make(chan struct{}, 1)
	return r
}

func (r *Ring[T]) at(pos uint64) *slot[T] {
	if r.mask != 0 || r.size == 1 {
		return &r.slots[pos&r.mask]
	}
	return &r.slots[pos%r.size]
}

// Cap returns the size the queue was made with.
func (r *Ring[T]) Cap() int {
	if r.hand {
		return 0
	}
	return int(r.size)
}

// Len returns how many values the queue holds, counting those whose
// producer has claimed a slot but not yet published.
func (r *Ring[T]) Len() int {
	head := r.head.Load()
	tail := r.tail.Load()
	if tail <= head {
		return 0
	}
	return int(tail - head)
}

// Idle returns how many consumers wait for a value, or are about to, that
// no producer has woken yet.
func (r *Ring[T]) Idle() int { return int(r.idle.Load()) }

// TryPush queues v if there is room now and reports whether it did.
func (r *Ring[T]) TryPush(v T) bool {
	if r.hand && r.idle.Load() <= 0 {
		return false
	}
	pos := r.tail.Load()
	for {
		s := r.at(pos)
		switch seq := s.seq.Load(); {
		case seq == 2*pos:
			if r.tail.CompareAndSwap(pos, pos+1) {
				s.val = v
				s.seq.Store(2*pos + 1)
				if r.idle.Load() > 0 {
					r.wakeOne()
				}
				return true
			}
		case seq < 2*pos: // the slot's value of the last round is not taken yet: full
			return false
		}
		pos = r.tail.Load()
	}
}

// TryPop takes the oldest value, if there is one now, into dst. It
// reports false also while the oldest value's producer has claimed its
// slot but not published it yet; that producer wakes a consumer when it
// does. The value is written to dst, not returned: no copy of it sits in
// the frames of an idle consumer, whose stack stays small.
func (r *Ring[T]) TryPop(dst *T) bool {
	ended := false
	pos := r.head.Load()
	for {
		s := r.at(pos)
		switch seq := s.seq.Load(); {
		case seq == 2*pos+1:
			if r.head.CompareAndSwap(pos, pos+1) {
				*dst = s.val
				var zero T
				s.val = zero
				s.seq.Store(2 * (pos + r.size))
				if r.full.Load() > 0 {
					signal(r.room)
				}
				if r.idle.Load() > 0 && r.Len() > 0 {
					r.wakeOne() // more wait: pass the wake on
				}
				return true
			}
		case seq < 2*pos+1: // not published yet: empty
			if ended {
				return r.takeEnd(dst)
			}
			if r.ends.Load() <= 0 {
				return false
			}
			// End came, after every value queued before it: look again,
			// for one that was queued after the look above.
			ended = true
		}
		pos = r.head.Load()
	}
}

// End makes each of the next n takes from the queue that find it empty
// take v: a worker pool's stop gives each worker a pill behind the values
// queued, all at once, not one slot at a time. It wakes up to n idle
// consumers. A later End adds to what is left of the n, and its v replaces
// the earlier one's. End is for a queue's last values: every value pushed
// before End is taken before any of its, even by a take that began before
// that value was pushed; one pushed, or being pushed, while some of the n
// are left may be taken after them.
func (r *Ring[T]) End(v T, n int) {
	if n <= 0 {
		return
	}
	r.end.Store(&v)
	r.ends.Add(int64(n))
	for range n {
		if r.idle.Load() <= 0 {
			return
		}
		r.wakeOne()
	}
}

// takeEnd takes one of End's values into dst, if any is left.
func (r *Ring[T]) takeEnd(dst *T) bool {
	for {
		n := r.ends.Load()
		if n <= 0 {
			return false
		}
		if r.ends.CompareAndSwap(n, n-1) {
			*dst = *r.end.Load()
			if n > 1 && r.idle.Load() > 0 {
				r.wakeOne() // more wait: pass the wake on
			}
			return true
		}
	}
}

// Pop takes the oldest value into dst, waiting for one until a or b is
// closed or receives; it reports false then. A nil channel never does.
func (r *Ring[T]) Pop(dst *T, a, b <-chan struct{}) bool {
	for {
		if r.TryPop(dst) {
			return true
		}
		for range r.spin {
			runtime.Gosched()
			if r.TryPop(dst) {
				return true
			}
		}
		r.idle.Add(1)
		if r.hand && r.full.Load() > 0 {
			signal(r.room) // a hand-off producer waits for a consumer
		}
		if r.TryPop(dst) {
			r.withdraw()
			return true
		}
		select {
		case <-r.wake: // claimed: look again
			continue
		case <-a:
		case <-b:
		}
		r.withdraw()
		// A value that came meanwhile is taken rather than left: the
		// registration this consumer withdrew may have been the one its
		// producer claimed.
		return r.TryPop(dst)
	}
}

// Take takes the oldest value into dst, waiting for one as long as it
// takes. It is Pop with no way out, in a frame of its own: no select, whose
// frame is large, sits in the stack of a consumer that waits, which a
// worker pool's idle workers keep small. With spin false, it waits without
// yielding first: for a consumer that has no reason to expect a value soon.
func (r *Ring[T]) Take(dst *T, spin bool) {
	for !r.TryPop(dst) {
		if spin && r.spinTake(dst) {
			return
		}
		r.idle.Add(1)
		if r.hand && r.full.Load() > 0 {
			signal(r.room) // a hand-off producer waits for a consumer
		}
		if r.TryPop(dst) {
			r.withdraw()
			return
		}
		<-r.wake // claimed: look again
	}
}

// spinTake looks for a value spin times, yielding before each look.
func (r *Ring[T]) spinTake(dst *T) bool {
	for range r.spin {
		runtime.Gosched()
		if r.TryPop(dst) {
			return true
		}
	}
	return false
}

// wakeOne claims an idle consumer's registration, if there is one, and
// sends the token that wakes it.
func (r *Ring[T]) wakeOne() {
	for {
		n := r.idle.Load()
		if n <= 0 {
			return
		}
		if r.idle.CompareAndSwap(n, n-1) {
			r.wake <- struct{}{}
			return
		}
	}
}

// withdraw ends the registration of a consumer that stops waiting without
// a token: it takes back an unclaimed registration or, if a producer has
// claimed every one, the token sent for one of them.
//
// It does not block for that token: tokens are anyone's, and a consumer
// woken by another token may take this one too, register again and wait;
// its new registration is then the one to take back. Blocking, the
// withdrawing consumer slept with the value it had taken, while the others
// waited for a producer that waited for that value's task (a Map whose
// window was full): a deadlock. Of the registrations not ended yet, as many
// are unclaimed (idle) or have a token sent or on its way as there are, so
// the wait is short: for a producer between its claim and its send, or for
// a consumer between its token and its next registration.
func (r *Ring[T]) withdraw() {
	for {
		if n := r.idle.Load(); n > 0 {
			if r.idle.CompareAndSwap(n, n-1) {
				return
			}
			continue
		}
		select {
		case <-r.wake:
			return
		default:
			runtime.Gosched()
		}
	}
}

// Push queues v, waiting for room until a or b is closed or receives; it
// reports false then. A nil channel never does.
func (r *Ring[T]) Push(v T, a, b <-chan struct{}) bool {
	for {
		if r.TryPush(v) {
			return true
		}
		room, done := r.WaitRoom()
		if r.TryPush(v) {
			done()
			return true
		}
		select {
		case <-room:
			done()
		case <-a:
			done()
			return false
		case <-b:
			done()
			return false
		}
	}
}

// WaitRoom counts the caller as a producer waiting for room, for a select
// of its own: the channel receives when a consumer takes a value (or, for
// a hand-off queue, begins to wait), after which the caller tries to push
// again. The caller must call done once it stops waiting, and must try to
// push between WaitRoom and its wait.
func (r *Ring[T]) WaitRoom() (room <-chan struct{}, done func()) {
	r.full.Add(1)
	return r.room, r.roomDone
}

func (r *Ring[T]) roomDone() {
	r.full.Add(-1)
	// Pass on a token this producer may have been sent and not used: the
	// room it signals is there for another waiting producer.
	if r.full.Load() > 0 && r.hasRoom() {
		signal(r.room)
	}
}

// hasRoom reports whether a push would find room now, as far as the counts
// tell.
func (r *Ring[T]) hasRoom() bool {
	if r.hand {
		return r.idle.Load() > 0 && r.Len() == 0
	}
	return r.Len() < int(r.size)
}

// signal sends a token unless the channel is full of them already: a
// waiter that takes any of them looks again.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// String describes the queue's state, for reports of a stuck pool.
func (r *Ring[T]) String() string {
	return fmt.Sprintf("ring{len %d of %d, head %d, tail %d, idle %d, full %d, wake tokens %d, room tokens %d, ends %d}",
		r.Len(), r.Cap(), r.head.Load(), r.tail.Load(), r.idle.Load(), r.full.Load(), len(r.wake), len(r.room), r.ends.Load())
}
