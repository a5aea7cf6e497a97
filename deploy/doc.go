// Package deploy holds the files operators deploy sluice with (see
// README.md): nginx in front of sluice, the systemd unit, the Prometheus
// scrape config and alert rules, the Grafana dashboard, the Dockerfile,
// the compose file and the Helm chart. It has no code; its tests check
// the files with the real tools: a real nginx with the shipped config in
// front of real sluice processes, the unit's directives (and
// systemd-analyze verify where it runs), promtool, a real Prometheus
// scraping a real sluice, which must ingest every metric the dashboard
// and the rules name, the images' final stages built and run with podman,
// helm lint and helm template (manifests decoded into k8s.io/api types);
// the compose file, which nothing here can start, statically.
//
// Of sluice's packages its tests import bench/stub and internal/testutil
// only (and k8s.io/api for the manifests' types); they drive
// sluice as a process, never through edge.
package deploy
