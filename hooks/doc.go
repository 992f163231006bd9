// Package hooks holds the LIFO cleanup stack that fxpool builds every
// worker's teardown on: Go's answer to Python's contextlib.ExitStack.
//
// # Ownership
//
// A [Stack] is owned by whoever opens resources: each time an open succeeds,
// the owner pushes the matching cleanup with [Stack.Push]. When the owner is
// done — or when a later open fails — it calls [Stack.Close], which runs every
// cleanup exactly once, the last pushed first.
//
// # Failure
//
// [Stack.Close] keeps going past a failing cleanup, turns a panicking cleanup
// into a [*PanicError] carrying its stack and a cleanup that calls
// [runtime.Goexit] into [ErrGoexit], and joins every error with
// [errors.Join], so that [errors.Is] and [errors.As] see each of them. Each
// error is a [*CleanupError] that names the resource it belongs to. The
// cleanups run on a goroutine of Close's own, so a Goexit ends that one, not
// the caller of Close.
//
// Close never blocks past its context: if a cleanup is still running when the
// context ends, Close returns an error naming it and the cleanups still
// waiting behind it. Those finish in the background, in order, once the
// stuck one returns; their errors are then dropped.
package hooks
