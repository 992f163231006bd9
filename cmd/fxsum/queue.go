package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/fxpool/fxpool/jetstream"
	"github.com/fxpool/fxpool/jetstream/embedded"
)

// The queue of fxsum across machines, on NATS JetStream (README.md, "Across
// machines"). Two streams are shared by every index run, each run on subjects
// of its own, named by a random run id:
//
//	stream          subjects             retention   consumed by
//	FXSUM_WORK      fxsum.work.<run>     work queue  durable "fxsum-workers", every worker
//	FXSUM_RESULTS   fxsum.result.<run>   work queue  durable "fxsum-index-<run>", its index run
//
// Workers need no run id: they take files of any run from the one durable
// consumer and publish each digest on the result subject of the file's run.
// Both streams are work queues: a message is removed once acked. Whoever
// comes first — an index run or a worker — creates them (and the workers'
// consumer); the others find them.
const (
	workStream     = "FXSUM_WORK"
	workSubjects   = "fxsum.work.>"
	workConsumer   = "fxsum-workers"
	resultStream   = "FXSUM_RESULTS"
	resultSubjects = "fxsum.result.>"

	// streamMaxAge drops what an index run that crashed left behind: the
	// files of a run nobody waits for any more, and their results.
	streamMaxAge = 7 * 24 * time.Hour
	// workMaxAckPending bounds the files out with workers at once; it must
	// cover the windows of every worker process, (1 + queuePerHashWorker)
	// per worker: 75 processes of 8 workers, or 2 of 256.
	workMaxAckPending = 20_000
	// resultInactive deletes the result consumer of a crashed index run.
	resultInactive = time.Hour
	// defaultAckWait is how long a file goes unacked before it goes to
	// another worker: a worker tells the server every third of it that it
	// is still hashing, so only a worker that died waits it out.
	defaultAckWait = 30 * time.Second
)

// Limits of an index run with --queue.
const (
	// queueWriters is the number of workers of the index process's own pool,
	// which write the results into the database: SQLite has one writer at a
	// time, and a result costs little more than its row.
	queueWriters = 2
	// maxOutstanding bounds the files published and not yet hashed: the walk
	// waits for results beyond it, so that the stream stays small.
	maxOutstanding = 1 << 16
	// publishBatch is how many asynchronous publishes the walk sends before
	// it waits for the server's acks.
	publishBatch = 256
	// defaultIdleTimeout is the default of --idle-timeout.
	defaultIdleTimeout = 5 * time.Minute
	// localFetchExpiry is the pull expiry of the consumers in the index
	// process: its stop waits for the pull in progress.
	localFetchExpiry = 200 * time.Millisecond
	// waitWarnEvery is how often an index run says that it waits for
	// workers, while no result arrives.
	waitWarnEvery = 15 * time.Second
)

// workMsg is a file to hash, published by an index run.
//
// A path is bytes, not text: a name need not be valid UTF-8, and a JSON
// string would turn each invalid byte into U+FFFD, another path. Dir and
// Name are therefore []byte, which JSON carries in base64, byte for byte.
type workMsg struct {
	Run    string `json:"run"`
	Seq    uint64 `json:"seq"` // 1, 2, ... in the order published; the file's key in the run
	Dir    []byte `json:"dir"`
	Name   []byte `json:"name"`
	Algo   string `json:"algo"`
	Follow bool   `json:"follow,omitempty"` // follow a symbolic link
}

// resultMsg is a worker's answer for one file: a digest, the file gone, or
// a problem to report. Dir and Name are bytes, as in workMsg.
type resultMsg struct {
	Seq    uint64 `json:"seq"`
	Dir    []byte `json:"dir"`
	Name   []byte `json:"name"`
	Size   int64  `json:"size,omitempty"`
	Mtime  int64  `json:"mtime_ns,omitempty"`
	Digest []byte `json:"digest,omitempty"`
	Gone   bool   `json:"gone,omitempty"`       // the worker found no regular file there: no row, unless the index process does (write)
	Err    string `json:"err,omitempty"`        // could not be hashed: reported, no row
	Worker string `json:"worker,omitempty"`     // the worker's host, for messages
	RacyAt int64  `json:"racy_at_ns,omitempty"` // when the worker read a file modified within racyWindow of that
}

// path is the file's path, as the index run published it.
func (w *workMsg) path() string { return filepath.Join(string(w.Dir), string(w.Name)) }

// path is the file's path, as the index run published it.
func (r *resultMsg) path() string { return filepath.Join(string(r.Dir), string(r.Name)) }

