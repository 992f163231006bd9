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
	stateFailed                // past MaxRestarts: no tasks, resources still open
	stateStopping              // OnStop is draining and closing
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
	case stateFailed:
		return "failed"
	case stateStopping:
		return "stopping"
	case stateStopped:
		return "stopped"
	}
	return fmt.Sprintf("state(%d)", int32(s))
}

// transition moves the pool to state to if it is in one of from, and
// reports whether it did. It is the only place the state changes. Leaving
// starting or serving for good ends the pool's life: submitters are
// refused and woken, and workers stop retrying opens.
func (p *Pool[R]) transition(to state, from ...state) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !slices.Contains(from, p.state) {
		return false
	}
	was := p.state
	p.state = to
	p.accepting.Store(to == stateServing)
	if was < stateFailed && to >= stateFailed {
		close(p.closing)
		p.endLife(ErrClosed)
	}
	return true
}

// current returns the pool's state.
func (p *Pool[R]) current() state {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state
}
