package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"
	"go.uber.org/zap"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
)

// indexDeps is what a hashing task gets from its worker: fields are the
// worker's own resources.
type indexDeps struct {
	fx.In
	Buf     *readBuf
	Hashers *hashers
	Batch   *batch
}

// counters are the figures of one run, updated by the walker, the counting
// walk and the workers.
type counters struct {
	found, foundBytes         atomic.Int64 // by the counting walk: the total
	seen, seenBytes           atomic.Int64 // by the walker
	unchanged, unchangedBytes atomic.Int64 // skipped: already indexed
	hashed, hashedBytes       atomic.Int64 // hashed this run
	readBytes                 atomic.Int64 // read so far, for progress
	committed                 atomic.Int64 // rows committed this run
	removed                   atomic.Int64 // rows of files that are gone
	problems                  atomic.Int64 // unreadable, changed while hashed
	notRun                    atomic.Int64 // accepted but skipped by an interrupt
}

// indexRun is the app-scoped state of one index run, supplied to fx.
type indexRun struct {
	opts      *options
	db        string // the database file, absolute
	batchRows int
	c         counters
	rep       *reporter
	hold      *testHold
	writer    writeLock // shared by the batches and the walker

	// walkCtx ends on an interrupt or a fatal error; tasks that start
	// after it ended do nothing.
	walkCtx context.Context
	cancel  context.CancelCauseFunc
}

// fail records a fatal error (a database write that failed) and stops the
// walk.
func (r *indexRun) fail(err error) { r.cancel(err) }

// provideBatch is the per-worker batch constructor: a prepared insert on the
// worker's connection, with an explicit cleanup that commits what is left.
func provideBatch(ctx context.Context, conn *sql.Conn, run *indexRun) (*batch, func(context.Context) error, error) {
	b, err := newBatch(ctx, &run.writer, conn, run.batchRows, func(n int) { run.c.committed.Add(int64(n)) })
	if err != nil {
		return nil, nil, err
	}
	return b, b.Close, nil
}

// provideConn is the per-worker connection. *sql.Conn has Close() error, so
// fxpool closes it when the worker stops, after the batch that uses it.
func provideConn(ctx context.Context, db *sql.DB) (*sql.Conn, error) {
	c, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	return c, nil
}

func fxLogger(log *zap.Logger) fx.Option {
	return fx.WithLogger(func() fxevent.Logger { return &fxevent.ZapLogger{Logger: log.Named("fx")} })
}

