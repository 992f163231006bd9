package faulttest

// The generator: everything a trial does is drawn from its seed here, into
// a trialCfg that the runner (runner_test.go) drives and prints on failure.

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"time"

	"github.com/fxpool/fxpool/workerpool"
)

// nodeCfg is one per-worker constructor.
type nodeCfg struct {
	closer   closeKind
	form     ctorForm
	shape    cleanupShape
	withCtx  bool
	inStruct bool // parameters in an fx.In struct
	usesApp  bool // takes the app-scoped *AppRes from the fx graph
	deps     []int
	openP    float64 // probability that an open attempt fails with openKind
	openKind openFault
	cleanP   float64
	cleanKnd cleanupFault
	check    checkFault // a resources.Check, run by CheckIdle
	checkP   float64    // probability that a check run fails with check
}

func (n nodeCfg) typ(k int) reflect.Type { return menu[k][n.closer] }

// taskSpec is one task: what it does and how it is submitted.
type taskSpec struct {
	id    int
	kind  taskKind
	via   submitKind
	sub   int // its submitter
	group int // its group, for viaGroup and viaGroupTry; -1 otherwise
}

// subCfg is one submitter.
type subCfg struct {
	ctx         ctxKind
	cancelAfter time.Duration // ctxCancellable: when its context ends, after it begins
	tasks       []taskSpec
}

// resizeStep is one runtime Resize of the pool.
type resizeStep struct {
	after time.Duration // since the previous step
	n     int
}

// trialCfg is everything a seed decides.
type trialCfg struct {
	seed     uint64
	nodes    []nodeCfg
	rootOnly bool // the task parameter needs only N0 and what it depends on

	sizing                 sizing
	workers                int // sizeFixed
	elasticMin, elasticMax int // sizeElastic
	idle                   time.Duration
	checkIdle              time.Duration // 0: no CheckIdle
	queue                  int           // -1: default
	startConc              int           // 0: default
	maxTasks               int
	maxRestarts            int
	maxAge                 time.Duration
	policy                 workerpool.StopPolicy // OnStop's

	stopVia      stopVia
	demandPolicy workerpool.StopPolicy // Pool.Stop's, for stopOnDemand
	startBudget  time.Duration
	stopBudget   time.Duration
	resizes      []resizeStep
	// resizeDuringStart: the first resizes race with the start (and are
	// refused with ErrNotStarted) instead of following it.
	resizeDuringStart bool

	subs       []subCfg
	submitWhen submitTiming
	stopAfter  int // accepted tasks before Stop is called
	stopDelay  time.Duration
	invalid    invalidKind
	ntasks     int
	ngroups    int
}

// pick draws one of choices, each weighted.
func pick[T any](rng *rand.Rand, choices ...weighted[T]) T {
	total := 0
	for _, c := range choices {
		total += c.w
	}
	x := rng.IntN(total)
	for _, c := range choices {
		if x < c.w {
			return c.v
		}
		x -= c.w
	}
	panic("unreachable")
}

type weighted[T any] struct {
	w int
	v T
}

func w[T any](weight int, v T) weighted[T] { return weighted[T]{weight, v} }

