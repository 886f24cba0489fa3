package archiver

import (
	"context"
	"errors"
	"io"
	"slices"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/chunker"
)

// fileJob is one regular file: decided by needsRead, read by saveFile.
type fileJob struct {
	dirfd   int    // the open directory the file is node.Name in
	path    string // for reports
	st      unix.Stat_t
	node    *repo.Node // the file's metadata, the template of its records
	parents nodes      // the parent snapshots' records of it
	reuse   []bool     // per target: the parent's record stands for the file
	out     nodes      // the entry, once the job is done and ok
	done    chan struct{}
	ok      bool // false: leave the entry out
}

func (a *archiver) newJob(dirfd int, path string, st *unix.Stat_t, node *repo.Node, parents nodes) *fileJob {
	return &fileJob{dirfd: dirfd, path: path, st: *st, node: node, parents: parents, reuse: make([]bool, len(a.targets))}
}

// needsRead decides for each live target whether its parent snapshot's
// record can stand for the file. When it can for all of them the job is
// complete (the file is not read) and needsRead returns false.
func (a *archiver) needsRead(job *fileJob) bool {
	need := false
	for i, t := range a.targets {
		if t.failed.Load() {
			continue
		}
		if isUnchanged(t.Repo, job.node, job.parents.at(i)) {
			job.reuse[i] = true
		} else {
			need = true
		}
	}
	if need {
		return true
	}
	job.node.Xattrs = a.xattrsAt(job.path, job.dirfd, job.node.Name)
	a.files.Add(1)
	a.unchanged.Add(1)
	a.bytes.Add(job.node.Size)
	job.out = a.record(job, nil)
	return false
}

// isUnchanged reports whether the parent snapshot's node p can stand for n
// in repository r.
func isUnchanged(r *repo.Repository, n, p *repo.Node) bool {
	if p == nil || p.Type != repo.NodeFile || p.Size != n.Size || p.Inode != n.Inode ||
		!p.MTime.Equal(n.MTime) || !p.CTime.Equal(n.CTime) {
		return false
	}
	for _, id := range p.Content {
		if !r.HasBlob(id) {
			return false
		}
	}
	return true
}

// record returns the file's entry: for a target that reuses its parent's
// record the parent's size and content, for the others job.node's size and
// contents[their chunker]. Targets whose records agree share a node.
func (a *archiver) record(job *fileJob, contents [][]repo.ID) nodes {
	out := make(nodes, len(a.targets))
	readSize := job.node.Size
	var made []*repo.Node
	for i, t := range a.targets {
		if t.failed.Load() {
			continue
		}
		size, content := readSize, []repo.ID(nil)
		if job.reuse[i] {
			size, content = job.parents[i].Size, job.parents[i].Content
			t.unchanged.Add(1)
		} else if contents != nil {
			content = contents[t.group.idx]
		}
		for _, n := range made {
			if n.Size == size && slices.Equal(n.Content, content) {
				out[i] = n
				break
			}
		}
		if out[i] != nil {
			continue
		}
		n := job.node
		if len(made) > 0 {
			c := *job.node
			n = &c
		}
		n.Size, n.Content = size, content
		made = append(made, n)
		out[i] = n
	}
	return out
}

func (a *archiver) worker(ctx context.Context) {
	for job := range a.jobs {
		if ctx.Err() == nil {
			err := a.saveFile(ctx, job)
			switch {
			case err == nil:
				job.ok = true
			case isFatal(err):
				a.stop(err)
			default:
				a.report(job.path, err)
			}
		}
		close(job.done)
	}
}

// hookedFile reports reads to Options.onRead.
type hookedFile struct {
	f    io.ReaderAt
	path string
	fn   func(path string, off, n int64)
}

func (h hookedFile) ReadAt(b []byte, off int64) (int, error) {
	n, err := h.f.ReadAt(b, off)
	h.fn(h.path, off, int64(n))
	return n, err
}

