package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

const helpText = `fxsum: a parallel, incremental, resumable checksum indexer.

Usage:
  fxsum [index] [flags] PATH...   hash files into the index (the default command)
  fxsum manifest [flags]          print the index as sha256sum-compatible lines
  fxsum verify [flags] [PATH...]  re-hash indexed files and report differences
  fxsum worker --queue URL        hash the files of index --queue runs (below)

index walks each PATH (a directory or a file), hashes every regular file with
--workers workers and records its absolute path, size, modification time and
digest in the database. A later run re-hashes only files whose size or
modification time changed (or whose algorithm differs, or that were modified
less than 2 s before they were read: on file systems that keep times to the
second, a file rewritten then would look unchanged), removes the rows of
files that are gone and reports how many it skipped. Symbolic links are not
followed unless --follow is given (a PATH named on the command line is always
followed). Version-control folders (.git, .hg, .svn, .bzr) are skipped unless
--vcs is given. The database and SQLite's files beside it are never indexed,
whatever path leads to them. Unreadable files and directories, and PATHs that
do not exist, are reported and counted, do not stop the run, and make it exit
with status 1. A file that changes while it is hashed is hashed once more,
then reported. Ctrl-C (SIGINT) or SIGTERM stops taking files, lets the files
in flight finish, commits them and exits with status 130; the next run resumes
where this one stopped. A second Ctrl-C exits at once; the database stays
consistent.

manifest prints "<hex digest>  <path>" lines sorted by path, escaped as GNU
coreutils does for names with a backslash or a newline, so that
"fxsum manifest > SUMS; sha256sum -c SUMS" works (b3sum -c and sha512sum -c
for the other algorithms). Paths are absolute unless --root is given.

index --queue URL publishes the files to hash to NATS JetStream at URL
instead of hashing them itself; "fxsum worker --queue URL", on any number
of machines that see the files at the same paths, hashes them and publishes
the digests, which index writes into its database as usual. --queue
embedded runs a NATS server inside index (add --listen ADDR for workers on
other machines). With --queue, --workers is the number of workers in the
index process itself (0: none). A worker that dies loses nothing: its files
go to another worker. worker runs until SIGINT or SIGTERM. README.md has the
subjects and streams and the commands for two machines.

verify re-hashes every indexed file (or those under the given PATHs) and
prints "changed: PATH", "missing: PATH" or "unreadable: PATH: reason" lines.
It does not modify the database. A PATH with no indexed file under it is an
error.

Flags (the commands they apply to in brackets):
  --db PATH          database file (default "fxsum.db" in the working
                     directory); an existing file that is not an fxsum
                     database is refused (exit 2) and left untouched
  --workers N        [index, verify] hashing workers, 1 to %[2]d (default:
                     GOMAXPROCS, here %[1]d, or fewer if the limit of open
                     files, ulimit -n, is low: an index worker keeps 3 open)
  --algo NAME        [index, manifest] sha256 (default), sha512 or blake3; for
                     manifest, which algorithm's rows to print (default: the
                     only one present)
  --rehash           [index] hash every file, even unchanged ones
  --follow           [index] follow symbolic links, with loop detection
  --exclude PATTERN  [index] skip files and folders that match PATTERN; may be
                     repeated. A PATTERN without a slash is matched against
                     the name of every file and folder, at any depth; one with
                     a slash against the path relative to the PATH being
                     walked (a leading slash is ignored). A trailing slash
                     matches folders only. *, ?, [a-z] and [!a-z] are as in
                     the shell and do not match a slash; ** is not special.
                     Rows of files excluded later are removed from the
                     index. A PATH named is indexed even if it matches; a
                     PATH inside another is walked as part of that one.
  --vcs              [index] also index .git, .hg, .svn and .bzr folders
  --queue URL        [index, worker] hash through NATS JetStream at URL
                     (nats://host:4222, comma-separated for a cluster), or
                     "embedded" (index only): a server inside index
  --listen ADDR      [index] with --queue embedded, also listen on ADDR
                     (host:port, port 0 picks one; the URL is printed) for
                     workers in other processes or on other machines
  --idle-timeout D   [index] with --queue, give up (exit 1) when no file was
                     hashed for D and no worker is connected (default 5m)
  --root DIR         [manifest] print paths relative to DIR, only files under
                     it; DIR must exist
  --quiet            no progress bar and no summary line
  --log-level LEVEL  the internal zap log of the pool and fx on stderr: off
                     (default: fxsum's own messages say what went wrong),
                     debug, info, warn or error
  --help             this text

A first argument that is not a command is a PATH to index; a command may also
follow the flags ("fxsum --db x.db manifest"). To index a folder named like a
command, write "./manifest".

Progress (files and bytes done of the total found, rate, ETA) is drawn on
stderr when it is a terminal; otherwise a one-line summary is printed at the
end.

Exit status: 0 ok; 1 verify found problems, index could not read some files,
or the run failed; 2 bad usage, a database that cannot be opened or is not an
fxsum database; 130 interrupted.
`

