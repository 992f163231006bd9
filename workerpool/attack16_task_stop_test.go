package workerpool_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
)

// a16tLedger counts, per API, what submitters were told and what ran.
type a16tLedger struct {
	accepted, ran, toldNotRun, toldRan atomic.Int64
	reportedTwice                      atomic.Int64
	wrong                              atomic.Int64
	wrongMsg                           atomic.Value
	doClosed                           sync.Map
}

type a16tID struct{ s, i int }

func (l *a16tLedger) bad(format string, args ...any) {
	if l.wrong.Add(1) == 1 {
		l.wrongMsg.Store(fmt.Sprintf(format, args...))
	}
}

// a16tSubmitters runs k submitters, each cycling through Go, Do, GoReport,
// Submit and TryGo until the pool refuses; started is closed once at least
// minAccepted tasks were accepted.
func a16tSubmitters(p *a16tP, k int, minAccepted int64, l *a16tLedger, started chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	var once sync.Once
	for s := range k {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var pending sync.WaitGroup // this submitter's reports and futures
			defer pending.Wait()
			for i := 0; ; i++ {
				if l.accepted.Load() >= minAccepted {
					once.Do(func() { close(started) })
				}
				ctx := context.WithValue(context.Background(), a16tKey{}, a16tID{s, i})
				var thisRan atomic.Bool
				task := func(context.Context, resources.Worker) error {
					if thisRan.Swap(true) {
						l.bad("a task ran twice")
					}
					l.ran.Add(1)
					return nil
				}
				switch i % 5 {
				case 0: // Go: the ErrorHandler tells of ErrClosed
					if err := p.Go(ctx, task); err != nil {
						if !errors.Is(err, workerpool.ErrClosed) {
							l.bad("Go: %v", err)
						}
						return
					}
					l.accepted.Add(1)
				case 1:
					l.accepted.Add(1) // provisionally
					err := p.Do(ctx, task)
					switch {
					case err == nil:
						l.toldRan.Add(1)
						if !thisRan.Load() {
							l.bad("Do returned nil, task did not run")
						}
					case errors.Is(err, workerpool.ErrClosed):
						if thisRan.Load() {
							l.bad("Do returned ErrClosed, but its task ran")
						}
						// refused or dropped: we cannot tell which; OnDropped and
						// Stats settle it below.
						l.accepted.Add(-1)
						l.doClosed.Store(a16tID{s, i}, true)
						return
					default:
						l.bad("Do: %v", err)
						return
					}
				case 2:
					var n atomic.Int32
					pending.Add(1)
					err := p.GoReport(ctx, task, func(o workerpool.Outcome, err error) {
						defer pending.Done()
						if n.Add(1) != 1 {
							l.reportedTwice.Add(1)
							return
						}
						switch o {
						case workerpool.Succeeded:
							l.toldRan.Add(1)
							if !thisRan.Load() {
								l.bad("GoReport Succeeded, task did not run")
							}
						case workerpool.NotRun:
							l.toldNotRun.Add(1)
							if !errors.Is(err, workerpool.ErrClosed) || thisRan.Load() {
								l.bad("GoReport NotRun %v ran=%v", err, thisRan.Load())
							}
						default:
							l.bad("GoReport %v %v", o, err)
						}
					})
					if err != nil {
						pending.Done()
						if !errors.Is(err, workerpool.ErrClosed) {
							l.bad("GoReport: %v", err)
						}
						return
					}
					l.accepted.Add(1)
				case 3:
					f, err := workerpool.Submit(ctx, p, func(c context.Context, w resources.Worker) (int, error) {
						return 7, task(c, w)
					})
					if err != nil {
						if !errors.Is(err, workerpool.ErrClosed) {
							l.bad("Submit: %v", err)
						}
						return
					}
					l.accepted.Add(1)
					pending.Add(1)
					go func() {
						defer pending.Done()
						wctx, cancel := context.WithTimeout(context.Background(), a16tGuard)
						defer cancel()
						v, err := f.Wait(wctx)
						switch {
						case err == nil && v == 7:
							l.toldRan.Add(1)
						case errors.Is(err, workerpool.ErrClosed):
							l.toldNotRun.Add(1)
							if thisRan.Load() {
								l.bad("future ErrClosed but task ran")
							}
						default:
							l.bad("Wait: %d %v", v, err)
						}
					}()
				case 4:
					if p.TryGo(task) {
						l.accepted.Add(1)
					} else if !p.Serving() {
						return
					}
				}
			}
		}()
	}
	return &wg
}

