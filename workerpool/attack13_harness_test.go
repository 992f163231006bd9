package workerpool_test

// Round 13 of adversarial tests: the exit paths of the pool, against its
// documented promise that every accepted task either runs exactly once or is
// reported as not run exactly once (Do/Future ErrClosed, GoReport NotRun, the
// ErrorHandler's ErrClosed for Go/TryGo, OnDropped for each), never lost and
// never both, whatever races the stop.
//
// The harness below runs one "round": a pool of a drawn shape, submitters
// using every submission API, and a stop of a drawn kind racing them; then it
// checks every task's fate, the Stats counters and the per-worker resources.

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
	"go.uber.org/zap"
)

type res13 struct {
	w      W
	closed atomic.Bool
}

type r13 struct {
	fx.In
	W   W
	Res *res13
}

type drop13Key struct{}

type api13 uint8

const (
	apiGo api13 = iota
	apiTryGo
	apiGoReport
	apiDo
	apiSubmit
	apiGroup
	apiMap
	apiGoReportCtx // GoReport with a context that ends (cause errGone13) at a random moment
	apiSubmitCtx   // Submit likewise
	apiCount
)

var errGone13 = errors.New("attack13: submitter gone")

func (a api13) String() string {
	return [...]string{"Go", "TryGo", "GoReport", "Do", "Submit", "Group", "Map", "GoReportCtx", "SubmitCtx"}[a]
}

type kind13 uint8

const (
	kOK kind13 = iota
	kErr
	kBroken
	kPanic
	kGoexit
	kSlow // sleeps 100–400 µs, returns nil
)

func (k kind13) String() string {
	return [...]string{"ok", "err", "broken", "panic", "goexit", "slow"}[k]
}

var errTask13 = errors.New("attack13: task error")

// stop kinds
const (
	stopPool       = iota // Pool.Stop(stopPolicy)
	stopApp               // app.Stop, OnStop(policy)
	stopPoolAndApp        // Pool.Stop racing app.Stop
	stopTwoPool           // two Pool.Stop racing, stopPolicy and stopPolicy2
	stopKinds
)

type cfg13 struct {
	workers, queue      int
	elastic             bool
	emin, emax          int
	idle                time.Duration
	policy              workerpool.StopPolicy // OnStop
	stopKind            int
	stopPolicy, policy2 workerpool.StopPolicy
	budget              time.Duration // of the first stop
	apis                []api13
	kinds               []kind13
	resize              bool
	maxTasks            int
	openFailPct         int // percent of rebuild opens that fail
	slowClose           bool
	subs, perSub        int
	stopAfter           int // accepted tasks before the stop
	expectNoDropAtDrain bool
	preStopYield        bool
	maxRestarts         int
	feeder              bool
}

func (c cfg13) String() string {
	shape := fmt.Sprintf("Workers(%d)", c.workers)
	if c.elastic {
		shape = fmt.Sprintf("Elastic(%d,%d,%v)", c.emin, c.emax, c.idle)
	}
	return fmt.Sprintf("%s QueueSize(%d) OnStop(%v) stopKind=%d stop=%v/%v budget=%v apis=%v kinds=%v resize=%v maxTasks=%d openFail=%d%% slowClose=%v subs=%dx%d stopAfter=%d maxRestarts=%d feeder=%v",
		shape, c.queue, c.policy, c.stopKind, c.stopPolicy, c.policy2, c.budget, c.apis, c.kinds, c.resize, c.maxTasks, c.openFailPct, c.slowClose, c.subs, c.perSub, c.stopAfter, c.maxRestarts, c.feeder)
}

const max13 = 4096

type task13 struct {
	api      api13
	kind     kind13
	accepted atomic.Int32 // 0 unknown, 1 accepted, 2 refused
	ran      atomic.Int32
	dropped  atomic.Int32
	reports  atomic.Int32
	outcome  atomic.Int32
	repErr   atomic.Pointer[error]
	result   atomic.Pointer[error] // Do / Future.Wait
	group    int                   // group index + 1
	preStop  atomic.Bool           // acceptance seen before the stop returned
}

type round13 struct {
	t     testing.TB
	cfg   cfg13
	rng   *rand.Rand
	seed  uint64
	tasks [max13]task13
	next  atomic.Int32

	acceptedN    atomic.Int32
	stopReturned atomic.Bool
	lateRuns     atomic.Int32
	badRes       atomic.Int32
	ehClosed     atomic.Int32
	ehOther      atomic.Int32
	ehUnexpected atomic.Int32

	mu        sync.Mutex
	opened    map[[2]int]int
	closed    map[[2]int]int
	groupErrs map[int]error
	errs      []string
	snapshot  []int32 // ran+dropped of each task when the first stop returned nil
}

