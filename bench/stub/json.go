package stub

import (
	"bytes"
	"fmt"
)

// APIJSON is n bytes of API-like JSON: records with ids, names, emails,
// timestamps and free text, the kind of answer compression is for. It is
// cut at n bytes (the array is not closed). The same n always gives the
// same bytes, so compression ratios measured on it are reproducible.
func APIJSON(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"items":[`)
	words := []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"}
	for i := 0; b.Len() < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"name":"%s %s","email":"user%d@example.com","created":"2026-11-%02dT%02d:%02d:00Z","active":%v,"score":%d.%d,"note":"%s %s %s %d"}`,
			100000+i*7, words[i%10], words[(i*3)%10], i*13, 1+i%28, i%24, i%60, i%3 != 0, i*37%1000, i%10,
			words[(i*7)%10], words[(i*11)%10], words[(i*5)%10], i*i%9973)
	}
	return b.Bytes()[:n]
}
