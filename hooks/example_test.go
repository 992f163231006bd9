package hooks_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/fxpool/fxpool/hooks"
)

// Push a cleanup after each successful open; Close runs them last pushed
// first, keeps going past a failure and reports it by name.
func ExampleStack() {
	var s hooks.Stack
	_ = s.Push("db", func(context.Context) error {
		fmt.Println("close db")
		return nil
	})
	_ = s.Push("conn", func(context.Context) error {
		fmt.Println("close conn")
		return errors.New("connection reset")
	})
	_ = s.Push("batch", func(context.Context) error {
		fmt.Println("commit batch")
		return nil
	})

	fmt.Println("Close:", s.Close(context.Background()))
	fmt.Println("again:", s.Close(context.Background()))
	// Output:
	// commit batch
	// close conn
	// close db
	// Close: close conn: connection reset
	// again: <nil>
}

// A panicking cleanup becomes a *PanicError of that resource; the cleanups
// after it still run.
func ExampleStack_panics() {
	var s hooks.Stack
	_ = s.Push("file", func(context.Context) error {
		fmt.Println("close file")
		return nil
	})
	_ = s.Push("gpu", func(context.Context) error { panic("driver gone") })

	err := s.Close(context.Background())
	var pe *hooks.PanicError
	fmt.Println(errors.As(err, &pe), pe.Value)
	fmt.Println(err)
	// Output:
	// close file
	// true driver gone
	// close gpu: panic: driver gone
}
