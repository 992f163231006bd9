package workerpool_test

// Round 7: submitters' contexts end at the very moment the stop begins (the
// feeder's stop, called first by every stop, cancels them), while a feeder
// keeps submitting with GoReport until its stop, and OnDropped tries to
// re-submit each dropped task to the same pool.
//
// "Every accepted task either runs, or its submitter is told": each task runs
// at most once; GoReport reports exactly once and Succeeded iff it ran; Do
// returning nil means it ran, ErrClosed that it did not; a Future's Wait is nil
// iff it ran. Under Drain with a 10 s budget, the pool drops nothing itself
// (OnDropped and ErrorHandler see no ErrClosed), "Done + Dropped is every task
// the pool accepted", and OnDropped's re-submission is refused (ErrClosed).

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/workerpool"
)

func TestAttack7_SubmitterContextsEndAsStopBegins(t *testing.T) {
	deadline := time.Now().Add(8 * time.Second)
	rounds := 0
	for round := 0; round < 200 && time.Now().Before(deadline); round++ {
		rounds++
		policy := []workerpool.StopPolicy{workerpool.Drain, workerpool.Cancel, workerpool.DropQueued}[round%3]
		q := []int{0, 2, 16}[(round/3)%3]
		a7CtxStopRound(t, fmt.Sprintf("round %d (%v, q %d)", round, policy, q), policy, q, 1+round%3)
		if t.Failed() {
			return
		}
	}
	t.Logf("%d rounds", rounds)
}

type a7Ledger struct {
	mu       sync.Mutex
	ran      map[int]int
	kind     map[int]string
	outcome  map[int]error // what the submitter was told (nil: ran)
	reports  map[int]int
	accepted map[int]bool // known accepted
	unknown  map[int]bool // Do that ended with its ctx: accepted or not
	errs     []string
}

func (l *a7Ledger) errorf(f string, a ...any) {
	l.mu.Lock()
	l.errs = append(l.errs, fmt.Sprintf(f, a...))
	l.mu.Unlock()
}