func (r *round13) errorf(format string, a ...any) {
	r.mu.Lock()
	r.errs = append(r.errs, fmt.Sprintf(format, a...))
	r.mu.Unlock()
}

func (r *round13) newTask(api api13, k kind13, group int) (int, *task13) {
	id := int(r.next.Add(1) - 1)
	if id >= max13 {
		panic("attack13: too many tasks")
	}
	tk := &r.tasks[id]
	tk.api, tk.kind, tk.group = api, k, group
	return id, tk
}

func (r *round13) body(id int, ctx context.Context, res r13) error {
	tk := &r.tasks[id]
	if ctx.Value(drop13Key{}) != nil {
		tk.dropped.Add(1)
		return nil
	}
	if r.stopReturned.Load() {
		r.lateRuns.Add(1)
	}
	if res.Res == nil || res.Res.closed.Load() || res.Res.w.ID != res.W.ID || res.Res.w.Generation != res.W.Generation {
		r.badRes.Add(1)
	}
	tk.ran.Add(1)
	switch tk.kind {
	case kErr:
		return errTask13
	case kBroken:
		return fmt.Errorf("attack13: %w", resources.ErrBroken)
	case kPanic:
		panic("attack13 panic")
	case kGoexit:
		runtime.Goexit()
	case kSlow:
		time.Sleep(time.Duration(100+rand.IntN(300)) * time.Microsecond)
	}
	return nil
}

func (r *round13) markAccepted(tk *task13) {
	tk.accepted.Store(1)
	r.acceptedN.Add(1)
	if !r.stopReturned.Load() {
		tk.preStop.Store(true)
	}
}

func (r *round13) options() []workerpool.Option {
	c := r.cfg
	opts := []workerpool.Option{
		workerpool.QueueSize(c.queue),
		workerpool.OnStop(c.policy),
		workerpool.RestartBackoff(100*time.Microsecond, time.Millisecond),
		workerpool.OnDropped(func(ctx context.Context, task func(context.Context, r13) error) {
			_ = task(context.WithValue(ctx, drop13Key{}, true), r13{})
		}),
		workerpool.ErrorHandler(func(err error) {
			switch {
			case errors.Is(err, workerpool.ErrClosed):
				r.ehClosed.Add(1)
			case errors.Is(err, errTask13), errors.Is(err, resources.ErrBroken), errors.Is(err, workerpool.ErrGoexit):
				r.ehOther.Add(1)
			default:
				var pe *workerpool.PanicError
				if errors.As(err, &pe) {
					r.ehOther.Add(1)
				} else {
					r.ehUnexpected.Add(1)
					r.errorf("ErrorHandler got an unexpected error: %v", err)
				}
			}
		}),
		workerpool.Resources(resources.PerWorker(func(ctx context.Context, w W) (*res13, func(context.Context) error, error) {
			if w.Generation > 0 && c.openFailPct > 0 && rand.IntN(100) < c.openFailPct {
				return nil, nil, errors.New("attack13: reopen failed")
			}
			rs := &res13{w: w}
			r.mu.Lock()
			r.opened[[2]int{w.ID, w.Generation}]++
			r.mu.Unlock()
			return rs, func(context.Context) error {
				if c.slowClose {
					time.Sleep(50 * time.Microsecond)
				}
				rs.closed.Store(true)
				r.mu.Lock()
				r.closed[[2]int{w.ID, w.Generation}]++
				r.mu.Unlock()
				return nil
			}, nil
		})),
	}
	if c.elastic {
		opts = append(opts, workerpool.Elastic(c.emin, c.emax, c.idle))
	} else {
		opts = append(opts, workerpool.Workers(c.workers))
	}
	if c.maxTasks > 0 {
		opts = append(opts, workerpool.MaxTasksPerWorker(c.maxTasks))
	}
	if c.maxRestarts > 0 {
		opts = append(opts, workerpool.MaxRestarts(c.maxRestarts, time.Minute))
	}
	return opts
}