func a16tStopUnderLoad(t *testing.T, policy workerpool.StopPolicy) {
	var errs a16tErrs
	var dropped a16tDropped
	p, _ := a16tStart(t, workerpool.Workers(2), workerpool.QueueSize(8),
		workerpool.ErrorHandler(errs.handle), dropped.option())
	var l a16tLedger
	started := make(chan struct{})
	wg := a16tSubmitters(p, 4, 500, &l, started)
	a16tRecv(t, started, "submitters to get going")
	// No deadline: "A stop without a deadline waits for everything."
	if err := p.Stop(context.Background(), policy); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	a16tRecv(t, done, "submitters and their reports")
	if l.wrong.Load() != 0 {
		t.Fatalf("%d wrong answers; first: %v", l.wrong.Load(), l.wrongMsg.Load())
	}
	if l.reportedTwice.Load() != 0 {
		t.Fatalf("%d GoReport tasks reported twice", l.reportedTwice.Load())
	}
	st := p.Stats()
	closedToHandler := int64(errs.count(workerpool.ErrClosed))
	if other := int64(len(errs.all())) - closedToHandler; other != 0 {
		t.Errorf("ErrorHandler got %d errors other than ErrClosed: %v", other, errs.all())
	}
	ondropped := dropped.n.Load()
	ran := l.ran.Load()
	if uint64(ran) != st.Done {
		t.Errorf("tasks ran %d, Stats.Done %d", ran, st.Done)
	}
	if st.Dropped != uint64(ondropped) {
		t.Errorf("Stats.Dropped %d, OnDropped saw %d (no submitter gave up here)", st.Dropped, ondropped)
	}
	// Sort what OnDropped saw by API: a Do that got ErrClosed and that
	// OnDropped saw was accepted; TryGo's have no values.
	byKind := map[int]int{}
	accepted := l.accepted.Load()
	dropped.mu.Lock()
	for id, n := range dropped.ids {
		if n != 1 && id != nil {
			t.Errorf("OnDropped saw %v %d times", id, n)
		}
		if id == nil {
			byKind[4] += n
			continue
		}
		k := id.(a16tID)
		byKind[k.i%5] += n
		if k.i%5 == 1 {
			if _, ok := l.doClosed.Load(k); !ok {
				t.Errorf("OnDropped saw Do task %v whose Do did not return ErrClosed", k)
			}
			accepted++
		}
	}
	dropped.mu.Unlock()
	if got := int64(st.Done + st.Dropped); got != accepted {
		t.Errorf("Done %d + Dropped %d = %d, want every accepted task: %d", st.Done, st.Dropped, got, accepted)
	}
	if int64(byKind[0]+byKind[4]) != closedToHandler {
		t.Errorf("dropped Go/TryGo tasks %d, ErrorHandler ErrClosed %d", byKind[0]+byKind[4], closedToHandler)
	}
	if int64(byKind[2]+byKind[3]) != l.toldNotRun.Load() {
		t.Errorf("dropped GoReport/Submit tasks %d, told not run %d", byKind[2]+byKind[3], l.toldNotRun.Load())
	}
	if policy == workerpool.Drain && st.Dropped != 0 {
		t.Errorf("Drain without a deadline dropped %d tasks", st.Dropped)
	}
	t.Logf("%v: accepted=%d ran=%d dropped=%d handler ErrClosed=%d told-not-run=%d", policy, accepted, ran, st.Dropped, closedToHandler, l.toldNotRun.Load())
}

