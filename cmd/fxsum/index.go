package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.uber.org/fx"
	"go.uber.org/zap"

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

// indexRun is the app-scoped state of one index run, supplied to fx.
type indexRun struct {
	opts   *options
	c      counters
	rep    *reporter
	hooks  testHooks
	writer writeLock  // shared by the batches and the walker
	self   *selfFiles // the database's files, never indexed

	// queue, with --queue, takes the files to hash instead of the pool
	// (queue.go).
	queue *queueIndex

	// halt ends on an interrupt or a fatal error: the session's; the
	// pool's stop then keeps queued tasks from starting. Only the tests'
	// hold waits for it, and for refusing to report true.
	halt     context.Context
	refusing func() bool
}

// problem reports and counts a file or folder that could not be indexed.
func (r *indexRun) problem(path string, err error) {
	r.c.problems.Add(1)
	r.rep.printf("fxsum: %s\n", describe(path, err))
}

// provideBatch is the per-worker batch constructor: a prepared insert on the
// worker's connection, with an explicit cleanup that commits what is left.
func provideBatch(ctx context.Context, conn *sql.Conn, run *indexRun) (*batch, func(context.Context) error, error) {
	b, err := newBatch(ctx, &run.writer, conn, run.hooks.batchRows(), func(n int) { run.c.committed.Add(int64(n)) })
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

// incompleteError reports an index run that could not index everything it
// was asked to; each file or folder has been reported already.
type incompleteError struct{ n int64 }

func (e *incompleteError) Error() string {
	if e.n == 1 {
		return "1 file or folder could not be indexed (see above)"
	}
	return fmt.Sprintf("%d files or folders could not be indexed (see above)", e.n)
}

// runIndex is "fxsum index".
func runIndex(ctx context.Context, o *options, log *zap.Logger, stderr io.Writer) error {
	start := time.Now()
	defer tuneGC()()
	run := &indexRun{opts: o, rep: &reporter{w: stderr}}
	roots, err := absRoots(o.paths, run.problem)
	if err != nil {
		return err
	}
	if len(roots) == 0 {
		return &incompleteError{n: run.c.problems.Load()}
	}
	if run.hooks, err = newTestHooks(stderr); err != nil {
		return err
	}
	s, err := startSession[indexDeps](ctx, o, log, appConfig{
		pool:   "fxsum-index",
		create: true,
		resources: []perWorker{
			{"read buffer", newReadBuf},
			{"hashers", newHashers},
			{"connection", provideConn},
			{"batch", provideBatch},
		},
		supply: []any{run},
		test:   o.test,
	})
	if err != nil {
		return err
	}
	run.self = newSelfFiles(s.dbFile)
	if o.queue != "" {
		if run.queue, err = startQueueIndex(ctx, o, log, run, s); err != nil {
			return errors.Join(err, s.stop(ctx))
		}
	}
	run.halt = s.halt
	run.refusing = func() bool { return probePool(s.pool) != nil }
	walkCtx := s.halt

	// With a progress bar, a counting walk finds the total ahead of the
	// index walk.
	prog := startProgress(o, stderr, &run.c, run.rep)
	stopCount := countFiles(walkCtx, prog.drawn(), &walker{follow: o.follow, exclude: o.exclude, self: run.self, v: countVisitor{c: &run.c}}, roots)

	walkErr := walkIndex(walkCtx, run, s, s.db, roots, log)
	if run.queue != nil {
		// Wait for the results of what the walk published, then stop
		// taking them.
		walkErr = run.queue.finish(ctx, walkCtx, walkErr)
	}
	halted := walkCtx.Err() != nil // before stop, which ends it
	stopErr := s.stop(ctx)
	if run.queue != nil {
		stopErr = errors.Join(stopErr, run.queue.close(ctx))
	}
	stopCount()
	prog.stop()
	run.hooks.afterRun()

	interrupted := s.interrupted()
	fatal := s.failure()
	if halted && (errors.Is(walkErr, context.Canceled) || errors.Is(walkErr, workerpool.ErrClosed)) {
		walkErr = nil // the walk stopped because the session halted
	}
	if ce := (*commitError)(nil); errors.As(fatal, &ce) {
		return fmt.Errorf("database %s: %w", s.dbFile, ce)
	}
	if err := errors.Join(fatal, walkErr, stopErr); err != nil {
		return err
	}
	c := &run.c
	indexed := c.unchanged.Load() + c.committed.Load()
	if interrupted {
		// Only what was committed counts: the queued files that the
		// pool dropped were not hashed.
		files, _ := c.total()
		fmt.Fprintf(stderr, "interrupted: %d of %d files indexed\n", indexed, max(files, indexed))
		return errInterrupted
	}
	if n := s.notRun.Load(); n > 0 {
		return &notRunError{n: n}
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
	if n := c.problems.Load(); n > 0 {
		return &incompleteError{n: n}
	}
	return nil
}

// probePool submits a task that does nothing, straight to pool, and
// returns the pool's refusal. A task it accepted runs, or is dropped, with
// no effect.
func probePool(pool *workerpool.Pool[indexDeps]) error {
	return pool.GoReport(context.Background(), func(context.Context, indexDeps) error { return nil }, func(workerpool.Outcome, error) {})
}

// countFiles starts, if on is set, the counting walk of roots with w, and
// returns the function that stops it and waits for it.
func countFiles(ctx context.Context, on bool, w *walker, roots []string) (stop func()) {
	if !on {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, r := range roots {
			if w.walk(ctx, r) != nil {
				return
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// absRoots makes the paths absolute and clean, reports those that do not
// exist to problem and drops them, and drops those inside another
// directory root.
func absRoots(paths []string, problem func(string, error)) ([]string, error) {
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
			problem(p, err)
			continue
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

// hashTask is the task that hashes one file and adds its row to the
// worker's batch. link is set for a symbolic link to follow. Problems with
// the file are reported and counted; only a database error is returned, and
// it stops the run.
func (r *indexRun) hashTask(dir, name string, link bool) func(context.Context, indexDeps) error {
	return func(ctx context.Context, d indexDeps) error {
		row, ok := r.hash(ctx, d, dir, name, link)
		if !ok {
			return nil
		}
		return r.add(ctx, d, row)
	}
}

// hash hashes the file dir/name and counts it. It reports false for a file
// that could not be hashed (reported and counted) or that is gone.
func (r *indexRun) hash(ctx context.Context, d indexDeps, dir, name string, link bool) (fileRow, bool) {
	path := joinName(dir, name)
	r.hooks.beforeTask(r.halt, r.refusing)
	res, err := hashFile(ctx, path, r.opts.algo, r.opts.follow || link, r.self, d.Buf, d.Hashers, func(n int64) { r.c.readBytes.Add(n) })
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotRegular) {
			return fileRow{}, false // deleted or replaced since it was listed; the next run sees what is there
		}
		if errors.Is(err, errSelf) {
			return fileRow{}, false // never indexed: it changes while it would be hashed
		}
		r.problem(path, err)
		return fileRow{}, false
	}
	r.c.hashed.Add(1)
	r.c.hashedBytes.Add(res.state.size)
	return rowOf(dir, name, r.opts.algo, res), true
}

// add adds row to the worker's batch.
func (r *indexRun) add(ctx context.Context, d indexDeps, row fileRow) error {
	if err := d.Batch.Add(ctx, row); err != nil {
		return fmt.Errorf("index %s: %w", displayPath(filepath.Join(row.dir, row.name)), err)
	}
	return nil
}