// submitter submits perSub tasks with APIs drawn from cfg.apis.
func (r *round13) submitter(p *workerpool.Pool[r13], rng *rand.Rand, wg *sync.WaitGroup) {
	defer wg.Done()
	c := r.cfg
	bg := context.Background()
	for i := 0; i < c.perSub; i++ {
		api := c.apis[rng.IntN(len(c.apis))]
		k := c.kinds[rng.IntN(len(c.kinds))]
		switch api {
		case apiGo:
			id, tk := r.newTask(api, k, 0)
			if err := p.Go(bg, func(ctx context.Context, res r13) error { return r.body(id, ctx, res) }); err == nil {
				r.markAccepted(tk)
			} else {
				tk.accepted.Store(2)
				if !errors.Is(err, workerpool.ErrClosed) {
					r.errorf("task %d: Go: %v, want nil or ErrClosed", id, err)
				}
			}
		case apiTryGo:
			id, tk := r.newTask(api, k, 0)
			if p.TryGo(func(ctx context.Context, res r13) error { return r.body(id, ctx, res) }) {
				r.markAccepted(tk)
			} else {
				tk.accepted.Store(2)
			}
		case apiGoReport:
			id, tk := r.newTask(api, k, 0)
			err := p.GoReport(bg, func(ctx context.Context, res r13) error { return r.body(id, ctx, res) },
				func(o workerpool.Outcome, err error) {
					tk.outcome.Store(int32(o))
					tk.repErr.Store(&err)
					tk.reports.Add(1)
				})
			if err == nil {
				r.markAccepted(tk)
			} else {
				tk.accepted.Store(2)
				if !errors.Is(err, workerpool.ErrClosed) {
					r.errorf("task %d: GoReport: %v, want nil or ErrClosed", id, err)
				}
			}
		case apiGoReportCtx, apiSubmitCtx:
			id, tk := r.newTask(api, k, 0)
			ctx, cancel := context.WithCancelCause(bg)
			d := time.Duration(rng.IntN(200)) * time.Microsecond
			tm := time.AfterFunc(d, func() { cancel(errGone13) })
			if api == apiGoReportCtx {
				err := p.GoReport(ctx, func(ctx context.Context, res r13) error { return r.body(id, ctx, res) },
					func(o workerpool.Outcome, err error) {
						tk.outcome.Store(int32(o))
						tk.repErr.Store(&err)
						tk.reports.Add(1)
					})
				if err == nil {
					r.markAccepted(tk)
				} else {
					tk.accepted.Store(2)
					if !errors.Is(err, workerpool.ErrClosed) && !errors.Is(err, errGone13) && !errors.Is(err, context.Canceled) {
						r.errorf("task %d: GoReport: %v, want nil, ErrClosed or the submitter's cause", id, err)
					}
				}
				continue // tm may fire later: that is the point
			}
			f, err := workerpool.Submit(ctx, p, func(ctx context.Context, res r13) (int, error) {
				return id, r.body(id, ctx, res)
			})
			if err != nil {
				tm.Stop()
				cancel(nil)
				tk.accepted.Store(2)
				if !errors.Is(err, workerpool.ErrClosed) && !errors.Is(err, errGone13) && !errors.Is(err, context.Canceled) {
					r.errorf("task %d: Submit: %v, want nil, ErrClosed or the submitter's cause", id, err)
				}
				continue
			}
			r.markAccepted(tk)
			wctx, wcancel := context.WithTimeout(bg, 25*time.Second)
			_, err = f.Wait(wctx)
			wcancel()
			tm.Stop()
			cancel(nil)
			if errors.Is(err, context.DeadlineExceeded) {
				r.errorf("task %d: Future.Wait did not return within 25s (lost)", id)
			}
			tk.result.Store(&err)
		case apiDo:
			id, tk := r.newTask(api, k, 0)
			err := p.Do(bg, func(ctx context.Context, res r13) error { return r.body(id, ctx, res) })
			if !errors.Is(err, workerpool.ErrClosed) {
				r.markAccepted(tk) // it ran: accepted
			}
			tk.result.Store(&err)
		case apiSubmit:
			id, tk := r.newTask(api, k, 0)
			f, err := workerpool.Submit(bg, p, func(ctx context.Context, res r13) (int, error) {
				return id, r.body(id, ctx, res)
			})
			if err != nil {
				tk.accepted.Store(2)
				if !errors.Is(err, workerpool.ErrClosed) {
					r.errorf("task %d: Submit: %v, want nil or ErrClosed", id, err)
				}
				continue
			}
			r.markAccepted(tk)
			wctx, cancel := context.WithTimeout(bg, 25*time.Second)
			v, err := f.Wait(wctx)
			cancel()
			if errors.Is(err, context.DeadlineExceeded) {
				r.errorf("task %d: Future.Wait did not return within 25s (lost)", id)
			}
			if err == nil && v != id {
				r.errorf("task %d: Future value %d", id, v)
			}
			tk.result.Store(&err)
		case apiGroup:
			gi := id13group(r)
			g, _ := p.Group(bg)
			n := 1 + rng.IntN(4)
			for j := 0; j < n; j++ {
				id, _ := r.newTask(api, c.kinds[rng.IntN(len(c.kinds))], gi)
				g.Go(func(ctx context.Context, res r13) error { return r.body(id, ctx, res) })
			}
			err := g.Wait()
			r.mu.Lock()
			r.groupErrs[gi] = err
			r.mu.Unlock()
			i += n - 1
		case apiMap:
			n := 1 + rng.IntN(6)
			ids := make([]int, n)
			for j := range ids {
				ids[j], _ = r.newTask(api, c.kinds[rng.IntN(len(c.kinds))], 0)
			}
			var seq iter.Seq[int] = func(yield func(int) bool) {
				for _, id := range ids {
					if !yield(id) {
						return
					}
				}
			}
			j := 0
			breakAt := n
			if rng.IntN(3) == 0 {
				breakAt = rng.IntN(n)
			}
			var running atomic.Int32
			var ended atomic.Bool
			for v, err := range workerpool.Map(bg, p, seq, func(ctx context.Context, res r13, id int) (int, error) {
				if ctx.Value(drop13Key{}) == nil {
					if ended.Load() {
						r.errorf("task %d: a Map task began after its loop ended", id)
					}
					running.Add(1)
					defer running.Add(-1)
				}
				return id, r.body(id, ctx, res)
			}, workerpool.InFlight(1+rng.IntN(3))) {
				if j == breakAt {
					break
				}
				if err == nil {
					if j >= n || v != ids[j] {
						r.errorf("Map yielded %d at %d, want %v", v, j, ids)
					} else if r.tasks[v].ran.Load() != 1 {
						r.errorf("task %d: Map yielded its result but it ran %d times", v, r.tasks[v].ran.Load())
					}
				}
				j++
			}
			ended.Store(true)
			if k := running.Load(); k != 0 {
				r.errorf("%d tasks of a Map still running after its loop ended", k)
			}
			i += n - 1
		}
	}
}

