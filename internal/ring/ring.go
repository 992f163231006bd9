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
// Parking uses two channels of tokens, as a semaphore would. A consumer
// that finds the queue empty counts itself idle, looks again, and only
// then waits for a token; a producer publishes its value and then, if it
// sees an idle consumer, sends one. Go's atomics are sequentially
// consistent, so of the two — the consumer's count and look, the
// producer's publication and look — one sees the other: a value is never
// left behind by consumers that all wait. A token is a hint to look again,
// never a value: one left over (its consumer gave up waiting, or found a
// value by itself) only costs a look. Full producers park the same way,
// woken by consumers that make room.
package ring

import (
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
	wake  chan struct{} // tokens for idle consumers
	room  chan struct{} // tokens for full producers
	slots []slot[T]
	size  uint64 // len(slots)
	mask  uint64 // size-1 if size is a power of two, else 0
	hand  bool   // a hand-off queue: see New
	spin  int    // yields of an empty Pop before it waits: see New
}

type slot[T any] struct {
	// 2*pos: free for the producer of position pos; 2*pos+1: holds its
	// value. Doubled, so that the two differ even in a queue of one slot.
	seq atomic.Uint64
	val T
}

// New returns a queue that holds up to size values, for at most consumers
// consumers waiting at once (more only wake less promptly). A size of 0
// makes a hand-off queue: a value is taken only while a consumer waits for
// one (Idle is more than Len), and waits in a slot of its own until that
// consumer takes it.
//
// A Pop that finds the queue empty yields its processor up to spin times,
// looking again after each, before it waits: a consumer parked and woken
// for each value costs a producer and a consumer more than the queue
// itself, while a yield lets the producer run and a value arrive. Yields
// cost the most to goroutines locked to their thread, which should not
// spin.
func New[T any](size, consumers, spin int) *Ring[T] {
	r := &Ring[T]{size: uint64(max(size, 1)), hand: size == 0, spin: spin}
	if r.size&(r.size-1) == 0 {
		r.mask = r.size - 1
	}
	r.slots = make([]slot[T], r.size)
	for i := range r.slots {
		r.slots[i].seq.Store(2 * uint64(i))
	}
	r.wake = make(chan struct{}, max(consumers, 1))
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

// Idle returns how many consumers wait for a value, or are about to.
func (r *Ring[T]) Idle() int { return int(r.idle.Load()) }

// TryPush queues v if there is room now and reports whether it did.
func (r *Ring[T]) TryPush(v T) bool {
	if r.hand && r.idle.Load() <= int64(r.Len()) {
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
					signal(r.wake)
				}
				return true
			}
		case seq < 2*pos: // the slot's value of the last round is not taken yet: full
			return false
		}
		pos = r.tail.Load()
	}
}

// TryPop takes the oldest value if there is one now. It reports false
// also while the oldest value's producer has claimed its slot but not
// published it yet; that producer wakes a consumer when it does.
func (r *Ring[T]) TryPop() (v T, ok bool) {
	pos := r.head.Load()
	for {
		s := r.at(pos)
		switch seq := s.seq.Load(); {
		case seq == 2*pos+1:
			if r.head.CompareAndSwap(pos, pos+1) {
				v = s.val
				var zero T
				s.val = zero
				s.seq.Store(2 * (pos + r.size))
				if r.full.Load() > 0 {
					signal(r.room)
				}
				return v, true
			}
		case seq < 2*pos+1: // not published yet: empty
			return v, false
		}
		pos = r.head.Load()
	}
}

// Pop takes the oldest value, waiting for one until a or b is closed or
// receives; it reports false then. A nil channel never does.
func (r *Ring[T]) Pop(a, b <-chan struct{}) (v T, ok bool) {
	for {
		if v, ok = r.TryPop(); ok {
			return v, true
		}
		for range r.spin {
			runtime.Gosched()
			if v, ok = r.TryPop(); ok {
				return v, true
			}
		}
		r.idle.Add(1)
		if r.hand && r.full.Load() > 0 {
			signal(r.room) // a hand-off producer waits for a consumer
		}
		if v, ok = r.TryPop(); ok {
			r.idle.Add(-1)
			return v, true
		}
		select {
		case <-r.wake:
			r.idle.Add(-1)
		case <-a:
			r.idle.Add(-1)
			return v, false
		case <-b:
			r.idle.Add(-1)
			return v, false
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
		return r.idle.Load() > int64(r.Len())
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
