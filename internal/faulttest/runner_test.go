package faulttest

// The runner: it drives one drawn trial through a whole fx app — fx.New,
// app.Start with submitters and resizes racing it, a stop at a random
// moment through app.Stop or Pool.Stop — watches every hook and submitter
// with generous bounds, and then runs the checks (checks_test.go).

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
	"go.uber.org/goleak"
)

// slack is how long past its deadline a hook or a submitter may take before
// the trial calls it stuck: generous, so that a slow or busy machine never
// fails a trial; only a real hang takes that long.
const slack = 10 * time.Second

// trial is one run: its configuration, its recorder and its outcome.
type trial struct {
	cfg          *trialCfg
	hangAnywhere bool
	release      chan struct{} // closed once the trial is over: hung cleanups return
	seq          atomic.Int64  // orders opens, closes, task starts and the stop's return

	mu         sync.Mutex
	all        []*res
	attempts   map[[3]int]int // opens of (node, worker, generation)
	violations []violation
	stats      counters

	app            *AppRes
	appendingApp   bool
	openAfterApp   atomic.Int64
	openAfterAppBy map[int]int // by worker

	poolStartBegan, poolStopBegan atomic.Bool
	poolStartDone, poolStopDone   chan struct{}
	stopOnce                      sync.Once
	stopReturnSeq                 atomic.Int64
	poolStartErr, stopErr         error
	startErr                      error
	poolStopped                   bool
	lateStart                     bool
	startedOK                     atomic.Int64 // when the pool told of its start's success (PoolStarted), in Unix ns
	stopDuringStart               bool         // fx's Stop began while the pool's OnStart ran
	lastPhase                     time.Time
	callPoolStop                  func(context.Context) error
	fatal                         bool // the trial left goroutines behind

	tasks         []*taskRec
	groups        []*groupRec
	accepted      atomic.Int64
	droppedCalls  atomic.Int64
	notRunGo      atomic.Int64 // ErrClosed given to the ErrorHandler
	goexitHandled atomic.Int64 // ErrGoexit given to the ErrorHandler
}

// groupRec is what became of one Group.
type groupRec struct {
	tasks   []*taskRec
	sub     int
	waited  bool
	err     error // Wait's
	ctxLive bool  // the group's context had not ended after Wait
}

func newTrial(cfg *trialCfg, hangAnywhere bool) *trial {
	tr := &trial{
		cfg:            cfg,
		hangAnywhere:   hangAnywhere,
		release:        make(chan struct{}),
		poolStartDone:  make(chan struct{}),
		poolStopDone:   make(chan struct{}),
		attempts:       make(map[[3]int]int),
		openAfterAppBy: make(map[int]int),
		tasks:          make([]*taskRec, cfg.ntasks),
		groups:         make([]*groupRec, cfg.ngroups),
	}
	for g := range tr.groups {
		tr.groups[g] = &groupRec{}
	}
	for _, sc := range cfg.subs {
		for _, s := range sc.tasks {
			rec := &taskRec{spec: s}
			tr.tasks[s.id] = rec
			if s.group >= 0 {
				g := tr.groups[s.group]
				g.tasks = append(g.tasks, rec)
				g.sub = s.sub
			}
		}
	}
	return tr
}

// phase adds the time since the last phase to the trial's counters, in
// microseconds.
func (tr *trial) phase(name string) {
	now := time.Now()
	tr.stats.add("µs-"+name, now.Sub(tr.lastPhase).Microseconds())
	tr.lastPhase = now
}

// run runs one trial to its end and checks it. It returns the trial with
// its violations; it never fails a test itself.
func run(cfg *trialCfg, hangAnywhere bool) *trial {
	tr := newTrial(cfg, hangAnywhere)
	if cfg.rootOnly {
		runWith[rootDeps](tr)
	} else {
		runWith[allDeps](tr)
	}
	return tr
}

