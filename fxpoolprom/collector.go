// Package fxpoolprom exports the [workerpool.Stats] of every pool of an fx
// app to Prometheus. It is a module of its own, so that programs that use
// fxpool without Prometheus never download it.
//
// Add [Module] next to fxpool.Module; it registers a [Collector] with the
// app's prometheus.Registerer while the app runs:
//
//	fx.New(
//		fxpool.Module,
//		fxpoolprom.Module,
//		fx.Supply(fx.Annotate(prometheus.DefaultRegisterer, fx.As(new(prometheus.Registerer)))),
//		workerpool.Provide[Deps]("indexer", ...),
//	)
//
// The collector is registered when the app starts and unregistered when it
// stops, so apps that share a Registerer (DefaultRegisterer, in a test
// suite or a program that restarts its app) may run one after the other;
// two that run at once collide, and the second one's start fails with
// prometheus's error (prometheus.AlreadyRegisteredError).
package fxpoolprom

import (
	"context"
	"fmt"
	"sync"

	"github.com/fxpool/fxpool/workerpool"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/fx"
)

// Module provides a [Collector] for the pools in the app's
// [workerpool.Registry] (which fxpool.Module provides) and registers it
// with the app's prometheus.Registerer from the app's start to its stop.
var Module = fx.Module("fxpoolprom",
	fx.Provide(NewCollector),
	fx.Invoke(register),
)

// register registers c with r in an OnStart hook and unregisters it in the
// matching OnStop hook, which fx runs only if the OnStart succeeded.
func register(lc fx.Lifecycle, r prometheus.Registerer, c *Collector) {
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error {
			if err := r.Register(c); err != nil {
				return fmt.Errorf("fxpoolprom: register the collector: %w", err)
			}
			return nil
		},
		OnStop: func(context.Context) error {
			r.Unregister(c)
			return nil
		},
	})
}

// Collector is a prometheus.Collector of the stats of every pool in a
// [workerpool.Registry], labelled with the pool's name. Each scrape reads
// [workerpool.Pool.Stats], which never blocks. It is safe for concurrent
// use.
//
// Its counters never decrease, as Prometheus requires (a decrease reads as
// a reset): Stats reads a pool's counters one by one, so ok (Done less
// Failed) and failed (Failed less Panics) computed from one snapshot may
// be below what an earlier scrape reported; the collector then reports
// the earlier value again until the pool's counters catch up.
type Collector struct {
	mu   sync.Mutex
	last map[string]*counts // by pool: the counters last reported

	reg     *workerpool.Registry
	workers *prometheus.Desc
	busy    *prometheus.Desc
	queued  *prometheus.Desc
	tasks   *prometheus.Desc
	rebuilt *prometheus.Desc
}

// NewCollector returns a collector of the pools in reg.
func NewCollector(reg *workerpool.Registry) *Collector {
	pool := []string{"pool"}
	return &Collector{
		last: map[string]*counts{},
		reg:  reg,
		workers: prometheus.NewDesc("fxpool_workers",
			"Workers of the pool by state: serving, opening (or rebuilding) or closing their resources.",
			[]string{"pool", "state"}, nil),
		busy: prometheus.NewDesc("fxpool_workers_busy",
			"Workers running a task.", pool, nil),
		queued: prometheus.NewDesc("fxpool_tasks_queued",
			"Accepted tasks waiting for a worker.", pool, nil),
		tasks: prometheus.NewDesc("fxpool_tasks_total",
			"Tasks by outcome: ok (ran and returned nil), failed (returned an error), panicked, dropped (never ran; the submitter was told).",
			[]string{"pool", "outcome"}, nil),
		rebuilt: prometheus.NewDesc("fxpool_worker_rebuilds_total",
			"Times a worker rebuilt its resources: restart (after a panic, ErrBroken or a failed check) or recycle (MaxTasksPerWorker, MaxWorkerAge).",
			[]string{"pool", "reason"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.workers, c.busy, c.queued, c.tasks, c.rebuilt} {
		ch <- d
	}
}

// counts are the counters of one pool that a scrape reported.
type counts struct {
	ok, failed, panicked, dropped, restarts, recycles uint64
}

// raise returns the counter *last raised to v if v is higher: a counter
// never goes back.
func raise(last *uint64, v uint64) float64 {
	*last = max(*last, v)
	return float64(*last)
}

// raiseDiff is raise of a - b, where a snapshot may have read b after it
// grew past a.
func raiseDiff(last *uint64, a, b uint64) float64 {
	if a < b {
		return float64(*last)
	}
	return raise(last, a-b)
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	gauge, counter := prometheus.GaugeValue, prometheus.CounterValue
	stats := c.reg.Stats()
	var metrics []prometheus.Metric
	add := func(d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
		metrics = append(metrics, prometheus.MustNewConstMetric(d, t, v, labels...))
	}
	c.mu.Lock()
	for pool, s := range stats {
		last := c.last[pool]
		if last == nil {
			last = &counts{}
			c.last[pool] = last
		}
		add(c.workers, gauge, float64(s.Workers), pool, "serving")
		add(c.workers, gauge, float64(s.Opening), pool, "opening")
		add(c.workers, gauge, float64(s.Closing), pool, "closing")
		add(c.busy, gauge, float64(s.Busy), pool)
		add(c.queued, gauge, float64(s.Queued), pool)
		add(c.tasks, counter, raiseDiff(&last.ok, s.Done, s.Failed), pool, "ok")
		add(c.tasks, counter, raiseDiff(&last.failed, s.Failed, s.Panics), pool, "failed")
		add(c.tasks, counter, raise(&last.panicked, s.Panics), pool, "panicked")
		add(c.tasks, counter, raise(&last.dropped, s.Dropped), pool, "dropped")
		add(c.rebuilt, counter, raise(&last.restarts, s.Restarts), pool, "restart")
		add(c.rebuilt, counter, raise(&last.recycles, s.Recycles), pool, "recycle")
	}
	c.mu.Unlock()
	for _, m := range metrics {
		ch <- m
	}
}