func workSubject(run string) string   { return "fxsum.work." + run }
func resultSubject(run string) string { return "fxsum.result." + run }
func msgID(run string, seq uint64) string {
	return run + "." + strconv.FormatUint(seq, 10)
}

// checkQueueArgs checks --queue, --listen and --idle-timeout against the
// command.
func checkQueueArgs(o *options) error {
	switch {
	case o.cmd == "worker" && o.queue == "":
		return usagef("worker: --queue URL is required: the NATS server of an index --queue run (see fxsum --help)")
	case o.cmd == "worker" && o.queue == jetstream.Embedded:
		return usagef("worker: --queue embedded: a worker connects to the server of an index run; give its URL (nats://host:port)")
	case o.flagSet["queue"] && o.queue == "":
		return usagef("--queue: empty URL: want nats://host:port (comma-separated for a cluster) or embedded")
	case o.flagSet["idle-timeout"] && o.queue == "":
		return usagef("--idle-timeout: only with --queue")
	case o.flagSet["listen"] && o.queue != jetstream.Embedded:
		return usagef("--listen: only with --queue embedded")
	case o.flagSet["listen"] && !validListen(o.listen):
		return usagef("--listen %q: want host:port (port 0 picks one)", o.listen)
	case o.queue == jetstream.Embedded && o.workers == 0 && o.listen == "":
		return usagef("--queue embedded --workers 0: no worker could reach the queue; add --listen ADDR, or some --workers")
	case o.idleTimeout <= 0:
		return usagef("--idle-timeout %v: want a positive duration", o.idleTimeout)
	}
	return nil
}

// validListen reports whether addr is host:port, with a port number.
func validListen(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	p, err := strconv.Atoi(port)
	return err == nil && p >= 0 && p <= 65535
}

// checkListen tries the address of --listen, so that one in use, or not
// this machine's, is one line that names it and the cause, at once: the
// embedded server, which cannot listen there, only says after ten seconds
// that it is not ready. Port 0 is always free.
func checkListen(addr string) error {
	if _, port, _ := net.SplitHostPort(addr); port == "0" {
		return nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		var se *os.SyscallError
		if errors.As(err, &se) {
			err = se.Err // "address already in use", without "listen tcp ADDR: bind:"
		} else if oe := (*net.OpError)(nil); errors.As(err, &oe) {
			err = oe.Err
		}
		return fmt.Errorf("--listen %s: %w", addr, err)
	}
	return l.Close()
}

// ensureQueue creates the streams and the workers' consumer, or updates
// them to this configuration.
func ensureQueue(ctx context.Context, js natsjs.JetStream) error {
	for _, cfg := range []natsjs.StreamConfig{
		{Name: workStream, Subjects: []string{workSubjects}, Retention: natsjs.WorkQueuePolicy, MaxAge: streamMaxAge},
		{Name: resultStream, Subjects: []string{resultSubjects}, Retention: natsjs.WorkQueuePolicy, MaxAge: streamMaxAge},
	} {
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("stream %s: %w", cfg.Name, err)
		}
	}
	_, err := js.CreateOrUpdateConsumer(ctx, workStream, natsjs.ConsumerConfig{
		Durable:       workConsumer,
		AckPolicy:     natsjs.AckExplicitPolicy,
		AckWait:       queueAckWait(),
		MaxDeliver:    -1, // attempts are unlimited: a worker's crash is no failure of the file
		MaxAckPending: workMaxAckPending,
	})
	if err != nil {
		return fmt.Errorf("consumer %s/%s: %w", workStream, workConsumer, err)
	}
	return nil
}

// dialQueue connects to url, or in-process to srv for "embedded".
func dialQueue(url string, srv *embedded.Server) (*jetstream.Conn, error) {
	var in jetstream.InProcess
	if srv != nil {
		in = srv
	}
	conn, err := jetstream.Dial(url, in, nats.Name("fxsum"), nats.Timeout(5*time.Second))
	if err != nil {
		return nil, fmt.Errorf("--queue %s: %w", url, err)
	}
	return conn, nil
}

// queueIndex is the queue side of an index run with --queue: the walk
// publishes the files to hash with publish; the results come back through
// a consumer that feeds the session's pool, whose workers add their rows to
// their batches; finish waits until every file published has its result.
type queueIndex struct {
	run    *indexRun
	s      *session[indexDeps]
	log    *zap.Logger
	id     string // the run id
	url    string // what workers connect to, for messages
	idle   time.Duration
	srv    *embedded.Server // with --queue embedded
	store  string           // the embedded server's store, removed by close
	conn   *jetstream.Conn
	js     natsjs.JetStream // for the walk's asynchronous publishes
	cons   *jetstream.Consumer
	locals *fx.App // the hashing workers of this process, if any

	// Used by the walk only.
	seq     uint64
	futures []natsjs.PubAckFuture

	// last is the highest seq published: a result beyond it is bogus.
	last atomic.Uint64

	// done is the number of results written, each file's first.
	done     atomic.Int64
	progress chan struct{} // a result was written (size 1)
	mu       sync.Mutex
	seen     []uint64 // a bit per seq: its result has been taken
}

