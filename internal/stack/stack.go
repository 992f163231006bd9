// Package stack gives fxpool's own machinery the two methods of a
// hooks.Stack that users never call: [Unwind], which closes a stack on the
// calling goroutine and waits for every cleanup, and [Stuck], which tells
// from another goroutine what a closing stack is stuck in. A worker closes
// its resources with the first, and a stop that runs out of time names the
// hung cleanup with the second.
//
// Package hooks registers them from its init with [Register]; this package
// cannot name hooks.Stack, since hooks imports it, hence the any.
package stack

import "context"

// Set once, by package hooks from its init, before any use.
var (
	unwind func(s any, ctx context.Context) error
	stuck  func(s any, cause error) error
)

// Register sets the functions that [Unwind] and [Stuck] call. Package hooks
// calls it from its init, once; nothing else may.
func Register(u func(s any, ctx context.Context) error, st func(s any, cause error) error) {
	unwind, stuck = u, st
}

// Unwind runs every cleanup pushed on s, a *hooks.Stack, once, the last
// pushed first, on the calling goroutine, and returns their errors joined.
// Unlike Close it does not return before every cleanup has: it suits an
// owner whose own goroutine can afford to wait, and which reports a hang
// with [Stuck] from another goroutine. A second Unwind, or an Unwind after
// Close, is a no-op that returns nil.
func Unwind(s any, ctx context.Context) error { return unwind(s, ctx) }

// Stuck reports, while the *hooks.Stack s is being closed, the errors of
// the cleanups that have returned, joined with a *hooks.CleanupError that
// wraps hooks.ErrStuck and cause and names the cleanup running now and
// those waiting behind it. It returns only the errors so far once every
// cleanup has returned, and nil before the stack is closed. It does not
// block.
func Stuck(s any, cause error) error { return stuck(s, cause) }
