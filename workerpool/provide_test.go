package workerpool_test

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

type twin struct{}

// line returns "provide_test.go:N", N being the line it is called from.
func line() string {
	_, file, n, _ := runtime.Caller(1)
	return fmt.Sprintf("%s:%d", file[strings.LastIndexByte(file, '/')+1:], n)
}

// TestTwoPoolsOfOneTypeNameBothCallSites: two pools that provide one key —
// the same R and no name, or the same name — collide in fx, and fx.New's
// error names where each was declared. dig named "reflect".makeFuncStub
// for both, and only fx's stack named the second.
func TestTwoPoolsOfOneTypeNameBothCallSites(t *testing.T) {
	perWorker := workerpool.Resources(resources.PerWorker(func() *twin { return &twin{} }))
	tests := []struct {
		name         string
		giveA, giveB string
		opts         []workerpool.Option
		wantKey      string // what dig says both provide
	}{
		{
			name:  "Unnamed",
			giveA: "a", giveB: "b",
			opts:    []workerpool.Option{perWorker},
			wantKey: "*workerpool.Pool[*github.com/fxpool/fxpool/workerpool_test.twin] from [0]",
		},
		{
			name:  "UnnamedTakingRFromFx",
			giveA: "a", giveB: "b",
			wantKey: "*workerpool.Pool[*github.com/fxpool/fxpool/workerpool_test.twin] from [0]",
		},
		{
			name:  "NamedAlike",
			giveA: "twin", giveB: "twin",
			opts:    []workerpool.Option{perWorker, workerpool.Named()},
			wantKey: `*workerpool.Pool[*github.com/fxpool/fxpool/workerpool_test.twin][name="twin"] from [0]`,
		},
		{
			name:  "AlikeTakingRFromFx",
			giveA: "twin", giveB: "twin",
			wantKey: `*workerpool.needValue[name="fxpool: pool twin needs, for task parameter *workerpool_test.twin"] from [0]`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, atA := workerpool.Provide[*twin](tt.giveA, tt.opts...), line()
			b, atB := workerpool.Provide[*twin](tt.giveB, tt.opts...), line()
			err := fx.New(fx.NopLogger, a, b).Err()
			if err == nil {
				t.Fatal("fx.New() = nil, want the two pools' collision")
			}
			_, dig, _ := strings.Cut(err.Error(), "Failed: ")
			const fn = `"github.com/fxpool/fxpool/workerpool_test".TestTwoPoolsOfOneTypeNameBothCallSites.func2 (`
			for _, want := range []string{
				"cannot provide function " + fn,
				atB + "): cannot provide " + tt.wantKey,
				"already provided by " + fn,
			} {
				if !strings.Contains(dig, want) {
					t.Errorf("fx.New() = %v\nwant %q in dig's words", err, want)
				}
			}
			if !strings.HasSuffix(dig, atA+")") || strings.Contains(dig, "makeFuncStub") {
				t.Errorf("fx.New() = %v\nwant dig's words to end with %s, pool %q's call site", err, atA, tt.giveA)
			}
		})
	}
}

// The ways out that the collision's doc gives: Named, or Private pools in
// modules of their own.
func TestTwoPoolsOfOneTypeApart(t *testing.T) {
	perWorker := workerpool.Resources(resources.PerWorker(func() *twin { return &twin{} }))
	tests := []struct {
		name string
		give fx.Option
	}{
		{
			name: "Named",
			give: fx.Options(
				workerpool.Provide[*twin]("a", perWorker, workerpool.Named()),
				workerpool.Provide[*twin]("b", perWorker, workerpool.Named()),
				fx.Invoke(fx.Annotate(func(a, b *workerpool.Pool[*twin]) {}, fx.ParamTags(`name:"a"`, `name:"b"`))),
			),
		},
		{
			name: "PrivateInModules",
			give: fx.Options(
				fx.Module("a", workerpool.Provide[*twin]("a", perWorker, workerpool.Private()), fx.Invoke(func(*workerpool.Pool[*twin]) {})),
				fx.Module("b", workerpool.Provide[*twin]("b", perWorker, workerpool.Private()), fx.Invoke(func(*workerpool.Pool[*twin]) {})),
			),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := fx.New(fx.NopLogger, tt.give)
			if err := app.Err(); err != nil {
				t.Fatalf("fx.New() = %v, want nil", err)
			}
			if err := app.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			if err := app.Stop(t.Context()); err != nil {
				t.Fatal(err)
			}
		})
	}
}
