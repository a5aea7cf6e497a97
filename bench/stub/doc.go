// Package stub is a small fasthttp upstream used by `make run`, the tests
// and the benchmarks. Its default answer is a short JSON line naming the
// upstream, the method and the request target it received; paths under
// /__stub/ script the behaviours tests need (echo, slow, streamed, failing).
//
// It binds wherever its listener is; the tests and benchmarks only ever
// give it loopback addresses.
//
// stub imports nothing of sluice's and must not: the tests of pool, edge,
// cmd/sluice and deploy (through internal/testutil) run against it.
package stub
