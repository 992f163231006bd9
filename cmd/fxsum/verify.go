package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/fx"
	"go.uber.org/zap"
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
	var roots []string
	for _, p := range o.paths {
		a, err := filepath.Abs(p)
		if err != nil {
			return usagef("%s: %w", p, err)
		}
		roots = append(roots, a)
	}
	s, err := startSession[verifyDeps](ctx, o, log, appConfig{
		pool: "fxsum-verify",
		resources: []perWorker{
			{"read buffer", newReadBuf},
			{"hashers", newHashers},
		},
		test: o.test,
	})
	if err != nil {
		return err
	}
	var (
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
	if err := checkIndexed(s.halt, s.db, roots, o.paths); err != nil {
		return errors.Join(err, s.stop(ctx))
	}
	if len(roots) == 0 {
		// The total, for progress and the interrupt message.
		var n, size int64
		if err := s.db.QueryRowContext(s.halt, `SELECT count(*), coalesce(sum(size), 0) FROM files`).Scan(&n, &size); err != nil {
			return errors.Join(fmt.Errorf("verify: %w", err), s.stop(ctx))
		}
		c.found.Store(n)
		c.foundBytes.Store(size)
		c.exact.Store(true)
	}
	haltCtx, db := s.halt, s.db
	prog := startProgress(o, stderr, &c, &reporter{w: stderr})

	task := func(path string, r fileRow) func(context.Context, verifyDeps) error {
		return func(ctx context.Context, d verifyDeps) error {
			res, err := hashFile(ctx, path, r.algo, true, nil, d.Buf, d.Hashers, func(n int64) { c.readBytes.Add(n) })
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
		rows, err := db.QueryContext(haltCtx, `SELECT dir, name, size, mtime_ns, algo, digest FROM files`)
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
				c.seen.Add(1)
				c.seenBytes.Add(r.state.size)
			}
			if err := s.submit(task(path, r)); err != nil {
				return err
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(roots) > 0 {
			c.found.Store(c.seen.Load())
			c.foundBytes.Store(c.seenBytes.Load())
			c.exact.Store(true)
		}
		return nil
	}()
	stopErr := s.stop(ctx)
	prog.stop()

	interrupted := s.interrupted()
	if interrupted {
		walkErr = nil
	}
	if err := errors.Join(s.failure(), walkErr, stopErr); err != nil {
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
		fmt.Fprintf(stderr, "interrupted: %d of %d files verified\n", c.hashed.Load()+c.problems.Load(), func() int64 { n, _ := c.total(); return n }())
		return errInterrupted
	}
	if n := s.notRun.Load(); n > 0 {
		return &notRunError{n: n}
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

// checkIndexed makes sure that each root (args[i], made absolute) has an
// indexed file under it: a PATH that is not in the index is a usage error.
func checkIndexed(ctx context.Context, db *sql.DB, roots, args []string) error {
	for i, r := range roots {
		prefix := strings.TrimSuffix(r, "/") + "/"
		hi := strings.TrimSuffix(r, "/") + "0"
		var n int
		err := db.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM files
			WHERE (dir = ? AND name = ?) OR dir = ? OR (dir >= ? AND dir < ?) LIMIT 1)`,
			filepath.Dir(r), filepath.Base(r), r, prefix, hi).Scan(&n)
		if err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		if n == 0 {
			return usagef("verify: %s: not in the index", args[i])
		}
	}
	return nil
}