// startQueueIndex starts the queue side of an index run: the embedded
// server if asked, the connection, the streams, the consumer of the run's
// results on s's pool, and the hashing workers of this process.
func startQueueIndex(ctx context.Context, o *options, log *zap.Logger, run *indexRun, s *session[indexDeps]) (q *queueIndex, err error) {
	id, err := newRunID()
	if err != nil {
		return nil, err
	}
	q = &queueIndex{run: run, s: s, log: log.Named("queue"), id: id, url: o.queue, idle: o.idleTimeout, progress: make(chan struct{}, 1)}
	defer func() {
		if err != nil {
			err = errors.Join(err, q.close(ctx))
		}
	}()
	if o.queue == jetstream.Embedded {
		if q.store, err = os.MkdirTemp("", "fxsum-queue-"); err != nil {
			return q, fmt.Errorf("--queue embedded: %w", err)
		}
		var opts []embedded.Option
		what := "--queue embedded"
		if o.listen != "" {
			if err := checkListen(o.listen); err != nil {
				return q, err
			}
			opts = append(opts, embedded.Listen(o.listen))
			what += " --listen " + o.listen
		}
		if q.srv, err = embedded.New(q.store, opts...); err != nil {
			return q, fmt.Errorf("%s: %w", what, err)
		}
		q.url = q.srv.ClientURL()
	}
	if q.conn, err = dialQueue(o.queue, q.srv); err != nil {
		return q, err
	}
	if q.js, err = natsjs.New(q.conn.NATS(), natsjs.WithPublishAsyncTimeout(time.Minute)); err != nil {
		return q, fmt.Errorf("--queue %s: %w", o.queue, err)
	}
	if err := ensureQueue(ctx, q.js); err != nil {
		return q, fmt.Errorf("--queue %s: %w", o.queue, err)
	}
	consumer := "fxsum-index-" + id
	_, err = q.js.CreateOrUpdateConsumer(ctx, resultStream, natsjs.ConsumerConfig{
		Durable:           consumer,
		FilterSubject:     resultSubject(id),
		AckPolicy:         natsjs.AckExplicitPolicy,
		MaxDeliver:        -1,
		MaxAckPending:     workMaxAckPending,
		InactiveThreshold: resultInactive,
	})
	if err != nil {
		return q, fmt.Errorf("--queue %s: consumer %s/%s: %w", o.queue, resultStream, consumer, err)
	}
	q.cons, err = jetstream.Start(ctx, q.conn.JetStream(), s.pool, resultStream, consumer, jetstream.JSON[resultMsg](), q.write,
		jetstream.Logger(q.log), jetstream.Backoff(100*time.Millisecond, 5*time.Second), jetstream.FetchExpiry(localFetchExpiry))
	if err != nil {
		return q, fmt.Errorf("--queue %s: %w", o.queue, err)
	}
	if o.queueWorkers > 0 {
		if q.locals, err = startHashWorkers(ctx, q.conn, o.queueWorkers, localFetchExpiry, log); err != nil {
			return q, err
		}
	}
	if q.srv != nil && o.listen != "" {
		run.rep.printf("fxsum: queue %s (run %s): start workers with: fxsum worker --queue %s\n", q.url, id, q.url)
	}
	q.log.Info("index run", zap.String("run", id), zap.String("url", q.url))
	return q, nil
}

