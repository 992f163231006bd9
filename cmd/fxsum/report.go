package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sync"
	"sync/atomic"
)

// counters are the figures of one run, updated by the walker, the counting
// walk and the workers.
type counters struct {
	found, foundBytes         atomic.Int64 // the total, once exact is set
	exact                     atomic.Bool  // the walk has found everything
	counted, countedBytes     atomic.Int64 // by the counting walk, so far
	seen, seenBytes           atomic.Int64 // by the walker
	unchanged, unchangedBytes atomic.Int64 // skipped: already indexed
	hashed, hashedBytes       atomic.Int64 // hashed this run
	readBytes                 atomic.Int64 // read so far, for progress
	committed                 atomic.Int64 // rows committed this run
	removed                   atomic.Int64 // rows of files that are gone
	problems                  atomic.Int64 // unreadable, changed while hashed
}

// total is the number of files and bytes of the run: the files are exact
// once the walk is complete, otherwise the most that the counting walk or
// the walk has found so far. (The counting walk may still be adding when
// the walk has completed: its count of files is then ignored.) The bytes
// are the most either has found: the walk stats only the files that are
// in the index already, so its bytes leave out those of new files, which
// only the counting walk adds up.
func (c *counters) total() (files, bytes int64) {
	bytes = max(c.countedBytes.Load(), c.seenBytes.Load())
	if c.exact.Load() {
		return c.found.Load(), max(bytes, c.foundBytes.Load())
	}
	return max(c.counted.Load(), c.seen.Load()), bytes
}

// reporter prints messages on stderr without tearing the progress bar. It
// is safe for concurrent use.
type reporter struct {
	mu    sync.Mutex
	w     io.Writer
	clear func()
}

func (r *reporter) printf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.clear != nil {
		r.clear()
	}
	fmt.Fprintf(r.w, format, args...)
}

func (r *reporter) setClear(f func()) {
	r.mu.Lock()
	r.clear = f
	r.mu.Unlock()
}

// describe is "path: reason" for a message, with the *PathError's own path
// dropped.
func describe(path string, err error) string {
	return displayPath(path) + ": " + describeErr(err)
}

// describeErr is an error's message without the path of a *fs.PathError.
func describeErr(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// displayPath quotes a path that has control characters in it.
func displayPath(p string) string {
	for _, c := range p {
		if c < 0x20 || c == 0x7f {
			return fmt.Sprintf("%q", p)
		}
	}
	return p
}

func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
