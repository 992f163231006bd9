package ring

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestFIFO(t *testing.T) {
	for _, size := range []int{1, 3, 5, 8} {
		r := New[int](size, 2)
		if r.Cap() != size {
			t.Fatalf("size %d: Cap = %d", size, r.Cap())
		}
		for round := range 3 {
			for i := range size {
				if !r.TryPush(round*100 + i) {
					t.Fatalf("size %d: TryPush %d refused with %d queued", size, i, r.Len())
				}
			}
			if r.TryPush(-1) {
				t.Fatalf("size %d: TryPush took a value past the size", size)
			}
			if r.Len() != size {
				t.Fatalf("size %d: Len = %d, full", size, r.Len())
			}
			for i := range size {
				var v int
				ok := r.TryPop(&v)
				if !ok || v != round*100+i {
					t.Fatalf("size %d: TryPop = %d, %v; want %d", size, v, ok, round*100+i)
				}
			}
			if v := 0; r.TryPop(&v) {
				t.Fatalf("size %d: TryPop of an empty queue gave %d", size, v)
			}
		}
	}
}

func TestPopGivesUp(t *testing.T) {
	r := New[int](4, 2)
	stop := make(chan struct{})
	close(stop)
	var v int
	if r.Pop(&v, nil, stop) {
		t.Fatal("Pop of an empty queue with a closed channel reported a value")
	}
	if r.Idle() != 0 {
		t.Fatalf("Idle = %d after Pop gave up", r.Idle())
	}
	r.TryPush(7)
	if ok := r.Pop(&v, stop, stop); !ok || v != 7 {
		t.Fatalf("Pop = %d, %v; want the queued 7", v, ok)
	}
}

func TestPushGivesUp(t *testing.T) {
	r := New[int](2, 2)
	r.TryPush(1)
	r.TryPush(2)
	stop := make(chan struct{})
	close(stop)
	if r.Push(3, stop, nil) {
		t.Fatal("Push to a full queue with a closed channel reported success")
	}
	if r.full.Load() != 0 {
		t.Fatalf("full = %d after Push gave up", r.full.Load())
	}
}

func TestPushWaitsForRoom(t *testing.T) {
	r := New[int](1, 2)
	r.TryPush(1)
	pushed := make(chan bool)
	go func() { pushed <- r.Push(2, nil, nil) }()
	select {
	case <-pushed:
		t.Fatal("Push returned while the queue was full")
	case <-time.After(20 * time.Millisecond):
	}
	var v int
	if r.TryPop(&v); v != 1 {
		t.Fatalf("popped %d, want 1", v)
	}
	if !<-pushed {
		t.Fatal("Push failed")
	}
	if r.TryPop(&v); v != 2 {
		t.Fatalf("popped %d, want 2", v)
	}
}

func TestHandOff(t *testing.T) {
	r := New[int](0, 2)
	if r.Cap() != 0 {
		t.Fatalf("Cap = %d, want 0", r.Cap())
	}
	if r.TryPush(1) {
		t.Fatal("TryPush of a hand-off queue with no consumer waiting took the value")
	}
	got := make(chan int)
	go func() {
		var v int
		r.Take(&v, true)
		got <- v
	}()
	pushed := make(chan bool)
	go func() { pushed <- r.Push(2, nil, nil) }() // waits for the consumer
	if v := <-got; v != 2 {
		t.Fatalf("consumer got %d, want 2", v)
	}
	if !<-pushed {
		t.Fatal("Push failed")
	}
	if r.TryPush(3) {
		t.Fatal("TryPush took a value with no consumer left waiting")
	}
}

// TestManyProducersManyConsumers checks that every value pushed is popped
// exactly once, and that a consumer sees each producer's values in the
// order they were pushed, with consumers that give up waiting at random
// and sizes that are and are not powers of two.
func TestManyProducersManyConsumers(t *testing.T) {
	const producers, perProducer = 4, 20000
	for _, size := range []int{0, 1, 3, 8, 100} {
		for _, consumers := range []int{1, 3, 8} {
			t.Run(fmt.Sprintf("size=%d/consumers=%d", size, consumers), func(t *testing.T) {
				r := New[[2]int](size, size%3) // spinning or not
				var (
					mu   sync.Mutex
					seen = make([][]bool, producers)
					wg   sync.WaitGroup
					done = make(chan struct{})
				)
				for i := range seen {
					seen[i] = make([]bool, perProducer)
				}
				var remaining sync.WaitGroup
				remaining.Add(producers * perProducer)
				for c := range consumers {
					wg.Go(func() {
						rng := rand.New(rand.NewPCG(uint64(c), 1))
						last := make([]int, producers)
						for i := range last {
							last[i] = -1
						}
						for {
							var giveUp chan struct{}
							if rng.IntN(4) == 0 {
								giveUp = make(chan struct{})
								close(giveUp)
							}
							var v [2]int
							ok := r.Pop(&v, done, giveUp)
							if !ok {
								select {
								case <-done:
									return
								default:
									continue
								}
							}
							p, i := v[0], v[1]
							if i <= last[p] {
								t.Errorf("consumer %d: producer %d's value %d after %d", c, p, i, last[p])
							}
							last[p] = i
							mu.Lock()
							if seen[p][i] {
								t.Errorf("value %d of producer %d popped twice", i, p)
							}
							seen[p][i] = true
							mu.Unlock()
							remaining.Done()
						}
					})
				}
				var prod sync.WaitGroup
				for p := range producers {
					prod.Go(func() {
						for i := range perProducer {
							if i%3 == 0 && r.TryPush([2]int{p, i}) {
								continue
							}
							if !r.Push([2]int{p, i}, nil, nil) {
								t.Errorf("Push failed")
							}
						}
					})
				}
				prod.Wait()
				waited := make(chan struct{})
				go func() { remaining.Wait(); close(waited) }()
				select {
				case <-waited:
				case <-time.After(time.Minute): // a hang guard, not a timing
					t.Errorf("values left behind: %d queued, %d consumers idle", r.Len(), r.Idle())
					for range producers * perProducer {
						remaining.Done() // let the waiter end; counts are wrong anyway
						select {
						case <-waited:
							goto out
						default:
						}
					}
				}
			out:
				close(done)
				wg.Wait()
				if r.Len() != 0 {
					t.Errorf("Len = %d at the end", r.Len())
				}
			})
		}
	}
}