var groupSeq13 atomic.Int32

func id13group(r *round13) int { return int(groupSeq13.Add(1)) }

// run13 runs one round with cfg, drawn from seed.
func run13(t testing.TB, cfg cfg13, seed uint64) (errs []string) {
	r := &round13{t: t, cfg: cfg, seed: seed, rng: rand.New(rand.NewPCG(seed, 13)),
		opened: map[[2]int]int{}, closed: map[[2]int]int{}, groupErrs: map[int]error{}}
	var p *workerpool.Pool[r13]
	app := fx.New(fx.NopLogger, fx.Supply(zap.NewNop()), workerpool.Provide[r13]("atk13", r.options()...), fx.Populate(&p))
	if err := app.Err(); err != nil {
		return []string{fmt.Sprintf("fx.New: %v", err)}
	}
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	err := app.Start(sctx)
	cancel()
	if err != nil {
		return []string{fmt.Sprintf("Start: %v", err)}
	}
	var wg sync.WaitGroup
	var feederCalls atomic.Int32
	feederDone := func() {}
	if cfg.feeder {
		feedCtx, stopFeeding := context.WithCancel(context.Background())
		fed := make(chan struct{})
		registered := make(chan struct{})
		go func() {
			defer close(fed)
			<-registered // no task before AddFeeder: a failed pool refuses it
			rng := rand.New(rand.NewPCG(seed, 99))
			for i := 0; i < 200 && feedCtx.Err() == nil; i++ {
				id, tk := r.newTask(apiGo, cfg.kinds[rng.IntN(len(cfg.kinds))], 0)
				if err := p.Go(feedCtx, func(ctx context.Context, res r13) error { return r.body(id, ctx, res) }); err == nil {
					r.markAccepted(tk)
				} else {
					tk.accepted.Store(2)
					if !errors.Is(err, workerpool.ErrClosed) && !errors.Is(err, context.Canceled) {
						r.errorf("feeder: Go: %v", err)
					}
				}
				runtime.Gosched()
			}
		}()
		err := p.AddFeeder(func(ctx context.Context) error {
			feederCalls.Add(1)
			stopFeeding()
			select {
			case <-fed:
			case <-ctx.Done():
				return ctx.Err()
			}
			// the feeder's last tasks: the pool still takes them
			for range 3 {
				id, tk := r.newTask(apiGoReport, kOK, 0)
				err := p.GoReport(context.Background(), func(ctx context.Context, res r13) error { return r.body(id, ctx, res) },
					func(o workerpool.Outcome, err error) {
						tk.outcome.Store(int32(o))
						tk.repErr.Store(&err)
						tk.reports.Add(1)
					})
				if err == nil {
					r.markAccepted(tk)
				} else {
					tk.accepted.Store(2)
					if cfg.maxRestarts == 0 {
						r.errorf("a feeder's last task was refused during its stop: %v", err)
					}
				}
			}
			return nil
		})
		if err != nil {
			stopFeeding()
			r.errorf("AddFeeder: %v", err)
		}
		close(registered)
		feederDone = func() {
			stopFeeding()
			<-fed
			// every stop calls it once, a failed pool's too (that is
			// TestAttack13FailedPoolStillStopsItsFeeders).
			if err == nil && feederCalls.Load() != 1 {
				r.errorf("the feeder's stop was called %d times", feederCalls.Load())
			}
		}
	}
	for i := 0; i < cfg.subs; i++ {
		wg.Add(1)
		go r.submitter(p, rand.New(rand.NewPCG(seed, uint64(100+i))), &wg)
	}
	resizeDone := make(chan struct{})
	stopResize := make(chan struct{})
	if cfg.resize && !cfg.elastic {
		go func() {
			defer close(resizeDone)
			rng := rand.New(rand.NewPCG(seed, 7))
			for {
				select {
				case <-stopResize:
					return
				default:
				}
				if err := p.Resize(1 + rng.IntN(6)); err != nil {
					if !errors.Is(err, workerpool.ErrClosed) {
						r.errorf("Resize: %v", err)
					}
					return
				}
				runtime.Gosched()
			}
		}()
	} else {
		close(resizeDone)
	}
	// wait for stopAfter accepted tasks (or the submitters' end)
	subsDone := make(chan struct{})
	go func() { wg.Wait(); close(subsDone) }()
wait:
	for int(r.next.Load()) < cfg.stopAfter {
		select {
		case <-subsDone:
			break wait
		default:
			runtime.Gosched()
		}
	}
	if cfg.preStopYield {
		runtime.Gosched()
	}
	stopErr := r.stop(p, app)
	close(stopResize)
	<-resizeDone
	select {
	case <-subsDone:
	case <-time.After(25 * time.Second):
		r.errorf("submitters still blocked 25s after the stop (a Do, Future.Wait, Group.Wait or Map never returned)")
		// do not return: let the final stop try to free them
	}
	fctx, fcancel := context.WithTimeout(context.Background(), 25*time.Second)
	if err := app.Stop(fctx); err != nil && stopErr == nil {
		r.errorf("app.Stop after the stop: %v", err)
	}
	// fx skips the pool's OnStop when the budget is gone before it: stop
	// the pool ourselves, as fx would have at its deadline. A Stop after a
	// stop waits for it and returns its result.
	if err := p.Stop(fctx, workerpool.Drain); err != nil && stopErr == nil {
		r.errorf("Pool.Stop after the stop: %v", err)
	}
	fcancel()
	<-subsDone
	if stopErr != nil {
		// a stop that gave up leaves workers to finish on their own: wait
		// until everything accepted was resolved, or 10 s.
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) && !r.allResolved() {
			time.Sleep(time.Millisecond)
		}
	}
	feederDone()
	r.check(p, stopErr)
	if len(r.errs) > 0 {
		r.errs = append(r.errs, fmt.Sprintf("(the stop returned %v)", stopErr))
	}
	return r.errs
}

