// Command report turns the raw output of the fxpool benchmarks (go test
// -bench, any -count) into BENCHMARKS.md: per figure the median ns/op,
// allocs/op and B/op of every implementation, its ratio to the floor of the
// same run, the targets met or missed, the machine and the command.
//
// Usage:
//
//	go run ./internal/report -raw results/raw.txt -benchstat results/benchstat.txt \
//		-command 'COUNT=6 ./run' -go "$(go version)" -o BENCHMARKS.md
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	raw := fs.String("raw", "", "raw go test -bench output (required)")
	stat := fs.String("benchstat", "", "benchstat summary of the same output, embedded as is")
	command := fs.String("command", "", "the command that produced the output")
	goVersion := fs.String("go", runtime.Version(), "go version of the run")
	out := fs.String("o", "", "output file (default: stdout)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *raw == "" {
		return errors.New("-raw is required")
	}
	f, err := os.Open(*raw)
	if err != nil {
		return err
	}
	defer f.Close()
	res, err := parse(f)
	if err != nil {
		return fmt.Errorf("%s: %w", *raw, err)
	}
	if len(res.order) == 0 {
		return fmt.Errorf("%s: no benchmark results", *raw)
	}
	var summary string
	if *stat != "" {
		b, err := os.ReadFile(*stat)
		if err != nil {
			return err
		}
		summary = string(b)
	}
	m := machine{goVersion: *goVersion, cpu: res.cpu, cores: runtime.NumCPU(), procs: res.procs}
	if m.cpu == "" {
		m.cpu = cpuModel()
	}
	var w io.Writer = os.Stdout
	if *out != "" {
		o, err := os.Create(*out)
		if err != nil {
			return err
		}
		defer o.Close()
		w = o
	}
	bw := bufio.NewWriter(w)
	write(bw, res, m, *command, summary)
	return bw.Flush()
}

// results holds every sample of every benchmark, by name without the
// GOMAXPROCS suffix, then by unit.
type results struct {
	order   []string // names in order of first appearance
	samples map[string]map[string][]float64
	units   map[string][]string // units of each name, in order of appearance
	cpu     string
	procs   int
}

// parse reads go test -bench output. Lines that are not results or the cpu
// header are ignored.
func parse(r io.Reader) (*results, error) {
	res := &results{samples: map[string]map[string][]float64{}, units: map[string][]string{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if cpu, ok := strings.CutPrefix(line, "cpu: "); ok {
			res.cpu = strings.TrimSpace(cpu)
			continue
		}
		if !strings.HasPrefix(line, "Benchmark") {
			continue
		}
		fields := strings.Fields(line)
		// name, iterations, then value-unit pairs.
		if len(fields) < 4 || len(fields)%2 != 0 {
			continue
		}
		if _, err := strconv.Atoi(fields[1]); err != nil {
			continue
		}
		name, procs := splitProcs(fields[0])
		if procs > 0 {
			res.procs = procs
		}
		byUnit, seen := res.samples[name]
		if !seen {
			byUnit = map[string][]float64{}
			res.samples[name] = byUnit
			res.order = append(res.order, name)
		}
		for i := 2; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				return nil, fmt.Errorf("%q: %w", line, err)
			}
			unit := fields[i+1]
			if _, ok := byUnit[unit]; !ok {
				res.units[name] = append(res.units[name], unit)
			}
			byUnit[unit] = append(byUnit[unit], v)
		}
	}
	return res, sc.Err()
}

// splitProcs splits "BenchmarkGo/W=2/impl=floor-2" into the name and 2.
func splitProcs(s string) (string, int) {
	i := strings.LastIndexByte(s, '-')
	if i < 0 {
		return s, 0
	}
	n, err := strconv.Atoi(s[i+1:])
	if err != nil || strings.Contains(s[i+1:], "/") {
		return s, 0
	}
	return s[:i], n
}

// median of the samples of name in unit; ok is false when there are none.
func (r *results) median(name, unit string) (float64, bool) {
	vs := slices.Clone(r.samples[name][unit])
	if len(vs) == 0 {
		return 0, false
	}
	slices.Sort(vs)
	n := len(vs)
	if n%2 == 1 {
		return vs[n/2], true
	}
	return (vs[n/2-1] + vs[n/2]) / 2, true
}

