// Package consulwatch is the one loop sluice follows Consul with: blocking
// queries on one resource (a service's healthy instances for pool's
// discovery, the config key for edge/config's KV source), run by Loop.Run
// until its context ends. The caller says how to read the resource and
// what to do with each answer; the loop owns the index, the pacing and the
// errors.
//
// Invariants, after Consul's guidance for blocking queries
// (https://developer.hashicorp.com/consul/api-docs/features/blocking,
// "Implementation details"):
//   - Each query waits on the index of the previous answer
//     (X-Consul-Index) and returns when the resource changes past it or
//     the query's wait time ends; index 0 (a fresh start, or after a
//     reset) answers at once.
//   - An answer's index of 0 is taken as 1 (a server bug that would make
//     every query return at once).
//   - An index that goes backwards (a restarted or replaced server, a
//     restored snapshot) resets to 0: the next query starts over.
//   - Queries start at least 50ms apart, so a server that answers at once
//     every time can't make the loop spin.
//   - A failed query backs off: 1s doubling to 30s, each wait varied by
//     +-20% so a fleet of gateways does not come back in step. The first
//     success after failures ends the backoff.
//   - When the context ends the loop returns, from a query or a wait, and
//     reports nothing more (a query cut short by the cancel is not an
//     error).
//   - The loop runs on the caller's goroutine and calls the caller's
//     functions one at a time, never concurrently.
//
// consulwatch imports nothing of sluice's, and no Consul client either:
// the caller's query function makes the request. It must never import
// edge or pool (both use it).
package consulwatch
