package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"go.uber.org/zap"
)

// indexVisitor decides, directory by directory, what to hash and what to
// remove. The walker gives it each directory's files sorted by name, the
// order of the rows of the directory in the index (its primary key is dir,
// name): it merges the two, reading the rows with a cursor, so that its
// memory does not grow with the directory and a file costs no lookup. It is
// used by the walking goroutine only.
type indexVisitor struct {
	run  *indexRun
	s    *session[indexDeps]
	conn *sql.Conn
	rows *rowReader
	log  *zap.Logger

	cur     *cursor   // the rows of the current directory
	ahead   *cursor   // the rows of the directory the walker enters next, if known
	ready   []fileRow // rows of early files, in order, for the pool
	gone    [][]any   // dir and name of the rows of the current directory with no file
	deletes [][]any   // dir and name of the rows that must go
	visited map[string]struct{}
	failed  map[string]struct{} // directories that could not be listed
}

// cursor is the rows of one directory, in name order, one at a time. The
// row reader reads them ahead, in chunks, while the walker lists the
// directory and looks at its files. close stops the reading of its rows
// and waits for the reader to be done with them.
//
// A cursor opened ahead of the walker (rowReader.openAhead) is of the
// first directory at or after from, in the index's order, that has rows:
// the walker may pass through directories with no rows on its way to the
// next one that has (a tree of folders that hold only folders). Once
// loaded, it tells which directories it found empty (skipped).
type cursor struct {
	from   string // the directory to look from, in the index's order
	dir    string // the rows' directory; set by the reader if search
	search bool   // the reader looks for dir
	none   bool   // search found no directory with rows at or after from
	loaded bool   // the first row is loaded, or known not to exist
	ok     bool   // row is loaded
	row    knownRow
	chunk  []knownRow
	chunks chan []knownRow // closed by the reader when it is done
	stop   chan struct{}   // closed by close
	done   chan struct{}   // closed by the reader; err is set then
	err    error
}

// emptyCursor is the cursor of a directory that has no rows.
func emptyCursor(dir string) *cursor {
	c := &cursor{from: dir, dir: dir, loaded: true, chunks: make(chan []knownRow), stop: make(chan struct{}), done: make(chan struct{})}
	close(c.chunks)
	close(c.done)
	return c
}

// rowReader reads the rows of directories for the walker, on a connection
// of its own, one directory after another in the order they are opened:
// on an unchanged tree, reading the index costs as much as the walk, and
// the two go on side by side. The walker opens the cursor of the directory
// it will enter next as soon as it knows it (see aheadVisitor), so that its
// rows are read while it looks at the files of the current one; a cursor
// opened only as the walker enters its directory kept it waiting for its
// first rows and let it look at the files while the reader was idle.
//
// Cursors must be closed in the order they were opened: the reader is done
// with one only once it has sent every chunk or the cursor is closed, and
// it does not begin the next before.
type rowReader struct {
	conn    *sql.Conn
	lookup  [2]*sql.Stmt // lookupRows of the first chunk, and of the next ones
	first   *sql.Stmt    // the first directory at or after one, that has rows
	algo    string
	cursors chan *cursor // the cursors to read, in order
	done    chan struct{}
}

// openCursors bounds the cursors open at a time: the current directory's
// and the next one's.
const openCursors = 2

// startRowReader starts reading rows of algo on a new connection of db,
// with ctx for every lookup.
func startRowReader(ctx context.Context, db *sql.DB, algo string) (_ *rowReader, err error) {
	r := &rowReader{algo: algo, cursors: make(chan *cursor, openCursors), done: make(chan struct{})}
	if r.conn, err = db.Conn(ctx); err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	for i, limit := range []int{firstRowsPerChunk, maxRowsPerChunk} {
		if r.lookup[i], err = r.conn.PrepareContext(ctx, lookupRows(limit)); err != nil {
			return nil, errors.Join(fmt.Errorf("prepare lookup: %w", err), r.closeConn())
		}
	}
	if r.first, err = r.conn.PrepareContext(ctx, `SELECT dir FROM files WHERE dir >= ? ORDER BY dir LIMIT 1`); err != nil {
		return nil, errors.Join(fmt.Errorf("prepare lookup: %w", err), r.closeConn())
	}
	go r.run(ctx)
	return r, nil
}

func (r *rowReader) run(ctx context.Context) {
	defer close(r.done)
	for c := range r.cursors {
		c.read(ctx, r.first, r.lookup, r.algo)
	}
}

// open returns the cursor of the rows of dir, which the reader reads after
// those of the cursors opened before. load loads its first row.
func (r *rowReader) open(dir string) *cursor {
	return r.queue(&cursor{from: dir, dir: dir})
}

