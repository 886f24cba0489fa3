package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/cairn-backup/cairn/plan"
	"github.com/cairn-backup/cairn/repo"
)

// pruneNote says what forget leaves behind.
const pruneNote = "the forgotten snapshots' data stays in the repository until a prune (`cairn prune`, or forget --prune) frees it"

type forgetFlags struct {
	policy     plan.Retention
	planName   string
	configFile string
	dryRun     bool
	groupBy    string
	prune      bool
}

func forgetCmd(g *globalFlags) *cobra.Command {
	var f forgetFlags
	cmd := &cobra.Command{
		Use:   "forget (--keep-last N | --keep-daily N | … | --plan NAME)",
		Short: "Remove the snapshots a retention policy does not keep (their data stays until `cairn prune` removes it)",
		Long: `Forget applies a retention policy and removes the snapshot records it does not keep.

The policy comes from --keep-* flags, or with --plan NAME from the plan's
retention in the configuration file; then only that plan's snapshots are
considered, in each of the plan's repositories unless --repo is given.
Snapshots are divided into groups (--group-by; by default host, plan and
paths, or only host with --plan) and the policy applies to each group.

keep-last keeps the newest N snapshots; keep-hourly/daily/weekly/monthly/
yearly the newest snapshot of each of the newest N hours/days/ISO weeks/
months/years that have one, in local time; a count not used up also keeps
the oldest snapshot. keep-within keeps snapshots younger than a duration
(48h, 7d, 2w); keep-tag those with the tag. A snapshot any rule keeps is
kept, and forget never removes every snapshot of a group.

Only the snapshot records are removed; the data stays in the repository
until a prune (--prune runs one right after). --dry-run shows what would be removed and changes nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runForget(cmd, g, &f)
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&f.policy.KeepLast, "keep-last", 0, "keep the newest N snapshots")
	fl.IntVar(&f.policy.KeepHourly, "keep-hourly", 0, "keep the newest snapshot of each of the last N hours that have one")
	fl.IntVar(&f.policy.KeepDaily, "keep-daily", 0, "keep the newest snapshot of each of the last N days that have one")
	fl.IntVar(&f.policy.KeepWeekly, "keep-weekly", 0, "keep the newest snapshot of each of the last N weeks that have one")
	fl.IntVar(&f.policy.KeepMonthly, "keep-monthly", 0, "keep the newest snapshot of each of the last N months that have one")
	fl.IntVar(&f.policy.KeepYearly, "keep-yearly", 0, "keep the newest snapshot of each of the last N years that have one")
	fl.StringVar(&f.policy.KeepWithin, "keep-within", "", "keep snapshots younger than this duration (48h, 7d, 2w)")
	fl.StringArrayVar(&f.policy.KeepTags, "keep-tag", nil, "keep snapshots with this tag (repeatable)")
	fl.StringVar(&f.planName, "plan", "", "apply this plan's retention to its snapshots")
	fl.StringVar(&f.configFile, "config", "", "configuration file (default $CAIRN_CONFIG or ~/.config/cairn/config.json)")
	fl.BoolVarP(&f.dryRun, "dry-run", "n", false, "only show what would be forgotten")
	fl.BoolVar(&f.prune, "prune", false, "run a prune after forgetting (see cairn prune; ignored with --dry-run)")
	fl.StringVar(&f.groupBy, "group-by", "", `apply the policy to groups of snapshots with the same host, paths, plan, tags (comma-separated; "" for one group; default host,plan,paths, or host with --plan)`)
	return cmd
}

func runForget(cmd *cobra.Command, g *globalFlags, f *forgetFlags) error {
	ctx := cmd.Context()
	out := newOutput(g)
	keepFlags := false
	for _, name := range []string{"keep-last", "keep-hourly", "keep-daily", "keep-weekly", "keep-monthly", "keep-yearly", "keep-within", "keep-tag"} {
		keepFlags = keepFlags || cmd.Flags().Changed(name)
	}
	groupBy := "host,plan,paths"
	if f.planName != "" {
		groupBy = "host"
	}
	if cmd.Flags().Changed("group-by") {
		groupBy = f.groupBy
	}
	fields, err := plan.ParseGroupBy(groupBy)
	if err != nil {
		return fmt.Errorf("--group-by: %w", err)
	}

	var (
		policy  plan.Retention
		targets []plan.Target
		cfg     *plan.Config
	)
	loadConfig := func() error {
		path, err := configPath(f.configFile)
		if err != nil {
			return err
		}
		cfg, err = plan.Load(path)
		return err
	}
	switch {
	case f.planName != "" && keepFlags:
		return errors.New("give either --plan or --keep-* flags, not both")
	case f.planName != "":
		if err := loadConfig(); err != nil {
			return err
		}
		p, ok := cfg.Plans[f.planName]
		if !ok {
			path, _ := configPath(f.configFile)
			return fmt.Errorf("plan %q is not defined in %s", f.planName, path)
		}
		policy = p.Retention
		if policy.Empty() {
			out.info("plan %s has no retention policy: every snapshot is kept\n", f.planName)
		}
		if len(g.repos) == 0 {
			for _, name := range p.Repos {
				targets = append(targets, cfg.Resolve(name))
			}
		}
	case keepFlags:
		policy = f.policy
		if err := policy.Validate(); err != nil {
			return flagError(err)
		}
		if policy.Empty() {
			return errors.New("the policy is empty, it would keep every snapshot: give a --keep-* flag with a count above 0")
		}
	default:
		return errors.New("no policy: give --keep-last, --keep-daily, … or --plan NAME")
	}
	if targets == nil {
		url, err := g.repoURL()
		if err != nil {
			return err
		}
		if cfg == nil && !strings.Contains(url, "/") {
			// Perhaps the name of a configured repository. A broken
			// configuration matters only if no such directory exists.
			if err := loadConfig(); err != nil {
				if _, serr := os.Stat(url); serr != nil {
					return err
				}
			}
		}
		targets = []plan.Target{cfg.Resolve(url)}
	}

	failed := 0
	for _, t := range targets {
		err := forgetIn(ctx, g, out, t, policy, f, fields)
		if err == nil && f.prune && !f.dryRun {
			err = pruneIn(ctx, g, out, t, defaultPruneFlags())
		}
		if err != nil {
			if len(targets) == 1 {
				return err
			}
			failed++
			out.warn(t.Name, err)
		}
	}
	if failed > 0 {
		return fmt.Errorf("forget failed in %d of %s", failed, plural(len(targets), "repository", "repositories"))
	}
	return nil
}

// forgetIn applies the policy in one repository.
func forgetIn(ctx context.Context, g *globalFlags, out *output, t plan.Target, policy plan.Retention, f *forgetFlags, fields []string) error {
	// A dry run changes nothing and needs no lock, nor does an empty
	// policy. A real one only removes snapshot records; packs stay until
	// a (two-phase) prune, so a shared lock suffices and plans backing up
	// to the same repository are not refused (DESIGN.md §7).
	var r *repo.Repository
	var err error
	if !f.dryRun && !policy.Empty() {
		var done func()
		if r, ctx, done, err = g.opener().Operation(ctx, t, false); err != nil {
			return err
		}
		defer done()
	} else if r, err = g.opener().Open(ctx, t.OpenName(), t.Def); err != nil {
		return err
	} else {
		defer r.Backend().Close()
	}
	res, err := plan.Forget(ctx, r, policy, plan.ForgetOptions{Plan: f.planName, GroupBy: fields, DryRun: f.dryRun})
	if res == nil {
		return err
	}
	kept := 0
	if !out.json {
		out.printf("repository %s: %s\n", t, policy)
		if res.Snapshots == 0 {
			out.printf("no snapshots%s\n", planSuffix(f.planName))
		}
	}
	for _, grp := range res.Groups {
		kept += len(grp.Keep)
		if out.json {
			for _, s := range grp.Keep {
				out.emit(snapshotEvent("keep", t, grp, s, grp.Reasons[s]))
			}
			for _, s := range grp.Forget {
				out.emit(snapshotEvent("forget", t, grp, s, nil))
			}
			continue
		}
		printGroup(out, grp, f.dryRun)
	}
	if err != nil {
		if cause := context.Cause(ctx); cause != nil && errors.Is(cause, repo.ErrLockLost) {
			return cause
		}
		return err
	}
	forget := res.Forgotten
	if out.json {
		out.emit(map[string]any{
			"type": "summary", "repo": t.Name, "url": t.Def.URL, "policy": policy.String(),
			"kept": kept, "forgotten": len(forget), "dry_run": f.dryRun, "pruned": f.prune && !f.dryRun,
		})
		return nil
	}
	switch {
	case f.dryRun:
		out.printf("would forget %d of %s%s (dry run: nothing changed)\n", len(forget), plural(res.Snapshots, "snapshot", "snapshots"), planSuffix(f.planName))
	case len(forget) > 0 && f.prune:
		out.printf("forgot %d of %s%s; pruning\n", len(forget), plural(res.Snapshots, "snapshot", "snapshots"), planSuffix(f.planName))
	case len(forget) > 0:
		out.printf("forgot %d of %s%s; %s\n", len(forget), plural(res.Snapshots, "snapshot", "snapshots"), planSuffix(f.planName), pruneNote)
	default:
		out.printf("nothing to forget\n")
	}
	return nil
}

func planSuffix(name string) string {
	if name == "" {
		return ""
	}
	return " of plan " + name
}

func snapshotEvent(kind string, t plan.Target, grp plan.ForgetGroup, s *repo.Snapshot, reasons []string) map[string]any {
	ev := map[string]any{
		"type": kind, "repo": t.Name, "id": s.ID().String(), "label": s.Label, "time": s.Time,
		"host": s.Host, "plan": s.Plan, "paths": s.Paths, "tags": s.Tags, "group": grp.Desc,
	}
	if kind == "keep" {
		ev["reasons"] = reasons
	}
	return ev
}

func printGroup(out *output, grp plan.ForgetGroup, dryRun bool) {
	keep, drop, reasons := grp.Keep, grp.Forget, grp.Reasons
	if grp.Desc != "" {
		out.printf("\nsnapshots of %s:\n", grp.Desc)
	}
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 2, 2, ' ', 0)
	fmt.Fprintf(tw, "keep %d:\n", len(keep))
	if len(keep) > 0 {
		fmt.Fprintf(tw, "  ID\tLABEL\tTIME\tREASONS\n")
		for _, s := range keep {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", s.ID().Short(), s.Label, s.Time.Local().Format(time.DateTime), strings.Join(reasons[s], ", "))
		}
	}
	verb := "forget"
	if dryRun {
		verb = "would forget"
	}
	if len(drop) == 0 {
		fmt.Fprintf(tw, "%s none\n", verb)
	} else {
		fmt.Fprintf(tw, "%s %d:\n", verb, len(drop))
		fmt.Fprintf(tw, "  ID\tLABEL\tTIME\n")
		for _, s := range drop {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", s.ID().Short(), s.Label, s.Time.Local().Format(time.DateTime))
		}
	}
	tw.Flush()
	out.printf("%s", b.String())
}

// flagError names the --keep-* flag behind an invalid policy field.
func flagError(err error) error {
	var e *plan.Error
	if !errors.As(err, &e) {
		return err
	}
	field, _, _ := strings.Cut(e.Path, "[")
	flag := strings.ReplaceAll(field, "_", "-")
	if field == "keep_tags" {
		flag = "keep-tag"
	}
	return fmt.Errorf("--%s: %s", flag, e.Msg)
}
