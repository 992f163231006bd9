package main

import (
	"bytes"
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
	"sync"
	"syscall"
	"time"

	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
)

// verifyDeps is what a verifying task gets from its worker. It needs no
// connection: fxpool opens only the resources a pool's task type needs.
type verifyDeps struct {
	fx.In
	Buf     *readBuf
	Hashers *hashers
}

// finding is one problem verify found.
type finding struct{ kind, path, detail string }

func (f finding) String() string {
	s := f.kind + ": " + displayPath(f.path)
	if f.detail != "" {
		s += ": " + f.detail
	}
	return s
}

// runVerify is "fxsum verify".
func runVerify(ctx context.Context, o *options, log *zap.Logger, stdout, stderr io.Writer) error {
	start := time.Now()
	dbFile, err := filepath.Abs(o.db)
	if err != nil {
		return usagef("--db %s: %w", o.db, err)
	}
	if _, err := checkDB(dbFile, false); err != nil {
		return err
	}
	var roots []string
	for _, p := range o.paths {
		a, err := filepath.Abs(p)
		if err != nil {
			return usagef("%s: %w", p, err)
		}
		roots = append(roots, a)
	}

	sigCtx, stopSignals := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	context.AfterFunc(sigCtx, stopSignals)

	var (
		pool     *workerpool.Pool[verifyDeps]
		db       *sql.DB
		mu       sync.Mutex
		findings []finding
		c        counters
	)
	report := func(f finding) {
		mu.Lock()
		findings = append(findings, f)
		mu.Unlock()
		c.problems.Add(1)
	}
	app := fx.New(
		fxLogger(log),
		fx.Supply(log, dbPath(dbFile), fx.Annotate(false, fx.ResultTags(`name:"createDB"`))),
		fx.Provide(provideDB),
		workerpool.Provide[verifyDeps]("fxsum-verify",
			workerpool.Workers(o.workers),
			workerpool.QueueSize(o.workers),
			workerpool.Resources(
				resources.PerWorker(newReadBuf),
				resources.PerWorker(newHashers),
			),
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
	if len(roots) == 0 {
		// The total, for progress and the interrupt message.
		var n, size int64
		if err := db.QueryRowContext(sigCtx, `SELECT count(*), coalesce(sum(size), 0) FROM files`).Scan(&n, &size); err != nil {
			return errors.Join(fmt.Errorf("verify: %w", err), app.Stop(context.WithoutCancel(ctx)))
		}
		c.found.Store(n)
		c.foundBytes.Store(size)
	}
	prog := startProgress(o, stderr, &c, &reporter{w: stderr})

	task := func(path string, r fileRow) func(context.Context, verifyDeps) error {
		return func(ctx context.Context, d verifyDeps) error {
			if sigCtx.Err() != nil {
				return nil
			}
			res, err := hashFile(ctx, path, r.algo, true, d.Buf, d.Hashers, func(n int64) { c.readBytes.Add(n) })
			switch {
			case errors.Is(err, fs.ErrNotExist):
				report(finding{kind: "missing", path: path})
			case err != nil:
				report(finding{kind: "unreadable", path: path, detail: describeErr(err)})
			case !bytes.Equal(res.digest, r.digest) && res.state == r.state:
				report(finding{kind: "changed", path: path, detail: "content differs, size and mtime do not (corruption?)"})
			case !bytes.Equal(res.digest, r.digest):
				report(finding{kind: "changed", path: path})
			default:
				c.hashed.Add(1)
			}
			return nil
		}
	}
	walkErr := func() error {
		rows, err := db.QueryContext(sigCtx, `SELECT dir, name, size, mtime_ns, algo, digest FROM files`)
		if err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var r fileRow
			if err := rows.Scan(&r.dir, &r.name, &r.state.size, &r.state.mtime, &r.algo, &r.digest); err != nil {
				return fmt.Errorf("verify: %w", err)
			}
			path := filepath.Join(r.dir, r.name)
			if len(roots) > 0 && !slices.ContainsFunc(roots, func(root string) bool { return under(path, root) }) {
				continue
			}
			if len(roots) > 0 {
				c.found.Add(1)
				c.foundBytes.Add(r.state.size)
			}
			if err := pool.Go(sigCtx, task(path, r)); err != nil {
				return err
			}
		}
		return rows.Err()
	}()
	stopCtx, cancelStop := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Minute)
	defer cancelStop()
	stopErr := app.Stop(stopCtx)
	prog.stop()

	interrupted := sigCtx.Err() != nil && ctx.Err() == nil
	if interrupted {
		walkErr = nil
	}
	if err := errors.Join(walkErr, stopErr); err != nil {
		return err
	}
	slices.SortFunc(findings, func(a, b finding) int {
		if a.path < b.path {
			return -1
		}
		if a.path > b.path {
			return 1
		}
		return 0
	})
	for _, f := range findings {
		fmt.Fprintln(stdout, f)
	}
	kinds := map[string]int{}
	for _, f := range findings {
		kinds[f.kind]++
	}
	if interrupted {
		fmt.Fprintf(stderr, "interrupted: %d of %d files verified\n", c.hashed.Load()+c.problems.Load(), c.found.Load())
		return errInterrupted
	}
	if !o.quiet {
		fmt.Fprintf(stderr, "fxsum: verified %d files: %d ok, %d changed, %d missing, %d unreadable; %s\n",
			c.found.Load(), c.hashed.Load(), kinds["changed"], kinds["missing"], kinds["unreadable"], time.Since(start).Round(time.Millisecond))
	}
	if len(findings) > 0 {
		return errMismatch
	}
	return nil
}

// describeErr is an error's message without the path of a *fs.PathError.
func describeErr(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
