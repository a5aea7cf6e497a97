package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/sluicegw/sluice/edge"
	"github.com/sluicegw/sluice/edge/admin"
	"github.com/sluicegw/sluice/edge/config"
	"github.com/valyala/fasthttp"
)

// version is set at build time: -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && args[0] != "" && (args[0][0] != '-' || isHelp(args[0])) {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		var pidFile string
		path, code := parseConfigFlag("serve", args, stdout, stderr, &pidFile)
		if code >= 0 {
			return code
		}
		return serve(path, pidFile, stderr)
	case "validate":
		path, code := parseConfigFlag("validate", args, stdout, stderr, nil)
		if code >= 0 {
			return code
		}
		if _, err := config.Load(path); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		fmt.Fprintln(stdout, "ok")
		return 0
	case "config":
		if len(args) == 0 || args[0] != "push" {
			fmt.Fprintf(stderr, "sluice config: want \"push\"\n%s", usage)
			return 2
		}
		return configPush(args[1:], stdout, stderr)
	case "token":
		return mintToken(args, stdout, stderr)
	case "keys":
		return keysCmd(args, stdout, stderr)
	case "health":
		return healthCmd(args, stdout, stderr)
	case "upgrade":
		return upgradeCmd(args, stdout, stderr)
	case "version":
		fmt.Fprintf(stdout, "sluice %s (%s, %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "sluice: unknown command %q\n%s", cmd, usage)
	return 2
}

const usage = `usage:
  sluice [serve] [-c FILE] [-pid-file FILE]
                             run the gateway (default); SIGHUP reloads the config,
                             SIGUSR2 upgrades (new process, same sockets), SIGUSR1
                             reopens the access log
  sluice upgrade [-c FILE] [-admin ADDR] [-timeout 2m]
                             hand the listening sockets to a new sluice process
                             (new binary, restart-only settings) and wait: exit 0
                             once it serves, 1 if it did not (the old one serves on)
  sluice validate -c FILE    check a config file
  sluice config push -c FILE [-key sluice/config] [-consul ADDR] [-index N]
                             validate a config and write it to Consul KV (check-and-set)
  sluice token [-c FILE] -sub S -roles a,b -ttl 1h [-key ID] [-private-key FILE]
                             mint a development JWT with a key from auth.jwt
  sluice keys create|list|revoke|delete [-admin URL] ...
                             manage API keys through the admin API ($SLUICE_ADMIN_PASSWORD)
  sluice health [-c FILE] [-admin ADDR] [-ready] [-timeout 3s]
                             ask the admin listener's /health (or /ready): exit 0 if 200, else 1
  sluice version             print the version
  sluice help, -h, --help    print this
The config path comes from -c, else $SLUICE_CONFIG, else ./sluice.yaml.
Under systemd (Type=notify), serve reports readiness, reloads and
draining on $NOTIFY_SOCKET and pings the watchdog ($WATCHDOG_USEC).
`

func isHelp(arg string) bool { return arg == "-h" || arg == "-help" || arg == "--help" }

// parseConfigFlag parses serve's and validate's flags (pidFile, for
// serve only, takes -pid-file). code is -1 to go on, else the exit code:
// 0 after -h (the full usage on stdout), 2 for bad flags.
func parseConfigFlag(name string, args []string, stdout, stderr io.Writer, pidFile *string) (path string, code int) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {} // the full usage, not just this command's flags
	def := os.Getenv("SLUICE_CONFIG")
	if def == "" {
		def = "sluice.yaml"
	}
	c := fs.String("c", def, "config file")
	if pidFile != nil {
		fs.StringVar(pidFile, "pid-file", os.Getenv("SLUICE_PID_FILE"), "write the serving process's PID here (rewritten by each upgrade)")
	}
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usage)
		return "", 0
	} else if err != nil {
		fmt.Fprint(stderr, usage)
		return "", 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "sluice %s: unexpected argument %q\n", name, fs.Arg(0))
		return "", 2
	}
	return *c, -1
}

