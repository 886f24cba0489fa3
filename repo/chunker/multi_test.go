package chunker

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"testing"
	"testing/iotest"
)

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

// multiAll drains m and returns each splitter's chunk lengths, checking
// that every splitter's chunks concatenate to want.
func multiAll(tb testing.TB, m *Multi, splitters int, want []byte) [][]int {
	tb.Helper()
	lens := make([][]int, splitters)
	offs := make([]int, splitters)
	for {
		i, chunk, err := m.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			tb.Fatalf("Next: %v", err)
		}
		if len(chunk) == 0 || cap(chunk) != len(chunk) {
			tb.Fatalf("splitter %d: chunk of length %d, capacity %d", i, len(chunk), cap(chunk))
		}
		if !bytes.Equal(chunk, want[offs[i]:min(offs[i]+len(chunk), len(want))]) {
			tb.Fatalf("splitter %d: chunk at offset %d differs from the input", i, offs[i])
		}
		offs[i] += len(chunk)
		lens[i] = append(lens[i], len(chunk))
	}
	for i, off := range offs {
		if off != len(want) {
			tb.Fatalf("splitter %d: chunks cover %d bytes, input has %d", i, off, len(want))
		}
	}
	return lens
}

func otherSeed(b byte) Seed {
	s := testSeed
	s[31] ^= b
	return s
}

// TestMultiMatchesChunker: each splitter of a Multi cuts exactly where a
// Chunker with its table and parameters does, and the stream is read once.
func TestMultiMatchesChunker(t *testing.T) {
	tables := []*Table{NewTable(testSeed), NewTable(otherSeed(1)), NewTable(otherSeed(2)), NewTable(testSeed)}
	params := []Params{smallParams, smallParams, {Min: 64, Avg: 128, Max: 200}, {Min: 100, Avg: 512, Max: 4096}}
	data := randData(256<<10, 8)
	for k := 1; k <= len(tables); k++ {
		want := make([][]int, k)
		for i := range k {
			want[i] = cutAll(tables[i], params[i], data)
		}
		for name, rd := range map[string]func() io.Reader{
			"bytes.Reader":  func() io.Reader { return bytes.NewReader(data) },
			"OneByteReader": func() io.Reader { return iotest.OneByteReader(bytes.NewReader(data)) },
			"HalfReader":    func() io.Reader { return iotest.HalfReader(bytes.NewReader(data)) },
			"DataErrReader": func() io.Reader { return iotest.DataErrReader(bytes.NewReader(data)) },
			"shortReader":   func() io.Reader { return &shortReader{bytes.NewReader(data), rand.New(rand.NewPCG(1, 2))} },
		} {
			cr := &countingReader{r: rd()}
			m := NewMulti(tables[:k], params[:k], cr, nil)
			got := multiAll(t, m, k, data)
			for i := range k {
				if !slices.Equal(got[i], want[i]) {
					t.Fatalf("%d splitters, %s: splitter %d cuts differ from Cut's", k, name, i)
				}
			}
			if cr.n != int64(len(data)) {
				t.Fatalf("%d splitters, %s: read %d bytes of %d", k, name, cr.n, len(data))
			}
			// Reset reuses the buffer for a second stream.
			m.Reset(bytes.NewReader(data[:1000]))
			got = multiAll(t, m, k, data[:1000])
			for i := range k {
				if !slices.Equal(got[i], cutAll(tables[i], params[i], data[:1000])) {
					t.Fatalf("after Reset: splitter %d cuts differ", i)
				}
			}
		}
	}
}

// TestMultiSmallBuffer: a buffer of exactly the largest Max forces moves
// before nearly every read; the cuts stay the same.
func TestMultiSmallBuffer(t *testing.T) {
	tables := []*Table{NewTable(testSeed), NewTable(otherSeed(1))}
	params := []Params{smallParams, {Min: 64, Avg: 128, Max: 200}}
	data := randData(64<<10, 9)
	buf := make([]byte, 0, smallParams.Max)
	m := NewMulti(tables, params, iotest.HalfReader(bytes.NewReader(data)), buf)
	got := multiAll(t, m, 2, data)
	for i := range tables {
		if !slices.Equal(got[i], cutAll(tables[i], params[i], data)) {
			t.Fatalf("splitter %d cuts differ", i)
		}
	}
	if &m.buf[0] != &buf[:1][0] {
		t.Errorf("NewMulti did not use the caller's buffer")
	}
}

func TestMultiDefaultParams(t *testing.T) {
	data := data64()[:40<<20]
	tables := []*Table{NewTable(testSeed), NewTable(otherSeed(1))}
	params := []Params{DefaultParams, DefaultParams}
	got := multiAll(t, NewMulti(tables, params, bytes.NewReader(data), nil), 2, data)
	for i := range tables {
		if !slices.Equal(got[i], cutAll(tables[i], params[i], data)) {
			t.Fatalf("splitter %d cuts differ", i)
		}
	}
}

func TestMultiEmpty(t *testing.T) {
	m := NewMulti([]*Table{NewTable(testSeed), NewTable(otherSeed(1))}, []Params{smallParams, smallParams}, bytes.NewReader(nil), nil)
	for range 2 {
		if _, chunk, err := m.Next(); err != io.EOF || chunk != nil {
			t.Fatalf("Next = %q, %v; want io.EOF", chunk, err)
		}
	}
}

func TestMultiReadError(t *testing.T) {
	tables := []*Table{NewTable(testSeed), NewTable(otherSeed(1))}
	params := []Params{smallParams, smallParams}
	data := randData(64<<10, 7)
	errBoom := errors.New("boom")
	m := NewMulti(tables, params, io.MultiReader(bytes.NewReader(data[:10<<10]), iotest.ErrReader(errBoom)), nil)
	offs := make([]int, 2)
	for {
		i, chunk, err := m.Next()
		if err != nil {
			if !errors.Is(err, errBoom) {
				t.Fatalf("Next = %v, want %v", err, errBoom)
			}
			break
		}
		offs[i] += len(chunk)
	}
	// Every chunk that ends before the error came out, and no more.
	for i, tab := range tables {
		end := 0
		for _, n := range cutAll(tab, smallParams, data) {
			if end+n > 10<<10 {
				break
			}
			end += n
		}
		if offs[i] != end {
			t.Errorf("splitter %d: chunks up to %d before the error, want %d", i, offs[i], end)
		}
	}
	if _, _, err := m.Next(); !errors.Is(err, errBoom) {
		t.Errorf("second Next after the error = %v", err)
	}
}

// BenchmarkMulti splits 64 MiB for two seeds at once; compare with twice
// BenchmarkChunker.
func BenchmarkMulti(b *testing.B) {
	data := data64()
	rd := bytes.NewReader(data)
	m := NewMulti([]*Table{NewTable(testSeed), NewTable(otherSeed(1))}, []Params{DefaultParams, DefaultParams}, rd, nil)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		rd.Reset(data)
		m.Reset(rd)
		for {
			if _, _, err := m.Next(); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
	}
}
