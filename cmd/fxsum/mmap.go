package main

import "errors"

// mapMin is the size from which a file hashed with blake3wide is mapped
// into memory and hashed from there, rather than read (on Linux; files are
// read elsewhere): a read copies every
// byte once more, a fifth of the work of hashing it with AVX-512
// (BenchmarkReadOrMap: even at 1 MiB, 25% faster mapped at 4 MiB).
const mapMin = 1 << 20

// mapWindow is how much of a file is mapped at a time, a multiple of the
// page size: however large the file, no more than this is mapped into the
// process; the context is checked and progress called between windows,
// 15 ms of work. 8 MiB windows took 2-3% more CPU time (an mmap, a munmap
// that interrupts the other workers to flush their TLBs, and the seam in
// the hash, 8 times a 64 MiB file). Tests make it smaller.
var mapWindow int64 = 64 << 20

var (
	// errNotMapped tells that the file was not hashed mapped: the caller
	// reads it instead (after a Reset of its hash, which may have taken
	// some of it).
	errNotMapped = errors.New("not mapped")
	// errTruncated tells that a page of the mapped file could not be
	// read because the file shrank meanwhile: it changed.
	errTruncated = errors.New("file truncated while mapped")
)

// Test hooks, nil but in tests: mappedHook is called once the first
// window is mapped, before it is hashed, and faultHook once a page of a
// window could not be read, before the file's size is looked at.
var mappedHook, faultHook func()