// A name is a benchmark function and key=value parts:
// BenchmarkGo/W=2/task=trivial/impl=floor.
type name struct {
	fn    string
	parts []string // "key=value", in order
}

func parseName(s string) name {
	parts := strings.Split(s, "/")
	return name{fn: parts[0], parts: parts[1:]}
}

func (n name) value(key string) string {
	for _, p := range n.parts {
		if v, ok := strings.CutPrefix(p, key+"="); ok {
			return v
		}
	}
	return ""
}

// without is the name with the part of key left out: the figure a row
// belongs to.
func (n name) without(key string) string {
	parts := []string{n.fn}
	for _, p := range n.parts {
		if !strings.HasPrefix(p, key+"=") {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, "/")
}

// baseline says, per benchmark function, which key tells the rows of a
// figure apart and which of its values is the floor.
func baseline(fn string) (key, base string) {
	if fn == "BenchmarkRestart" {
		return "broken", "0%"
	}
	return "impl", "floor"
}

// baseOf is the name of the floor row of the figure name belongs to.
func baseOf(full string) string {
	n := parseName(full)
	key, base := baseline(n.fn)
	parts := []string{n.fn}
	for _, p := range n.parts {
		if strings.HasPrefix(p, key+"=") {
			p = key + "=" + base
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, "/")
}

// ratio of name's median to its floor's in unit.
func (r *results) ratio(full, unit string) (float64, bool) {
	v, ok := r.median(full, unit)
	if !ok {
		return 0, false
	}
	f, ok := r.median(baseOf(full), unit)
	if !ok || f == 0 {
		return 0, false
	}
	return v / f, true
}

type machine struct {
	goVersion string
	cpu       string
	cores     int
	procs     int
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// units shown as columns of their own, in this order, when a function has
// them; ns/op always comes first with its ratio.
var extraUnits = []string{"start-ns/op", "stop-ns/op", "bytes/worker"}

func write(w io.Writer, r *results, m machine, command, summary string) {
	fmt.Fprintln(w, "# fxpool benchmarks")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Generated by `bench/run` (the table by `bench/internal/report`); do not edit by hand.")
	fmt.Fprintln(w, "Every figure is the median of the run's samples; **× floor** divides it by the floor of the")
	fmt.Fprintln(w, "same figure in the same run (for BenchmarkRestart: the same pool with broken=0%).")
	fmt.Fprintln(w, "What each figure measures is written above its benchmark function in `bench/*_test.go`.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "## Machine and command")
	fmt.Fprintln(w)
	fmt.Fprintf(w, "- go: `%s`\n", m.goVersion)
	fmt.Fprintf(w, "- cpu: %s, %d cores, GOMAXPROCS=%d\n", m.cpu, m.cores, m.procs)
	if command != "" {
		fmt.Fprintf(w, "- command (in `bench/`): `%s`\n", command)
	}
	fmt.Fprintln(w)

	fmt.Fprintln(w, "## Targets")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Issue 13 (performance round 2), then the targets of issue 5 that still hold.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| issue | target | measured | |")
	fmt.Fprintln(w, "| --- | --- | --- | --- |")
	for _, t := range targets {
		measured, ok, found := t.check(r)
		verdict := "met"
		switch {
		case !found:
			measured, verdict = "not measured", "—"
		case !ok:
			verdict = "**missed**"
		}
		fmt.Fprintf(w, "| %s | %s | %s |\n", t.what, measured, verdict)
	}
	fmt.Fprintln(w)

	writePaths(w, r)

	var fns []string
	byFn := map[string][]string{}
	for _, full := range r.order {
		fn := parseName(full).fn
		if _, ok := byFn[fn]; !ok {
			fns = append(fns, fn)
		}
		byFn[fn] = append(byFn[fn], full)
	}
	for _, fn := range fns {
		writeTable(w, r, fn, byFn[fn])
	}

	if summary != "" {
		fmt.Fprintln(w, "## benchstat")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "The same samples as summarised by benchstat (median ± 95% confidence interval).")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "<details><summary>benchstat output</summary>")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "```")
		fmt.Fprint(w, strings.TrimRight(summary, "\n")+"\n")
		fmt.Fprintln(w, "```")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "</details>")
	}
}

