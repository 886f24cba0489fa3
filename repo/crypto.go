package repo

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"

	"golang.org/x/crypto/argon2"
)

// Sealing: every encrypted byte string in a repository is
// nonce (12 bytes) || AES-256-GCM ciphertext || tag (16 bytes).
const (
	nonceSize = 12
	tagSize   = 16
	// Overhead is what sealing adds to a plaintext.
	Overhead = nonceSize + tagSize
)

// ErrAuth: a sealed byte string failed authentication: it was altered,
// truncated, or sealed under another key.
var ErrAuth = errors.New("authentication failed (data altered, truncated or under another key)")

// sealer encrypts and authenticates with one AES-256 key.
type sealer struct {
	aead cipher.AEAD
}

func newSealer(key []byte) (*sealer, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("key length %d, want 32", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead}, nil
}

// What a sealed byte string is, bound to it as GCM additional data so that
// one kind can never be passed off as another (docs/FORMAT.md).
type kind string

const (
	kindKey      kind = "cairn key"
	kindSettings kind = "cairn settings"
	kindBlob     kind = "cairn blob"
	kindHeader   kind = "cairn pack header"
	kindIndex    kind = "cairn index"
	kindSnapshot kind = "cairn snapshot"
	kindLock     kind = "cairn lock"
)

// seal appends the sealed form of plain to dst.
func (s *sealer) seal(dst, plain []byte, k kind) []byte {
	n := len(dst)
	dst = append(dst, make([]byte, nonceSize)...)
	if _, err := rand.Read(dst[n : n+nonceSize]); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return s.aead.Seal(dst, dst[n:n+nonceSize], plain, []byte(k))
}

// open appends the plaintext of sealed to dst.
func (s *sealer) open(dst, sealed []byte, k kind) ([]byte, error) {
	if len(sealed) < Overhead {
		return nil, fmt.Errorf("%w: %d bytes is shorter than the seal overhead", ErrAuth, len(sealed))
	}
	out, err := s.aead.Open(dst, sealed[:nonceSize], sealed[nonceSize:], []byte(k))
	if err != nil {
		return nil, ErrAuth
	}
	return out, nil
}

// masterKey is the random key a repository is created with; the keys of
// every purpose are derived from it with HKDF-SHA256.
type masterKey [32]byte

// Derivation labels (HKDF info strings); see docs/FORMAT.md.
const (
	infoData = "cairn v1 data"
)

func (m *masterKey) derive(info string) []byte {
	k, err := hkdf.Key(sha256.New, m[:], nil, info, 32)
	if err != nil {
		panic("hkdf: " + err.Error())
	}
	return k
}

// KDFParams are the argon2id parameters that turn a password into the key
// that unwraps the master key. They are stored in each key object.
type KDFParams struct {
	Time    uint32 `json:"time"`
	Memory  uint32 `json:"memory"` // KiB
	Threads uint8  `json:"threads"`
}

// DefaultKDF follows OWASP's argon2id recommendation (46 MiB, one pass),
// with two lanes: about 50 ms on a current machine, paid at every open.
var DefaultKDF = KDFParams{Time: 1, Memory: 46 << 10, Threads: 2}

// TestKDF is deliberately weak; for tests and golden data only.
var TestKDF = KDFParams{Time: 1, Memory: 64, Threads: 1}

func (p KDFParams) validate() error {
	if p.Time < 1 || p.Time > 100 || p.Threads < 1 || p.Memory < 8*uint32(p.Threads) || p.Memory > 4<<20 {
		return fmt.Errorf("unreasonable KDF parameters %+v", p)
	}
	return nil
}

func (p KDFParams) derive(password string, salt []byte) []byte {
	return argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, 32)
}