// saveFile reads the file once, chunks it once per chunker that a target
// needing it has, saves the chunks in those targets and sets job.out.
// Errors are readErrors or the run's; a repository's fails its target.
func (a *archiver) saveFile(ctx context.Context, job *fileJob) error {
	if a.opts.beforeOpen != nil {
		a.opts.beforeOpen(job.path)
	}
	fd, err := openFile(job.dirfd, job.node.Name)
	if err != nil {
		return &readError{err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &readError{err}
	}
	if st.Ino != job.st.Ino || st.Dev != job.st.Dev || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return &readError{errReplaced}
	}
	job.node.Xattrs = a.xattrsFd(job.path, fd)

	var groups []*seedGroup // the chunkers needed, in a.groups order
	for i, t := range a.targets {
		if !t.failed.Load() && !job.reuse[i] && !slices.Contains(groups, t.group) {
			groups = append(groups, t.group)
		}
	}
	var src io.ReaderAt = fdReader(fd)
	if a.opts.onRead != nil {
		src = hookedFile{src, job.path, a.opts.onRead}
	}
	contents := make([][]repo.ID, len(a.groups))
	var read int64
	size := st.Size
	// A file with as many blocks as bytes has no holes: one region,
	// without asking where data and holes are (two lseeks a file).
	off := int64(0)
	if st.Blocks*512 >= size && size > 0 && len(groups) > 0 {
		n, err := a.saveRegion(ctx, job, groups, io.NewSectionReader(src, 0, size), contents)
		read += n
		if err != nil {
			return err
		}
		off = size
	}
	for off < size && len(groups) > 0 {
		// Find the next data region; holes become zero chunks.
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			data = size // only a hole remains
		} else if err != nil {
			data = off // no SEEK_DATA support: all data
		}
		if data > off {
			for _, g := range groups {
				if err := a.zeroChunks(ctx, g, job, data-off, &contents[g.idx]); err != nil {
					return err
				}
			}
			a.bytes.Add(uint64(data - off))
			read += data - off
			off = data
			continue
		}
		hole, err := unix.Seek(fd, off, unix.SEEK_HOLE)
		if err != nil || hole > size {
			hole = size
		}
		n, err := a.saveRegion(ctx, job, groups, io.NewSectionReader(src, off, hole-off), contents)
		read += n
		if err != nil {
			return err
		}
		off = hole
	}
	var after unix.Stat_t
	if err := unix.Fstat(fd, &after); err != nil {
		return &readError{err}
	}
	a.files.Add(1)
	if len(groups) == 0 {
		// Every target that needed the file failed meanwhile; the
		// others reuse their parents' records.
		a.bytes.Add(uint64(size))
		job.out = a.record(job, nil)
		return nil
	}
	job.node.Size = uint64(read)
	job.out = a.record(job, contents)
	if after.Size != size || after.Mtim != st.Mtim || read != size {
		// Keep what was read, but say so.
		a.report(job.path, ErrChanged)
	}
	return nil
}

// saveRegion reads one data region once and cuts it with each group's
// chunker, appending to contents[group]. It returns the bytes read.
//
// A region of at most the largest Max is read whole and cut in memory
// (Cut gives the streaming boundaries) in a buffer the size of the region;
// a longer one is streamed through a chunker.Multi, which feeds all the
// groups' chunkers from one buffer of the largest Max plus a block.
func (a *archiver) saveRegion(ctx context.Context, job *fileJob, groups []*seedGroup, sr *io.SectionReader, contents [][]repo.ID) (int64, error) {
	n := sr.Size()
	if n <= int64(a.maxChunk) {
		pool := &a.smallBufs
		if n > int64(a.minChunk) {
			pool = &a.midBufs
		}
		bp := pool.Get().(*[]byte)
		defer pool.Put(bp)
		if int64(cap(*bp)) < n {
			*bp = make([]byte, (n+1<<20-1)&^(1<<20-1)) // whole MiBs, for reuse
		}
		data := (*bp)[:n]
		if _, err := sr.ReadAt(data, 0); err != nil {
			return 0, &readError{err}
		}
		a.bytes.Add(uint64(n))
		for _, g := range groups {
			for rest := data; len(rest) > 0; {
				k := chunker.Cut(g.table, g.cp, rest)
				if err := a.saveChunk(ctx, g, job, rest[:k], &contents[g.idx]); err != nil {
					return n, err
				}
				rest = rest[k:]
			}
		}
		return n, nil
	}
	// Streaming needs a buffer of Max plus a block; GOMAXPROCS streams
	// keep the cores busy, more would only hold memory.
	select {
	case a.bigSlots <- struct{}{}:
	case <-ctx.Done():
		return 0, context.Cause(ctx)
	}
	defer func() { <-a.bigSlots }()
	bufp := a.bufs.Get().(*[]byte)
	defer a.bufs.Put(bufp)
	tables := make([]*chunker.Table, len(groups))
	params := make([]chunker.Params, len(groups))
	for i, g := range groups {
		tables[i], params[i] = g.table, g.cp
	}
	m := chunker.NewMulti(tables, params, sr, *bufp)
	var read int64
	for {
		gi, chunk, err := m.Next()
		if err == io.EOF {
			return read, nil
		}
		if err != nil {
			return read, &readError{err}
		}
		if err := a.saveChunk(ctx, groups[gi], job, chunk, &contents[groups[gi].idx]); err != nil {
			return read, err
		}
		if gi == 0 { // the first group's chunks cover the region once
			read += int64(len(chunk))
			a.bytes.Add(uint64(len(chunk)))
		}
	}
}

