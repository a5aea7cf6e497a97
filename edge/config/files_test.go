package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Regression: `sluice validate` said ok for a JWT key file that did not
// exist, and `sluice serve` then refused to start.
func TestKeyFilesAreChecked(t *testing.T) {
	dir := t.TempDir()
	pemKey := "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n"
	for name, body := range map[string]string{"good.pem": pemKey, "notpem.pem": "hello\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "adir"), 0o700); err != nil {
		t.Fatal(err)
	}
	src := minimal + `auth:
  jwt:
    keys:
      - { id: a, algorithm: EdDSA, public_key_file: good.pem }
      - { id: b, algorithm: RS256, public_key_file: missing.pem }
      - { id: c, algorithm: RS256, public_key_file: notpem.pem }
      - { id: d, algorithm: RS256, public_key_file: adir }
`
	path, err := loadFile(t, dir, src)
	wantErrors(t, err, "missing and broken key files",
		path+":15: auth.jwt.keys[1].public_key_file: "+filepath.Join(dir, "missing.pem")+" does not exist",
		path+":16: auth.jwt.keys[2].public_key_file: "+filepath.Join(dir, "notpem.pem")+" holds no PEM block",
		path+":17: auth.jwt.keys[3].public_key_file: "+filepath.Join(dir, "adir")+" is not a regular file",
	)
	if strings.Contains(err.Error(), "keys[0]") {
		t.Errorf("the good key file was refused:\n%v", err)
	}
	// ParseChecked checks them too (relative to the name's directory);
	// Parse, for configs bound for other machines, does not look.
	if _, err := ParseChecked(path, []byte(src), nil); err == nil || !strings.Contains(err.Error(), "missing.pem does not exist") {
		t.Errorf("ParseChecked: %v", err)
	}
	if _, err := Parse(path, []byte(src), nil); err != nil {
		t.Errorf("Parse looked at the files: %v", err)
	}
}

// loadFile writes src as dir/sluice.yaml and loads it: the path (what
// errors start with) and Load's error.
func loadFile(t *testing.T, dir, src string) (string, error) {
	t.Helper()
	path := filepath.Join(dir, "sluice.yaml")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	return path, err
}

// wantErrors fails the test unless err holds each of wants; what says
// what Load should not have accepted.
func wantErrors(t *testing.T, err error, what string, wants ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("Load accepted %s", what)
	}
	for _, w := range wants {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q:\n%v", w, err)
		}
	}
}
