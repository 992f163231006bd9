package main

import (
	"context"
	"sync"
)

// Early hashing. A folder that has no rows in the index yet (a new index,
// a new folder) is hashed as it is listed: the walker hands each file to
// the pool as soon as the file system lists it, in the order it lists
// them, as long as the pool has fewer than earlyInFlight tasks to run.
// Otherwise the first file of a large folder would be hashed only once the
// whole folder is listed and sorted (150,000 names: more than a tenth of
// the run, one core busy, the other idle).
//
// Rows must still reach the index in key order, (dir, name): rows in the
// order of the listing, a hash order, cost many times the page writes. So
// an early file's row is held until the sorted walk reaches the file (see
// earlyFile), and then added to a batch with its neighbours. The rows held
// are at most the files hashed while the folder was listed and sorted.

// earlyInFlight is, per worker, the most tasks in the pool for which the
// walker still starts an early file: enough to keep the workers busy from
// one system call of the listing to the next, well below the pool's queue
// (queuePerWorker), so that a submit does not wait.
const earlyInFlight = queuePerWorker / 2

// readyRows is the most held rows the walker gives the pool in one task.
const readyRows = 256

// earlyFile is a file hashed before the sorted walk reached it. Its task
// and the walk each mark their part done; whoever comes second adds the
// row: the task, to its worker's batch, if the walk was there first; the
// walker, to the rows it hands to the pool in order, otherwise. Neither
// waits for the other.
type earlyFile struct {
	mu     sync.Mutex
	hashed bool    // the task is done with the file
	row    fileRow // if ok
	ok     bool    // the file was hashed: row is its row
	walked bool    // the sorted walk has reached the file
}

// hashedAs records what the task made of the file and reports whether the
// task adds the row itself (the walk has passed the file).
func (e *earlyFile) hashedAs(row fileRow, ok bool) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.hashed = true
	if e.walked {
		return ok
	}
	e.row, e.ok = row, ok
	return false
}

// reached records that the sorted walk has reached the file and returns its
// row, if the task has hashed it already: the walker adds it.
func (e *earlyFile) reached() (fileRow, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.walked = true
	row, ok := e.row, e.hashed && e.ok
	e.row = fileRow{}
	return row, ok
}

// earlyTask hashes the file of e.
func (r *indexRun) earlyTask(dir, name string, e *earlyFile) func(context.Context, indexDeps) error {
	return func(ctx context.Context, d indexDeps) error {
		row, ok := r.hash(ctx, d, dir, name, false)
		if e.hashedAs(row, ok) {
			return r.add(ctx, d, row)
		}
		return nil
	}
}

// addTask adds held rows to the worker's batch.
func (r *indexRun) addTask(rows []fileRow) func(context.Context, indexDeps) error {
	return func(ctx context.Context, d indexDeps) error {
		for _, row := range rows {
			if err := r.add(ctx, d, row); err != nil {
				return err
			}
		}
		return nil
	}
}

// earlyVisitor is a visitor that hashes files as they are listed.
type earlyVisitor interface {
	// early returns, for the directory last entered, the function that
	// starts hashing a regular file of it as soon as it is listed, or nil
	// if its files are not to be hashed early. That function returns nil
	// when it does not start the file (not now); the walk then visits the
	// file as usual.
	early(ctx context.Context, dir string) func(name string) *earlyFile
	// fileEarly is called, in place of file, when the sorted walk
	// reaches a file that was started early.
	fileEarly(ctx context.Context, dir, name string, e *earlyFile) error
}

func (v *indexVisitor) early(_ context.Context, dir string) func(name string) *earlyFile {
	if v.run.queue != nil || v.cur.ok {
		return nil // hashed elsewhere, or a folder with rows: the merge decides
	}
	most := int64(earlyInFlight * max(v.run.opts.workers, 1))
	return func(name string) *earlyFile {
		if v.s.pending.Load()-1 >= most {
			return nil
		}
		e := &earlyFile{}
		if v.s.submit(v.run.earlyTask(dir, name, e)) != nil {
			return nil // the walk submits it again and meets the error
		}
		return e
	}
}

func (v *indexVisitor) fileEarly(_ context.Context, _, name string, e *earlyFile) error {
	v.run.c.seen.Add(1)
	v.seek(name) // the folder has no rows: nothing to pass
	if row, ok := e.reached(); ok {
		v.ready = append(v.ready, row)
		if len(v.ready) >= readyRows {
			return v.flushReady()
		}
	}
	return nil
}

// flushReady hands the rows of early files that the walk has reached to the
// pool, in one task.
func (v *indexVisitor) flushReady() error {
	if len(v.ready) == 0 {
		return nil
	}
	rows := v.ready
	v.ready = nil
	return v.s.submit(v.run.addTask(rows))
}
