package auth

import (
	"context"
	"crypto/ecdsa"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFileStoreLifecycleAndDurability(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keys.json")
	s, err := OpenFileStore(path)
	if err != nil {
		t.Fatal(err)
	}
	rec, raw, err := s.Create(ctx, KeySpec{Name: "app", Roles: []string{"reader"}, RateLimit: 10, Quota: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if !LooksLikeKey([]byte(raw)) || !strings.HasPrefix(raw, rec.Prefix) || rec.ID == "" {
		t.Fatalf("raw %q, record %+v", raw, rec)
	}
	if got, err := s.Lookup([]byte(raw), time.Now()); err != nil || got.ID != rec.ID || got.Roles[0] != "reader" {
		t.Fatalf("lookup: %+v %v", got, err)
	}
	if _, err := s.Lookup([]byte(raw+"x"), time.Now()); err == nil {
		t.Fatal("a different key matched")
	}
	// Only the hash is on disk, never the raw key.
	data, _ := os.ReadFile(path)
	if strings.Contains(string(data), raw) || strings.Contains(string(data), raw[len(KeyPrefix):]) {
		t.Fatal("the raw key was written to disk")
	}
	if info, _ := os.Stat(path); info.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", info.Mode().Perm())
	}
	// Reopening finds it (what a restart, or a kill -9 after Create returned, sees).
	s2, err := OpenFileStore(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Lookup([]byte(raw), time.Now()); err != nil {
		t.Fatal("the key did not survive reopening the store")
	}
	// Revoke: still listed, no longer accepted, also after reopening.
	if r, err := s.Revoke(ctx, rec.ID); err != nil || r.RevokedAt == nil {
		t.Fatalf("revoke: %+v %v", r, err)
	}
	if _, err := s.Lookup([]byte(raw), time.Now()); err == nil {
		t.Fatal("revoked key accepted")
	}
	s3, _ := OpenFileStore(path)
	if _, err := s3.Lookup([]byte(raw), time.Now()); err == nil {
		t.Fatal("revocation lost on reopen")
	}
	list, _ := s.List(ctx)
	if len(list) != 1 || list[0].Hash == "" {
		t.Fatalf("list %+v", list)
	}
	if err := s.Delete(ctx, rec.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, rec.ID); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
	if err := s.Delete(ctx, rec.ID); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	// Expiry.
	soon := time.Now().Add(time.Hour)
	_, raw2, _ := s.Create(ctx, KeySpec{Name: "temp", ExpiresAt: &soon})
	if _, err := s.Lookup([]byte(raw2), time.Now().Add(2*time.Hour)); err == nil {
		t.Fatal("expired key accepted")
	}
}

func TestFileStoreRefusesACorruptFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	_ = os.WriteFile(path, []byte("{not json"), 0o600)
	if _, err := OpenFileStore(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("corrupt store: %v", err)
	}
}

func TestKeySpecValidate(t *testing.T) {
	past := time.Now().Add(-time.Hour)
	for _, bad := range []KeySpec{{}, {Name: strings.Repeat("n", 200)}, {Name: "a", RateLimit: -1}, {Name: "a", ExpiresAt: &past}, {Name: "a", Roles: []string{""}}} {
		if err := bad.Validate(time.Now()); err == nil {
			t.Errorf("accepted %+v", bad)
		}
	}
}

func TestParseJWKSReadsECKeys(t *testing.T) {
	b, _ := ecKey.PublicKey.Bytes() // 0x04 || X || Y
	x := base64.RawURLEncoding.EncodeToString(b[1:33])
	y := base64.RawURLEncoding.EncodeToString(b[33:])
	keys, err := ParseJWKS([]byte(`{"keys":[{"kty":"EC","kid":"e","crv":"P-256","x":"` + x + `","y":"` + y + `"}]}`))
	if err != nil || keys["e"] == nil || keys["e"].Algs[0] != "ES256" {
		t.Fatalf("%v %v", keys, err)
	}
	if !keys["e"].Key.(*ecdsa.PublicKey).Equal(&ecKey.PublicKey) {
		t.Fatal("parsed a different key")
	}
}
