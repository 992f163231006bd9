package workerpool

import (
	"fmt"
	"runtime"
	"strings"

	"github.com/fxpool/fxpool/resources"
)

// An Option configures a pool made by [Provide]. Each option is a named
// value whose String is how it was written; an invalid value makes fx.New
// fail, naming the pool and the option.
type Option interface {
	apply(*config) error
	String() string
}

type config struct {
	workers          int
	queue            int // -1: the default, 4 × workers
	startConcurrency int // 0: all workers at once
	decls            []resources.Declaration
	named            bool
	onError          func(error)
}

func newConfig(opts []Option) (config, error) {
	c := config{workers: runtime.GOMAXPROCS(0), queue: -1}
	for _, o := range opts {
		if o == nil {
			return c, fmt.Errorf("nil option")
		}
		if err := o.apply(&c); err != nil {
			return c, fmt.Errorf("%v: %w", o, err)
		}
	}
	if c.queue < 0 {
		c.queue = 4 * c.workers
	}
	if c.startConcurrency == 0 || c.startConcurrency > c.workers {
		c.startConcurrency = c.workers
	}
	return c, nil
}

// Workers sets how many workers the pool runs, each with its own resources.
// The default is runtime.GOMAXPROCS(0). n must be at least 1.
func Workers(n int) Option { return workersOption(n) }

type workersOption int

func (o workersOption) apply(c *config) error {
	if o < 1 {
		return fmt.Errorf("must be at least 1")
	}
	c.workers = int(o)
	return nil
}

func (o workersOption) String() string { return fmt.Sprintf("workerpool.Workers(%d)", int(o)) }

// QueueSize sets how many accepted tasks may wait for a worker. When the
// queue is full, [Pool.Go] blocks and [Pool.TryGo] refuses. 0 makes every
// submission wait for a free worker. The default is 4 × Workers.
func QueueSize(n int) Option { return queueOption(n) }

type queueOption int

func (o queueOption) apply(c *config) error {
	if o < 0 {
		return fmt.Errorf("must not be negative")
	}
	c.queue = int(o)
	return nil
}

func (o queueOption) String() string { return fmt.Sprintf("workerpool.QueueSize(%d)", int(o)) }

// StartConcurrency bounds how many workers open their resources at once
// while the pool starts: useful when the resources share a server that
// limits new connections. The default is all workers at once.
func StartConcurrency(n int) Option { return startConcurrencyOption(n) }

type startConcurrencyOption int

func (o startConcurrencyOption) apply(c *config) error {
	if o < 1 {
		return fmt.Errorf("must be at least 1")
	}
	c.startConcurrency = int(o)
	return nil
}

func (o startConcurrencyOption) String() string {
	return fmt.Sprintf("workerpool.StartConcurrency(%d)", int(o))
}

// Resources declares the resources every worker opens for itself; see
// package resources. Several Resources options add up.
func Resources(decls ...resources.Declaration) Option { return resourcesOption(decls) }

type resourcesOption []resources.Declaration

func (o resourcesOption) apply(c *config) error {
	c.decls = append(c.decls, o...)
	return nil
}

func (o resourcesOption) String() string {
	names := make([]string, len(o))
	for i, d := range o {
		names[i] = d.String()
	}
	return fmt.Sprintf("workerpool.Resources(%s)", strings.Join(names, ", "))
}

// Named provides the pool to fx under its name, as a value tagged
// name:"<pool name>", so that several pools with the same task parameter
// can live in one app.
func Named() Option { return namedOption{} }

type namedOption struct{}

func (namedOption) apply(c *config) error { c.named = true; return nil }
func (namedOption) String() string        { return "workerpool.Named()" }

// ErrorHandler receives the errors of tasks submitted with [Pool.Go] and
// [Pool.TryGo], whose submitters do not wait for them, and the [ErrClosed]
// of such tasks that never ran. It runs on the worker's goroutine and must
// be safe for concurrent use. The default logs each error.
func ErrorHandler(f func(error)) Option { return errorHandlerOption{f} }

type errorHandlerOption struct{ f func(error) }

func (o errorHandlerOption) apply(c *config) error {
	if o.f == nil {
		return fmt.Errorf("nil func")
	}
	c.onError = o.f
	return nil
}

func (errorHandlerOption) String() string { return "workerpool.ErrorHandler(...)" }