func runWith[R any](tr *trial) {
	cfg := tr.cfg
	before := goleak.IgnoreCurrent()
	tr.lastPhase = time.Now()
	defer tr.phase("checks")
	var pool *workerpool.Pool[R]
	app := fx.New(appOptions(tr, &pool)...)
	if cfg.invalid != validConfig {
		tr.count("invalid-config-" + cfg.invalid.String())
		want := cfg.invalid.want()
		if err := app.Err(); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), poolName) {
			tr.violate("invalid-config-accepted", "fx.New with a %v: error %v, want one naming the pool and %q", cfg.invalid, err, want)
		}
		if len(tr.all) != 0 {
			tr.violate("opened-on-invalid-config", "fx.New with a %v opened %d resources", cfg.invalid, len(tr.all))
		}
		return
	}
	if err := app.Err(); err != nil {
		tr.violate("fx-new", "fx.New: %v", err)
		return
	}
	tr.count("sizing-" + cfg.sizing.String())
	if cfg.checkIdle > 0 {
		tr.count("check-idle")
	}

	var subs sync.WaitGroup
	startSubs := func() {
		for s := range cfg.subs {
			subs.Go(func() { submitter(tr, pool, s) })
		}
	}
	if cfg.submitWhen == submitBeforeStart {
		startSubs()
	}
	var resizing sync.WaitGroup
	if len(cfg.resizes) > 0 {
		if err := pool.Resize(1); cfg.sizing == sizeFixed && !errors.Is(err, workerpool.ErrNotStarted) {
			tr.violate("resize-before-start", "Resize before the start: %v, want ErrNotStarted", err)
		}
	}
	startResizer := func() { resizing.Go(func() { resizer(tr, pool) }) } // racing with the submitters and the stop
	if len(cfg.resizes) > 0 && cfg.resizeDuringStart {
		startResizer()
	}
	startCtx, cancelStart := context.WithTimeout(context.Background(), cfg.startBudget)
	defer cancelStart()
	started := make(chan error, 1)
	go func() { started <- app.Start(startCtx) }()
	if cfg.submitWhen == submitDuringStart {
		startSubs()
	}
	var startErr error
	select {
	case startErr = <-started:
	case <-time.After(cfg.startBudget + slack):
		tr.violate("start-hang", "app.Start did not return %v after its deadline", slack)
		tr.fatal = true
		close(tr.release)
		return
	}
	if startErr != nil {
		tr.count("start-failed")
		tr.startErr = startErr
	} else if c := pool.Capacity(); cfg.sizing == sizeElastic && c.MaxWorkers != cfg.elasticMax {
		tr.violate("capacity", "Capacity().MaxWorkers = %d, want Elastic's max %d", c.MaxWorkers, cfg.elasticMax)
	}
	tr.phase("new+start")
	if cfg.submitWhen == submitAfterStart {
		startSubs()
	}
	if len(cfg.resizes) > 0 && !cfg.resizeDuringStart {
		startResizer()
	}

	// Stop at a random moment, racing with the submitters.
	allSubmitted := make(chan struct{})
	go func() { subs.Wait(); close(allSubmitted) }()
	wait := time.NewTimer(20 * time.Millisecond)
	for tr.accepted.Load() < int64(cfg.stopAfter) {
		select {
		case <-allSubmitted:
		case <-wait.C:
		case <-time.After(100 * time.Microsecond):
			continue
		}
		break
	}
	wait.Stop()
	time.Sleep(cfg.stopDelay)
	stopCtx, cancelStop := context.WithTimeout(context.Background(), cfg.stopBudget)
	defer cancelStop()
	startedOK := startErr == nil && closed(tr.poolStartDone) && tr.poolStartErr == nil
	tr.phase("run")
	if tr.poolStartBegan.Load() && !closed(tr.poolStartDone) {
		// fx's Start gave up at its deadline and returned while the pool's
		// OnStart was still running; fx's Stop now closes the app-scoped
		// resources while that OnStart may still be opening workers that
		// use them. No pool can prevent that: fx does not wait for a start
		// hook it abandoned.
		tr.stopDuringStart = true
		tr.count("fx-stop-during-start")
	}
	demandDone := make(chan struct{})
	if cfg.stopVia == stopOnDemand && startedOK {
		// Pool.Stop now, and app.Stop racing with it: the pool's OnStop
		// waits for the stop under way and returns its result.
		tr.count("stop-on-demand-" + cfg.demandPolicy.String())
		tr.poolStopBegan.Store(true)
		go func() {
			defer close(demandDone)
			tr.poolStopReturned(pool.Stop(stopCtx, cfg.demandPolicy))
		}()
		appCtx, cancelApp := context.WithTimeout(context.Background(), cfg.stopBudget+50*time.Millisecond)
		_ = app.Stop(appCtx)
		cancelApp()
	} else {
		close(demandDone)
		tr.count("stop-by-app-" + cfg.policy.String())
		if cfg.stopBudget == 0 {
			// fx would skip the pool's OnStop: call it as fx would had the
			// deadline passed just as it called it.
			tr.count("stop-budget-zero")
			if startedOK {
				tr.poolStopBegan.Store(true)
				go func() { _ = tr.callPoolStop(stopCtx) }()
			}
		}
		_ = app.Stop(stopCtx) // fx returns by the deadline; the pool's own hook is watched below
		if !tr.poolStopBegan.Load() && closed(tr.poolStartDone) && tr.poolStartErr == nil {
			// fx skips every OnStop once the stop context has expired,
			// which may happen before it reaches the pool on a busy
			// machine: call it as fx would had the deadline passed just
			// as it called it.
			tr.count("fx-skipped-pool-stop")
			tr.poolStopBegan.Store(true)
			go func() { _ = tr.callPoolStop(stopCtx) }()
		}
	}

	// The pool's own hooks must return by their deadlines, give or take
	// the slack: a start that failed rolls back within as long again.
	released := false
	releaseNow := func() {
		if !released {
			released = true
			select {
			case <-tr.release:
			default:
				close(tr.release)
			}
		}
	}
	if tr.poolStartBegan.Load() {
		select {
		case <-tr.poolStartDone:
		case <-time.After(2*cfg.startBudget + slack):
			tr.violate("pool-start-hang", "the pool's OnStart did not return %v after twice its budget %v", slack, cfg.startBudget)
			releaseNow()
			if !waitFor(tr.poolStartDone, slack) {
				tr.fatal = true
				return
			}
		}
	}
	if !tr.poolStartBegan.Load() && !tr.poolStopBegan.Load() {
		// The start deadline passed before fx reached the pool's OnStart,
		// so fx runs neither hook. Stop the pool as a rollback that
		// included it would, and check the rest.
		tr.count("fx-skipped-pool-hooks")
		tr.poolStopBegan.Store(true)
		go func() { _ = tr.callPoolStop(stopCtx) }()
	}
	if closed(tr.poolStartDone) && tr.poolStartErr == nil && !tr.poolStopBegan.Load() {
		// The pool started, but fx gave up on its OnStart (it returned
		// after its deadline, or just as fx's own wait ended) and will
		// never stop it: stop it by hand, as the app would have to.
		if !tr.lateStart {
			tr.count("fx-abandoned-started-pool")
		}
		ctx, cancel := context.WithTimeout(context.Background(), slack)
		tr.poolStopBegan.Store(true)
		go func() { _ = tr.callPoolStop(ctx) }()
		defer cancel()
	}
	tr.phase("stop")
	if tr.poolStopBegan.Load() {
		select {
		case <-tr.poolStopDone:
			tr.poolStopped = true
		case <-time.After(cfg.stopBudget + slack):
			tr.violate("pool-stop-hang", "the pool's stop did not return %v after its deadline %v; goroutines of the pool:\n%s", slack, cfg.stopBudget, poolStacks())
			releaseNow()
			if !waitFor(tr.poolStopDone, slack) {
				tr.fatal = true
				return
			}
		}
	}
	releaseNow()
	select {
	case <-allSubmitted:
	case <-time.After(slack):
		tr.violate("submitter-hang", "a submitter was still waiting %v after the pool stopped; app.Start: %v; pool OnStart began %v: %v; pool stop began %v: %v; waiting: %s",
			slack, startErr, tr.poolStartBegan.Load(), tr.poolStartErr, tr.poolStopBegan.Load(), tr.stopErr, tr.waiting())
		if !waitFor(allSubmitted, slack) {
			tr.fatal = true // goroutines are left behind: later trials would be meaningless
			return
		}
	}
	if !waitFor(demandDone, slack) {
		tr.violate("pool-stop-hang", "Pool.Stop did not return %v after the pool's OnStop did", slack)
		tr.fatal = true
		return
	}
	resizing.Wait() // its steps take at most 12 ms in all
	tr.phase("submitters")
	if err := goleak.Find(before); err != nil {
		tr.violate("goroutine-leak", "pool stop returned %v: %v; stats %+v; %v", tr.poolStopped, tr.stopErr, pool.Stats(), err)
		tr.fatal = true // the rest would race with what is left running
		return
	}
	tr.phase("goleak")
	tr.checkResources()
	tr.checkTasks(pool.Stats())
	tr.checkGroups()
	tr.checkAfterStop(pool.Stats())
	tr.checkAppResource()
}

