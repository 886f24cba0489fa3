package repo

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"
	"time"

	"github.com/cairn-backup/cairn/repo/backend"
	"github.com/cairn-backup/cairn/repo/chunker"
)

// FormatVersion is the repository format this code writes.
const FormatVersion = 1

// minFormat is the oldest format this code reads.
const minFormat = 1

// Errors of opening a repository.
var (
	ErrWrongPassword = errors.New("wrong password: no key of this repository opens with it")
	ErrNoRepository  = errors.New("no cairn repository there")
	ErrFormat        = errors.New("unsupported repository format")
)

// configFile is the stored form of the config object: a readable header
// plus the sealed settings.
type configFile struct {
	Format   string `json:"format"` // always "cairn"
	Version  int    `json:"version"`
	ID       string `json:"id"`
	Settings []byte `json:"settings"` // sealed JSON of Settings
}

// Settings are the repository parameters that only key holders may read.
type Settings struct {
	ChunkerSeed chunker.Seed   `json:"chunker_seed"`
	Chunker     chunker.Params `json:"chunker"`
	PackSize    int            `json:"pack_size"`
	Compression string         `json:"compression"` // "zstd" or "none"
}

func (st Settings) validate() error {
	if err := st.Chunker.Validate(); err != nil {
		return err
	}
	if st.Chunker.Max > maxBlobSize {
		return fmt.Errorf("chunks of up to %d bytes exceed the blob limit", st.Chunker.Max)
	}
	if st.PackSize < 1<<10 || st.PackSize > 1<<30 {
		return fmt.Errorf("pack size %d out of range", st.PackSize)
	}
	if st.Compression != "zstd" && st.Compression != "none" {
		return fmt.Errorf("unknown compression %q", st.Compression)
	}
	if st.ChunkerSeed == (chunker.Seed{}) {
		return errors.New("chunker seed is zero")
	}
	return nil
}

// maxBlobSize bounds chunks; tree blobs may be larger, up to 4 GiB.
const maxBlobSize = 64 << 20

// keyFile is the stored form of a key object: the master key sealed with a
// password-derived key.
type keyFile struct {
	Version int       `json:"version"`
	Created time.Time `json:"created"`
	Host    string    `json:"host,omitempty"`
	User    string    `json:"user,omitempty"`
	KDF     string    `json:"kdf"` // "argon2id"
	Params  KDFParams `json:"params"`
	Salt    []byte    `json:"salt"`
	Master  []byte    `json:"master"` // sealed masterKey
}

// InitOptions tune a new repository.
type InitOptions struct {
	KDF KDFParams // zero: DefaultKDF
	// ChunkerFrom, when set, copies the chunker seed and parameters of
	// another repository so that both cut identical chunk boundaries.
	ChunkerFrom *Settings
	PackSize    int // zero: 16 MiB
}

// DefaultPackSize is the target size of a pack file.
const DefaultPackSize = 16 << 20

func hostUser() (string, string) {
	host, _ := os.Hostname()
	name := ""
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	return host, name
}

func newKeyFile(mk *masterKey, password string, p KDFParams) ([]byte, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	salt := make([]byte, 32)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	s, err := newSealer(p.derive(password, salt))
	if err != nil {
		return nil, err
	}
	host, name := hostUser()
	kf := keyFile{
		Version: 1, Created: time.Now().UTC().Round(time.Second), Host: host, User: name,
		KDF: "argon2id", Params: p, Salt: salt, Master: s.seal(nil, mk[:], kindKey),
	}
	return json.MarshalIndent(kf, "", "  ")
}

// openKeyFile unwraps the master key, or returns ErrWrongPassword.
func openKeyFile(data []byte, password string) (*masterKey, error) {
	var kf keyFile
	if err := json.Unmarshal(data, &kf); err != nil {
		return nil, fmt.Errorf("%w: key object: %v", ErrCorrupt, err)
	}
	if kf.Version != 1 {
		return nil, fmt.Errorf("%w: key object version %d", ErrFormat, kf.Version)
	}
	if kf.KDF != "argon2id" {
		return nil, fmt.Errorf("%w: key uses KDF %q", ErrFormat, kf.KDF)
	}
	if err := kf.Params.validate(); err != nil {
		return nil, fmt.Errorf("%w: key object: %v", ErrCorrupt, err)
	}
	s, err := newSealer(kf.Params.derive(password, kf.Salt))
	if err != nil {
		return nil, err
	}
	plain, err := s.open(nil, kf.Master, kindKey)
	if err != nil {
		return nil, ErrWrongPassword
	}
	if len(plain) != 32 {
		return nil, fmt.Errorf("%w: master key of %d bytes", ErrCorrupt, len(plain))
	}
	var mk masterKey
	copy(mk[:], plain)
	return &mk, nil
}

// saveObject stores data under the SHA-256 of its bytes.
func saveObject(ctx context.Context, be backend.Backend, t backend.FileType, data []byte) (ID, error) {
	id := Hash(data)
	err := be.Save(ctx, backend.Handle{Type: t, Name: id.String()}, data)
	if errors.Is(err, backend.ErrExist) {
		err = nil // same name, same bytes
	}
	return id, err
}

// loadObject loads an immutable object and verifies its name.
func loadObject(ctx context.Context, be backend.Backend, t backend.FileType, id ID) ([]byte, error) {
	h := backend.Handle{Type: t, Name: id.String()}
	data, err := be.Load(ctx, h, 0, 0)
	if err != nil {
		return nil, err
	}
	if Hash(data) != id {
		return nil, &CorruptError{Object: h.String(), Err: errors.New("content does not match its name (altered or truncated)")}
	}
	return data, nil
}

