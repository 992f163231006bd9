package workerpool_test

import (
	"testing"
	"time"

	"github.com/fxpool/fxpool/workerpool"
)

// TestAttack13DrainHandOffNeverLoses: the class of the bug just fixed (a
// Drain stop of a hand-off pool losing a task whose Go had returned nil),
// on every fire-and-forget API, queues 0–2, one or two workers, every stop
// kind, all under Drain with a 25 s budget: no accepted task may be dropped,
// and each must run exactly once.
func TestAttack13DrainHandOffNeverLoses(t *testing.T) {
	stress13(t, space13{
		workers:   []int{1, 1, 2},
		queues:    []int{0, 0, 1, 2},
		policies:  []workerpool.StopPolicy{workerpool.Drain},
		stopKinds: []int{stopPool, stopApp, stopPoolAndApp, stopTwoPool},
		budgets:   []time.Duration{25 * time.Second},
		apis:      [][]api13{{apiGo}, {apiTryGo}, {apiGoReport}, {apiSubmit}, {apiDo}, fireAPIs13},
		kinds:     [][]kind13{{kOK}},
		subs:      []int{1, 2, 3},
		perSub:    []int{4, 10, 30},
		stopAfter: []int{0, 1, 2, 5, 15},
	}, 4*time.Second, 5000)
}

// TestAttack13EveryPolicyExactlyOnce: every policy, stop kind, API and
// task outcome, queues 0–8, 1–8 workers, a quarter elastic, budgets long
// and short.
func TestAttack13EveryPolicyExactlyOnce(t *testing.T) {
	stress13(t, space13{
		workers:    []int{1, 2, 2, 8},
		queues:     []int{0, 1, 3, 8},
		elasticPct: 25,
		policies:   allPolicies13,
		stopKinds:  []int{stopPool, stopApp, stopPoolAndApp, stopTwoPool},
		budgets:    []time.Duration{25 * time.Second, 25 * time.Second, 25 * time.Second, 0, time.Millisecond},
		apis:       [][]api13{allAPIs13, fireAPIs13, {apiGo, apiTryGo}, {apiDo, apiGroup, apiMap}},
		kinds:      [][]kind13{{kOK}, allKinds13},
		subs:       []int{1, 2, 4},
		perSub:     []int{5, 20, 40},
		stopAfter:  []int{0, 3, 10, 30},
	}, 4*time.Second, 5000)
}

// TestAttack13RebuildsRacingStop: tasks that panic, call runtime.Goexit or
// return ErrBroken (each makes its worker rebuild, a Goexit on a successor
// goroutine), MaxTasksPerWorker recycling after every task or two, reopens
// that fail a third of the time, slow closes — all racing every stop.
func TestAttack13RebuildsRacingStop(t *testing.T) {
	stress13(t, space13{
		workers:     []int{1, 2, 4},
		queues:      []int{0, 1, 2, 6},
		elasticPct:  20,
		policies:    allPolicies13,
		stopKinds:   []int{stopPool, stopApp, stopPoolAndApp, stopTwoPool},
		budgets:     []time.Duration{25 * time.Second},
		apis:        [][]api13{allAPIs13, fireAPIs13},
		kinds:       [][]kind13{{kPanic, kGoexit, kBroken, kOK}, {kGoexit}, {kGoexit, kOK}},
		maxTasks:    []int{0, 1, 2},
		openFailPct: []int{0, 0, 30},
		slowClose:   true,
		subs:        []int{1, 2, 3},
		perSub:      []int{5, 15, 30},
		stopAfter:   []int{0, 2, 8, 20},
	}, 4*time.Second, 5000)
}

// TestAttack13ResizeRacingStop: Resize(1–6) in a loop on fixed pools, racing
// the submitters and every kind of stop.
func TestAttack13ResizeRacingStop(t *testing.T) {
	stress13(t, space13{
		workers:   []int{1, 2, 5},
		queues:    []int{0, 1, 3},
		policies:  allPolicies13,
		stopKinds: []int{stopPool, stopApp, stopPoolAndApp, stopTwoPool},
		budgets:   []time.Duration{25 * time.Second},
		apis:      [][]api13{allAPIs13, fireAPIs13, {apiGo}},
		kinds:     [][]kind13{{kOK}, allKinds13},
		resizePct: 100,
		maxTasks:  []int{0, 0, 1},
		subs:      []int{1, 2, 4},
		perSub:    []int{5, 20, 40},
		stopAfter: []int{0, 3, 10, 30},
	}, 4*time.Second, 5000)
}

