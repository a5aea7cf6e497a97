// Command upstream is the demo and benchmark backend: a fasthttp server
// answering a short JSON line (or -body-size bytes) after -latency, with
// -fail-ratio of answers being 503. See bench/stub for the /__stub/ paths.
//
// With -consul it registers itself as -service in Consul, with an HTTP
// health check on /healthz, and on SIGTERM/SIGINT deregisters first, keeps
// serving for -drain while gateways notice, then stops.
//
// upstream imports only bench/stub of sluice's: it stands for a backend,
// so it must never import the gateway's packages.
package main
