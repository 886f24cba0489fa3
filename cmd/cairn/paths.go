package main

import (
	"os"
	"path/filepath"
	"slices"
)

func hostname() string {
	h, _ := os.Hostname()
	return h
}

// absPaths makes paths absolute and sorted, as the archiver records them.
func absPaths(args []string) []string {
	var out []string
	for _, a := range args {
		if p, err := filepath.Abs(a); err == nil {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