func (r *round13) allResolved() bool {
	n := int(r.next.Load())
	for i := 0; i < n; i++ {
		tk := &r.tasks[i]
		if tk.accepted.Load() != 1 {
			continue
		}
		switch tk.api {
		case apiGo, apiTryGo, apiSubmit:
			if tk.ran.Load()+tk.dropped.Load() == 0 {
				return false
			}
		case apiGoReport, apiGoReportCtx:
			if tk.reports.Load() == 0 {
				return false
			}
			// OnDropped hears of a dropped task after its submitter
			if workerpool.Outcome(tk.outcome.Load()) == workerpool.NotRun && tk.dropped.Load() == 0 {
				if ep := tk.repErr.Load(); ep != nil && errors.Is(*ep, workerpool.ErrClosed) {
					return false
				}
			}
		}
	}
	return true
}

func (r *round13) effectiveDrain() bool {
	c := r.cfg
	switch c.stopKind {
	case stopPool:
		return c.stopPolicy == workerpool.Drain
	case stopApp:
		return c.policy == workerpool.Drain
	case stopPoolAndApp:
		return c.stopPolicy == workerpool.Drain && c.policy == workerpool.Drain
	case stopTwoPool:
		return c.stopPolicy == workerpool.Drain && c.policy2 == workerpool.Drain
	}
	return false
}

func (r *round13) stop(p *workerpool.Pool[r13], app *fx.App) error {
	c := r.cfg
	ctx, cancel := context.WithTimeout(context.Background(), c.budget)
	defer cancel()
	var first atomic.Bool
	done := func(err error) {
		if err == nil && first.CompareAndSwap(false, true) {
			r.stopReturned.Store(true)
			n := int(r.next.Load())
			snap := make([]int32, n)
			for i := 0; i < n; i++ {
				snap[i] = r.tasks[i].ran.Load() + r.tasks[i].dropped.Load()
			}
			r.mu.Lock()
			r.snapshot = snap
			r.mu.Unlock()
		}
	}
	switch c.stopKind {
	case stopPool:
		err := p.Stop(ctx, c.stopPolicy)
		done(err)
		return err
	case stopApp:
		err := app.Stop(ctx)
		done(err)
		return err
	default:
		var wg sync.WaitGroup
		errs := make([]error, 2)
		wg.Add(2)
		go func() {
			defer wg.Done()
			errs[0] = p.Stop(ctx, c.stopPolicy)
			done(errs[0])
		}()
		go func() {
			defer wg.Done()
			if c.stopKind == stopPoolAndApp {
				errs[1] = app.Stop(ctx)
			} else {
				errs[1] = p.Stop(ctx, c.policy2)
			}
			done(errs[1])
		}()
		wg.Wait()
		if c.budget >= time.Second {
			for i, e := range errs {
				if e != nil {
					r.errorf("racing stop %d: %v", i, e)
				}
			}
		}
		return errors.Join(errs...)
	}
}

