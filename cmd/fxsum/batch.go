package main

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// writeLock serializes this process's write transactions. SQLite allows
// one writer at a time; a connection that finds the database locked sleeps
// in its busy handler for up to 100 ms before it tries again, while a
// goroutine waiting here wakes as soon as the lock is free. busy_timeout
// still covers other processes.
type writeLock struct{ sync.Mutex }

// fileRow is one row of the files table.
type fileRow struct {
	dir    string
	name   string
	state  fileState
	algo   string
	digest []byte
	// racyAt, if not zero, is when the file was read, within racyWindow
	// of its modification time: the row's indexed_ns, instead of the
	// commit's time, so that the next run's lookup does not find it
	// unchanged (see lookupRows).
	racyAt int64
}

// rowOf is the row of the file dir/name hashed as res with algo.
func rowOf(dir, name, algo string, res hashResult) fileRow {
	r := fileRow{dir: dir, name: name, state: res.state, algo: algo, digest: res.digest}
	if res.racy() {
		r.racyAt = res.readAt
	}
	return r
}

// insertRows is the statement that inserts or replaces n rows of one
// directory, digested with one algorithm at one time: the directory, the
// algorithm and the time are bound once, then four parameters a row
// (name, size, mtime, digest). Each bound value costs the driver a lookup of
// its name, a call into SQLite under its mutex and, for text, a copy; a row
// of seven values cost more than its insert. (Anonymous parameters: the
// driver looks up the name of every numbered one, in time that grows with
// their number. The WHERE clause tells SQLite's parser that ON CONFLICT is
// not a join's.)
func insertRows(n int) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO files (dir, name, size, mtime_ns, algo, digest, indexed_ns)
	SELECT ?, column1, column2, column3, ?, column4, ? FROM (VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?, ?, ?, ?)")
	}
	b.WriteString(`) WHERE true ON CONFLICT (dir, name) DO UPDATE SET size = excluded.size,
	mtime_ns = excluded.mtime_ns, algo = excluded.algo, digest = excluded.digest,
	indexed_ns = excluded.indexed_ns`)
	return b.String()
}

// insertSizes are the numbers of rows of the batch's statements, largest
// first: a directory's rows go in statements of the largest size that
// fits, so that its last few rows take a few executions, not one each. An
// execution's cost in database/sql and in the driver is shared by its rows.
var insertSizes = [...]int{64, 16, 4, 1}

// Batch limits: a worker commits its rows when it has batchRows of them or
// when the oldest is batchAge old, whichever comes first.
const (
	defaultBatchRows = 4096
	batchAge         = 2 * time.Second
)

// batch is a worker's pending rows and its prepared insert on the worker's
// own connection; a per-worker resource. Rows are kept in memory while the
// worker hashes and written in one short transaction (BEGIN IMMEDIATE ...
// COMMIT), so that no worker holds SQLite's single write lock while it
// reads files. Close commits what is left; a row is indexed only once its
// transaction has committed, so a crash loses at most the pending rows,
// which the next run hashes again.
//
// A batch is used by one worker at a time and is not safe for concurrent use.
type batch struct {
	writer   *writeLock
	conn     *sql.Conn
	stmts    [len(insertSizes)]*sql.Stmt // insert insertSizes[i] rows
	args     []any
	rows     []fileRow
	max      int
	oldest   time.Time
	now      func() time.Time
	onCommit func(rows int)
}

// newBatch prepares the insert on conn. onCommit, if not nil, is called with
// the number of rows of every committed transaction.
func newBatch(ctx context.Context, w *writeLock, conn *sql.Conn, max int, onCommit func(int)) (*batch, error) {
	b := &batch{
		writer: w, conn: conn, max: max, now: time.Now, onCommit: onCommit,
		rows: make([]fileRow, 0, max), args: make([]any, 0, 3+4*insertSizes[0]),
	}
	for i, n := range insertSizes {
		stmt, err := conn.PrepareContext(ctx, insertRows(n))
		if err != nil {
			return nil, errors.Join(fmt.Errorf("prepare insert: %w", err), b.closeStmts())
		}
		b.stmts[i] = stmt
	}
	return b, nil
}

