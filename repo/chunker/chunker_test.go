package chunker

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"testing/iotest"
)

// testSeed is the chunker seed of the golden tests: bytes 0x00, 0x01, …, 0x1f.
var testSeed = func() (s Seed) {
	for i := range s {
		s[i] = byte(i)
	}
	return s
}()

// smallParams keep inputs small in the stream and fuzz tests.
var smallParams = Params{Min: 64, Avg: 256, Max: 1024}

// randData returns n pseudo-random bytes from a ChaCha8 source seeded with
// seed; the stream is fixed by math/rand/v2's compatibility promise.
func randData(n int, seed byte) []byte {
	var s [32]byte
	s[0] = seed
	b := make([]byte, n)
	rand.NewChaCha8(s).Read(b) // never fails
	return b
}

// data64 is 64 MiB of randData(…, 1), shared by the tests and benchmarks.
var data64 = sync.OnceValue(func() []byte { return randData(64<<20, 1) })

// cutAll splits data by calling Cut repeatedly, the reference for Chunker.
func cutAll(t *Table, p Params, data []byte) []int {
	var lens []int
	for len(data) > 0 {
		n := Cut(t, p, data)
		lens = append(lens, n)
		data = data[n:]
	}
	return lens
}

// chunkAll drains c and returns the chunk lengths, checking that the chunks
// concatenate to want.
func chunkAll(tb testing.TB, c *Chunker, want []byte) []int {
	tb.Helper()
	var lens []int
	off := 0
	for {
		chunk, err := c.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			tb.Fatalf("Next after %d chunks: %v", len(lens), err)
		}
		if len(chunk) == 0 {
			tb.Fatalf("chunk %d is empty", len(lens))
		}
		if !bytes.Equal(chunk, want[off:min(off+len(chunk), len(want))]) {
			tb.Fatalf("chunk %d (offset %d, length %d) differs from the input", len(lens), off, len(chunk))
		}
		off += len(chunk)
		lens = append(lens, len(chunk))
	}
	if off != len(want) {
		tb.Fatalf("chunks cover %d bytes, input has %d", off, len(want))
	}
	return lens
}

// checkBounds checks that every chunk but the last lies in [Min, Max] and
// that the last is not longer than Max.
func checkBounds(tb testing.TB, p Params, lens []int) {
	tb.Helper()
	for i, n := range lens {
		if n > p.Max || (n < p.Min && i != len(lens)-1) || n <= 0 {
			tb.Fatalf("chunk %d of %d has length %d, outside [%d, %d]", i, len(lens), n, p.Min, p.Max)
		}
	}
}

func TestParamsValidate(t *testing.T) {
	for _, tc := range []struct {
		p  Params
		ok bool
	}{
		{DefaultParams, true},
		{smallParams, true},
		{Params{Min: 64, Avg: 128, Max: 129}, true},
		{Params{Min: 1000, Avg: 1024, Max: 1 << 30}, true},
		{Params{}, false},
		{Params{Min: 63, Avg: 256, Max: 1024}, false},
		{Params{Min: 256, Avg: 256, Max: 1024}, false},
		{Params{Min: 64, Avg: 1024, Max: 1024}, false},
		{Params{Min: 64, Avg: 384, Max: 1024}, false},
		{Params{Min: 64, Avg: 256, Max: 1<<30 + 1}, false},
		{Params{Min: 64, Avg: 256, Max: -1}, false},
	} {
		err := tc.p.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("%+v.Validate() = %v, want ok=%v", tc.p, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidParams) {
			t.Errorf("%+v.Validate() = %v, not ErrInvalidParams", tc.p, err)
		}
	}
}

func TestInvalidParamsPanic(t *testing.T) {
	for name, f := range map[string]func(){
		"New": func() { New(NewTable(testSeed), Params{}, bytes.NewReader(nil), nil) },
		"Cut": func() { Cut(NewTable(testSeed), Params{Min: 64, Avg: 100, Max: 1000}, nil) },
	} {
		func() {
			defer func() {
				if r := recover(); r == nil {
					t.Errorf("%s accepted invalid Params", name)
				}
			}()
			f()
		}()
	}
}

