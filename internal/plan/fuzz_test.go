package plan_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/fxpool/fxpool/internal/plan"
	"github.com/fxpool/fxpool/resources"
	"go.uber.org/dig"
	"go.uber.org/fx"
)

// The per-worker types of FuzzSignature. fzCloser and fzCtxCloser are
// closed automatically; every constructor call and cleanup records itself.
type (
	fz0 struct{ _ byte }
	fz1 struct{ _ byte }
	fz2 struct{ _ byte }
	fz3 struct{ _ byte }

	fzCloser struct {
		log *fzLog
		id  int
	}
	fzCtxCloser struct {
		log *fzLog
		id  int
	}
	fzPlain struct{ X int } // a struct without fx.In: one value from the fx graph
)

func (c *fzCloser) Close() error {
	c.log.add("auto %d", c.id)
	return nil
}

func (c *fzCtxCloser) Close(context.Context) error {
	c.log.add("auto %d", c.id)
	return nil
}

// fzDeps is one of the task parameters FuzzSignature plans for.
type fzDeps struct {
	fx.In
	A *fz0      `optional:"true"`
	B *fz2      `name:"b"`
	C io.Closer `optional:"true"`
	W resources.Worker
	D *fzCtxCloser
}

type fzLog struct {
	mu      sync.Mutex
	events  []string
	closing string // the value cleanups must find in their context
}

func (l *fzLog) setClosing(v string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closing = v
}

func (l *fzLog) wantClosing() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closing
}

func (l *fzLog) add(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, fmt.Sprintf(format, args...))
}

