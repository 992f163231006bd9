package fxpooltest_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/fxpool/fxpool/fxpooltest"
	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
)

// Hand-made events of pool "p". A step is a workerpool.Event or a mark.
type mark string

var errBoom = errors.New("boom")

func wk(id, gen int) resources.Worker { return resources.Worker{Pool: "p", ID: id, Generation: gen} }

func opened(name string, id, gen int) workerpool.Event {
	return workerpool.ResourceOpened{Resource: name, Worker: wk(id, gen)}
}

func openFailed(name string, id, gen int) workerpool.Event {
	return workerpool.ResourceOpened{Resource: name, Worker: wk(id, gen), Err: errBoom}
}

func closed(name string, id, gen int) workerpool.Event {
	return workerpool.ResourceClosed{Resource: name, Worker: wk(id, gen), Closed: true}
}

func workerOpened(id, gen int) workerpool.Event { return workerpool.WorkerOpened{Worker: wk(id, gen)} }

func workerOpenFailed(id, gen int) workerpool.Event {
	return workerpool.WorkerOpened{Worker: wk(id, gen), Err: errBoom}
}

func workerClosed(id, gen int) workerpool.Event { return workerpool.WorkerClosed{Worker: wk(id, gen)} }

var (
	started = workerpool.PoolStarted{Pool: "p", Workers: 2}
	stopped = workerpool.PoolStopped{Pool: "p"}
)

// healthy is a run of two workers that does everything right.
var healthy = []any{
	opened("A", 0, 0), opened("A", 1, 0), opened("B", 1, 0), opened("B", 0, 0),
	workerOpened(1, 0), workerOpened(0, 0), started,
	closed("B", 0, 0), closed("B", 1, 0), closed("A", 1, 0), closed("A", 0, 0),
	workerClosed(0, 0), workerClosed(1, 0), stopped,
}

