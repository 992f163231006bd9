// Package bench measures fxpool against the floor (the cheapest pool that can
// be written by hand) and against peer pools, side by side in one run.
//
// It is a module of its own so that the peer libraries never enter the
// library's go.mod. Every benchmark lives in a _test.go file; this package
// only holds the floor pools and the shared tasks and resources.
//
// # Names
//
// Benchmark names are key=value lists that benchstat can group, for example
// BenchmarkGo/W=2/task=trivial/impl=floor. Within one figure (the name without
// its impl key) the row impl=floor is the floor; BenchmarkRestart compares
// broken=1% against broken=0% of the same pool instead.
//
// # Running
//
// bench/run runs everything 6 times and writes BENCHMARKS.md. It alternates
// the implementations: the test binary runs once per sample, taking one
// sample of every benchmark each time, so that a slow spell of a shared
// machine falls on all the implementations of a figure, not on the samples
// of one. New paths of fxpool (a context carrying values, GoReport, groups,
// Submit, LockOSThread) are impls named fxpool-<path> beside impl=fxpool in
// the same figure. CI runs every benchmark once so that none rots:
//
//	go test -short -run '^$' -bench . -benchtime=1x ./...
//
// -short scales the 100,000-worker idle-memory figure down to 10,000 workers.
// Benchmarks never assert timing.
package bench
