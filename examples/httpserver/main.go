// Command httpserver is the standard "HTTP server in front of a pool" app:
// an fx-managed http.Server hands each request's events to a pool of four
// workers; each worker buffers events in a batch of its own and writes them
// to an app-scoped store a hundred at a time, and what is left when it
// closes. A request is acknowledged (202 Accepted) once its events are in a
// batch; the app's stop guarantees that every acknowledged event reaches the
// store, also when it is stopped by SIGTERM with a small fx.StopTimeout.
//
//	go run ./examples/httpserver -addr localhost:8080 -events events.log
//	curl -d 'one event' localhost:8080/event
//	printf 'a\nb\nc\n' | curl --data-binary @- localhost:8080/events
//
// # Who owns what
//
// The [Store] is app-scoped: one file for the whole app, opened by its
// constructor and closed by its own OnStop hook. Each worker of the pool
// "events" owns a [Batch] (per worker, closed automatically through its
// Close method), so no lock is taken per event and no transaction is held
// open: the store is written in short appends of up to [batchSize] events,
// under its own lock, which is why this shape also suits a database that
// allows one writer at a time (SQLite), where a transaction per worker
// would not. The http.Server is built from the pool, so fx starts it after
// the pool and stops it before.
//
// # The stop budget
//
// fx stops hooks one after another, in reverse order, all within one budget
// (fx.StopTimeout, 15s by default, or -stop-timeout here), and skips every
// hook left once it is gone. The budget T is shared so that every hook gets
// its turn:
//
//   - The server's OnStop stops accepting requests and waits for those in
//     flight for a third of the budget (T/3; [stopServer]). If some are
//     still running then — a slow client — it closes their connections,
//     which cancels their requests' contexts, and returns.
//   - The pool's OnStop gets the rest, B = 2T/3 (the pool's budget is
//     whatever is left when its stop begins). Under the default Drain
//     policy, queued tasks start during its first two fifths (until
//     T/3 + 2B/5 = 3T/5); then the queue is reported as not run and running
//     tasks are cancelled. Every worker's Batch.Close — the flush — gets a
//     context ending at nine tenths of B (14T/15), and runs as soon as its
//     worker is free, so draining never starves it.
//   - The last tenth of the pool's budget (T/15, 1s of the default 15s) is
//     left to the hooks that stop after the pool: here the store's, which
//     writes out its buffer and closes the file.
//
// These are upper bounds: each hook returns as soon as its work is done and
// leaves the rest to the next. [workerpool.StopGuard], given last, is the
// belt to those braces: should a hook that stops before the pool overrun its
// share, the pool begins its stop on its own at half of the budget (T/2),
// so fx cannot skip it.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/fxpool/fxpool"
	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

// Config is what the command's flags set.
type Config struct {
	Addr        string        // the address to listen on; port 0 picks one
	Events      string        // the file events are appended to
	StopTimeout time.Duration // fx.StopTimeout: the whole stop budget
	Log         *log.Logger   // where the app says what it does
}

func main() {
	cfg := Config{Log: log.New(os.Stdout, "", 0)}
	flag.StringVar(&cfg.Addr, "addr", "localhost:8080", "the `address` to listen on")
	flag.StringVar(&cfg.Events, "events", "events.log", "the `file` events are appended to")
	flag.DurationVar(&cfg.StopTimeout, "stop-timeout", fx.DefaultTimeout, "how long the app may take to stop")
	flag.Parse()
	fx.New(App(cfg)).Run()
}

// App is the whole app, given to fx.New.
func App(cfg Config) fx.Option {
	return fx.Options(
		fxpool.Module,
		fx.StopTimeout(cfg.StopTimeout),
		fx.Supply(cfg),
		fx.Provide(OpenStore), // app-scoped, closed by its own OnStop
		workerpool.Provide[Deps]("events",
			workerpool.Workers(4),
			workerpool.Resources(
				// *Batch has Close(context.Context) error: closed
				// automatically, with the stop's deadline.
				resources.PerWorker(func(s *Store, w resources.Worker) *Batch {
					return &Batch{store: s, worker: w, log: cfg.Log}
				}),
			),
		),
		fx.Provide(NewServer),            // built from the pool: stops before it
		fx.Invoke(func(*http.Server) {}), // the server is what the app is for
		workerpool.StopGuard(),           // last: see "The stop budget"
	)
}

// Deps is what every task receives: its worker's own batch.
type Deps struct {
	fx.In
	Batch *Batch
}