func TestMasks(t *testing.T) {
	maskS, maskL := DefaultParams.masks()
	if maskS != 0x7fff_fe00_0000_0000 || maskL != 0x7fff_e000_0000_0000 {
		t.Errorf("default masks %#x, %#x", maskS, maskL)
	}
	maskS, maskL = smallParams.masks() // Avg 2^8: 10 and 6 bits
	if maskS != 0x7fe0_0000_0000_0000 || maskL != 0x7e00_0000_0000_0000 {
		t.Errorf("small masks %#x, %#x", maskS, maskL)
	}
}

// TestGearTable is a regression guard of the gear derivation documented in
// the package comment (and docs/FORMAT.md): the values below were computed
// once and must never change.
func TestGearTable(t *testing.T) {
	tab := NewTable(testSeed)
	for i, want := range map[int]uint64{
		0:   0x5a73818dcb0d171b,
		1:   0xbc0443216fd9448b,
		255: 0xacaf5963a341b7bd,
	} {
		if got := tab.gear[i]; got != want {
			t.Errorf("gear[%d] = %#016x, want %#016x", i, got, want)
		}
	}
	for i := range 256 {
		sum := sha256.Sum256(append(testSeed[:], byte(i)))
		if want := binary.LittleEndian.Uint64(sum[:]); tab.gear[i] != want || tab.gearLS[i] != want<<1 {
			t.Fatalf("gear[%d] = %#x, gearLS %#x; want %#x", i, tab.gear[i], tab.gearLS[i], want)
		}
	}
}

// TestGolden is the regression guard of the chunk format: the lengths below
// were computed once with this implementation for testSeed, DefaultParams
// and the first 48 MiB of data64 (ChaCha8, seed byte 1) and are hard-coded.
// Any change to them means repositories would cut different boundaries,
// i.e. a format change, so never update them to make the test pass.
func TestGolden(t *testing.T) {
	golden := []int{
		1076781, 1132613, 1084635, 1074772, 802671, 1569914, 1397587, 1091867,
		1142484, 1281553, 1294496, 1132849, 1074111, 1363213, 1378814, 1079326,
		1228904, 1079446, 1066769, 1076709, 1182130, 1847219, 1089925, 797199,
		1057426, 1051204, 1304848, 1131423, 1058086, 1220218, 1065562, 1121813,
		1139316, 1092847, 1152849, 1347122, 1078074, 1384304, 1528857, 1435375,
		1057346, 1319980, 439011,
	}
	data := data64()[:48<<20]
	tab := NewTable(testSeed)
	if got := cutAll(tab, DefaultParams, data); !slices.Equal(got, golden) {
		t.Errorf("Cut lengths\n got %d\nwant %d", got, golden)
	}
	if got := chunkAll(t, New(tab, DefaultParams, bytes.NewReader(data), nil), data); !slices.Equal(got, golden) {
		t.Errorf("Chunker lengths\n got %d\nwant %d", got, golden)
	}

	// The same guard with small parameters, where both masks and the odd
	// and even positions of the two-byte roll are exercised many times, on
	// the first MiB of the same data: 3584 chunks, whose lengths as
	// little-endian uint32s have this SHA-256.
	const goldenSmall = "9a24d1e37acb4dfe1ffcaeb524106bdd6240b7eec6507e03de009eb792b42ed0"
	lens := cutAll(tab, smallParams, data[:1<<20])
	h := sha256.New()
	for _, n := range lens {
		h.Write(binary.LittleEndian.AppendUint32(nil, uint32(n)))
	}
	if got := hex.EncodeToString(h.Sum(nil)); len(lens) != 3584 || got != goldenSmall {
		t.Errorf("small params: %d chunks, lengths hash to %s, want 3584, %s", len(lens), got, goldenSmall)
	}
}

// TestRollOneByte checks the two-byte roll against the one-byte definition
// of the package comment.
func TestRollOneByte(t *testing.T) {
	tab := NewTable(testSeed)
	data := randData(1<<20, 2)
	for _, p := range []Params{smallParams, {Min: 64, Avg: 128, Max: 4096}, {Min: 100, Avg: 512, Max: 777}} {
		want := func(data []byte) int {
			n := min(len(data), p.Max)
			if n <= p.Min {
				return n
			}
			maskS, maskL := p.masks()
			var fp uint64
			for i := p.Min; i < n; i++ {
				fp = fp<<1 + tab.gear[data[i]]
				mask := maskL
				if i < p.Avg {
					mask = maskS
				}
				if fp&mask == 0 {
					return i + 1
				}
			}
			return n
		}
		for rest := data; len(rest) > 0; {
			n := Cut(tab, p, rest)
			if w := want(rest); n != w {
				t.Fatalf("%+v: Cut at offset %d = %d, one-byte roll %d", p, len(data)-len(rest), n, w)
			}
			rest = rest[n:]
		}
	}
}

