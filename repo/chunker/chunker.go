package chunker

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/bits"
)

// Seed is a repository's chunker seed; it selects the gear table.
type Seed [32]byte

// Params bound the chunk lengths in bytes. Avg is the normal size of
// FastCDC, where the hard mask gives way to the easy one; the mean chunk
// length on random data is somewhat above it (see the package comment).
type Params struct {
	Min int `json:"min"`
	Avg int `json:"avg"`
	Max int `json:"max"`
}

// DefaultParams are the parameters of new repositories (DESIGN.md §3).
var DefaultParams = Params{Min: 512 << 10, Avg: 1 << 20, Max: 8 << 20}

// ErrInvalidParams is wrapped by the errors of Params.Validate.
var ErrInvalidParams = errors.New("chunker: invalid parameters")

const (
	minMin = 64      // smallest Min: below it the gear hash has too short a window
	maxMax = 1 << 30 // largest Max: bounds the buffer a stored config can demand
)

// Validate reports whether p can be used: 64 <= Min < Avg < Max <= 1 GiB and
// Avg a power of two. New and Cut panic on parameters that fail it, so
// parameters read from storage must be validated first.
func (p Params) Validate() error {
	switch {
	case p.Min < minMin:
		return fmt.Errorf("%w: min %d < %d", ErrInvalidParams, p.Min, minMin)
	case p.Avg <= p.Min:
		return fmt.Errorf("%w: avg %d <= min %d", ErrInvalidParams, p.Avg, p.Min)
	case p.Max <= p.Avg:
		return fmt.Errorf("%w: max %d <= avg %d", ErrInvalidParams, p.Max, p.Avg)
	case p.Max > maxMax:
		return fmt.Errorf("%w: max %d > %d", ErrInvalidParams, p.Max, maxMax)
	case p.Avg&(p.Avg-1) != 0:
		return fmt.Errorf("%w: avg %d is not a power of two", ErrInvalidParams, p.Avg)
	}
	return nil
}

// masks returns the hard and easy masks for p (see the package comment).
// p must be valid.
func (p Params) masks() (maskS, maskL uint64) {
	b := bits.TrailingZeros64(uint64(p.Avg))
	maskS = (1<<(b+2) - 1) << (61 - b)
	maskL = (1<<(b-2) - 1) << (65 - b)
	return maskS, maskL
}

func (p Params) mustValidate() {
	if err := p.Validate(); err != nil {
		panic(err)
	}
}

// Table is the per-seed gear table; build it once per repository and share
// it: it is read-only after NewTable, so any number of goroutines may use it.
type Table struct {
	gear [256]uint64
	// gearLS is gear shifted left by one, for rolling two bytes per step.
	gearLS [256]uint64
}

// NewTable derives the gear table of seed: gear[i] is the first 8 bytes,
// little endian, of SHA-256(seed || byte(i)).
func NewTable(seed Seed) *Table {
	t := new(Table)
	var msg [len(seed) + 1]byte
	copy(msg[:], seed[:])
	for i := range t.gear {
		msg[len(seed)] = byte(i)
		sum := sha256.Sum256(msg[:])
		t.gear[i] = binary.LittleEndian.Uint64(sum[:8])
		t.gearLS[i] = t.gear[i] << 1
	}
	return t
}

// search hashes data[from:end] (from >= p.Min, end <= len(data), the
// positions counted from the chunk's start) continuing from fp, the hash of
// data[p.Min:from]. It returns the length of the chunk when a boundary falls
// in that range, else -1 and the hash of data[p.Min:end]. Positions below avg
// use maskS, the others maskL.
func (t *Table) search(data []byte, from, end, avg int, fp, maskS, maskL uint64) (int, uint64) {
	if from < avg {
		n := min(avg, end)
		var k int
		if k, fp = t.roll(data[from:n], fp, maskS); k > 0 {
			return from + k, fp
		}
		from = n
	}
	if from < end {
		var k int
		if k, fp = t.roll(data[from:end], fp, maskL); k > 0 {
			return from + k, fp
		}
	}
	return -1, fp
}

// roll feeds s to the gear hash fp and returns the number of bytes up to and
// including the first one after which fp&mask == 0, or -1 and the final fp.
//
// Two bytes are rolled per step as in FastCDC 2020: (fp<<2)+gearLS[a] is the
// one-byte hash after a shifted left by one, so testing it against mask<<1
// (bit 63 of mask being clear) is the one-byte test; adding gear[b] then
// gives the hash after b. The result is identical to rolling one byte at a
// time.
func (t *Table) roll(s []byte, fp, mask uint64) (int, uint64) {
	g, gl := &t.gear, &t.gearLS // one nil check, outside the loop
	m1 := mask << 1
	i := 0
	// i < len(s)-1 (rather than i+1 < len(s)) lets the compiler prove both
	// indexes in range, so the loop runs without bounds checks.
	for ; i < len(s)-1; i += 2 {
		fp = fp<<2 + gl[s[i]]
		if fp&m1 == 0 {
			return i + 1, 0
		}
		fp += g[s[i+1]]
		if fp&mask == 0 {
			return i + 2, 0
		}
	}
	if i < len(s) { // one byte left: i == len(s)-1
		fp = fp<<1 + g[s[len(s)-1]]
		if fp&mask == 0 {
			return len(s), 0
		}
	}
	return -1, fp
}

