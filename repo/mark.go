package repo

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cairn-backup/cairn/repo/backend"
)

// Prune's marks (docs/FORMAT.md §15). A mark object records packs that a
// prune found unreferenced and when; a later prune deletes them once the
// mark is older than its grace period, if they are still unreferenced.
// Marks only ever allow a deletion later, never cause one on their own, so
// a mark that is lost or does not open costs only time.

const kindMark kind = "cairn mark"

// MarkedPack is one pack of a mark object.
type MarkedPack struct {
	ID   ID        `json:"id"`
	Time time.Time `json:"time"` // when a prune first found it unreferenced
	Size int64     `json:"size"` // stored size, for reports
}

// Marks is the content of one mark object: every pack marked when it was
// written (a prune carries the earlier marks over, with their times).
type Marks struct {
	Time  time.Time    `json:"time"` // when the object was written
	Host  string       `json:"host"`
	Packs []MarkedPack `json:"packs"`

	Name ID `json:"-"` // object name; zero for one not saved
}

// SaveMarks writes m as a new mark object and returns its name.
func (r *Repository) SaveMarks(ctx context.Context, m *Marks) (ID, error) {
	m.Time = m.Time.UTC()
	for i := range m.Packs {
		m.Packs[i].Time = m.Packs[i].Time.UTC()
	}
	plain, err := json.Marshal(m)
	if err != nil {
		return ID{}, err
	}
	id, err := saveObject(ctx, r.be, backend.MarkFile, r.data.seal(nil, plain, kindMark))
	if err != nil {
		return ID{}, fmt.Errorf("save marks: %w", err)
	}
	m.Name = id
	return id, nil
}

// LoadMarks lists and loads every mark object. One that is not named by
// the hash of its bytes, does not open or does not parse is returned in
// bad (to be removed), not as an error: forgetting a mark only delays a
// deletion.
func (r *Repository) LoadMarks(ctx context.Context) (marks []*Marks, bad []ID, err error) {
	ids, err := r.listIDs(ctx, backend.MarkFile)
	if err != nil {
		return nil, nil, err
	}
	for _, id := range ids {
		data, err := loadObject(ctx, r.be, backend.MarkFile, id)
		if errors.Is(err, backend.ErrNotExist) {
			continue // removed by another prune after listing
		}
		var cerr *CorruptError
		if errors.As(err, &cerr) {
			bad = append(bad, id)
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("load marks/%s: %w", id, err)
		}
		var m Marks
		plain, err := r.data.open(nil, data, kindMark)
		if err == nil {
			err = json.Unmarshal(plain, &m)
		}
		if err != nil {
			bad = append(bad, id)
			continue
		}
		m.Name = id
		marks = append(marks, &m)
	}
	return marks, bad, nil
}

// RemoveMarks removes one mark object; a missing one is success.
func (r *Repository) RemoveMarks(ctx context.Context, id ID) error {
	return r.be.Remove(ctx, backend.Handle{Type: backend.MarkFile, Name: id.String()})
}

// WriteIndexFiles writes packs as new index files of at most perFile
// packs each and returns their names, without adding them to the
// in-memory index (prune writes a compacted index that names what the
// index already holds).
func (r *Repository) WriteIndexFiles(ctx context.Context, packs []IndexPack, perFile int) ([]ID, error) {
	perFile = max(perFile, 1)
	var ids []ID
	for len(packs) > 0 {
		n := min(perFile, len(packs))
		id, err := r.saveIndex(ctx, packs[:n])
		if err != nil {
			return ids, err
		}
		ids = append(ids, id)
		packs = packs[n:]
	}
	return ids, nil
}

// IndexFiles lists the names of the index files in storage.
func (r *Repository) IndexFiles(ctx context.Context) ([]ID, error) {
	return r.listIDs(ctx, backend.IndexFile)
}

// Repacker copies stored blobs, as they are, out of old packs into new
// packs of about the repository's pack size, one blob type per pack. The
// blobs are sealed the same wherever they sit, so nothing is decrypted
// for good or compressed again; each is verified before it is copied, so
// a damaged blob is reported (a *CorruptError) rather than carried over.
// The new packs are not indexed: the caller writes the index naming them.
// A Repacker is used by one goroutine.
type Repacker struct {
	r    *Repository
	open map[BlobType]*openPack
	done []IndexPack
}

// NewRepacker returns an empty Repacker writing into r.
func (r *Repository) NewRepacker() *Repacker {
	return &Repacker{r: r, open: make(map[BlobType]*openPack)}
}

// Add copies blobs out of data, the whole stored pack named pack.
func (p *Repacker) Add(ctx context.Context, pack ID, data []byte, blobs []PackBlob) error {
	h := packHandle(pack)
	for _, b := range blobs {
		end := int64(b.Offset) + int64(b.Length)
		if end > int64(len(data)) {
			return &CorruptError{Object: h.String(), Blob: b.ID, Err: errors.New("blob lies past the end of the pack")}
		}
		stored := data[b.Offset:end]
		if _, err := p.r.decodeBlob(stored, b.ID, int(b.RawLength)); err != nil {
			return &CorruptError{Object: h.String(), Blob: b.ID, Err: err}
		}
		op := p.open[b.Type]
		if op == nil {
			op = &openPack{}
			p.open[b.Type] = op
		}
		nb := b
		nb.Offset = uint32(len(op.buf))
		op.buf = append(op.buf, stored...)
		op.blobs = append(op.blobs, nb)
		if len(op.buf) >= p.r.settings.PackSize {
			delete(p.open, b.Type)
			if err := p.upload(ctx, op); err != nil {
				return err
			}
		}
	}
	return nil
}

// Finish uploads the packs still open and returns every pack written.
func (p *Repacker) Finish(ctx context.Context) ([]IndexPack, error) {
	for _, t := range []BlobType{DataBlob, TreeBlob} {
		if op := p.open[t]; op != nil {
			delete(p.open, t)
			if err := p.upload(ctx, op); err != nil {
				return p.done, err
			}
		}
	}
	return p.done, nil
}

func (p *Repacker) upload(ctx context.Context, op *openPack) error {
	hdr := p.r.data.seal(nil, encodePackHeader(op.blobs), kindHeader)
	buf := append(op.buf, hdr...)
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(hdr)))
	id, err := saveObject(ctx, p.r.be, backend.PackFile, buf)
	if err != nil {
		return fmt.Errorf("save pack: %w", err)
	}
	p.done = append(p.done, IndexPack{ID: id, Blobs: op.blobs})
	return nil
}
