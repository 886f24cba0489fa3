// Package mount runs the mount process (DESIGN.md §1, §4): it opens the
// repositories to show from one pool (plan.RepoPool), serves them and the
// plans of the configuration file as the tree of fs/tree at a directory
// through fs, runs the plans by their schedules, and keeps each
// repository's listing fresh after a run.
//
// The repositories it shows and the plans it runs share each open
// repository (one index, one pack uploader). Showing a repository takes
// no lock: only plan runs do, each for its duration, so an idle mount
// holds nothing under locks/ (DESIGN.md §7).
//
// cmd/cairn gives it flags and the environment's password and prints
// what it reports; the mount itself prints nothing.
package mount