func (r *round13) check(p *workerpool.Pool[r13], stopErr error) {
	c := r.cfg
	n := int(r.next.Load())
	var ranN, droppedN, failedN, panicsN, goDropped, acceptedKnown, goneN int
	unknownAcceptance := false
	for id := 0; id < n; id++ {
		tk := &r.tasks[id]
		ran, dr := int(tk.ran.Load()), int(tk.dropped.Load())
		ranN += ran
		droppedN += dr
		if ran > 0 {
			switch tk.kind {
			case kErr, kBroken:
				failedN += ran
			case kPanic, kGoexit:
				failedN += ran
				panicsN += ran
			}
		}
		desc := fmt.Sprintf("task %d (%v, %v)", id, tk.api, tk.kind)
		if ran > 1 {
			r.errorf("%s ran %d times", desc, ran)
		}
		if dr > 1 {
			r.errorf("%s reported to OnDropped %d times", desc, dr)
		}
		if ran > 0 && dr > 0 {
			r.errorf("%s both ran and was reported to OnDropped", desc)
		}
		acc := tk.accepted.Load()
		if acc == 1 {
			acceptedKnown++
		}
		if acc == 2 && ran+dr != 0 {
			r.errorf("%s was refused, yet ran %d, dropped %d", desc, ran, dr)
		}
		if acc == 1 && (tk.api == apiGo || tk.api == apiTryGo || tk.api == apiGoReport || tk.api == apiSubmit) && ran+dr != 1 {
			r.errorf("LOST: %s was accepted but ran %d times and was reported to OnDropped %d times", desc, ran, dr)
		}
		if (tk.api == apiGo || tk.api == apiTryGo) && dr == 1 {
			goDropped++
		}
		if acc == 1 && tk.preStop.Load() && stopErr == nil && r.snapshot != nil && (tk.api == apiGo || tk.api == apiTryGo || tk.api == apiGoReport) && id < len(r.snapshot) && r.snapshot[id] != 1 {
			r.errorf("%s was accepted before the stop returned nil, but was neither run nor reported by then (later: ran %d, dropped %d)", desc, ran, dr)
		}
		switch tk.api {
		case apiGoReport, apiGoReportCtx:
			reps := tk.reports.Load()
			if acc == 1 && reps != 1 {
				r.errorf("%s: report called %d times", desc, reps)
			}
			if acc == 2 && reps != 0 {
				r.errorf("%s: refused but report called %d times", desc, reps)
			}
			if reps == 1 {
				o := workerpool.Outcome(tk.outcome.Load())
				var rerr error
				if p := tk.repErr.Load(); p != nil {
					rerr = *p
				}
				want := workerpool.NotRun
				if ran == 1 {
					want = map[kind13]workerpool.Outcome{kOK: workerpool.Succeeded, kSlow: workerpool.Succeeded, kErr: workerpool.Failed, kBroken: workerpool.Failed, kPanic: workerpool.Panicked, kGoexit: workerpool.Panicked}[tk.kind]
				}
				if o != want {
					r.errorf("%s: reported %v (%v), want %v (ran %d, dropped %d)", desc, o, rerr, want, ran, dr)
				}
				switch {
				case o != workerpool.NotRun:
				case errors.Is(rerr, workerpool.ErrClosed):
					if dr != 1 {
						r.errorf("%s: NotRun with ErrClosed, OnDropped %d times", desc, dr)
					}
				case tk.api == apiGoReportCtx && errors.Is(rerr, errGone13):
					goneN++
					if dr != 0 {
						r.errorf("%s: NotRun with its submitter's cause, yet OnDropped saw it %d times", desc, dr)
					}
				default:
					r.errorf("%s: NotRun with %v (OnDropped %d times)", desc, rerr, dr)
				}
			}
		case apiDo, apiSubmit, apiSubmitCtx:
			rp := tk.result.Load()
			if rp == nil {
				if tk.api == apiDo || acc == 1 {
					r.errorf("%s: its Do/Wait never returned", desc)
				}
				break
			}
			err := *rp
			switch {
			case err == nil:
				if ran != 1 || (tk.kind != kOK && tk.kind != kSlow) {
					r.errorf("%s: returned nil but ran %d", desc, ran)
				}
			case errors.Is(err, workerpool.ErrClosed):
				if ran != 0 {
					r.errorf("%s: returned ErrClosed but ran %d", desc, ran)
				}
				if (tk.api == apiSubmit || tk.api == apiSubmitCtx) && dr != 1 {
					r.errorf("%s: Future.Wait said ErrClosed, OnDropped saw it %d times", desc, dr)
				}
				if tk.api == apiDo {
					unknownAcceptance = true
				}
			case tk.api == apiSubmitCtx && (errors.Is(err, errGone13) || errors.Is(err, context.Canceled)):
				goneN++
				if ran != 0 || dr != 0 {
					r.errorf("%s: Future.Wait returned %v, but it ran %d, OnDropped %d", desc, err, ran, dr)
				}
			default:
				if ran != 1 {
					r.errorf("%s: returned %v but ran %d", desc, err, ran)
				}
				var pe *workerpool.PanicError
				switch tk.kind {
				case kPanic:
					if !errors.As(err, &pe) {
						r.errorf("%s: returned %v, want a *PanicError", desc, err)
					}
				case kGoexit:
					if !errors.Is(err, workerpool.ErrGoexit) {
						r.errorf("%s: returned %v, want ErrGoexit", desc, err)
					}
				}
			}
			if dr == 1 && !errors.Is(err, workerpool.ErrClosed) {
				r.errorf("%s: OnDropped saw it but its submitter got %v", desc, err)
			}
		}
	}
	// groups: a nil Wait means every task ran and succeeded
	r.mu.Lock()
	groupErrs := r.groupErrs
	r.mu.Unlock()
	for id := 0; id < n; id++ {
		tk := &r.tasks[id]
		if tk.group == 0 {
			continue
		}
		if err, ok := groupErrs[tk.group]; ok && err == nil && (tk.ran.Load() != 1 || (tk.kind != kOK && tk.kind != kSlow)) {
			r.errorf("task %d of group %d: Wait returned nil, but it ran %d times (%v)", id, tk.group, tk.ran.Load(), tk.kind)
		}
	}
	if l := r.lateRuns.Load(); l > 0 {
		r.errorf("%d tasks began after a stop had returned nil", l)
	}
	if b := r.badRes.Load(); b > 0 {
		r.errorf("%d tasks got a resource closed, missing or of another worker", b)
	}
	if int(r.ehClosed.Load()) != goDropped {
		r.errorf("ErrorHandler got ErrClosed %d times, OnDropped saw %d tasks of Go/TryGo", r.ehClosed.Load(), goDropped)
	}
	if c.expectNoDropAtDrain && r.effectiveDrain() && stopErr == nil && droppedN != 0 {
		r.errorf("Drain with a %v budget dropped %d tasks (OnDropped)", c.budget, droppedN)
	}
	st := p.Stats()
	if stopErr != nil {
		// a stop that gave up: workers it left count their last task when
		// they come back.
		for deadline := time.Now().Add(5 * time.Second); st.Done != uint64(ranN) && time.Now().Before(deadline); st = p.Stats() {
			time.Sleep(time.Millisecond)
		}
	}
	if st.Done != uint64(ranN) {
		r.errorf("Stats.Done = %d, tasks that ran = %d", st.Done, ranN)
	}
	if st.Failed != uint64(failedN) || st.Panics != uint64(panicsN) {
		r.errorf("Stats.Failed/Panics = %d/%d, want %d/%d", st.Failed, st.Panics, failedN, panicsN)
	}
	noCancelAPIs := true
	for _, a := range c.apis {
		if a == apiGroup || a == apiMap {
			noCancelAPIs = false
		}
	}
	if noCancelAPIs && st.Dropped != uint64(droppedN+goneN) {
		r.errorf("Stats.Dropped = %d, OnDropped saw %d, submitters told their own cause %d", st.Dropped, droppedN, goneN)
	}
	if !noCancelAPIs && st.Dropped < uint64(droppedN) {
		r.errorf("Stats.Dropped = %d < OnDropped's %d", st.Dropped, droppedN)
	}
	if noCancelAPIs && !unknownAcceptance && st.Done+st.Dropped != uint64(acceptedKnown) {
		r.errorf("Stats.Done+Dropped = %d+%d, accepted %d", st.Done, st.Dropped, acceptedKnown)
	}
	if stopErr == nil && (st.Workers != 0 || st.Busy != 0 || st.Queued != 0 || st.Opening != 0 || st.Closing != 0) {
		r.errorf("Stats after the stop: %+v", st)
	}
	// resources: each opened generation closed exactly once
	if stopErr == nil {
		r.mu.Lock()
		for k, o := range r.opened {
			if o != 1 {
				r.errorf("worker %d gen %d opened %d times", k[0], k[1], o)
			}
			if r.closed[k] != 1 {
				r.errorf("worker %d gen %d opened, closed %d times", k[0], k[1], r.closed[k])
			}
		}
		for k, cl := range r.closed {
			if r.opened[k] == 0 {
				r.errorf("worker %d gen %d closed %d times, never opened", k[0], k[1], cl)
			}
		}
		r.mu.Unlock()
	}
}

