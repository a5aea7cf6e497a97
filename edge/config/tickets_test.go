package config

import (
	"bytes"
	"encoding/base64"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicegw/sluice/internal/testutil"
)

func TestParseTicketKeys(t *testing.T) {
	k := func(b byte) string { return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, 32)) }
	for _, tc := range []struct {
		name, in string
		keys     int
		err      string
	}{
		{"one", k(1) + "\n", 1, ""},
		{"newest first, comments and blanks", "# rotated daily\n\n" + k(2) + "\n  " + k(1) + "  \r\n", 2, ""},
		{"empty", "", 0, "no key"},
		{"only comments", "# nothing\n", 0, "no key"},
		{"short key", base64.StdEncoding.EncodeToString(make([]byte, 16)) + "\n", 0, "line 1: want 32 bytes"},
		{"long key", base64.StdEncoding.EncodeToString(make([]byte, 48)) + "\n", 0, "line 1: want 32 bytes"},
		{"not base64", k(1) + "\nnot base64!\n", 0, "line 2: want 32 bytes"},
		{"too many", strings.Repeat(k(3)+"\n", MaxTicketKeys+1), 0, "line 17: more than 16 keys"},
	} {
		keys, err := ParseTicketKeys([]byte(tc.in))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: got %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || len(keys) != tc.keys {
			t.Errorf("%s: %d keys, %v", tc.name, len(keys), err)
		}
	}
	keys, _ := ParseTicketKeys([]byte(k(2) + "\n" + k(1)))
	if keys[0][0] != 2 || keys[1][0] != 1 {
		t.Error("the keys are not kept in file order (newest first)")
	}
}

// FuzzParseTicketKeys: any file gives keys of 32 bytes, at most
// MaxTicketKeys and at least one, or an error; never a panic.
func FuzzParseTicketKeys(f *testing.F) {
	f.Add([]byte(base64.StdEncoding.EncodeToString(make([]byte, 32)) + "\n# c\n"))
	f.Add([]byte("\n\n#\n====\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := ParseTicketKeys(data)
		if err == nil && (len(keys) == 0 || len(keys) > MaxTicketKeys) {
			t.Fatalf("%d keys without an error", len(keys))
		}
	})
}

// `sluice validate` names a broken ticket keys file with its line.
func TestTicketKeysFileChecked(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "tickets.keys")
	testutil.WriteFile(t, keys, []byte("short\n"))
	src := "admin: { password: test-secret }\nlisten_tls:\n  - listen: \":8443\"\n    acme_hosts: [a.example.com]\n    ticket_keys_file: tickets.keys\nacme: { agree_terms: true }\n" +
		"upstreams:\n  u: { targets: [ { url: \"http://127.0.0.1:9001\" } ] }\nroutes:\n  - { name: r, match: { prefix: / }, upstream: u }\n"
	path := filepath.Join(dir, "sluice.yaml")
	testutil.WriteFile(t, path, []byte(src))
	_, err := Load(path)
	want := path + ":5: listen_tls[0].ticket_keys_file: " + keys + ": line 1: want 32 bytes in base64"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("got %v, want %q", err, want)
	}
}