func TestCut(t *testing.T) {
	tab := NewTable(testSeed)
	p := smallParams
	data := randData(4096, 3)
	if n := Cut(tab, p, nil); n != 0 {
		t.Errorf("Cut(nil) = %d", n)
	}
	if n := Cut(tab, p, data[:p.Min]); n != p.Min {
		t.Errorf("Cut of Min bytes = %d", n)
	}
	first := Cut(tab, p, data)
	if first < p.Min || first > p.Max {
		t.Fatalf("Cut = %d", first)
	}
	// Cut sees only data: cut short before the boundary, it ends there.
	if n := Cut(tab, p, data[:first-1]); n != first-1 {
		t.Errorf("Cut(data[:%d]) = %d", first-1, n)
	}
	if n := Cut(tab, p, data[:first+5]); n != first {
		t.Errorf("Cut(data[:%d]) = %d, want %d", first+5, n, first)
	}
	zero := make([]byte, 3*p.Max)
	if n := Cut(tab, p, zero); n != p.Max {
		t.Errorf("Cut(zeros) = %d, want Max", n)
	}
	if n := Cut(tab, p, zero[:p.Max-1]); n != p.Max-1 {
		t.Errorf("Cut(Max-1 zeros) = %d", n)
	}
}

func TestChunkerRandom(t *testing.T) {
	data := data64()
	tab := NewTable(testSeed)
	lens := chunkAll(t, New(tab, DefaultParams, bytes.NewReader(data), nil), data)
	checkBounds(t, DefaultParams, lens)
	if want := cutAll(tab, DefaultParams, data); !slices.Equal(lens, want) {
		t.Errorf("Chunker and Cut disagree:\n%d\n%d", lens, want)
	}
	t.Logf("%d chunks, mean %d bytes", len(lens), len(data)/len(lens))
}

func TestSameSeed(t *testing.T) {
	data := data64()[:32<<20]
	a := cutAll(NewTable(testSeed), DefaultParams, data)

	seed := testSeed // a copy, as a second repository would hold it
	var buf []byte
	c := New(NewTable(seed), DefaultParams, bytes.NewReader(data), buf)
	if b := chunkAll(t, c, data); !slices.Equal(a, b) {
		t.Errorf("two tables of one seed disagree:\n%d\n%d", a, b)
	}
	// Reuse after Reset, also in the middle of a stream.
	c.Reset(bytes.NewReader(data[:3<<20]))
	if _, err := c.Next(); err != nil {
		t.Fatal(err)
	}
	c.Reset(bytes.NewReader(data))
	if b := chunkAll(t, c, data); !slices.Equal(a, b) {
		t.Errorf("after Reset:\n%d\n%d", a, b)
	}
}

func TestDifferentSeeds(t *testing.T) {
	data := data64()[:32<<20]
	a := cutAll(NewTable(testSeed), DefaultParams, data)
	other := testSeed
	other[31] ^= 1
	b := cutAll(NewTable(other), DefaultParams, data)
	if len(a) < 10 || len(b) < 10 {
		t.Fatalf("too few chunks: %d, %d", len(a), len(b))
	}
	// Boundaries (as offsets) common to both seeds should be rare.
	ends := func(lens []int) map[int]bool {
		m, off := map[int]bool{}, 0
		for _, n := range lens[:len(lens)-1] {
			off += n
			m[off] = true
		}
		return m
	}
	ea, common := ends(a), 0
	for off := range ends(b) {
		if ea[off] {
			common++
		}
	}
	if common > 2 {
		t.Errorf("seeds differing in one bit share %d of %d boundaries", common, len(a))
	}
}

