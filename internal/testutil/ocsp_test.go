package testutil

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"io"
	"math/big"
	"net/http"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

// The responder's protocol (RFC 6960): the answers the edge tests do not
// reach (an unknown serial, a malformed request, GET, before Serve), on a
// pebble that issued nothing.
func TestOCSPResponder(t *testing.T) {
	r := StartOCSPResponder(t)
	post := func(body []byte) []byte {
		t.Helper()
		resp, err := http.Post(r.URL, "application/ocsp-request", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		der, _ := io.ReadAll(resp.Body)
		return der
	}
	serial := big.NewInt(0x5eed)
	if _, err := ocsp.ParseResponse(post([]byte("not DER")), nil); !isResponseError(err, ocsp.Unauthorized) {
		t.Errorf("before Serve: %v, want unauthorized (RFC 6960 section 2.3)", err)
	}

	r.Serve(t, StartPebble(t, PebbleOptions{OCSPResponderURL: r.URL}))
	issuer := r.Issuer()
	req, err := ocsp.CreateRequest(&x509.Certificate{SerialNumber: serial}, issuer, nil)
	if err != nil {
		t.Fatal(err)
	}
	get := func() []byte {
		t.Helper()
		resp, err := http.Get(r.URL + "/" + base64.StdEncoding.EncodeToString(req))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		der, _ := io.ReadAll(resp.Body)
		return der
	}
	if _, err := ocsp.ParseResponse(post([]byte("not DER")), nil); !isResponseError(err, ocsp.Malformed) {
		t.Errorf("malformed request: %v, want malformedRequest (RFC 6960 section 2.3)", err)
	}
	for _, tc := range []struct {
		name   string
		ask    func() []byte
		revoke bool
		want   int
	}{
		{"POST, serial pebble never issued", func() []byte { return post(req) }, false, ocsp.Unknown},
		{"GET (appendix A.1), serial pebble never issued", get, false, ocsp.Unknown},
		{"POST, serial revoked by the test", func() []byte { return post(req) }, true, ocsp.Revoked},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.revoke {
				r.Revoke(serial)
			}
			resp, err := ocsp.ParseResponse(tc.ask(), issuer) // checks the issuer's signature
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status != tc.want || resp.SerialNumber.Cmp(serial) != 0 {
				t.Errorf("status %d for serial %x, want %d for %x", resp.Status, resp.SerialNumber, tc.want, serial)
			}
			if now := time.Now(); !resp.ThisUpdate.Before(now) || !resp.NextUpdate.After(now) {
				t.Errorf("valid from %v to %v, not now", resp.ThisUpdate, resp.NextUpdate)
			}
			if tc.revoke && resp.RevokedAt.IsZero() {
				t.Error("revoked without a revocation time")
			}
		})
	}
	if n := r.Answered(serial); n != 3 {
		t.Errorf("answered %d times for %x, want 3", n, serial)
	}
	if f := r.Failures(); len(f) != 2 {
		t.Errorf("failures %q, want the two requests refused", f)
	}
}

func isResponseError(err error, status ocsp.ResponseStatus) bool {
	var re ocsp.ResponseError
	return errors.As(err, &re) && re.Status == status
}