// draw13 draws a configuration from rng within the bounds of base.
type space13 struct {
	workers     []int
	queues      []int
	elasticPct  int
	policies    []workerpool.StopPolicy
	stopKinds   []int
	budgets     []time.Duration
	apis        [][]api13
	kinds       [][]kind13
	resizePct   int
	maxTasks    []int
	openFailPct []int
	slowClose   bool
	subs        []int
	perSub      []int
	stopAfter   []int
	maxRestarts []int
	feederPct   int
}

func pick13[T any](rng *rand.Rand, xs []T) T { return xs[rng.IntN(len(xs))] }

func (s space13) draw(rng *rand.Rand) cfg13 {
	c := cfg13{
		workers:   pick13(rng, s.workers),
		queue:     pick13(rng, s.queues),
		policy:    pick13(rng, s.policies),
		stopKind:  pick13(rng, s.stopKinds),
		budget:    pick13(rng, s.budgets),
		apis:      pick13(rng, s.apis),
		kinds:     pick13(rng, s.kinds),
		subs:      pick13(rng, s.subs),
		perSub:    pick13(rng, s.perSub),
		stopAfter: pick13(rng, s.stopAfter),
	}
	c.stopPolicy = pick13(rng, s.policies)
	c.policy2 = pick13(rng, s.policies)
	if rng.IntN(100) < s.elasticPct {
		c.elastic = true
		c.emin = rng.IntN(3)
		c.emax = max(1, c.emin+rng.IntN(4))
		c.idle = time.Duration(50+rng.IntN(500)) * time.Microsecond
		if c.queue == 0 {
			c.queue = 1 + rng.IntN(4)
		}
	}
	c.resize = rng.IntN(100) < s.resizePct
	if len(s.maxTasks) > 0 {
		c.maxTasks = pick13(rng, s.maxTasks)
	}
	if len(s.openFailPct) > 0 {
		c.openFailPct = pick13(rng, s.openFailPct)
	}
	c.slowClose = s.slowClose && rng.IntN(2) == 0
	if len(s.maxRestarts) > 0 {
		c.maxRestarts = pick13(rng, s.maxRestarts)
	}
	c.feeder = rng.IntN(100) < s.feederPct
	// a failed reopen racing a Drain stop drops the queue at once: that is
	// TestAttack13DrainWaitsForARebuildThatFailedOnce; not checked here.
	c.expectNoDropAtDrain = c.budget >= time.Second && c.maxRestarts == 0 && c.openFailPct == 0
	c.preStopYield = rng.IntN(2) == 0
	return c
}

