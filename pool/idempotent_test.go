package pool

import (
	"testing"

	"github.com/valyala/fasthttp"
)

func TestIdempotent(t *testing.T) {
	for method, want := range map[string]bool{
		"GET": true, "HEAD": true, "OPTIONS": true, "PUT": true, "DELETE": true, "TRACE": true,
		"POST": false, "PATCH": false, "CONNECT": false,
	} {
		req := fasthttp.AcquireRequest()
		req.Header.SetMethod(method)
		if got := Idempotent(req); got != want {
			t.Errorf("%s: %v, want %v (RFC 9110 9.2.2)", method, got, want)
		}
		req.Header.Set("Idempotency-Key", "k1")
		if !Idempotent(req) {
			t.Errorf("%s with an Idempotency-Key: not idempotent", method)
		}
		fasthttp.ReleaseRequest(req)
	}
}
