// Package safe turns panics into errors: the one recover block of fxpool.
package safe

import (
	"fmt"
	"runtime/debug"
)

// PanicError is a recovered panic: the value given to panic and the stack
// of the goroutine that panicked.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// Unwrap returns the panic's value if it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// Recovered turns the value of recover() into a *PanicError, or nil.
func Recovered(r any) error {
	if r == nil {
		return nil
	}
	return &PanicError{Value: r, Stack: debug.Stack()}
}

// Call calls f and returns its panic as a *PanicError, or nil.
func Call(f func()) (err error) {
	defer func() { err = Recovered(recover()) }()
	f()
	return nil
}