func newRunID() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("run id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// publish sends the file to hash to the run's work subject. It is called by
// the walk, which it holds back while maxOutstanding files wait for their
// results.
func (q *queueIndex) publish(ctx context.Context, dir, name string, link bool) error {
	if err := q.waitBelow(ctx, maxOutstanding); err != nil {
		return err
	}
	q.seq++
	q.last.Store(q.seq)
	data, err := json.Marshal(workMsg{Run: q.id, Seq: q.seq, Dir: []byte(dir), Name: []byte(name), Algo: q.run.opts.algo, Follow: q.run.opts.follow || link})
	if err != nil {
		return fmt.Errorf("publish %s: %w", displayPath(filepath.Join(dir, name)), err)
	}
	f, err := q.js.PublishMsgAsync(&nats.Msg{Subject: workSubject(q.id), Data: data}, natsjs.WithMsgID(msgID(q.id, q.seq)))
	if err != nil {
		return fmt.Errorf("publish %s: %w", displayPath(filepath.Join(dir, name)), err)
	}
	q.futures = append(q.futures, f)
	if len(q.futures) >= publishBatch {
		return q.flush(ctx)
	}
	return nil
}

// flush waits until the server has taken every file published so far.
func (q *queueIndex) flush(ctx context.Context) error {
	for _, f := range q.futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("publish to %s: %w", q.url, err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	clear(q.futures)
	q.futures = q.futures[:0]
	return nil
}

// write is the handler of the run's results, on a worker of the session's
// pool: the first result of each file is counted, reported or added to the
// worker's batch; a later one (at least once: a worker that crashed after
// it published, before its ack) is dropped. A database error halts the
// session, as a failing hashing task does without --queue.
//
// No file vanishes: a file the worker could not hash is reported, as a
// local run reports it; one it did not find is dropped, as a local run
// drops a file deleted since it was listed, only if this process does not
// find it either — a worker that does not see the files at the same paths
// (or got another path) is reported, file by file.
func (q *queueIndex) write(ctx context.Context, d indexDeps, r resultMsg) error {
	path := r.path()
	if r.Seq == 0 || r.Seq > q.last.Load() {
		return jetstream.Permanent(fmt.Errorf("result of %s: seq %d, and this run published %d files", displayPath(path), r.Seq, q.last.Load()))
	}
	if !q.claim(r.Seq) {
		return nil
	}
	c := &q.run.c
	switch {
	case r.Gone:
		if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() {
			q.run.problem(path, &unseenError{worker: r.Worker})
		}
	case r.Err != "":
		q.run.problem(path, errors.New(r.Err))
	default:
		c.hashed.Add(1)
		c.hashedBytes.Add(r.Size)
		c.readBytes.Add(r.Size)
		err := d.Batch.Add(ctx, fileRow{dir: string(r.Dir), name: string(r.Name), state: fileState{size: r.Size, mtime: r.Mtime}, algo: q.run.opts.algo, digest: r.Digest, racyAt: r.RacyAt})
		if err != nil {
			err = fmt.Errorf("index %s: %w", displayPath(path), err)
			q.s.fail(err)
			return err
		}
	}
	q.done.Add(1)
	select {
	case q.progress <- struct{}{}:
	default:
	}
	return nil
}

// unseenError reports a file that a worker did not find, or found no
// regular file at, while the index process does.
type unseenError struct{ worker string }

func (e *unseenError) Error() string {
	who := "a worker"
	if e.worker != "" {
		who = "the worker on " + e.worker
	}
	return who + " found no such file, which is there: do the workers see the files at the same paths?"
}

// claim marks seq's result as taken and reports whether it was the first.
func (q *queueIndex) claim(seq uint64) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	i, bit := seq/64, uint64(1)<<(seq%64)
	for uint64(len(q.seen)) <= i {
		q.seen = append(q.seen, 0)
	}
	if q.seen[i]&bit != 0 {
		return false
	}
	q.seen[i] |= bit
	return true
}

// waitBelow waits until fewer than n files published wait for their result.
// While no result arrives it says so every waitWarnEvery, and it gives up
// with a noWorkerError once none arrived for --idle-timeout while no worker
// is connected to the queue.
func (q *queueIndex) waitBelow(ctx context.Context, n int64) error {
	outstanding := func() int64 { return int64(q.seq) - q.done.Load() }
	if outstanding() < n {
		return nil
	}
	if err := q.flush(ctx); err != nil {
		return err
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	last, warned := time.Now(), time.Now()
	for outstanding() >= n {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-q.progress:
			last, warned = time.Now(), time.Now()
		case now := <-tick.C:
			idle := now.Sub(last)
			if idle < waitWarnEvery && idle < q.idle {
				continue
			}
			gone := q.gone()
			alive, held := false, 0
			if !gone {
				alive, held = q.workers(ctx)
			}
			if idle >= q.idle && !alive {
				return &noWorkerError{idle: q.idle, done: q.done.Load(), total: int64(q.seq), url: q.url, gone: gone}
			}
			if now.Sub(warned) >= waitWarnEvery {
				warned = now
				who := "no worker is connected"
				switch {
				case gone:
					who = "the queue's server is unreachable"
				case alive:
					who = fmt.Sprintf("workers hold %d files", held)
				}
				q.run.rep.printf("fxsum: waiting for workers: %d of %d files hashed, none in the last %v; %s (start one: fxsum worker --queue %s)\n",
					q.done.Load(), q.seq, idle.Round(time.Second), who, q.url)
			}
		}
	}
	return nil
}

// workers reports whether some worker is connected to the workers'
// consumer — it has a pull request waiting, or holds files — and how many
// files they hold. A worker that died holds its files until the consumer's
// AckWait has passed.
func (q *queueIndex) workers(ctx context.Context) (alive bool, held int) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := q.js.Consumer(ctx, workStream, workConsumer)
	if err != nil {
		return false, 0
	}
	info, err := c.Info(ctx)
	if err != nil {
		return false, 0
	}
	return info.NumWaiting > 0 || info.NumAckPending > 0, info.NumAckPending
}