// saveChunk hashes chunk once and saves it in every live target of group g
// that needs the file, appending its id to content. When several targets
// lack the blob it is compressed once per compression setting and sealed
// for each.
func (a *archiver) saveChunk(ctx context.Context, g *seedGroup, job *fileJob, chunk []byte, content *[]repo.ID) error {
	if !a.anyReading(g, job) {
		return nil // nobody left to record it
	}
	id := repo.Hash(chunk)
	var lack [4]*target
	save := lack[:0]
	for _, t := range g.targets {
		if !job.reuse[t.idx] && !t.failed.Load() && !t.Repo.HasBlob(id) {
			save = append(save, t)
		}
	}
	var encs encodings
	defer encs.release(&a.encBufs)
	for _, t := range save {
		var known bool
		var err error
		if len(save) == 1 {
			known, err = t.Repo.SaveBlob(t.ctx, repo.DataBlob, id, chunk)
		} else {
			known, err = t.Repo.SaveEncoded(t.ctx, repo.DataBlob, id, encs.get(&a.encBufs, t.Repo, chunk))
		}
		if err != nil {
			if err := a.repoErr(ctx, t, err); err != nil {
				return err
			}
			continue
		}
		if !known {
			t.newBytes.Add(uint64(len(chunk)))
		}
	}
	*content = append(*content, id)
	return nil
}

// encodings holds one chunk encoded for each compression setting asked
// for (there are two, "zstd" and "none"), in buffers from a pool.
type encodings struct {
	n    int
	bufs [2]*[]byte
	blob [2]repo.EncodedBlob
}

// get returns the chunk encoded for r's compression setting, encoding it
// the first time that setting is asked for.
func (es *encodings) get(pool *sync.Pool, r *repo.Repository, chunk []byte) repo.EncodedBlob {
	c := r.Settings().Compression
	for i := range es.n {
		if es.blob[i].Compression() == c {
			return es.blob[i]
		}
	}
	bp := pool.Get().(*[]byte)
	es.bufs[es.n], es.blob[es.n] = bp, r.EncodeBlob(chunk, *bp)
	es.n++
	return es.blob[es.n-1]
}

// release returns the buffers to the pool, grown as encoding made them.
func (es *encodings) release(pool *sync.Pool) {
	for i := range es.n {
		*es.bufs[i] = es.blob[i].Bytes()[:0]
		pool.Put(es.bufs[i])
	}
}

// anyReading reports whether a live target of g needs the file's content.
func (a *archiver) anyReading(g *seedGroup, job *fileJob) bool {
	for _, t := range g.targets {
		if !job.reuse[t.idx] && !t.failed.Load() {
			return true
		}
	}
	return false
}

// zeroChunks appends to content the chunk list of n zero bytes (a hole)
// as group g cuts it, saving each zero blob in the targets that lack it.
func (a *archiver) zeroChunks(ctx context.Context, g *seedGroup, job *fileJob, n int64, content *[]repo.ID) error {
	for n > 0 {
		l := int(min(n, int64(g.cp.Max)))
		id := repo.ZeroID(l)
		for _, t := range g.targets {
			if job.reuse[t.idx] || t.failed.Load() || t.Repo.HasBlob(id) {
				continue
			}
			if _, err := t.Repo.SaveBlob(t.ctx, repo.DataBlob, id, repo.Zeros(l)); err != nil {
				if err := a.repoErr(ctx, t, err); err != nil {
					return err
				}
			}
		}
		*content = append(*content, id)
		n -= int64(l)
	}
	return nil
}
