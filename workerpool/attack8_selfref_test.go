package workerpool_test

// Round 8: a pool that depends on itself — through its task parameter or a
// per-worker constructor — or two pools that depend on each other. fx.New
// (or, at worst, the first use) must fail with an error naming the pool,
// never hang or panic.

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

type a8Self struct {
	fx.In
	P *workerpool.Pool[a8Self]
}

type a8SelfOpt struct {
	fx.In
	P *workerpool.Pool[a8SelfOpt] `optional:"true"`
}

type a8CtorSelf struct {
	p *workerpool.Pool[a8CtorSelfDeps]
}
type a8CtorSelfDeps struct {
	fx.In
	C *a8CtorSelf
}

type a8PingA struct{}
type a8PingB struct{}
type a8CrossA struct {
	fx.In
	A *a8PingA
}
type a8CrossB struct {
	fx.In
	B *a8PingB
}

func TestAttack8PoolThatDependsOnItself(t *testing.T) {
	cases := []struct {
		name  string
		pools []string
		opt   fx.Option
	}{
		{"TaskParameter", []string{"a8selfR"}, fx.Options(
			workerpool.Provide[a8Self]("a8selfR"),
			fx.Invoke(func(*workerpool.Pool[a8Self]) {}),
		)},
		{"OptionalTaskParameter", []string{"a8selfopt"}, fx.Options(
			workerpool.Provide[a8SelfOpt]("a8selfopt"),
			fx.Invoke(func(*workerpool.Pool[a8SelfOpt]) {}),
		)},
		{"Constructor", []string{"a8selfctor"}, fx.Options(
			workerpool.Provide[a8CtorSelfDeps]("a8selfctor", workerpool.Resources(
				resources.PerWorker(func(p *workerpool.Pool[a8CtorSelfDeps]) *a8CtorSelf { return &a8CtorSelf{p} }),
			)),
			fx.Invoke(func(*workerpool.Pool[a8CtorSelfDeps]) {}),
		)},
		{"TwoPools", []string{"a8crossA", "a8crossB"}, fx.Options(
			workerpool.Provide[a8CrossA]("a8crossA", workerpool.Resources(
				resources.PerWorker(func(*workerpool.Pool[a8CrossB]) *a8PingA { return &a8PingA{} }),
			)),
			workerpool.Provide[a8CrossB]("a8crossB", workerpool.Resources(
				resources.PerWorker(func(*workerpool.Pool[a8CrossA]) *a8PingB { return &a8PingB{} }),
			)),
			fx.Invoke(func(*workerpool.Pool[a8CrossA]) {}),
		)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			done := make(chan struct{})
			var err error
			var panicked any
			go func() {
				defer close(done)
				defer func() { panicked = recover() }()
				app := fx.New(fx.NopLogger, c.opt)
				if err = app.Err(); err != nil {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				defer cancel()
				err = app.Start(ctx)
				if err == nil {
					_ = app.Stop(ctx)
				}
			}()
			atkWait(t, "fx.New/Start of a self-dependent pool", 10*time.Second, done)
			if panicked != nil {
				t.Fatalf("panic: %v", panicked)
			}
			if c.name == "OptionalTaskParameter" && err == nil {
				return // an optional self-reference may resolve to nil; no hang, no panic
			}
			if err == nil {
				t.Fatal("a pool that depends on itself started")
			}
			named := false
			for _, n := range c.pools {
				if strings.Contains(err.Error(), n) {
					named = true
				}
			}
			if !named {
				t.Errorf("error does not name the pool (%v): %v", c.pools, err)
			}
		})
	}
}
