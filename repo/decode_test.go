package repo

import (
	"strings"
	"testing"
)

// TestDecodePackHeaderRejects: a header is accepted only when its entries
// are well formed and cover the pack's data exactly (issue 19).
func TestDecodePackHeaderRejects(t *testing.T) {
	blob := func(length uint32) PackBlob {
		return PackBlob{Type: DataBlob, ID: Hash([]byte{byte(length)}), Length: length, RawLength: 10}
	}
	two := encodePackHeader([]PackBlob{blob(100), blob(60)})
	if got, err := decodePackHeader(two, 160); err != nil || len(got) != 2 || got[1].Offset != 100 {
		t.Fatalf("a good header: %v, %+v", err, got)
	}
	for _, c := range []struct {
		name    string
		header  []byte
		dataLen int64
		want    string
	}{
		{"covers less than the data", two, 161, "pack holds"},
		{"covers more than the data", two, 159, "more data"},
		{"a blob shorter than its seal", encodePackHeader([]PackBlob{blob(Overhead - 1)}), Overhead - 1, "impossible length"},
		{"an unknown blob type", append([]byte{packHeaderVersion, 9}, two[2:packEntrySize+1]...), 100, "unknown type"},
		{"a partial entry", two[:len(two)-1], 160, "whole number"},
		{"another version", append([]byte{packHeaderVersion + 1}, two[1:]...), 160, "version"},
	} {
		if _, err := decodePackHeader(c.header, c.dataLen); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", c.name, err, c.want)
		}
	}
}

// TestDecodeIndexRejects: an index with anything after its last pack, or
// cut short, is refused.
func TestDecodeIndexRejects(t *testing.T) {
	good := encodeIndex([]IndexPack{{ID: Hash([]byte("p")), Blobs: []PackBlob{{Type: DataBlob, ID: Hash([]byte("b")), Offset: 7, Length: 40, RawLength: 12}}}})
	packs, err := decodeIndex(good)
	if err != nil || len(packs) != 1 || packs[0].Blobs[0].Offset != 7 || packs[0].Blobs[0].Length != 40 {
		t.Fatalf("a good index: %v, %+v", err, packs)
	}
	for name, data := range map[string][]byte{
		"trailing bytes": append(append([]byte{}, good...), 0),
		"cut short":      good[:len(good)-1],
		"no packs, cut":  good[:8],
	} {
		if _, err := decodeIndex(data); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