func (l *fzLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

// fzBytes hands out the fuzz input a byte at a time, then zeros.
type fzBytes []byte

func (b *fzBytes) next() byte {
	if len(*b) == 0 {
		return 0
	}
	c := (*b)[0]
	*b = (*b)[1:]
	return c
}

func (b *fzBytes) pick(n int) int { return int(b.next()) % n }

var (
	fzIn     = reflect.TypeFor[fx.In]()
	fzCtx    = reflect.TypeFor[context.Context]()
	fzErr    = reflect.TypeFor[error]()
	fzWorker = reflect.TypeFor[resources.Worker]()
	fzTypes  = []reflect.Type{
		reflect.TypeFor[*fz0](), reflect.TypeFor[*fz1](), reflect.TypeFor[*fz2](), reflect.TypeFor[*fz3](),
	}
	fzCleanups = []reflect.Type{
		reflect.TypeFor[func()](),
		reflect.TypeFor[func() error](),
		reflect.TypeFor[func(context.Context) error](),
		reflect.TypeFor[stopFunc](),
		reflect.TypeFor[shutdownFunc](),
	}
	fzTags = []reflect.StructTag{"", `optional:"true"`, `name:"x"`, `name:"y" optional:"true"`, `group:"g"`}
)

// fzCtor is one generated constructor.
type fzCtor struct {
	in, out  []reflect.Type
	variadic bool
	fail     byte // 1: return an error (if it can), 2: panic
	opt      byte // 1: Name, 2: Name(""), 3: a nil option
}

func (c *fzCtor) String() string {
	return fmt.Sprintf("func%v %v variadic=%v fail=%d opt=%d", c.in, c.out, c.variadic, c.fail, c.opt)
}

// fzField draws the type of a field of a generated fx.In struct.
func fzField(b *fzBytes) reflect.Type {
	switch k := b.pick(9); k {
	case 4:
		return fzWorker
	case 5:
		return fzCtx
	case 6:
		return reflect.TypeFor[io.Closer]()
	case 7:
		return reflect.StructOf([]reflect.StructField{{Name: "In", Type: fzIn, Anonymous: true}})
	case 8:
		return reflect.TypeFor[[]*fz1]()
	default:
		return fzTypes[k]
	}
}

// fzInStruct builds an fx.In struct of up to three fields with random tags,
// some unexported.
func fzInStruct(b *fzBytes) reflect.Type {
	fields := []reflect.StructField{{Name: "In", Type: fzIn, Anonymous: true}}
	for i := range b.pick(4) {
		f := reflect.StructField{Name: fmt.Sprintf("F%d", i), Type: fzField(b), Tag: fzTags[b.pick(len(fzTags))]}
		if b.pick(8) == 0 {
			f.Name, f.PkgPath = fmt.Sprintf("f%d", i), "github.com/fxpool/fxpool/internal/plan_test"
		}
		fields = append(fields, f)
	}
	return reflect.StructOf(fields)
}

func fzParam(b *fzBytes) reflect.Type {
	switch k := b.pick(13); k {
	case 4:
		return fzCtx
	case 5:
		return fzErr
	case 6:
		return fzWorker
	case 7:
		return reflect.TypeFor[*fzCloser]()
	case 8:
		return reflect.TypeFor[io.Closer]()
	case 9, 10:
		return fzInStruct(b)
	case 11:
		return reflect.PointerTo(fzInStruct(b))
	case 12:
		return reflect.TypeFor[fzPlain]()
	default:
		return fzTypes[k]
	}
}

func fzResult(b *fzBytes) reflect.Type {
	switch k := b.pick(16); k {
	case 4:
		return fzErr
	case 5:
		return fzWorker
	case 6:
		return fzCtx
	case 7, 8:
		return reflect.TypeFor[*fzCloser]()
	case 9:
		return reflect.TypeFor[*fzCtxCloser]()
	case 10:
		return reflect.TypeFor[io.Closer]()
	case 11:
		return fzInStruct(b)
	case 12:
		return reflect.TypeFor[struct {
			fx.Out
			A *fz0
		}]()
	case 13:
		return reflect.TypeFor[int]()
	default:
		return fzTypes[k%4]
	}
}

// fzGenerate draws up to four constructors.
func fzGenerate(b *fzBytes) []*fzCtor {
	ctors := make([]*fzCtor, 1+b.pick(4))
	for i := range ctors {
		c := &fzCtor{}
		if b.pick(2) == 0 {
			c.in = append(c.in, fzCtx)
		}
		for range b.pick(4) {
			c.in = append(c.in, fzParam(b))
		}
		c.variadic = len(c.in) > 0 && b.pick(10) == 0
		if c.variadic {
			c.in[len(c.in)-1] = reflect.SliceOf(c.in[len(c.in)-1])
		}
		// Mostly the valid forms, T, (T, error) and (T, cleanup, error);
		// sometimes anything.
		switch n := b.pick(8); n {
		case 0, 1:
			c.out = []reflect.Type{fzResult(b)}
		case 2, 3:
			c.out = []reflect.Type{fzResult(b), fzErr}
		case 4, 5:
			c.out = []reflect.Type{fzResult(b), fzCleanups[b.pick(len(fzCleanups))], fzErr}
		default:
			for range b.pick(5) {
				if b.pick(2) == 0 {
					c.out = append(c.out, fzErr)
				} else {
					c.out = append(c.out, fzResult(b))
				}
			}
		}
		c.fail = byte(b.pick(8)) / 6 // 0 mostly, then 1
		if b.pick(16) == 0 {
			c.fail = 2
		}
		c.opt = byte(b.pick(12)) % 6 // 0, 4, 5: no option
		ctors[i] = c
	}
	return ctors
}

// FuzzSignature generates per-worker constructor signatures and checks that
// PerWorker and New either reject them with one of the package's errors
// or give a plan whose Open opens, in dependency order, exactly what the
// task parameter needs, rolls back at the first failing constructor, and
// whose Close closes everything that opened, in reverse — never a panic.
func FuzzSignature(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 1, 0, 0, 0})                         // func() *fz0, default name
	f.Add([]byte{2, 0, 1, 3, 2, 1, 4, 0, 2, 1, 2, 0, 0}) // two constructors
	f.Add([]byte{1, 1, 2, 3, 0, 5, 7, 4, 1, 0, 0, 0, 1, 1, 0, 0, 0, 2, 0, 0, 0})
	f.Add([]byte("\x03\x00\x03\x09\x03\x00\x02\x06\x01\x04\x00\x04\x02\x00\x00\x00\x01\x00\x00\x00\x01\x04\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		b := fzBytes(data)
		ctors := fzGenerate(&b)
		switch b.pick(6) {
		case 0:
			fzCheck[*fz0](t, ctors)
		case 1:
			fzCheck[*fz1](t, ctors)
		case 2:
			fzCheck[resources.Worker](t, ctors)
		case 3:
			fzCheck[fzDeps](t, ctors)
		case 4:
			fzCheck[*fzCloser](t, ctors)
		default:
			fzCheck[io.Closer](t, ctors)
		}
	})
}

type fzKey struct{}