// maxWorkers bounds --workers. Each worker holds a read buffer and a
// database connection with its own page cache; past a few hundred, more
// workers only cost memory and start time.
const maxWorkers = 256

// Open files: an index worker keeps its database connection open (the
// database and its write-ahead log) and opens the file it hashes, a verify
// or queue worker the file it hashes; the rest of the process (standard
// streams, the walk's connection and folder, the progress bar, a queue's
// sockets) keeps fewer than filesReserved.
const (
	filesPerIndexWorker = 3
	filesPerHashWorker  = 1
	filesReserved       = 24
)

// openFilesLimit is how many files this process may open, if known; tests
// replace it.
var openFilesLimit = sysOpenFilesLimit

// checkOpenFiles refuses --workers that would need more open files than
// this process may have (ulimit -n): past the limit, SQLite reports only
// that it is "unable to open database file", once a worker. Workers by
// default (one a core) are cut down to what the limit allows instead.
func checkOpenFiles(o *options) error {
	limit, ok := openFilesLimit()
	if !ok {
		return nil
	}
	reserved, per, workers := filesReserved, filesPerHashWorker, o.workers
	switch {
	case o.cmd == "index" && o.queue != "":
		// Hashing workers, and the pool of writers that store their results.
		workers = o.queueWorkers
		reserved += filesPerIndexWorker * queueWriters
	case o.cmd == "index":
		per = filesPerIndexWorker
	}
	need := reserved + per*workers
	if need <= limit {
		return nil
	}
	most := max((limit-reserved)/per, 0)
	if !o.flagSet["workers"] && most >= 1 {
		// The default, one a core: as many as the limit allows.
		if o.cmd == "index" && o.queue != "" {
			o.queueWorkers = most
		} else {
			o.workers = most
		}
		return nil
	}
	if most < 1 {
		return usagef("ulimit -n %d: too few open files: fxsum needs about %d with one worker; raise the limit", limit, reserved+per)
	}
	return usagef("--workers %d: needs about %d open files, and this process may open %d (ulimit -n): use at most %d workers, or raise the limit", workers, need, limit, most)
}

// vcsDirs are the version-control folders skipped unless --vcs is given.
var vcsDirs = []string{".git", ".hg", ".svn", ".bzr"}

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
	exclude  *excluder
	root     string
	quiet    bool
	logLevel zapcore.Level
	logOff   bool

	queue        string        // --queue: a NATS URL, "embedded" or ""
	listen       string        // --listen, with --queue embedded
	idleTimeout  time.Duration // --idle-timeout
	queueWorkers int           // index --queue: hashing workers in this process

	flagSet map[string]bool // the flags given, by name: an empty --queue is not none

	test *testSeams // set by in-process tests only
}

// commandFlags are the flags each command takes, beside the common ones.
var commandFlags = map[string][]string{
	"index":    {"workers", "algo", "rehash", "follow", "exclude", "vcs", "queue", "listen", "idle-timeout"},
	"worker":   {"workers", "queue"},
	"manifest": {"algo", "root"},
	"verify":   {"workers"},
}

// commonFlags apply to every command.
var commonFlags = []string{"db", "quiet", "log-level", "help", "h"}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