// generate draws a trial from its seed.
func generate(seed uint64) *trialCfg {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	c := &trialCfg{seed: seed, queue: -1}
	n := 1 + rng.IntN(8)
	c.nodes = make([]nodeCfg, n)
	openFaulty := rng.Float64() < 0.35
	cleanFaulty := rng.Float64() < 0.45
	for k := range c.nodes {
		nd := &c.nodes[k]
		nd.closer = closeKind(rng.IntN(int(numCloseKinds)))
		nd.form = ctorForm(rng.IntN(int(numForms)))
		nd.shape = cleanupShape(rng.IntN(int(numDrawnShapes)))
		if nd.form == formCleanup && nd.closer == closeNone && rng.IntN(8) == 0 {
			nd.shape = shapeNil
		}
		nd.withCtx = rng.IntN(2) == 0
		nd.inStruct = rng.IntN(3) == 0
		nd.usesApp = rng.IntN(4) == 0
		for j := k + 1; j < n; j++ { // a DAG: edges go to higher nodes
			if rng.Float64() < 0.4 {
				nd.deps = append(nd.deps, j)
			}
		}
		if openFaulty && rng.IntN(n) < 2 {
			nd.openP = []float64{0.02, 0.1, 0.3, 1}[rng.IntN(4)]
			nd.openKind = openFault(1 + rng.IntN(int(numOpenFaults)-1))
		}
		if cleanFaulty && rng.IntN(n) < 3 {
			nd.cleanP = []float64{0.1, 0.5, 1}[rng.IntN(3)]
			nd.cleanKnd = pick(rng, w(2, cleanupErr), w(2, cleanupPanic), w(1, cleanupHang))
		}
		if rng.IntN(10) < 3 {
			nd.check = pick(rng, w(5, checkOK), w(3, checkErr), w(2, checkPanic))
			nd.checkP = []float64{0.05, 0.3, 1}[rng.IntN(3)]
		}
	}
	c.rootOnly = rng.IntN(3) == 0

	c.workers = 1 + rng.IntN(16)
	if rng.IntN(10) < 7 {
		c.queue = rng.IntN(33)
	}
	if rng.IntN(5) == 0 {
		c.sizing = sizeElastic
		c.elasticMin = rng.IntN(4)
		c.elasticMax = c.elasticMin + 1 + rng.IntN(12)
		c.idle = []time.Duration{500 * time.Microsecond, 2 * time.Millisecond, 10 * time.Millisecond, 50 * time.Millisecond}[rng.IntN(4)]
		c.workers = c.elasticMax
		if c.queue == 0 {
			if rng.IntN(4) == 0 {
				c.invalid = invalidElasticQ
			} else {
				c.queue = 1 + rng.IntN(32)
			}
		}
	}
	if rng.IntN(4) == 0 {
		c.checkIdle = []time.Duration{200 * time.Microsecond, time.Millisecond, 5 * time.Millisecond}[rng.IntN(3)]
	}
	if rng.IntN(10) < 3 {
		c.startConc = 1 + rng.IntN(c.workers)
	}
	if rng.IntN(4) == 0 {
		c.maxTasks = 1 + rng.IntN(10)
	}
	if rng.IntN(5) == 0 {
		c.maxRestarts = 1 + rng.IntN(5)
	}
	if rng.IntN(10) == 0 {
		c.maxAge = time.Duration(1+rng.IntN(5)) * time.Millisecond
	}
	policies := []weighted[workerpool.StopPolicy]{w(5, workerpool.Drain), w(3, workerpool.Cancel), w(2, workerpool.DropQueued)}
	c.policy = pick(rng, policies...)
	if rng.IntN(10) < 3 {
		c.stopVia = stopOnDemand
		c.demandPolicy = pick(rng, policies...)
	}
	c.startBudget = 30 * time.Second
	if rng.IntN(10) == 0 {
		c.startBudget = time.Duration(rng.IntN(20_000)) * time.Microsecond
	}
	switch x := rng.IntN(100); {
	case x < 10:
		c.stopBudget = 0
	case x < 55:
		c.stopBudget = time.Duration(1+rng.IntN(20)) * time.Millisecond
	case x < 95:
		c.stopBudget = time.Duration(20+rng.IntN(130)) * time.Millisecond
	default:
		c.stopBudget = time.Second
	}
	// Resizes: a fixed pool's are obeyed; an elastic pool's are refused.
	if c.sizing == sizeFixed && rng.IntN(10) < 4 || c.sizing == sizeElastic && rng.IntN(10) == 0 {
		for range 1 + rng.IntN(4) {
			c.resizes = append(c.resizes, resizeStep{
				after: time.Duration(rng.IntN(3000)) * time.Microsecond,
				n:     1 + rng.IntN(16),
			})
		}
		c.resizeDuringStart = rng.IntN(4) == 0
	}

	nsubs := 1 + rng.IntN(4)
	c.subs = make([]subCfg, nsubs)
	for s := range c.subs {
		sc := &c.subs[s]
		sc.ctx = pick(rng, w(4, ctxBackground), w(3, ctxValues), w(3, ctxCancellable))
		if sc.ctx == ctxCancellable {
			sc.cancelAfter = time.Duration(rng.IntN(5000)) * time.Microsecond
		}
	}
	want := rng.IntN(150)
	for c.ntasks < want {
		s := rng.IntN(nsubs)
		kind := func() taskKind {
			return pick(rng, w(55, taskOK), w(9, taskErr), w(7, taskBroken), w(7, taskPanic), w(5, taskGoexit), w(5, taskBlock), w(12, taskSlow))
		}
		if rng.IntN(12) == 0 { // a group of 1–5 tasks
			g := c.ngroups
			c.ngroups++
			for range 1 + rng.IntN(5) {
				via := pick(rng, w(4, viaGroup), w(1, viaGroupTry))
				c.subs[s].tasks = append(c.subs[s].tasks, taskSpec{id: c.ntasks, kind: kind(), via: via, sub: s, group: g})
				c.ntasks++
			}
			continue
		}
		via := pick(rng, w(3, viaGo), w(1, viaTryGo), w(2, viaDo), w(2, viaSubmit), w(2, viaGoReport))
		c.subs[s].tasks = append(c.subs[s].tasks, taskSpec{id: c.ntasks, kind: kind(), via: via, sub: s, group: -1})
		c.ntasks++
	}
	c.submitWhen = pick(rng, w(3, submitAfterStart), w(1, submitBeforeStart), w(1, submitDuringStart))
	if c.ntasks > 0 {
		c.stopAfter = rng.IntN(c.ntasks + 1)
	}
	c.stopDelay = time.Duration(rng.IntN(2000)) * time.Microsecond
	if c.invalid == validConfig {
		switch x := rng.IntN(100); {
		case x < 3 && n >= 2:
			c.invalid = invalidCycle
		case x < 5:
			c.invalid = invalidDup
		}
	}
	return c
}

