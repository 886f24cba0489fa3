package repo

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
)

// Location says where a blob is stored.
type Location struct {
	Pack      ID
	Type      BlobType
	Offset    uint32
	Length    uint32 // stored length
	RawLength uint32 // plaintext length
}

type indexEntry struct {
	pack      uint32 // position in Index.packs
	offset    uint32
	length    uint32
	rawLength uint32
	typ       BlobType
}

// Index maps blob IDs to their locations. It is safe for concurrent use.
type Index struct {
	mu      sync.RWMutex // guards the fields below
	packs   []ID
	packPos map[ID]uint32
	blobs   map[ID]indexEntry
}

func newIndex() *Index {
	return &Index{packPos: make(map[ID]uint32), blobs: make(map[ID]indexEntry)}
}

// Lookup returns where id is stored.
func (x *Index) Lookup(id ID) (Location, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	e, ok := x.blobs[id]
	if !ok {
		return Location{}, false
	}
	return Location{Pack: x.packs[e.pack], Type: e.typ, Offset: e.offset, Length: e.length, RawLength: e.rawLength}, true
}

// Has reports whether id is indexed.
func (x *Index) Has(id ID) bool {
	x.mu.RLock()
	_, ok := x.blobs[id]
	x.mu.RUnlock()
	return ok
}

// Len returns the number of blobs.
func (x *Index) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.blobs)
}

// addPack records the blobs of one pack. A blob already indexed keeps its
// first location.
func (x *Index) addPack(pack ID, blobs []PackBlob) {
	x.mu.Lock()
	defer x.mu.Unlock()
	pos, ok := x.packPos[pack]
	if !ok {
		pos = uint32(len(x.packs))
		x.packs = append(x.packs, pack)
		x.packPos[pack] = pos
	}
	for _, b := range blobs {
		if _, ok := x.blobs[b.ID]; ok {
			continue
		}
		x.blobs[b.ID] = indexEntry{pack: pos, offset: b.Offset, length: b.Length, rawLength: b.RawLength, typ: b.Type}
	}
}

// Each calls fn for every blob, in no particular order, under the read
// lock: fn must not call back into the index.
func (x *Index) Each(fn func(id ID, loc Location)) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	for id, e := range x.blobs {
		fn(id, Location{Pack: x.packs[e.pack], Type: e.typ, Offset: e.offset, Length: e.length, RawLength: e.rawLength})
	}
}

// StoredBytes returns the stored size of every indexed blob.
func (x *Index) StoredBytes() uint64 {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var n uint64
	for _, e := range x.blobs {
		n += uint64(e.length)
	}
	return n
}

// Packs returns the IDs of all indexed packs.
func (x *Index) Packs() []ID {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return append([]ID(nil), x.packs...)
}

// An index file's plaintext (sealed as a whole) is
//
//	"CIDX" | version (1) | pack count (4, LE) | pack*
//	pack  = pack id (32) | blob count (4, LE) | blob*
//	blob  = type (1) | offset (4) | length (4) | raw length (4) | id (32)
const (
	indexMagic        = "CIDX"
	indexVersion      = 1
	indexBlobSize     = 1 + 4 + 4 + 4 + 32
	maxIndexFileBlobs = 1 << 20
)

// IndexPack is one pack's entries in an index file.
type IndexPack struct {
	ID    ID
	Blobs []PackBlob
}

func encodeIndex(packs []IndexPack) []byte {
	n := 0
	for _, p := range packs {
		n += 36 + len(p.Blobs)*indexBlobSize
	}
	buf := make([]byte, 0, 9+n)
	buf = append(buf, indexMagic...)
	buf = append(buf, indexVersion)
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(packs)))
	for _, p := range packs {
		buf = append(buf, p.ID[:]...)
		buf = binary.LittleEndian.AppendUint32(buf, uint32(len(p.Blobs)))
		for _, b := range p.Blobs {
			buf = append(buf, byte(b.Type))
			buf = binary.LittleEndian.AppendUint32(buf, b.Offset)
			buf = binary.LittleEndian.AppendUint32(buf, b.Length)
			buf = binary.LittleEndian.AppendUint32(buf, b.RawLength)
			buf = append(buf, b.ID[:]...)
		}
	}
	return buf
}

func decodeIndex(buf []byte) ([]IndexPack, error) {
	if len(buf) < 9 || string(buf[:4]) != indexMagic {
		return nil, errors.New("not an index")
	}
	if buf[4] != indexVersion {
		return nil, fmt.Errorf("index version %d unknown", buf[4])
	}
	np := binary.LittleEndian.Uint32(buf[5:])
	buf = buf[9:]
	if uint64(np)*36 > uint64(len(buf)) {
		return nil, errors.New("index truncated")
	}
	packs := make([]IndexPack, 0, np)
	for i := uint32(0); i < np; i++ {
		if len(buf) < 36 {
			return nil, errors.New("index truncated")
		}
		var p IndexPack
		copy(p.ID[:], buf)
		nb := binary.LittleEndian.Uint32(buf[32:])
		buf = buf[36:]
		if nb > maxIndexFileBlobs || uint64(nb)*indexBlobSize > uint64(len(buf)) {
			return nil, errors.New("index truncated")
		}
		p.Blobs = make([]PackBlob, nb)
		for j := range p.Blobs {
			b := &p.Blobs[j]
			b.Type = BlobType(buf[0])
			b.Offset = binary.LittleEndian.Uint32(buf[1:])
			b.Length = binary.LittleEndian.Uint32(buf[5:])
			b.RawLength = binary.LittleEndian.Uint32(buf[9:])
			copy(b.ID[:], buf[13:45])
			if b.Type != DataBlob && b.Type != TreeBlob {
				return nil, fmt.Errorf("blob %s has unknown type %d", b.ID.Short(), b.Type)
			}
			buf = buf[indexBlobSize:]
		}
		packs = append(packs, p)
	}
	if len(buf) != 0 {
		return nil, errors.New("trailing bytes after index")
	}
	return packs, nil
}
