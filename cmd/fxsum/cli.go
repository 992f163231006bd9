package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

const helpText = `fxsum: a parallel, incremental, resumable checksum indexer.

Usage:
  fxsum [index] [flags] PATH...   hash files into the index (the default command)
  fxsum manifest [flags]          print the index as sha256sum-compatible lines
  fxsum verify [flags] [PATH...]  re-hash indexed files and report differences

index walks each PATH (a directory or a file), hashes every regular file with
--workers workers and records its absolute path, size, modification time and
digest in the database. A later run re-hashes only files whose size or
modification time changed (or whose algorithm differs), removes the rows of
files that are gone and reports how many it skipped. Symbolic links are not
followed unless --follow is given (a PATH named on the command line is always
followed). Unreadable files and directories are reported and counted, and do
not stop the run. A file that changes while it is hashed is hashed once more,
then reported. Ctrl-C (SIGINT) or SIGTERM stops taking files, lets the files
in flight finish, commits them and exits with status 130; the next run resumes
where this one stopped. A second Ctrl-C exits at once; the database stays
consistent.

manifest prints "<hex digest>  <path>" lines sorted by path, escaped as GNU
coreutils does for names with a backslash or a newline, so that
"fxsum manifest > SUMS; sha256sum -c SUMS" works (b3sum -c and sha512sum -c
for the other algorithms). Paths are absolute unless --root is given.

verify re-hashes every indexed file (or those under the given PATHs) and
prints "changed: PATH", "missing: PATH" or "unreadable: PATH: reason" lines.
It does not modify the database.

Flags:
  --db PATH          database file (default "fxsum.db" in the working
                     directory); an existing file that is not an fxsum
                     database is refused (exit 2) and left untouched
  --workers N        hashing workers (default: GOMAXPROCS, here %d)
  --algo NAME        sha256 (default), sha512 or blake3; for manifest, which
                     algorithm's rows to print (default: the only one present)
  --rehash           index: hash every file, even unchanged ones
  --follow           index: follow symbolic links, with loop detection
  --root DIR         manifest: print paths relative to DIR, only files under it
  --quiet            no progress bar and no summary line
  --log-level LEVEL  debug, info, warn (default) or error, for the internal
                     zap log on stderr
  --help             this text

Progress (files and bytes done of the total found, rate, ETA) is drawn on
stderr when it is a terminal; otherwise a one-line summary is printed at the
end.

Exit status: 0 ok; 1 verify found problems, or the run failed; 2 bad usage or
not an fxsum database; 130 interrupted.
`

// options are the parsed command line.
type options struct {
	cmd      string
	paths    []string
	db       string
	workers  int
	algo     string
	algoSet  bool
	rehash   bool
	follow   bool
	root     string
	quiet    bool
	logLevel zapcore.Level
}

// parseArgs parses the command line. Flags may appear before, between and
// after the paths; "--" ends the flags.
func parseArgs(args []string, stdout io.Writer) (*options, error) {
	o := &options{cmd: "index"}
	if len(args) > 0 {
		switch args[0] {
		case "index", "manifest", "verify":
			o.cmd = args[0]
			args = args[1:]
		case "help":
			fmt.Fprintf(stdout, helpText, runtime.GOMAXPROCS(0))
			return nil, errHelp
		}
	}
	fs := flag.NewFlagSet("fxsum "+o.cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.db, "db", "fxsum.db", "")
	fs.IntVar(&o.workers, "workers", runtime.GOMAXPROCS(0), "")
	fs.StringVar(&o.algo, "algo", "sha256", "")
	fs.BoolVar(&o.rehash, "rehash", false, "")
	fs.BoolVar(&o.follow, "follow", false, "")
	fs.StringVar(&o.root, "root", "", "")
	fs.BoolVar(&o.quiet, "quiet", false, "")
	level := fs.String("log-level", "warn", "")
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprintf(stdout, helpText, runtime.GOMAXPROCS(0))
				return nil, errHelp
			}
			return nil, usagef("%v (see fxsum --help)", err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		// flag stops at the first non-flag; "--" leaves only paths.
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			o.paths = append(o.paths, rest...)
			break
		}
		o.paths = append(o.paths, rest[0])
		args = rest[1:]
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "algo" {
			o.algoSet = true
		}
	})
	if err := o.logLevel.Set(*level); err != nil {
		return nil, usagef("--log-level: %w", err)
	}
	o.algo = strings.ToLower(o.algo)
	if _, ok := algorithms[o.algo]; !ok {
		return nil, usagef("--algo %q: want sha256, sha512 or blake3", o.algo)
	}
	if o.workers < 1 {
		return nil, usagef("--workers %d: want at least 1", o.workers)
	}
	if o.db == "" {
		return nil, usagef("--db: empty path")
	}
	switch o.cmd {
	case "index":
		if len(o.paths) == 0 {
			return nil, usagef("index: no PATH given (see fxsum --help)")
		}
	case "manifest":
		if len(o.paths) > 0 {
			return nil, usagef("manifest: unexpected argument %q", o.paths[0])
		}
	}
	return o, nil
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

func newLogger(level zapcore.Level, w io.Writer) *zap.Logger {
	enc := zap.NewDevelopmentEncoderConfig()
	core := zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.Lock(zapcore.AddSync(w)), level)
	return zap.New(core).Named("fxsum")
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && termIsTerminal(int(f.Fd()))
}