// checkAppResource checks that no per-worker resource opened while the
// app-scoped one it takes was not open — but for the one constructor call
// that an opener the start gave up on may still make (see RELIABILITY.md):
// fx stops the app-scoped resources after a failed start without waiting
// for a start hook it abandoned, and the pool's rollback, bounded by the
// start's budget, may have to leave an opener behind too.
func (tr *trial) checkAppResource() {
	n := tr.openAfterApp.Load()
	switch {
	case n == 0 || tr.stopErr != nil || tr.hangFired():
	case tr.stopDuringStart:
	case tr.poolStartErr != nil && tr.maxOpenAfterApp() <= 1:
		tr.count("open-after-abandoned-start")
	default:
		tr.violate("open-without-app-resource", "%d per-worker resources opened while the app-scoped one was not open", n)
	}
}

// maxOpenAfterApp is the most resources one worker opened while the
// app-scoped one was not open.
func (tr *trial) maxOpenAfterApp() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	m := 0
	for _, n := range tr.openAfterAppBy {
		m = max(m, n)
	}
	return m
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// waitFor waits for ch to close, at most d.
func waitFor(ch <-chan struct{}, d time.Duration) bool {
	select {
	case <-ch:
		return true
	case <-time.After(d):
		return false
	}
}

// waiting describes the tasks whose submitters are still waiting.
func (tr *trial) waiting() string {
	var b strings.Builder
	for _, rec := range tr.tasks {
		if (rec.spec.via == viaDo || rec.spec.via == viaSubmit) && !rec.hasRes && rec.accepted != refusedTask {
			fmt.Fprintf(&b, "task %d (%v, %v, ran %d, dropped %d); ", rec.spec.id, rec.spec.via, rec.spec.kind, rec.ran.Load(), rec.dropped.Load())
		}
	}
	for g, gr := range tr.groups {
		if !gr.waited {
			fmt.Fprintf(&b, "group %d; ", g)
		}
	}
	return b.String()
}