// TestAttack13ElasticRacingStop: elastic pools (min 0–2, max 1–5, idle
// 50–550 µs, so that workers retire and grow again all the time) under
// every stop.
func TestAttack13ElasticRacingStop(t *testing.T) {
	stress13(t, space13{
		workers:    []int{1},
		queues:     []int{1, 2, 5},
		elasticPct: 100,
		policies:   allPolicies13,
		stopKinds:  []int{stopPool, stopApp, stopPoolAndApp, stopTwoPool},
		budgets:    []time.Duration{25 * time.Second},
		apis:       [][]api13{allAPIs13, fireAPIs13, {apiGo}, {apiDo}},
		kinds:      [][]kind13{{kOK}, allKinds13},
		maxTasks:   []int{0, 0, 1},
		subs:       []int{1, 2, 4},
		perSub:     []int{3, 10, 30},
		stopAfter:  []int{0, 1, 5, 20},
	}, 4*time.Second, 5000)
}

// TestAttack13SubmitterContextsRacingStop: GoReport and Submit whose
// context ends (with a cause) 0–200 µs after the submission, racing the
// stop's drop: each task is reported exactly once — run, NotRun with
// ErrClosed (and OnDropped), or NotRun with its submitter's cause (and not
// OnDropped) — and Stats.Dropped counts both kinds of not run.
func TestAttack13SubmitterContextsRacingStop(t *testing.T) {
	stress13(t, space13{
		workers:    []int{1, 2, 4},
		queues:     []int{0, 1, 4},
		elasticPct: 20,
		policies:   allPolicies13,
		stopKinds:  []int{stopPool, stopApp, stopPoolAndApp, stopTwoPool},
		budgets:    []time.Duration{25 * time.Second, 25 * time.Second, time.Millisecond},
		apis:       [][]api13{{apiGoReportCtx, apiSubmitCtx}, {apiGoReportCtx, apiGo, apiSubmitCtx, apiGoReport}},
		kinds:      [][]kind13{{kOK}, allKinds13},
		subs:       []int{1, 2, 4},
		perSub:     []int{5, 20, 40},
		stopAfter:  []int{0, 3, 10, 30},
	}, 4*time.Second, 5000)
}

// TestAttack13FeedersAndFailuresRacingStop: a feeder (AddFeeder) that
// feeds Go tasks until its stop, then hands in three last GoReport tasks
// from inside its stop (the pool must take them), and MaxRestarts(1–3)
// failing the pool under panicking tasks, racing every stop.
func TestAttack13FeedersAndFailuresRacingStop(t *testing.T) {
	stress13(t, space13{
		workers:     []int{1, 2, 4},
		queues:      []int{0, 1, 4},
		elasticPct:  20,
		policies:    allPolicies13,
		stopKinds:   []int{stopPool, stopApp, stopPoolAndApp, stopTwoPool},
		budgets:     []time.Duration{25 * time.Second},
		apis:        [][]api13{fireAPIs13, allAPIs13},
		kinds:       [][]kind13{{kOK}, allKinds13},
		maxRestarts: []int{0, 0, 1, 3},
		feederPct:   70,
		subs:        []int{1, 2},
		perSub:      []int{5, 20},
		stopAfter:   []int{0, 3, 10, 30},
	}, 4*time.Second, 5000)
}

// TestAttack13DrainDeadlineMidQueue: Drain (and DropQueued) stops whose
// budget (2–10 ms) runs out at two fifths while workers are still taking
// tasks of 100–400 µs off the queue: the drop timer races every take, and
// each accepted task must still either run or be reported, exactly once.
func TestAttack13DrainDeadlineMidQueue(t *testing.T) {
	stress13(t, space13{
		workers:    []int{1, 2, 4},
		queues:     []int{0, 1, 4, 16},
		elasticPct: 15,
		policies:   []workerpool.StopPolicy{workerpool.Drain, workerpool.Drain, workerpool.DropQueued},
		stopKinds:  []int{stopPool, stopApp, stopPoolAndApp, stopTwoPool},
		budgets:    []time.Duration{2 * time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond},
		apis:       [][]api13{fireAPIs13, {apiGo}, {apiGoReport, apiGoReportCtx}, allAPIs13},
		kinds:      [][]kind13{{kSlow}, {kSlow, kOK, kPanic, kGoexit}},
		subs:       []int{1, 2, 4},
		perSub:     []int{10, 30},
		stopAfter:  []int{5, 20, 40},
	}, 4*time.Second, 5000)
}
