package fxpool_test

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// citation is a test that the README's guarantee table names as proof.
type citation struct {
	file, test string
}

var (
	// In a "proven by" cell, [`file`](file) names the file of the test
	// names that follow it, each in backquotes.
	citedFile = regexp.MustCompile("^\\[`([^`]+)`\\]\\(([^)]+)\\)")
	citedTest = regexp.MustCompile("^`((?:Test|Benchmark|Fuzz)[A-Za-z0-9_]+)`")
)

// TestGuaranteeTableCitesExistingTests keeps the README's table of
// guarantees from rotting: every row names at least one test, and every
// test it names is defined in the file named before it.
func TestGuaranteeTableCitesExistingTests(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := guaranteeRows(t, string(readme))
	if len(rows) < 10 {
		t.Fatalf("found %d rows in the README's guarantee table, want one per guarantee (at least 10)", len(rows))
	}
	sources := map[string]string{}
	checked := 0
	for _, row := range rows {
		cites := citations(t, row)
		checked += len(cites)
		if len(cites) == 0 {
			t.Errorf("guarantee %q cites no test", guaranteeName(row))
		}
		for _, c := range cites {
			src, ok := sources[c.file]
			if !ok {
				b, err := os.ReadFile(c.file)
				if err != nil {
					t.Errorf("guarantee %q cites %s: %v", guaranteeName(row), c.file, err)
				}
				src = string(b)
				sources[c.file] = src
			}
			if !strings.Contains(src, "\nfunc "+c.test+"(") {
				t.Errorf("guarantee %q cites %s in %s, which defines no such function", guaranteeName(row), c.test, c.file)
			}
		}
	}
	t.Logf("%d guarantees, %d citations checked", len(rows), checked)
}

// guaranteeRows returns the body rows of the first table in the README's
// "## Guarantees" section, without the header and separator rows.
func guaranteeRows(t *testing.T, readme string) []string {
	t.Helper()
	_, section, ok := strings.Cut(readme, "\n## Guarantees\n")
	if !ok {
		t.Fatal(`README.md has no "## Guarantees" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var rows []string
	inTable := false
	for line := range strings.SplitSeq(section, "\n") {
		if !strings.HasPrefix(line, "|") {
			if inTable {
				break
			}
			continue
		}
		inTable = true
		rows = append(rows, line)
	}
	if len(rows) < 2 || !strings.HasPrefix(rows[1], "|---") {
		t.Fatalf("the README's guarantee table has no header and separator: %q", rows)
	}
	return rows[2:]
}

// citations parses the last cell of a table row: [`file`](file): `TestA`,
// `TestB`; [`file2`](file2): `TestC`.
func citations(t *testing.T, row string) []citation {
	t.Helper()
	cells := strings.Split(strings.Trim(row, "| "), " | ")
	cell := cells[len(cells)-1]
	var (
		cites []citation
		file  string
	)
	for i := 0; i < len(cell); i++ {
		rest := cell[i:]
		if m := citedFile.FindStringSubmatch(rest); m != nil {
			if m[1] != m[2] {
				t.Errorf("row %q: link [%s](%s) names one file and points to another", guaranteeName(row), m[1], m[2])
			}
			file = m[2]
			i += len(m[0]) - 1
			continue
		}
		if m := citedTest.FindStringSubmatch(rest); m != nil {
			if file == "" {
				t.Errorf("row %q: %s comes before any file", guaranteeName(row), m[1])
			}
			cites = append(cites, citation{file: file, test: m[1]})
			i += len(m[0]) - 1
		}
	}
	return cites
}

// guaranteeName is the bold start of a row's first cell, to name it in
// failures.
func guaranteeName(row string) string {
	_, rest, _ := strings.Cut(row, "**")
	name, _, _ := strings.Cut(rest, "**")
	return name
}
