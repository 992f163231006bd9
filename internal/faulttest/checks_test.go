package faulttest

// The checks: once every goroutine of a trial has ended, each guarantee of
// the lifecycle contract is checked against what the recorder saw. Checks
// made while the trial runs (a task given a closed resource, a double
// close...) live where they are observed: tasks_test.go, recorder_test.go,
// fxadapter_test.go.

import (
	"context"
	"errors"

	"github.com/fxpool/fxpool/workerpool"
)

// checkResources checks, once every goroutine of the trial has ended, the
// resource guarantees.
func (tr *trial) checkResources() {
	tr.mu.Lock()
	all := append([]*res(nil), tr.all...)
	tr.mu.Unlock()
	needed := tr.cfg.needed()
	byWorkerGen := map[[2]int][]*res{}
	for _, r := range all {
		n := r.closes.Load()
		switch {
		case r.openFailed || !r.hasCleanup:
			// checked when it closed
		case n == 0:
			tr.violate("never-closed", "%v opened but never closed", r)
		}
		if !needed[r.node] {
			tr.violate("opened-unneeded", "%v opened though the task parameter does not need it", r)
		}
		if !r.openFailed {
			byWorkerGen[[2]int{r.worker, r.gen}] = append(byWorkerGen[[2]int{r.worker, r.gen}], r)
		}
		if r.closes.Load() != 1 || r.openFailed {
			continue
		}
		// Each resource closes after every one that depends on it: its
		// transitive dependencies close after it.
		for _, d := range transitive(r) {
			if d.hasCleanup && d.closes.Load() == 1 && d.closeStart.Load() < r.closeEnd.Load() {
				tr.violate("close-order", "%v closed before %v, which depends on it", d, r)
			}
		}
	}
	// A worker's generations never overlap: a new one opens after the
	// previous one has closed.
	for key, rs := range byWorkerGen {
		for _, r := range rs {
			for prevGen := 0; prevGen < key[1]; prevGen++ {
				for _, old := range byWorkerGen[[2]int{key[0], prevGen}] {
					if old.hasCleanup && old.closes.Load() == 1 && old.closeEnd.Load() > r.openSeq {
						tr.violate("generations-overlap", "%v opened before %v had closed", r, old)
					}
				}
			}
		}
	}
	if tr.app != nil && tr.stopErr == nil && tr.poolStopped && !tr.hangFired() {
		appClosed := tr.app.closedSeq.Load()
		for _, r := range all {
			if e := r.closeEnd.Load(); e != 0 && appClosed != 0 && e > appClosed {
				tr.violate("closed-after-app-resource", "%v closed after the app-scoped resource it may use", r)
			}
		}
	}
}

func (tr *trial) hangFired() bool {
	tr.stats.mu.Lock()
	defer tr.stats.mu.Unlock()
	return tr.stats.m["cleanup-hang"] > 0
}

func transitive(r *res) []*res {
	seen := map[*res]bool{}
	var out []*res
	var walk func(*res)
	walk = func(x *res) {
		for _, d := range x.deps {
			if !seen[d] {
				seen[d] = true
				out = append(out, d)
				walk(d)
			}
		}
	}
	walk(r)
	return out
}