func TestRecorderVerify(t *testing.T) {
	tests := []struct {
		name      string
		give      []any
		noCleanup []string
		want      []string // substrings of each error, in order
	}{
		{
			name: "AcceptsAHealthyRun",
			give: append(append([]any{}, healthy...), mark("db")),
		},
		{
			name: "ReportsNoEvents",
			want: []string{"saw no event"},
		},
		{
			name: "AcceptsARollbackAndARetry",
			give: []any{
				opened("A", 0, 0), workerOpened(0, 0), started,
				closed("A", 0, 0), workerClosed(0, 0), // a rebuild
				opened("A", 0, 1), openFailed("B", 0, 1), closed("A", 0, 1), workerOpenFailed(0, 1),
				opened("A", 0, 2), opened("B", 0, 2), workerOpened(0, 2),
				closed("B", 0, 2), closed("A", 0, 2), workerClosed(0, 2), stopped,
			},
		},
		{
			name: "AcceptsARetryOfAGenerationWhoseOpenFailed",
			give: []any{
				opened("A", 0, 1), openFailed("B", 0, 1), closed("A", 0, 1), workerOpenFailed(0, 1),
				opened("A", 0, 1), opened("B", 0, 1), workerOpened(0, 1),
				closed("B", 0, 1), closed("A", 0, 1), workerClosed(0, 1),
			},
		},
		{
			name: "ReportsANeverClosedResource",
			give: []any{opened("A", 0, 0), opened("B", 0, 0), closed("B", 0, 0)},
			want: []string{`pool "p" worker 0 generation 0: resource "A" was still open at the end`},
		},
		{
			name: "ReportsAResourceLeftOpenByItsWorker",
			give: []any{opened("A", 0, 0), opened("B", 0, 0), closed("B", 0, 0), workerClosed(0, 0)},
			want: []string{`resource "A" was still open when its worker's generation closed`},
		},
		{
			name: "ReportsARollbackThatMissedAResource",
			give: []any{opened("A", 0, 0), opened("B", 0, 0), openFailed("C", 0, 0), closed("B", 0, 0), workerOpenFailed(0, 0)},
			want: []string{`resource "A" was still open after its worker's open failed`},
		},
		{
			name: "ReportsADoubleClose",
			give: []any{opened("A", 0, 0), closed("A", 0, 0), closed("A", 0, 0)},
			want: []string{`resource "A" closed 2 times`},
		},
		{
			name: "ReportsACloseOfAFailedOpen",
			give: []any{opened("A", 0, 0), openFailed("B", 0, 0), closed("B", 0, 0), closed("A", 0, 0)},
			want: []string{`resource "B" closed, but its open had failed`},
		},
		{
			name: "ReportsACloseWithoutOpen",
			give: []any{closed("A", 0, 0)},
			want: []string{`resource "A" closed, but had not opened`},
		},
		{
			name: "ReportsCloseInOpenOrder",
			give: []any{
				opened("A", 0, 0), opened("B", 0, 0), opened("C", 0, 0),
				closed("A", 0, 0), closed("B", 0, 0), closed("C", 0, 0),
			},
			want: []string{
				`worker 0 generation 0: resource "A" closed before "C", "B", which opened after it`,
				`worker 0 generation 0: resource "B" closed before "C", which opened after it`,
			},
		},
		{
			name: "KeepsGenerationsApart",
			give: []any{
				opened("A", 0, 0), opened("B", 0, 1), // B of another generation
				closed("A", 0, 0), closed("B", 0, 1),
			},
		},
		{
			name:      "AcceptsAnUnclosedResourceWithoutCleanup",
			give:      []any{opened("A", 0, 0), opened("S", 0, 0), closed("A", 0, 0), workerClosed(0, 0)},
			noCleanup: []string{"S"},
		},
		{
			name:      "ReportsACloseOfAResourceWithoutCleanup",
			give:      []any{opened("S", 0, 0), closed("S", 0, 0)},
			noCleanup: []string{"S"},
			want:      []string{`resource "S" closed, but NoCleanup says it has nothing to close`},
		},
		{
			name: "ReportsAnAppScopedCloseBeforeAPoolClose",
			give: []any{
				opened("A", 0, 0), workerOpened(0, 0), started,
				mark("db"), closed("A", 0, 0), workerClosed(0, 0), stopped,
			},
			want: []string{`app-scoped "db" closed before pool "p" worker 0 generation 0: resource "A" closed`},
		},
		{
			name: "ReportsAnAppScopedCloseWhileAPoolRuns",
			give: []any{opened("A", 0, 0), workerOpened(0, 0), started, mark("db")},
			want: []string{
				`resource "A" was still open at the end`,
				`app-scoped "db" closed before pool "p" stopped`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := fxpooltest.NewRecorder()
			rec.NoCleanup(tt.noCleanup...)
			for _, step := range tt.give {
				switch s := step.(type) {
				case mark:
					rec.Mark(string(s))
				case workerpool.Event:
					rec.Record(s)
				}
			}
			var ft fakeT
			rec.Verify(&ft)
			got := ft.errors()
			if len(got) != len(tt.want) {
				t.Fatalf("Verify reported %d errors, want %d:\n%s", len(got), len(tt.want), strings.Join(got, "\n"))
			}
			for i, want := range tt.want {
				if !strings.Contains(got[i], want) {
					t.Errorf("error %d = %q, want it to contain %q", i, got[i], want)
				}
			}
		})
	}
}

func TestRecorderEventsKeepsOrderWithoutMarks(t *testing.T) {
	rec := fxpooltest.NewRecorder()
	rec.Record(opened("A", 0, 0))
	rec.Mark("db")
	rec.Record(closed("A", 0, 0))
	got := rec.Events()
	if len(got) != 2 || got[0] != opened("A", 0, 0) || got[1] != closed("A", 0, 0) {
		t.Errorf("Events() = %v, want the open and the close", got)
	}
}
