package plan_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/fxpool/fxpool/hooks"
	"github.com/fxpool/fxpool/internal/plan"
	"github.com/fxpool/fxpool/resources"
	"go.uber.org/fx"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// journal records what constructors and cleanups did, in order.
type journal struct {
	mu     sync.Mutex
	events []string
}

func (j *journal) add(format string, args ...any) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.events = append(j.events, fmt.Sprintf(format, args...))
}

func (j *journal) String() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return strings.Join(j.events, ", ")
}

// with returns the events that start with verb, in order, without it.
func (j *journal) with(verb string) []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []string
	for _, e := range j.events {
		if what, ok := strings.CutPrefix(e, verb+" "); ok {
			out = append(out, what)
		}
	}
	return out
}

// Per-worker resources of the tests; DB and Cache come from the fx graph.
type (
	A struct {
		j  *journal
		id int
	}
	B     struct{ a *A }
	C     struct{ b *B }
	D     struct{ b, c any }
	DB    struct{ dsn string }
	Cache struct{}
)

func newPlainA() *A { return &A{} }

// Closer and CtxCloser are closed automatically.
type (
	Closer struct {
		j   *journal
		err error
	}
	CtxCloser struct{ j *journal }
)

func (c *Closer) Close() error {
	c.j.add("close Closer")
	return c.err
}

func (c *CtxCloser) Close(ctx context.Context) error {
	c.j.add("close CtxCloser %v", ctx.Value(ctxKey{}))
	return nil
}

type ctxKey struct{}

// Named cleanup types, as a library might declare them.
type (
	stopFunc     func()
	shutdownFunc func(context.Context) error
)

// worker0 is the worker most tests open for.
var worker0 = resources.Worker{Pool: "test", ID: 0}

// openCtx and closeCtx carry a value that constructors and cleanups report.
func openCtx(t *testing.T) context.Context {
	return context.WithValue(t.Context(), ctxKey{}, "open-ctx")
}

func closeCtx(t *testing.T) context.Context {
	return context.WithValue(t.Context(), ctxKey{}, "close-ctx")
}

// zeroExt gives the zero value of each external value: what fx gives an
// optional value that is absent.
func zeroExt[R any](p *plan.Plan[R]) []reflect.Value {
	var ext []reflect.Value
	for _, n := range p.Needs() {
		ext = append(ext, reflect.New(n.In).Elem())
	}
	return ext
}

func mustPlan[R any](t *testing.T, decls ...resources.Declaration) *plan.Plan[R] {
	t.Helper()
	p, err := plan.New[R](decls...)
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	return p
}

