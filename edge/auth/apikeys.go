package auth

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// KeyPrefix starts every API key, so keys are recognisable in a bearer
// header and in secret scanners.
const KeyPrefix = "sluice_"

// KeyRecord is an API key as stored and shown. The raw key is never stored:
// only its SHA-256, which is never shown either.
type KeyRecord struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Prefix    string     `json:"prefix"` // first characters, to tell keys apart
	Roles     []string   `json:"roles,omitempty"`
	RateLimit int        `json:"rate_limit,omitempty"` // requests per second; replaces the route's rate limit for this key
	Quota     int        `json:"quota,omitempty"`      // requests per day; replaces the route's quota for this key
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	Hash      string     `json:"-"`
}

// Active reports whether the key may be used at now.
func (r *KeyRecord) Active(now time.Time) bool {
	return r.RevokedAt == nil && (r.ExpiresAt == nil || now.Before(*r.ExpiresAt))
}

// KeySpec is what a caller asks for when creating a key.
type KeySpec struct {
	Name      string     `json:"name"`
	Roles     []string   `json:"roles,omitempty"`
	RateLimit int        `json:"rate_limit,omitempty"`
	Quota     int        `json:"quota,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// Validate refuses specs that make no sense.
func (s KeySpec) Validate(now time.Time) error {
	switch {
	case s.Name == "" || len(s.Name) > 128:
		return errors.New("name: required, at most 128 characters")
	case s.RateLimit < 0 || s.Quota < 0:
		return errors.New("rate_limit and quota must not be negative")
	case s.ExpiresAt != nil && !s.ExpiresAt.After(now):
		return errors.New("expires_at is in the past")
	}
	for _, r := range s.Roles {
		if r == "" || len(r) > 64 {
			return errors.New("roles: each 1..64 characters")
		}
	}
	return nil
}

// Errors of key stores.
var (
	ErrKeyNotFound = errors.New("auth: no such api key")
)

// KeyStore keeps API keys. Lookup is on the request path and must not do
// I/O on a hot key; the rest is the admin API's.
type KeyStore interface {
	Create(ctx context.Context, spec KeySpec) (rec KeyRecord, raw string, err error)
	Get(ctx context.Context, id string) (KeyRecord, error)
	List(ctx context.Context) ([]KeyRecord, error)
	Revoke(ctx context.Context, id string) (KeyRecord, error)
	Delete(ctx context.Context, id string) error
	// Lookup finds the active key whose raw value is raw: ErrKeyNotFound
	// when there is none (or it is revoked or expired), another error when
	// the store can't answer.
	Lookup(raw []byte, now time.Time) (*KeyRecord, error)
}

// NewRawKey makes a key: the prefix and 32 random bytes, base64url.
func NewRawKey() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return KeyPrefix + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// HashKey is the stored form of a raw key.
func HashKey(raw []byte) [32]byte { return sha256.Sum256(raw) }

// LooksLikeKey reports whether raw has the shape of a sluice API key (so a
// bearer credential can be told from a JWT).
func LooksLikeKey(raw []byte) bool {
	return bytes.HasPrefix(raw, []byte(KeyPrefix)) && len(raw) == len(KeyPrefix)+43
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func newRecord(spec KeySpec, raw string, now time.Time) KeyRecord {
	h := HashKey([]byte(raw))
	return KeyRecord{
		ID: newID(), Name: spec.Name, Prefix: raw[:len(KeyPrefix)+4], Roles: spec.Roles,
		RateLimit: spec.RateLimit, Quota: spec.Quota, CreatedAt: now.UTC(), ExpiresAt: spec.ExpiresAt,
		Hash: hex.EncodeToString(h[:]),
	}
}

// FileStore keeps keys in a JSON file, the default store without Redis.
// Every change is written to a temporary file, fsynced, renamed over the
// old one and the directory fsynced before the call returns, so an
// acknowledged change survives a crash or kill -9. Lookups use an
// in-memory index swapped atomically; they never touch the disk.
type FileStore struct {
	path  string
	mu    sync.Mutex // serialises writers
	index atomic.Pointer[fileIndex]
}

type fileIndex struct {
	byHash map[[32]byte]*KeyRecord
	byID   map[string]*KeyRecord
}

// storedRecord is the on-disk form: the record plus its hash.
type storedRecord struct {
	KeyRecord
	Hash string `json:"sha256"`
}

// OpenFileStore loads (or starts) the store at path.
func OpenFileStore(path string) (*FileStore, error) {
	s := &FileStore{path: path}
	recs := []storedRecord{}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("api key store %s: %w", path, err)
	default:
		if err := json.Unmarshal(data, &recs); err != nil {
			return nil, fmt.Errorf("api key store %s: not a key file: %w", path, err)
		}
	}
	idx := &fileIndex{byHash: map[[32]byte]*KeyRecord{}, byID: map[string]*KeyRecord{}}
	for i := range recs {
		r := recs[i].KeyRecord
		r.Hash = recs[i].Hash
		if err := idx.add(&r); err != nil {
			return nil, fmt.Errorf("api key store %s: %w", path, err)
		}
	}
	s.index.Store(idx)
	return s, nil
}

func (idx *fileIndex) add(r *KeyRecord) error {
	raw, err := hex.DecodeString(r.Hash)
	if err != nil || len(raw) != 32 {
		return fmt.Errorf("key %s: bad hash", r.ID)
	}
	var h [32]byte
	copy(h[:], raw)
	idx.byHash[h] = r
	idx.byID[r.ID] = r
	return nil
}

func (idx *fileIndex) clone() *fileIndex {
	c := &fileIndex{byHash: make(map[[32]byte]*KeyRecord, len(idx.byHash)), byID: make(map[string]*KeyRecord, len(idx.byID))}
	for h, r := range idx.byHash {
		c.byHash[h] = r
	}
	for id, r := range idx.byID {
		c.byID[id] = r
	}
	return c
}

func (idx *fileIndex) sorted() []KeyRecord {
	out := make([]KeyRecord, 0, len(idx.byID))
	for _, r := range idx.byID {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].CreatedAt.Before(out[j].CreatedAt) || (out[i].CreatedAt.Equal(out[j].CreatedAt) && out[i].ID < out[j].ID)
	})
	return out
}

// persist writes idx durably, then makes it current.
func (s *FileStore) persist(idx *fileIndex) error {
	recs := idx.sorted()
	stored := make([]storedRecord, len(recs))
	for i, r := range recs {
		stored[i] = storedRecord{KeyRecord: r, Hash: r.Hash}
	}
	data, err := json.MarshalIndent(stored, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(s.path)
	tmp, err := os.CreateTemp(dir, ".apikeys-*.tmp")
	if err != nil {
		return fmt.Errorf("api key store: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("api key store: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("api key store: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		return fmt.Errorf("api key store: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the rename itself durable
		d.Close()
	}
	s.index.Store(idx)
	return nil
}

// Create makes a key and returns it raw, once.
func (s *FileStore) Create(_ context.Context, spec KeySpec) (KeyRecord, string, error) {
	raw, err := NewRawKey()
	if err != nil {
		return KeyRecord{}, "", err
	}
	rec := newRecord(spec, raw, time.Now())
	s.mu.Lock()
	defer s.mu.Unlock()
	idx := s.index.Load().clone()
	if err := idx.add(&rec); err != nil {
		return KeyRecord{}, "", err
	}
	if err := s.persist(idx); err != nil {
		return KeyRecord{}, "", err
	}
	return rec, raw, nil
}

// Get returns one key.
func (s *FileStore) Get(_ context.Context, id string) (KeyRecord, error) {
	if r := s.index.Load().byID[id]; r != nil {
		return *r, nil
	}
	return KeyRecord{}, ErrKeyNotFound
}

// List returns every key, oldest first.
func (s *FileStore) List(context.Context) ([]KeyRecord, error) { return s.index.Load().sorted(), nil }

// Revoke marks a key revoked; it stays listed.
func (s *FileStore) Revoke(_ context.Context, id string) (KeyRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	idx := s.index.Load().clone()
	r := idx.byID[id]
	if r == nil {
		return KeyRecord{}, ErrKeyNotFound
	}
	updated := *r
	if updated.RevokedAt == nil {
		now := time.Now().UTC()
		updated.RevokedAt = &now
	}
	if err := idx.add(&updated); err != nil {
		return KeyRecord{}, err
	}
	if err := s.persist(idx); err != nil {
		return KeyRecord{}, err
	}
	return updated, nil
}

// Delete removes a key.
func (s *FileStore) Delete(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	idx := s.index.Load().clone()
	r := idx.byID[id]
	if r == nil {
		return ErrKeyNotFound
	}
	delete(idx.byID, id)
	for h, x := range idx.byHash {
		if x.ID == id {
			delete(idx.byHash, h)
		}
	}
	return s.persist(idx)
}

// Lookup finds an active key by its raw value, from memory.
func (s *FileStore) Lookup(raw []byte, now time.Time) (*KeyRecord, error) {
	r := s.index.Load().byHash[HashKey(raw)]
	if r == nil || !r.Active(now) {
		return nil, ErrKeyNotFound
	}
	return r, nil
}

var _ KeyStore = (*FileStore)(nil)
