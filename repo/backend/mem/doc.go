// Package mem is a Backend that keeps objects in memory. It exists for
// tests and benchmarks: it is fast, needs no cleanup and keeps the full
// Backend contract (create-only Save, ranged Load, idempotent Remove), so
// code tested on it behaves the same on real storage. Nothing survives the
// process.
package mem