// stress13 runs rounds of space until d has passed or maxRounds ran,
// failing the test with the first failing round's seed and configuration.
func stress13(t *testing.T, s space13, d time.Duration, maxRounds int) {
	t.Helper()
	if testing.Short() {
		d = min(d, time.Second)
	}
	base := uint64(time.Now().UnixNano())
	deadline := time.Now().Add(d)
	rounds, failed := 0, 0
	for ; rounds < maxRounds && time.Now().Before(deadline); rounds++ {
		seed := base + uint64(rounds)
		cfg := s.draw(rand.New(rand.NewPCG(seed, 1)))
		errs := run13(t, cfg, seed)
		if len(errs) > 0 {
			failed++
			if failed <= 3 {
				if len(errs) > 12 {
					errs = append(errs[:12], fmt.Sprintf("... and %d more", len(errs)-12))
				}
				t.Errorf("round %d (seed %#x) %v:\n  %s", rounds, seed, cfg, strings.Join(errs, "\n  "))
			}
		}
	}
	t.Logf("%d rounds, %d failed", rounds, failed)
}

var (
	allAPIs13     = []api13{apiGo, apiTryGo, apiGoReport, apiDo, apiSubmit, apiGroup, apiMap}
	fireAPIs13    = []api13{apiGo, apiTryGo, apiGoReport, apiSubmit}
	allPolicies13 = []workerpool.StopPolicy{workerpool.Drain, workerpool.Cancel, workerpool.DropQueued}
	allKinds13    = []kind13{kOK, kOK, kOK, kErr, kBroken, kPanic, kGoexit}
)