// refused reports whether a submission was turned away: before the pool
// started (it takes no task before its OnStart) or once it began to stop.
func refused(err error) bool {
	return errors.Is(err, workerpool.ErrClosed) || errors.Is(err, workerpool.ErrNotStarted)
}

// submitter submits its tasks one after another, with its own context.
func submitter[R any](tr *trial, p *workerpool.Pool[R], s int) {
	sc := tr.cfg.subs[s]
	ctx := context.Background()
	if sc.ctx.hasValues() {
		ctx = context.WithValue(ctx, subKey{}, s)
	}
	if sc.ctx == ctxCancellable {
		c, cancel := context.WithCancelCause(ctx)
		t := time.AfterFunc(sc.cancelAfter, func() { cancel(errSubmitterGone) })
		defer cancel(errSubmitterGone) // tasks still queued will not run
		defer t.Stop()
		ctx = c
	}
	specs := sc.tasks
	for i := 0; i < len(specs); {
		if specs[i].via.grouped() {
			j := i
			for j < len(specs) && specs[j].group == specs[i].group {
				j++
			}
			runGroup(tr, p, ctx, specs[i:j])
			i = j
			continue
		}
		submitOne(tr, p, ctx, specs[i])
		i++
	}
}

// submitOne submits one task and, for Do and Submit, waits for its result.
func submitOne[R any](tr *trial, p *workerpool.Pool[R], ctx context.Context, s taskSpec) {
	rec := tr.tasks[s.id]
	fn := taskFn[R](tr, rec)
	// refusedOK reports whether err is an error a submission may fail
	// with: a refusal, or its context's end while it waited for room.
	refusedOK := func(err error) bool {
		return refused(err) || ctx.Err() != nil && errors.Is(err, ctx.Err())
	}
	switch s.via {
	case viaGo:
		err := p.Go(ctx, fn)
		rec.accepted = acceptedIf(err == nil)
		if err != nil && !refusedOK(err) {
			tr.violate("unexpected-submit-error", "Go: %v", err)
		}
	case viaTryGo:
		rec.accepted = acceptedIf(p.TryGo(fn))
	case viaDo:
		err := p.Do(ctx, fn)
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			rec.gaveUp = true // Do stopped waiting: the task may still run, or not
			break
		}
		rec.result, rec.hasRes = err, true
	case viaSubmit:
		f, err := workerpool.Submit(ctx, p, func(ctx context.Context, r R) (int, error) {
			return s.id, fn(ctx, r)
		})
		rec.accepted = acceptedIf(err == nil)
		if err != nil {
			if !refusedOK(err) {
				tr.violate("unexpected-submit-error", "Submit: %v", err)
			}
			break
		}
		// The future outlives its submitter's context: wait for the
		// outcome whatever it is.
		rec.val, rec.result = f.Wait(context.Background())
		rec.hasRes = true
	case viaGoReport:
		err := p.GoReport(ctx, fn, rec.report)
		rec.accepted = acceptedIf(err == nil)
		if err != nil && !refusedOK(err) {
			tr.violate("unexpected-submit-error", "GoReport: %v", err)
		}
	}
	if rec.accepted == accepted {
		tr.accepted.Add(1)
	}
}