// openAhead returns the cursor of the first directory at or after from, in
// the index's order, that has rows.
func (r *rowReader) openAhead(from string) *cursor {
	return r.queue(&cursor{from: from, search: true})
}

// queue hands c to the reader, which reads it once it is done with those
// before.
func (r *rowReader) queue(c *cursor) *cursor {
	c.chunks = make(chan []knownRow, 2)
	c.stop = make(chan struct{})
	c.done = make(chan struct{})
	r.cursors <- c
	return c
}

// close stops the reader, once every cursor is closed, and closes its
// connection.
func (r *rowReader) close() error {
	close(r.cursors)
	<-r.done
	return r.closeConn()
}

func (r *rowReader) closeConn() error {
	var errs []error
	for _, s := range append(r.lookup[:], r.first) {
		if s != nil {
			errs = append(errs, s.Close())
		}
	}
	return errors.Join(append(errs, r.conn.Close())...)
}

// knownRow is the state of an indexed file. A row digested with another
// algorithm than this run's, or racily clean (indexed within racyWindow of
// the file's modification time), has the size -1, which no file has: the
// file is hashed again. (One column fewer to read: each costs the driver
// two calls into SQLite, each under its mutex, and the reader's time per
// row is what an unchanged rerun waits for.)
type knownRow struct {
	name  string
	state fileState
}

// lookupRows reads a chunk of at most limit rows of a folder for a run of
// an algorithm: its parameters are the algorithm, the folder and the name
// after which the chunk begins. It returns the number
// of rows and the rows as one text: for each row, in name order, its name,
// a zero byte, its size (see knownRow), a space and its mtime_ns, the rows
// joined by zero bytes (no name holds one). One value for many rows: the
// driver's work for each row and each column of a result row (a step, and
// two calls into SQLite per column, each under the connection's mutex, and
// a string for the name) cost more than SQLite's own reading of the row.
// The limit is no parameter: SQLite prepares a statement again when a
// LIMIT's bound value changes.
func lookupRows(limit int) string {
	return fmt.Sprintf(`SELECT count(*), coalesce(group_concat(name || char(0) || size || ' ' || mtime_ns, char(0)), '')
	FROM (SELECT name, iif(algo = ? AND indexed_ns >= mtime_ns + %d, size, -1) AS size, mtime_ns
		FROM files WHERE dir = ? AND name > ? ORDER BY name LIMIT %d)`, racyWindow.Nanoseconds(), limit)
}

// The reader reads rows in chunks: a small first one, which the walker
// waits for before it lists the directory, then larger ones.
const (
	firstRowsPerChunk = 64
	maxRowsPerChunk   = 4096
)

// parseRows appends the rows of text, a chunk of lookupRows, to rows. The
// text's rows are in name order, as the query reads them; should they not
// be, they are sorted, since the merge relies on it.
func parseRows(text string, rows []knownRow) ([]knownRow, error) {
	start := len(rows)
	sorted := true
	for len(text) > 0 {
		var r knownRow
		var ok bool
		r.name, text, ok = strings.Cut(text, "\x00")
		if !ok || r.name == "" {
			return rows, errors.New("unexpected rows from the database")
		}
		var num string
		if num, text, ok = strings.Cut(text, " "); ok {
			r.state.size, ok = parseInt(num)
		}
		if ok {
			num, text, _ = strings.Cut(text, "\x00")
			r.state.mtime, ok = parseInt(num)
		}
		if !ok {
			return rows, fmt.Errorf("unexpected rows from the database: %q is no number", num)
		}
		if len(rows) > start && rows[len(rows)-1].name >= r.name {
			sorted = false
		}
		rows = append(rows, r)
	}
	if !sorted {
		slices.SortFunc(rows[start:], func(a, b knownRow) int { return strings.Compare(a.name, b.name) })
	}
	return rows, nil
}

