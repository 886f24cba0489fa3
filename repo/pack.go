package repo

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// A pack is the concatenation of stored blobs followed by its sealed
// header and the header's sealed length as a little-endian uint32:
//
//	blob_1 … blob_n | seal(header) | uint32(len(seal(header)))
//
// The header plaintext is a version byte (1) followed by one 41-byte entry
// per blob, in pack order: type (1) | stored length (4, LE) | raw length
// (4, LE) | id (32). Offsets are implied by the order.

const (
	packHeaderVersion = 1
	packEntrySize     = 1 + 4 + 4 + 32
)

// PackBlob is one blob of a pack as its header lists it.
type PackBlob struct {
	Type      BlobType
	ID        ID
	Offset    uint32
	Length    uint32 // stored (sealed) length
	RawLength uint32 // plaintext length
}

func encodePackHeader(blobs []PackBlob) []byte {
	buf := make([]byte, 1, 1+len(blobs)*packEntrySize)
	buf[0] = packHeaderVersion
	for _, b := range blobs {
		buf = append(buf, byte(b.Type))
		buf = binary.LittleEndian.AppendUint32(buf, b.Length)
		buf = binary.LittleEndian.AppendUint32(buf, b.RawLength)
		buf = append(buf, b.ID[:]...)
	}
	return buf
}

// decodePackHeader parses a header plaintext. dataLen is the number of
// bytes before the header; the entries must cover exactly that.
func decodePackHeader(plain []byte, dataLen int64) ([]PackBlob, error) {
	if len(plain) < 1 || plain[0] != packHeaderVersion {
		return nil, errors.New("unknown pack header version")
	}
	plain = plain[1:]
	if len(plain)%packEntrySize != 0 {
		return nil, fmt.Errorf("pack header of %d bytes is not a whole number of entries", len(plain))
	}
	blobs := make([]PackBlob, 0, len(plain)/packEntrySize)
	var off int64
	for len(plain) > 0 {
		b := PackBlob{
			Type:      BlobType(plain[0]),
			Length:    binary.LittleEndian.Uint32(plain[1:]),
			RawLength: binary.LittleEndian.Uint32(plain[5:]),
			Offset:    uint32(off),
		}
		copy(b.ID[:], plain[9:41])
		if b.Type != DataBlob && b.Type != TreeBlob {
			return nil, fmt.Errorf("blob %s has unknown type %d", b.ID.Short(), b.Type)
		}
		if b.Length < Overhead {
			return nil, fmt.Errorf("blob %s has impossible length %d", b.ID.Short(), b.Length)
		}
		off += int64(b.Length)
		if off > dataLen || off > 1<<32-1 {
			return nil, fmt.Errorf("pack header lists more data than the pack holds")
		}
		blobs = append(blobs, b)
		plain = plain[packEntrySize:]
	}
	if off != dataLen {
		return nil, fmt.Errorf("pack header lists %d bytes of blobs, pack holds %d", off, dataLen)
	}
	return blobs, nil
}

// ParsePack reads the header at the end of a whole pack and returns its
// blobs. It verifies the header, not the blobs.
func (r *Repository) ParsePack(data []byte) ([]PackBlob, error) {
	if len(data) < 4 {
		return nil, errors.New("pack too short")
	}
	hlen := int64(binary.LittleEndian.Uint32(data[len(data)-4:]))
	if hlen < Overhead || hlen > int64(len(data))-4 {
		return nil, fmt.Errorf("pack header length %d impossible for a pack of %d bytes", hlen, len(data))
	}
	start := int64(len(data)) - 4 - hlen
	plain, err := r.data.open(nil, data[start:len(data)-4], kindHeader)
	if err != nil {
		return nil, fmt.Errorf("pack header: %w", err)
	}
	return decodePackHeader(plain, start)
}