// runIndex is "fxsum index".
func runIndex(ctx context.Context, o *options, log *zap.Logger, stderr io.Writer) error {
	start := time.Now()
	roots, err := absRoots(o.paths)
	if err != nil {
		return err
	}
	dbFile, err := filepath.Abs(o.db)
	if err != nil {
		return usagef("--db %s: %w", o.db, err)
	}
	if _, err := checkDB(dbFile, true); err != nil {
		return err
	}
	hold, err := testHoldFromEnv(stderr)
	if err != nil {
		return err
	}
	batchRows, err := testBatchRowsFromEnv()
	if err != nil {
		return err
	}

	sigCtx, stopSignals := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	// After the first signal, a second one ends the process at once.
	context.AfterFunc(sigCtx, stopSignals)
	walkCtx, cancelWalk := context.WithCancelCause(sigCtx)
	defer cancelWalk(nil)

	run := &indexRun{
		opts: o, db: dbFile, batchRows: batchRows, hold: hold,
		rep:     &reporter{w: stderr},
		walkCtx: walkCtx, cancel: cancelWalk,
	}
	if hold != nil {
		hold.rep = run.rep
	}
	var (
		pool *workerpool.Pool[indexDeps]
		db   *sql.DB
	)
	app := fx.New(
		fxLogger(log),
		fx.Supply(log, run, dbPath(dbFile), fx.Annotate(true, fx.ResultTags(`name:"createDB"`))),
		fx.Provide(provideDB),
		workerpool.Provide[indexDeps]("fxsum-index",
			workerpool.Workers(o.workers),
			workerpool.QueueSize(o.workers),
			workerpool.Resources(
				resources.PerWorker(newReadBuf),
				resources.PerWorker(newHashers),
				resources.PerWorker(provideConn),
				resources.PerWorker(provideBatch),
			),
			workerpool.ErrorHandler(run.fail),
		),
		fx.Populate(&pool, &db),
	)
	if err := app.Err(); err != nil {
		return startError(err)
	}
	startCtx, cancelStart := context.WithTimeout(ctx, time.Minute)
	defer cancelStart()
	if err := app.Start(startCtx); err != nil {
		return fmt.Errorf("start: %w", err)
	}

	// The counting walk finds the total for progress and for the
	// interrupt message; it only lists, and stats regular files only for
	// the progress bar's bytes.
	prog := startProgress(o, stderr, &run.c, run.rep)
	countCtx, stopCount := context.WithCancel(walkCtx)
	countDone := make(chan struct{})
	go func() {
		defer close(countDone)
		cw := &walker{follow: o.follow, noStat: !prog.drawn(), skip: dbFiles(run.db), v: &countVisitor{c: &run.c}}
		for _, r := range roots {
			if cw.walk(countCtx, r) != nil {
				return
			}
		}
	}()

	walkErr := walkIndex(walkCtx, run, pool, db, roots, log)

	stopCtx, cancelStop := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Minute)
	defer cancelStop()
	stopErr := app.Stop(stopCtx)
	stopCount()
	<-countDone
	prog.stop()

	interrupted := sigCtx.Err() != nil && ctx.Err() == nil
	fatal := context.Cause(walkCtx)
	if interrupted || errors.Is(fatal, context.Canceled) {
		fatal = nil
	}
	if err := errors.Join(fatal, walkErrOnly(walkErr), stopErr); err != nil {
		return err
	}
	c := &run.c
	indexed := c.unchanged.Load() + c.committed.Load()
	if interrupted {
		total := max(c.found.Load(), c.seen.Load())
		fmt.Fprintf(stderr, "interrupted: %d of %d files indexed\n", indexed, total)
		return errInterrupted
	}
	if !o.quiet && !prog.drawn() {
		elapsed := time.Since(start)
		fmt.Fprintf(stderr, "fxsum: indexed %d files: hashed %d (%s), skipped %d unchanged, removed %d, %d errors; %s, %s/s\n",
			indexed, c.hashed.Load(), formatBytes(c.hashedBytes.Load()), c.unchanged.Load(), c.removed.Load(),
			c.problems.Load(), elapsed.Round(time.Millisecond), formatBytes(int64(float64(c.hashedBytes.Load())/max(elapsed.Seconds(), 1e-3))))
	} else if !o.quiet {
		fmt.Fprintf(stderr, "indexed %d files: hashed %d, skipped %d unchanged, removed %d, %d errors\n",
			indexed, c.hashed.Load(), c.unchanged.Load(), c.removed.Load(), c.problems.Load())
	}
	return nil
}

// walkErrOnly drops the cancellation errors that an interrupt causes.
func walkErrOnly(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, workerpool.ErrClosed) {
		return nil
	}
	return err
}

// startError makes a usageError of an fx.New error caused by one.
func startError(err error) error {
	var ue *usageError
	if errors.As(err, &ue) {
		return ue
	}
	// fx may flatten the chain; the database check is the only usage error
	// raised while the app is built.
	if strings.Contains(err.Error(), "not an fxsum database") {
		return &usageError{err: err}
	}
	return fmt.Errorf("build app: %w", err)
}

// absRoots makes the paths absolute and clean, checks that they exist and
// drops those inside another directory root.
func absRoots(paths []string) ([]string, error) {
	type root struct {
		path  string
		isDir bool
	}
	var rs []root
	for _, p := range paths {
		a, err := filepath.Abs(p)
		if err != nil {
			return nil, usagef("%s: %w", p, err)
		}
		fi, err := os.Stat(a)
		if err != nil {
			return nil, usagef("%w", err)
		}
		rs = append(rs, root{path: a, isDir: fi.IsDir()})
	}
	slices.SortFunc(rs, func(a, b root) int { return strings.Compare(a.path, b.path) })
	var out []string
	var dirs []string
	for _, r := range rs {
		if slices.ContainsFunc(dirs, func(d string) bool { return under(r.path, d) }) {
			continue
		}
		out = append(out, r.path)
		if r.isDir {
			dirs = append(dirs, r.path)
		}
	}
	return out, nil
}