// parseInt parses a decimal integer of SQLite's, with an optional minus
// sign; it reports false for anything else or an overflow.
func parseInt(s string) (int64, bool) {
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	if s == "" || len(s) > 19 {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	switch {
	case neg && n <= 1<<63:
		return -int64(n-1) - 1, true
	case !neg && n < 1<<63:
		return int64(n), true
	}
	return 0, false
}

// read reads the rows of c in chunks and sends them, until they are all
// sent or c is closed; first finds the directory of a search.
func (c *cursor) read(ctx context.Context, first *sql.Stmt, lookup [2]*sql.Stmt, algo string) {
	defer close(c.done)
	defer close(c.chunks)
	if c.search {
		select {
		case <-c.stop:
			return
		default:
		}
		err := first.QueryRowContext(ctx, c.from).Scan(&c.dir)
		if errors.Is(err, sql.ErrNoRows) {
			c.none = true
			return
		}
		if err != nil {
			c.err = fmt.Errorf("look up %s: %w", c.from, err)
			return
		}
	}
	after := ""
	for i, size := 0, firstRowsPerChunk; ; i, size = 1, maxRowsPerChunk {
		select {
		case <-c.stop:
			return
		default:
		}
		var n int
		var text string
		if err := lookup[i].QueryRowContext(ctx, algo, c.dir, after).Scan(&n, &text); err != nil {
			c.err = fmt.Errorf("look up %s: %w", c.dir, err)
			return
		}
		chunk, err := parseRows(text, make([]knownRow, 0, n))
		if err == nil && len(chunk) != n {
			err = fmt.Errorf("unexpected rows from the database: %d rows, %d read", n, len(chunk))
		}
		if err != nil {
			c.err = fmt.Errorf("look up %s: %w", c.dir, err)
			return
		}
		if n > 0 {
			select {
			case c.chunks <- chunk:
			case <-c.stop:
				return
			}
			after = chunk[n-1].name
		}
		if n < size {
			return
		}
	}
}

// load loads the first row, once: it waits for the reader to find the
// directory of a search, and its first rows.
func (c *cursor) load() {
	if !c.loaded {
		c.loaded = true
		c.next()
	}
}

// skipped reports whether dir is a directory that the loaded cursor c,
// opened ahead, found with no rows: one between from and the directory it
// found, in the index's order. (A search that failed found nothing: c.dir
// is empty.)
func (c *cursor) skipped(dir string) bool {
	return c.search && c.from <= dir && (c.none || dir < c.dir)
}

// next loads the next row.
func (c *cursor) next() {
	c.ok = false
	if len(c.chunk) == 0 {
		var open bool
		if c.chunk, open = <-c.chunks; !open {
			return
		}
	}
	c.row, c.chunk, c.ok = c.chunk[0], c.chunk[1:], true
}

// close stops the reader, waits for it and returns its error. It is
// idempotent, and a nil *cursor is closed.
func (c *cursor) close() error {
	if c == nil {
		return nil
	}
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	<-c.done
	c.ok = false
	return c.err
}

// seek moves the cursor to the first row whose name is not before name; the
// rows it passes have no file and are added to v.gone. It reports whether
// the row it stops at is name's.
func (v *indexVisitor) seek(name string) bool {
	c := v.cur
	for c.ok && c.row.name < name {
		v.gone = append(v.gone, []any{c.dir, c.row.name})
		c.next()
	}
	return c.ok && c.row.name == name
}

// walkIndex walks the roots, skips unchanged files, submits the others to
// the pool, removes the rows of files that are gone and, when the walk
// completed, of directories that are gone.
func walkIndex(ctx context.Context, run *indexRun, s *session[indexDeps], db *sql.DB, roots []string, log *zap.Logger) (err error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() { err = errors.Join(err, conn.Close()) }()
	rows, err := startRowReader(ctx, db, run.opts.algo)
	if err != nil {
		return err
	}
	v := &indexVisitor{
		run: run, s: s, conn: conn, rows: rows, log: log,
		visited: make(map[string]struct{}), failed: make(map[string]struct{}),
	}
	defer func() { err = errors.Join(err, v.closeCursors(), rows.close()) }()
	w := &walker{follow: run.opts.follow, exclude: run.opts.exclude, self: run.self, v: v}
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
	run.c.exact.Store(true)
	for _, r := range roots {
		if err := v.sweep(ctx, r); err != nil {
			return err
		}
	}
	return nil
}

func (v *indexVisitor) enterDir(_ context.Context, dir string) error {
	_, again := v.visited[dir]
	v.visited[dir] = struct{}{}
	err := v.cur.close()
	v.cur = nil
	if err != nil {
		return err
	}
	if c := v.ahead; c != nil {
		c.load()
		switch {
		case c.dir == dir:
			v.cur, v.ahead = c, nil
			return nil
		case c.skipped(dir) && !again:
			// The walker passes through a directory with no rows on its
			// way to c's. (Not one entered before: this run may have
			// added rows to it since; see walk, a root that is a file.)
			v.cur = emptyCursor(dir)
			return nil
		}
		// Not where the walker was expected: a followed link, or a
		// directory that could not be opened, came first, or one whose
		// name holds a byte before '/' sorts otherwise in the index.
		v.ahead = nil
		if err := c.close(); err != nil {
			return err
		}
	}
	v.cur = v.rows.open(dir)
	v.cur.load()
	return nil
}

// enterNext opens the cursor of the rows ahead of dir, the directory that
// the walker enters next, unless one is open already.
func (v *indexVisitor) enterNext(_ context.Context, dir string) {
	if v.ahead == nil {
		v.ahead = v.rows.openAhead(dir)
	}
}

// closeCursors closes the cursors, in the order they were opened.
func (v *indexVisitor) closeCursors() error {
	err := errors.Join(v.cur.close(), v.ahead.close())
	v.cur, v.ahead = nil, nil
	return err
}

// wantsStates: a directory with rows is one indexed before, whose files
// are most likely in the index.
func (v *indexVisitor) wantsStates() bool {
	return v.cur.ok && !v.run.opts.rehash
}

// needState: the state of a file is needed to tell whether an indexed file
// has changed; a file not in the index yet is hashed whatever its state.
func (v *indexVisitor) needState(name string) bool {
	return v.seek(name) && !v.run.opts.rehash
}

func (v *indexVisitor) file(ctx context.Context, dir, name string, st *fileState, link bool) error {
	c := &v.run.c
	c.seen.Add(1)
	indexed := v.seek(name)
	unchanged := indexed && st != nil && !v.run.opts.rehash && v.cur.row.state == *st
	if indexed {
		v.cur.next()
	}
	if st != nil {
		c.seenBytes.Add(st.size)
	}
	if unchanged {
		c.unchanged.Add(1)
		c.unchangedBytes.Add(st.size)
		return nil
	}
	if v.run.queue != nil {
		return v.run.queue.publish(ctx, dir, name, link)
	}
	if err := v.flushReady(); err != nil { // in key order, before this file's row
		return err
	}
	return v.s.submit(v.run.hashTask(dir, name, link))
}

func (v *indexVisitor) leaveDir(ctx context.Context, dir string, complete bool) error {
	if err := v.flushReady(); err != nil {
		return err
	}
	for v.cur.ok {
		v.gone = append(v.gone, []any{dir, v.cur.row.name})
		v.cur.next()
	}
	if err := v.cur.close(); err != nil {
		return err
	}
	if complete {
		v.deletes = append(v.deletes, v.gone...)
	}
	clear(v.gone)
	v.gone = v.gone[:0]
	if len(v.deletes) >= 256 {
		return v.flushDeletes(ctx)
	}
	return nil
}

func (v *indexVisitor) problem(path string, isDir bool, err error) {
	if isDir {
		v.failed[path] = struct{}{}
	} else if c := v.cur; c != nil && c.dir == filepath.Dir(path) && v.seek(filepath.Base(path)) {
		// A file of the directory that could not be looked at (a folder
		// that can be listed, not searched) is not gone: its row stays,
		// as those of a folder that could not be listed do.
		c.next()
	}
	v.run.problem(path, err)
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
// visit: directories that are gone or excluded. Rows under a directory
// that could not be listed are kept. It looks up one row per indexed
// directory (a skip scan of the primary key), not every row.
func (v *indexVisitor) sweep(ctx context.Context, root string) error {
	var gone [][]any
	keep := func(d string) bool {
		_, ok := v.visited[d]
		return ok || v.underFailed(d)
	}
	var n int
	err := v.conn.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM files WHERE dir = ? LIMIT 1)`, root).Scan(&n)
	if err != nil {
		return fmt.Errorf("sweep %s: %w", root, err)
	}
	if n > 0 && !keep(root) {
		gone = append(gone, []any{root})
	}
	prefix := strings.TrimSuffix(root, "/") + "/"
	hi := strings.TrimSuffix(root, "/") + "0" // '0' follows '/'
	next, err := v.conn.PrepareContext(ctx, `SELECT dir FROM files WHERE dir >= ? AND dir < ? ORDER BY dir LIMIT 1`)
	if err != nil {
		return fmt.Errorf("sweep %s: %w", root, err)
	}
	defer next.Close()
	for from := prefix; ; {
		var d string
		err := next.QueryRowContext(ctx, from, hi).Scan(&d)
		if errors.Is(err, sql.ErrNoRows) {
			break
		}
		if err != nil {
			return fmt.Errorf("sweep %s: %w", root, err)
		}
		if d != root && !keep(d) {
			gone = append(gone, []any{d})
		}
		from = d + "\x00" // the next directory
	}
	k, err := inTx(ctx, &v.run.writer, v.conn, `DELETE FROM files WHERE dir = ?`, gone)
	if err != nil {
		return fmt.Errorf("sweep %s: %w", root, err)
	}
	v.run.c.removed.Add(k)
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

// countVisitor counts files and bytes, for the progress bar's total.
type countVisitor struct{ c *counters }

func (countVisitor) enterDir(context.Context, string) error { return nil }
func (countVisitor) needState(string) bool                  { return true }
func (v countVisitor) file(_ context.Context, _, _ string, st *fileState, _ bool) error {
	v.c.counted.Add(1)
	v.c.countedBytes.Add(st.size)
	return nil
}
func (countVisitor) leaveDir(context.Context, string, bool) error { return nil }
func (countVisitor) problem(string, bool, error)                  {}