func TestOpenConstructorForms(t *testing.T) {
	errClose := errors.New("close failed")
	tests := []struct {
		name         string
		give         func(j *journal) any // a constructor of *A
		wantEvents   string               // after Open and Close
		wantCloseErr error
	}{
		{
			name:       "Value",
			give:       func(j *journal) any { return func() *A { j.add("open A"); return &A{j: j} } },
			wantEvents: "open A",
		},
		{
			name: "ValueAndError",
			give: func(j *journal) any {
				return func() (*A, error) { j.add("open A"); return &A{j: j}, nil }
			},
			wantEvents: "open A",
		},
		{
			name: "CleanupFunc",
			give: func(j *journal) any {
				return func() (*A, func(), error) {
					j.add("open A")
					return &A{j: j}, func() { j.add("close A") }, nil
				}
			},
			wantEvents: "open A, close A",
		},
		{
			name: "CleanupFuncWithError",
			give: func(j *journal) any {
				return func() (*A, func() error, error) {
					j.add("open A")
					return &A{j: j}, func() error { j.add("close A"); return errClose }, nil
				}
			},
			wantEvents:   "open A, close A",
			wantCloseErr: errClose,
		},
		{
			name: "CleanupFuncWithContext",
			give: func(j *journal) any {
				return func() (*A, func(context.Context) error, error) {
					j.add("open A")
					return &A{j: j}, func(ctx context.Context) error {
						j.add("close A with %v", ctx.Value(ctxKey{}))
						return nil
					}, nil
				}
			},
			wantEvents: "open A, close A with close-ctx",
		},
		{
			name: "NamedCleanupType",
			give: func(j *journal) any {
				return func() (*A, stopFunc, error) {
					j.add("open A")
					return &A{j: j}, func() { j.add("close A") }, nil
				}
			},
			wantEvents: "open A, close A",
		},
		{
			name: "NamedContextCleanupType",
			give: func(j *journal) any {
				return func() (*A, shutdownFunc, error) {
					j.add("open A")
					return &A{j: j}, func(ctx context.Context) error {
						j.add("close A with %v", ctx.Value(ctxKey{}))
						return errClose
					}, nil
				}
			},
			wantEvents:   "open A, close A with close-ctx",
			wantCloseErr: errClose,
		},
		{
			name: "NilCleanup",
			give: func(j *journal) any {
				return func() (*A, func(), error) { j.add("open A"); return &A{j: j}, nil, nil }
			},
			wantEvents: "open A",
		},
		{
			name: "LeadingContextIsTheOpenContext",
			give: func(j *journal) any {
				return func(ctx context.Context) *A {
					j.add("open A with %v", ctx.Value(ctxKey{}))
					return &A{j: j}
				}
			},
			wantEvents: "open A with open-ctx",
		},
		{
			name: "LeadingContextWithCleanup",
			give: func(j *journal) any {
				return func(ctx context.Context) (*A, func(context.Context) error, error) {
					j.add("open A with %v", ctx.Value(ctxKey{}))
					return &A{j: j}, func(ctx context.Context) error {
						j.add("close A with %v", ctx.Value(ctxKey{}))
						return nil
					}, nil
				}
			},
			wantEvents: "open A with open-ctx, close A with close-ctx",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := &journal{}
			p := mustPlan[*A](t, resources.PerWorker(tt.give(j)))
			s, err := p.Open(openCtx(t), worker0, nil)
			if err != nil {
				t.Fatalf("Open() = %v", err)
			}
			if a := s.Value(); a == nil || a.j != j {
				t.Errorf("Value() = %+v, want the constructor's *A", a)
			}
			err = s.Close(closeCtx(t))
			if !errors.Is(err, tt.wantCloseErr) || (err == nil) != (tt.wantCloseErr == nil) {
				t.Errorf("Close() = %v, want %v", err, tt.wantCloseErr)
			}
			if got := j.String(); got != tt.wantEvents {
				t.Errorf("events = %q, want %q", got, tt.wantEvents)
			}
		})
	}
}

// AutoDeps asks for each kind of auto-closed resource. Each test declares
// one of them; the others are absent optional values from the fx graph.
type AutoDeps struct {
	fx.In
	C  *Closer    `optional:"true"`
	CC *CtxCloser `optional:"true"`
	IC io.Closer  `optional:"true"`
}

func TestOpenAutoClose(t *testing.T) {
	errClose := errors.New("close failed")
	tests := []struct {
		name         string
		give         func(j *journal) any
		wantEvents   string
		wantCloseErr error
	}{
		{
			name:       "CloseError",
			give:       func(j *journal) any { return func() *Closer { return &Closer{j: j} } },
			wantEvents: "close Closer",
		},
		{
			name: "CloseErrorReportsItsError",
			give: func(j *journal) any {
				return func() (*Closer, error) { return &Closer{j: j, err: errClose}, nil }
			},
			wantEvents:   "close Closer",
			wantCloseErr: errClose,
		},
		{
			name:       "CloseContext",
			give:       func(j *journal) any { return func() *CtxCloser { return &CtxCloser{j: j} } },
			wantEvents: "close CtxCloser close-ctx",
		},
		{
			name:       "InterfaceResult",
			give:       func(j *journal) any { return func() io.Closer { return &Closer{j: j} } },
			wantEvents: "close Closer",
		},
		{
			name: "NotWhenExplicitCleanup",
			give: func(j *journal) any {
				return func() (*Closer, func(), error) {
					return &Closer{j: j}, func() { j.add("explicit cleanup") }, nil
				}
			},
			wantEvents: "explicit cleanup",
		},
		{
			name: "NotWhenExplicitCleanupIsNil",
			give: func(j *journal) any {
				return func() (*CtxCloser, func() error, error) { return &CtxCloser{j: j}, nil, nil }
			},
			wantEvents: "",
		},
		{
			name:       "NotWhenNilPointer",
			give:       func(*journal) any { return func() *Closer { return nil } },
			wantEvents: "",
		},
		{
			name:       "NotWhenNilInterface",
			give:       func(*journal) any { return func() (io.Closer, error) { return nil, nil } },
			wantEvents: "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := &journal{}
			p := mustPlan[AutoDeps](t, resources.PerWorker(tt.give(j)))
			s, err := p.Open(openCtx(t), worker0, zeroExt(p))
			if err != nil {
				t.Fatalf("Open() = %v", err)
			}
			err = s.Close(closeCtx(t))
			if !errors.Is(err, tt.wantCloseErr) || (err == nil) != (tt.wantCloseErr == nil) {
				t.Errorf("Close() = %v, want %v", err, tt.wantCloseErr)
			}
			if got := j.String(); got != tt.wantEvents {
				t.Errorf("events = %q, want %q", got, tt.wantEvents)
			}
		})
	}
}

