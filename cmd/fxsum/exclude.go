package main

import (
	"path"
	"strings"
)

// excluder decides which files and folders index skips: the --exclude
// patterns and, unless --vcs is given, the version-control folders. A nil
// *excluder skips nothing.
type excluder struct {
	names []pattern // matched against the base name
	paths []pattern // matched against the path relative to the root
}

type pattern struct {
	glob    string
	dirOnly bool
}

// newExcluder checks and sorts the patterns. An invalid one is a usage error
// that names it.
func newExcluder(patterns []string) (*excluder, error) {
	if len(patterns) == 0 {
		return nil, nil
	}
	e := &excluder{}
	for _, s := range patterns {
		p := pattern{glob: s}
		if strings.HasSuffix(p.glob, "/") {
			p.dirOnly = true
			p.glob = strings.TrimRight(p.glob, "/")
		}
		anchored := strings.Contains(p.glob, "/")
		p.glob = strings.TrimLeft(p.glob, "/")
		if p.glob == "" {
			return nil, usagef("--exclude %q: empty pattern", s)
		}
		p.glob = shellClasses(p.glob)
		if _, err := path.Match(p.glob, ""); err != nil {
			return nil, usagef("--exclude %q: %w", s, err)
		}
		if anchored {
			e.paths = append(e.paths, p)
		} else {
			e.names = append(e.names, p)
		}
	}
	return e, nil
}

// skip reports whether the entry name is excluded; rel returns its path
// relative to the root being walked, with slashes, and is called only when
// a pattern needs it.
func (e *excluder) skip(name string, isDir bool, rel func() string) bool {
	if e == nil {
		return false
	}
	for _, p := range e.names {
		if (isDir || !p.dirOnly) && match(p.glob, name) {
			return true
		}
	}
	if len(e.paths) == 0 {
		return false
	}
	r := rel()
	for _, p := range e.paths {
		if (isDir || !p.dirOnly) && match(p.glob, r) {
			return true
		}
	}
	return false
}

// shellClasses rewrites the shell's negated class, [!...], as path.Match's,
// [^...]. A backslash escapes the next character, as in both.
func shellClasses(glob string) string {
	b := []byte(glob)
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '[':
			if i+1 < len(b) && b[i+1] == '!' {
				b[i+1] = '^'
			}
			// Skip to the class's end: a '[' inside it is a character.
			for i++; i < len(b) && b[i] != ']'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
		}
	}
	return string(b)
}

// match is path.Match without the error, which newExcluder has ruled out,
// and with a fast path for a pattern without wildcards.
func match(glob, s string) bool {
	if !strings.ContainsAny(glob, `*?[\`) {
		return glob == s
	}
	ok, _ := path.Match(glob, s)
	return ok
}
