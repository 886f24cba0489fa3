package main

import "testing"

func TestRestoreCounts(t *testing.T) {
	for _, c := range []struct {
		restored          uint64
		sources, includes []string
		dirs, parents     uint64
	}{
		{5, []string{"/tmp/demo/src"}, nil, 3, 2},
		{4, []string{"/tmp/demo/src", "/tmp/other"}, nil, 2, 2}, // tmp and tmp/demo
		{3, []string{"/src"}, nil, 3, 0},
		{4, []string{"/a", "/a/b/c"}, nil, 4, 0},
		{3, []string{"/tmp/demo/src", "/var/x"}, []string{"/tmp/demo/src/d"}, 1, 2},
		{2, []string{"/tmp/demo/src"}, []string{"/tmp"}, 0, 2},
	} {
		dirs, parents := restoreCounts(c.restored, c.sources, c.includes)
		if dirs != c.dirs || parents != c.parents {
			t.Errorf("restoreCounts(%d, %v, %v) = %d, %d; want %d, %d", c.restored, c.sources, c.includes, dirs, parents, c.dirs, c.parents)
		}
	}
}