// Init creates a repository in be, which must be empty, with one key for
// password.
func Init(ctx context.Context, be backend.Backend, password string, opts InitOptions) (*Repository, error) {
	if password == "" {
		return nil, errors.New("empty password")
	}
	if c, ok := be.(backend.Creator); ok {
		if err := c.Create(ctx); err != nil {
			return nil, fmt.Errorf("create %s: %w", be.Location(), err)
		}
	} else if _, err := be.Stat(ctx, backend.Handle{Type: backend.ConfigFile}); err == nil {
		return nil, fmt.Errorf("%s: %w: a repository is already there", be.Location(), backend.ErrExist)
	}
	if opts.KDF == (KDFParams{}) {
		opts.KDF = DefaultKDF
	}
	var mk masterKey
	if _, err := rand.Read(mk[:]); err != nil {
		return nil, err
	}
	st := Settings{Chunker: chunker.DefaultParams, PackSize: DefaultPackSize, Compression: "zstd"}
	if opts.ChunkerFrom != nil {
		st.ChunkerSeed, st.Chunker = opts.ChunkerFrom.ChunkerSeed, opts.ChunkerFrom.Chunker
	} else if _, err := rand.Read(st.ChunkerSeed[:]); err != nil {
		return nil, err
	}
	if opts.PackSize > 0 {
		st.PackSize = opts.PackSize
	}
	if err := st.validate(); err != nil {
		return nil, err
	}
	var rid [32]byte
	if _, err := rand.Read(rid[:]); err != nil {
		return nil, err
	}

	kdata, err := newKeyFile(&mk, password, opts.KDF)
	if err != nil {
		return nil, err
	}
	if _, err := saveObject(ctx, be, backend.KeyFile, kdata); err != nil {
		return nil, fmt.Errorf("save key: %w", err)
	}
	ds, err := newSealer(mk.derive(infoData))
	if err != nil {
		return nil, err
	}
	sjson, err := json.Marshal(st)
	if err != nil {
		return nil, err
	}
	cf := configFile{Format: "cairn", Version: FormatVersion, ID: ID(rid).String(), Settings: ds.seal(nil, sjson, kindSettings)}
	cdata, err := json.MarshalIndent(cf, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := be.Save(ctx, backend.Handle{Type: backend.ConfigFile}, cdata); err != nil {
		return nil, fmt.Errorf("save config: %w", err)
	}
	return newRepository(be, cf, st, &mk)
}

// Open opens the repository in be with password, trying every key.
func Open(ctx context.Context, be backend.Backend, password string) (*Repository, error) {
	cdata, err := be.Load(ctx, backend.Handle{Type: backend.ConfigFile}, 0, 0)
	if errors.Is(err, backend.ErrNotExist) {
		// The storage's words say why (a missing directory or bucket).
		return nil, fmt.Errorf("%w: %v", ErrNoRepository, err)
	}
	if err != nil {
		return nil, err
	}
	var cf configFile
	dec := json.NewDecoder(bytes.NewReader(cdata))
	if err := dec.Decode(&cf); err != nil || cf.Format != "cairn" {
		return nil, &CorruptError{Object: "config", Err: fmt.Errorf("not a cairn config: %v", err)}
	}
	if cf.Version < minFormat || cf.Version > FormatVersion {
		return nil, fmt.Errorf("%w: version %d (this cairn reads %d to %d)", ErrFormat, cf.Version, minFormat, FormatVersion)
	}

	var names []string
	err = be.List(ctx, backend.KeyFile, func(fi backend.FileInfo) error {
		names = append(names, fi.Name)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	if len(names) == 0 {
		return nil, &CorruptError{Object: "keys/", Err: errors.New("no key objects")}
	}
	var lastErr error = ErrWrongPassword
	for _, name := range names {
		id, err := ParseID(name)
		if err != nil {
			continue
		}
		kdata, err := loadObject(ctx, be, backend.KeyFile, id)
		if err != nil {
			lastErr = err
			continue
		}
		mk, err := openKeyFile(kdata, password)
		if errors.Is(err, ErrWrongPassword) {
			continue
		}
		if err != nil {
			lastErr = err
			continue
		}
		ds, err := newSealer(mk.derive(infoData))
		if err != nil {
			return nil, err
		}
		sjson, err := ds.open(nil, cf.Settings, kindSettings)
		if err != nil {
			return nil, &CorruptError{Object: "config", Err: fmt.Errorf("settings: %w", err)}
		}
		var st Settings
		if err := json.Unmarshal(sjson, &st); err != nil {
			return nil, &CorruptError{Object: "config", Err: err}
		}
		if err := st.validate(); err != nil {
			return nil, &CorruptError{Object: "config", Err: err}
		}
		return newRepository(be, cf, st, mk)
	}
	return nil, lastErr
}

// AddKey stores another key object, so that password also opens the
// repository.
func (r *Repository) AddKey(ctx context.Context, password string, p KDFParams) (ID, error) {
	if p == (KDFParams{}) {
		p = DefaultKDF
	}
	data, err := newKeyFile(r.master, password, p)
	if err != nil {
		return ID{}, err
	}
	return saveObject(ctx, r.be, backend.KeyFile, data)
}
