package plan

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// Exclude is a compiled list of exclude patterns. A path is excluded when
// any pattern matches it or one of the directories above it. The rules:
//
//   - Paths and patterns are slash-separated. A path is matched as given
//     to Match, normally absolute.
//   - Each path component is matched by one pattern component with
//     path.Match: '*' is any run of characters other than '/', '?' one
//     such character, "[a-z]" and "[^a-z]" (or "[!a-z]") classes; '\'
//     escapes the next character. '*' also matches a leading dot: "*"
//     matches ".cache".
//   - A component "**" matches any number of path components, zero
//     included: "/home/**/*.o", "**/.cache". Within a component, as in
//     "a**b", "**" is just "*".
//   - A pattern starting with '/' is anchored: it matches from the root,
//     "/var/tmp" excludes only /var/tmp. Any other pattern may match at
//     any depth, as if it began with "**/": "*.tmp" excludes every file
//     and directory whose name ends in .tmp, ".cache/thumbnails" every
//     thumbnails directory inside a .cache directory.
//   - A pattern ending in '/' matches only directories: "build/".
//   - Matching a directory excludes everything below it, so "/srv/**"
//     excludes /srv itself as well.
//
// A malformed pattern ("[a-"), an empty one, one of only "/", or one with
// a "." or ".." component is an error.
type Exclude struct {
	pats []pattern
}

type pattern struct {
	comps   []string // "**" or path.Match patterns
	dirOnly bool
}

// CompileExclude compiles patterns (see Exclude for the rules).
func CompileExclude(patterns []string) (*Exclude, error) {
	e := &Exclude{}
	for _, s := range patterns {
		p, err := compilePattern(s)
		if err != nil {
			return nil, err
		}
		e.pats = append(e.pats, p)
	}
	return e, nil
}

func compilePattern(s string) (pattern, error) {
	bad := func(why string) error { return fmt.Errorf("invalid exclude pattern %q: %s", s, why) }
	if s == "" {
		return pattern{}, errors.New("empty exclude pattern")
	}
	var p pattern
	trimmed := strings.TrimRight(s, "/")
	p.dirOnly = trimmed != s
	if !strings.HasPrefix(s, "/") {
		p.comps = append(p.comps, "**")
	}
	n := 0
	for c := range strings.SplitSeq(trimmed, "/") {
		switch c {
		case "":
			continue
		case ".", "..":
			return pattern{}, bad(`"." and ".." are not allowed`)
		case "**":
			if len(p.comps) > 0 && p.comps[len(p.comps)-1] == "**" {
				n++
				continue
			}
		default:
			c = shellClasses(c)
			if _, err := path.Match(c, ""); err != nil {
				return pattern{}, bad("malformed (unclosed '[' or trailing '\\'?)")
			}
		}
		p.comps = append(p.comps, c)
		n++
	}
	if n == 0 {
		return pattern{}, bad("it would exclude everything")
	}
	return p, nil
}

// Match reports whether path (isDir: a directory) is excluded. A nil
// Exclude excludes nothing.
func (e *Exclude) Match(p string, isDir bool) bool {
	if e == nil || len(e.pats) == 0 {
		return false
	}
	var segs []string
	for s := range strings.SplitSeq(path.Clean(p), "/") {
		if s != "" {
			segs = append(segs, s)
		}
	}
	for _, pat := range e.pats {
		if matchComps(pat.comps, segs, pat.dirOnly, isDir) {
			return true
		}
	}
	return false
}

// matchComps matches pattern components against path components. Running
// out of pattern with path left over means a directory above the path
// matched, which excludes the path too.
func matchComps(pc, segs []string, dirOnly, isDir bool) bool {
	for len(pc) > 0 {
		if pc[0] == "**" {
			for i := 0; i <= len(segs); i++ {
				if matchComps(pc[1:], segs[i:], dirOnly, isDir) {
					return true
				}
			}
			return false
		}
		if len(segs) == 0 {
			return false
		}
		if ok, _ := path.Match(pc[0], segs[0]); !ok {
			return false
		}
		pc, segs = pc[1:], segs[1:]
	}
	if len(segs) > 0 {
		return true
	}
	return !dirOnly || isDir
}

// Excluder compiles the plan's exclude patterns once, for a backup that
// asks about every file.
func (p Plan) Excluder() (*Exclude, error) { return CompileExclude(p.Exclude) }

// Excluded reports whether the plan's exclude patterns leave out path
// (see Exclude for the rules). It compiles the patterns on every call;
// a backup should use Excluder. Invalid patterns, which Parse refuses,
// match nothing here.
func (p Plan) Excluded(path string, isDir bool) bool {
	e := &Exclude{}
	for _, s := range p.Exclude {
		if pat, err := compilePattern(s); err == nil {
			e.pats = append(e.pats, pat)
		}
	}
	return e.Match(path, isDir)
}

// shellClasses turns the shell's negated class "[!a-z]" into path.Match's
// "[^a-z]".
func shellClasses(c string) string {
	if !strings.Contains(c, "[!") {
		return c
	}
	b := []byte(c)
	for i := 0; i < len(b); i++ {
		switch {
		case b[i] == '\\':
			i++
		case b[i] == '[' && i+1 < len(b) && b[i+1] == '!':
			b[i+1] = '^'
		}
	}
	return string(b)
}