func fzCheck[R any](t *testing.T, ctors []*fzCtor) {
	var (
		log   = &fzLog{}
		w     = resources.Worker{Pool: "fuzz", ID: 4, Generation: 1}
		ctx   = context.WithValue(t.Context(), fzKey{}, "open")
		decls = make([]resources.Declaration, len(ctors))
		boom  = errors.New("fuzz: constructor failed")
	)
	for i, c := range ctors {
		fn := reflect.MakeFunc(reflect.FuncOf(c.in, c.out, c.variadic), func(args []reflect.Value) []reflect.Value {
			fzCheckArgs(log, i, c, args, ctx, w)
			if c.fail == 2 {
				panic(fmt.Sprintf("constructor %d panics", i))
			}
			failing := c.fail == 1 && len(c.out) > 1
			out := make([]reflect.Value, len(c.out))
			for k, ot := range c.out {
				out[k] = fzValue(log, i, ot, failing && k == len(c.out)-1, boom)
			}
			if !failing {
				log.add("open %d", i)
			}
			return out
		})
		var opts []resources.Option
		switch c.opt {
		case 1:
			opts = append(opts, resources.Name(fmt.Sprintf("r%d", i)))
		case 2:
			opts = append(opts, resources.Name(""))
		case 3:
			opts = append(opts, nil)
		}
		decls[i] = resources.PerWorker(fn.Interface(), opts...)
	}

	p, err := plan.New[R](decls...)
	if err != nil {
		if !errors.Is(err, resources.ErrInvalidConstructor) && !errors.Is(err, resources.ErrDuplicate) && !errors.Is(err, resources.ErrCycle) {
			t.Fatalf("New(%v) = %v, want one of the package's errors", ctors, err)
		}
		return
	}

	// Which constructor makes each type, and what each depends on.
	maker := map[reflect.Type]int{}
	for i, c := range ctors {
		maker[c.out[0]] = i
	}
	name := func(i int) string {
		if ctors[i].opt == 1 {
			return fmt.Sprintf("r%d", i)
		}
		return ctors[i].out[0].String()
	}
	needed := map[int]bool{}
	var mark func(params []reflect.Type)
	mark = func(params []reflect.Type) {
		for _, d := range fzDepsOf(params, maker) {
			if !needed[d] {
				needed[d] = true
				mark(ctors[d].in)
			}
		}
	}
	mark([]reflect.Type{reflect.TypeFor[R]()})

	plan := p.Resources()
	order := make([]int, len(plan))
	for k, n := range plan {
		order[k] = -1
		for i := range ctors {
			if name(i) == n {
				order[k] = i
			}
		}
		if order[k] < 0 || !needed[order[k]] {
			t.Fatalf("Resources() = %v: %q is not needed by %v (ctors %v)", plan, n, reflect.TypeFor[R](), ctors)
		}
	}
	if len(plan) != len(needed) {
		t.Fatalf("Resources() = %v, want the %d constructors %v needs (ctors %v)", plan, len(needed), reflect.TypeFor[R](), ctors)
	}
	for k, i := range order {
		for _, d := range fzDepsOf(ctors[i].in, maker) {
			if slices.Index(order, d) >= k {
				t.Fatalf("Resources() = %v: %s opens before its dependency %s", plan, name(i), name(d))
			}
		}
	}

	// Expected: open in plan order up to the first failure.
	var (
		wantEvents []string
		closes     []string
		failed     = -1
	)
	for _, i := range order {
		c := ctors[i]
		if c.fail == 2 || c.fail == 1 && len(c.out) > 1 {
			failed = i
			break
		}
		wantEvents = append(wantEvents, fmt.Sprintf("open %d", i))
		switch {
		case len(c.out) == 3:
			closes = append(closes, fmt.Sprintf("close %d", i))
		case c.out[0] == reflect.TypeFor[*fzCloser]() || c.out[0] == reflect.TypeFor[*fzCtxCloser]() ||
			c.out[0] == reflect.TypeFor[io.Closer]():
			closes = append(closes, fmt.Sprintf("auto %d", i))
		}
	}
	slices.Reverse(closes)
	wantEvents = append(wantEvents, closes...)

	ext := make([]reflect.Value, 0, len(p.Needs()))
	for _, n := range p.Needs() {
		ext = append(ext, reflect.New(n.In).Elem())
	}
	log.setClosing("open") // a rollback closes with the open's context
	s, err := p.Open(ctx, w, ext)
	if failed >= 0 {
		var oe *resources.OpenError
		if s != nil || !errors.As(err, &oe) || oe.Resource != name(failed) {
			t.Fatalf("Open() = %v, %v; want an *OpenError of %s (ctors %v)", s, err, name(failed), ctors)
		}
	} else {
		if err != nil {
			t.Fatalf("Open() = %v (ctors %v)", err, ctors)
		}
		log.setClosing("close")
		if err := s.Close(context.WithValue(t.Context(), fzKey{}, "close")); err != nil {
			t.Fatalf("Close() = %v", err)
		}
		if err := s.Close(t.Context()); err != nil {
			t.Fatalf("second Close() = %v", err)
		}
	}
	if got := log.all(); !slices.Equal(got, wantEvents) {
		t.Fatalf("events %v, want %v (plan %v, ctors %v)", got, wantEvents, plan, ctors)
	}
}