// checkTasks checks that every accepted task ran or was reported as not
// run, exactly once, and that submitters were told the truth.
func (tr *trial) checkTasks(st workerpool.Stats) {
	var ran, dropped, droppedGo, failed, panicked, goexitGo int64
	for _, rec := range tr.tasks {
		s := rec.spec
		id, r, d := s.id, rec.ran.Load(), rec.dropped.Load()
		ran += int64(r)
		dropped += int64(d)
		if r == 1 && s.kind.fails() {
			failed++
		}
		if r == 1 && s.kind.panics() {
			panicked++
		}
		if r+d > 1 {
			tr.violate("ran-and-dropped", "task %d ran %d times and was reported not run %d times", id, r, d)
		}
		if rec.accepted == refusedTask && r+d != 0 {
			tr.violate("refused-task-ran", "task %d (%v) was refused, but ran %d, dropped %d", id, s.via, r, d)
		}
		tr.checkBlockCause(rec)
		h := rec.handled.Load()
		if !s.via.reportsToHandler() {
			if h != 0 {
				tr.violate("error-handler", "task %d (%v): ErrorHandler got its error %d times, want none", id, s.via, h)
			}
		}
		switch s.via {
		case viaGo, viaTryGo:
			if rec.accepted == accepted && r+d != 1 {
				tr.violate("task-lost", "task %d (%v) was accepted, but neither ran nor was reported", id, s.via)
			}
			droppedGo += int64(d)
			if r == 1 && s.kind == taskGoexit {
				goexitGo++
			}
			wantHandled := int32(0)
			if r == 1 && s.kind.fails() && s.kind != taskGoexit {
				wantHandled = 1
			}
			if h != wantHandled {
				tr.violate("error-handler", "task %d (%v, %v) ran %d: ErrorHandler got its error %d times, want %d", id, s.via, s.kind, r, h, wantHandled)
			}
		case viaDo, viaSubmit:
			switch {
			case rec.accepted == refusedTask, rec.gaveUp:
			case !rec.hasRes:
				tr.violate("no-result", "task %d (%v): the submitter got no result", id, s.via)
			default:
				tr.checkResult(rec, r, d)
			}
		case viaGoReport:
			tr.checkReport(rec, r, d)
		}
	}
	if got := tr.notRunGo.Load(); got != droppedGo {
		tr.violate("not-run-reports", "ErrorHandler got ErrClosed %d times, but %d Go/TryGo tasks were dropped", got, droppedGo)
	}
	if got := tr.goexitHandled.Load(); got != goexitGo {
		tr.violate("error-handler", "ErrorHandler got ErrGoexit %d times, but %d Go/TryGo tasks called runtime.Goexit", got, goexitGo)
	}
	if got := tr.droppedCalls.Load(); got != dropped {
		tr.violate("on-dropped", "OnDropped called %d times, %d tasks recorded it", got, dropped)
	}
	// Stats.Dropped counts what OnDropped saw and the tasks whose
	// submitter's context ended while they were queued; every accepted
	// task ran or was dropped. Some acceptances are unknown: a Do returns
	// its context's error whether or not its task was queued.
	var known, unknown int64
	for _, rec := range tr.tasks {
		switch rec.accepted {
		case accepted:
			known++
		case refusedTask:
		default: // Do, and submissions that record no acceptance
			unknown++
		}
	}
	if st.Dropped < uint64(dropped) {
		tr.violate("stats-dropped", "Stats.Dropped = %d, but OnDropped saw %d", st.Dropped, dropped)
	}
	if n := int64(st.Done + st.Dropped); n < known || n > known+unknown {
		tr.violate("stats-accounted", "Stats.Done + Dropped = %d + %d, want from %d accepted tasks to %d with those whose acceptance is unknown", st.Done, st.Dropped, known, known+unknown)
	}
	if st.Done != uint64(ran) {
		tr.violate("stats-done", "Stats.Done = %d, %d tasks ran", st.Done, ran)
	}
	if st.Failed != uint64(failed) || st.Panics != uint64(panicked) {
		tr.violate("stats-failed", "Stats.Failed = %d, Panics = %d; %d tasks ran and failed, %d of them panicked or exited", st.Failed, st.Panics, failed, panicked)
	}
	tr.stats.add("tasks-ran", ran)
	tr.stats.add("tasks-reported-not-run", dropped)
	tr.stats.add("tasks-accepted", tr.accepted.Load())
}

// checkBlockCause checks the cause with which a blocking task's context
// ended: the pool's stop (ErrClosed), or, for a task whose context ends
// with its submitter's, that submitter leaving; a group's, any failure of
// the group. A task of Go or TryGo does not end with its submitter.
func (tr *trial) checkBlockCause(rec *taskRec) {
	cause := rec.blockCause
	if rec.ran.Load() == 0 || rec.spec.kind != taskBlock {
		return
	}
	switch {
	case cause == nil:
		tr.violate("task-context-cause", "task %d (%v): its context ended without a cause", rec.spec.id, rec.spec.via)
	case rec.spec.via.grouped():
	case errors.Is(cause, workerpool.ErrClosed):
	case errors.Is(cause, errSubmitterGone) && rec.spec.via.bound():
		tr.count("task-ended-with-submitter")
	default:
		tr.violate("task-context-cause", "task %d (%v): its context ended with cause %v", rec.spec.id, rec.spec.via, cause)
	}
}

// notRunBySubmitter reports whether err tells that the task did not run
// because its submitter's context ended first, as it may for a submitter
// whose context ends.
func (tr *trial) notRunBySubmitter(rec *taskRec, err error) bool {
	return tr.cfg.subs[rec.spec.sub].ctx == ctxCancellable && errors.Is(err, errSubmitterGone)
}

// checkResult checks what Do or Future.Wait returned.
func (tr *trial) checkResult(rec *taskRec, r, d int32) {
	id, err := rec.spec.id, rec.result
	switch {
	case d == 1:
		if !errors.Is(err, workerpool.ErrClosed) {
			tr.violate("wrong-result", "task %d (%v) was dropped, its submitter got %v, want ErrClosed", id, rec.spec.via, err)
		}
		return
	case r == 0 && tr.notRunBySubmitter(rec, err):
		tr.count("not-run-submitter-gone")
		return
	case r == 0:
		if !refused(err) {
			tr.violate("task-lost", "task %d (%v) neither ran nor was reported; its submitter got %v", id, rec.spec.via, err)
		}
		return
	}
	if !tr.explains(rec, err) || rec.spec.via == viaSubmit && !rec.spec.kind.fails() && rec.val != id {
		tr.violate("wrong-result", "task %d (%v, %v) ran, its submitter got %v, %d", id, rec.spec.via, rec.spec.kind, err, rec.val)
	}
}