// NewServer returns the app's http.Server, started by its OnStart hook and
// stopped by its OnStop hook within the first third of the stop budget.
func NewServer(lc fx.Lifecycle, cfg Config, p *workerpool.Pool[Deps]) *http.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /event", func(w http.ResponseWriter, r *http.Request) {
		events, ok := readEvents(w, r)
		if !ok {
			return
		}
		if len(events) != 1 {
			http.Error(w, "one event a request: POST several to /events", http.StatusBadRequest)
			return
		}
		err := p.Do(r.Context(), func(ctx context.Context, d Deps) error {
			return d.Batch.Add(ctx, events[0])
		})
		reply(w, err)
	})
	mux.HandleFunc("POST /events", func(w http.ResponseWriter, r *http.Request) {
		events, ok := readEvents(w, r)
		if !ok {
			return
		}
		reply(w, storeAll(r.Context(), p, events))
	})
	srv := &http.Server{Addr: cfg.Addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	lc.Append(fx.Hook{
		OnStart: func(ctx context.Context) error {
			ln, err := new(net.ListenConfig).Listen(ctx, "tcp", srv.Addr)
			if err != nil {
				return err
			}
			srv.Addr = ln.Addr().String()
			cfg.Log.Printf("listening on %s", srv.Addr)
			go func() {
				defer close(served)
				if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
					cfg.Log.Printf("serve: %v", err)
				}
			}()
			return nil
		},
		OnStop: func(ctx context.Context) error {
			err := stopServer(ctx, srv, cfg.Log)
			<-served // Serve returns as soon as Shutdown or Close begins
			cfg.Log.Print("server stopped")
			return err
		},
	})
	return srv
}

// storeAll adds every event of one request on the pool's workers, in
// parallel, and returns the first error: the group's context, and with it
// every task's, ends at the first failure, or when the request's does.
func storeAll(ctx context.Context, p *workerpool.Pool[Deps], events []string) error {
	g, gctx := p.Group(ctx)
	for _, e := range events {
		if gctx.Err() != nil {
			break // a task failed or the client left: submit no more
		}
		g.Go(func(ctx context.Context, d Deps) error {
			return d.Batch.Add(ctx, e)
		})
	}
	return g.Wait()
}

// stopServer stops accepting requests and waits for those in flight, for a
// third of the stop budget at most; then it closes the connections still
// open, which cancels their requests' contexts, and with them their tasks'.
// A cut graceful shutdown is said, not returned: the server did stop, and an
// error would make fx's Run exit non-zero for a slow client.
func stopServer(ctx context.Context, srv *http.Server, l *log.Logger) error {
	if deadline, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Until(deadline)/3)
		defer cancel()
	}
	err := srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		l.Print("graceful shutdown cut short: closing the connections still open")
		return srv.Close()
	}
	return err
}

// readEvents reads the request's body, one event a line. It answers 400
// and returns false if there is none.
func readEvents(w http.ResponseWriter, r *http.Request) ([]string, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return nil, false
	}
	var events []string
	for line := range strings.Lines(string(body)) {
		if line = strings.TrimSpace(line); line != "" {
			events = append(events, line)
		}
	}
	if len(events) == 0 {
		http.Error(w, "no event", http.StatusBadRequest)
		return nil, false
	}
	return events, true
}

// reply acknowledges the request if err is nil: its events are in batches,
// which the app's stop writes to the store.
func reply(w http.ResponseWriter, err error) {
	switch {
	case err == nil:
		w.WriteHeader(http.StatusAccepted)
	case errors.Is(err, workerpool.ErrClosed):
		http.Error(w, "stopping", http.StatusServiceUnavailable)
	default:
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}

// batchSize is how many events a Batch holds before it writes them.
const batchSize = 100

// Batch is a worker's buffer of events: per worker, so a task adds to it
// without a lock. It writes them to the store when it is full and when its
// worker closes it.
type Batch struct {
	store  *Store
	worker resources.Worker
	log    *log.Logger
	events []string
	wrote  int
}

// Add buffers an event, after writing out a full batch. If that write fails,
// the event is not added and the batch keeps what it held.
func (b *Batch) Add(ctx context.Context, event string) error {
	if len(b.events) >= batchSize {
		if err := b.Flush(ctx); err != nil {
			return err
		}
	}
	b.events = append(b.events, event)
	return nil
}

// Flush writes the buffered events to the store.
func (b *Batch) Flush(ctx context.Context) error {
	if err := b.store.Write(ctx, b.events); err != nil {
		return fmt.Errorf("worker %d: %w", b.worker.ID, err)
	}
	b.wrote += len(b.events)
	b.events = b.events[:0]
	return nil
}

// Close writes what is left. The pool calls it when the worker closes, with
// a context that ends at nine tenths of the pool's stop budget.
func (b *Batch) Close(ctx context.Context) error {
	left := len(b.events)
	err := b.Flush(ctx)
	b.log.Printf("worker %d closed: %d events at close, %d in all", b.worker.ID, left, b.wrote)
	return err
}

// Store is the app-scoped sink of every worker's batches: a file of one
// event a line, written under a lock.
type Store struct {
	mu sync.Mutex
	f  *os.File
	w  *bufio.Writer
	n  int
}

// OpenStore opens the store, closed by its own OnStop hook after the pool's.
func OpenStore(lc fx.Lifecycle, cfg Config) (*Store, error) {
	f, err := os.OpenFile(cfg.Events, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	s := &Store{f: f, w: bufio.NewWriter(f)}
	lc.Append(fx.StopHook(func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		err := errors.Join(s.w.Flush(), s.f.Sync(), s.f.Close())
		cfg.Log.Printf("store closed: %d events", s.n)
		return err
	}))
	return s, nil
}

// Write appends events, unless ctx has ended, as a database would.
func (s *Store) Write(ctx context.Context, events []string) error {
	if len(events) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: %w", context.Cause(ctx))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range events {
		if _, err := s.w.WriteString(e + "\n"); err != nil {
			return fmt.Errorf("store: %w", err)
		}
	}
	s.n += len(events)
	return nil
}
