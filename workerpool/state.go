package workerpool

import (
	"fmt"
	"slices"
)

// state is where a pool is in its life. It changes only in
// [Pool.transition], under the pool's lock; see the table in doc.go.
type state int32

const (
	stateNew      state = iota // built, not started
	stateStarting              // OnStart is opening the workers
	stateServing               // started: taking tasks
	stateStopping              // a stop began: feeders stop feeding; tasks still taken
	stateFailed                // past MaxRestarts: no tasks, resources still open
	stateDraining              // no new tasks: the queue drains, the workers close
	stateStopped               // closed for good (also after a failed start)
)

func (s state) String() string {
	switch s {
	case stateNew:
		return "new"
	case stateStarting:
		return "starting"
	case stateServing:
		return "serving"
	case stateStopping:
		return "stopping"
	case stateFailed:
		return "failed"
	case stateDraining:
		return "draining"
	case stateStopped:
		return "stopped"
	}
	return fmt.Sprintf("state(%d)", int32(s))
}

// transition moves the pool to state to if it is in one of from, and
// reports whether it did. It is the only place the state changes; states
// only move forward, in the order of their constants. Leaving starting,
// serving or stopping ends the pool's life: submitters are refused and
// woken, and workers stop retrying opens.
func (p *Pool[R]) transition(to state, from ...state) bool {
	return p.transitionIf(to, nil, from...)
}

// transitionIf is transition that also requires ok, if not nil, to hold
// under the lock.
func (p *Pool[R]) transitionIf(to state, ok func() bool, from ...state) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !slices.Contains(from, p.state) || ok != nil && !ok() {
		return false
	}
	if to == stateStopping {
		p.stopBegun = true
	}
	was := p.state
	p.state = to
	p.accepting.Store(to == stateServing || to == stateStopping)
	if was < stateFailed && to >= stateFailed {
		close(p.closing)
	}
	return true
}

// Serving reports whether the pool takes tasks now: it has started, and
// has neither failed nor begun to refuse tasks for a stop. Before its
// start, a submission fails with [ErrNotStarted]; after, with [ErrClosed].
// A feeder that is given a pool checks it before it feeds.
func (p *Pool[R]) Serving() bool {
	s := p.current()
	return s == stateServing || s == stateStopping
}

// current returns the pool's state.
func (p *Pool[R]) current() state {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state
}
