package tree

import (
	"context"
	"os"
	"slices"
	"time"
)

// RootIno is the root's inode number, as FUSE wants it.
const RootIno = 1

// NewRoot returns the root of a mount showing repos (names must be
// unique) and, under plans/, the plans of the model plans. With plans nil,
// plans/ is an empty, read-only directory. The files under plans/ belong
// to the user running the mount.
func NewRoot(repos []*Repo, plans Plans) Dir {
	now := time.Now()
	reposDir := &staticDir{ino: childIno(RootIno, "repos"), time: now, children: map[string]Node{}}
	for _, r := range repos {
		r.ino = childIno(reposDir.ino, r.name)
		reposDir.names = append(reposDir.names, r.name)
		reposDir.children[r.name] = r
	}
	slices.Sort(reposDir.names)
	readme := &staticFile{ino: childIno(RootIno, "README.txt"), mode: 0o444, time: now,
		gen: func(context.Context) ([]byte, error) { return []byte(readme), nil }}
	plansDir := newPlansDir(plans, uint32(os.Getuid()), uint32(os.Getgid()), now)
	return &staticDir{ino: RootIno, time: now, names: []string{"README.txt", "plans", "repos"},
		children: map[string]Node{"README.txt": readme, "plans": plansDir, "repos": reposDir}}
}

const readme = `cairn: your backups as a filesystem

  plans/<plan>/                 one directory per backup plan; mkdir
                                plans/<name> creates an empty plan, rmdir
                                or rm -r removes one
  plans/<plan>/plan.json        the plan's definition: edit it with any
                                tool (echo, cp, tee, sed -i, nano, vim);
                                an invalid one is refused when the file
                                is closed or renamed into place (EINVAL)
                                and the old one stays
  plans/<plan>/run              write anything to start a backup now
                                (echo > run); reads "idle" or "running"
  plans/<plan>/status           JSON: state, progress, last result per
                                repository, next run, last error (with
                                the line and column of a refused plan)
  plans/<plan>/log              JSON lines: the recent runs' events
  repos/<repo>/status           JSON: snapshots, stored and original bytes,
                                dedup ratio, cache hit rate, locks held
  repos/<repo>/snapshots/       one read-only directory per snapshot, named
                                by its label, e.g. 2026-11-21T040000Z_host
  repos/<repo>/snapshots/latest the newest snapshot (a symlink)

Each snapshot holds its sources under their absolute paths:
snapshots/<label>/home/alice/... Restore with ordinary tools:

  cp -a repos/<repo>/snapshots/latest/home/alice/doc.txt ~/
  rsync -aHAX repos/<repo>/snapshots/<label>/home/alice/ /home/alice/

Files show their recorded modes, owners, times, xattrs, hard links and
holes. Snapshot directories carry the xattr user.cairn.snapshot (JSON).
New snapshots appear without remounting. Unmount with 'umount <dir>' or
Ctrl-C on the mount process.
`
