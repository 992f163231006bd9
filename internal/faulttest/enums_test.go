package faulttest

import "fmt"

// The typed menus a trial is drawn from. Each prints as its name, so that a
// failing trial's printout reads "form=(T, cleanup, error)", not "form=2".

// closeKind says how node k's type closes: Tk has no Close method, Ek has
// Close() error and Xk has Close(context.Context) error.
type closeKind int

const (
	closeNone   closeKind = iota // Tk
	closeErr                     // Ek: Close() error
	closeCtxErr                  // Xk: Close(context.Context) error
	numCloseKinds
)

func (k closeKind) String() string {
	return enumName(k, "T (no Close)", "E (Close() error)", "X (Close(ctx) error)")
}

// ctorForm is what a per-worker constructor returns.
type ctorForm int

const (
	formT       ctorForm = iota // func(...) T
	formTErr                    // func(...) (T, error)
	formCleanup                 // func(...) (T, cleanup, error)
	numForms
)

func (f ctorForm) String() string { return enumName(f, "T", "(T, error)", "(T, cleanup, error)") }

// cleanupShape is the type of the cleanup a formCleanup constructor returns.
type cleanupShape int

const (
	shapePlain      cleanupShape = iota // func()
	shapeErr                            // func() error
	shapeCtx                            // func(context.Context) error
	shapeNamedPlain                     // stopFunc
	shapeNamedErr                       // closeFunc
	shapeNamedCtx                       // ctxCloseFunc
	shapeNil                            // a nil func: nothing to clean up
	numDrawnShapes  = shapeNil          // shapeNil is drawn apart
)

func (s cleanupShape) String() string {
	return enumName(s, "func()", "func() error", "func(ctx) error", "stopFunc", "closeFunc", "ctxCloseFunc", "nil")
}

// openFault is what a constructor does wrong.
type openFault int

const (
	openOK           openFault = iota
	openErr                    // returns an error
	openErrWithValue           // returns a value, a cleanup and an error: the pool must ignore both
	openPanic                  // panics
	openBlock                  // blocks until its context ends, then returns its cause
	numOpenFaults
)

func (f openFault) String() string {
	return enumName(f, "ok", "error", "error-with-value", "panic", "block")
}

// cleanupFault is what a cleanup (or Close method) does wrong.
type cleanupFault int

const (
	cleanupOK cleanupFault = iota
	cleanupErr
	cleanupPanic
	cleanupHang // until the trial ends, ignoring its context
)

func (f cleanupFault) String() string { return enumName(f, "ok", "error", "panic", "hang") }

// checkFault is what a resource's health check (resources.Check, run by
// CheckIdle) does wrong.
type checkFault int

const (
	checkNone  checkFault = iota // the node has no check
	checkOK                      // it has one that passes
	checkErr                     // it fails: the worker rebuilds
	checkPanic                   // it panics: a failed check
)

func (f checkFault) String() string { return enumName(f, "none", "ok", "error", "panic") }

// taskKind is what a task does.
type taskKind int

const (
	taskOK     taskKind = iota
	taskErr             // returns an error
	taskBroken          // returns an error wrapping resources.ErrBroken
	taskPanic           // panics
	taskGoexit          // calls runtime.Goexit: Panicked, workerpool.ErrGoexit
	taskBlock           // blocks until its context ends, then fails with the cause
	taskSlow            // sleeps a little, then succeeds
)

func (k taskKind) String() string {
	return enumName(k, "ok", "error", "broken", "panic", "goexit", "block", "slow")
}

// fails reports whether a task of this kind returns an error, panics or
// exits when it runs.
func (k taskKind) fails() bool { return k != taskOK && k != taskSlow }

// panics reports whether it panics or calls runtime.Goexit.
func (k taskKind) panics() bool { return k == taskPanic || k == taskGoexit }

// submitKind is how a task is submitted.
type submitKind int

const (
	viaGo       submitKind = iota // (*Pool).Go
	viaTryGo                      // (*Pool).TryGo
	viaDo                         // (*Pool).Do
	viaSubmit                     // workerpool.Submit and Future.Wait
	viaGoReport                   // (*Pool).GoReport: an Outcome reported once
	viaGroup                      // (*Group).Go, on a group of the submitter's
	viaGroupTry                   // (*Group).TryGo
)

func (v submitKind) String() string {
	return enumName(v, "Go", "TryGo", "Do", "Submit", "GoReport", "Group.Go", "Group.TryGo")
}

// grouped reports whether the task belongs to a Group.
func (v submitKind) grouped() bool { return v == viaGroup || v == viaGroupTry }

// bound reports whether the task's context ends with its submitter's.
func (v submitKind) bound() bool { return v != viaGo && v != viaTryGo }

// reportsToHandler reports whether the task's errors go to the ErrorHandler.
func (v submitKind) reportsToHandler() bool { return v == viaGo || v == viaTryGo }

// ctxKind is the context a submitter submits with.
type ctxKind int

const (
	ctxBackground  ctxKind = iota // context.Background()
	ctxValues                     // a value, never ends
	ctxCancellable                // a value, and ends (cause errSubmitterGone) at a drawn moment
)

func (k ctxKind) String() string { return enumName(k, "background", "values", "cancellable") }

// hasValues reports whether the submitter's context carries subKey.
func (k ctxKind) hasValues() bool { return k != ctxBackground }

// submitTiming is when the submitters begin, relative to app.Start.
type submitTiming int

const (
	submitAfterStart  submitTiming = iota
	submitBeforeStart              // refused with ErrNotStarted until the pool's OnStart
	submitDuringStart
)

func (s submitTiming) String() string {
	return enumName(s, "after-start", "before-start", "during-start")
}

// sizing is how the pool is sized.
type sizing int

const (
	sizeFixed   sizing = iota // Workers(n), resized at run time if resizes are drawn
	sizeElastic               // Elastic(min, max, idle)
)

func (s sizing) String() string { return enumName(s, "fixed", "elastic") }

// stopVia is who begins the pool's stop.
type stopVia int

const (
	stopByApp    stopVia = iota // app.Stop runs the pool's OnStop with OnStop's policy
	stopOnDemand                // (*Pool).Stop(ctx, policy), then app.Stop, whose OnStop waits for it
)

func (s stopVia) String() string { return enumName(s, "app.Stop", "Pool.Stop") }

// invalidKind is how a trial's configuration is broken on purpose.
type invalidKind int

const (
	validConfig     invalidKind = iota
	invalidCycle                // a dependency cycle
	invalidDup                  // two constructors of one type
	invalidElasticQ             // Elastic with QueueSize(0)
)

func (k invalidKind) String() string {
	return enumName(k, "valid", "cycle", "duplicate", "elastic-queue0")
}

// want is what fx.New's error must say, besides the pool's name.
func (k invalidKind) want() string {
	return enumName(k, "", "cycle", "two constructors of one type", "needs a queue")
}

// via is how a resource was closed.
type via int

const (
	viaCleanup     via = iota // the explicit cleanup the constructor returned
	viaCloseMethod            // the Close method, called by the pool
)

func (h via) String() string { return enumName(h, "cleanup", "Close method") }

// enumName names v from names, or says it is out of range.
func enumName[E ~int](v E, names ...string) string {
	if v >= 0 && int(v) < len(names) {
		return names[v]
	}
	return fmt.Sprintf("%T(%d)", v, int(v))
}