// under reports whether path is dir or inside it. Both are clean and
// absolute.
func under(path, dir string) bool {
	if path == dir {
		return true
	}
	if !strings.HasSuffix(dir, string(filepath.Separator)) {
		dir += string(filepath.Separator)
	}
	return strings.HasPrefix(path, dir)
}

// walkIndex walks the roots, skips unchanged files, submits the others to
// the pool, removes the rows of files that are gone and, when the walk
// completed, of directories that are gone.
func walkIndex(ctx context.Context, run *indexRun, pool *workerpool.Pool[indexDeps], db *sql.DB, roots []string, log *zap.Logger) (err error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() { err = errors.Join(err, conn.Close()) }()
	lookup, err := conn.PrepareContext(ctx, `SELECT name, size, mtime_ns, algo FROM files WHERE dir = ?`)
	if err != nil {
		return fmt.Errorf("prepare lookup: %w", err)
	}
	defer lookup.Close()
	v := &indexVisitor{
		run: run, pool: pool, conn: conn, lookup: lookup, log: log,
		visited: make(map[string]struct{}), failed: make(map[string]struct{}),
	}
	w := &walker{follow: run.opts.follow, skip: dbFiles(run.db), v: v}
	for _, r := range roots {
		if err := w.walk(ctx, r); err != nil {
			return errors.Join(err, v.flushDeletes(context.WithoutCancel(ctx)))
		}
	}
	if err := v.flushDeletes(ctx); err != nil {
		return err
	}
	// The walk is complete: the counts are exact.
	run.c.found.Store(run.c.seen.Load())
	run.c.foundBytes.Store(run.c.seenBytes.Load())
	for _, r := range roots {
		if err := v.sweep(ctx, r); err != nil {
			return err
		}
	}
	return nil
}

// known is an indexed file's state, as the database has it.
type known struct {
	state fileState
	algo  string
}

// indexVisitor decides, directory by directory, what to hash and what to
// remove. It loads the rows of one directory at a time, so its memory is
// bounded by the largest directory, not the tree.
type indexVisitor struct {
	run    *indexRun
	pool   *workerpool.Pool[indexDeps]
	conn   *sql.Conn
	lookup *sql.Stmt
	log    *zap.Logger

	known   map[string]known // rows of the current directory not yet seen, by name
	deletes [][]any          // dir and name of the rows that must go
	visited map[string]struct{}
	failed  map[string]struct{} // directories that could not be listed
}

func (v *indexVisitor) enterDir(ctx context.Context, dir string) error {
	v.visited[dir] = struct{}{}
	rows, err := v.lookup.QueryContext(ctx, dir)
	if err != nil {
		return fmt.Errorf("look up %s: %w", dir, err)
	}
	defer rows.Close()
	v.known = make(map[string]known)
	for rows.Next() {
		var (
			p string
			k known
		)
		if err := rows.Scan(&p, &k.state.size, &k.state.mtime, &k.algo); err != nil {
			return fmt.Errorf("look up %s: %w", dir, err)
		}
		v.known[p] = k
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("look up %s: %w", dir, err)
	}
	return nil
}

func (v *indexVisitor) file(ctx context.Context, dir, path string, fi fs.FileInfo) error {
	c := &v.run.c
	st := stateOf(fi)
	c.seen.Add(1)
	c.seenBytes.Add(st.size)
	name := filepath.Base(path)
	k, ok := v.known[name]
	delete(v.known, name)
	if ok && !v.run.opts.rehash && k.state == st && k.algo == v.run.opts.algo {
		c.unchanged.Add(1)
		c.unchangedBytes.Add(st.size)
		return nil
	}
	return v.pool.Go(ctx, v.run.hashTask(dir, path))
}

func (v *indexVisitor) leaveDir(ctx context.Context, dir string, complete bool) error {
	if complete {
		for name := range v.known {
			v.deletes = append(v.deletes, []any{dir, name})
		}
	}
	v.known = nil
	if len(v.deletes) >= 256 {
		return v.flushDeletes(ctx)
	}
	return nil
}

func (v *indexVisitor) problem(path string, isDir bool, err error) {
	if isDir {
		v.failed[path] = struct{}{}
	}
	v.run.c.problems.Add(1)
	v.run.rep.printf("fxsum: %s\n", describe(path, err))
}

