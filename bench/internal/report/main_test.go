package main

import (
	"go.uber.org/goleak"

	"strings"
	"testing"
)

const sample = `goos: linux
cpu: Test CPU @ 1GHz
BenchmarkGo/W=2/task=trivial/impl=floor-2    1000   100.0 ns/op   24 B/op   1 allocs/op
BenchmarkGo/W=2/task=trivial/impl=floor-2    1000   110.0 ns/op   24 B/op   1 allocs/op
BenchmarkGo/W=2/task=trivial/impl=floor-2    1000    90.0 ns/op   24 B/op   1 allocs/op
BenchmarkGo/W=2/task=trivial/impl=fxpool-2   1000   115.0 ns/op   24 B/op   1 allocs/op
BenchmarkGo/W=2/task=trivial/impl=fxpool-ctxvalue-2   1000   230.0 ns/op   56 B/op   2 allocs/op
BenchmarkGo/W=2/task=trivial/impl=pond-2     1000   200.0 ns/op   41 B/op   1 allocs/op
BenchmarkRestart/W=2/task=trivial/broken=0%/impl=fxpool-2  10  100 ns/op  0 B/op  0 allocs/op
BenchmarkRestart/W=2/task=trivial/broken=1%/impl=fxpool-2  10  300 ns/op  9 B/op  0 allocs/op
BenchmarkStartStop/workers=1000/open=10ms/impl=fxpool-2  10  40000000 ns/op  20000000 start-ns/op  35000000 stop-ns/op  1 B/op  1 allocs/op
PASS
`

func TestParseAndRatio(t *testing.T) {
	r, err := parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if r.cpu != "Test CPU @ 1GHz" || r.procs != 2 {
		t.Errorf("cpu %q procs %d", r.cpu, r.procs)
	}
	tests := []struct {
		give      string
		unit      string
		wantMed   float64
		wantRatio float64
	}{
		{"BenchmarkGo/W=2/task=trivial/impl=floor", "ns/op", 100, 1},
		{"BenchmarkGo/W=2/task=trivial/impl=fxpool", "ns/op", 115, 1.15},
		{"BenchmarkGo/W=2/task=trivial/impl=pond", "ns/op", 200, 2},
		{"BenchmarkRestart/W=2/task=trivial/broken=1%/impl=fxpool", "ns/op", 300, 3},
	}
	for _, tt := range tests {
		med, ok := r.median(tt.give, tt.unit)
		if !ok || med != tt.wantMed {
			t.Errorf("median(%s) = %v, %v; want %v", tt.give, med, ok, tt.wantMed)
		}
		ratio, ok := r.ratio(tt.give, tt.unit)
		if !ok || ratio < tt.wantRatio-1e-9 || ratio > tt.wantRatio+1e-9 {
			t.Errorf("ratio(%s) = %v, %v; want %v", tt.give, ratio, ok, tt.wantRatio)
		}
	}
}

func TestWrite(t *testing.T) {
	r, err := parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	write(&sb, r, machine{goVersion: "go1.26", cpu: r.cpu, cores: 2, procs: 2}, "./run", "summary")
	out := sb.String()
	for _, want := range []string{
		"| 13 | Go, trivial task, W=2: fxpool ≤ 1.2× floor | 1.15× floor | met |",
		"| 13 | Go, trivial task, W=2: fxpool faster than every peer | 115 ns vs fastest peer (pond) 200 ns | met |",
		"| 13 | Submit, 64 callers, trivial task, W=2: ≤ 1.3× Do | not measured | — |",
		"| 5 | Stop 1,000 workers, 10 ms close: fxpool < 30 ms | 35.0 ms stop | **missed** |",
		"| 5 | Idle memory, 100,000 workers: fxpool ≤ 4 KiB/worker | not measured | — |",
		"| Go/W=2/task=trivial | fxpool-ctxvalue | 230 ns | fxpool | 115 ns | 2.00 | 2 | 1 |",
		"| W=2/task=trivial | fxpool | 115 ns | 1.15 | 1 | 24 |",
		"| W=2/task=trivial/impl=fxpool | 1% | 300 ns | 3.00 |",
		"summary",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestSplitProcs(t *testing.T) {
	tests := []struct {
		give      string
		wantName  string
		wantProcs int
	}{
		{"BenchmarkGo/impl=floor-typed-2", "BenchmarkGo/impl=floor-typed", 2},
		{"BenchmarkGo/impl=floor-typed", "BenchmarkGo/impl=floor-typed", 0},
		{"BenchmarkGo", "BenchmarkGo", 0},
	}
	for _, tt := range tests {
		name, procs := splitProcs(tt.give)
		if name != tt.wantName || procs != tt.wantProcs {
			t.Errorf("splitProcs(%q) = %q, %d", tt.give, name, procs)
		}
	}
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