func a7CtxStopRound(t *testing.T, name string, policy workerpool.StopPolicy, q, workers int) {
	l := &a7Ledger{ran: map[int]int{}, kind: map[int]string{}, outcome: map[int]error{}, reports: map[int]int{},
		accepted: map[int]bool{}, unknown: map[int]bool{}}
	var p *workerpool.Pool[W]
	var poolDropped, resubmitOK, closedHandled atomic.Int64
	app := newAtkApp(t, &p, "a7ctxstop", workerpool.Workers(workers), workerpool.QueueSize(q),
		workerpool.OnDropped[W](func(ctx context.Context, task func(context.Context, W) error) {
			poolDropped.Add(1)
			if err := p.Go(ctx, task); err == nil {
				resubmitOK.Add(1)
			} else if !errors.Is(err, workerpool.ErrClosed) {
				l.errorf("OnDropped's re-submission = %v", err)
			}
		}),
		workerpool.ErrorHandler(func(err error) {
			if errors.Is(err, workerpool.ErrClosed) {
				closedHandled.Add(1)
			}
		}))
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	if err := app.Start(sctx); err != nil {
		t.Fatal(err)
	}
	scancel()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = app.Stop(ctx)
	}()

	subCtx, cancelSubs := context.WithCancelCause(context.Background())
	feederStop := make(chan struct{})
	feederDone := make(chan struct{})
	var nextID atomic.Int64
	task := func(id int) func(context.Context, W) error {
		return func(context.Context, W) error {
			l.mu.Lock()
			l.ran[id]++
			l.mu.Unlock()
			return nil
		}
	}
	report := func(id int) func(workerpool.Outcome, error) {
		return func(o workerpool.Outcome, err error) {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.reports[id]++
			if o == workerpool.Succeeded {
				l.outcome[id] = nil
			} else {
				if err == nil {
					err = fmt.Errorf("outcome %v", o)
				}
				l.outcome[id] = err
			}
		}
	}
	// The feeder: GoReport until its stop.
	go func() {
		defer close(feederDone)
		for {
			select {
			case <-feederStop:
				return
			default:
			}
			id := int(nextID.Add(1))
			l.mu.Lock()
			l.kind[id] = "feeder"
			l.mu.Unlock()
			if err := p.GoReport(context.Background(), task(id), report(id)); err != nil {
				l.errorf("feeder GoReport %d before its stop = %v", id, err)
				return
			}
			l.mu.Lock()
			l.accepted[id] = true
			l.mu.Unlock()
		}
	}()
	if err := p.AddFeeder(func(ctx context.Context) error {
		cancelSubs(errors.New("submitter gone"))
		close(feederStop)
		select {
		case <-feederDone:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}); err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	var futMu sync.Mutex
	futures := map[int]*workerpool.Future[int]{}
	started := make(chan struct{})
	var once sync.Once
	for s := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				if i == 10 {
					once.Do(func() { close(started) })
				}
				id := int(nextID.Add(1))
				kind := []string{"Do", "Submit", "GoReport"}[(s+i)%3]
				l.mu.Lock()
				l.kind[id] = kind
				l.mu.Unlock()
				var err error
				switch kind {
				case "Do":
					err = p.Do(subCtx, task(id))
					l.mu.Lock()
					switch {
					case err == nil:
						l.accepted[id] = true
						l.outcome[id] = nil
					case errors.Is(err, workerpool.ErrClosed):
						// Refused, or accepted and then dropped by the
						// stop (counted in Dropped): Do cannot tell.
						l.outcome[id] = err
						l.unknown[id] = true
					default:
						l.unknown[id] = true
					}
					l.mu.Unlock()
				case "Submit":
					var f *workerpool.Future[int]
					f, err = workerpool.Submit(subCtx, p, func(ctx context.Context, w W) (int, error) { return id, task(id)(ctx, w) })
					if err == nil {
						futMu.Lock()
						futures[id] = f
						futMu.Unlock()
						l.mu.Lock()
						l.accepted[id] = true
						l.mu.Unlock()
					}
				case "GoReport":
					err = p.GoReport(subCtx, task(id), report(id))
					if err == nil {
						l.mu.Lock()
						l.accepted[id] = true
						l.mu.Unlock()
					}
				}
				if err != nil && subCtx.Err() != nil {
					once.Do(func() { close(started) })
					return
				}
				if err != nil && !errors.Is(err, workerpool.ErrClosed) {
					l.errorf("%s %d = %v before the stop", kind, id, err)
				}
			}
		}()
	}
	atkWait(t, name+": submitters start", 5*time.Second, started)
	var stopErr error
	a7Within(t, name+": Stop", a7Hang, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stopErr = p.Stop(ctx, policy)
	})
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	atkWait(t, name+": submitters return", a7Hang, done)
	for id, f := range futures {
		ctx, cancel := context.WithTimeout(context.Background(), a7Hang)
		v, err := f.Wait(ctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%s: Future %d never resolved", name, id)
		}
		l.mu.Lock()
		l.outcome[id] = err
		if err == nil && v != id {
			l.errs = append(l.errs, fmt.Sprintf("future %d = %d", id, v))
		}
		l.mu.Unlock()
	}
	if stopErr != nil {
		t.Errorf("%s: Stop = %v", name, stopErr)
	}
	s := p.Stats()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.errs {
		t.Errorf("%s: %s", name, e)
	}
	var ranTotal, acceptedN, unknownN int
	for id, n := range l.ran {
		ranTotal += n
		if n > 1 {
			t.Errorf("%s: %s task %d ran %d times", name, l.kind[id], id, n)
		}
	}
	for id := range l.accepted {
		acceptedN++
		k := l.kind[id]
		if k == "GoReport" || k == "feeder" {
			if l.reports[id] != 1 {
				t.Errorf("%s: %s task %d reported %d times", name, k, id, l.reports[id])
				continue
			}
		}
		out, told := l.outcome[id]
		if !told {
			t.Errorf("%s: %s task %d accepted, its submitter never told", name, k, id)
			continue
		}
		if (out == nil) != (l.ran[id] == 1) {
			t.Errorf("%s: %s task %d told %v, ran %d", name, k, id, out, l.ran[id])
		}
		if k == "feeder" && policy == workerpool.Drain && l.ran[id] != 1 {
			t.Errorf("%s: Drain, 10 s budget: the feeder's task %d (context never ends) did not run: %v", name, id, out)
		}
	}
	for id := range l.unknown {
		unknownN++
		if l.ran[id] > 1 {
			t.Errorf("%s: Do %d ran %d times", name, id, l.ran[id])
		}
	}
	for id, out := range l.outcome {
		if errors.Is(out, workerpool.ErrClosed) && l.ran[id] != 0 {
			t.Errorf("%s: %s %d told ErrClosed but ran", name, l.kind[id], id)
		}
	}
	if s.Done != uint64(ranTotal) {
		t.Errorf("%s: Stats.Done %d, ran %d", name, s.Done, ranTotal)
	}
	if tot := s.Done + s.Dropped; tot < uint64(acceptedN) || tot > uint64(acceptedN+unknownN) {
		t.Errorf("%s: Done %d + Dropped %d not within accepted [%d, %d]", name, s.Done, s.Dropped, acceptedN, acceptedN+unknownN)
	}
	if resubmitOK.Load() != 0 {
		t.Errorf("%s: OnDropped re-submitted %d tasks to the stopped pool", name, resubmitOK.Load())
	}
	if policy == workerpool.Drain && poolDropped.Load() != 0 {
		t.Errorf("%s: Drain with a 10 s budget: OnDropped saw %d tasks", name, poolDropped.Load())
	}
	if s.Workers != 0 || s.Busy != 0 || s.Queued != 0 {
		t.Errorf("%s: Stats after Stop: %+v", name, s)
	}
}
