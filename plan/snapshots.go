package plan

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/maint"
)

// Parent picks the parent of a new snapshot among snaps (oldest first):
// the newest that host ("": this host) made for the plan named, or, for
// an ad-hoc backup (plan ""), the newest of host with the same source
// paths (made absolute and sorted, as snapshots record them). Files
// unchanged since the parent are not read again. nil: there is none.
func Parent(snaps []*repo.Snapshot, host, plan string, paths []string) *repo.Snapshot {
	if host == "" {
		host, _ = os.Hostname()
	}
	var abs []string
	for _, p := range paths {
		if a, err := filepath.Abs(p); err == nil {
			abs = append(abs, a)
		}
	}
	slices.Sort(abs)
	abs = slices.Compact(abs)
	for i := len(snaps) - 1; i >= 0; i-- {
		s := snaps[i]
		if s.Host == host && (plan != "" && s.Plan == plan || plan == "" && slices.Equal(s.Paths, abs)) {
			return s
		}
	}
	return nil
}

// ForgetOptions choose the snapshots a retention policy applies to.
type ForgetOptions struct {
	// Plan and Host, if set, leave out the snapshots of other plans and
	// other hosts.
	Plan, Host string
	// GroupBy divides the snapshots into groups by these fields (see
	// ParseGroupBy); the policy applies to each group apart. None: one
	// group.
	GroupBy []string
	// Now is the time the policy counts back from; zero: time.Now.
	Now time.Time
	// DryRun decides and forgets nothing.
	DryRun bool
}

// ForgetGroup is one group of snapshots and what the policy keeps of it.
type ForgetGroup struct {
	Desc         string // "host h; paths /a, /b"; "" for the one group of no field
	Keep, Forget []*repo.Snapshot
	Reasons      map[*repo.Snapshot][]string // why each kept snapshot is kept
}

// ForgetResult is what Forget decided and did.
type ForgetResult struct {
	Snapshots int // how many the options selected
	Groups    []ForgetGroup
	Forgotten []*repo.Snapshot // the snapshots removed (on a dry run, to remove)
}

// Forget applies the retention policy to the snapshots of r that opts
// select, group by group in local time, and removes the records of those
// it does not keep (unless DryRun). Only records go, their data stays
// until a prune, so the shared lock of the caller's operation suffices
// (DESIGN.md §7). On a failure to remove, the result says what was
// decided.
func Forget(ctx context.Context, r *repo.Repository, pol Retention, opts ForgetOptions) (*ForgetResult, error) {
	snaps, err := r.Snapshots(ctx)
	if err != nil {
		return nil, err
	}
	snaps = slices.DeleteFunc(snaps, func(s *repo.Snapshot) bool {
		return opts.Plan != "" && s.Plan != opts.Plan || opts.Host != "" && s.Host != opts.Host
	})
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	res := &ForgetResult{Snapshots: len(snaps)}
	for _, g := range groupSnapshots(snaps, opts.GroupBy) {
		fg := ForgetGroup{Desc: g.desc}
		fg.Keep, fg.Forget, fg.Reasons = pol.Apply(g.snaps, now, time.Local)
		res.Groups = append(res.Groups, fg)
		res.Forgotten = append(res.Forgotten, fg.Forget...)
	}
	if opts.DryRun || len(res.Forgotten) == 0 {
		return res, nil
	}
	return res, maint.Forget(ctx, r, res.Forgotten)
}

// groupFields are the fields snapshots may be grouped by.
var groupFields = []string{"host", "plan", "paths", "tags"}

// ParseGroupBy reads a comma-separated list of the fields host, plan,
// paths and tags; "" is none.
func ParseGroupBy(s string) ([]string, error) {
	var fields []string
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !slices.Contains(groupFields, f) {
			return nil, fmt.Errorf("unknown field %q (want host, plan, paths, tags)", f)
		}
		if !slices.Contains(fields, f) {
			fields = append(fields, f)
		}
	}
	return fields, nil
}

// snapGroup is a set of snapshots the policy applies to together.
type snapGroup struct {
	desc  string // "host h; paths /a, /b"; "" when there is one group for all
	snaps []*repo.Snapshot
}

// groupSnapshots divides snaps by the values of fields, groups in order
// of their description.
func groupSnapshots(snaps []*repo.Snapshot, fields []string) []snapGroup {
	byKey := make(map[string]*snapGroup)
	var groups []*snapGroup
	for _, s := range snaps {
		var key, desc []string
		for _, f := range fields {
			var v string
			switch f {
			case "host":
				v = s.Host
			case "plan":
				v = s.Plan
			case "paths":
				v = strings.Join(sortedCopy(s.Paths), ", ")
			case "tags":
				v = strings.Join(sortedCopy(s.Tags), ", ")
			}
			key = append(key, v)
			if v == "" {
				v = "(none)"
			}
			desc = append(desc, f+" "+v)
		}
		k := strings.Join(key, "\x00")
		g := byKey[k]
		if g == nil {
			g = &snapGroup{desc: strings.Join(desc, "; ")}
			byKey[k] = g
			groups = append(groups, g)
		}
		g.snaps = append(g.snaps, s)
	}
	slices.SortFunc(groups, func(a, b *snapGroup) int { return strings.Compare(a.desc, b.desc) })
	out := make([]snapGroup, len(groups))
	for i, g := range groups {
		out[i] = *g
	}
	return out
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}
