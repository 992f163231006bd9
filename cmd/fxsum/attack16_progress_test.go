package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

var a16fFrameRe = regexp.MustCompile(`(\d+)/(\d+) files +(\d+)%`)

// "Progress (files and bytes done of the total found, rate, ETA) is drawn on
// stderr when it is a terminal". Under a terminal (script(1)), no frame may
// show more files done than found, and the last frame, once every file is
// done, shows every byte done: 100%. A new index of many folders draws its
// frames while folders are still being found; twenty runs are made, since
// the frames depend on timing (a correct bar passes every run).
func TestA16fProgressNeverPastTheTotal(t *testing.T) {
	a16fNeed(t, "script")
	base := a16fDir(t)
	root := filepath.Join(base, "r")
	a16fTree(t, root, 20, 500)
	var bad []string
	for i := 0; i < a16fProgressRuns; i++ {
		db := filepath.Join(base, fmt.Sprintf("p%d.db", i))
		ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
		cmd := exec.CommandContext(ctx, "script", "-qec", a16fBin(t)+" --db "+db+" "+root, "/dev/null")
		cmd.Dir = base
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("run %d under script: %v\n%s", i, err, out)
		}
		frames := strings.FieldsFunc(string(out), func(r rune) bool { return r == '\r' || r == '\n' })
		var last []string
		for _, f := range frames {
			m := a16fFrameRe.FindStringSubmatch(f)
			if m == nil {
				continue
			}
			done, _ := strconv.Atoi(m[1])
			total, _ := strconv.Atoi(m[2])
			if done > total {
				bad = append(bad, fmt.Sprintf("run %d: frame %q shows more files done than found", i, strings.TrimSpace(f)))
			}
			last = m
		}
		if last != nil && last[1] == last[2] && last[1] == "10000" && last[3] != "100" {
			bad = append(bad, fmt.Sprintf("run %d: the last frame has every file done and %s%% of the bytes", i, last[3]))
		}
	}
	if len(bad) > 0 {
		t.Errorf("%d bad frames in %d runs:\n%s", len(bad), a16fProgressRuns, strings.Join(bad, "\n"))
	}
}

const a16fProgressRuns = 20
