package edge

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/internal/testutil"
)

// ticketKey is a random key line for a ticket keys file.
func ticketKey() string {
	var k [32]byte
	_, _ = rand.Read(k[:])
	return base64.StdEncoding.EncodeToString(k[:])
}

// withTicketKeys adds ticket_keys_file to tlsListenerConfig's listener.
func withTicketKeys(yaml, file string) string {
	return strings.Replace(yaml, "    name: public\n", "    name: public\n    ticket_keys_file: "+file+"\n", 1)
}

// Shared session ticket keys: a client whose session began on one
// gateway resumes it on another that reads the same keys file (TLS 1.3
// tickets, RFC 8446 section 4.6.1; TLS 1.2 tickets, RFC 5077 section
// 3), not on one with other keys; after a rotation (a new key on
// top, the old one below, reloaded) old tickets still resume and new
// ones are made with the new key.
func TestTLSTicketKeysSharedBetweenGateways(t *testing.T) {
	ca := testutil.NewCA(t, "edge")
	leaf := ca.Issue(t, testutil.LeafOptions{Name: "site", DNS: []string{"a.example"}})
	up := testutil.StartUpstream(t, stub.Options{})
	dir := t.TempDir()
	shared, other := filepath.Join(dir, "shared.keys"), filepath.Join(dir, "other.keys")
	k1 := ticketKey()
	testutil.WriteFile(t, shared, []byte("# newest first\n"+k1+"\n"))
	testutil.WriteFile(t, other, []byte(ticketKey()+"\n"))
	yaml := tlsListenerConfig(up.URL, leaf)
	g1, a1 := startTLSGateway(t, withTicketKeys(yaml, shared))
	_, a2 := startTLSGateway(t, withTicketKeys(yaml, shared))
	_, a3 := startTLSGateway(t, withTicketKeys(yaml, other))

	for _, v := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		cache := tls.NewLRUClientSessionCache(8)
		if resumed(t, a1, ca, cache, v) {
			t.Fatal("the first connection resumed a session it never had")
		}
		if !resumed(t, a2, ca, cache, v) {
			t.Errorf("TLS %x: a session from gateway 1 did not resume on gateway 2 (same keys file)", v)
		}
		cache = tls.NewLRUClientSessionCache(8)
		resumed(t, a1, ca, cache, v)
		if resumed(t, a3, ca, cache, v) {
			t.Errorf("TLS %x: a session from gateway 1 resumed on gateway 3 (other keys)", v)
		}
	}

	// Rotation on gateway 1: k2 on top, k1 kept below. A ticket made
	// with k1 (on gateway 2) still resumes on gateway 1; a new ticket
	// from gateway 1 (k2) does not resume on gateway 2, which has only k1.
	cache := tls.NewLRUClientSessionCache(8)
	resumed(t, a2, ca, cache, 0)
	testutil.WriteFile(t, shared, []byte(ticketKey()+"\n"+k1+"\n"))
	if err := g1.Apply(mustParse(t, withTicketKeys(yaml, shared))); err != nil {
		t.Fatal(err)
	}
	if !resumed(t, a1, ca, cache, 0) {
		t.Error("after the rotation, a ticket made with the older key did not resume")
	}
	cache = tls.NewLRUClientSessionCache(8)
	resumed(t, a1, ca, cache, 0)
	if resumed(t, a2, ca, cache, 0) {
		t.Error("after the rotation, gateway 1's tickets are still made with the older key")
	}
}