// Params is an fx.In parameter that mixes every source.
type Params struct {
	fx.In
	DB      *DB
	Primary *DB    `name:"primary"`
	Cache   *Cache `optional:"true"`
	B       *B     `optional:"true"` // per-worker: always there
	W       resources.Worker
}

func TestOpenInStructParameters(t *testing.T) {
	cache := &Cache{}
	tests := []struct {
		name      string
		giveCache *Cache // the optional value from the fx graph, or nil if absent
		wantCache *Cache
	}{
		{name: "OptionalAbsent", giveCache: nil, wantCache: nil},
		{name: "OptionalPresent", giveCache: cache, wantCache: cache},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				got   Params
				gotDB *DB
				b     = &B{}
			)
			p := mustPlan[*A](t,
				resources.PerWorker(func() *B { return b }),
				resources.PerWorker(func(ctx context.Context, p Params, db *DB) *A {
					got, gotDB = p, db
					return &A{}
				}),
			)
			needs := p.Needs()
			if len(needs) != 1 {
				t.Fatalf("Needs() = %v, want one", needs)
			}
			wantFields := `F0 *plan_test.DB ""; F1 *plan_test.DB "name:\"primary\""; ` +
				`F2 *plan_test.Cache "optional:\"true\""; F3 *plan_test.DB ""`
			if got := describeIn(needs[0].In); got != wantFields {
				t.Fatalf("Needs()[0].In = %s, want %s", got, wantFields)
			}
			dbs := []*DB{{"plain"}, {"primary"}, {"param"}}
			ext := reflect.New(needs[0].In).Elem()
			ext.FieldByName("F0").Set(reflect.ValueOf(dbs[0]))
			ext.FieldByName("F1").Set(reflect.ValueOf(dbs[1]))
			ext.FieldByName("F2").Set(reflect.ValueOf(tt.giveCache))
			ext.FieldByName("F3").Set(reflect.ValueOf(dbs[2]))
			w := resources.Worker{Pool: "p", ID: 3, Generation: 2}

			s, err := p.Open(t.Context(), w, []reflect.Value{ext})
			if err != nil {
				t.Fatalf("Open() = %v", err)
			}
			defer s.Close(t.Context())

			if got.DB != dbs[0] || got.Primary != dbs[1] || gotDB != dbs[2] {
				t.Errorf("got DB %v, primary %v, param %v; want plain, primary, param", got.DB, got.Primary, gotDB)
			}
			if got.Cache != tt.wantCache || got.B != b || got.W != w {
				t.Errorf("got Cache %p, B %p, W %+v; want %p, %p, %+v", got.Cache, got.B, got.W, tt.wantCache, b, w)
			}
		})
	}
}

// describeIn lists the fields of an fx.In struct after the embedded fx.In,
// as "F0 *pkg.T \"tag\"; ...".
func describeIn(in reflect.Type) string {
	var fields []string
	for i := range in.NumField() {
		f := in.Field(i)
		if f.Anonymous && f.Type == reflect.TypeFor[fx.In]() {
			continue
		}
		fields = append(fields, fmt.Sprintf("%s %v %q", f.Name, f.Type, string(f.Tag)))
	}
	return strings.Join(fields, "; ")
}

// WorkerDeps is a task parameter that asks who its worker is.
type WorkerDeps struct {
	fx.In
	A *A
	W resources.Worker
}

