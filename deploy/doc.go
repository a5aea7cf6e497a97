// Package deploy holds the files operators deploy sluice with (see
// README.md): the Prometheus scrape config and alert rules, and the
// Grafana dashboard. It has no code; its tests check the files with the
// real tools: promtool, and a real Prometheus scraping a real sluice,
// which must ingest every metric the dashboard and the rules name.
//
// Its tests import bench/stub and internal/testutil only; they drive
// sluice as a process, never through edge.
package deploy
