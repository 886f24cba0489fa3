package main

import (
	"context"
	"fmt"
	"io/fs"
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

func modeString(n *repo.Node) string {
	m := fs.FileMode(n.Mode & 0777)
	if n.Mode&04000 != 0 {
		m |= fs.ModeSetuid
	}
	if n.Mode&02000 != 0 {
		m |= fs.ModeSetgid
	}
	if n.Mode&01000 != 0 {
		m |= fs.ModeSticky
	}
	switch n.Type {
	case repo.NodeDir:
		m |= fs.ModeDir
	case repo.NodeSymlink:
		m |= fs.ModeSymlink
	case repo.NodeDev:
		m |= fs.ModeDevice
	case repo.NodeCharDev:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case repo.NodeFIFO:
		m |= fs.ModeNamedPipe
	case repo.NodeSocket:
		m |= fs.ModeSocket
	}
	return m.String()
}
