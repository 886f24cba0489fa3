package main

import (
	"context"
	"fmt"
	"path"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cairn-backup/cairn/repo"
)

func lsCmd(g *globalFlags) *cobra.Command {
	var long bool
	cmd := &cobra.Command{
		Use:   "ls SNAPSHOT [PATH]",
		Short: "List the contents of a snapshot (recursively, below PATH)",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			out := newOutput(g)
			r, snap, err := openSnapshot(ctx, g, args[0])
			if err != nil {
				return err
			}
			defer r.Backend().Close()
			prefix := "/"
			if len(args) == 2 {
				prefix = path.Clean("/" + args[1])
			}
			return walkTree(ctx, r, snap.Tree, "/", func(p string, n *repo.Node) (bool, error) {
				inside := p == prefix || strings.HasPrefix(p, strings.TrimSuffix(prefix, "/")+"/")
				above := strings.HasPrefix(prefix, p+"/")
				if !inside {
					return above, nil
				}
				if out.json {
					out.emit(map[string]any{
						"path": p, "type": n.Type, "mode": n.Mode, "uid": n.UID, "gid": n.GID,
						"user": n.User, "group": n.Group, "size": n.Size, "mtime": n.MTime,
						"linktarget": n.LinkTarget,
					})
				} else if long {
					out.printf("%s %8s %8s %12d %s %s%s\n", modeString(n), owner(n.User, n.UID), owner(n.Group, n.GID),
						n.Size, n.MTime.Local().Format("2006-01-02 15:04:05"), p, linkSuffix(n))
				} else {
					out.printf("%s\n", p)
				}
				return true, nil
			})
		},
	}
	cmd.Flags().BoolVarP(&long, "long", "l", false, "show modes, owners, sizes and times")
	return cmd
}

// walkTree visits every node below tree in name order; fn's bool says
// whether to descend into a directory.
func walkTree(ctx context.Context, r *repo.Repository, id repo.ID, dir string, fn func(string, *repo.Node) (bool, error)) error {
	t, err := r.LoadTree(ctx, id)
	if err != nil {
		return err
	}
	for _, n := range t.Nodes {
		p := path.Join(dir, n.Name)
		descend, err := fn(p, n)
		if err != nil {
			return err
		}
		if descend && n.Type == repo.NodeDir && n.Subtree != nil {
			if err := walkTree(ctx, r, *n.Subtree, p, fn); err != nil {
				return err
			}
		}
	}
	return nil
}

func owner(name string, id uint32) string {
	if name != "" {
		return name
	}
	return fmt.Sprint(id)
}

func linkSuffix(n *repo.Node) string {
	if n.Type == repo.NodeSymlink {
		return " -> " + n.LinkTarget
	}
	return ""
}

// modeString is the mode as ls -l writes it (GNU coreutils' filemodestring):
// the type letter, then rwx for owner, group and others, with setuid and
// setgid shown as s (S without execute) and the sticky bit as t (T).
func modeString(n *repo.Node) string {
	typ := byte('?')
	switch n.Type {
	case repo.NodeFile:
		typ = '-'
	case repo.NodeDir:
		typ = 'd'
	case repo.NodeSymlink:
		typ = 'l'
	case repo.NodeDev:
		typ = 'b'
	case repo.NodeCharDev:
		typ = 'c'
	case repo.NodeFIFO:
		typ = 'p'
	case repo.NodeSocket:
		typ = 's'
	}
	b := []byte{typ, 'r', 'w', 'x', 'r', 'w', 'x', 'r', 'w', 'x'}
	for i := range 9 {
		if n.Mode&(1<<(8-i)) == 0 {
			b[i+1] = '-'
		}
	}
	special := func(at int, bit uint32, lower byte) {
		if n.Mode&bit == 0 {
			return
		}
		if b[at] == 'x' {
			b[at] = lower
		} else {
			b[at] = lower - 'a' + 'A'
		}
	}
	special(3, 0o4000, 's')
	special(6, 0o2000, 's')
	special(9, 0o1000, 't')
	return string(b)
}
