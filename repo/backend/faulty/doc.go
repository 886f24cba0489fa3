// Package faulty is a backend.Backend decorator for tests that makes good
// storage behave like bad storage (DESIGN.md §9): slow calls, transient
// errors, lost responses, and listings that lag behind Saves and Removes
// the way eventually consistent object stores do.
//
// Faults, per call of an affected operation (Options.Only):
//   - Latency is slept first (honouring the context).
//   - With probability ErrorRate the call fails with an error wrapping
//     backend.ErrTransient before doing anything.
//   - With probability LostResponseRate a Save or Remove is done on the
//     inner backend and then reported as failed with ErrTransient, as when
//     a response is lost on the network. Only calls the inner backend
//     completed lose their response; an inner error is returned as is.
//
// Lags, which affect List only (a process always sees its own writes in
// Load and Stat):
//   - An object saved through this Backend less than ListLag ago is left
//     out of List.
//   - An object removed through this Backend less than DeleteLag ago is
//     still listed (with its old size), although Load and Stat say it does
//     not exist.
//
// The faults are drawn from a PCG generator seeded with Options.Seed; every
// affected call takes exactly two draws, whatever the rates, so a given
// sequence of calls meets the same faults on every run, and changing a rate
// with SetErrorRate or SetLostResponseRate does not shift the draws of later
// calls. Calls made from several goroutines take the draws in the order
// they reach the generator, which the scheduler decides.
//
// A call with a cancelled context fails with the context's error and has no
// effect, as on real storage. Close is counted but never faulted.
package faulty
