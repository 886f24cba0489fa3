package main

import "testing"

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"512MiB": 512 << 20, "2GiB": 2 << 30, "100MB": 100e6, "1048576": 1 << 20, "1.5G": 3 << 29, " 64 KiB ": 64 << 10,
	} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "lots", "-1MiB", "MiB"} {
		if _, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q) accepted", bad)
		}
	}
}

func TestRepoURL(t *testing.T) {
	t.Setenv("CAIRN_REPOSITORY", "")
	g := &globalFlags{}
	if _, err := g.repoURL(); err == nil {
		t.Fatal("no repository accepted")
	}
	t.Setenv("CAIRN_REPOSITORY", "/from/env")
	if u, _ := g.repoURL(); u != "/from/env" {
		t.Fatalf("env: %q", u)
	}
	g.repos = []string{"/a", "/b"}
	if _, err := g.repoURL(); err == nil {
		t.Fatal("two repositories accepted by a one-repository command")
	}
}
