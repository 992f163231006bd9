package fxpooltest_test

import (
	"fmt"
	"sync"
)

// fakeT is a TB that keeps what is reported to it.
type fakeT struct {
	mu     sync.Mutex
	errs   []string
	failed bool
}

// errFailNow is what fakeT.FailNow panics with.
var errFailNow = fmt.Errorf("FailNow")

func (f *fakeT) Logf(string, ...any) {}

func (f *fakeT) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs = append(f.errs, fmt.Sprintf(format, args...))
}

func (f *fakeT) FailNow() {
	f.mu.Lock()
	f.failed = true
	f.mu.Unlock()
	panic(errFailNow)
}

func (f *fakeT) errors() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.errs...)
}

// failsNow runs f and reports whether it called FailNow.
func failsNow(f func()) (failed bool) {
	defer func() {
		if r := recover(); r != nil {
			if r != errFailNow {
				panic(r)
			}
			failed = true
		}
	}()
	f()
	return false
}
