// Package deploy holds the files operators deploy sluice with (see
// README.md): nginx in front of sluice, the systemd unit, the Prometheus
// scrape config and alert rules, and the Grafana dashboard. It has no
// code; its tests check the files with the real tools: a real nginx with
// the shipped config in front of real sluice processes, the unit's
// directives (and systemd-analyze verify where it runs), promtool, and a
// real Prometheus scraping a real sluice, which must ingest every metric
// the dashboard and the rules name.
//
// Its tests import bench/stub and internal/testutil only; they drive
// sluice as a process, never through edge.
package deploy