// Every accepted task runs or is reported, with submitters racing each stop.
func TestA16tStopUnderLoadDrain(t *testing.T)      { a16tStopUnderLoad(t, workerpool.Drain) }
func TestA16tStopUnderLoadDropQueued(t *testing.T) { a16tStopUnderLoad(t, workerpool.DropQueued) }
func TestA16tStopUnderLoadCancel(t *testing.T)     { a16tStopUnderLoad(t, workerpool.Cancel) }

// Under Cancel, running tasks end at once with cause ErrClosed (Do, Go,
// GoReport alike); under DropQueued they are let finish.
func TestA16tCancelVersusDropQueuedRunning(t *testing.T) {
	for _, policy := range []workerpool.StopPolicy{workerpool.Cancel, workerpool.DropQueued} {
		t.Run(policy.String(), func(t *testing.T) {
			var errs a16tErrs
			p, _ := a16tStart(t, workerpool.Workers(3), workerpool.QueueSize(3), workerpool.ErrorHandler(errs.handle))
			causes := make(chan error, 3)
			in := make(chan struct{}, 3)
			release := make(chan struct{})
			task := func(ctx context.Context, _ resources.Worker) error {
				in <- struct{}{}
				select {
				case <-ctx.Done():
					causes <- context.Cause(ctx)
					return context.Cause(ctx)
				case <-release:
					causes <- nil
					return nil
				}
			}
			doErr := make(chan error, 1)
			go func() { doErr <- p.Do(context.Background(), task) }()
			if err := p.Go(context.Background(), task); err != nil {
				t.Fatal(err)
			}
			rep := make(chan workerpool.Outcome, 1)
			if err := p.GoReport(context.Background(), task, func(o workerpool.Outcome, err error) { rep <- o }); err != nil {
				t.Fatal(err)
			}
			for range 3 {
				a16tRecv(t, in, "running")
			}
			stopped := make(chan error, 1)
			go func() {
				// A deadline far off: under DropQueued the running tasks'
				// contexts end only at two fifths of it.
				stopped <- a16tStop(t, p, policy)
			}()
			if policy == workerpool.Cancel {
				for range 3 {
					if c := a16tRecv(t, causes, "cancel cause"); !errors.Is(c, workerpool.ErrClosed) {
						t.Errorf("running task's cause = %v, want ErrClosed", c)
					}
				}
				if err := a16tRecv(t, doErr, "Do"); !errors.Is(err, workerpool.ErrClosed) {
					t.Errorf("Do = %v, want ErrClosed (the task returned its cause)", err)
				}
				if o := a16tRecv(t, rep, "report"); o != workerpool.Failed {
					t.Errorf("report = %v, want Failed (it ran)", o)
				}
			} else {
				a16tEventually(t, "stop to refuse", func() bool { return !p.Serving() })
				close(release)
				for range 3 {
					if c := a16tRecv(t, causes, "finish"); c != nil {
						t.Errorf("DropQueued cancelled a running task at once: %v", c)
					}
				}
				if err := a16tRecv(t, doErr, "Do"); err != nil {
					t.Errorf("Do = %v", err)
				}
				if o := a16tRecv(t, rep, "report"); o != workerpool.Succeeded {
					t.Errorf("report = %v", o)
				}
			}
			if err := a16tRecv(t, stopped, "stop"); err != nil {
				t.Fatal(err)
			}
			if policy == workerpool.Cancel {
				if errs.count(workerpool.ErrClosed) != 1 || len(errs.all()) != 1 {
					t.Errorf("ErrorHandler got %v, want the Go task's ErrClosed cause once", errs.all())
				}
			} else if len(errs.all()) != 0 {
				t.Errorf("ErrorHandler got %v", errs.all())
			}
		})
	}
}