func writeTable(w io.Writer, r *results, fn string, names []string) {
	key, _ := baseline(fn)
	var extras []string
	for _, u := range extraUnits {
		for _, full := range names {
			if _, ok := r.samples[full][u]; ok {
				extras = append(extras, u)
				break
			}
		}
	}
	// Keep the figures in order of appearance, rows within them too.
	var figures []string
	rows := map[string][]string{}
	for _, full := range names {
		fig := parseName(full).without(key)
		if _, ok := rows[fig]; !ok {
			figures = append(figures, fig)
		}
		rows[fig] = append(rows[fig], full)
	}
	fmt.Fprintf(w, "## %s\n\n", strings.TrimPrefix(fn, "Benchmark"))
	header := []string{"figure", key, "ns/op", "× floor", "allocs/op", "B/op"}
	for _, u := range extras {
		header = append(header, u, "× floor")
	}
	fmt.Fprintf(w, "| %s |\n", strings.Join(header, " | "))
	fmt.Fprintf(w, "|%s\n", strings.Repeat(" --- |", len(header)))
	for _, fig := range figures {
		label := strings.TrimPrefix(strings.TrimPrefix(fig, fn), "/")
		for _, full := range rows[fig] {
			cells := []string{label, parseName(full).value(key)}
			cells = append(cells, value(r, full, "ns/op", fmtDuration), ratioCell(r, full, "ns/op"))
			cells = append(cells, value(r, full, "allocs/op", fmtCount), value(r, full, "B/op", fmtCount))
			for _, u := range extras {
				f := fmtDuration
				if u == "bytes/worker" {
					f = fmtCount
				}
				cells = append(cells, value(r, full, u, f), ratioCell(r, full, u))
			}
			fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
		}
	}
	fmt.Fprintln(w)
}

func value(r *results, full, unit string, format func(float64) string) string {
	v, ok := r.median(full, unit)
	if !ok {
		return ""
	}
	return format(v)
}

func ratioCell(r *results, full, unit string) string {
	if baseOf(full) == full {
		if _, ok := r.median(full, unit); ok {
			return "1.00"
		}
		return ""
	}
	x, ok := r.ratio(full, unit)
	if !ok {
		return ""
	}
	return fmt.Sprintf("%.2f", x)
}

// fmtDuration prints nanoseconds with three significant digits in a unit
// that keeps them short.
func fmtDuration(ns float64) string {
	switch {
	case ns >= 1e9:
		return sig3(ns/1e9) + " s"
	case ns >= 1e6:
		return sig3(ns/1e6) + " ms"
	case ns >= 1e4:
		return sig3(ns/1e3) + " µs"
	}
	return sig3(ns) + " ns"
}