// gone reports whether the connection to the queue's server is down: it
// reconnects on its own, meanwhile nothing can be published, acked or asked.
func (q *queueIndex) gone() bool { return q.conn != nil && !q.conn.NATS().IsConnected() }

// stopBudget is the budget of a stop of the queue side: a minute for the
// files in flight to finish (past two fifths of it they are cut short and
// handed back), or, without the server, enough for the pull in progress to
// end: nothing can be settled then, and the server hands back what it had
// given when it comes back.
func (q *queueIndex) stopBudget() time.Duration {
	if q.gone() {
		return goneStopTimeout
	}
	return workerStopTimeout
}

// noWorkerError reports an index run that gave up waiting for workers, or
// for the queue's server.
type noWorkerError struct {
	idle        time.Duration
	done, total int64
	url         string
	gone        bool // the server was unreachable
}

func (e *noWorkerError) Error() string {
	if e.gone {
		return fmt.Sprintf("the queue's server at %s is unreachable, and no file was hashed for %v (%d of %d files hashed); the next run resumes",
			e.url, e.idle, e.done, e.total)
	}
	return fmt.Sprintf("no worker hashed a file for %v and none is connected (%d of %d files hashed); start one with: fxsum worker --queue %s, or raise --idle-timeout",
		e.idle, e.done, e.total, e.url)
}

// finish, after the walk, waits until every file published has its result
// (unless the walk failed or the session halted), then stops this process's
// hashing workers and the consumer of the results, which settles every
// result it took. It returns the walk's error joined with its own.
func (q *queueIndex) finish(ctx, walkCtx context.Context, walkErr error) error {
	if walkErr == nil {
		walkErr = q.flush(walkCtx)
	}
	if walkErr == nil {
		walkErr = q.waitBelow(walkCtx, 1)
	}
	gone := q.gone()
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), q.stopBudget())
	defer cancel()
	var errs []error
	if q.locals != nil {
		errs = append(errs, q.locals.Stop(stopCtx))
		q.locals = nil
	}
	if q.cons != nil {
		errs = append(errs, q.cons.Stop(stopCtx))
		q.cons = nil
	}
	if err := errors.Join(errs...); err != nil && gone {
		// Nothing could be settled: no failure of the index, whose rows
		// are committed by the session's stop.
		q.log.Info("stopped without the server", zap.Error(err))
		return walkErr
	} else if err != nil {
		return errors.Join(walkErr, fmt.Errorf("queue: %w", err))
	}
	return walkErr
}

// close ends the queue side, after the session's stop: it removes what is
// left of the run (files no worker took, after an interrupt, and the run's
// consumer), closes the connection and shuts the embedded server down.
func (q *queueIndex) close(ctx context.Context) error {
	gone := q.gone()
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), q.stopBudget())
	defer cancel()
	var errs []error
	if q.locals != nil {
		errs = append(errs, q.locals.Stop(stopCtx))
	}
	if q.cons != nil {
		errs = append(errs, q.cons.Stop(stopCtx))
	}
	if q.conn != nil && q.srv == nil && !gone {
		// On a shared server: what this run left behind is garbage.
		js := q.conn.JetStream()
		if s, err := js.Stream(stopCtx, workStream); err == nil {
			errs = append(errs, s.Purge(stopCtx, natsjs.WithPurgeSubject(workSubject(q.id))))
		}
		if s, err := js.Stream(stopCtx, resultStream); err == nil {
			errs = append(errs, s.Purge(stopCtx, natsjs.WithPurgeSubject(resultSubject(q.id))))
			if err := s.DeleteConsumer(stopCtx, "fxsum-index-"+q.id); err != nil && !errors.Is(err, natsjs.ErrConsumerNotFound) {
				errs = append(errs, err)
			}
		}
	}
	if q.conn != nil {
		if err := q.conn.Close(stopCtx); err != nil && !gone {
			errs = append(errs, err)
		}
	}
	if q.srv != nil {
		q.srv.Shutdown()
	}
	if q.store != "" {
		errs = append(errs, os.RemoveAll(q.store))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	return nil
}
