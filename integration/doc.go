// Package integration holds end-to-end tests: they build the cairn binary,
// run it as a user would, and check the results with real tools and
// syscalls. They need root (device nodes, ownership, a tmpfs for the full
// disk case), which CI has.
package integration
