// Package testenv decides what a test does when the machine lacks what it
// needs (root, /dev/fuse, a tool): outside CI it is skipped with the
// reason printed; in CI, where everything must run (DESIGN.md §9), it
// fails. CI is recognised by the CI environment variable, which .ci/run
// sets.
package testenv

import (
	"os"
	"testing"
)

// InCI reports whether the tests run in CI.
func InCI() bool { return os.Getenv("CI") != "" }

// Skip skips t with reason outside CI and fails it in CI.
func Skip(t testing.TB, reason string) {
	t.Helper()
	if InCI() {
		t.Fatalf("%s: CI must run this test (CI=%s)", reason, os.Getenv("CI"))
		return
	}
	t.Skip(reason + " (skipped outside CI only)")
}
