package cache

import "unsafe"

// s2b views a string's bytes without copying; the bytes must not be
// written.
func s2b(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }
