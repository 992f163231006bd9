package main

import (
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"
)

// progress draws the progress bar of an index run on a terminal: files and
// bytes done of the total found so far, rate and ETA. Its goroutine is owned
// by the run, which stops it and waits for it with stop.
type progress struct {
	bar  *progressbar.ProgressBar
	quit chan struct{}
	done chan struct{}
}

// startProgress starts the bar if stderr is a terminal and --quiet is not
// set; otherwise it returns an inert progress.
func startProgress(o *options, stderr io.Writer, c *counters, rep *reporter) *progress {
	p := &progress{}
	if o.quiet || !isTerminal(stderr) {
		return p
	}
	p.bar = newBar(stderr)
	rep.setClear(func() { _ = p.bar.Clear() })
	p.quit = make(chan struct{})
	p.done = make(chan struct{})
	go func() {
		defer close(p.done)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			p.update(c)
			select {
			case <-p.quit:
				p.update(c)
				_ = p.bar.Exit()
				fmt.Fprintln(stderr)
				return
			case <-t.C:
			}
		}
	}()
	return p
}

// newBar returns the bar, drawn on w.
func newBar(w io.Writer) *progressbar.ProgressBar {
	return progressbar.NewOptions64(1,
		progressbar.OptionSetWriter(w),
		progressbar.OptionShowBytes(true),
		progressbar.OptionUseIECUnits(true),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionFullWidth(),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetDescription("scanning"),
	)
}

// update draws what c says. The totals are never below what is done: the
// bar draws a value above its maximum as a bar that many times wider than
// the terminal (a run of 25,000 new files drew gigabytes of it), and files
// hashed as their folder is listed are done before the walk finds them.
// Until every file is done, the bytes stay short of the total: the bar
// takes reaching it as its end, and draws nothing new after (a stale 100%,
// or a final frame with every file done and 2% of the bytes).
func (p *progress) update(c *counters) {
	files, total := c.total()
	doneFiles := c.unchanged.Load() + c.hashed.Load() + c.problems.Load()
	doneBytes := c.unchangedBytes.Load() + c.readBytes.Load()
	files = max(files, doneFiles)
	total = max(total, doneBytes+1)
	if c.exact.Load() && doneFiles >= files {
		total = max(doneBytes, 1) // every file is done: so are the bytes
	}
	if total != p.bar.GetMax64() {
		p.bar.ChangeMax64(total)
	}
	p.bar.Describe(fmt.Sprintf("%d/%d files", doneFiles, files))
	_ = p.bar.Set64(doneBytes)
}

// drawn reports whether a bar was drawn.
func (p *progress) drawn() bool { return p.bar != nil }

// stop stops the bar and waits for its goroutine. It is idempotent.
func (p *progress) stop() {
	if p.quit == nil {
		return
	}
	select {
	case <-p.quit:
	default:
		close(p.quit)
	}
	<-p.done
}
