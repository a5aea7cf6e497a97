// Command sluice is the API gateway.
//
//	sluice [serve] [-c FILE] [-pid-file FILE]
//	                           run the gateway (the default command)
//	sluice upgrade [-c FILE] [-admin ADDR]
//	                           hand the listening sockets to a new process and wait for it to serve
//	sluice validate -c FILE    check a config: "ok", or every error as file:line: field: message
//	sluice config push -c FILE [-key K] [-consul ADDR] [-index N]
//	                           validate a config and write it to a Consul KV key, check-and-set
//	sluice token ...           mint a development JWT with a key from auth.jwt
//	sluice keys ...            manage API keys through the admin API
//	sluice health [-ready]     ask the admin listener's /health (or /ready): exit 0 or 1, for container health checks
//	sluice version             print the version
//	sluice help, -h, --help    print the usage
//
// The config path comes from -c, else $SLUICE_CONFIG, else ./sluice.yaml.
//
// main only wires things together: it opens the config source, builds
// the gateway (edge.New) with the version the build stamped into it
// (-ldflags "-X main.version=..."), starts the data plane and the admin
// listener, and turns signals into reloads (SIGHUP), access log reopens
// (SIGUSR1), upgrades (SIGUSR2: a new process on the same listening
// sockets, upgrade.go) and a graceful shutdown (SIGTERM, SIGINT).
//
// Invariants of upgrades: the listening sockets never close while a
// process serves them; the old process stops accepting only once the new
// one is ready, and keeps serving if it isn't; one upgrade at a time, and
// never a third generation while the old one drains. Under systemd it
// reports readiness, reloads and draining and pings the watchdog over
// $NOTIFY_SOCKET (notify.go, sd_notify(3), no library). Its tests run the
// real binary (internal/testutil.StartSluice), the client commands through
// run.
//
// It imports edge and its sub-packages; nothing imports it.
package main
