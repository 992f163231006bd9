package plan_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/fxpool/fxpool/internal/plan"
	"github.com/fxpool/fxpool/resources"
)

type probe struct{ ok bool }

func TestCheck(t *testing.T) {
	t.Run("WrongType", func(t *testing.T) {
		d := resources.PerWorker(func() *probe { return &probe{} },
			resources.Check(func(context.Context, string) error { return nil }))
		_, err := plan.New[*probe](d)
		if !errors.Is(err, resources.ErrInvalidConstructor) || !strings.Contains(err.Error(), "resources.Check takes string, not *plan_test.probe") {
			t.Errorf("New() = %v, want an error naming both types", err)
		}
	})
	t.Run("Nil", func(t *testing.T) {
		d := resources.PerWorker(func() *probe { return &probe{} }, resources.Check[*probe](nil))
		if _, err := plan.New[*probe](d); err == nil || !strings.Contains(err.Error(), "nil resources.Check") {
			t.Errorf("New() = %v, want an error", err)
		}
	})
	t.Run("RunsInOpenOrderAndNamesTheFailure", func(t *testing.T) {
		var order []string
		p, err := plan.New[*probe](
			resources.PerWorker(func() *probe { return &probe{ok: false} }, resources.Name("probe"),
				resources.Check(func(_ context.Context, p *probe) error {
					order = append(order, "probe")
					if !p.ok {
						return errors.New("unhealthy")
					}
					return nil
				})),
		)
		if err != nil {
			t.Fatal(err)
		}
		scope, err := p.Open(t.Context(), resources.Worker{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer scope.Close(t.Context())
		err = scope.Check(t.Context())
		if err == nil || err.Error() != "resources: check probe: unhealthy" || len(order) != 1 {
			t.Errorf("Check() = %v after %v, want the failure named", err, order)
		}
	})
	t.Run("PanicIsAFailure", func(t *testing.T) {
		p, err := plan.New[*probe](resources.PerWorker(func() *probe { return &probe{} },
			resources.Check(func(context.Context, *probe) error { panic("boom") })))
		if err != nil {
			t.Fatal(err)
		}
		scope, err := p.Open(t.Context(), resources.Worker{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer scope.Close(t.Context())
		if err := scope.Check(t.Context()); err == nil || !strings.Contains(err.Error(), "panic: boom") {
			t.Errorf("Check() = %v, want the panic as an error", err)
		}
	})
}