func serve(path, pidFile string, stderr io.Writer) int {
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	slog.SetDefault(log)

	// Signals are caught from the start: a reload, upgrade or log reopen
	// signal that arrives while sluice starts (a SIGUSR2 sent to every
	// process of the unit during an upgrade, say) waits for the main loop
	// instead of killing sluice. SIGTERM and SIGINT don't wait: until
	// sluice serves they end it at once (nothing to drain; a new process
	// of an upgrade that exits leaves the old one serving); after that
	// they reach the main loop, which drains.
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2)
	stopSig := make(chan os.Signal, 2)
	signal.Notify(stopSig, syscall.SIGTERM, syscall.SIGINT)
	var startMu sync.Mutex
	starting := true
	go func() {
		for s := range stopSig {
			startMu.Lock()
			if starting {
				log.Error("stopped while starting", "signal", s.String())
				os.Exit(1)
			}
			startMu.Unlock()
			sig <- s
		}
	}()

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	notify, err := newNotifier(log.Warn)
	if err != nil {
		log.Warn("not telling systemd how sluice is doing", "error", err.Error())
	}
	// First: a process started by an upgrade takes its parent's
	// listening sockets here (upgrade.go).
	up, err := newUpgrader(pidFile, 0, log)
	if err != nil {
		log.Error("startup failed", "error", err.Error())
		return 1
	}
	defer up.stop()
	// At the final exit the PID file goes (unless it names another
	// process by then: the new one of an upgrade).
	defer up.removePIDFile()
	parentPID := 0
	if up.parent != nil {
		parentPID = os.Getppid()
	}
	// Each listener is keyed by its role and configured address: a new
	// process inherits the ones whose address did not change and opens
	// the others (two ":0" addresses of one role are told apart by count).
	seen := map[string]int{}
	listen := func(role, addr string) (net.Listener, error) {
		key := role + " " + listenKey(addr)
		if seen[key]++; seen[key] > 1 {
			key += "#" + strconv.Itoa(seen[key])
		}
		return up.listen(key, addr)
	}
	src, cfg, err := openSource(ctx, path, log)
	if err != nil {
		fmt.Fprintln(stderr, err)
		log.Error("config refused; not starting", "source", path)
		return 1
	}
	gw, err := edge.New(cfg, log, version)
	if err != nil {
		log.Error("startup failed", "error", err.Error())
		return 1
	}
	if up.parent != nil {
		// Quota counts in a file: the parent counts and saves until it
		// exits; this process saves nothing until then, and then adds
		// what the parent counted since this one loaded the file.
		gw.HoldQuotaSaves()
		go func() {
			<-up.parentExited
			if err := gw.MergeSavedQuotas(); err != nil {
				log.Error("upgrade: could not take over the previous process's quota counts", "error", err.Error())
			}
		}()
	}
	var ln net.Listener // nil with listen: off (TLS listeners only)
	listenAddr := "off"
	if cfg.Listen != "off" {
		if ln, err = listen("listen", cfg.Listen); err != nil {
			log.Error("listen failed", "listen", cfg.Listen, "error", err.Error())
			return 1
		}
		listenAddr = ln.Addr().String()
	}
	tlsAddrs := gw.TLSListeners()
	tlsLns := make([]net.Listener, len(tlsAddrs))
	for i, addr := range tlsAddrs {
		if tlsLns[i], err = listen("listen_tls", addr); err != nil {
			log.Error("listen failed", "listen_tls", addr, "error", err.Error())
			return 1
		}
		tlsAddrs[i] = tlsLns[i].Addr().String()
	}
	var aln net.Listener // nil with admin.listen: off
	adminAddr := "off"
	if cfg.Admin.Listen != "off" {
		if aln, err = listen("admin", cfg.Admin.Listen); err != nil {
			log.Error("admin listen failed", "listen", cfg.Admin.Listen, "error", err.Error())
			return 1
		}
		adminAddr = aln.Addr().String()
	}
	startMu.Lock()
	starting = false // from here on a stop signal drains
	startMu.Unlock()
	// What can fail is done before a connection (data or admin) is accepted: a failure
	// after that would drop what this process had accepted.
	if err := up.prepare(); err != nil {
		log.Error("startup failed: could not report readiness (PID file, or the handover from the previous process)", "error", err.Error())
		return 1
	}
	certs := &certWatcher{ctx: ctx, gw: gw, log: log}
	reload := func() error {
		notify.reloading()
		err := gw.ReloadFrom(func() (*config.Config, error) { return src.Load(ctx) })
		certs.watchNew() // a reload may name new certificate files
		if err != nil {
			notify.ready("serving; the last reload was refused: " + strings.SplitN(err.Error(), "\n", 2)[0])
		} else {
			notify.ready(fmt.Sprintf("serving %d routes", len(gw.Snapshot().Config.Routes)))
		}
		return err
	}
	certs.reload = func() { _ = reload() }

	// upgrade checks the config a new process would load (a refused one
	// never starts a process), then hands over (upgrade.go).
	upgrade := func() (int, error) {
		if _, err := src.Load(ctx); err != nil {
			log.Error("upgrade refused: the config does not load; this process keeps serving", "error", err.Error())
			return 0, err
		}
		log.Info("upgrade: starting a new process", "binary", os.Args[0])
		pid, err := up.upgrade(notify)
		if err != nil {
			log.Error("upgrade failed; this process keeps serving", "error", err.Error())
			return 0, err
		}
		log.Info("upgrade: the new process serves", "new_pid", pid)
		return pid, nil
	}

	// Key and quota writes are gated during upgrades only when they go
	// to files (keys in a file store, or quotas without Redis): Redis is
	// shared by both processes and needs no gate.
	var fileWrites *admin.WriteGate
	if cfg.Auth.APIKeys.Store != "redis" || cfg.Redis == nil {
		fileWrites = up.writes
	}
	var adminSrv *fasthttp.Server
	if aln != nil {
		adminSrv = &fasthttp.Server{
			Name:         "sluice-admin",
			ReadTimeout:  10 * time.Second,
			WriteTimeout: 30 * time.Second,
			IdleTimeout:  60 * time.Second,
			Handler: admin.NewAuth(cfg.Admin.AuthOn(), cfg.Admin.Username, cfg.Admin.Password, cfg.Admin.Token, log).
				SetSessionTTL(cfg.Admin.SessionTTL.D()).AllowHosts(cfg.Admin.Listen, cfg.Admin.Hosts).SetPublicOrigin(cfg.Admin.PublicOrigin).Wrap(admin.Handler(admin.Hooks{
				Ready:    gw.Ready,
				Draining: gw.Draining,
				Reload:   reload,
				Upgrade:  upgrade,
				Config:   func() *config.Config { return gw.Snapshot().Config },
				Info: func() any {
					return info(gw, listenAddr, adminAddr)
				},
				Upstreams: func() any {
					return map[string]any{"upstreams": gw.UpstreamStatus(), "discovery": gw.DiscoveryStatus()}
				},
				Breakers:      func() any { return gw.CircuitBreakers() },
				ResetBreakers: gw.ResetCircuitBreakers,
				Keys:          gw.KeyStore(),
				Quotas:        gw.Quotas(),
				PurgeCache:    gw.PurgeCache,
				Metrics:       gw.Metrics().Handler,
				PrometheusURL: func() string { return gw.Snapshot().Config.Admin.PrometheusURL },
				Writes:        fileWrites,
			})),
		}
		go func() {
			if err := adminSrv.Serve(aln); err != nil {
				log.Error("admin server stopped", "error", err.Error())
			}
		}()
	}

	if err := src.Watch(ctx, func() { _ = reload() }); err != nil {
		log.Warn("config source is not watched; reload with SIGHUP or POST /admin/reload", "source", src.String(), "error", err.Error())
	}

	// A certificate renewed in place (certbot, cert-manager) reloads like
	// a config change: the new one is served to new handshakes.
	certs.watchNew()

	serveErr := make(chan error, 1+len(tlsLns))
	if ln != nil {
		go func() { serveErr <- gw.Serve(ln) }()
	}
	for i, l := range tlsLns {
		go func() { serveErr <- gw.ServeTLS(l, i) }()
	}
	// The listeners are open (connections queue until accepted) and the
	// first snapshot serves. After an upgrade, the parent hands over now;
	// until it has, it is systemd's main PID and its pings count.
	status := fmt.Sprintf("serving %d routes on %s", len(gw.Snapshot().Config.Routes), strings.Join(append([]string{listenAddr}, tlsAddrs...), ", "))
	mainNow, err := up.ready()
	if err != nil {
		// Serving already: drain what was accepted; the previous process
		// (if any) serves on.
		log.Error("startup failed: could not report readiness (PID file, or the handover from the previous process)", "error", err.Error())
		shutdown(gw, adminSrv, true, cfg.Server.ShutdownTimeout.D(), "startup failed", sig, log)
		return 1
	}
	log.Info("sluice started", "version", version, "pid", os.Getpid(), "upgraded_from", parentPID, "config", src.String(),
		"listen", listenAddr, "listen_tls", strings.Join(tlsAddrs, ","), "admin", adminAddr, "routes", len(gw.Snapshot().Config.Routes))
	var pings <-chan time.Time
	stopPings := func() {}
	defer func() { stopPings() }()
	if mainNow == nil {
		notify.ready(status)
		pings, stopPings = notify.pings()
	}

	for {
		select {
		case <-pings:
			notify.send("WATCHDOG=1")
		case <-mainNow:
			mainNow = nil
			notify.send(notify.withPing("MAINPID="+strconv.Itoa(os.Getpid()), "READY=1", fmt.Sprintf("STATUS=%s (upgraded from pid %d)", status, parentPID))...)
			pings, stopPings = notify.pings()
			log.Info("upgrade: this process took over from the previous one", "previous_pid", parentPID)
		case <-up.handedOver():
			// No STOPPING=1: the service goes on, in the new process.
			stopPings()
			return shutdown(gw, adminSrv, true, cfg.Server.ShutdownTimeout.D(), fmt.Sprintf("upgraded (pid %d serves now)", up.newPID), sig, log)
		case err := <-serveErr:
			log.Error("server stopped", "error", fmt.Sprint(err))
			return 1
		case s := <-sig:
			if s == syscall.SIGUSR2 {
				log.Info("SIGUSR2: upgrading")
				go func() { _, _ = upgrade() }() // the loop keeps pinging meanwhile
				continue
			}
			if s == syscall.SIGHUP {
				log.Info("SIGHUP: reloading config", "source", src.String())
				_ = reload()
				continue
			}
			if s == syscall.SIGUSR1 {
				reopenAccessLog(gw, log)
				continue
			}
			notify.stopping()
			up.stop() // an upgrade under way kills its new process
			return shutdown(gw, adminSrv, false, cfg.Server.ShutdownTimeout.D(), s.String(), sig, log)
		}
	}
}