// Cut returns the length of the first chunk of data, taking data to be all
// that remains of the stream: the first boundary if there is one within
// data[:p.Max], else min(len(data), p.Max). So Cut(t, p, nil) is 0, and code
// that chunks a stream piecewise must pass at least p.Max bytes to Cut unless
// the stream ends within them (a Chunker does this bookkeeping). Cut panics
// if p is invalid.
func Cut(t *Table, p Params, data []byte) int {
	p.mustValidate()
	n := min(len(data), p.Max)
	if n <= p.Min {
		return n
	}
	maskS, maskL := p.masks()
	if cut, _ := t.search(data, p.Min, n, p.Avg, 0, maskS, maskL); cut > 0 {
		return cut
	}
	return n
}

// readBlock is the largest read a Chunker issues; its buffer holds Max bytes
// plus one block (less when Max is smaller).
const readBlock = 1 << 20

// Chunker splits a stream into chunks. It is not safe for concurrent use;
// reuse one with Reset to keep its buffer.
type Chunker struct {
	t            *Table
	p            Params
	maskS, maskL uint64
	block        int // read size

	rd  io.Reader
	buf []byte // full capacity; the unconsumed data is buf[start:end]
	// start and end bound the buffered data; it begins at a chunk boundary.
	start, end int
	// scanned is how much of buf[start:end] the gear hash has covered
	// (0 before hashing starts, else > p.Min), fp the hash at that point.
	scanned int
	fp      uint64
	// eof is set once rd reported io.EOF; err holds any other read error,
	// returned once the buffered data no longer yields a chunk.
	eof bool
	err error
}

// New returns a Chunker that splits rd with table t and parameters p. If buf
// has a capacity of at least p.Max it is used as the buffer (a capacity of
// p.Max plus 1 MiB avoids extra copying), otherwise New allocates one. New
// panics if p is invalid.
func New(t *Table, p Params, rd io.Reader, buf []byte) *Chunker {
	p.mustValidate()
	if t == nil {
		panic("chunker: nil Table")
	}
	block := min(readBlock, p.Max)
	if cap(buf) < p.Max {
		buf = make([]byte, p.Max+block)
	}
	c := &Chunker{t: t, p: p, block: block, buf: buf[:cap(buf)]}
	c.maskS, c.maskL = p.masks()
	c.Reset(rd)
	return c
}

// Reset discards any buffered data and state and makes c split rd, keeping
// the table, parameters and buffer.
func (c *Chunker) Reset(rd io.Reader) {
	c.rd = rd
	c.start, c.end = 0, 0
	c.scanned, c.fp = 0, 0
	c.eof, c.err = false, nil
}

// Next returns the next chunk. The slice aliases c's buffer and is valid
// only until the next call to Next or Reset; its capacity ends with the
// chunk, so appending to it copies. After the last chunk Next returns
// io.EOF (at once for an empty stream). A read error other than io.EOF is
// returned as soon as the chunks already determined by the data read before
// it are consumed, and again on every later call; the data between the last
// boundary and the error is dropped.
func (c *Chunker) Next() ([]byte, error) {
	for {
		data := c.buf[c.start:c.end]
		n := min(len(data), c.p.Max)
		if from := max(c.scanned, c.p.Min); from < n {
			cut, fp := c.t.search(data, from, n, c.p.Avg, c.fp, c.maskS, c.maskL)
			if cut > 0 {
				return c.emit(cut), nil
			}
			c.scanned, c.fp = n, fp
		}
		switch {
		case len(data) >= c.p.Max:
			return c.emit(c.p.Max), nil
		case c.err != nil:
			return nil, c.err
		case c.eof && len(data) > 0:
			return c.emit(len(data)), nil
		case c.eof:
			return nil, io.EOF
		}
		c.fill()
	}
}

// emit consumes the next n buffered bytes as a chunk.
func (c *Chunker) emit(n int) []byte {
	chunk := c.buf[c.start : c.start+n : c.start+n]
	c.start += n
	c.scanned, c.fp = 0, 0
	if c.start == c.end {
		c.start, c.end = 0, 0
	}
	return chunk
}

// fill reads up to one block after the buffered data, first moving that
// data to the front of the buffer if the block would not fit behind it.
// It is called only with less than p.Max bytes buffered, so the buffer
// always has room for at least one byte.
func (c *Chunker) fill() {
	if len(c.buf)-c.end < c.block && c.start > 0 {
		c.end = copy(c.buf, c.buf[c.start:c.end])
		c.start = 0
	}
	n, err := io.ReadFull(c.rd, c.buf[c.end:min(c.end+c.block, len(c.buf))])
	c.end += n
	switch err {
	case nil:
	case io.EOF, io.ErrUnexpectedEOF:
		c.eof = true
	default:
		c.err = err
	}
}

// MarshalText encodes a seed as 64 hex digits (its form in the config).
func (s Seed) MarshalText() ([]byte, error) {
	return []byte(hex.EncodeToString(s[:])), nil
}

// UnmarshalText decodes 64 hex digits.
func (s *Seed) UnmarshalText(b []byte) error {
	if len(b) != 64 {
		return fmt.Errorf("chunker seed: want 64 hex digits, got %d", len(b))
	}
	_, err := hex.Decode(s[:], b)
	return err
}
