package workerpool_test

// Round 7: Resize storms and elastic growth racing a stop, with generous and
// tiny budgets. Capacity.Workers: "0 once the pool has stopped". Resize
// "returns an error ... if it is not serving (ErrNotStarted, ErrClosed)".
// Removed workers "close their resources, in reverse order, exactly once".
// Stats.Dropped: "After a stop, Done + Dropped is every task the pool
// accepted." Stop "blocks until the pool has stopped or nine tenths of ctx's
// budget are gone" — it must always return; goleak checks nothing is left.

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/workerpool"
)

func TestAttack7_ResizeAndElasticStormsRacingStop(t *testing.T) {
	deadline := time.Now().Add(8 * time.Second)
	rounds := 0
	for round := 0; round < 300 && time.Now().Before(deadline); round++ {
		rounds++
		elastic := round%3 == 2
		budget := []time.Duration{10 * time.Second, 2 * time.Millisecond, 5 * time.Millisecond}[round%3]
		if round%6 >= 3 {
			budget = 10 * time.Second
		}
		policy := []workerpool.StopPolicy{workerpool.Drain, workerpool.Cancel, workerpool.DropQueued}[(round/3)%3]
		q := []int{0, 1, 4}[(round/9)%3]
		if elastic && q == 0 {
			q = 2 // Elastic with QueueSize(0) is refused
		}
		name := fmt.Sprintf("round %d (elastic %v, budget %v, %v, q %d)", round, elastic, budget, policy, q)
		a7ResizeRound(t, name, elastic, budget, policy, q)
		if t.Failed() {
			t.Fatalf("failed in %s", name)
		}
	}
	t.Logf("%d rounds", rounds)
}

func a7ResizeRound(t *testing.T, name string, elastic bool, budget time.Duration, policy workerpool.StopPolicy, q int) {
	l := newLedger()
	var ran, droppedSeen, closedErrs atomic.Int64
	opts := []workerpool.Option{
		abResources(l), workerpool.QueueSize(q), workerpool.OnStop(policy),
		workerpool.OnDropped[AB](func(context.Context, func(context.Context, AB) error) { droppedSeen.Add(1) }),
		workerpool.ErrorHandler(func(err error) {
			if errors.Is(err, workerpool.ErrClosed) {
				closedErrs.Add(1)
			}
		}),
	}
	if elastic {
		opts = append(opts, workerpool.Elastic(1, 6, time.Millisecond))
	} else {
		opts = append(opts, workerpool.Workers(2))
	}
	var p *workerpool.Pool[AB]
	app := newAtkApp(t, &p, "a7resize", opts...)
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	if err := app.Start(sctx); err != nil {
		scancel()
		t.Fatalf("%s: Start: %v", name, err)
	}
	scancel()

	var accepted atomic.Int64
	var wg sync.WaitGroup
	started := make(chan struct{})
	var once sync.Once
	for s := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				if i == 30 {
					once.Do(func() { close(started) })
				}
				err := p.Go(context.Background(), func(ctx context.Context, _ AB) error {
					if i%7 == 0 {
						runtime.Gosched()
					}
					ran.Add(1)
					return nil
				})
				if err != nil {
					if !errors.Is(err, workerpool.ErrClosed) {
						t.Errorf("%s: Go = %v", name, err)
					}
					once.Do(func() { close(started) })
					return
				}
				accepted.Add(1)
				_ = s
			}
		}()
	}
	if !elastic {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				err := p.Resize(1 + i%5)
				if errors.Is(err, workerpool.ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("%s: Resize = %v", name, err)
					return
				}
				if i%4 == 0 {
					runtime.Gosched()
				}
			}
		}()
	}
	atkWait(t, name+": submitters start", 5*time.Second, started)
	var stopErr error
	a7Within(t, name+": Stop", a7Hang, func() {
		ctx, cancel := context.WithTimeout(context.Background(), budget)
		defer cancel()
		stopErr = p.Stop(ctx, policy)
	})
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	atkWait(t, name+": submitters and resizer end", a7Hang, done)

	if c := p.Capacity(); c.Workers != 0 {
		t.Errorf("%s: Capacity after Stop returned = %+v, want Workers 0 (stop err %v)", name, c, stopErr)
	}
	if err := p.Resize(3); !elastic && !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("%s: Resize after Stop = %v, want ErrClosed", name, err)
	}
	if budget >= time.Second {
		if stopErr != nil {
			t.Errorf("%s: Stop = %v", name, stopErr)
		}
		s := p.Stats()
		if s.Workers != 0 || s.Busy != 0 || s.Queued != 0 || s.Opening != 0 || s.Closing != 0 {
			t.Errorf("%s: Stats after a stop that returned nil: %+v", name, s)
		}
		if s.Done+s.Dropped != uint64(accepted.Load()) {
			t.Errorf("%s: Done %d + Dropped %d != accepted %d (ran %d)", name, s.Done, s.Dropped, accepted.Load(), ran.Load())
		}
		if s.Done != uint64(ran.Load()) {
			t.Errorf("%s: Done %d, ran %d", name, s.Done, ran.Load())
		}
		if policy == workerpool.Drain && s.Dropped != 0 {
			t.Errorf("%s: Drain with a 10 s budget dropped %d", name, s.Dropped)
		}
		if droppedSeen.Load() != int64(s.Dropped) || closedErrs.Load() != int64(s.Dropped) {
			t.Errorf("%s: Dropped %d, OnDropped saw %d, ErrorHandler saw %d ErrClosed", name, s.Dropped, droppedSeen.Load(), closedErrs.Load())
		}
		o, c := l.counts()
		if o != c {
			t.Errorf("%s: after a stop that returned nil, %d opened and %d closed", name, o, c)
		}
	} else {
		// Whatever the stop gave up on closes on its own.
		atkPoll(t, name+": every opened resource closes", 10*time.Second, func() bool { o, c := l.counts(); return o == c })
		atkPoll(t, name+": Stats settle", 10*time.Second, func() bool {
			s := p.Stats()
			return s.Workers == 0 && s.Opening == 0 && s.Closing == 0 && s.Busy == 0 && s.Queued == 0
		})
		s := p.Stats()
		if s.Done+s.Dropped != uint64(accepted.Load()) {
			t.Errorf("%s: after settling, Done %d + Dropped %d != accepted %d (ran %d)", name, s.Done, s.Dropped, accepted.Load(), ran.Load())
		}
	}
	l.check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = app.Stop(ctx)
}
