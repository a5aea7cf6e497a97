// Command harness measures sluice against nginx and against the bare
// upstream, on 127.0.0.1, in one run: it starts the bench/upstream stub,
// sluice, nginx (a keep-alive reverse proxy to the same stub, setting the
// same forwarding headers) and bench/floor (the smallest fasthttp proxy,
// for what the library alone costs), drives
// each in turn with wrk (maximum throughput) and vegeta (a constant rate),
// interleaved and repeated, and prints one Markdown table per scenario.
// Besides rps and latency it reports, per target and round, what holds on
// a shared machine: CPU per request (user+system time of the target's
// process tree, from /proc/PID/stat) and read/write syscalls per request
// (/proc/PID/io), and gives the comparisons as the median of per-round
// paired ratios (sluice/nginx within one round), not ratios of medians.
//
// With -profile DIR it instead captures CPU and allocation profiles of
// sluice under wrk load, plus `go tool pprof -top` text of each; with
// -soak D it samples sluice's RSS under load with many idle connections;
// with -idle-mem N it opens N idle keep-alive connections to each proxy
// and prints what one holds (RSS, and for sluice Go stack and heap).
//
// Invariants: everything it starts listens on loopback, is bounded in
// time, and is killed when it exits. It measures and reports; it asserts
// no timings.
//
// harness imports nothing of sluice's: it runs the binaries `make build`
// puts in -bin (sluice, upstream, floor) as separate processes.
package main
