package jetstream

import (
	"errors"
	"fmt"
)

// ErrPermanent marks a handler's error that no retry can cure: a message
// whose handler returns an error wrapping it is Term'd at once, with the
// error as the reason, and given to the [DeadLetter] hook. Wrap an error
// with [Permanent], or with fmt.Errorf("...: %w", ErrPermanent).
var ErrPermanent = errors.New("jetstream: permanent failure")

// ErrStopping is the cause of the context of the tasks still running when
// the consumer's stop gives up waiting for them (see [Consumer.Stop]).
var ErrStopping = errors.New("jetstream: consumer stopping")

// Permanent wraps err so that it also wraps [ErrPermanent]: the message is
// Term'd instead of retried. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

type permanentError struct{ err error }

func (e permanentError) Error() string   { return fmt.Sprintf("permanent: %v", e.err) }
func (e permanentError) Unwrap() []error { return []error{e.err, ErrPermanent} }