func sig3(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(math.Round(v), 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

func fmtCount(v float64) string {
	if v == math.Trunc(v) {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

// A target is one of the targets, checked against a run.
type target struct {
	what string
	// check returns what was measured, whether it meets the target and
	// whether the run had the figures at all.
	check func(r *results) (measured string, ok, found bool)
}

// ratioAtMost: name's ns/op is at most limit times its floor's.
func ratioAtMost(full string, limit float64) func(*results) (string, bool, bool) {
	return func(r *results) (string, bool, bool) {
		x, found := r.ratio(full, "ns/op")
		return fmt.Sprintf("%.2f× floor", x), x <= limit, found
	}
}

// unitAtMost: name's median in unit is at most limit.
func unitAtMost(full, unit string, limit float64, format func(float64) string) func(*results) (string, bool, bool) {
	return func(r *results) (string, bool, bool) {
		v, found := r.median(full, unit)
		return format(v) + " " + strings.TrimSuffix(unit, "-ns/op"), v <= limit, found
	}
}

// fasterThanAll: name's ns/op is below that of every other impl in its
// figure except the floors.
func fasterThanAll(full string) func(*results) (string, bool, bool) {
	return func(r *results) (string, bool, bool) {
		v, found := r.median(full, "ns/op")
		if !found {
			return "", false, false
		}
		fig := parseName(full).without("impl")
		var slowest, fastest string
		var fastestV float64 = math.Inf(1)
		for _, other := range r.order {
			n := parseName(other)
			impl := n.value("impl")
			if other == full || n.without("impl") != fig || strings.HasPrefix(impl, "floor") || strings.HasPrefix(impl, "fxpool") {
				continue
			}
			if o, ok := r.median(other, "ns/op"); ok && o < fastestV {
				fastestV, fastest = o, impl
			}
			slowest = impl
		}
		if slowest == "" {
			return "no peers", false, false
		}
		return fmt.Sprintf("%s vs fastest peer (%s) %s", fmtDuration(v), fastest, fmtDuration(fastestV)), v < fastestV, true
	}
}

// speedup: other's ns/op divided by name's is at least limit.
func speedup(full, other string, limit float64) func(*results) (string, bool, bool) {
	return func(r *results) (string, bool, bool) {
		v, ok1 := r.median(full, "ns/op")
		o, ok2 := r.median(other, "ns/op")
		if !ok1 || !ok2 || v == 0 {
			return "", false, false
		}
		return fmt.Sprintf("%.2f× faster", o/v), o/v >= limit, true
	}
}

func allocsAtMost(full string, limit float64) func(*results) (string, bool, bool) {
	return unitAtMost(full, "allocs/op", limit, fmtCount)
}

// ratioTo: name's ns/op is at most limit times other's, in the same run.
func ratioTo(full, other string, limit float64) func(*results) (string, bool, bool) {
	return func(r *results) (string, bool, bool) {
		v, ok1 := r.median(full, "ns/op")
		o, ok2 := r.median(other, "ns/op")
		if !ok1 || !ok2 || o == 0 {
			return "", false, false
		}
		return fmt.Sprintf("%.2f× %s", v/o, parseName(other).value("impl")), v/o <= limit, true
	}
}

// unitRatioAtMost: name's median in unit is at most limit times its floor's.
func unitRatioAtMost(full, unit string, limit float64) func(*results) (string, bool, bool) {
	return func(r *results) (string, bool, bool) {
		x, found := r.ratio(full, unit)
		return fmt.Sprintf("%.2f× floor (%s)", x, unit), x <= limit, found
	}
}

const (
	goFig  = "BenchmarkGo/W=%d/task=%s/impl=%s"
	doFig  = "BenchmarkDo/W=%d/task=%s/impl=%s"
	mapFig = "BenchmarkMap/W=%d/task=%s/impl=%s"
)

// targets are issue 13's, then those of issue 5 that still hold the line.
var targets = func() []target {
	var ts []target
	for _, w := range []int{2, 64} {
		for _, task := range []string{"trivial", "static"} {
			what := map[string]string{"trivial": "trivial task", "static": "task capturing nothing"}[task]
			full := fmt.Sprintf(goFig, w, task, "fxpool")
			ts = append(ts,
				target{fmt.Sprintf("13 | Go, %s, W=%d: fxpool ≤ 1.2× floor", what, w), ratioAtMost(full, 1.2)},
				target{fmt.Sprintf("13 | Go, %s, W=%d: fxpool faster than every peer", what, w), fasterThanAll(full)},
			)
		}
	}
	for _, w := range []int{2, 64} {
		ts = append(ts, target{fmt.Sprintf("13 | Submit, 64 callers, trivial task, W=%d: ≤ 1.3× Do", w),
			ratioTo(fmt.Sprintf(doFig, w, "trivial", "fxpool-submit"), fmt.Sprintf(doFig, w, "trivial", "fxpool"), 1.3)})
	}
	ts = append(ts, target{"13 | Submit: ≤ 2 allocs per task", allocsAtMost(fmt.Sprintf(doFig, 2, "trivial", "fxpool-submit"), 2)})
	for _, w := range []int{2, 64} {
		ts = append(ts, target{fmt.Sprintf("13 | Map, ~1µs task, W=%d: ≤ 1.3× floor", w), ratioAtMost(fmt.Sprintf(mapFig, w, "1us", "fxpool"), 1.3)})
	}
	ts = append(ts,
		target{"13 | Map: ≤ 1 alloc per element", allocsAtMost(fmt.Sprintf(mapFig, 2, "1us", "fxpool"), 1)},
		target{"13 | Start+stop 10,000 workers: fxpool ≤ 2× floor", ratioAtMost("BenchmarkStartStop/workers=10000/open=0/impl=fxpool", 2)},
		target{"13 | Idle worker: fxpool ≤ 1.15× floor", unitRatioAtMost("BenchmarkIdleMemory/workers=100000/impl=fxpool", "bytes/worker", 1.15)},
		target{"5 | Go, task capturing nothing, W=2: fxpool 0 allocs/op", allocsAtMost(fmt.Sprintf(goFig, 2, "static", "fxpool"), 0)},
		target{"5 | Do, 64 callers, trivial task, W=2: fxpool ≤ 1.2× floor", ratioAtMost(fmt.Sprintf(doFig, 2, "trivial", "fxpool"), 1.2)},
		target{"5 | Do, 64 callers, trivial task, W=64: fxpool ≤ 1.2× floor", ratioAtMost(fmt.Sprintf(doFig, 64, "trivial", "fxpool"), 1.2)},
		target{"5 | Do, 64 callers, trivial task, W=2: fxpool ≤ 1 alloc/op", allocsAtMost(fmt.Sprintf(doFig, 2, "trivial", "fxpool"), 1)},
		target{"5 | Resource per task, trivial task, W=2: fxpool ≥ 2× faster than puddle", speedup("BenchmarkResource/W=2/task=trivial/impl=fxpool", "BenchmarkResource/W=2/task=trivial/impl=puddle", 2)},
		target{"5 | Resource per task, trivial task, W=64: fxpool ≥ 2× faster than puddle", speedup("BenchmarkResource/W=64/task=trivial/impl=fxpool", "BenchmarkResource/W=64/task=trivial/impl=puddle", 2)},
		target{"5 | Start 1,000 workers, 10 ms open: fxpool < 30 ms", unitAtMost("BenchmarkStartStop/workers=1000/open=10ms/impl=fxpool", "start-ns/op", 30e6, fmtDuration)},
		target{"5 | Stop 1,000 workers, 10 ms close: fxpool < 30 ms", unitAtMost("BenchmarkStartStop/workers=1000/open=10ms/impl=fxpool", "stop-ns/op", 30e6, fmtDuration)},
		target{"5 | Idle memory, 100,000 workers: fxpool ≤ 4 KiB/worker", unitAtMost("BenchmarkIdleMemory/workers=100000/impl=fxpool", "bytes/worker", 4096, fmtCount)},
	)
	return ts
}()

// writePaths puts each new path (an impl named fxpool-<path>) next to the
// old one (impl=fxpool) of the same figure, and a Group next to errgroup.
func writePaths(w io.Writer, r *results) {
	type row struct{ figure, path, old string }
	var rows []row
	for _, full := range r.order {
		n := parseName(full)
		impl := n.value("impl")
		path, ok := strings.CutPrefix(impl, "fxpool-")
		if !ok || n.fn == "BenchmarkRestart" {
			continue
		}
		fig := n.without("impl")
		rows = append(rows, row{fig, full, fig + "/impl=fxpool"})
		if path == "group" {
			rows = append(rows, row{fig, full, fig + "/impl=errgroup"})
		}
	}
	if len(rows) == 0 {
		return
	}
	fmt.Fprintln(w, "## New paths against the old, same run")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Each path of the task API v2 and of LockOSThread against the path it extends, in the same")
	fmt.Fprintln(w, "figure: ctxvalue is Go with a context carrying a value against Go with context.Background;")
	fmt.Fprintln(w, "ctxcancel, Do with a cancellable context against Do with context.Background; submit, Submit")
	fmt.Fprintln(w, "and Future.Wait against Do; goreport, GoReport against Go; group, one Group.Go per task")
	fmt.Fprintln(w, "against Go and against errgroup; locked, dispatch to workers under LockOSThread against")
	fmt.Fprintln(w, "unlocked ones.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| figure | path | ns/op | against | its ns/op | ratio | allocs/op | its allocs/op |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, rw := range rows {
		v, ok1 := r.median(rw.path, "ns/op")
		o, ok2 := r.median(rw.old, "ns/op")
		if !ok1 || !ok2 || o == 0 {
			continue
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %.2f | %s | %s |\n",
			strings.TrimPrefix(rw.figure, "Benchmark"), parseName(rw.path).value("impl"), fmtDuration(v),
			parseName(rw.old).value("impl"), fmtDuration(o), v/o,
			value(r, rw.path, "allocs/op", fmtCount), value(r, rw.old, "allocs/op", fmtCount))
	}
	fmt.Fprintln(w)
}