func BenchmarkQueue(b *testing.B) {
	for _, size := range []int{8, 1024} {
		for _, consumers := range []int{2, 64} {
			b.Run(fmt.Sprintf("size=%d/consumers=%d/impl=chan", size, consumers), func(b *testing.B) {
				ch := make(chan int, size)
				var wg sync.WaitGroup
				for range consumers {
					wg.Go(func() {
						for range ch {
						}
					})
				}
				for i := range b.N {
					ch <- i
				}
				close(ch)
				wg.Wait()
			})
			b.Run(fmt.Sprintf("size=%d/consumers=%d/impl=ring", size, consumers), func(b *testing.B) {
				r := New[int](size, 2)
				var wg sync.WaitGroup
				for range consumers {
					wg.Go(func() {
						for {
							var v int
							if r.Take(&v, true); v < 0 {
								return
							}
						}
					})
				}
				for i := range b.N {
					r.Push(i, nil, nil)
				}
				for range consumers {
					r.Push(-1, nil, nil)
				}
				wg.Wait()
			})
		}
	}
}

// TestConsumersThatLeave: consumers that end after taking a value (a
// pool's worker that takes its pill) must not take with them the wake-up
// another waiting consumer needed. Each round ends with one pill per
// consumer, pushed by several producers among other values; every
// consumer must get one. The first version of the queue sent tokens that
// any consumer could take, and lost some: a round now and then ended with
// consumers waiting and pills queued.
func TestConsumersThatLeave(t *testing.T) {
	const consumers, producers = 10, 3
	for round := range 2000 {
		r := New[int](40, round%3)
		var wg sync.WaitGroup
		for c := range consumers {
			wg.Go(func() {
				for {
					var v int
					if c%2 == 0 {
						r.Take(&v, round%2 == 0) // as a worker pool's workers wait, before their first task or after
					} else {
						r.Pop(&v, nil, nil)
					}
					if v < 0 {
						return // a pill
					}
				}
			})
		}
		var prod sync.WaitGroup
		for p := range producers {
			prod.Go(func() {
				for i := range (round + p) % 7 {
					r.Push(i, nil, nil)
				}
				for i := p; i < consumers; i += producers {
					r.Push(-1, nil, nil)
					r.TryPush(0)
				}
			})
		}
		prod.Wait()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second): // a hang guard, not a timing
			t.Fatalf("round %d: consumers still waiting with pills queued: %v", round, r)
		}
	}
}

// A consumer that withdraws after a producer claimed every registration
// waits for a token; tokens are anyone's, and another consumer may take
// the one sent for it, then register again and wait. The withdrawing
// consumer must then take back that new registration rather than wait for
// a token that will come only with the next value: it holds a value, and
// the producer may wait for that value's task before it pushes another.
// Before the fix, withdraw blocked on the token: a Map over a pool of two
// workers hung in bench/run (about one pair of values in a million, with
// several consumers and two values in flight).
func TestWithdrawTakesBackALaterRegistration(t *testing.T) {
	r := New[int](4, 0)
	// This consumer's registration is claimed, its token not sent yet:
	// it waits for it. Then another consumer registers and waits, and
	// the producer's token goes to that one, which was waiting first (in
	// the test, neither sent nor taken).
	withdrawn := make(chan struct{})
	go func() {
		r.withdraw()
		close(withdrawn)
	}()
	time.Sleep(20 * time.Millisecond) // let it wait, as it did when it hung
	r.idle.Add(1)                     // the other consumer registers, waits, and takes the token
	select {
	case <-withdrawn:
	case <-time.After(20 * time.Second): // a hang guard, not a timing
		r.wake <- struct{}{} // let it end: the test has failed
		<-withdrawn
		t.Fatalf("withdraw still waits for a token while a registration it may take back is there: %v", r)
	}
	if r.Idle() != 0 || len(r.wake) != 0 {
		t.Fatalf("after withdraw: %v, want no registration and no token left", r)
	}
}
