package workerpool_test

// Round 3 of adversarial tests: declarations that fx.New must refuse with
// an error naming the culprit (never a panic), stops with no budget at
// all, and the Recorder's guarantees under an elastic, recycling pool.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool"
	"github.com/fxpool/fxpool/fxpooltest"
	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

type a3Config struct{ Workers int }

// TestAttack3BadDeclarationsNameTheCulprit: options and declarations not
// in the earlier tables; each makes fx.New fail with an error that names
// the pool and the culprit, and none panics.
func TestAttack3BadDeclarationsNameTheCulprit(t *testing.T) {
	cases := []struct {
		name string
		opts []workerpool.Option
		want []string
	}{
		{"NilEvents", []workerpool.Option{workerpool.Events(nil)}, []string{"Events"}},
		{"NilOnDropped", []workerpool.Option{workerpool.OnDropped[W](nil)}, []string{"OnDropped"}},
		{"NegativeQueue", []workerpool.Option{workerpool.QueueSize(-1)}, []string{"QueueSize(-1)"}},
		{"ZeroCloseTimeout", []workerpool.Option{workerpool.CloseTimeout(0)}, []string{"CloseTimeout(0s)"}},
		{"NegativeCheckIdle", []workerpool.Option{workerpool.CheckIdle(-time.Second)}, []string{"CheckIdle(-1s)"}},
		{"ZeroDeclaration", []workerpool.Option{workerpool.Resources(resources.Declaration{})}, []string{"invalid"}},
		{"NilConstructor", []workerpool.Option{workerpool.Resources(resources.PerWorker(nil))}, []string{"constructor"}},
		{"NotAFunc", []workerpool.Option{workerpool.Resources(resources.PerWorker(42))}, []string{"int"}},
		{"CheckOfAnotherType", []workerpool.Option{workerpool.Resources(resources.PerWorker(func() *ResA { return &ResA{} },
			resources.Check(func(context.Context, *ResB) error { return nil })))}, []string{"Check"}},
		{"NilResourceOption", []workerpool.Option{workerpool.Resources(resources.PerWorker(func() *ResA { return &ResA{} }, nil))}, []string{"nil"}},
		{"OptionsFromNil", []workerpool.Option{workerpool.OptionsFrom[a3Config](nil)}, []string{"OptionsFrom"}},
		{"OptionsFromNilEntry", []workerpool.Option{workerpool.OptionsFrom(func(a3Config) []workerpool.Option { return []workerpool.Option{nil} })}, []string{"nil option"}},
		{"OptionsFromInvalid", []workerpool.Option{workerpool.OptionsFrom(func(c a3Config) []workerpool.Option {
			return []workerpool.Option{workerpool.Workers(c.Workers)}
		})}, []string{"Workers(0)"}},
		{"OptionsFromNamed", []workerpool.Option{workerpool.OptionsFrom(func(a3Config) []workerpool.Option {
			return []workerpool.Option{workerpool.Named()}
		})}, []string{"Named"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var app *fx.App
			pan, _ := a3Call(t, "fx.New", func() error {
				app = fx.New(fx.NopLogger,
					fx.Supply(a3Config{}),
					workerpool.Provide[W]("a3bad", c.opts...),
					fx.Invoke(func(*workerpool.Pool[W]) {}))
				return nil
			})
			if pan != nil {
				t.Fatalf("fx.New panicked: %v", pan)
			}
			err := app.Err()
			if err == nil {
				t.Fatalf("fx.New accepted %s", c.name)
			}
			for _, w := range append(c.want, `"a3bad"`) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("fx.New() = %v; does not name %q", err, w)
				}
			}
		})
	}
}

// TestAttack3StopWithNoBudget: Stop with a context that has already ended
// (a budget of zero) returns at once, with or without an error, and every
// resource still closes exactly once, in reverse order; every task is
// settled; the app's stop afterwards is clean.
func TestAttack3StopWithNoBudget(t *testing.T) {
	for _, policy := range []workerpool.StopPolicy{workerpool.Drain, workerpool.Cancel, workerpool.DropQueued} {
		t.Run(policy.String(), func(t *testing.T) {
			l := newLedger()
			var errsMu sync.Mutex
			var told []error
			p, app := atkStart[AB](t, "a3nobudget", workerpool.Workers(2), workerpool.QueueSize(8), abResources(l),
				workerpool.ErrorHandler(func(err error) { errsMu.Lock(); told = append(told, err); errsMu.Unlock() }))
			var ran atomic.Int32
			for i := range 6 {
				if err := p.Go(context.Background(), func(ctx context.Context, _ AB) error {
					ran.Add(1)
					if i < 2 {
						<-ctx.Done()
					}
					return nil
				}); err != nil {
					t.Fatal(err)
				}
			}
			atkPoll(t, "two running", a3Hang, func() bool { return p.Stats().Busy == 2 })
			ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
			defer cancel()
			var err error
			within(t, "Stop with an ended context", func() { err = p.Stop(ctx, policy) })
			t.Logf("Stop = %v", err)
			within(t, "app.Stop", func() { _ = app.Stop(a3Ctx(t, a3Hang)) })
			atkPoll(t, "every resource closes", a3Hang, func() bool { o, c := l.counts(); return o == c })
			l.check(t)
			atkPoll(t, "every task settled", a3Hang, func() bool { s := p.Stats(); return s.Done+s.Dropped == 6 })
			s := p.Stats()
			errsMu.Lock()
			closedN := 0
			for _, e := range told {
				if errors.Is(e, workerpool.ErrClosed) {
					closedN++
				}
			}
			errsMu.Unlock()
			if int(s.Dropped) != closedN || int(s.Done) != int(ran.Load()) {
				t.Errorf("Stats %+v; %d ran, %d told ErrClosed", s, ran.Load(), closedN)
			}
		})
	}
}