// fzDepsOf lists the constructors that a consumer with these parameters
// depends on: plain parameters and untagged fx.In fields of a type that a
// constructor makes.
func fzDepsOf(params []reflect.Type, maker map[reflect.Type]int) []int {
	var out []int
	for _, pt := range params {
		if pt == fzCtx {
			continue
		}
		if !dig.IsIn(pt) {
			if i, ok := maker[pt]; ok {
				out = append(out, i)
			}
			continue
		}
		for j := range pt.NumField() {
			f := pt.Field(j)
			_, named := f.Tag.Lookup("name")
			_, grouped := f.Tag.Lookup("group")
			if i, ok := maker[f.Type]; ok && !f.Anonymous && !named && !grouped {
				out = append(out, i)
			}
		}
	}
	return out
}

// fzCheckArgs records an "error" event if a constructor got the wrong
// context, a wrong Worker, or a nil per-worker value.
func fzCheckArgs(log *fzLog, i int, c *fzCtor, args []reflect.Value, ctx context.Context, w resources.Worker) {
	for k, a := range args {
		switch {
		case c.in[k] == fzCtx && k == 0:
			if a.Interface().(context.Context).Value(fzKey{}) != "open" {
				log.add("error: constructor %d got another context", i)
			}
		case c.in[k] == fzWorker:
			if a.Interface().(resources.Worker) != w {
				log.add("error: constructor %d got worker %+v", i, a.Interface())
			}
		case dig.IsIn(c.in[k]):
			for j := range c.in[k].NumField() {
				f := c.in[k].Field(j)
				if f.Type == fzWorker && f.Tag == "" && a.Field(j).Interface().(resources.Worker) != w {
					log.add("error: constructor %d got worker %+v in %s", i, a.Field(j).Interface(), f.Name)
				}
			}
		}
	}
}

// fzValue makes a constructor's result of type t: a fresh pointer, a
// recording cleanup, a recording closer, a nil error, or boom for a failing
// constructor's error.
func fzValue(log *fzLog, i int, t reflect.Type, fail bool, boom error) reflect.Value {
	switch {
	case t == fzErr && fail:
		return reflect.ValueOf(&boom).Elem()
	case t == reflect.TypeFor[*fzCloser]():
		return reflect.ValueOf(&fzCloser{log: log, id: i})
	case t == reflect.TypeFor[*fzCtxCloser]():
		return reflect.ValueOf(&fzCtxCloser{log: log, id: i})
	case t == reflect.TypeFor[io.Closer]():
		v := reflect.New(t).Elem()
		v.Set(reflect.ValueOf(&fzCloser{log: log, id: i}))
		return v
	case t.Kind() == reflect.Pointer:
		return reflect.New(t.Elem())
	case t.Kind() == reflect.Func:
		return reflect.MakeFunc(t, func(args []reflect.Value) []reflect.Value {
			if len(args) == 1 && args[0].Interface().(context.Context).Value(fzKey{}) != log.wantClosing() {
				log.add("error: cleanup %d got another context", i)
			}
			log.add("close %d", i)
			out := make([]reflect.Value, t.NumOut())
			for k := range out {
				out[k] = reflect.Zero(t.Out(k))
			}
			return out
		})
	}
	return reflect.Zero(t)
}

// TestFuzzSignatureCoversEveryOutcome runs the generator over many inputs
// and checks that it reaches every outcome FuzzSignature tells apart, so
// that the seeds alone already exercise each of them.
func TestFuzzSignatureCoversEveryOutcome(t *testing.T) {
	seen := map[string]bool{}
	rng := rand.New(rand.NewPCG(1, 2)) // fixed: the same inputs every run
	for range 4096 {
		data := make([]byte, 64)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		b := fzBytes(data)
		ctors := fzGenerate(&b)
		decls := make([]resources.Declaration, len(ctors))
		for i, c := range ctors {
			fn := reflect.MakeFunc(reflect.FuncOf(c.in, c.out, c.variadic), func([]reflect.Value) []reflect.Value { return nil })
			decls[i] = resources.PerWorker(fn.Interface())
		}
		_, err := plan.New[*fz0](decls...)
		switch {
		case err == nil:
			seen["ok"] = true
		case errors.Is(err, resources.ErrCycle):
			seen["cycle"] = true
		case errors.Is(err, resources.ErrDuplicate):
			seen["duplicate"] = true
		case strings.Contains(err.Error(), "variadic"):
			seen["variadic"] = true
		case errors.Is(err, resources.ErrInvalidConstructor):
			seen["invalid"] = true
		}
	}
	for _, want := range []string{"ok", "cycle", "duplicate", "variadic", "invalid"} {
		if !seen[want] {
			t.Errorf("the generator never reached %q", want)
		}
	}
}