// After a stop every submission is refused with ErrClosed, and nothing is
// reported for refused tasks.
func TestA16tEverythingRefusedAfterStop(t *testing.T) {
	var errs a16tErrs
	var dropped a16tDropped
	p, _ := a16tStart(t, workerpool.Workers(1), workerpool.ErrorHandler(errs.handle), dropped.option())
	if err := a16tStop(t, p, workerpool.Drain); err != nil {
		t.Fatal(err)
	}
	var ran atomic.Int32
	task := func(context.Context, resources.Worker) error { ran.Add(1); return nil }
	ctx := context.Background()
	if err := p.Go(ctx, task); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("Go = %v", err)
	}
	if err := p.Do(ctx, task); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("Do = %v", err)
	}
	if p.TryGo(task) {
		t.Error("TryGo = true")
	}
	var reported atomic.Int32
	if err := p.GoReport(ctx, task, func(workerpool.Outcome, error) { reported.Add(1) }); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("GoReport = %v", err)
	}
	if f, err := workerpool.Submit(ctx, p, func(context.Context, resources.Worker) (int, error) { return 0, nil }); !errors.Is(err, workerpool.ErrClosed) || f != nil {
		t.Errorf("Submit = %v, %v", f, err)
	}
	if err := p.Resize(2); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("Resize = %v", err)
	}
	if err := p.AddFeeder(func(context.Context) error { return nil }); !errors.Is(err, workerpool.ErrClosed) {
		t.Errorf("AddFeeder = %v", err)
	}
	if p.Serving() {
		t.Error("Serving after stop")
	}
	if c := p.Capacity(); c.Workers != 0 {
		t.Errorf("Capacity().Workers = %d after stop, want 0", c.Workers)
	}
	if st := p.Stats(); st.Workers != 0 || st.Busy != 0 || st.Queued != 0 {
		t.Errorf("Stats after stop: %+v", st)
	}
	if ran.Load() != 0 || reported.Load() != 0 || len(errs.all()) != 0 || dropped.n.Load() != 0 {
		t.Errorf("refused tasks: ran=%d reported=%d handler=%v dropped=%d", ran.Load(), reported.Load(), errs.all(), dropped.n.Load())
	}
	// A second stop returns the first's result; so does the app's.
	if err := a16tStop(t, p, workerpool.Cancel); err != nil {
		t.Errorf("second Stop = %v", err)
	}
}