// needed marks the nodes that the task parameter needs.
func (c *trialCfg) needed() []bool {
	need := make([]bool, len(c.nodes))
	if !c.rootOnly {
		for i := range need {
			need[i] = true
		}
		return need
	}
	var mark func(int)
	mark = func(k int) {
		if need[k] {
			return
		}
		need[k] = true
		for _, d := range c.nodes[k].deps {
			mark(d)
		}
	}
	mark(0)
	return need
}

func (c *trialCfg) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed=%#x sizing=%v", c.seed, c.sizing)
	if c.sizing == sizeElastic {
		fmt.Fprintf(&b, " elastic=(%d,%d,%v)", c.elasticMin, c.elasticMax, c.idle)
	} else {
		fmt.Fprintf(&b, " workers=%d", c.workers)
	}
	fmt.Fprintf(&b, " queue=%d checkIdle=%v startConc=%d maxTasks=%d maxRestarts=%d maxAge=%v onStop=%v stopVia=%v",
		c.queue, c.checkIdle, c.startConc, c.maxTasks, c.maxRestarts, c.maxAge, c.policy, c.stopVia)
	if c.stopVia == stopOnDemand {
		fmt.Fprintf(&b, "(%v)", c.demandPolicy)
	}
	fmt.Fprintf(&b, " startBudget=%v stopBudget=%v rootOnly=%v submit=%v stopAfter=%d stopDelay=%v tasks=%d groups=%d invalid=%v\n",
		c.startBudget, c.stopBudget, c.rootOnly, c.submitWhen, c.stopAfter, c.stopDelay, c.ntasks, c.ngroups, c.invalid)
	if len(c.resizes) > 0 {
		fmt.Fprintf(&b, "  resizes (during start: %v):", c.resizeDuringStart)
		for _, r := range c.resizes {
			fmt.Fprintf(&b, " +%v→%d", r.after, r.n)
		}
		b.WriteByte('\n')
	}
	for k, n := range c.nodes {
		fmt.Fprintf(&b, "  N%d %v form=%v shape=%v ctx=%v inStruct=%v app=%v deps=%v open=%v@%.2f cleanup=%v@%.2f check=%v@%.2f\n",
			k, n.closer, n.form, n.shape, n.withCtx, n.inStruct, n.usesApp, n.deps, n.openKind, n.openP, n.cleanKnd, n.cleanP, n.check, n.checkP)
	}
	for s, sc := range c.subs {
		fmt.Fprintf(&b, "  submitter %d ctx=%v", s, sc.ctx)
		if sc.ctx == ctxCancellable {
			fmt.Fprintf(&b, "(ends after %v)", sc.cancelAfter)
		}
		b.WriteString(":")
		for _, t := range sc.tasks {
			fmt.Fprintf(&b, " %d:%v/%v", t.id, t.via, t.kind)
			if t.group >= 0 {
				fmt.Fprintf(&b, "@g%d", t.group)
			}
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// unit is a deterministic draw in [0, 1) for one decision of one trial, so
// that a replayed seed makes the same decisions for the same worker,
// generation and attempt whatever the interleaving.
func unit(seed uint64, parts ...int) float64 {
	h := seed
	for _, p := range parts {
		h ^= uint64(p) + 0x9e3779b97f4a7c15 + h<<6 + h>>2
		h = splitmix(h)
	}
	return float64(h>>11) / (1 << 53)
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}
