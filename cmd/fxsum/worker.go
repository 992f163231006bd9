package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"
	"go.uber.org/zap"

	"github.com/fxpool/fxpool"
	"github.com/fxpool/fxpool/jetstream"
	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
)

// hashDeps is what a queue worker's task gets from its worker: its read
// buffer and hashers. A queue worker has no database.
type hashDeps struct {
	fx.In
	Buf     *readBuf
	Hashers *hashers
}

// hashCounts are a worker process's figures, for its last line.
type hashCounts struct {
	files, bytes atomic.Int64
}

// startHashWorkers starts an fx app of n workers fed from the workers'
// consumer through conn, which the app does not close: each file is hashed
// and its result published on its run's result subject before the file's
// message is acked. Stop the app to stop them: the consumer hands back
// what it has not finished. Its stop waits for the pull in progress, at
// most fetchExpiry.
func startHashWorkers(ctx context.Context, conn *jetstream.Conn, n int, fetchExpiry time.Duration, log *zap.Logger) (*fx.App, error) {
	app, _, err := newHashWorkers(ctx, conn, n, fetchExpiry, log)
	return app, err
}

func newHashWorkers(ctx context.Context, conn *jetstream.Conn, n int, fetchExpiry time.Duration, log *zap.Logger) (*fx.App, *hashCounts, error) {
	counts := &hashCounts{}
	hooks := newWorkerHooks()
	host, _ := os.Hostname()
	handle := func(ctx context.Context, d hashDeps, w workMsg) error {
		hooks.beforeHash(ctx)
		r, err := hashWork(ctx, d, w, hooks.path(w.path()))
		if err != nil {
			return err
		}
		r.Worker = host
		data, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("result of %s: %w", displayPath(w.path()), err)
		}
		// The message ID lets the server drop the same result published
		// again within its duplicate window (a redelivered file); the
		// index run drops any later one itself.
		if _, err := conn.JetStream().PublishMsg(ctx, &nats.Msg{Subject: resultSubject(w.Run), Data: data}, natsjs.WithMsgID(msgID(w.Run, w.Seq))); err != nil {
			return fmt.Errorf("publish the result of %s: %w", displayPath(w.path()), err)
		}
		if r.Digest != nil {
			counts.files.Add(1)
			counts.bytes.Add(r.Size)
		}
		return nil
	}
	app := fx.New(
		fxpool.Module,
		fx.WithLogger(func() fxevent.Logger { return &fxevent.ZapLogger{Logger: log.Named("fx")} }),
		fx.Supply(log, conn),
		workerpool.Provide[hashDeps]("fxsum-worker",
			workerpool.Workers(n),
			workerpool.QueueSize(queuePerHashWorker*n),
			workerpool.Resources(
				resources.PerWorker(newReadBuf, resources.Name("read buffer")),
				resources.PerWorker(newHashers, resources.Name("hashers")),
			),
		),
		jetstream.Consume(workStream, workConsumer, jetstream.JSON[workMsg](), handle,
			jetstream.Backoff(100*time.Millisecond, 5*time.Second), jetstream.FetchExpiry(fetchExpiry)),
	)
	if err := app.Err(); err != nil {
		return nil, nil, fmt.Errorf("build workers: %w", err)
	}
	startCtx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	if err := app.Start(startCtx); err != nil {
		return nil, nil, fmt.Errorf("start workers: %w", err)
	}
	return app, counts, nil
}

// hashWork hashes the file of w, at path (w's own, but for a test hook). A
// file that cannot be hashed is a result too (Gone, or Err for the index
// run to report); only a stop that cut the hashing short is an error, so
// that the file goes to another worker.
func hashWork(ctx context.Context, d hashDeps, w workMsg, path string) (resultMsg, error) {
	r := resultMsg{Seq: w.Seq, Dir: w.Dir, Name: w.Name}
	if len(w.Name) == 0 || !filepath.IsAbs(string(w.Dir)) {
		r.Err = "not a file's absolute path: a work message of another version of fxsum?"
		return r, nil
	}
	res, err := hashFile(ctx, path, w.Algo, w.Follow, nil, d.Buf, d.Hashers, nil)
	switch {
	case err == nil:
		r.Size, r.Mtime, r.Digest = res.state.size, res.state.mtime, res.digest
		if res.racy() {
			r.RacyAt = res.readAt
		}
	case ctx.Err() != nil:
		return r, fmt.Errorf("hash %s: %w", displayPath(w.path()), err)
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, errNotRegular):
		r.Gone = true // deleted or replaced since it was listed
	default:
		r.Err = describeErr(err)
	}
	return r, nil
}

// runWorker is "fxsum worker --queue URL": it hashes files of every index
// run on the queue until SIGINT or SIGTERM, then stops taking files, lets
// those in hand finish (or hands them back) and exits.
func runWorker(ctx context.Context, o *options, log *zap.Logger, stderr io.Writer) error {
	sig, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	conn, err := dialQueue(o.queue, nil)
	if err != nil {
		return err
	}
	closeConn := func(ctx context.Context) error { return conn.Close(ctx) }
	if err := ensureQueue(sig, conn.JetStream()); err != nil {
		return errors.Join(fmt.Errorf("--queue %s: %w", o.queue, err), closeConn(context.WithoutCancel(ctx)))
	}
	app, counts, err := newHashWorkers(sig, conn, o.workers, 2*time.Second, log)
	if err != nil {
		return errors.Join(err, closeConn(context.WithoutCancel(ctx)))
	}
	if !o.quiet {
		fmt.Fprintf(stderr, "fxsum: worker: %d workers hashing files from %s (SIGINT or SIGTERM stops)\n", o.workers, o.queue)
	}
	<-sig.Done()
	stop() // a second signal ends the process at once

	// Without its server — an index run with --queue embedded that has
	// ended — the stop can settle nothing: the server hands back what this
	// process held when it comes back, if it does. The stop is then short,
	// and its errors are no failure.
	gone := !conn.NATS().IsConnected()
	budget := workerStopTimeout
	if gone {
		budget = goneStopTimeout
	}
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), budget)
	defer cancel()
	err = errors.Join(app.Stop(stopCtx), closeConn(stopCtx))
	if gone && err != nil {
		log.Info("stopped without the server", zap.Error(err))
		err = nil
	}
	if !o.quiet {
		fmt.Fprintf(stderr, "fxsum: worker: hashed %d files (%s)\n", counts.files.Load(), formatBytes(counts.bytes.Load()))
	}
	return err
}

// queuePerHashWorker is the queue of a hashing worker: with the one file it
// hashes, the window of un-acked files is (1 + queuePerHashWorker) per
// worker. Most files are small, and each costs two round trips to the
// server (its fetch, its result's publish): a deep window keeps the workers
// busy meanwhile. The files a worker process that dies held wait for
// AckWait.
const queuePerHashWorker = 32

// The budgets of a worker process's stop: with its server, time for the
// files in hand to finish (past two fifths of it they are cut short and
// handed back); without it, enough for the pull in progress to end.
const (
	workerStopTimeout = time.Minute
	goneStopTimeout   = 3 * time.Second
)
