package workerpool_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
)

type a16tRep struct {
	n   atomic.Int32
	o   atomic.Uint32
	mu  sync.Mutex
	err error
}

// Every kind of task reported exactly once with the right Outcome and error;
// the ErrorHandler hears of none; Stats agree.
func TestA16tGoReportEveryOutcomeExactlyOnce(t *testing.T) {
	var errs a16tErrs
	p, _ := a16tStart(t, workerpool.Workers(2), workerpool.QueueSize(8), workerpool.ErrorHandler(errs.handle))
	const n = 200
	reps := make([]a16tRep, n)
	var all sync.WaitGroup
	errFail := errors.New("a16t: fail")
	for i := range n {
		kind := i % 5
		task := func(context.Context, resources.Worker) error {
			switch kind {
			case 0:
				return nil
			case 1:
				return fmt.Errorf("task %d: %w", i, errFail)
			case 2:
				panic(fmt.Errorf("task %d: %w", i, errFail))
			case 3:
				runtime.Goexit()
			case 4:
				return fmt.Errorf("task %d: %w", i, resources.ErrBroken)
			}
			return nil
		}
		all.Add(1)
		err := p.GoReport(context.Background(), task, func(o workerpool.Outcome, err error) {
			r := &reps[i]
			if r.n.Add(1) == 1 {
				r.o.Store(uint32(o))
				r.mu.Lock()
				r.err = err
				r.mu.Unlock()
				all.Done()
			}
		})
		if err != nil {
			t.Fatalf("GoReport %d: %v", i, err)
		}
	}
	waited := make(chan struct{})
	go func() { all.Wait(); close(waited) }()
	a16tRecv(t, waited, "every report")
	if err := a16tStop(t, p, workerpool.Drain); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		r := &reps[i]
		if c := r.n.Load(); c != 1 {
			t.Errorf("task %d reported %d times", i, c)
			continue
		}
		o := workerpool.Outcome(r.o.Load())
		var pe *workerpool.PanicError
		switch i % 5 {
		case 0:
			if o != workerpool.Succeeded || r.err != nil {
				t.Errorf("task %d: %v %v, want Succeeded nil", i, o, r.err)
			}
		case 1:
			if o != workerpool.Failed || !errors.Is(r.err, errFail) {
				t.Errorf("task %d: %v %v, want Failed", i, o, r.err)
			}
		case 2:
			if o != workerpool.Panicked || !errors.As(r.err, &pe) || !errors.Is(r.err, errFail) {
				t.Errorf("task %d: %v %v, want Panicked *PanicError wrapping the value", i, o, r.err)
			}
		case 3:
			if o != workerpool.Panicked || !errors.Is(r.err, workerpool.ErrGoexit) {
				t.Errorf("task %d: %v %v, want Panicked ErrGoexit", i, o, r.err)
			}
		case 4:
			if o != workerpool.Failed || !errors.Is(r.err, resources.ErrBroken) {
				t.Errorf("task %d: %v %v, want Failed ErrBroken", i, o, r.err)
			}
		}
	}
	if e := errs.all(); len(e) != 0 {
		t.Errorf("ErrorHandler heard %d errors of GoReport tasks: %v", len(e), e[0])
	}
	st := p.Stats()
	if st.Done != n || st.Failed != 4*n/5 || st.Panics != 2*n/5 || st.Dropped != 0 {
		t.Errorf("Stats %+v, want Done=%d Failed=%d Panics=%d", st, n, 4*n/5, 2*n/5)
	}
	if st.Restarts != 3*n/5 {
		t.Errorf("Stats.Restarts = %d, want %d (one per panic, Goexit and ErrBroken)", st.Restarts, 3*n/5)
	}
}

