package workerpool_test

// Round 7: a task that submits to its own pool while the queue is full (or
// QueueSize(0), with no other worker to hand off to) is blocked in Go when
// the stop begins. Go "blocks only while the queue is full, until there is
// room, the pool stops (ErrClosed) or ctx is done". The stop "waits for
// submissions admitted before it began refusing"; if a blocked submitter
// counts as admitted, the stop waits for a submitter that waits for the
// worker it runs on. A stop without a deadline must still return.

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/workerpool"
)

const a7Hang = 20 * time.Second

// a7Within runs f and fails the test if it has not returned within d.
func a7Within(t *testing.T, what string, d time.Duration, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(d):
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		t.Fatalf("hang: %s not within %v\n%s", what, d, buf[:n])
	}
}

type a7SubmitKind int

const (
	a7KGo a7SubmitKind = iota
	a7KGroup
	a7KSubmit
	a7KReport
)

func (k a7SubmitKind) String() string {
	return [...]string{"Go", "Group.Go", "Submit", "GoReport"}[k]
}

func TestAttack7_SelfSubmitBlockedAtStop(t *testing.T) {
	for _, procs := range []int{1, 2} {
		for _, q := range []int{0, 1} {
			for _, k := range []a7SubmitKind{a7KGo, a7KGroup, a7KSubmit, a7KReport} {
				for _, policy := range []workerpool.StopPolicy{workerpool.Drain, workerpool.DropQueued, workerpool.Cancel} {
					t.Run(fmt.Sprintf("procs%d/q%d/%v/%v", procs, q, k, policy), func(t *testing.T) {
						defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
						a7SelfSubmit(t, q, k, policy)
					})
				}
			}
		}
	}
}

func a7SelfSubmit(t *testing.T, q int, k a7SubmitKind, policy workerpool.StopPolicy) {
	var innerRan, fillerRan, innerDropped, fillerDropped atomic.Int64
	p, _ := atkStart[W](t, "a7self", workerpool.Workers(1), workerpool.QueueSize(q),
		workerpool.OnDropped[W](func(ctx context.Context, _ func(context.Context, W) error) {
			switch ctx.Value(a6IDKey{}) {
			case "inner":
				innerDropped.Add(1)
			case "filler":
				fillerDropped.Add(1)
			}
		}),
		workerpool.ErrorHandler(func(error) {}))
	feederStopped := make(chan struct{})
	if err := p.AddFeeder(func(ctx context.Context) error { close(feederStopped); return nil }); err != nil {
		t.Fatal(err)
	}
	aboutToBlock := make(chan struct{})
	type result struct {
		err     error // what the submission returned
		outcome error // Future.Wait / report / Group.Wait
	}
	res := make(chan result, 1)
	innerCtx := context.WithValue(context.Background(), a6IDKey{}, "inner")
	inner := func(context.Context, W) error { innerRan.Add(1); return nil }
	if err := p.Go(context.Background(), func(ctx context.Context, _ W) error {
		if q > 0 {
			fctx := context.WithValue(context.Background(), a6IDKey{}, "filler")
			if err := p.Go(fctx, func(context.Context, W) error { fillerRan.Add(1); return nil }); err != nil {
				res <- result{err: fmt.Errorf("filler: %w", err)}
				return nil
			}
		}
		close(aboutToBlock)
		switch k {
		case a7KGo:
			res <- result{err: p.Go(innerCtx, inner)}
		case a7KGroup:
			g, _ := p.Group(innerCtx)
			g.Go(inner)
			// Wait would wait for a task queued behind this one: report the
			// group's error only once this task returned.
			go func() { res <- result{outcome: g.Wait()} }()
		case a7KSubmit:
			f, err := workerpool.Submit(innerCtx, p, func(ctx context.Context, w W) (int, error) { return 0, inner(ctx, w) })
			if err != nil {
				res <- result{err: err}
				return nil
			}
			go func() { _, err := f.Wait(context.Background()); res <- result{outcome: err} }()
		case a7KReport:
			err := p.GoReport(innerCtx, inner, func(o workerpool.Outcome, err error) {
				if o == workerpool.Succeeded {
					err = nil
				} else if err == nil {
					err = fmt.Errorf("outcome %v", o)
				}
				res <- result{outcome: err}
			})
			if err != nil {
				res <- result{err: err}
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	atkWait(t, "the outer task runs", 5*time.Second, aboutToBlock)
	stopErr := make(chan error, 1)
	a7Within(t, "Stop without a deadline", a7Hang, func() { stopErr <- p.Stop(context.Background(), policy) })
	<-feederStopped
	if err := <-stopErr; err != nil {
		t.Errorf("Stop = %v", err)
	}
	var r result
	select {
	case r = <-res:
	case <-time.After(a7Hang):
		t.Fatal("the self-submission never returned or was never reported")
	}
	t.Logf("submission = %v, outcome = %v, inner ran %d dropped %d", r.err, r.outcome, innerRan.Load(), innerDropped.Load())
	if r.err != nil && !errors.Is(r.err, workerpool.ErrClosed) {
		t.Errorf("%v from the task = %v, want nil or ErrClosed", k, r.err)
	}
	accepted := r.err == nil
	if k == a7KGroup && errors.Is(r.outcome, workerpool.ErrClosed) {
		// Group.Go reports a refused submission through Wait: not known accepted.
		accepted = false
	}
	switch {
	case !accepted && innerRan.Load() != 0:
		t.Errorf("%v was refused (%v) but its task ran %d times", k, r.err, innerRan.Load())
	case accepted && policy == workerpool.Drain && innerRan.Load() != 1:
		t.Errorf("Drain without a deadline: an accepted task ran %d times (outcome %v, dropped %d)", innerRan.Load(), r.outcome, innerDropped.Load())
	case accepted && innerRan.Load()+innerDropped.Load() != 1 && k != a7KGroup:
		t.Errorf("accepted task ran %d times and was dropped %d times", innerRan.Load(), innerDropped.Load())
	}
	if accepted && k != a7KGo {
		if (r.outcome == nil) != (innerRan.Load() == 1) {
			t.Errorf("outcome %v but inner ran %d", r.outcome, innerRan.Load())
		}
	}
	if q > 0 && policy == workerpool.Drain && fillerRan.Load() != 1 {
		t.Errorf("Drain: the filler ran %d times (dropped %d)", fillerRan.Load(), fillerDropped.Load())
	}
	s := p.Stats()
	if s.Workers != 0 || s.Busy != 0 || s.Queued != 0 {
		t.Errorf("Stats after Stop = %+v", s)
	}
}