// explains reports whether err is the error of rec's task, which ran.
func (tr *trial) explains(rec *taskRec, err error) bool {
	var te *taskError
	var pe *workerpool.PanicError
	switch rec.spec.kind {
	case taskOK, taskSlow:
		return err == nil
	case taskPanic:
		return errors.As(err, &pe) && pe.Value == (taskPanicValue{rec.spec.id})
	case taskGoexit:
		return errors.Is(err, workerpool.ErrGoexit)
	default:
		return errors.As(err, &te) && te.id == rec.spec.id
	}
}

// wantOutcome is the Outcome of a task of kind k that ran.
func wantOutcome(k taskKind) workerpool.Outcome {
	switch {
	case !k.fails():
		return workerpool.Succeeded
	case k.panics():
		return workerpool.Panicked
	}
	return workerpool.Failed
}

// checkReport checks the outcome GoReport reported: exactly once for an
// accepted task, never for a refused one, and consistent with what
// happened to it.
func (tr *trial) checkReport(rec *taskRec, r, d int32) {
	id := rec.spec.id
	rec.mu.Lock()
	n, o, err := rec.reports, rec.outcome, rec.outcomeErr
	rec.mu.Unlock()
	switch {
	case rec.accepted == refusedTask:
		if n != 0 {
			tr.violate("report-of-refused", "task %d (GoReport) was refused, but reported %d times", id, n)
		}
		return
	case n != 1:
		tr.violate("report-count", "task %d (GoReport) reported %d times, want once (ran %d, dropped %d)", id, n, r, d)
		return
	}
	tr.count("outcome-" + o.String())
	switch {
	case d == 1:
		if o != workerpool.NotRun || !errors.Is(err, workerpool.ErrClosed) {
			tr.violate("wrong-outcome", "task %d (GoReport) was dropped, reported %v, %v; want not run, ErrClosed", id, o, err)
		}
	case r == 1:
		if o != wantOutcome(rec.spec.kind) || !tr.explains(rec, err) {
			tr.violate("wrong-outcome", "task %d (GoReport, %v) ran, reported %v, %v", id, rec.spec.kind, o, err)
		}
	case o == workerpool.NotRun && tr.notRunBySubmitter(rec, err):
		tr.count("not-run-submitter-gone")
	default:
		tr.violate("wrong-outcome", "task %d (GoReport) neither ran nor went to OnDropped, reported %v, %v", id, o, err)
	}
}

// checkGroups checks what each group's Wait returned: nil only if every
// task submitted to it ran and succeeded, else an error that one of them,
// the pool or the group's context explains.
func (tr *trial) checkGroups() {
	for g, gr := range tr.groups {
		if !gr.waited {
			tr.violate("no-result", "group %d: Wait never returned", g)
			continue
		}
		if gr.ctxLive {
			tr.violate("group-context", "group %d: its context had not ended when Wait returned", g)
		}
		if gr.err == nil {
			tr.count("group-ok")
			for _, rec := range gr.tasks {
				r, d := rec.ran.Load(), rec.dropped.Load()
				if rec.accepted == refusedTask {
					continue
				}
				if r != 1 || rec.spec.kind.fails() {
					tr.violate("group-error-lost", "group %d: Wait returned nil, but task %d (%v) ran %d, dropped %d", g, rec.spec.id, rec.spec.kind, r, d)
				}
			}
			continue
		}
		tr.count("group-failed")
		explained := false
		for _, rec := range gr.tasks {
			if rec.ran.Load() == 1 && rec.spec.kind.fails() && tr.explains(rec, gr.err) {
				explained = true
			}
		}
		cancellable := tr.cfg.subs[gr.sub].ctx == ctxCancellable
		switch {
		case explained:
		case refused(gr.err):
		case cancellable && (errors.Is(gr.err, errSubmitterGone) || errors.Is(gr.err, context.Canceled)):
		default:
			tr.violate("group-error", "group %d: Wait returned %v, which none of its tasks, the pool or its context explains", g, gr.err)
		}
	}
}

// checkAfterStop checks, when the pool's stop returned nil, that nothing
// ran after it and that Stats counts nothing left.
func (tr *trial) checkAfterStop(st workerpool.Stats) {
	if !tr.poolStopped || tr.stopErr != nil {
		return
	}
	tr.count("stopped-cleanly")
	end := tr.stopReturnSeq.Load()
	for _, rec := range tr.tasks {
		if b := rec.began.Load(); b > end {
			tr.violate("ran-after-stop", "task %d (%v) began after the pool's stop returned nil", rec.spec.id, rec.spec.via)
		}
	}
	if st.Workers != 0 || st.Busy != 0 || st.Queued != 0 || st.Opening != 0 || st.Closing != 0 {
		tr.violate("stats-after-stop", "after a clean stop, Stats = %+v: want no workers, busy, queued, opening or closing", st)
	}
}
