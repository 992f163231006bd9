package main

// The README's code that is not part of this server: each piece is here
// verbatim, compiled and run by a test, and TestReadmeCodeIsCompiled checks
// that every Go block of the README is in this package or in
// examples/quickstart.

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
	_ "modernc.org/sqlite"
)

// --- "How it works": a read-only *sql.Conn per worker, and results kept
// in memory per worker, written through one app-scoped writer.

// Lookup is what every task of the pool "lookup" receives.
type Lookup struct {
	fx.In
	Conn    *sql.Conn // per worker, read-only
	Results *Results  // per worker
}

// lookupPool is the README's "How it works" pool.
func lookupPool() fx.Option {
	return fx.Options(
		fx.Provide(openLookupDBs), // app-scoped: the *sql.DB that workers read, the one *Writer
		workerpool.Provide[Lookup]("lookup", // provides *workerpool.Pool[Lookup] to fx
			workerpool.Workers(4),
			workerpool.Resources(
				// *sql.Conn has Close() error: closed automatically. Each worker
				// reads on a connection of its own: SQLite readers run side by side.
				resources.PerWorker(func(ctx context.Context, db *sql.DB) (*sql.Conn, error) {
					return db.Conn(ctx)
				}),
				// explicit cleanup, the context manager's __exit__: the worker's
				// results, kept in memory, written through the app's one writer
				resources.PerWorker(func(w *Writer) (*Results, func(context.Context) error, error) {
					r := &Results{writer: w}
					return r, r.Flush, nil
				}),
			),
		),
	)
}

// Writer is app-scoped: the one connection that writes (SQLite allows one
// writer at a time), in short transactions.
type Writer struct{ db *sql.DB }

func (w *Writer) Write(ctx context.Context, rows map[string]int) error {
	tx, err := w.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() // a no-op after Commit
	for word, n := range rows {
		if _, err := tx.ExecContext(ctx, "INSERT INTO results (word, n) VALUES (?, ?)", word, n); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// Results is a worker's results, written out when the worker closes.
type Results struct {
	writer *Writer
	rows   map[string]int
}

func (r *Results) Add(word string, n int) {
	if r.rows == nil {
		r.rows = map[string]int{}
	}
	r.rows[word] = n
}

func (r *Results) Flush(ctx context.Context) error {
	if err := r.writer.Write(ctx, r.rows); err != nil {
		return err
	}
	clear(r.rows)
	return nil
}

// openLookupDBs opens the database at path twice: for the workers' reads,
// and for the one writer.
func openLookupDBs(lc fx.Lifecycle, path string) (*sql.DB, *Writer, error) {
	// The database is in WAL mode (set once, when it was made), so that the
	// writer does not block the readers; a busy connection waits up to 5s.
	dsn := "file:" + path + "?_pragma=busy_timeout(5000)"
	read, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, nil, err
	}
	write, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, nil, errors.Join(err, read.Close())
	}
	write.SetMaxOpenConns(1)
	lc.Append(fx.StopHook(func() error { return errors.Join(read.Close(), write.Close()) }))
	return read, &Writer{db: write}, nil
}

// TestHowItWorks runs the lookup pool: every worker reads on its own
// connection, and every result reaches the database through the writer
// when the workers close.
func TestHowItWorks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lookup.db")
	words := []string{"ada", "grace", "barbara", "frances", "hedy", "radia", "margaret", "karen"}
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.Exec("PRAGMA journal_mode = WAL; CREATE TABLE words (word TEXT PRIMARY KEY, n INT); CREATE TABLE results (word TEXT, n INT)")
	for i, w := range words {
		if err == nil {
			_, err = db.Exec("INSERT INTO words VALUES (?, ?)", w, i)
		}
	}
	var mode string
	if err == nil {
		err = db.QueryRow("PRAGMA journal_mode").Scan(&mode)
	}
	if err := errors.Join(err, db.Close()); err != nil || mode != "wal" {
		t.Fatalf("setup: %v, journal mode %q", err, mode)
	}

	var p *workerpool.Pool[Lookup]
	app := fx.New(fx.NopLogger,
		fx.Supply(path),
		lookupPool(),
		fx.Populate(&p),
	)
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	g, _ := p.Group(ctx)
	for _, w := range words {
		g.Go(func(ctx context.Context, l Lookup) error {
			var n int
			if err := l.Conn.QueryRowContext(ctx, "SELECT n FROM words WHERE word = ?", w).Scan(&n); err != nil {
				return err
			}
			l.Results.Add(w, n)
			return nil
		})
	}
	if err := errors.Join(g.Wait(), app.Stop(ctx)); err != nil {
		t.Fatal(err)
	}

	db, err = sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n, sum int
	if err := db.QueryRow("SELECT count(*), sum(n) FROM results").Scan(&n, &sum); err != nil {
		t.Fatal(err)
	}
	if n != len(words) || sum != 28 {
		t.Errorf("%d results summing to %d, want %d summing to 28", n, sum, len(words))
	}
}

