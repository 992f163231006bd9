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
// bench/run runs everything with -count 6 and writes BENCHMARKS.md. CI runs
// every benchmark once so that none rots:
//
//	go test -short -run '^$' -bench . -benchtime=1x ./...
//
// -short scales the 100,000-worker idle-memory figure down to 10,000 workers.
// Benchmarks never assert timing.
package bench