func reopenAccessLog(gw *edge.Gateway, log *slog.Logger) {
	if err := gw.ReopenAccessLog(); err != nil {
		log.Error("SIGUSR1: reopening the access log failed; writing it to stderr", "error", err.Error())
	} else {
		log.Info("SIGUSR1: access log reopened")
	}
}

// listenKey is addr as a socket is told apart by: the wildcard however
// written (":80", "0.0.0.0:80", "[::]:80": Go listens on all of them the
// same way, dual-stack), an IP in its canonical form, a named port as its
// number. So a config that writes the same address another way inherits
// the socket rather than failing to open a second one next to it.
func listenKey(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if p, err := net.LookupPort("tcp", port); err == nil {
		port = strconv.Itoa(p)
	}
	if ip := net.ParseIP(host); ip != nil {
		if ip.IsUnspecified() {
			host = ""
		} else {
			host = ip.String()
		}
	}
	return net.JoinHostPort(host, port)
}

// shutdown drains. The admin listener stays open while the data plane
// drains (probes see /ready answer "draining"), unless a new process has
// taken over: then it closes at once, so admin calls reach the new one.
// SIGTERM or SIGINT on sig while draining (a stop during an upgrade's
// drain, or a second stop signal) cuts the drain short; SIGUSR1 still
// reopens the access log (logrotate signals every process of the unit).
func shutdown(gw *edge.Gateway, adminSrv *fasthttp.Server, handedOver bool, timeout time.Duration, why string, sig <-chan os.Signal, log *slog.Logger) int {
	log.Info("shutting down: draining in-flight requests", "reason", why, "timeout", timeout.String(),
		"open_connections", gw.OpenConnections())
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	go func() {
		for {
			select {
			case s := <-sig:
				if s == syscall.SIGUSR1 { // logrotate during a drain
					reopenAccessLog(gw, log)
					continue
				}
				if s == syscall.SIGTERM || s == syscall.SIGINT {
					log.Info("signal while draining: closing the remaining connections now", "signal", s.String(),
						"open_connections", gw.OpenConnections())
					cancel()
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	adminDone := make(chan struct{})
	go func() {
		defer close(adminDone)
		if adminSrv != nil && handedOver {
			_ = adminSrv.ShutdownWithContext(ctx)
		}
	}()
	err := gw.Shutdown(ctx)
	<-adminDone
	if adminSrv != nil && !handedOver {
		_ = adminSrv.ShutdownWithContext(ctx)
	}
	if err != nil && !errors.Is(err, net.ErrClosed) {
		log.Error("shutdown incomplete", "error", err.Error())
		return 1
	}
	log.Info("shutdown complete")
	return 0
}

type routeInfo struct {
	Name     string   `json:"name"`
	Match    string   `json:"match"`
	Methods  []string `json:"methods,omitempty"`
	Host     string   `json:"host,omitempty"`
	Upstream string   `json:"upstream"`
}

type upstreamInfo struct {
	Name     string   `json:"name"`
	Balancer string   `json:"balancer"`
	Targets  []string `json:"targets"`
}

func info(gw *edge.Gateway, listen, adminAddr string) any {
	snap := gw.Snapshot()
	cfg := snap.Config
	routes := make([]routeInfo, 0, len(cfg.Routes))
	for _, r := range cfg.Routes {
		m := "prefix " + r.Match.Prefix
		if r.Match.Path != "" {
			m = "path " + r.Match.Path
		}
		if r.Match.Regex != "" {
			m = "regex " + r.Match.Regex
		}
		routes = append(routes, routeInfo{r.Name, m, r.Match.Methods, r.Match.Host, r.SplitDescription()})
	}
	ups := make([]upstreamInfo, 0, len(cfg.Upstreams))
	for name, u := range cfg.Upstreams {
		ui := upstreamInfo{Name: name, Balancer: u.Balancer}
		for _, t := range u.Targets {
			ui.Targets = append(ui.Targets, t.URL)
		}
		ups = append(ups, ui)
	}
	return map[string]any{
		"version":           version,
		"pid":               os.Getpid(),
		"go":                runtime.Version(),
		"uptime_seconds":    int64(time.Since(gw.Started()).Seconds()),
		"config":            cfg.Source,
		"listen":            listen,
		"admin":             adminAddr,
		"reloads":           gw.Reloads(),
		"last_reload_error": gw.LastReloadError(),
		"open_connections":  gw.OpenConnections(),
		"redis_fallback":    gw.RedisFallback(),
		"routes":            routes,
		"upstreams":         ups,
	}
}

// openSource loads the config sluice starts with. The file at path is the
// config, unless it sets consul.config_key: then it only says how to reach
// Consul, and the config is that key's value.
func openSource(ctx context.Context, path string, log *slog.Logger) (config.Source, *config.Config, error) {
	boot, err := config.Load(path)
	if err != nil {
		return nil, nil, err
	}
	if boot.Consul == nil || boot.Consul.ConfigKey == "" {
		return config.FileSource{Path: path, Log: log}, boot, nil
	}
	client, err := config.ConsulClient(boot.Consul)
	if err != nil {
		return nil, nil, err
	}
	src := &config.ConsulSource{Bootstrap: boot, Client: client, Log: log}
	// Consul may still be starting next to us: a few tries before giving up.
	for try := 1; ; try++ {
		cfg, err := src.Load(ctx)
		var ce config.Errors
		if err == nil || errors.As(err, &ce) || try == 5 {
			return src, cfg, err
		}
		log.Warn("config from consul not available yet", "key", boot.Consul.ConfigKey, "try", try, "error", err.Error())
		time.Sleep(time.Second)
	}
}

// configPush validates a config file and writes it to a Consul KV key with
// check-and-set: it reads the key's ModifyIndex (or takes -index) and the
// write succeeds only if nobody changed the key since, so two operators
// can't silently overwrite each other.
func configPush(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("config push", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("c", "", "config file to push (required)")
	key := fs.String("key", envOr("SLUICE_CONSUL_KEY", "sluice/config"), "Consul KV key")
	addr := fs.String("consul", "", "Consul address (default $CONSUL_HTTP_ADDR or 127.0.0.1:8500)")
	index := fs.Int64("index", -1, "expected ModifyIndex of the key (0: must not exist yet); default: read it now")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *path == "" {
		fmt.Fprintln(stderr, "sluice config push: -c FILE is required")
		return 2
	}
	data, err := os.ReadFile(*path)
	if err != nil {
		fmt.Fprintln(stderr, "sluice config push:", err)
		return 1
	}
	if _, err := config.Parse(*path, data, os.LookupEnv); err != nil {
		fmt.Fprintln(stderr, err)
		fmt.Fprintln(stderr, "sluice config push: not pushed")
		return 1
	}
	client, err := config.ConsulClient(&config.Consul{Address: *addr})
	if err != nil {
		fmt.Fprintln(stderr, "sluice config push:", err)
		return 1
	}
	expect := uint64(max(*index, 0))
	if *index < 0 {
		pair, _, err := client.KV().Get(*key, nil)
		if err != nil {
			fmt.Fprintln(stderr, "sluice config push: reading", *key+":", err)
			return 1
		}
		if pair != nil {
			expect = pair.ModifyIndex
		}
	}
	ok, _, err := client.KV().CAS(&api.KVPair{Key: *key, Value: data, ModifyIndex: expect}, nil)
	if err != nil {
		fmt.Fprintln(stderr, "sluice config push: writing", *key+":", err)
		return 1
	}
	if !ok {
		fmt.Fprintf(stderr, "sluice config push: %s changed since modify index %d (someone else pushed); not written. Check the key and push again.\n", *key, expect)
		return 1
	}
	pair, _, err := client.KV().Get(*key, nil)
	if err == nil && pair != nil {
		fmt.Fprintf(stdout, "ok: %s written (modify index %d)\n", *key, pair.ModifyIndex)
	} else {
		fmt.Fprintf(stdout, "ok: %s written\n", *key)
	}
	return 0
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
