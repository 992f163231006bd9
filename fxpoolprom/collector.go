// Package fxpoolprom exports the [workerpool.Stats] of every pool of an fx
// app to Prometheus. It is a module of its own, so that programs that use
// fxpool without Prometheus never download it.
//
// Add [Module] next to fxpool.Module; it registers a [Collector] with the
// app's prometheus.Registerer:
//
//	fx.New(
//		fxpool.Module,
//		fxpoolprom.Module,
//		fx.Supply(fx.Annotate(prometheus.DefaultRegisterer, fx.As(new(prometheus.Registerer)))),
//		workerpool.Provide[Deps]("indexer", ...),
//	)
package fxpoolprom

import (
	"github.com/fxpool/fxpool/workerpool"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/fx"
)

// Module provides a [Collector] for the pools in the app's
// [workerpool.Registry] (which fxpool.Module provides) and registers it
// with the app's prometheus.Registerer.
var Module = fx.Module("fxpoolprom",
	fx.Provide(NewCollector),
	fx.Invoke(func(r prometheus.Registerer, c *Collector) error { return r.Register(c) }),
)

// Collector is a prometheus.Collector of the stats of every pool in a
// [workerpool.Registry], labelled with the pool's name. Each scrape reads
// [workerpool.Pool.Stats], which never blocks. It is safe for concurrent
// use.
type Collector struct {
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
		reg: reg,
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

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	gauge, counter := prometheus.GaugeValue, prometheus.CounterValue
	for pool, s := range c.reg.Stats() {
		ch <- prometheus.MustNewConstMetric(c.workers, gauge, float64(s.Workers), pool, "serving")
		ch <- prometheus.MustNewConstMetric(c.workers, gauge, float64(s.Opening), pool, "opening")
		ch <- prometheus.MustNewConstMetric(c.workers, gauge, float64(s.Closing), pool, "closing")
		ch <- prometheus.MustNewConstMetric(c.busy, gauge, float64(s.Busy), pool)
		ch <- prometheus.MustNewConstMetric(c.queued, gauge, float64(s.Queued), pool)
		ch <- prometheus.MustNewConstMetric(c.tasks, counter, float64(s.Done-s.Failed), pool, "ok")
		ch <- prometheus.MustNewConstMetric(c.tasks, counter, float64(s.Failed-s.Panics), pool, "failed")
		ch <- prometheus.MustNewConstMetric(c.tasks, counter, float64(s.Panics), pool, "panicked")
		ch <- prometheus.MustNewConstMetric(c.tasks, counter, float64(s.Dropped), pool, "dropped")
		ch <- prometheus.MustNewConstMetric(c.rebuilt, counter, float64(s.Restarts), pool, "restart")
		ch <- prometheus.MustNewConstMetric(c.rebuilt, counter, float64(s.Recycles), pool, "recycle")
	}
}