// closeStmts closes the prepared statements.
func (b *batch) closeStmts() error {
	var errs []error
	for _, s := range b.stmts {
		if s != nil {
			errs = append(errs, s.Close())
		}
	}
	return errors.Join(errs...)
}

// Add appends r and commits the batch when it is full or old enough.
func (b *batch) Add(ctx context.Context, r fileRow) error {
	if len(b.rows) == 0 {
		b.oldest = b.now()
	}
	b.rows = append(b.rows, r)
	if len(b.rows) >= b.max || b.now().Sub(b.oldest) >= batchAge {
		return b.Flush(ctx)
	}
	return nil
}

// Flush writes the pending rows in one transaction. It is not cut short by
// ctx's cancellation: a commit is short, and busy_timeout bounds the wait
// for the write lock.
func (b *batch) Flush(ctx context.Context) (err error) {
	if len(b.rows) == 0 {
		return nil
	}
	ctx = context.WithoutCancel(ctx)
	b.writer.Lock()
	defer b.writer.Unlock()
	if _, err := b.conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return &commitError{fmt.Errorf("commit %d rows: begin: %w", len(b.rows), err)}
	}
	defer func() {
		if err != nil {
			// SQLite has rolled back already after some errors (a full
			// disk, an I/O error); then its "no transaction is active"
			// says nothing new.
			_, rerr := b.conn.ExecContext(ctx, "ROLLBACK")
			if rerr != nil && !strings.Contains(rerr.Error(), "no transaction is active") {
				err = errors.Join(err, fmt.Errorf("rollback: %w", rerr))
			}
		}
	}()
	// In key order, the rows of a batch go to neighbouring pages of the
	// table's B-tree.
	slices.SortFunc(b.rows, func(x, y fileRow) int {
		return cmp.Or(strings.Compare(x.dir, y.dir), strings.Compare(x.name, y.name))
	})
	now := b.now().UnixNano()
	for rest := b.rows; len(rest) > 0; {
		// The largest statement that the rows left of this directory and
		// algorithm fill; a racily clean row goes alone, with its time.
		same := 1
		for rest[0].racyAt == 0 && same < min(len(rest), insertSizes[0]) &&
			rest[same].dir == rest[0].dir && rest[same].algo == rest[0].algo && rest[same].racyAt == 0 {
			same++
		}
		i := 0
		for insertSizes[i] > same {
			i++
		}
		n := insertSizes[i]
		at := now
		if rest[0].racyAt != 0 {
			at = rest[0].racyAt
		}
		b.args = append(b.args[:0], rest[0].dir, rest[0].algo, at)
		for _, r := range rest[:n] {
			b.args = append(b.args, r.name, r.state.size, r.state.mtime, r.digest)
		}
		if _, err := b.stmts[i].ExecContext(ctx, b.args...); err != nil {
			return &commitError{fmt.Errorf("commit %d rows: insert %q: %w", len(b.rows), rest[0].name, err)}
		}
		rest = rest[n:]
	}
	clear(b.args)
	if _, err := b.conn.ExecContext(ctx, "COMMIT"); err != nil {
		return &commitError{fmt.Errorf("commit %d rows: %w", len(b.rows), err)}
	}
	if b.onCommit != nil {
		b.onCommit(len(b.rows))
	}
	clear(b.rows)
	b.rows = b.rows[:0]
	return nil
}

// Close commits the pending rows and closes the prepared statement. It is
// the batch's cleanup: fxpool runs it when the worker stops, before the
// worker's connection is closed.
func (b *batch) Close(ctx context.Context) error {
	err := b.Flush(ctx)
	return errors.Join(err, b.closeStmts())
}

// commitError is a batch's commit that the database refused: a full disk,
// an I/O error. A run says it once, naming the database, rather than
// after the file whose task made the commit, and once more for each worker
// whose last commit, at its stop, failed alike.
type commitError struct{ err error }

func (e *commitError) Error() string { return e.err.Error() }
func (e *commitError) Unwrap() error { return e.err }
