package callsite

import (
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"go.uber.org/fx"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestShort(t *testing.T) {
	tests := []struct{ give, want string }{
		{"/build/app/cmd/main.go", "cmd/main.go"},
		{"cmd/main.go", "cmd/main.go"},
		{"main.go", "main.go"},
	}
	for _, tt := range tests {
		if got := Short(tt.give); got != tt.want {
			t.Errorf("Short(%q) = %q, want %q", tt.give, got, tt.want)
		}
	}
}

type annotated struct{}

func provideHere() (fx.Option, int) {
	target := reflect.MakeFunc(reflect.TypeFor[func() *annotated](), func([]reflect.Value) []reflect.Value {
		return []reflect.Value{reflect.ValueOf(&annotated{})}
	}).Interface()
	_, _, line, _ := runtime.Caller(1)
	return fx.Provide(Annotate(Caller(1), target)), line
}

// Two providers of one type: dig names the call site of each, and the
// constructor still works.
func TestAnnotateNamesTheCallSite(t *testing.T) {
	a, lineA := provideHere()
	b, lineB := provideHere()
	err := fx.New(fx.NopLogger, a, b).Err()
	for _, want := range []string{
		`cannot provide function "github.com/fxpool/fxpool/internal/callsite".TestAnnotateNamesTheCallSite (`,
		fmt.Sprintf("callsite_test.go:%d): cannot provide *callsite.annotated from [0]: already provided by ", lineB),
		`already provided by "github.com/fxpool/fxpool/internal/callsite".TestAnnotateNamesTheCallSite (`,
		fmt.Sprintf("callsite_test.go:%d)", lineA),
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("fx.New() = %v\nwant %q", err, want)
		}
	}

	var got *annotated
	if err := fx.New(fx.NopLogger, a, fx.Populate(&got)).Err(); err != nil || got == nil {
		t.Errorf("fx.New() = %v, populated %v, want a value", err, got)
	}
}