// runGroup submits a group of tasks and waits for it.
func runGroup[R any](tr *trial, p *workerpool.Pool[R], ctx context.Context, specs []taskSpec) {
	g, gctx := p.Group(ctx)
	for _, s := range specs {
		rec := tr.tasks[s.id]
		fn := taskFn[R](tr, rec)
		if s.via == viaGroupTry {
			rec.accepted = acceptedIf(g.TryGo(fn))
		} else {
			g.Go(fn)
		}
	}
	err := g.Wait()
	gr := tr.groups[specs[0].group]
	gr.err, gr.waited, gr.ctxLive = err, true, gctx.Err() == nil
	tr.accepted.Add(int64(len(specs)))
}

// resizer resizes the pool as drawn, racing with the start, the
// submitters and the stop.
func resizer[R any](tr *trial, p *workerpool.Pool[R]) {
	for _, st := range tr.cfg.resizes {
		time.Sleep(st.after)
		err := p.Resize(st.n)
		switch {
		case tr.cfg.sizing == sizeElastic:
			if err == nil {
				tr.violate("elastic-resized", "Resize(%d) of an elastic pool returned nil", st.n)
			}
			tr.count("resize-elastic-refused")
		case err == nil:
			tr.count("resize")
			// Unless the pool stopped meanwhile (Workers is 0 then), its
			// capacity is the size just set.
			if c := p.Capacity(); c.Workers != 0 && (c.Workers != st.n || c.MaxWorkers != st.n) {
				tr.violate("capacity", "after Resize(%d), Capacity() = %+v", st.n, c)
			}
		case refused(err):
			tr.count("resize-refused")
		default:
			tr.violate("resize-error", "Resize(%d): %v", st.n, err)
		}
	}
}

// poolStacks returns the stacks of the goroutines that run the pool's
// code, for the report of a stop that hangs.
func poolStacks() string {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	var b strings.Builder
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "fxpool/workerpool.") || strings.Contains(g, "fxpool/internal/ring.") {
			b.WriteString(g)
			b.WriteString("\n\n")
		}
	}
	return b.String()
}