// TestAttack3RecorderElasticRecycling: an elastic pool that grows, idles
// and retires, with MaxTasksPerWorker recycling, tasks that break their
// worker and an injected failing open: fxpooltest's Recorder finds every
// teardown guarantee held, the store's Mark after the pool's stop.
func TestAttack3RecorderElasticRecycling(t *testing.T) {
	rec := fxpooltest.NewRecorder()
	var p *workerpool.Pool[AB]
	open := func(w W) (*ResA, func(), error) { return &ResA{w}, func() {}, nil }
	app := fxpooltest.New(t,
		fx.Provide(func(lc fx.Lifecycle) *A3Store {
			lc.Append(fx.StopHook(func() { rec.Mark("store") }))
			return &A3Store{}
		}),
		workerpool.Provide[AB]("a3rec", rec.Option(),
			workerpool.Elastic(1, 4, 5*time.Millisecond), workerpool.QueueSize(4),
			workerpool.MaxTasksPerWorker(3), workerpool.RestartBackoff(time.Millisecond, 2*time.Millisecond),
			workerpool.Resources(
				resources.PerWorker(fxpooltest.Inject(open, fxpooltest.OnOpen(4, fxpooltest.Fail), fxpooltest.OnClose(3, fxpooltest.Panic))),
				resources.PerWorker(func(_ *A3Store, a *ResA, w W) (*ResB, func(), error) { return &ResB{a, w}, func() {}, nil }),
			)),
		fx.Populate(&p),
	)
	app.RequireStart()
	for round := range 3 {
		var wg sync.WaitGroup
		for i := range 40 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = p.Do(context.Background(), func(ctx context.Context, _ AB) error {
					time.Sleep(time.Millisecond)
					if i%13 == 0 {
						return fmt.Errorf("round %d: %w", round, resources.ErrBroken)
					}
					return nil
				})
			}()
		}
		within(t, "tasks", wg.Wait)
		atkPoll(t, "the pool shrinks back", a3Hang, func() bool { return p.Stats().Workers <= 1 })
	}
	app.RequireStop()
	rec.Verify(t)
	if s := p.Stats(); s.Done != 120 {
		t.Errorf("Done = %d, want 120", s.Done)
	}
}

// TestAttack3DuplicatePoolNames: two pools with one name in one app (of
// different task types, so fx itself sees no collision). The Registry lists
// pools "by pool name": the app must refuse the second (an error from fx.New
// naming the name), or else keep both apart; it must not silently report
// one pool's Stats for both.
func TestAttack3DuplicatePoolNames(t *testing.T) {
	var reg *workerpool.Registry
	var p1 *workerpool.Pool[W]
	var p2 *workerpool.Pool[*ResA]
	app := fx.New(fx.NopLogger, fxpool.Module,
		workerpool.Provide[W]("a3dup", workerpool.Workers(1)),
		workerpool.Provide[*ResA]("a3dup", workerpool.Workers(2),
			workerpool.Resources(resources.PerWorker(func(w W) *ResA { return &ResA{w} }))),
		fx.Populate(&reg, &p1, &p2))
	if err := app.Err(); err != nil {
		if !strings.Contains(err.Error(), "a3dup") {
			t.Errorf("fx.New() = %v: does not name the duplicate", err)
		}
		return
	}
	if err := app.Start(a3Ctx(t, a3Hang)); err != nil {
		if !strings.Contains(err.Error(), "a3dup") {
			t.Errorf("Start() = %v: does not name the duplicate", err)
		}
		return
	}
	defer func() { _ = app.Stop(a3Ctx(t, a3Hang)) }()
	names := reg.Names()
	stats := reg.Stats()
	t.Logf("Names() = %v; Stats() = %v", names, stats)
	if len(names) != 2 || len(stats) != 2 {
		t.Errorf("two pools named a3dup started; the Registry lists %d names and %d stats: one pool is invisible to health checks and metrics", len(names), len(stats))
	}
}
