// Package config is sluice's configuration: the YAML schema (config.go,
// types.go), ${VAR} expansion (expand.go), strict decoding and defaults
// (load.go), validation (validate.go), the files a config names
// (files.go), and where a config comes from: a file watched for changes
// (watch.go) or a Consul KV key followed with blocking queries
// (source.go).
//
// Invariants:
//   - Load and Parse either return a complete, defaulted, valid *Config or
//     an error listing every problem as "file:line: field: message". A
//     caller never sees a half-valid config.
//   - Decoding is strict: an unknown field is an error naming its line.
//     Every problem comes out in one run: an unknown field or a value of
//     the wrong type does not hide the validation errors after it.
//   - The values are plain data that edge compiles into a snapshot; nothing
//     here is on the request path. Parse does no I/O; Load and
//     ParseChecked also check the files a config reads at start (JWT key
//     files, files.go); the sources read the file or query Consul, and
//     their watchers run on their own goroutines and only say "it may have
//     changed": the caller Loads and applies.
//
// config imports lb (for the balancer names) and internal/consulwatch; it
// never imports edge, pool or the other edge sub-packages.
package config