// parseArgs parses the command line. Flags may appear before, between and
// after the paths; "--" ends the flags. A flag that does not apply to the
// command is an error.
func parseArgs(args []string, stdout io.Writer) (*options, error) {
	o := &options{cmd: "index"}
	explicit := false
	if len(args) > 0 {
		switch args[0] {
		case "index", "manifest", "verify", "worker":
			o.cmd, explicit = args[0], true
			args = args[1:]
		case "help":
			printHelp(stdout)
			return nil, errHelp
		}
	}
	fs := flag.NewFlagSet("fxsum", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.db, "db", "fxsum.db", "")
	fs.IntVar(&o.workers, "workers", runtime.GOMAXPROCS(0), "")
	fs.StringVar(&o.algo, "algo", "sha256", "")
	fs.BoolVar(&o.rehash, "rehash", false, "")
	fs.BoolVar(&o.follow, "follow", false, "")
	var excludes stringList
	fs.Var(&excludes, "exclude", "")
	vcs := fs.Bool("vcs", false, "")
	fs.StringVar(&o.root, "root", "", "")
	fs.BoolVar(&o.quiet, "quiet", false, "")
	level := fs.String("log-level", "off", "")
	fs.StringVar(&o.queue, "queue", "", "")
	fs.StringVar(&o.listen, "listen", "", "")
	fs.DurationVar(&o.idleTimeout, "idle-timeout", defaultIdleTimeout, "")
	afterDashes := -1 // index in o.paths of the first path after "--"
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				printHelp(stdout)
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
			afterDashes = len(o.paths)
			o.paths = append(o.paths, rest...)
			break
		}
		o.paths = append(o.paths, rest[0])
		args = rest[1:]
	}
	// "fxsum --db x manifest": the command after the flags.
	if !explicit && len(o.paths) > 0 && afterDashes != 0 {
		switch o.paths[0] {
		case "index", "manifest", "verify", "worker":
			o.cmd = o.paths[0]
			o.paths = o.paths[1:]
		}
	}
	var misplaced []string
	o.flagSet = map[string]bool{}
	fs.Visit(func(f *flag.Flag) {
		o.flagSet[f.Name] = true
		if f.Name == "algo" {
			o.algoSet = true
		}
		if !slices.Contains(commonFlags, f.Name) && !slices.Contains(commandFlags[o.cmd], f.Name) {
			misplaced = append(misplaced, "--"+f.Name)
		}
	})
	if len(misplaced) > 0 {
		return nil, usagef("%s: %s does not apply (see fxsum --help)", o.cmd, strings.Join(misplaced, ", "))
	}
	switch *level = strings.ToLower(*level); *level {
	case "off":
		o.logOff = true
	case "debug", "info", "warn", "error":
		if err := o.logLevel.Set(*level); err != nil {
			return nil, usagef("--log-level %q: %w", *level, err)
		}
	default:
		return nil, usagef("--log-level %q: want off, debug, info, warn or error", *level)
	}
	if o.flagSet["root"] && o.root == "" {
		return nil, usagef("--root: empty path")
	}
	o.algo = strings.ToLower(o.algo)
	if _, ok := algorithms[o.algo]; !ok {
		return nil, usagef("--algo %q: want sha256, sha512 or blake3", o.algo)
	}
	if err := checkQueueArgs(o); err != nil {
		return nil, err
	}
	if (o.workers < 1 && (o.queue == "" || o.cmd != "index")) || o.workers < 0 || o.workers > maxWorkers {
		return nil, usagef("--workers %d: want 1 to %d", o.workers, maxWorkers)
	}
	if o.queue != "" && o.cmd == "index" {
		// The index process's own pool only writes the results: the
		// hashing workers are the queue's.
		o.queueWorkers, o.workers = o.workers, queueWriters
	}
	if err := checkOpenFiles(o); err != nil {
		return nil, err
	}
	if o.db == "" {
		return nil, usagef("--db: empty path")
	}
	if strings.HasSuffix(o.db, "/") || strings.HasSuffix(o.db, string(os.PathSeparator)) {
		// A trailing slash names a folder: the path's cleaning would drop
		// it, and a file would be made where the user meant a folder.
		return nil, usagef("--db %s: names a folder; give the database's file (%sfxsum.db, say)", o.db, o.db)
	}
	if !*vcs {
		for _, d := range vcsDirs {
			excludes = append(excludes, d+"/")
		}
	}
	var err error
	if o.exclude, err = newExcluder(excludes); err != nil {
		return nil, err
	}
	switch o.cmd {
	case "index":
		if len(o.paths) == 0 {
			return nil, usagef("index: no PATH given (see fxsum --help)")
		}
	case "manifest", "worker":
		if len(o.paths) > 0 {
			return nil, usagef("%s: unexpected argument %q", o.cmd, o.paths[0])
		}
	}
	return o, nil
}

func printHelp(w io.Writer) { fmt.Fprintf(w, helpText, runtime.GOMAXPROCS(0), maxWorkers) }

// newLogger is the internal zap log on w, or none if --log-level is off.
func newLogger(o *options, w io.Writer) *zap.Logger {
	if o.logOff {
		return zap.NewNop()
	}
	level := o.logLevel
	enc := zap.NewDevelopmentEncoderConfig()
	core := zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.Lock(zapcore.AddSync(w)), level)
	return zap.New(core).Named("fxsum")
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && termIsTerminal(int(f.Fd()))
}
