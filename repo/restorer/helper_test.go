package restorer_test

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/backend"
	"github.com/cairn-backup/cairn/repo/backend/mem"
)

// This file builds snapshots by hand, without the archiver: blobs, trees
// and the snapshot record go straight into a repository on a mem backend
// wrapped by faultyBackend.

// faultyBackend is a mem backend whose Load can flip bytes of stored
// objects (objects are create-only, so the damage is done on the way
// out).
type faultyBackend struct {
	*mem.Backend

	mu    sync.Mutex         // guards flips
	flips map[string][]int64 // object name → offsets whose byte Load flips
}

func (b *faultyBackend) Load(ctx context.Context, h backend.Handle, off int64, length int) ([]byte, error) {
	data, err := b.Backend.Load(ctx, h, off, length)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, at := range b.flips[h.Name] {
		if at >= off && at < off+int64(len(data)) {
			data[at-off] ^= 0x55
		}
	}
	return data, nil
}

// builder assembles a snapshot in a fresh repository.
type builder struct {
	t     testing.TB
	ctx   context.Context
	be    *faultyBackend
	r     *repo.Repository
	rnd   *rand.Rand
	inode uint64
}

// Recorded times: atime after mtime, both with nanoseconds.
var (
	mtime = time.Date(2023, 5, 17, 8, 30, 15, 123456789, time.UTC)
	atime = time.Date(2024, 1, 2, 3, 4, 5, 987654321, time.UTC)
)

func newBuilder(t testing.TB) *builder {
	t.Helper()
	ctx := context.Background()
	be := &faultyBackend{Backend: mem.New(), flips: make(map[string][]int64)}
	r, err := repo.Init(ctx, be, "secret", repo.InitOptions{KDF: repo.TestKDF})
	if err != nil {
		t.Fatal(err)
	}
	return &builder{t: t, ctx: ctx, be: be, r: r, rnd: rand.New(rand.NewPCG(1, 2)), inode: 1000}
}

// random returns n reproducible random bytes.
func (b *builder) random(n int) []byte {
	buf := make([]byte, n)
	for i := range buf {
		buf[i] = byte(b.rnd.Uint32())
	}
	return buf
}

// meta fills the metadata every node gets unless a test changes it.
func (b *builder) meta(n *repo.Node, mode uint32) *repo.Node {
	b.inode++
	n.Mode = mode
	n.UID, n.GID = uint32(os.Getuid()), uint32(os.Getgid())
	n.MTime, n.ATime, n.CTime = mtime, atime, mtime
	n.Inode, n.Device, n.Links = b.inode, 42, 1
	return n
}

// blob saves one data blob.
func (b *builder) blob(data []byte) repo.ID {
	b.t.Helper()
	id := repo.Hash(data)
	if _, err := b.r.SaveBlob(b.ctx, repo.DataBlob, id, data); err != nil {
		b.t.Fatal(err)
	}
	return id
}

// content splits data into chunks of size chunk (the last one shorter)
// and saves them.
func (b *builder) content(data []byte, chunk int) []repo.ID {
	var ids []repo.ID
	for len(data) > 0 {
		k := min(chunk, len(data))
		ids = append(ids, b.blob(data[:k]))
		data = data[k:]
	}
	return ids
}

func (b *builder) file(name string, data []byte, chunk int) *repo.Node {
	n := b.meta(&repo.Node{Name: name, Type: repo.NodeFile, Size: uint64(len(data))}, 0o644)
	n.Content = b.content(data, chunk)
	return n
}

func (b *builder) symlink(name, target string) *repo.Node {
	return b.meta(&repo.Node{Name: name, Type: repo.NodeSymlink, LinkTarget: target, Size: uint64(len(target))}, 0o777)
}

func (b *builder) special(name string, typ repo.NodeType, mode uint32, rdev uint64) *repo.Node {
	return b.meta(&repo.Node{Name: name, Type: typ, Rdev: rdev}, mode)
}

// dir saves a tree of children and returns the directory node.
func (b *builder) dir(name string, children ...*repo.Node) *repo.Node {
	b.t.Helper()
	id, err := b.r.SaveTree(b.ctx, &repo.Tree{Nodes: children})
	if err != nil {
		b.t.Fatal(err)
	}
	n := b.meta(&repo.Node{Name: name, Type: repo.NodeDir, Subtree: &id}, 0o755)
	n.Links = 0
	return n
}

// rawDir saves a tree encoded by hand, bypassing EncodeTree's checks, so
// that tests can store what the archiver never would.
func (b *builder) rawDir(name string, children ...*repo.Node) *repo.Node {
	b.t.Helper()
	data, err := json.Marshal(&repo.Tree{Nodes: children})
	if err != nil {
		b.t.Fatal(err)
	}
	id := repo.Hash(data)
	if _, err := b.r.SaveBlob(b.ctx, repo.TreeBlob, id, data); err != nil {
		b.t.Fatal(err)
	}
	n := b.meta(&repo.Node{Name: name, Type: repo.NodeDir, Subtree: &id}, 0o755)
	n.Links = 0
	return n
}

// snapshot saves the root tree, flushes and saves the snapshot record.
func (b *builder) snapshot(children ...*repo.Node) *repo.Snapshot {
	b.t.Helper()
	root, err := b.r.SaveTree(b.ctx, &repo.Tree{Nodes: children})
	if err != nil {
		b.t.Fatal(err)
	}
	return b.save(root)
}

func (b *builder) save(root repo.ID) *repo.Snapshot {
	b.t.Helper()
	if err := b.r.Flush(b.ctx); err != nil {
		b.t.Fatal(err)
	}
	s := &repo.Snapshot{Label: "test", Time: mtime, Host: "host", Paths: []string{"/"}, Tree: root}
	if _, err := b.r.SaveSnapshot(b.ctx, s); err != nil {
		b.t.Fatal(err)
	}
	return s
}

// corrupt makes every later load of blob id see one byte flipped.
func (b *builder) corrupt(id repo.ID) {
	b.t.Helper()
	loc, ok := b.r.LookupBlob(id)
	if !ok {
		b.t.Fatalf("blob %s not indexed", id.Short())
	}
	b.be.mu.Lock()
	defer b.be.mu.Unlock()
	name := loc.Pack.String()
	b.be.flips[name] = append(b.be.flips[name], int64(loc.Offset)+int64(loc.Length)/2)
}

// errs collects what OnError receives.
type errs struct {
	mu   sync.Mutex
	list []pathErr
}

type pathErr struct {
	path string
	err  error
}

func (e *errs) add(p string, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.list = append(e.list, pathErr{p, err})
}

func (e *errs) get() []pathErr {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]pathErr(nil), e.list...)
}
