package resources_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/fxpool/fxpool/internal/plan"
	"github.com/fxpool/fxpool/resources"
	"go.uber.org/fx"
)

// Constructors that PerWorker must refuse. They are named functions so that
// the tests can check that the error names them.
func variadicCtor(...int) *A                  { return nil }
func noResults()                              {}
func fourResults() (*A, func(), error, error) { return nil, nil, nil, nil }
func errorFirst() error                       { return nil }
func errorFirstOfTwo() (error, error)         { return nil, nil }
func intSecond() (*A, int)                    { return nil, 0 }
func intCleanup() (*A, int, error)            { return nil, 0, nil }
func cleanupWithArgs() (*A, func(int), error) { return nil, nil, nil }
func cleanupWithTwoResults() (*A, func() (int, error), error) {
	return nil, nil, nil
}
func intThird() (*A, func(), int)      { return nil, nil, 0 }
func ctxSecond(*B, context.Context) *A { return nil }
func pointerToIn(*struct{ fx.In }) *A  { return nil }
func unexportedField(struct {
	fx.In
	b *B
}) *A {
	return nil
}
func ctxField(struct {
	fx.In
	Ctx context.Context
}) *A {
	return nil
}
func nestedIn(struct {
	fx.In
	Inner struct{ fx.In }
}) *A {
	return nil
}
func outResult() struct {
	fx.Out
	A *A
} {
	return struct {
		fx.Out
		A *A
	}{}
}
func workerResult() resources.Worker { return resources.Worker{} }