// TestResync inserts a few bytes near the start of 64 MiB and expects only
// the first one or two chunks to change: the boundaries are content-defined.
func TestResync(t *testing.T) {
	data := data64()
	tab := NewTable(testSeed)
	a := cutAll(tab, DefaultParams, data)
	for _, at := range []int{0, 1000, 600 << 10} {
		edited := slices.Concat(data[:at], []byte("inserted"), data[at:])
		b := cutAll(tab, DefaultParams, edited)
		common := 0
		for common < min(len(a), len(b)) && a[len(a)-1-common] == b[len(b)-1-common] {
			common++
		}
		if len(a)-common > 2 || len(b)-common > 2 {
			t.Errorf("insert at %d: %d of %d chunks changed (%d new): %d... vs %d...",
				at, len(a)-common, len(a), len(b)-common, a[:3], b[:3])
		}
	}
}

// shortReader returns at most a pseudo-random number of bytes per Read.
type shortReader struct {
	r   io.Reader
	rng *rand.Rand
}

func (s *shortReader) Read(b []byte) (int, error) {
	if len(b) > 1 {
		b = b[:1+s.rng.IntN(min(len(b), 3000))]
	}
	return s.r.Read(b)
}

func TestShortReads(t *testing.T) {
	tab := NewTable(testSeed)
	for _, p := range []Params{smallParams, {Min: 64, Avg: 128, Max: 200}} {
		data := randData(256<<10, 4)
		want := chunkAll(t, New(tab, p, bufio.NewReader(bytes.NewReader(data)), nil), data)
		checkBounds(t, p, want)
		if cut := cutAll(tab, p, data); !slices.Equal(cut, want) {
			t.Fatalf("%+v: Chunker and Cut disagree", p)
		}
		for name, rd := range map[string]io.Reader{
			"OneByteReader": iotest.OneByteReader(bytes.NewReader(data)),
			"HalfReader":    iotest.HalfReader(bytes.NewReader(data)),
			"DataErrReader": iotest.DataErrReader(bytes.NewReader(data)),
			"shortReader":   &shortReader{bytes.NewReader(data), rand.New(rand.NewPCG(1, 2))},
		} {
			if got := chunkAll(t, New(tab, p, rd, nil), data); !slices.Equal(got, want) {
				t.Errorf("%+v, %s: lengths differ from a bufio reader's", p, name)
			}
		}
		// A caller's buffer of exactly Max bytes forces a move of the
		// unconsumed bytes before nearly every read.
		buf := make([]byte, 0, p.Max)
		c := New(tab, p, iotest.HalfReader(bytes.NewReader(data)), buf)
		if got := chunkAll(t, c, data); !slices.Equal(got, want) {
			t.Errorf("%+v, buffer of Max bytes: lengths differ", p)
		}
		if &c.buf[0] != &buf[:1][0] {
			t.Errorf("New did not use the caller's buffer")
		}
	}
}

func TestZeros(t *testing.T) {
	p := DefaultParams
	data := make([]byte, 20<<20)
	lens := chunkAll(t, New(NewTable(testSeed), p, bytes.NewReader(data), nil), data)
	if want := []int{p.Max, p.Max, 4 << 20}; !slices.Equal(lens, want) {
		t.Errorf("zeros: %d, want %d", lens, want)
	}
}

func TestEmpty(t *testing.T) {
	c := New(NewTable(testSeed), smallParams, bytes.NewReader(nil), nil)
	for range 2 {
		if chunk, err := c.Next(); err != io.EOF || chunk != nil {
			t.Fatalf("Next = %q, %v; want io.EOF", chunk, err)
		}
	}
}

func TestShortInput(t *testing.T) {
	data := randData(smallParams.Min/2, 5)
	c := New(NewTable(testSeed), smallParams, iotest.OneByteReader(bytes.NewReader(data)), nil)
	if lens := chunkAll(t, c, data); !slices.Equal(lens, []int{len(data)}) {
		t.Errorf("input shorter than Min: %d", lens)
	}
}

func TestChunkCapacity(t *testing.T) {
	data := randData(8<<10, 6)
	c := New(NewTable(testSeed), smallParams, bytes.NewReader(data), nil)
	first, err := c.Next()
	if err != nil {
		t.Fatal(err)
	}
	if cap(first) != len(first) {
		t.Errorf("chunk capacity %d > length %d: appending would overwrite the next chunk", cap(first), len(first))
	}
}

