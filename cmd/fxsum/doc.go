// Command fxsum is a parallel, incremental, resumable checksum indexer built
// on fxpool.
//
// It walks directory trees, hashes every regular file with a pool of workers
// and records path, size, modification time and digest in a SQLite database.
// A second run re-hashes only files whose size or modification time changed
// (or that were modified within two seconds of being read, as Git does with
// its "racily clean" entries) and removes the rows of deleted files. The index can be printed as a
// sha256sum-compatible manifest and verified against the files on disk.
//
// Usage:
//
//	fxsum [index] [flags] PATH...
//	fxsum manifest [flags]
//	fxsum verify [flags] [PATH...]
//	fxsum worker --queue URL [--workers N]
//
// Run "fxsum --help" for every flag; README.md has examples and measured
// figures.
//
// # How it uses fxpool
//
// Every command that hashes starts one session (app.go): the database is
// opened first, so that a problem with it is one line; then an fx app with
// [fxpool.Module], the app-scoped *sql.DB with its own OnStop, and one pool
// whose workers each own, as per-worker resources, a read buffer, a set of
// hashers and, for index, a *sql.Conn and a batch of rows with a prepared
// insert. The batch commits 4096 rows in one short transaction, and once
// more when its worker stops. Teardown runs batch commit, then connection
// close, in each worker, and closes the *sql.DB after every worker has
// stopped.
//
// Tasks are submitted with GoReport, so that fxsum knows what became of
// each file. The first SIGINT or SIGTERM, or a task that fails (a database
// write), halts the session: the pool is stopped at once with
// workerpool.DropQueued, so that the files in flight finish and are
// committed while no queued file starts; each of those is reported NotRun,
// is not counted as indexed, and the run exits non-zero. Otherwise the
// session waits for every file it submitted, then stops the app. The tests
// check these guarantees with package fxpooltest: a Recorder on every run's
// pool, faults injected into the per-worker constructors and cleanups, and
// a leak check after each in-process run.
//
// # Files
//
//	main.go        run, the exit status of each error
//	cli.go         the command line: flags, which command takes which
//	app.go         the session every hashing command shares: signals, the
//	               database, the fx app, submitting, halting, its stop
//	store.go       the database: refusing foreign files, creating (first
//	               runs that start together: one creates, the others
//	               wait and use it), switching to WAL, opening
//	batch.go       a worker's batch of rows and its commits
//	hash.go        hashing one file; the read buffer and hashers
//	blake3.go      BLAKE3: github.com/zeebo/blake3 for small files, and
//	               internal/blake3wide (AVX-512, 16 chunks at once) for
//	               the others where the processor has it
//	mmap*.go       large files hashed where they lie in the page cache,
//	               mapped, a truncation's SIGBUS recovered as a change
//	walk.go        the walker: sorted listings (listdir*.go), symbolic
//	               links, loops, the database's own files, exclusions
//	               (exclude.go), new files hashed as they are listed
//	               (early.go), files statted on two goroutines (statahead.go)
//	index.go       fxsum index: roots, the hashing task, the summary
//	indexwalk.go   what index does with what the walker finds: the merge
//	               of a directory's listing with its rows, removals, sweep
//	verify.go      fxsum verify
//	manifest.go    fxsum manifest
//	queue.go       index --queue: the streams and subjects, publishing the
//	               files to hash, writing their results, waiting for them
//	worker.go      fxsum worker, and the hashing workers of index --queue,
//	               fed by jetstream.Consume
//	gc.go          the collector during an index run: GOGC=400 with a soft
//	               memory limit of 64 MiB, unless the user set GOGC or
//	               GOMEMLIMIT
//	progress.go    the progress bar; report.go: counters and messages
//	testhook.go    hooks for the tests, built only with -tags fxsumtest
//	               (queue_testhook.go: the queue's; store_testhook.go:
//	               first runs on a new database, in the order that raced)
//
// # Goroutines
//
//	goroutine         started by                stopped by               waited for by
//	pool workers      the pool's OnStart        the pool's OnStop        the pool's OnStop
//	the halt's stop   the halt (AfterFunc)      the pool's stop ending   session.stop
//	the walk          (the main goroutine)      ctx, an interrupt        -
//	row reader        startRowReader, once a    rowReader.close          rowReader.close
//	                  run (cursors read ahead
//	                  of the walker)
//	stat helper       startStatAhead, for a     statAhead.close          statAhead.close, and
//	                  folder with rows                                   its take of a result
//	counting walk     countFiles, with a bar    its stop function        its stop function
//	progress bar      startProgress             progress.stop            progress.stop
//	results consumer  startQueueIndex           queueIndex.finish        queueIndex.finish
//	hash workers      newHashWorkers (an fx     its app's Stop           queueIndex.finish,
//	                  app: pool + Consume)                               runWorker
//	embedded server   startQueueIndex           queueIndex.close         queueIndex.close
//
// The results consumer (jetstream.Start: a pull loop, a submitter and a
// heartbeat goroutine, see the jetstream package's table) feeds the
// session's pool; the hash workers' consumer feeds their own pool.
//
// # Across machines
//
// With --queue, index publishes the files to hash to NATS JetStream and
// "fxsum worker" processes, on any machines that see the files at the same
// paths, hash them and publish the results, which the session's pool
// writes into the database; see queue.go for the streams and subjects and
// README.md for the delivery guarantees.
//
// # Exit status
//
// 0 on success; 1 when verify found changed, missing or unreadable files,
// when index could not read some files or PATHs, when the pool stopped
// before it hashed every file, or when the run failed; 2
// for bad usage or a database that cannot be opened or is not an fxsum
// database; 130 when interrupted by SIGINT or SIGTERM.
package main