func TestPerWorkerRejectsInvalidConstructors(t *testing.T) {
	tests := []struct {
		name     string
		give     resources.Declaration
		wantMsgs []string // each must appear in the error
	}{
		{name: "NotAFunc", give: resources.PerWorker(42), wantMsgs: []string{"int is not a func"}},
		{name: "UntypedNil", give: resources.PerWorker(nil), wantMsgs: []string{"<nil> is not a func"}},
		{name: "NilFunc", give: resources.PerWorker((func() *A)(nil)), wantMsgs: []string{"nil func() *resources_test.A"}},
		{
			name:     "Variadic",
			give:     resources.PerWorker(variadicCtor),
			wantMsgs: []string{"resources_test.variadicCtor (resources/declare_test.go:", "variadic"},
		},
		{
			name:     "NoResults",
			give:     resources.PerWorker(noResults),
			wantMsgs: []string{"resources_test.noResults", "has 0 results"},
		},
		{
			name:     "FourResults",
			give:     resources.PerWorker(fourResults),
			wantMsgs: []string{"resources_test.fourResults", "has 4 results"},
		},
		{
			name:     "FirstResultError",
			give:     resources.PerWorker(errorFirst),
			wantMsgs: []string{"resources_test.errorFirst", "first result is an error"},
		},
		{
			name:     "FirstOfTwoResultsError",
			give:     resources.PerWorker(errorFirstOfTwo),
			wantMsgs: []string{"resources_test.errorFirstOfTwo", "first result is an error"},
		},
		{
			name:     "SecondResultNotError",
			give:     resources.PerWorker(intSecond),
			wantMsgs: []string{"resources_test.intSecond", "second result is int, want error"},
		},
		{
			name:     "CleanupNotAFunc",
			give:     resources.PerWorker(intCleanup),
			wantMsgs: []string{"resources_test.intCleanup", "second result is int, want func()"},
		},
		{
			name:     "CleanupWithArguments",
			give:     resources.PerWorker(cleanupWithArgs),
			wantMsgs: []string{"resources_test.cleanupWithArgs", "second result is func(int)"},
		},
		{
			name:     "CleanupWithTwoResults",
			give:     resources.PerWorker(cleanupWithTwoResults),
			wantMsgs: []string{"resources_test.cleanupWithTwoResults", "second result is func() (int, error)"},
		},
		{
			name:     "ThirdResultNotError",
			give:     resources.PerWorker(intThird),
			wantMsgs: []string{"resources_test.intThird", "third result is int, want error"},
		},
		{
			name:     "ContextNotFirst",
			give:     resources.PerWorker(ctxSecond),
			wantMsgs: []string{"resources_test.ctxSecond", "context.Context must be the first parameter"},
		},
		{
			name:     "PointerToInStruct",
			give:     resources.PerWorker(pointerToIn),
			wantMsgs: []string{"resources_test.pointerToIn", "parameter 0", "pass fx.In structs by value"},
		},
		{
			name:     "UnexportedInField",
			give:     resources.PerWorker(unexportedField),
			wantMsgs: []string{"resources_test.unexportedField", "field b is unexported"},
		},
		{
			name:     "ContextInField",
			give:     resources.PerWorker(ctxField),
			wantMsgs: []string{"resources_test.ctxField", "field Ctx", "context.Context must be the first parameter"},
		},
		{
			name:     "NestedInStruct",
			give:     resources.PerWorker(nestedIn),
			wantMsgs: []string{"resources_test.nestedIn", "field Inner", "nested fx.In"},
		},
		{
			name:     "OutResult",
			give:     resources.PerWorker(outResult),
			wantMsgs: []string{"resources_test.outResult", "fx.Out results are not supported"},
		},
		{
			name:     "WorkerResult",
			give:     resources.PerWorker(workerResult),
			wantMsgs: []string{"resources_test.workerResult", "resources.Worker is provided by the pool"},
		},
		{
			name:     "NilOption",
			give:     resources.PerWorker(newPlainA, nil),
			wantMsgs: []string{"*resources_test.A made by", "resources_test.newPlainA", "nil option"},
		},
		{
			name:     "EmptyName",
			give:     resources.PerWorker(newPlainA, resources.Name("")),
			wantMsgs: []string{"resources_test.newPlainA", "empty resources.Name"},
		},
		{
			name:     "ZeroDeclaration",
			give:     resources.Declaration{},
			wantMsgs: []string{"zero Declaration"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := plan.New[*A](tt.give)
			if p != nil || !errors.Is(err, resources.ErrInvalidConstructor) {
				t.Fatalf("New() = %v, %v; want no plan and ErrInvalidConstructor", p, err)
			}
			for _, want := range tt.wantMsgs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}

func TestNewReportsEveryInvalidDeclaration(t *testing.T) {
	_, err := plan.New[*A](
		resources.PerWorker(noResults),
		resources.PerWorker(newPlainA),
		resources.PerWorker(intSecond),
		resources.PerWorker(newPlainA), // a duplicate, reported as well
	)
	for _, want := range []string{"noResults", "intSecond", "two constructors of one type"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New() = %v, want it to mention %q", err, want)
		}
	}
	if !errors.Is(err, resources.ErrInvalidConstructor) || !errors.Is(err, resources.ErrDuplicate) {
		t.Errorf("New() = %v, want ErrInvalidConstructor and ErrDuplicate", err)
	}
}

func TestDeclarationString(t *testing.T) {
	tests := []struct {
		name       string
		give       resources.Declaration
		wantPrefix string
		wantSuffix string
	}{
		{
			name:       "Zero",
			give:       resources.Declaration{},
			wantPrefix: "resources.PerWorker(<invalid>)",
		},
		{
			name:       "Invalid",
			give:       resources.PerWorker(42),
			wantPrefix: "resources.PerWorker(<invalid>)",
		},
		{
			name:       "DefaultName",
			give:       resources.PerWorker(newPlainA),
			wantPrefix: "*resources_test.A made by github.com/fxpool/fxpool/resources_test.newPlainA (resources/",
			wantSuffix: ")",
		},
		{
			name:       "Named",
			give:       resources.PerWorker(newPlainA, resources.Name("alpha")),
			wantPrefix: "alpha made by github.com/fxpool/fxpool/resources_test.newPlainA (",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.give.String()
			if !strings.HasPrefix(got, tt.wantPrefix) || !strings.HasSuffix(got, tt.wantSuffix) {
				t.Errorf("String() = %q, want %q...%q", got, tt.wantPrefix, tt.wantSuffix)
			}
		})
	}
}

func TestNameString(t *testing.T) {
	if got, want := resources.Name(`conn "rw"`).String(), `resources.Name("conn \"rw\"")`; got != want {
		t.Errorf("String() = %s, want %s", got, want)
	}
}

func TestCheckString(t *testing.T) {
	if got, want := resources.Check(func(context.Context, *A) error { return nil }).String(), "resources.Check[*resources_test.A](...)"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}
