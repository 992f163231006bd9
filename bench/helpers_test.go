package bench

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// pending counts the tasks of a fire-and-forget benchmark that have not run
// yet. It is a package variable so that a task can count itself done without
// capturing anything: benchmarks run one at a time.
var pending sync.WaitGroup

// taskKind is what a task does.
type taskKind struct {
	name string
	// static: the task captures nothing, so making it allocates nothing.
	static bool
	// micro: the task spins for about 1µs.
	micro bool
}

var (
	trivialTask = taskKind{name: "trivial"}
	staticTask  = taskKind{name: "static", static: true}
	microTask   = taskKind{name: "1us", micro: true}
)

// steps is the number of spin steps of the task: 0 for a trivial one.
func (k taskKind) steps() int {
	if k.micro {
		return SpinMicro()
	}
	return 0
}

// widths are the worker counts every dispatch figure is measured at.
var widths = []int{2, 64}

// callers is the number of goroutines that submit concurrently in the
// request/response figures.
const callers = 64

// impl is one implementation of a figure.
type impl[F any] struct {
	name string
	run  F
}

// runWidthsTasks runs each impl for every width and task kind, as
// W=<w>/task=<task>/impl=<name>.
func runWidthsTasks(b *testing.B, kinds []taskKind, impls []impl[func(*testing.B, int, taskKind)]) {
	for _, w := range widths {
		b.Run(fmt.Sprintf("W=%d", w), func(b *testing.B) {
			for _, k := range kinds {
				b.Run("task="+k.name, func(b *testing.B) {
					for _, im := range impls {
						if k.static && !supportsStatic(im.name) {
							continue
						}
						b.Run("impl="+im.name, func(b *testing.B) {
							b.ReportAllocs()
							im.run(b, w, k)
						})
					}
				})
			}
		})
	}
}

// supportsStatic reports whether an impl has a task form that captures
// nothing. A typed pool never makes a closure, so the figure says nothing new.
func supportsStatic(name string) bool {
	switch name {
	case "floor-typed", "tunny":
		return false
	}
	return true
}

// splitN divides n among k callers.
func splitN(n, k, i int) int {
	share := n / k
	if i < n%k {
		share++
	}
	return share
}

// runCallers runs b.N calls from callers goroutines, each with its own reply
// channel made before the timer starts, and waits for them. call gets the
// call's index and the caller's reply channel.
func runCallers(b *testing.B, call func(i int, reply chan struct{})) {
	var wg sync.WaitGroup
	replies := make([]chan struct{}, callers)
	for c := range replies {
		replies[c] = make(chan struct{}, 1)
	}
	b.ResetTimer()
	start := 0
	for c := range callers {
		n := splitN(b.N, callers, c)
		wg.Add(1)
		go func(first, n int, reply chan struct{}) {
			defer wg.Done()
			for i := first; i < first+n; i++ {
				call(i, reply)
			}
		}(start, n, replies[c])
		start += n
	}
	wg.Wait()
	b.StopTimer()
}

// ctxTimeout bounds every start and stop, so that a stuck pool fails the
// benchmark instead of hanging it.
const ctxTimeout = 30 * time.Second
