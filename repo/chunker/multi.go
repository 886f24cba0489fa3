package chunker

import (
	"io"
)

// Multi splits one stream with several tables (and parameters) at once,
// reading every byte of it once: a backup into repositories of different
// seeds must not read a source file once per seed. All splitters cut in one
// shared buffer; each keeps its own position, hash state and boundaries,
// exactly those a Chunker with the same table and parameters finds (the
// golden boundaries of the package comment).
//
// The buffer is refilled only when no splitter can determine another chunk
// from what it holds, so each splitter then holds less than its Max since
// its last boundary, and the buffer keeps at most the largest Max plus a
// read block. Like a Chunker, Multi hashes every byte at most once per
// splitter and is meant to be reused (Reset) by one goroutine.
type Multi struct {
	cuts  []split
	block int

	rd  io.Reader
	buf []byte // full capacity; data lies in buf[:end], splitters at or after lo
	end int
	eof bool
	err error
}

// split is one splitter's state: the chunk it is cutting starts at pos in
// Multi.buf; scanned and fp are as in Chunker, relative to pos.
type split struct {
	t            *Table
	p            Params
	maskS, maskL uint64
	pos          int
	scanned      int
	fp           uint64
}

// NewMulti returns a Multi that splits rd once for each table, tables[i]
// with params[i]. If buf has a capacity of at least the largest Max it is
// the buffer (the largest Max plus 1 MiB avoids extra copying), otherwise
// NewMulti allocates one. NewMulti panics if the slices differ in length or
// are empty, or a Params is invalid.
func NewMulti(tables []*Table, params []Params, rd io.Reader, buf []byte) *Multi {
	if len(tables) != len(params) || len(tables) == 0 {
		panic("chunker: NewMulti needs one Params per Table")
	}
	m := &Multi{cuts: make([]split, len(tables))}
	maxMax := 0
	for i, t := range tables {
		p := params[i]
		p.mustValidate()
		if t == nil {
			panic("chunker: nil Table")
		}
		s := &m.cuts[i]
		s.t, s.p = t, p
		s.maskS, s.maskL = p.masks()
		maxMax = max(maxMax, p.Max)
	}
	m.block = min(readBlock, maxMax)
	if cap(buf) < maxMax {
		buf = make([]byte, maxMax+m.block)
	}
	m.buf = buf[:cap(buf)]
	m.Reset(rd)
	return m
}

// Reset discards any buffered data and state and makes m split rd, keeping
// the tables, parameters and buffer.
func (m *Multi) Reset(rd io.Reader) {
	m.rd = rd
	m.end = 0
	m.eof, m.err = false, nil
	for i := range m.cuts {
		s := &m.cuts[i]
		s.pos, s.scanned, s.fp = 0, 0, 0
	}
}

// Next returns the next chunk of one splitter and that splitter's index.
// The chunks of each splitter come in stream order and are those a Chunker
// with its table and parameters returns; between splitters the order is
// unspecified. The slice aliases m's buffer and is valid only until the next
// call to Next or Reset; its capacity ends with the chunk. After every
// splitter's last chunk Next returns io.EOF. A read error other than io.EOF
// is returned, as by a Chunker, once the chunks that the data read before it
// determine are consumed, and again on every later call.
func (m *Multi) Next() (int, []byte, error) {
	for {
		done := true
		for i := range m.cuts {
			s := &m.cuts[i]
			data := m.buf[s.pos:m.end]
			n := min(len(data), s.p.Max)
			if from := max(s.scanned, s.p.Min); from < n {
				cut, fp := s.t.search(data, from, n, s.p.Avg, s.fp, s.maskS, s.maskL)
				if cut > 0 {
					return i, m.emit(s, cut), nil
				}
				s.scanned, s.fp = n, fp
			}
			switch {
			case len(data) >= s.p.Max:
				return i, m.emit(s, s.p.Max), nil
			case m.eof && m.err == nil && len(data) > 0:
				return i, m.emit(s, len(data)), nil
			}
			done = done && len(data) == 0
		}
		switch {
		case m.err != nil:
			return -1, nil, m.err
		case m.eof && done:
			return -1, nil, io.EOF
		}
		m.fill()
	}
}

// emit consumes the next n bytes of s as a chunk.
func (m *Multi) emit(s *split, n int) []byte {
	chunk := m.buf[s.pos : s.pos+n : s.pos+n]
	s.pos += n
	s.scanned, s.fp = 0, 0
	return chunk
}

// fill reads up to one block after the buffered data, first moving the
// data some splitter still needs to the front if the block would not fit.
// It is called only when every splitter holds less than its Max, so the
// buffer always has room for at least one byte.
func (m *Multi) fill() {
	if len(m.buf)-m.end < m.block {
		lo := m.end
		for i := range m.cuts {
			lo = min(lo, m.cuts[i].pos)
		}
		if lo > 0 {
			m.end = copy(m.buf, m.buf[lo:m.end])
			for i := range m.cuts {
				m.cuts[i].pos -= lo
			}
		}
	}
	n, err := io.ReadFull(m.rd, m.buf[m.end:min(m.end+m.block, len(m.buf))])
	m.end += n
	switch err {
	case nil:
	case io.EOF, io.ErrUnexpectedEOF:
		m.eof = true
	default:
		m.err = err
	}
}