// GoReport tasks whose ctx ended while queued are NotRun with that cause,
// never seen by OnDropped, even when a DropQueued stop then drops the queue;
// the other queued ones are NotRun with ErrClosed, reported before OnDropped
// sees them, with their submitter's values.
func TestA16tGoReportCauseVersusDropQueued(t *testing.T) {
	var dropped a16tDropped
	var errs a16tErrs
	var reportedMu sync.Mutex
	reported := map[int]int{}
	var droppedBeforeReport atomic.Int32
	opt := workerpool.OnDropped[resources.Worker](func(ctx context.Context, _ func(context.Context, resources.Worker) error) {
		id, _ := ctx.Value(a16tKey{}).(int)
		reportedMu.Lock()
		if reported[id] == 0 {
			droppedBeforeReport.Add(1)
		}
		reportedMu.Unlock()
		dropped.mu.Lock()
		dropped.ids[id]++
		dropped.mu.Unlock()
		dropped.n.Add(1)
	})
	dropped.ids = map[any]int{}
	p, _ := a16tStart(t, workerpool.Workers(1), workerpool.QueueSize(16), opt, workerpool.ErrorHandler(errs.handle))
	b := a16tOccupy(t, p, 1)

	cause := errors.New("a16t: submitter left")
	type res struct {
		o   workerpool.Outcome
		err error
	}
	results := make([]chan res, 10)
	var cancels []context.CancelCauseFunc
	for i := range 10 {
		results[i] = make(chan res, 2)
		ctx := context.WithValue(context.Background(), a16tKey{}, i)
		if i%2 == 0 {
			var c context.CancelCauseFunc
			ctx, c = context.WithCancelCause(ctx)
			cancels = append(cancels, c)
		}
		err := p.GoReport(ctx, func(context.Context, resources.Worker) error {
			return errors.New("a16t: must not run")
		}, func(o workerpool.Outcome, err error) {
			reportedMu.Lock()
			reported[i]++
			reportedMu.Unlock()
			results[i] <- res{o, err}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range cancels {
		c(cause)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- a16tStop(t, p, workerpool.DropQueued) }()
	// The running task may finish: DropQueued lets it.
	a16tEventually(t, "stop to refuse tasks", func() bool { return !p.Serving() })
	b.open()
	if err := a16tRecv(t, stopped, "stop"); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		r := a16tRecv(t, results[i], fmt.Sprintf("report of %d", i))
		if r.o != workerpool.NotRun {
			t.Errorf("task %d: outcome %v, want NotRun", i, r.o)
		}
		if i%2 == 0 {
			if !errors.Is(r.err, cause) {
				t.Errorf("task %d (ctx ended while queued): err %v, want the cause", i, r.err)
			}
			if dropped.get(i) != 0 {
				t.Errorf("task %d: OnDropped saw a task whose submitter's ctx ended", i)
			}
		} else {
			if !errors.Is(r.err, workerpool.ErrClosed) {
				t.Errorf("task %d: err %v, want ErrClosed", i, r.err)
			}
			if dropped.get(i) != 1 {
				t.Errorf("task %d: OnDropped saw it %d times, want 1", i, dropped.get(i))
			}
		}
		select {
		case r2 := <-results[i]:
			t.Errorf("task %d reported twice: %v %v", i, r2.o, r2.err)
		default:
		}
	}
	if n := droppedBeforeReport.Load(); n != 0 {
		t.Errorf("OnDropped ran before the report for %d tasks; the doc: its submitter is told first", n)
	}
	if e := errs.all(); len(e) != 0 {
		t.Errorf("ErrorHandler heard of GoReport tasks: %v", e)
	}
	st := p.Stats()
	if st.Done != 1 || st.Dropped != 10 {
		t.Errorf("Stats Done=%d Dropped=%d, want 1 and 10", st.Done, st.Dropped)
	}
}

// "The task it hears of is counted in Pool.Stats already" (ErrorHandler),
// and "a task that has a submitter to tell ... counts before its submitter
// hears" (GoReport).
func TestA16tStatsCountedBeforeHandlers(t *testing.T) {
	var bad atomic.Int32
	var badMsg atomic.Value
	var handled atomic.Uint64
	var p *a16tP
	handler := func(err error) {
		h := handled.Add(1)
		st := p.Stats()
		if st.Failed < h || st.Done < h {
			if bad.Add(1) == 1 {
				badMsg.Store(fmt.Sprintf("handler #%d saw Stats Done=%d Failed=%d", h, st.Done, st.Failed))
			}
		}
	}
	p, _ = a16tStart(t, workerpool.Workers(2), workerpool.QueueSize(64), workerpool.ErrorHandler(handler))
	const n = 300
	for i := range n {
		if err := p.Go(context.Background(), func(context.Context, resources.Worker) error {
			return fmt.Errorf("a16t %d", i)
		}); err != nil {
			t.Fatal(err)
		}
	}
	a16tEventually(t, "every error handled", func() bool { return handled.Load() == n })
	if bad.Load() != 0 {
		t.Errorf("ErrorHandler saw a task not yet counted (%d times): %v", bad.Load(), badMsg.Load())
	}

	var reportedRan atomic.Uint64
	var badRep atomic.Int32
	var badRepMsg atomic.Value
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		err := p.GoReport(context.Background(), func(context.Context, resources.Worker) error {
			if i%3 == 0 {
				return errors.New("x")
			}
			return nil
		}, func(o workerpool.Outcome, err error) {
			defer wg.Done()
			r := reportedRan.Add(1)
			st := p.Stats()
			if st.Done < n+r {
				if badRep.Add(1) == 1 {
					badRepMsg.Store(fmt.Sprintf("report #%d saw Done=%d, want >= %d", r, st.Done, n+r))
				}
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	w := make(chan struct{})
	go func() { wg.Wait(); close(w) }()
	a16tRecv(t, w, "reports")
	if badRep.Load() != 0 {
		t.Errorf("report heard before its task was counted (%d times): %v", badRep.Load(), badRepMsg.Load())
	}
}

// A Do whose caller gave up while it was queued (Do has returned ctx's
// error) and that a Cancel stop then drops: OnDropped must not see it (its
// submitter no longer wants it), and it is counted once in Dropped.
func TestA16tAbandonedDoNotHandedToOnDropped(t *testing.T) {
	var dropped a16tDropped
	p, _ := a16tStart(t, workerpool.Workers(1), workerpool.QueueSize(4), dropped.option())
	b := a16tOccupy(t, p, 1)
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), a16tKey{}, "abandoned"))
	done := make(chan error, 1)
	go func() {
		done <- p.Do(ctx, func(context.Context, resources.Worker) error { return nil })
	}()
	a16tEventually(t, "Do task queued", func() bool { return p.Stats().Queued == 1 })
	cancel()
	if err := a16tRecv(t, done, "Do to give up"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Do = %v", err)
	}
	// One more, still wanted, queued behind it.
	kept := make(chan error, 1)
	go func() {
		kept <- p.Do(context.WithValue(context.Background(), a16tKey{}, "kept"),
			func(context.Context, resources.Worker) error { return nil })
	}()
	a16tEventually(t, "second Do queued", func() bool { return p.Stats().Queued == 2 })
	stopped := make(chan error, 1)
	go func() { stopped <- a16tStop(t, p, workerpool.Cancel) }()
	if err := a16tRecv(t, kept, "kept Do"); !errors.Is(err, workerpool.ErrClosed) {
		t.Fatalf("kept Do = %v, want ErrClosed", err)
	}
	b.open()
	if err := a16tRecv(t, stopped, "stop"); err != nil {
		t.Fatal(err)
	}
	if got := dropped.get("abandoned"); got != 0 {
		t.Errorf("OnDropped received the task whose caller gave up while it was queued (%d times)", got)
	}
	if got := dropped.get("kept"); got != 1 {
		t.Errorf("OnDropped saw the wanted task %d times, want 1", got)
	}
	if st := p.Stats(); st.Dropped != 2 || st.Done != 1 {
		t.Errorf("Stats Done=%d Dropped=%d, want 1 and 2", st.Done, st.Dropped)
	}
}

// A task that ran and returned ErrClosed itself (a pool it called had
// stopped) or context.Canceled is Failed, not NotRun: counted Done and
// Failed, never Dropped, never handed to OnDropped.
func TestA16tReturnedErrClosedIsFailedNotDropped(t *testing.T) {
	var dropped a16tDropped
	var errs a16tErrs
	p, _ := a16tStart(t, workerpool.Workers(1), workerpool.QueueSize(4), dropped.option(), workerpool.ErrorHandler(errs.handle))
	other, _ := a16tStart(t, workerpool.Workers(1))
	if err := a16tStop(t, other, workerpool.Drain); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	type rep struct {
		o   workerpool.Outcome
		err error
	}
	reps := make(chan rep, 4)
	for _, ret := range []func(context.Context) error{
		func(c context.Context) error {
			return other.Do(c, func(context.Context, resources.Worker) error { return nil })
		},
		func(context.Context) error { return context.Canceled },
		func(context.Context) error { return fmt.Errorf("wrapped: %w", workerpool.ErrClosed) },
	} {
		if err := p.GoReport(ctx, func(c context.Context, _ resources.Worker) error { return ret(c) },
			func(o workerpool.Outcome, err error) { reps <- rep{o, err} }); err != nil {
			t.Fatal(err)
		}
		r := a16tRecv(t, reps, "report")
		if r.o != workerpool.Failed || r.err == nil {
			t.Errorf("a task that ran and returned %v reported %v", r.err, r.o)
		}
	}
	if err := p.Go(ctx, func(context.Context, resources.Worker) error { return workerpool.ErrClosed }); err != nil {
		t.Fatal(err)
	}
	g, _ := p.Group(ctx)
	g.Go(func(context.Context, resources.Worker) error { return workerpool.ErrClosed })
	if err := g.Wait(); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("group Wait = %v", err)
	}
	if err := p.Do(ctx, func(context.Context, resources.Worker) error { return workerpool.ErrClosed }); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("Do = %v", err)
	}
	if err := a16tStop(t, p, workerpool.Drain); err != nil {
		t.Fatal(err)
	}
	st := p.Stats()
	if st.Done != 6 || st.Failed != 6 || st.Dropped != 0 {
		t.Errorf("Stats Done=%d Failed=%d Dropped=%d, want 6 6 0", st.Done, st.Failed, st.Dropped)
	}
	if dropped.n.Load() != 0 {
		t.Errorf("OnDropped saw %d tasks that ran", dropped.n.Load())
	}
	if errs.count(workerpool.ErrClosed) != 1 {
		t.Errorf("ErrorHandler: %v", errs.all())
	}
}