// A Go blocked on a full queue when a stop comes returns ErrClosed; its
// task is not accepted: it never runs and is never reported.
func TestA16tBlockedGoAtStopIsRefusedNotLost(t *testing.T) {
	for _, policy := range []workerpool.StopPolicy{workerpool.Drain, workerpool.DropQueued, workerpool.Cancel} {
		t.Run(policy.String(), func(t *testing.T) {
			var errs a16tErrs
			var dropped a16tDropped
			p, _ := a16tStart(t, workerpool.Workers(1), workerpool.QueueSize(2),
				workerpool.ErrorHandler(errs.handle), dropped.option())
			b := a16tOccupy(t, p, 1)
			var ranQueued, ranBlocked atomic.Int32
			for i := range 2 {
				if err := p.Go(context.WithValue(context.Background(), a16tKey{}, i), func(context.Context, resources.Worker) error {
					ranQueued.Add(1)
					return nil
				}); err != nil {
					t.Fatal(err)
				}
			}
			const blockedN = 3
			blockedErr := make(chan error, blockedN)
			for i := range blockedN {
				go func() {
					blockedErr <- p.Go(context.WithValue(context.Background(), a16tKey{}, 100+i), func(context.Context, resources.Worker) error {
						ranBlocked.Add(1)
						return nil
					})
				}()
			}
			stopped := make(chan error, 1)
			go func() { stopped <- a16tStop(t, p, policy) }()
			a16tEventually(t, "refusal", func() bool { return !p.Serving() })
			b.open()
			if err := a16tRecv(t, stopped, "stop"); err != nil {
				t.Fatal(err)
			}
			accepted := 0
			for range blockedN {
				err := a16tRecv(t, blockedErr, "blocked Go")
				switch {
				case err == nil:
					accepted++
				case errors.Is(err, workerpool.ErrClosed):
				default:
					t.Errorf("blocked Go = %v", err)
				}
			}
			st := p.Stats()
			total := 1 + 2 + accepted
			if int(st.Done+st.Dropped) != total {
				t.Errorf("Done %d + Dropped %d != accepted %d", st.Done, st.Dropped, total)
			}
			if int(st.Dropped) != errs.count(workerpool.ErrClosed) || int(st.Dropped) != int(dropped.n.Load()) {
				t.Errorf("Dropped %d, ErrorHandler ErrClosed %d, OnDropped %d: must agree", st.Dropped, errs.count(workerpool.ErrClosed), dropped.n.Load())
			}
			if int(ranBlocked.Load()) > accepted {
				t.Errorf("a refused Go's task ran")
			}
			for i := range blockedN {
				if dropped.get(100+i) > 0 && accepted == 0 {
					t.Errorf("OnDropped saw a task whose Go returned ErrClosed")
				}
			}
			if policy == workerpool.Drain && (ranQueued.Load() != 2 || int(ranBlocked.Load()) != accepted) {
				t.Errorf("Drain: queued ran %d of 2, accepted blocked ran %d of %d", ranQueued.Load(), ranBlocked.Load(), accepted)
			}
			if policy != workerpool.Drain && (ranQueued.Load() != 0 || ranBlocked.Load() != 0) {
				t.Errorf("%v ran queued tasks: %d %d", policy, ranQueued.Load(), ranBlocked.Load())
			}
		})
	}
}

// "A stop while another is under way waits for it and returns its result":
// a Stop(Cancel) during a Stop(Drain) does not turn the drain into a
// cancel; the queued tasks still run, the running one is not cancelled.
func TestA16tSecondStopDoesNotChangeThePolicy(t *testing.T) {
	p, _ := a16tStart(t, workerpool.Workers(1), workerpool.QueueSize(4))
	in := make(chan struct{})
	release := make(chan struct{})
	cause := make(chan error, 1)
	if err := p.Go(context.Background(), func(ctx context.Context, _ resources.Worker) error {
		close(in)
		select {
		case <-ctx.Done():
			cause <- context.Cause(ctx)
		case <-release:
			cause <- nil
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	a16tRecv(t, in, "running")
	var ran atomic.Int32
	for range 3 {
		if err := p.Go(context.Background(), func(context.Context, resources.Worker) error { ran.Add(1); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	first := make(chan error, 1)
	go func() { first <- p.Stop(context.Background(), workerpool.Drain) }()
	a16tEventually(t, "refusal", func() bool { return !p.Serving() })
	second := make(chan error, 1)
	go func() { second <- a16tStop(t, p, workerpool.Cancel) }()
	// Give the second stop every chance to (wrongly) cancel: the drain has
	// no deadline, so nothing else may end the running task's context.
	time.Sleep(100 * time.Millisecond)
	close(release)
	if c := a16tRecv(t, cause, "running task"); c != nil {
		t.Errorf("a second Stop(Cancel) cancelled a task the first Stop(Drain) lets finish: %v", c)
	}
	if err := a16tRecv(t, first, "first stop"); err != nil {
		t.Fatal(err)
	}
	if err := a16tRecv(t, second, "second stop"); err != nil {
		t.Fatal(err)
	}
	if ran.Load() != 3 {
		t.Errorf("queued tasks ran %d of 3 under the first stop's Drain", ran.Load())
	}
}
