package main

import (
	"bytes"
	"go/doc/comment"
	"go/parser"
	"go/token"
	"log"
	"os"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestQuickStart runs the program: the task runs on a started pool, and the
// database closes after every worker has given its connection back.
func TestQuickStart(t *testing.T) {
	var out bytes.Buffer
	log.SetOutput(&out)
	log.SetFlags(0)
	t.Cleanup(func() {
		log.SetOutput(os.Stderr)
		log.SetFlags(log.LstdFlags)
	})

	main() // exits the test binary, saying why, if the app fails to start or stop

	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("log:\n%s\nwant one ping, then the database closed", out.String())
	}
	if !strings.HasPrefix(lines[0], "worker ") || !strings.HasSuffix(lines[0], ": ping") {
		t.Errorf("first line %q, want a worker's ping", lines[0])
	}
	if want := "database closed, 0 connections in use"; lines[1] != want {
		t.Errorf("last line %q, want %q: every worker's connection closed first", lines[1], want)
	}
}

// TestPackageDocShowsThisProgram keeps the quick start of the package doc of
// github.com/fxpool/fxpool (module.go) a verbatim part of this program.
func TestPackageDocShowsThisProgram(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "../../module.go", nil, parser.ParseComments|parser.PackageClauseOnly)
	if err != nil {
		t.Fatal(err)
	}
	if f.Doc == nil {
		t.Fatal("module.go has no package doc")
	}
	quickStart := quickStartCode(new(comment.Parser).Parse(f.Doc.Text()))
	if !strings.Contains(quickStart, "fx.New(") {
		t.Fatalf("the package doc's quick start is %q, want a code block with fx.New after a heading \"Quick start\"", quickStart)
	}
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(src), quickStart) {
		t.Errorf("module.go's quick start is not part of examples/sqlconn/main.go verbatim: update one from the other.\nThe doc shows:\n%s", quickStart)
	}
}

// quickStartCode returns the text of the first code block after the heading
// "Quick start", or "".
func quickStartCode(d *comment.Doc) string {
	inQuickStart := false
	for _, b := range d.Content {
		switch b := b.(type) {
		case *comment.Heading:
			inQuickStart = headingText(b) == "Quick start"
		case *comment.Code:
			if inQuickStart {
				return b.Text
			}
		}
	}
	return ""
}

func headingText(h *comment.Heading) string {
	var s strings.Builder
	for _, t := range h.Text {
		if p, ok := t.(comment.Plain); ok {
			s.WriteString(string(p))
		}
	}
	return s.String()
}
