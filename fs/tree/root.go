package tree

import (
	"context"
	"slices"
	"time"
)

// RootIno is the root's inode number, as FUSE wants it.
const RootIno = 1

// NewRoot returns the root of a mount showing repos (names must be unique).
func NewRoot(repos []*Repo) Dir {
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
	return &staticDir{ino: RootIno, time: now, names: []string{"README.txt", "repos"},
		children: map[string]Node{"README.txt": readme, "repos": reposDir}}
}

const readme = `cairn: your backups as a filesystem

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
