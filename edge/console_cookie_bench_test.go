package edge

import "testing"

// BenchmarkConsoleCookie is a proxied request whose Cookie header holds
// the admin console's cookie (removed before forwarding) beside one that
// holds other cookies only (passed on untouched): what the removal costs.
func BenchmarkConsoleCookie(b *testing.B) {
	for _, bc := range []struct{ name, cookie string }{
		{"with sluice_session", "Cookie: a=1; sluice_session=0123456789abcdef; b=2\r\n"},
		{"other cookies", "Cookie: a=1; theme=0123456789abcdef; b=2\r\n"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			h := newHandlerHarness(b, 64, "/api/x")
			h.extra = bc.cookie
			h.once(b, 200)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				h.once(b, 200)
			}
		})
	}
}
