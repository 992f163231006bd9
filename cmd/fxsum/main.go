// Command fxsum is a parallel, incremental, resumable checksum indexer built
// on fxpool.
//
// It walks directory trees, hashes every regular file with a pool of workers
// and records path, size, modification time and digest in a SQLite database.
// A second run re-hashes only files whose size or modification time changed
// and removes the rows of deleted files. The index can be printed as a
// sha256sum-compatible manifest and verified against the files on disk.
//
// Usage:
//
//	fxsum [index] [flags] PATH...
//	fxsum manifest [flags]
//	fxsum verify [flags] [PATH...]
//
// Run "fxsum --help" for every flag.
//
// # How it uses fxpool
//
// The *sql.DB is an app-scoped resource with its own OnStop. Each worker of
// the hashing pool owns, as per-worker resources, a read buffer, a set of
// hashers, a *sql.Conn and a batch of rows with a prepared insert. The batch
// commits every few hundred rows in one short transaction, and once more when
// its worker stops. Teardown runs batch commit, then connection close, in
// each worker, and closes the *sql.DB after every worker has stopped.
//
// # Exit status
//
// 0 on success, 1 when verify found changed, missing or unreadable files, 2
// for bad usage or a database that is not an fxsum database, and 130 when
// interrupted by SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

func main() {
	err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr)
	os.Exit(exitCode(err, os.Stderr))
}

// Exit codes of fxsum.
const (
	exitOK          = 0
	exitMismatch    = 1
	exitUsage       = 2
	exitInterrupted = 130
)

// usageError is bad input from the user: a bad flag, a missing path, a
// database that is not an fxsum database. It exits with status 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{err: fmt.Errorf(format, args...)}
}

// run is fxsum without the process: it parses args, runs the command and
// returns its error; main maps the error to the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseArgs(args, stdout)
	if err != nil {
		return err
	}
	log := newLogger(o.logLevel, stderr)
	defer func() { _ = log.Sync() }()
	switch o.cmd {
	case "manifest":
		return runManifest(ctx, o, stdout)
	case "verify":
		return runVerify(ctx, o, log, stdout, stderr)
	default:
		return runIndex(ctx, o, log, stderr)
	}
}

// errInterrupted reports that a signal stopped the run. Its message has
// already been printed.
var errInterrupted = errors.New("interrupted")

// errMismatch reports that verify found problems. They have already been
// printed.
var errMismatch = errors.New("verification failed")

// errHelp reports that --help was printed.
var errHelp = errors.New("help requested")

// exitCode maps the error of run to an exit status and prints it if it has
// not been printed yet.
func exitCode(err error, stderr io.Writer) int {
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, errHelp):
		return exitOK
	case errors.Is(err, errInterrupted):
		return exitInterrupted
	case errors.Is(err, errMismatch):
		return exitMismatch
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "fxsum: %v\n", err)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "fxsum: %v\n", err)
		return 1
	}
}