// --- "Stopping": Stop(ctx, DropQueued) on demand.

// quit stops the pool now, as a command told to quit does: the tasks
// running finish, no queued task starts (each is reported as not run), and
// every worker closes its resources. The app's own stop, later, waits for
// this one and returns its result.
func quit(p *workerpool.Pool[Deps]) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return p.Stop(ctx, workerpool.DropQueued)
}

// TestQuit: with four tasks running and four queued, quit lets the four
// finish and reports the four others as not run, before the app stops.
func TestQuit(t *testing.T) {
	var out syncBuffer
	var p *workerpool.Pool[Deps]
	app := fx.New(fx.NopLogger,
		App(Config{Addr: "127.0.0.1:0", Events: filepath.Join(t.TempDir(), "events.log"), StopTimeout: hang, Log: log.New(&out, "", 0)}),
		fx.Populate(&p),
	)
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var (
		started = make(chan struct{}, 4)
		release = make(chan struct{})
		mu      sync.Mutex
		got     []workerpool.Outcome
		wg      sync.WaitGroup
	)
	for i := range 8 {
		wg.Add(1)
		err := p.GoReport(ctx, func(ctx context.Context, d Deps) error {
			started <- struct{}{}
			<-release
			return d.Batch.Add(ctx, fmt.Sprint("task", i))
		}, func(o workerpool.Outcome, err error) {
			mu.Lock()
			got = append(got, o)
			mu.Unlock()
			wg.Done()
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for range 4 {
		<-started
	}
	quitErr := make(chan error)
	go func() { quitErr <- quit(p) }()
	waitUntil(t, func() bool { return p.Stats().Dropped == 4 }) // DropQueued reports the queue at once
	close(release)
	if err := <-quitErr; err != nil {
		t.Errorf("quit: %v", err)
	}
	wg.Wait()
	slices.Sort(got)
	want := []workerpool.Outcome{workerpool.Succeeded, workerpool.Succeeded, workerpool.Succeeded, workerpool.Succeeded,
		workerpool.NotRun, workerpool.NotRun, workerpool.NotRun, workerpool.NotRun}
	if !slices.Equal(got, want) {
		t.Errorf("outcomes %v, want %v", got, want)
	}
	if err := app.Stop(ctx); err != nil {
		t.Errorf("app.Stop after quit: %v", err)
	}
	if s := out.String(); !strings.Contains(s, "store closed: 4 events") {
		t.Errorf("log:\n%s\nwant the four tasks that ran stored", s)
	}
}

// --- "Feeders": GoReport, AddFeeder and Capacity.

// Queue is a message queue: the stand-in of a real one, such as JetStream.
type Queue interface {
	// Next blocks until a message comes or ctx ends.
	Next(ctx context.Context) (Message, error)
	// Ack says the message is done with; Nak, that it must come again.
	Ack(Message)
	Nak(Message)
}

type Message struct{ ID, Body string }

// Feed hands the queue's messages to the pool, at most the pool's capacity
// unfinished: each is acked once its task succeeded, and left for
// redelivery if it failed, panicked or never ran. The pool's stop, whether
// the app's or on demand, first stops the feeding, then drains.
func Feed(lc fx.Lifecycle, p *workerpool.Pool[Deps], q Queue) {
	lc.Append(fx.StartHook(func() error {
		ctx, stopFeeding := context.WithCancel(context.Background())
		fed := make(chan struct{})
		err := p.AddFeeder(func(stopCtx context.Context) error {
			stopFeeding()
			select {
			case <-fed:
				return nil
			case <-stopCtx.Done():
				return stopCtx.Err()
			}
		})
		if err != nil {
			stopFeeding()
			return err
		}
		go func() {
			defer close(fed)
			window := make(chan struct{}, p.Capacity().InFlight())
			for {
				msg, err := q.Next(ctx)
				if err != nil {
					return // the pool is stopping
				}
				window <- struct{}{} // a slot frees when a task is reported
				// The task's context must not end with the feeding: WithoutCancel.
				err = p.GoReport(context.WithoutCancel(ctx), func(ctx context.Context, d Deps) error {
					return d.Batch.Add(ctx, msg.Body)
				}, func(o workerpool.Outcome, err error) {
					<-window
					if o == workerpool.Succeeded {
						q.Ack(msg)
					} else {
						q.Nak(msg)
					}
				})
				if err != nil {
					<-window
					q.Nak(msg)
					return
				}
			}
		}()
		return nil
	}))
}

// chanQueue is a Queue on a channel that counts acks and naks.
type chanQueue struct {
	msgs      chan Message
	acks, nak atomic.Int64
}

func (q *chanQueue) Next(ctx context.Context) (Message, error) {
	select {
	case m := <-q.msgs:
		return m, nil
	case <-ctx.Done():
		return Message{}, ctx.Err()
	}
}
func (q *chanQueue) Ack(Message) { q.acks.Add(1) }
func (q *chanQueue) Nak(Message) { q.nak.Add(1) }

// TestFeeder feeds 1000 messages through the pool, then stops the app
// while the feeder waits for more: every message is acked, the feeder's
// goroutine is gone (goleak), and every acked message is in the store.
func TestFeeder(t *testing.T) {
	events := filepath.Join(t.TempDir(), "events.log")
	q := &chanQueue{msgs: make(chan Message)}
	app := fx.New(fx.NopLogger,
		App(Config{Addr: "127.0.0.1:0", Events: events, StopTimeout: hang, Log: log.New(new(syncBuffer), "", 0)}),
		fx.Supply(fx.Annotate(q, fx.As(new(Queue)))),
		fx.Invoke(Feed),
	)
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		q.msgs <- Message{ID: fmt.Sprint(i), Body: fmt.Sprint("msg", i)}
	}
	if err := app.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if a, n := q.acks.Load(), q.nak.Load(); a != 1000 || n != 0 {
		t.Errorf("%d acked, %d nak'ed, want 1000 acked", a, n)
	}
	f, err := os.Open(events)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lines := 0
	for s := bufio.NewScanner(f); s.Scan(); {
		lines++
	}
	if lines != 1000 {
		t.Errorf("%d events stored, want 1000", lines)
	}
}

// --- The README's Go code is compiled.

// TestReadmeCodeIsCompiled checks that every Go block of README.md is, but
// for indentation, a run of lines of the examples that tests compile and
// run: this package and examples/quickstart.
func TestReadmeCodeIsCompiled(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var sources [][]string
	for _, f := range append(files, "../quickstart/main.go") {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sources = append(sources, trimmedLines(string(b)))
	}
	blocks := goBlocks(string(readme))
	if len(blocks) < 5 {
		t.Fatalf("found %d Go blocks in README.md, want at least 5", len(blocks))
	}
	for _, block := range blocks {
		want := trimmedLines(block)
		if !slices.ContainsFunc(sources, func(src []string) bool { return containsRun(src, want) }) {
			t.Errorf("this Go block of README.md is in no example that a test runs:\n%s", block)
		}
	}
}

// goBlocks returns the text of every ```go block of a Markdown text.
func goBlocks(md string) []string {
	var blocks []string
	for {
		_, rest, ok := strings.Cut(md, "\n```go\n")
		if !ok {
			return blocks
		}
		block, after, _ := strings.Cut(rest, "\n```\n")
		blocks = append(blocks, block)
		md = after
	}
}

func trimmedLines(s string) []string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSpace(l)
	}
	return lines
}

// containsRun reports whether run is a run of consecutive lines of src.
func containsRun(src, run []string) bool {
	for i := 0; i+len(run) <= len(src); i++ {
		if slices.Equal(src[i:i+len(run)], run) {
			return true
		}
	}
	return false
}

// waitUntil polls cond until it holds, failing the test after hang.
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(hang); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition never held")
		}
	}
}
