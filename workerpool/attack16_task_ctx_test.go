package workerpool_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
)

// Map's tasks' contexts end "when the loop ends"; a group's when Wait
// returns — also when the loop or group ended without an error.
func TestA16tTaskContextsEndWithLoopAndGroup(t *testing.T) {
	p, _ := a16tStart(t, workerpool.Workers(2), workerpool.QueueSize(8))
	var mu sync.Mutex
	var ctxs []context.Context
	keep := func(ctx context.Context) {
		mu.Lock()
		ctxs = append(ctxs, ctx)
		mu.Unlock()
	}
	for _, err := range workerpool.Map(context.Background(), p, slices.Values(make([]int, 10)), func(ctx context.Context, _ resources.Worker, _ int) (int, error) {
		keep(ctx)
		return 0, nil
	}) {
		if err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	for i, c := range ctxs {
		if c.Err() == nil {
			t.Errorf("Map task %d's context alive after the loop ended", i)
		}
	}
	ctxs = nil
	mu.Unlock()

	g, _ := p.Group(context.Background())
	for range 10 {
		g.Go(func(ctx context.Context, _ resources.Worker) error { keep(ctx); return nil })
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	for i, c := range ctxs {
		if c.Err() == nil {
			t.Errorf("group task %d's context alive after Wait returned", i)
		}
	}
	mu.Unlock()

	// A second group from the same parent is not affected by the first's end.
	parent := context.WithValue(context.Background(), a16tKey{}, "p")
	g1, _ := p.Group(parent)
	g1.Go(func(context.Context, resources.Worker) error { return errors.New("a16t: g1 fails") })
	_ = g1.Wait()
	g2, _ := p.Group(parent)
	alive := make(chan error, 10)
	for range 10 {
		g2.Go(func(ctx context.Context, _ resources.Worker) error {
			alive <- ctx.Err()
			if ctx.Value(a16tKey{}) != "p" {
				return errors.New("lost the parent's value")
			}
			return nil
		})
	}
	if err := g2.Wait(); err != nil {
		t.Fatalf("second group: %v", err)
	}
	for range 10 {
		if err := <-alive; err != nil {
			t.Errorf("a task of a fresh group ran with an ended context: %v", err)
		}
	}
	// Two Do calls with one context, the first's task cancelled by nothing:
	// the second task's context is alive and distinct in its end.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := range 20 {
		if err := p.Do(ctx, func(tctx context.Context, _ resources.Worker) error {
			if tctx.Err() != nil {
				return tctx.Err()
			}
			return nil
		}); err != nil {
			t.Fatalf("Do %d with a shared live ctx: %v", i, err)
		}
	}
}

// OnDropped that runs the dropped task itself does not change what the
// submitter was told: Do returns ErrClosed, the future ErrClosed and no
// value, GoReport NotRun.
func TestA16tOnDroppedRerunDoesNotChangeAnswers(t *testing.T) {
	var reran atomic.Int32
	opt := workerpool.OnDropped[resources.Worker](func(ctx context.Context, task func(context.Context, resources.Worker) error) {
		reran.Add(1)
		_ = task(ctx, resources.Worker{Pool: "elsewhere"})
	})
	p, _ := a16tStart(t, workerpool.Workers(1), workerpool.QueueSize(8), opt)
	b := a16tOccupy(t, p, 1)
	doErr := make(chan error, 1)
	go func() {
		doErr <- p.Do(context.Background(), func(context.Context, resources.Worker) error { return nil })
	}()
	a16tEventually(t, "Do queued", func() bool { return p.Stats().Queued == 1 })
	f, err := workerpool.Submit(context.Background(), p, func(context.Context, resources.Worker) (string, error) {
		return "value from the re-run", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	rep := make(chan workerpool.Outcome, 2)
	if err := p.GoReport(context.Background(), func(context.Context, resources.Worker) error { return nil },
		func(o workerpool.Outcome, err error) { rep <- o }); err != nil {
		t.Fatal(err)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- a16tStop(t, p, workerpool.DropQueued) }()
	a16tEventually(t, "refusal", func() bool { return !p.Serving() })
	b.open()
	if err := a16tRecv(t, stopped, "stop"); err != nil {
		t.Fatal(err)
	}
	if err := a16tRecv(t, doErr, "Do"); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("Do = %v, want ErrClosed", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), a16tGuard)
	defer cancel()
	v, err := f.Wait(ctx)
	if !errors.Is(err, workerpool.ErrClosed) || v != "" {
		t.Errorf("Future = %q, %v; want ErrClosed and no value", v, err)
	}
	if o := a16tRecv(t, rep, "report"); o != workerpool.NotRun {
		t.Errorf("report = %v", o)
	}
	if reran.Load() != 3 {
		t.Errorf("OnDropped %d, want 3", reran.Load())
	}
	if len(rep) != 0 {
		t.Error("report called twice")
	}
}

// GoReport blocked on a full queue whose ctx ends: it returns ctx's error,
// the task was not accepted, and report is never called.
func TestA16tGoReportRefusedNeverReports(t *testing.T) {
	p, _ := a16tStart(t, workerpool.Workers(1), workerpool.QueueSize(1))
	b := a16tOccupy(t, p, 1)
	if !p.TryGo(func(context.Context, resources.Worker) error { return nil }) {
		t.Fatal("fill")
	}
	ctx, cancel := context.WithCancel(context.Background())
	var reported, ran atomic.Int32
	res := make(chan error, 1)
	go func() {
		res <- p.GoReport(ctx, func(context.Context, resources.Worker) error { ran.Add(1); return nil },
			func(workerpool.Outcome, error) { reported.Add(1) })
	}()
	cancel()
	err := a16tRecv(t, res, "GoReport")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("GoReport = %v", err)
	}
	b.open()
	if err := a16tStop(t, p, workerpool.Drain); err != nil {
		t.Fatal(err)
	}
	if reported.Load() != 0 || ran.Load() != 0 {
		t.Errorf("refused GoReport: reported %d ran %d", reported.Load(), ran.Load())
	}
	if st := p.Stats(); st.Done != 2 || st.Dropped != 0 {
		t.Errorf("Stats Done=%d Dropped=%d", st.Done, st.Dropped)
	}
}

// Rapid Resizes that do not wait for one another: the last wins, tasks
// run side by side on that many workers, every generation closes once.
func TestA16tRapidResizesLastWins(t *testing.T) {
	p, _ := a16tStart(t, workerpool.Workers(2), workerpool.QueueSize(4))
	for _, n := range []int{5, 1, 4, 1, 6, 3} {
		if err := p.Resize(n); err != nil {
			t.Fatal(err)
		}
	}
	if c := p.Capacity(); c.Workers != 3 || c.MaxWorkers != 3 {
		t.Errorf("Capacity %+v, want 3", c)
	}
	a16tEventually(t, "three workers", func() bool { return p.Stats().Workers == 3 })
	var arrived sync.WaitGroup
	arrived.Add(3)
	all := make(chan struct{})
	go func() { arrived.Wait(); close(all) }()
	for range 3 {
		if err := p.Go(context.Background(), func(context.Context, resources.Worker) error {
			arrived.Done()
			<-all
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	a16tRecv(t, all, "three side by side")
	if err := a16tStop(t, p, workerpool.Drain); err != nil {
		t.Fatal(err)
	}
}

// The submitter's deadline reaches a bound task's context: Deadline()
// reports it (what gRPC and database drivers read), and when it passes the
// task's context ends with DeadlineExceeded, as ctx's own does.
func TestA16tDoDeadlineReachesTask(t *testing.T) {
	p, _ := a16tStart(t, workerpool.Workers(1))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	want, _ := ctx.Deadline()
	type seen struct {
		dl    time.Time
		ok    bool
		err   error
		cause error
	}
	ch := make(chan seen, 1)
	release := make(chan struct{})
	finished := make(chan struct{})
	doErr := p.Do(ctx, func(tctx context.Context, _ resources.Worker) error {
		defer close(finished)
		dl, ok := tctx.Deadline()
		<-tctx.Done()
		ch <- seen{dl, ok, tctx.Err(), context.Cause(tctx)}
		<-release
		return nil
	})
	close(release)
	<-finished
	s := <-ch
	if !errors.Is(doErr, context.DeadlineExceeded) {
		t.Errorf("Do = %v, want DeadlineExceeded", doErr)
	}
	if !s.ok || !s.dl.Equal(want) {
		t.Errorf("task ctx Deadline() = %v, %v; want the submitter's %v", s.dl, s.ok, want)
	}
	if !errors.Is(s.err, context.DeadlineExceeded) {
		t.Errorf("task ctx Err() = %v, want DeadlineExceeded", s.err)
	}
	if !errors.Is(s.cause, context.DeadlineExceeded) {
		t.Errorf("task ctx Cause = %v, want DeadlineExceeded", s.cause)
	}
}
