package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"modernc.org/sqlite" // the pure-Go SQLite driver, registered as "sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// An fxsum database is a SQLite database whose header carries
// applicationID, so that fxsum never writes to someone else's database.
const (
	applicationID = 0x66787375 // "fxsu"
	schemaVersion = 1
	busyTimeoutMS = 30000
)

const schema = `
CREATE TABLE files (
	dir        TEXT    NOT NULL, -- absolute, clean
	name       TEXT    NOT NULL, -- the file's name in dir
	size       INTEGER NOT NULL,
	mtime_ns   INTEGER NOT NULL,
	algo       TEXT    NOT NULL,
	digest     BLOB    NOT NULL,
	indexed_ns INTEGER NOT NULL,
	PRIMARY KEY (dir, name)
) WITHOUT ROWID;
`

// pathExpr is the path of a row in SQL, for sorting by path.
const pathExpr = `(CASE WHEN dir = '/' THEN '/' || name ELSE dir || '/' || name END)`

// checkDB inspects the file at path without opening it with SQLite, so that
// nothing is written to a file that is not an fxsum database. It reports
// whether the database must be created. A missing file is created only when
// create is set.
func checkDB(path string, create bool) (isNew bool, err error) {
	// Looked at before it is opened: opening a FIFO waits for a writer.
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		if !create {
			return false, usagef("--db %s: no such database (run fxsum index first)", path)
		}
		return true, nil
	}
	if err != nil {
		return false, usagef("--db %s: %w", path, pathCause(err))
	}
	if !fi.Mode().IsRegular() {
		return false, usagef("--db %s: not a regular file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return false, usagef("--db %s: %w", path, pathCause(err))
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil {
		return false, usagef("--db %s: %w", path, pathCause(err))
	}
	if !fi.Mode().IsRegular() {
		return false, usagef("--db %s: not a regular file", path) // replaced meanwhile
	}
	if fi.Size() == 0 {
		if !create {
			return false, usagef("--db %s: empty database (run fxsum index first)", path)
		}
		return true, nil
	}
	var hdr [100]byte
	if _, err := io.ReadFull(f, hdr[:]); err != nil || !bytes.Equal(hdr[:16], []byte("SQLite format 3\x00")) {
		return false, usagef("--db %s: not an fxsum database (not a SQLite file); refusing to touch it", path)
	}
	if id := binary.BigEndian.Uint32(hdr[68:72]); id != applicationID {
		return false, usagef("--db %s: not an fxsum database (a SQLite database with application_id %#x); refusing to touch it", path, id)
	}
	if v := binary.BigEndian.Uint32(hdr[60:64]); v > schemaVersion {
		return false, usagef("--db %s: made by a newer fxsum (schema %d, this one knows %d)", path, v, schemaVersion)
	}
	if want, ok := headerSize(hdr); ok && fi.Size() < want && !pending(path+"-wal") && !pending(path+"-journal") {
		// Cut short (a copy or a disk that failed): SQLite reads the
		// pages past the end as empty, and a column as NULL.
		return false, usagef("--db %s: the database is damaged: %d bytes, its header says %d (move it away and index again)", path, fi.Size(), want)
	}
	return false, nil
}

// headerSize returns the size in bytes that a SQLite database header says
// its file has, if the header's size is valid (written by SQLite 3.7 or
// later, and not changed since by an older one).
func headerSize(hdr [100]byte) (int64, bool) {
	pageSize := int64(binary.BigEndian.Uint16(hdr[16:18]))
	if pageSize == 1 {
		pageSize = 65536
	}
	pages := int64(binary.BigEndian.Uint32(hdr[28:32]))
	valid := bytes.Equal(hdr[24:28], hdr[92:96]) // the change counter, as of the size's writing
	return pages * pageSize, valid && pages > 0 && pageSize >= 512
}

// dsn is the driver's name for the database at path, with the pragmas every
// connection needs.
func dsn(path string) string {
	// SQLite URI file names: %, ? and # must be escaped.
	p := (&url.URL{Path: filepath.ToSlash(path)}).EscapedPath()
	p = strings.NewReplacer("?", "%3F", "#", "%23").Replace(p)
	return "file:" + p + fmt.Sprintf("?_pragma=busy_timeout(%d)&_pragma=synchronous(NORMAL)", busyTimeoutMS)
}

// createDB makes the schema in a new database, in rollback-journal mode, so
// that the application_id is in the main file before anything else; openDB
// switches it to WAL after. Two or more processes may create the same
// database at once: each makes the schema in a write transaction (BEGIN
// IMMEDIATE, which waits up to busy_timeout for another's) that first looks
// whether another one has made it already.
func createDB(ctx context.Context, path string) (err error) {
	db, err := sql.Open("sqlite", dsn(path))
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, db.Close()) }()
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_, _ = conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		}
	}()
	var tables, id int
	if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema`).Scan(&tables); err != nil {
		return err
	}
	if err := conn.QueryRowContext(ctx, `PRAGMA application_id`).Scan(&id); err != nil {
		return err
	}
	switch {
	case tables > 0 && id == applicationID: // made by another fxsum meanwhile
		hookFound()
		_, err = conn.ExecContext(ctx, "COMMIT")
		return err
	case tables > 0 || id != 0:
		return usagef("--db %s: not an fxsum database (made by someone else meanwhile); refusing to touch it", path)
	}
	for _, q := range []string{
		fmt.Sprintf("PRAGMA application_id = %d", applicationID),
		fmt.Sprintf("PRAGMA user_version = %d", schemaVersion),
		schema,
		"COMMIT",
	} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	hookMade()
	return nil
}

// walWait bounds how long setWAL tries.
const walWait = busyTimeoutMS * time.Millisecond

// setWAL switches the database to WAL, which lets the workers' writes and
// the readers go on side by side; it is a no-op on a database in WAL
// already. Every open does it, so that a database whose creator died
// between making the schema and switching is switched by the next run.
//
// The switch writes the header, and SQLite takes its write lock for it
// after a read lock, as an upgrade: while another connection holds the
// write lock (another first run that looks whether the schema is made,
// another run that switches, a run writing a database still in rollback
// mode), SQLite refuses at once with SQLITE_BUSY instead of waiting
// busy_timeout, because a waiting upgrade could deadlock. The lock is then
// held for moments, so setWAL tries again, with pauses of 1 to 50 ms, for
// at most walWait in all; then the database is locked for good. If SQLite
// cannot use WAL there (a file system without shared memory), the switch
// leaves the mode as it is without an error, and the database is used in
// rollback mode, as before.
func setWAL(ctx context.Context, db *sql.DB) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	end := time.Now().Add(walWait)
	for pause := time.Millisecond; ; pause = min(2*pause, 50*time.Millisecond) {
		var mode string
		err := conn.QueryRowContext(ctx, "PRAGMA journal_mode = WAL").Scan(&mode)
		hookWALTried()
		if err == nil || !isBusy(err) {
			return err
		}
		if time.Now().Add(pause).After(end) {
			return fmt.Errorf("%w: still locked after %v", err, walWait)
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// corruption returns the SQLite error in err that says the database is
// damaged (SQLITE_CORRUPT or SQLITE_NOTADB, any extended code), or nil.
func corruption(err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) {
		if c := se.Code() & 0xff; c == sqlite3.SQLITE_CORRUPT || c == sqlite3.SQLITE_NOTADB {
			return se
		}
	}
	return nil
}

// isBusy reports whether err is SQLite's SQLITE_BUSY (any extended code).
func isBusy(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_BUSY
}

// openDB opens the fxsum database at path, an absolute path, creating it
// if create is set and it does not exist. Every problem with the database
// is a usageError of one line that names the file and the cause: a file
// that is not an fxsum database (refused untouched), a folder that does not
// exist or cannot be written, a database or a file beside it that cannot be
// written, a corrupt database, a database locked by another program for
// longer than busy_timeout.
func openDB(ctx context.Context, path string, create bool) (*sql.DB, error) {
	if err := checkWritable(path); err != nil {
		if create {
			return nil, err
		}
		return openReadOnly(ctx, path, err)
	}
	isNew, err := checkDB(path, create)
	if err != nil {
		return nil, err
	}
	hookChecked()
	if isNew {
		if err := makeDB(ctx, path); err != nil {
			return nil, err
		}
	}
	db, err := sql.Open("sqlite", dsn(path))
	if err != nil {
		return nil, usagef("--db %s: %w", path, err)
	}
	files, tables, err := countTables(ctx, db)
	if err == nil && tables == 0 && !isNew {
		// A header that says fxsum over no schema at all: a first run was
		// cut short while it made the schema, and SQLite, reading, has
		// just rolled its journal back. The database is made now, as it
		// would have been then (or refused, if someone else's meanwhile).
		_ = db.Close()
		if !create {
			return nil, usagef("--db %s: empty database (run fxsum index first)", path)
		}
		if err := makeDB(ctx, path); err != nil {
			return nil, err
		}
		if db, err = sql.Open("sqlite", dsn(path)); err != nil {
			return nil, usagef("--db %s: %w", path, err)
		}
		files, _, err = countTables(ctx, db)
	}
	switch {
	case err != nil:
		err = usagef("--db %s: cannot read the database (corrupt?): %w", path, err)
	case files != 1:
		err = usagef("--db %s: not an fxsum database (no files table); refusing to touch it", path)
	default:
		err = checkColumns(ctx, db, path)
	}
	if err == nil {
		if err = setWAL(ctx, db); err != nil {
			err = usagef("--db %s: cannot switch the database to WAL: %w", path, err)
		}
	}
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	return db, nil
}

// makeDB is createDB, its errors made one line that names the database.
func makeDB(ctx context.Context, path string) error {
	err := createDB(ctx, path)
	var ue *usageError
	if err == nil || errors.As(err, &ue) {
		return err
	}
	return usagef("--db %s: cannot create the database: %w", path, err)
}

// openReadOnly opens, for a command that only reads (manifest, verify),
// an fxsum database that this process may not write, or whose folder it
// may not write: an archived index, another user's, one on read-only
// media. SQLite is told that the file cannot change (immutable), so that
// it makes no -wal or -shm file beside it, which it would make as
// read-only as the database and which would fail every later run; for the
// same reason, a database that has a -wal or -journal file with content
// (a run that did not end, or one under way) is refused, with why: what is
// in those is not in the database yet. notWritable is checkWritable's
// error.
func openReadOnly(ctx context.Context, path string, notWritable error) (*sql.DB, error) {
	if _, err := checkDB(path, false); err != nil {
		return nil, err
	}
	for _, suffix := range []string{"-wal", "-journal"} {
		if pending(path + suffix) {
			return nil, usagef("%w, and %s%s holds changes not in the database yet: a run that did not end, or one under way", notWritable, path, suffix)
		}
	}
	db, err := sql.Open("sqlite", dsn(path)+"&mode=ro&immutable=1")
	if err != nil {
		return nil, usagef("--db %s: %w", path, err)
	}
	files, _, err := countTables(ctx, db)
	switch {
	case err != nil:
		err = usagef("--db %s: cannot read the database (corrupt?): %w", path, err)
	case files != 1:
		err = usagef("--db %s: not an fxsum database (no files table)", path)
	default:
		err = checkColumns(ctx, db, path)
	}
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	return db, nil
}

// pending reports whether the -wal or -journal file at path may hold
// changes that are not in the database: a WAL with frames after its
// 32-byte header, or a rollback journal whose header SQLite would roll
// back (a journal that SQLite zeroed or truncated at a commit, as its
// PERSIST and TRUNCATE modes leave, holds none). A file that cannot be
// read may.
func pending(path string) bool {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false
	}
	if err != nil {
		return true
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return true
	}
	if strings.HasSuffix(path, "-wal") {
		return fi.Size() > 32
	}
	var magic [8]byte
	if _, err := io.ReadFull(f, magic[:]); err != nil {
		return fi.Size() > 0 && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF)
	}
	return magic == [8]byte{0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7}
}

// filesColumns are the columns of schema's files table, in order.
const filesColumns = "dir,name,size,mtime_ns,algo,digest,indexed_ns"

// checkColumns makes sure that the files table of the database at path has
// fxsum's columns: one whose header says fxsum but whose table was made by
// something else is refused as a damaged one is, before any statement
// fails on it with SQLite's words alone.
func checkColumns(ctx context.Context, db *sql.DB, path string) error {
	var cols sql.NullString
	err := db.QueryRowContext(ctx, `SELECT group_concat(name, ',') FROM (SELECT name FROM pragma_table_info('files') ORDER BY cid)`).Scan(&cols)
	switch {
	case err != nil:
		return usagef("--db %s: cannot read the database (corrupt?): %w", path, err)
	case cols.String != filesColumns:
		return usagef("--db %s: damaged database: its files table has columns (%s), not fxsum's (%s); refusing to touch it", path, cols.String, filesColumns)
	}
	return nil
}

// countTables returns how many tables named files the database has (0 or
// 1), and how many objects its schema holds in all.
func countTables(ctx context.Context, db *sql.DB) (files, all int, err error) {
	err = db.QueryRowContext(ctx, `SELECT count(*) FILTER (WHERE type = 'table' AND name = 'files'), count(*) FROM sqlite_schema`).Scan(&files, &all)
	return files, all, err
}

// checkWritable makes sure, before SQLite opens anything, that the
// database's folder exists and can be written (SQLite makes its -wal and
// -shm files there), and that the database and the files beside it that
// exist can be written. SQLite would otherwise open a read-only database
// read-only and leave behind a -shm file as read-only as the database,
// which fails every later run, even after the database is made writable.
func checkWritable(path string) error {
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	if err != nil {
		return usagef("--db %s: folder %s: %w", path, dir, pathCause(err))
	}
	if !fi.IsDir() {
		return usagef("--db %s: %s is not a folder", path, dir)
	}
	if err := writable(dir); err != nil {
		return usagef("--db %s: folder %s is not writable: %w", path, dir, pathCause(err))
	}
	for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		p := path + suffix
		if _, err := os.Lstat(p); err != nil {
			continue
		}
		if err := writable(p); err != nil {
			return usagef("--db %s: %s is not writable: %w", path, p, pathCause(err))
		}
	}
	return nil
}

// pathCause is the cause of a *fs.PathError, without the path, which the
// message already names.
func pathCause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
