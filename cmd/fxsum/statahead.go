package main

import (
	"runtime"
	"sync"
)

// Statting on two goroutines. On an unchanged rerun the walker's time is
// mostly one fstatat a file, and the walker is what the run waits for: the
// row reader, on the other core, needs less. So in a folder whose files
// the visitor compares with what it knows, a goroutine of its own stats
// the listing's files from the last one back, while the walker stats and
// visits them from the first one on, until the two meet; the walker then
// takes the helper's results. (A fixed half each kept the walker waiting
// for the helper, which shares its core with the row reader.) A result is
// the state of the file after the listing and before it is visited, as the
// walker's own would be; a file that changes later is caught when it is
// hashed, as always.

// statSplitMin is the fewest files of a folder that are statted on two
// goroutines: below it, starting the goroutine costs more than it saves.
const statSplitMin = 64

// statClaim is how many entries each side takes at a time.
const statClaim = 16

// statesVisitor is a visitor that can tell, for the directory last
// entered, whether it will ask for the state of most of its files.
type statesVisitor interface {
	wantsStates() bool
}

// statResult is the outcome of lstatAt.
type statResult struct {
	st      fileState
	regular bool
	err     error
}

// statAhead is the statting of a directory's sorted listing by a helper
// goroutine from its end, while the walker stats it from its start: every
// regular file not started early that the helper reaches (excluded files
// and the database's too: checking costs about what the stat does).
type statAhead struct {
	results []statResult // of the list; the helper's are complete once done is closed

	mu     sync.Mutex
	lo, hi int  // the walker has taken list[:lo], the helper list[hi:]
	stop   bool // the walker is done with the list

	done chan struct{}
}

// startStatAhead starts the helper on list, the listing of the directory
// open as fd.
func startStatAhead(fd uintptr, dir string, list []dirent) *statAhead {
	a := &statAhead{results: make([]statResult, len(list)), hi: len(list), done: make(chan struct{})}
	go func() {
		defer close(a.done)
		var scratch []byte
		for {
			a.mu.Lock()
			if a.stop || a.hi <= a.lo {
				a.mu.Unlock()
				return
			}
			to := a.hi
			a.hi = max(a.lo, a.hi-statClaim)
			from := a.hi
			a.mu.Unlock()
			for i := to - 1; i >= from; i-- {
				if e := list[i]; e.typ.IsRegular() && e.early == nil {
					r := &a.results[i]
					r.st, r.regular, r.err = lstatAt(fd, dir, e.name, &scratch)
				}
			}
			// The helper only fills a core the others leave: with the
			// walker and the row reader it makes three busy goroutines
			// on two cores, and a goroutine that waits for a core waits
			// for the scheduler's slice, 10 ms, unless one yields.
			runtime.Gosched()
		}
	}()
	return a
}

// result returns the stat of list[i] if the helper has taken it, once the
// helper is done; otherwise it leaves list[i] to the walker, which calls it
// with increasing i.
func (a *statAhead) result(i int) (statResult, bool) {
	if a == nil || i < a.lo { // only the walker writes lo
		return statResult{}, false
	}
	a.mu.Lock()
	if i < a.hi {
		a.lo = min(i+statClaim, a.hi)
		a.mu.Unlock()
		return statResult{}, false
	}
	a.mu.Unlock()
	<-a.done
	return a.results[i], true
}

// close stops the helper and waits for it: the directory's descriptor may
// be closed after. A nil *statAhead is closed.
func (a *statAhead) close() {
	if a == nil {
		return
	}
	a.mu.Lock()
	a.stop = true
	a.mu.Unlock()
	<-a.done
}