// flushDeletes removes the rows of v.deletes in one transaction.
func (v *indexVisitor) flushDeletes(ctx context.Context) (err error) {
	if len(v.deletes) == 0 {
		return nil
	}
	n, err := inTx(ctx, &v.run.writer, v.conn, `DELETE FROM files WHERE dir = ? AND name = ?`, v.deletes)
	if err != nil {
		return fmt.Errorf("remove rows of deleted files: %w", err)
	}
	v.run.c.removed.Add(n)
	v.log.Debug("removed rows", zap.Int64("rows", n))
	v.deletes = v.deletes[:0]
	return nil
}

// sweep removes the rows under root whose directory the walk did not
// visit: directories that are gone. Rows under a directory that could not be
// listed are kept.
func (v *indexVisitor) sweep(ctx context.Context, root string) error {
	rows, err := v.conn.QueryContext(ctx, `SELECT DISTINCT dir FROM files WHERE dir = ? OR (dir >= ? AND dir < ?)`,
		root, strings.TrimSuffix(root, "/")+"/", strings.TrimSuffix(root, "/")+"0")
	if err != nil {
		return fmt.Errorf("sweep %s: %w", root, err)
	}
	var gone [][]any
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			rows.Close()
			return fmt.Errorf("sweep %s: %w", root, err)
		}
		if _, ok := v.visited[d]; !ok && !v.underFailed(d) {
			gone = append(gone, []any{d})
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sweep %s: %w", root, err)
	}
	n, err := inTx(ctx, &v.run.writer, v.conn, `DELETE FROM files WHERE dir = ?`, gone)
	if err != nil {
		return fmt.Errorf("sweep %s: %w", root, err)
	}
	v.run.c.removed.Add(n)
	return nil
}

func (v *indexVisitor) underFailed(dir string) bool {
	for d := dir; ; d = filepath.Dir(d) {
		if _, ok := v.failed[d]; ok {
			return true
		}
		if p := filepath.Dir(d); p == d {
			return false
		}
	}
}

// inTx runs query once for each set of arguments in one short write
// transaction on conn and returns the number of rows it affected.
func inTx(ctx context.Context, w *writeLock, conn *sql.Conn, query string, args [][]any) (n int64, err error) {
	if len(args) == 0 {
		return 0, nil
	}
	w.Lock()
	defer w.Unlock()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	stmt, err := tx.PrepareContext(ctx, query)
	if err != nil {
		return 0, err
	}
	defer stmt.Close()
	for _, a := range args {
		res, err := stmt.ExecContext(ctx, a...)
		if err != nil {
			return 0, err
		}
		k, _ := res.RowsAffected()
		n += k
	}
	return n, tx.Commit()
}

// hashTask is the task that hashes one file and adds its row to the
// worker's batch. Problems with the file are reported and counted; only a
// database error is returned, and it stops the run.
func (r *indexRun) hashTask(dir, path string) func(context.Context, indexDeps) error {
	return func(ctx context.Context, d indexDeps) error {
		r.hold.wait(r.walkCtx)
		if r.walkCtx.Err() != nil {
			r.c.notRun.Add(1)
			return nil
		}
		res, err := hashFile(ctx, path, r.opts.algo, r.opts.follow, d.Buf, d.Hashers, func(n int64) { r.c.readBytes.Add(n) })
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // deleted since it was listed; the next run removes its row
			}
			r.c.problems.Add(1)
			r.rep.printf("fxsum: %s\n", describe(path, err))
			return nil
		}
		r.c.hashed.Add(1)
		r.c.hashedBytes.Add(res.state.size)
		err = d.Batch.Add(ctx, fileRow{dir: dir, name: filepath.Base(path), state: res.state, algo: r.opts.algo, digest: res.digest})
		if err != nil {
			return fmt.Errorf("index %s: %w", displayPath(path), err)
		}
		return nil
	}
}

// countVisitor counts files and bytes.
type countVisitor struct{ c *counters }

func (countVisitor) enterDir(context.Context, string) error { return nil }
func (v countVisitor) file(_ context.Context, _, _ string, fi fs.FileInfo) error {
	v.c.found.Add(1)
	if fi != nil {
		v.c.foundBytes.Add(fi.Size())
	}
	return nil
}
func (countVisitor) leaveDir(context.Context, string, bool) error { return nil }
func (countVisitor) problem(string, bool, error)                  {}

// reporter prints messages on stderr without tearing the progress bar.
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
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return displayPath(path) + ": " + err.Error()
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
