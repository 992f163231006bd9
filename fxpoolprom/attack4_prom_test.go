package fxpoolprom_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/fxpool/fxpool"
	"github.com/fxpool/fxpool/fxpoolprom"
	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
)

// TestAttack4CountersNeverGoBackwards: every counter the collector
// reports (tasks by outcome, rebuilds) is a Prometheus counter: between two
// scrapes it never decreases (a decrease reads as a reset), and never
// wraps around below zero, while tasks of Go and Do fail and succeed.
func TestAttack4CountersNeverGoBackwards(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	var pool *workerpool.Pool[resources.Worker]
	app := fxtest.New(t,
		fxpool.Module,
		fxpoolprom.Module,
		fx.Supply(fx.Annotate(reg, fx.As(new(prometheus.Registerer)))),
		workerpool.Provide[resources.Worker]("a4prom", workerpool.Workers(2), workerpool.ErrorHandler(func(error) {})),
		fx.Populate(&pool),
	)
	app.RequireStart()
	defer app.RequireStop()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 3 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				task := func(context.Context, resources.Worker) error {
					if i%2 == 0 {
						return errors.New("fails")
					}
					return nil
				}
				if g == 0 {
					_ = pool.Do(context.Background(), task)
				} else {
					_ = pool.Go(context.Background(), task)
				}
			}
		})
	}
	last := map[string]float64{}
	bad := 0
	for range 3000 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetType().String() != "COUNTER" {
				continue
			}
			for _, m := range mf.GetMetric() {
				key := mf.GetName()
				for _, lp := range m.GetLabel() {
					key += "," + lp.GetName() + "=" + lp.GetValue()
				}
				v := m.GetCounter().GetValue()
				if v < last[key] || v > 1e15 {
					bad++
					if bad < 10 {
						t.Errorf("%s went from %v to %v", key, last[key], v)
					}
				}
				last[key] = v
			}
		}
	}
	close(stop)
	wg.Wait()
	if bad > 0 {
		t.Errorf("%d counter decreases or wraparounds", bad)
	}
}
