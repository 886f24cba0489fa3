package plan

import (
	"strings"
	"testing"
)

func TestExcluded(t *testing.T) {
	for _, tc := range []struct {
		pattern string
		path    string
		isDir   bool
		want    bool
	}{
		// A pattern without '/' matches the base name at any depth.
		{"*.tmp", "/home/alice/x.tmp", false, true},
		{"*.tmp", "/x.tmp", false, true},
		{"*.tmp", "/home/alice/x.tmp.keep", false, false},
		{"*.tmp", "/home/alice/tmp", false, false},
		{"*.tmp", "/home/alice/build.tmp", true, true},        // directories too
		{"*.tmp", "/home/alice/build.tmp/a/b.c", false, true}, // and what is below them
		{".cache", "/home/alice/.cache", true, true},
		{"*", "/home/alice/.hidden", false, true}, // '*' matches a leading dot
		{"?.o", "/src/a.o", false, true},
		{"?.o", "/src/ab.o", false, false},
		{"[abc].c", "/src/b.c", false, true},
		{"[!abc].c", "/src/b.c", false, false},
		{"[^abc].c", "/src/d.c", false, true},
		{"[!abc].c", "/src/d.c", false, true},
		{`\[!a].c`, "/src/[!a].c", false, true},
		{`\*.c`, "/src/*.c", false, true},
		{`\*.c`, "/src/x.c", false, false},
		// "**" matches any number of components, zero included.
		{"**/.cache", "/home/alice/.cache", true, true},
		{"**/.cache", "/.cache", true, true},
		{"**/.cache", "/home/alice/.cache/thumbnails/x.png", false, true},
		{"**/.cache", "/home/alice/.cachet", true, false},
		{"/home/**/*.o", "/home/a/b/c/x.o", false, true},
		{"/home/**/*.o", "/home/x.o", false, true},
		{"/home/**/*.o", "/srv/home/x.o", false, false},
		{"/home/**/build/*.o", "/home/a/build/x.o", false, true},
		{"/home/**/build/*.o", "/home/a/build/sub/x.o", false, false},
		{"/home/a**b/x", "/home/aZZb/x", false, true}, // "**" inside a component is '*'
		{"/home/a**b/x", "/home/a/b/x", false, false},
		// Patterns with '/' not at the start match at any depth too.
		{".cache/thumbnails", "/home/alice/.cache/thumbnails", true, true},
		{".cache/thumbnails", "/home/alice/.cache/other", true, false},
		{"alice/*.txt", "/home/alice/notes.txt", false, true},
		{"alice/*.txt", "/home/alice/sub/notes.txt", false, false},
		// A leading '/' anchors at the root.
		{"/var/tmp", "/var/tmp", true, true},
		{"/var/tmp", "/var/tmp/x", false, true},
		{"/var/tmp", "/srv/var/tmp", true, false},
		{"/var/*/log", "/var/app/log", true, true},
		{"/var/*/log", "/var/a/b/log", true, false},
		{"/srv/**", "/srv", true, true},
		{"/srv/**", "/srv/a/b", false, true},
		{"/srv/**", "/srvx", true, false},
		// A trailing '/' matches directories only (and what is below).
		{"build/", "/src/build", true, true},
		{"build/", "/src/build", false, false},
		{"build/", "/src/build/main.o", false, true},
		{"/src/build/", "/src/build", true, true},
		// Paths are cleaned before matching.
		{"/var/tmp", "/var//tmp/", true, true},
		{"/var/tmp", "/var/x/../tmp", true, true},
		// Case matters.
		{"*.TMP", "/a/x.tmp", false, false},
	} {
		p := Plan{Exclude: []string{tc.pattern}}
		if got := p.Excluded(tc.path, tc.isDir); got != tc.want {
			t.Errorf("pattern %q, path %q (dir %v): excluded %v, want %v", tc.pattern, tc.path, tc.isDir, got, tc.want)
		}
	}
}

func TestExcludeSeveralPatterns(t *testing.T) {
	e, err := (Plan{Exclude: []string{"**/.cache", "*.tmp", "/home/alice/Downloads"}}).Excluder()
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]bool{
		"/home/alice/.cache":        true,
		"/home/alice/a.tmp":         true,
		"/home/alice/Downloads":     true,
		"/home/bob/Downloads":       false,
		"/home/alice/Documents/a.c": false,
	} {
		if got := e.Match(path, strings.HasSuffix(path, "s") || strings.HasSuffix(path, "cache")); got != want {
			t.Errorf("%s: %v", path, got)
		}
	}
	var none *Exclude
	if none.Match("/x", false) {
		t.Error("nil Exclude excludes")
	}
	if (Plan{}).Excluded("/x", false) {
		t.Error("no patterns exclude")
	}
}

func TestBadPatterns(t *testing.T) {
	for _, pat := range []string{"", "/", "//", "[a-", "a/[", `x\`, "a/../b", "./a"} {
		if _, err := CompileExclude([]string{pat}); err == nil {
			t.Errorf("%q accepted", pat)
		}
	}
}
