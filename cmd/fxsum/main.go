package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
)

func main() {
	stdout := &checkedWriter{w: os.Stdout}
	err := run(context.Background(), os.Args[1:], stdout, os.Stderr)
	if werr := stdout.failed(); werr != nil && (err == nil || errors.Is(err, errHelp) || errors.Is(err, errMismatch)) {
		// What was printed is lost (a full disk, a closed pipe): as
		// coreutils, say so and fail, even when the run did its work.
		err = fmt.Errorf("write error: %w", werr)
	}
	os.Exit(exitCode(err, os.Stderr))
}

// checkedWriter keeps the first error of the writes to w. It is safe for
// concurrent use.
type checkedWriter struct {
	w   io.Writer
	mu  sync.Mutex
	err error
}

func (c *checkedWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	if err != nil {
		c.mu.Lock()
		if c.err == nil {
			c.err = err
		}
		c.mu.Unlock()
	}
	return n, err
}

// failed returns the first error of a write, if any.
func (c *checkedWriter) failed() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
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
	return runCommand(ctx, o, stdout, stderr)
}

// runCommand runs the command that o, the parsed arguments, names. A
// corrupt database, which SQLite finds only when it reads the damaged
// pages, is one line that names it, as every database that cannot be used.
func runCommand(ctx context.Context, o *options, stdout, stderr io.Writer) error {
	err := runNamed(ctx, o, stdout, stderr)
	if cause := corruption(err); cause != nil {
		// A read-only database is read without locks (see openReadOnly):
		// a run writing it meanwhile can make it look damaged.
		return usagef("--db %s: the database is damaged: %w (unless another run was writing it: then try again; else move it away and index again)", o.db, cause)
	}
	return err
}

func runNamed(ctx context.Context, o *options, stdout, stderr io.Writer) error {
	log := newLogger(o, stderr)
	defer func() { _ = log.Sync() }()
	switch o.cmd {
	case "manifest":
		return runManifest(ctx, o, stdout)
	case "verify":
		return runVerify(ctx, o, log, stdout, stderr)
	case "worker":
		return runWorker(ctx, o, log, stderr)
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
		printError(stderr, err)
		return exitUsage
	default:
		printError(stderr, err)
		return 1
	}
}

// maxErrorLines bounds what printError prints of an error that joins many
// (one per worker that failed the same way, say).
const maxErrorLines = 4

// printError prints err after "fxsum: ", at most maxErrorLines of it.
func printError(w io.Writer, err error) {
	lines := strings.Split(err.Error(), "\n")
	if n := len(lines) - maxErrorLines; n > 0 {
		lines = append(lines[:maxErrorLines], fmt.Sprintf("(and %d more lines like these)", n))
	}
	fmt.Fprintf(w, "fxsum: %s\n", strings.Join(lines, "\n"))
}