func TestReadError(t *testing.T) {
	p := smallParams
	tab := NewTable(testSeed)
	data := randData(64<<10, 7)
	lens := cutAll(tab, p, data)
	errBoom := errors.New("boom")
	// The reader fails after 10 KiB: every chunk that ends before then must
	// still come out, then the error, again and again.
	c := New(tab, p, io.MultiReader(bytes.NewReader(data[:10<<10]), iotest.ErrReader(errBoom)), nil)
	off := 0
	for i := 0; ; i++ {
		chunk, err := c.Next()
		if err != nil {
			if !errors.Is(err, errBoom) {
				t.Fatalf("Next = %v, want %v", err, errBoom)
			}
			if off+lens[i] <= 10<<10 {
				t.Errorf("error after %d chunks, before chunk ending at %d", i, off+lens[i])
			}
			break
		}
		if len(chunk) != lens[i] {
			t.Fatalf("chunk %d: length %d, want %d", i, len(chunk), lens[i])
		}
		off += len(chunk)
	}
	if _, err := c.Next(); !errors.Is(err, errBoom) {
		t.Errorf("second Next after the error = %v", err)
	}
}

// TestAverage checks the mean chunk length over 256 MiB of random data,
// streamed through a Chunker, against Avg (the package comment predicts
// about 1.19·Avg for DefaultParams).
func TestAverage(t *testing.T) {
	const size = 256 << 20
	p := DefaultParams
	c := New(NewTable(testSeed), p, io.LimitReader(rand.NewChaCha8([32]byte{9}), size), nil)
	var count, total int
	for {
		chunk, err := c.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(chunk) > p.Max || (len(chunk) < p.Min && total+len(chunk) != size) {
			t.Fatalf("chunk %d: length %d", count, len(chunk))
		}
		count++
		total += len(chunk)
	}
	mean := float64(total) / float64(count)
	t.Logf("%d chunks, mean %.0f bytes = %.3f·Avg", count, mean, mean/float64(p.Avg))
	if total != size || mean < 0.65*float64(p.Avg) || mean > 1.35*float64(p.Avg) {
		t.Errorf("%d bytes in %d chunks: mean %.0f outside Avg %d ± 35%%", total, count, mean, p.Avg)
	}
}

func FuzzChunker(f *testing.F) {
	f.Add([]byte("hello, world"), byte(0), uint8(0), uint8(0))
	f.Add(randData(5000, 8), byte(1), uint8(1), uint8(3))
	f.Add(make([]byte, 3000), byte(2), uint8(2), uint8(7))
	f.Add(bytes.Repeat([]byte("abcdefghij"), 400), byte(3), uint8(0), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, seed byte, avgShift, maxShift uint8) {
		avg := 128 << (avgShift % 4)
		p := Params{Min: 64 + int(seed)%(avg-64), Avg: avg, Max: avg + 1 + int(maxShift)*avg/2}
		if err := p.Validate(); err != nil {
			t.Fatalf("%+v: %v", p, err)
		}
		var s Seed
		s[0] = seed
		tab := NewTable(s)
		want := cutAll(tab, p, data)
		checkBounds(t, p, want)
		for _, rd := range []io.Reader{
			bytes.NewReader(data),
			iotest.OneByteReader(bytes.NewReader(data)),
			iotest.HalfReader(bytes.NewReader(data)),
		} {
			if got := chunkAll(t, New(tab, p, rd, make([]byte, 0, p.Max)), data); !slices.Equal(got, want) {
				t.Fatalf("%+v: Chunker %d, Cut %d", p, got, want)
			}
		}
		// Content-defined: chunking from a boundary on gives the same
		// boundaries as the whole input from there.
		if len(want) > 1 {
			if got := cutAll(tab, p, data[want[0]:]); !slices.Equal(got, want[1:]) {
				t.Fatalf("%+v: suffix cut %d, want %d", p, got, want[1:])
			}
		}
	})
}

func BenchmarkChunker(b *testing.B) {
	data := data64()
	rd := bytes.NewReader(data)
	c := New(NewTable(testSeed), DefaultParams, rd, nil)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		rd.Reset(data)
		c.Reset(rd)
		for {
			if _, err := c.Next(); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkCut(b *testing.B) {
	data := data64()
	tab := NewTable(testSeed)
	for _, bc := range []struct {
		name string
		p    Params
	}{
		{"default", DefaultParams},
		// Min 64: nearly every byte is hashed, the raw gear speed.
		{"min=64", Params{Min: 64, Avg: DefaultParams.Avg, Max: DefaultParams.Max}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				for rest := data; len(rest) > 0; {
					rest = rest[Cut(tab, bc.p, rest):]
				}
			}
		})
	}
}