func TestOpenInjectsTheWorker(t *testing.T) {
	var fromCtor resources.Worker
	p := mustPlan[WorkerDeps](t, resources.PerWorker(func(w resources.Worker) *A {
		fromCtor = w
		return &A{id: w.ID}
	}))
	if needs := p.Needs(); len(needs) != 0 {
		t.Errorf("Needs() = %v, want none: the Worker is not from the fx graph", needs)
	}
	w := resources.Worker{Pool: "indexer", ID: 7, Generation: 1}
	s, err := p.Open(t.Context(), w, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(t.Context())
	if fromCtor != w || s.Value().W != w || s.Value().A.id != 7 {
		t.Errorf("constructor got %+v, task got %+v and A %d; want %+v everywhere", fromCtor, s.Value().W, s.Value().A.id, w)
	}
}

func TestOpenOrder(t *testing.T) {
	// Each constructor records "open X" and its cleanup "close X".
	track := func(j *journal, name string) func() {
		j.add("open %s", name)
		return func() { j.add("close %s", name) }
	}
	tests := []struct {
		name     string
		give     func(j *journal) []resources.Declaration
		wantDeps map[string][]string // each resource opened, and what it needs
	}{
		{
			name: "Chain",
			give: func(j *journal) []resources.Declaration {
				// Declared in reverse: the plan must sort them.
				return []resources.Declaration{
					resources.PerWorker(func(b *B) (*D, func(), error) { return &D{b: b}, track(j, "D"), nil }),
					resources.PerWorker(func(c *C) (*B, func(), error) { return &B{}, track(j, "B"), nil }),
					resources.PerWorker(func(a *A) (*C, func(), error) { return &C{}, track(j, "C"), nil }),
					resources.PerWorker(func() (*A, func(), error) { return &A{}, track(j, "A"), nil }),
				}
			},
			wantDeps: map[string][]string{"A": nil, "C": {"A"}, "B": {"C"}, "D": {"B"}},
		},
		{
			name: "Diamond",
			give: func(j *journal) []resources.Declaration {
				return []resources.Declaration{
					resources.PerWorker(func(p struct {
						fx.In
						B *B
						C *C
					}) (*D, func(), error) {
						return &D{b: p.B, c: p.C}, track(j, "D"), nil
					}),
					resources.PerWorker(func(a *A) (*B, func(), error) { return &B{a: a}, track(j, "B"), nil }),
					resources.PerWorker(func(a *A) (*C, func(), error) { return &C{}, track(j, "C"), nil }),
					resources.PerWorker(func() (*A, func(), error) { return &A{}, track(j, "A"), nil }),
				}
			},
			wantDeps: map[string][]string{"A": nil, "B": {"A"}, "C": {"A"}, "D": {"B", "C"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := &journal{}
			p := mustPlan[*D](t, tt.give(j)...)
			s, err := p.Open(t.Context(), worker0, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Close(t.Context()); err != nil {
				t.Fatal(err)
			}
			opens, closes := j.with("open"), j.with("close")
			checkDependencyOrder(t, opens, tt.wantDeps)
			if want := reversed(opens); !slices.Equal(closes, want) {
				t.Errorf("closed %v, want exactly the reverse of the opens, %v", closes, want)
			}
			if got := shortNames(p.Resources()); !slices.Equal(got, opens) {
				t.Errorf("Resources() = %v, want the open order %v", got, opens)
			}
		})
	}
}

// checkDependencyOrder checks that opens holds each resource of deps once,
// each after those it needs.
func checkDependencyOrder(t *testing.T, opens []string, deps map[string][]string) {
	t.Helper()
	pos := map[string]int{}
	for i, name := range opens {
		pos[name] = i
	}
	if len(opens) != len(deps) || len(pos) != len(deps) {
		t.Fatalf("opened %v, want each of %v once", opens, slices.Sorted(maps.Keys(deps)))
	}
	for name, needs := range deps {
		for _, need := range needs {
			if p, ok := pos[need]; !ok || p > pos[name] {
				t.Errorf("opened %v: %s before %s, which it needs", opens, name, need)
			}
		}
	}
}

func reversed(s []string) []string {
	r := slices.Clone(s)
	slices.Reverse(r)
	return r
}

// shortNames turns "*plan_test.A" into "A".
func shortNames(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = strings.TrimPrefix(n, "*plan_test.")
	}
	return out
}

func TestOpenOnlyWhatTheTaskNeeds(t *testing.T) {
	j := &journal{}
	p := mustPlan[*B](t,
		resources.PerWorker(func(db *DB) *C { j.add("open C"); return &C{} }), // not needed
		resources.PerWorker(func(a *A) *B { j.add("open B"); return &B{a: a} }),
		resources.PerWorker(func() *A { j.add("open A"); return &A{} }),
	)
	if got, want := shortNames(p.Resources()), []string{"A", "B"}; !slices.Equal(got, want) {
		t.Errorf("Resources() = %v, want %v", got, want)
	}
	s, err := p.Open(t.Context(), worker0, zeroExt(p))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(t.Context())
	if got, want := j.String(), "open A, open B"; got != want {
		t.Errorf("events = %q, want %q", got, want)
	}
	if s.Value() == nil || s.Value().a == nil {
		t.Errorf("Value() = %+v, want a *B built on an *A", s.Value())
	}
}

func TestOpenRollsBack(t *testing.T) {
	var (
		boom    = errors.New("boom")
		errB    = errors.New("b would not close")
		cleanly = func(context.Context) error { return nil }
	)
	tests := []struct {
		name         string
		giveAErr     error
		giveC        func(cancel context.CancelFunc) error // the body of C's constructor
		giveBClose   func(ctx context.Context) error       // runs after "close B" is recorded
		wantEvents   string
		wantResource string
		wantErrs     []error
		wantPanic    any
	}{
		{
			name:         "RollsBackOnFailedOpen",
			giveC:        func(context.CancelFunc) error { return boom },
			giveBClose:   cleanly,
			wantEvents:   "open A, open B, close B, close A",
			wantResource: "*plan_test.C",
			wantErrs:     []error{boom},
		},
		{
			name:         "RollsBackOnPanic",
			giveC:        func(context.CancelFunc) error { panic("kaboom") },
			giveBClose:   cleanly,
			wantEvents:   "open A, open B, close B, close A",
			wantResource: "*plan_test.C",
			wantPanic:    "kaboom",
		},
		{
			name:         "RollsBackOnPanicWithAnError",
			giveC:        func(context.CancelFunc) error { panic(boom) },
			giveBClose:   cleanly,
			wantEvents:   "open A, open B, close B, close A",
			wantResource: "*plan_test.C",
			wantErrs:     []error{boom},
			wantPanic:    boom,
		},
		{
			name:         "ClosesNothingWhenTheFirstFails",
			giveAErr:     boom,
			giveC:        func(context.CancelFunc) error { return nil },
			giveBClose:   cleanly,
			wantEvents:   "",
			wantResource: "*plan_test.A",
			wantErrs:     []error{boom},
		},
		{
			name:         "JoinsRollbackErrors",
			giveC:        func(context.CancelFunc) error { return boom },
			giveBClose:   func(context.Context) error { return errB },
			wantEvents:   "open A, open B, close B, close A",
			wantResource: "*plan_test.C",
			wantErrs:     []error{boom, errB},
		},
		{
			name:         "KeepsRollingBackPastAPanickingCleanup",
			giveC:        func(context.CancelFunc) error { return boom },
			giveBClose:   func(context.Context) error { panic("b panicked") },
			wantEvents:   "open A, open B, close B, close A",
			wantResource: "*plan_test.C",
			wantErrs:     []error{boom},
			wantPanic:    "b panicked",
		},
		{
			name: "RollsBackWithoutTheOpenContextsCancellation",
			giveC: func(cancel context.CancelFunc) error {
				cancel()
				return boom
			},
			giveBClose: func(ctx context.Context) error {
				if ctx.Err() != nil || ctx.Value(ctxKey{}) != "open-ctx" {
					return fmt.Errorf("rollback ctx: err %v, value %v", ctx.Err(), ctx.Value(ctxKey{}))
				}
				return nil
			},
			wantEvents:   "open A, open B, close B, close A",
			wantResource: "*plan_test.C",
			wantErrs:     []error{boom},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := &journal{}
			ctx, cancel := context.WithCancel(openCtx(t))
			defer cancel()
			p := mustPlan[*C](t,
				resources.PerWorker(func() (*A, func(), error) {
					if tt.giveAErr != nil {
						return nil, nil, tt.giveAErr
					}
					j.add("open A")
					return &A{}, func() { j.add("close A") }, nil
				}),
				resources.PerWorker(func(a *A) (*B, func(context.Context) error, error) {
					j.add("open B")
					return &B{a: a}, func(ctx context.Context) error {
						j.add("close B")
						return tt.giveBClose(ctx)
					}, nil
				}),
				resources.PerWorker(func(b *B) (*C, func(), error) {
					if err := tt.giveC(cancel); err != nil {
						return nil, func() { j.add("close C") }, err
					}
					j.add("open C")
					return &C{b: b}, func() { j.add("close C") }, nil
				}),
			)

			s, err := p.Open(ctx, worker0, nil)
			if s != nil {
				t.Errorf("Open() gave a scope %v, want none", s)
			}
			var oe *resources.OpenError
			if !errors.As(err, &oe) || oe.Resource != tt.wantResource {
				t.Fatalf("Open() = %v, want an *OpenError for %s", err, tt.wantResource)
			}
			if !strings.Contains(err.Error(), "open "+tt.wantResource+" (") || !strings.Contains(oe.Constructor, "plan_test.go:") {
				t.Errorf("Open() = %q, want it to name %s and its constructor", err, tt.wantResource)
			}
			for _, want := range tt.wantErrs {
				if !errors.Is(err, want) {
					t.Errorf("Open() = %v, want it to wrap %v", err, want)
				}
			}
			var pe *hooks.PanicError
			if errors.As(err, &pe) != (tt.wantPanic != nil) || pe != nil && pe.Value != tt.wantPanic {
				t.Errorf("Open() = %v, want a *hooks.PanicError with %v", err, tt.wantPanic)
			}
			if got := j.String(); got != tt.wantEvents {
				t.Errorf("events = %q, want %q", got, tt.wantEvents)
			}
		})
	}
}

func TestOpenPanicErrorHasTheConstructorsStack(t *testing.T) {
	p := mustPlan[*A](t, resources.PerWorker(panickyA))
	_, err := p.Open(t.Context(), worker0, nil)
	var pe *hooks.PanicError
	if !errors.As(err, &pe) || !strings.Contains(string(pe.Stack), "panickyA") {
		t.Fatalf("Open() = %v, want a *hooks.PanicError whose stack shows panickyA", err)
	}
}

func panickyA() *A { panic("no A today") }

func TestName(t *testing.T) {
	var (
		j    = &journal{}
		boom = errors.New("boom")
	)
	p := mustPlan[*B](t,
		resources.PerWorker(func() (*A, func() error, error) {
			return &A{}, func() error { j.add("close alpha"); return boom }, nil
		}, resources.Name("alpha")),
		resources.PerWorker(func(*A) (*B, error) { return nil, boom }, resources.Name("beta")),
	)
	if got, want := p.Resources(), []string{"alpha", "beta"}; !slices.Equal(got, want) {
		t.Errorf("Resources() = %v, want %v", got, want)
	}
	_, err := p.Open(t.Context(), worker0, nil)
	var (
		oe *resources.OpenError
		ce *hooks.CleanupError
	)
	if !errors.As(err, &oe) || oe.Resource != "beta" || !errors.As(err, &ce) || ce.Name != "alpha" {
		t.Errorf("Open() = %v, want beta's open error and alpha's close error", err)
	}
	if got := j.String(); got != "close alpha" {
		t.Errorf("events = %q, want %q", got, "close alpha")
	}
}

func TestNewRejectsDuplicatesAndCycles(t *testing.T) {
	tests := []struct {
		name     string
		give     []resources.Declaration
		wantErr  error
		wantMsgs []string
	}{
		{
			name: "Duplicate",
			give: []resources.Declaration{
				resources.PerWorker(newPlainA),
				resources.PerWorker(otherA),
			},
			wantErr:  resources.ErrDuplicate,
			wantMsgs: []string{"*plan_test.A", "plan_test.newPlainA (", "plan_test.otherA ("},
		},
		{
			// Events, logs, errors and fxpooltest's Recorder tell
			// resources apart by name: a second "conn" was accepted.
			name: "DuplicateName",
			give: []resources.Declaration{
				resources.PerWorker(newPlainA, resources.Name("conn")),
				resources.PerWorker(bFromA, resources.Name("conn")),
			},
			wantErr:  resources.ErrDuplicateName,
			wantMsgs: []string{`"conn"`, "*plan_test.A (", "plan_test.newPlainA (", "*plan_test.B (", "plan_test.bFromA (", "resources.Name"},
		},
		{
			name:     "SelfCycle",
			give:     []resources.Declaration{resources.PerWorker(selfA)},
			wantErr:  resources.ErrCycle,
			wantMsgs: []string{"*plan_test.A made by github.com/fxpool/fxpool/internal/plan_test.selfA", " -> *plan_test.A made by"},
		},
		{
			name: "TwoCycle",
			give: []resources.Declaration{
				resources.PerWorker(aFromB),
				resources.PerWorker(bFromA),
			},
			wantErr:  resources.ErrCycle,
			wantMsgs: []string{"*plan_test.A made by", "aFromB", "*plan_test.B made by", "bFromA", " -> "},
		},
		{
			name: "ThreeCycle",
			give: []resources.Declaration{
				resources.PerWorker(aFromC),
				resources.PerWorker(bFromA),
				resources.PerWorker(cFromB),
			},
			wantErr:  resources.ErrCycle,
			wantMsgs: []string{"*plan_test.A made by", "*plan_test.B made by", "*plan_test.C made by", "aFromC", "bFromA", "cFromB"},
		},
		{
			name: "CycleThroughAnInStruct",
			give: []resources.Declaration{
				resources.PerWorker(func(p struct {
					fx.In
					B *B `optional:"true"`
				}) *A {
					return nil
				}),
				resources.PerWorker(bFromA),
			},
			wantErr:  resources.ErrCycle,
			wantMsgs: []string{"*plan_test.A made by", "*plan_test.B made by"},
		},
		{
			name: "CycleTheTaskDoesNotNeed",
			give: []resources.Declaration{
				resources.PerWorker(newPlainA),
				resources.PerWorker(cFromD),
				resources.PerWorker(dFromC),
			},
			wantErr:  resources.ErrCycle,
			wantMsgs: []string{"*plan_test.C made by", "*plan_test.D made by"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := plan.New[*A](tt.give...)
			if p != nil || !errors.Is(err, tt.wantErr) {
				t.Fatalf("New() = %v, %v; want %v", p, err, tt.wantErr)
			}
			for _, want := range tt.wantMsgs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}

func otherA() *A   { return nil }
func selfA(*A) *A  { return nil }
func aFromB(*B) *A { return nil }
func bFromA(*A) *B { return nil }
func aFromC(*C) *A { return nil }
func cFromB(*B) *C { return nil }
func cFromD(*D) *C { return nil }
func dFromC(*C) *D { return nil }
func namedSelfA(p struct {
	fx.In
	Prev *A `name:"previous"`
}) *A {
	return &A{}
}

func TestNewNameTagBreaksACycle(t *testing.T) {
	// A named *A is an fx value, not the worker's own *A: no cycle.
	p := mustPlan[*A](t, resources.PerWorker(namedSelfA))
	needs := p.Needs()
	if len(needs) != 1 || describeIn(needs[0].In) != `F0 *plan_test.A "name:\"previous\""` {
		t.Fatalf("Needs() = %v, want one named *A", needs)
	}
	s, err := p.Open(t.Context(), worker0, zeroExt(p))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(t.Context()); err != nil {
		t.Error(err)
	}
}

func TestNewRejectsInvalidTaskParameters(t *testing.T) {
	tests := []struct {
		name    string
		give    func() error
		wantMsg string
	}{
		{
			name:    "PointerToInStruct",
			give:    func() error { _, err := plan.New[*WorkerDeps](); return err },
			wantMsg: "task parameter *plan_test.WorkerDeps: *plan_test.WorkerDeps: pass fx.In structs by value",
		},
		{
			name:    "Context",
			give:    func() error { _, err := plan.New[context.Context](); return err },
			wantMsg: "task parameter context.Context: context.Context must be the first parameter",
		},
		{
			name: "UnexportedField",
			give: func() error {
				_, err := plan.New[struct {
					fx.In
					a *A
				}]()
				return err
			},
			wantMsg: "field a is unexported",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.give()
			if !errors.Is(err, resources.ErrInvalidConstructor) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("New() = %v, want ErrInvalidConstructor with %q", err, tt.wantMsg)
			}
		})
	}
}

// TaskDeps takes a per-worker *C and, from the fx graph, a cache.
type TaskDeps struct {
	fx.In
	C     *C
	Cache *Cache `name:"hot" optional:"true"`
}

func TestPlanNeeds(t *testing.T) {
	p := mustPlan[TaskDeps](t,
		resources.PerWorker(func(ctx context.Context, db *DB, w resources.Worker) *A { return &A{} }),
		resources.PerWorker(func(a *A) *B { return &B{a: a} }), // nothing from fx
		resources.PerWorker(func(p struct {
			fx.In
			B       *B
			Replica *DB   `name:"replica"`
			Caches  []*DB `group:"dbs"`
			W       resources.Worker
			Cache   *Cache `optional:"true"`
		}) *C {
			return &C{b: p.B}
		}, resources.Name("c")),
	)
	type need struct{ consumer, fields string }
	var got []need
	for _, n := range p.Needs() {
		got = append(got, need{n.Consumer, describeIn(n.In)})
	}
	want := []need{
		{"*plan_test.A made by", `F0 *plan_test.DB ""`},
		{"c made by", `F0 *plan_test.DB "name:\"replica\""; F1 []*plan_test.DB "group:\"dbs\""; F2 *plan_test.Cache "optional:\"true\""`},
		{"task parameter plan_test.TaskDeps", `F0 *plan_test.Cache "name:\"hot\" optional:\"true\""`},
	}
	if len(got) != len(want) {
		t.Fatalf("Needs() = %+v, want %+v", got, want)
	}
	for i := range want {
		if !strings.HasPrefix(got[i].consumer, want[i].consumer) || got[i].fields != want[i].fields {
			t.Errorf("Needs()[%d] = %+v, want %+v", i, got[i], want[i])
		}
		if i < 2 && !strings.Contains(got[i].consumer, "plan_test.go:") {
			t.Errorf("Needs()[%d].Consumer = %q, want the constructor's file:line", i, got[i].consumer)
		}
	}

	// Needs returns a copy.
	p.Needs()[0] = plan.Need{}
	if p.Needs()[0].In == nil {
		t.Error("changing the result of Needs changed the plan")
	}
}

func TestOpenChecksTheNumberOfExternalValues(t *testing.T) {
	p := mustPlan[*A](t, resources.PerWorker(func(*DB) *A { return &A{} }))
	_, err := p.Open(t.Context(), worker0, nil)
	if err == nil || !strings.Contains(err.Error(), "got 0 external values, want 1") {
		t.Errorf("Open(nil ext) = %v, want an error about the count", err)
	}
}

func TestOpenTakesATaskParameterFromTheFxGraph(t *testing.T) {
	p := mustPlan[*DB](t)
	needs := p.Needs()
	if len(needs) != 1 || needs[0].Consumer != "task parameter *plan_test.DB" {
		t.Fatalf("Needs() = %v, want the task parameter", needs)
	}
	db := &DB{dsn: "app"}
	ext := reflect.New(needs[0].In).Elem()
	ext.Field(1).Set(reflect.ValueOf(db))
	s, err := p.Open(t.Context(), worker0, []reflect.Value{ext})
	if err != nil || s.Value() != db {
		t.Fatalf("Open() = %v, %v; want the fx graph's *DB", s, err)
	}
	if err := s.Close(t.Context()); err != nil {
		t.Error(err)
	}
}

func TestScopeCloseTwiceIsNoop(t *testing.T) {
	j := &journal{}
	p := mustPlan[*Closer](t, resources.PerWorker(func() *Closer { return &Closer{j: j, err: io.ErrClosedPipe} }))
	s, err := p.Open(t.Context(), worker0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(t.Context()); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("first Close() = %v, want the Close error", err)
	}
	if err := s.Close(t.Context()); err != nil {
		t.Errorf("second Close() = %v, want nil", err)
	}
	if got := j.String(); got != "close Closer" {
		t.Errorf("events = %q, want one close", got)
	}
}

func TestOpenWorkersConcurrently(t *testing.T) {
	j := &journal{}
	p := mustPlan[*B](t,
		resources.PerWorker(func(w resources.Worker) (*A, func(), error) {
			j.add("open A%d", w.ID)
			return &A{id: w.ID}, func() { j.add("close A%d", w.ID) }, nil
		}),
		resources.PerWorker(func(a *A) *B { return &B{a: a} }),
	)
	const workers = 8
	var (
		wg     sync.WaitGroup
		scopes [workers]*plan.Scope[*B]
		errs   [workers]error
	)
	for i := range workers {
		wg.Go(func() {
			scopes[i], errs[i] = p.Open(t.Context(), resources.Worker{Pool: "p", ID: i}, nil)
		})
	}
	wg.Wait()
	for i, s := range scopes {
		if errs[i] != nil {
			t.Fatalf("worker %d: Open() = %v", i, errs[i])
		}
		if got := s.Value().a.id; got != i {
			t.Errorf("worker %d got the A of worker %d", i, got)
		}
		if err := s.Close(t.Context()); err != nil {
			t.Error(err)
		}
	}
	if opens, closes := len(j.with("open")), len(j.with("close")); opens != workers || closes != workers {
		t.Errorf("%d opens and %d closes, want %d of each", opens, closes, workers)
	}
}
