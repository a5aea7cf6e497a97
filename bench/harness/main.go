package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/sluicegw/sluice/bench/stub"
)

var (
	binDir    = flag.String("bin", "bin", "directory holding the sluice and upstream binaries (make build)")
	duration  = flag.Duration("d", 5*time.Second, "length of each wrk run")
	rounds    = flag.Int("rounds", 3, "interleaved rounds per scenario (direct, nginx, fasthttp, sluice, direct, ...)")
	conns     = flag.Int("c", 64, "wrk connections")
	threads   = flag.Int("t", 2, "wrk threads")
	vegetaDur = flag.Duration("vegeta", 5*time.Second, "length of each constant-rate vegeta run (0: skip)")
	lowRate   = flag.Int("low-rate", 3000, "second constant rate for vegeta, low enough for the load generator to pace exactly")
	only      = flag.String("scenario", "", "run only the scenarios whose name contains this")
	profile   = flag.String("profile", "", "capture CPU and allocation profiles of sluice into this directory instead")
	keep      = flag.Bool("keep", false, "keep the work directory (configs, logs)")
	soak      = flag.Duration("soak", 0, "instead: hold 1000 idle connections to sluice, load it with wrk this long, and print its RSS every 5 s")
	sluiceEnv = flag.String("sluice-env", "", "extra environment for sluice, space-separated (e.g. \"GOMAXPROCS=1 GOGC=200\")")
	sluiceCfg = flag.String("sluice-config", "", "extra top-level config for sluice in every scenario (e.g. \"server: { max_header_bytes: 8192 }\")")
	idleMem   = flag.Int("idle-mem", 0, "instead: open this many idle keep-alive connections to each target and print what each holds (RSS; for sluice also Go stack and heap)")
)

const jwtSecret = "bench-secret-0123456789abcdef0123"

func main() {
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "harness:", err)
		os.Exit(1)
	}
}

// scenario is one configuration measured for each of its targets.
type scenario struct {
	name      string
	bodySize  int      // stub answer size; 0: its short JSON line
	jsonBody  bool     // the bodySize bytes are API-like JSON (stub.APIJSON)
	sluice    string   // extra top-level config for sluice
	route     string   // extra route fields
	nginx     string   // extra directives in nginx's location
	header    string   // request header for sluice ("Name: value")
	allHeader string   // request header for every target instead
	idle      int      // idle keep-alive connections held open during the runs
	targets   []string // nil: direct, nginx, fasthttp, sluice
	gzipped   bool     // nginx and sluice must answer gzip (checked before the runs)
	tls       bool     // sluice and nginx terminate TLS (tls.go)
	// nginxCache turns on nginx's proxy_cache (the stub's answers held
	// 60 s): the cache-hit scenario compares the two caches.
	nginxCache bool
}

// headerFor is the request header a target gets: only sluice checks
// credentials, so only it gets the scenario's header; allHeader (what a
// client asks for, such as Accept-Encoding) goes to every target.
func (sc scenario) headerFor(target string) string {
	if sc.allHeader != "" {
		return sc.allHeader
	}
	if target == "sluice" {
		return sc.header
	}
	return ""
}

func (sc scenario) targetList() []string {
	if sc.targets != nil {
		return sc.targets
	}
	return []string{"direct", "nginx", "fasthttp", "sluice"}
}

func scenarios() []scenario {
	token := mintToken()
	return []scenario{
		{name: "bare route"},
		{name: "full route (JWT, rate limit, metrics, access log 1%)",
			sluice: `auth: { jwt: { keys: [ { id: k1, algorithm: HS256, secret: "` + jwtSecret + `" } ] } }
access_log: { enabled: true, output: access.log, sample: 0.01 }`,
			route:  `, auth: jwt, rate_limit: { rate: 100000000, per: 1s, key: [ip] }`,
			header: "Authorization: Bearer " + token},
		{name: "1 KiB response", bodySize: 1 << 10},
		{name: "64 KiB response", bodySize: 64 << 10},
		{name: "1000 idle keep-alive connections + load", idle: 1000},
		// The same 32 KiB of JSON from the stub, gzip at level 5 by both
		// (sluice's "default", klauspost/compress; nginx's zlib), for a
		// client that accepts gzip. The fasthttp floor does not compress;
		// direct is the uncompressed answer, for the bytes saved.
		{name: "gzip 32 KiB JSON (sluice compression vs nginx gzip on, level 5)", bodySize: 32 << 10, jsonBody: true,
			sluice:    `compression: { algorithms: [gzip], level: default, min_size: 1KiB, types: [application/json] }`,
			nginx:     `gzip on; gzip_comp_level 5; gzip_types application/json; gzip_min_length 1024; gzip_proxied any; gzip_vary on;`,
			allHeader: "Accept-Encoding: gzip", targets: []string{"direct", "nginx", "sluice"}, gzipped: true},
		{name: "TLS termination (direct and floor stay plain)", tls: true},
		// Every request a hit: sluice's memory cache against nginx's
		// proxy_cache on the same 1 KiB answer. direct and fasthttp have
		// no cache: their rows are plain proxying, for scale.
		{name: "cache hit, 1 KiB (sluice cache vs nginx proxy_cache)", bodySize: 1 << 10,
			route: `, cache: { ttl: 60s }`, nginxCache: true},
	}
}

func mintToken() string {
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "bench", "exp": time.Now().Add(24 * time.Hour).Unix(),
	})
	t.Header["kid"] = "k1" // the key's id in the scenario's config
	tok, err := t.SignedString([]byte(jwtSecret))
	if err != nil {
		panic(err)
	}
	return tok
}

func run(ctx context.Context) error {
	for _, tool := range []string{"wrk", "nginx"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found (make bench-proxy installs it)", tool)
		}
	}
	work, err := os.MkdirTemp("", "sluice-bench-")
	if err != nil {
		return err
	}
	if *keep {
		fmt.Fprintln(os.Stderr, "work directory:", work)
	} else {
		defer os.RemoveAll(work)
	}
	if *profile != "" {
		return captureProfiles(ctx, work)
	}
	if *soak > 0 {
		return soakRSS(ctx, work)
	}
	if *idleMem > 0 {
		return idleMemory(ctx, work, *idleMem)
	}
	fmt.Printf("# sluice vs nginx vs direct\n\n%s\n\n", machine())
	fmt.Printf("wrk -t%d -c%d -d%s, %d interleaved rounds per target; vegeta for %s at half of nginx's best rps and at %d rps.\n\n",
		*threads, *conns, *duration, *rounds, *vegetaDur, *lowRate)
	for _, sc := range scenarios() {
		if *only != "" && !strings.Contains(sc.name, *only) {
			continue
		}
		if err := runScenario(ctx, work, sc); err != nil {
			return fmt.Errorf("%s: %w", sc.name, err)
		}
	}
	return nil
}

// proc is a started server.
type proc struct {
	name string
	cmd  *exec.Cmd
	pids func() []int // the processes whose CPU and memory count (nginx: master and workers)
}

func start(ctx context.Context, name, logPath string, bin string, env []string, args ...string) (*proc, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{name: name, cmd: cmd}
	p.pids = func() []int { return append([]int{cmd.Process.Pid}, children(cmd.Process.Pid)...) }
	return p, nil
}

func (p *proc) stop() {
	if p == nil || p.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// freeAddrs returns n distinct free loopback addresses: the listeners stay
// open until all are chosen, or the kernel could hand out one port twice.
func freeAddrs(n int) []string {
	var out []string
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			panic(err)
		}
		defer ln.Close()
		out = append(out, ln.Addr().String())
	}
	return out
}

// waitHTTP waits for a 200 from the expected server: each of the three
// identifies itself (the stub's Server header, nginx's, sluice's
// X-Request-Id and Via), so a port mix-up can't measure the wrong one.
func waitHTTP(ctx context.Context, name, url, header string) error {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		if k, v, ok := strings.Cut(header, ": "); ok {
			req.Header.Set(k, v)
		}
		if resp, err := insecureClient.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			right := map[string]bool{
				"direct":   resp.Header.Get("Server") == "stub" && resp.Header.Get("X-Request-Id") == "",
				"nginx":    strings.HasPrefix(resp.Header.Get("Server"), "nginx"),
				"fasthttp": resp.Header.Get("Server") == "stub" && resp.Header.Get("X-Request-Id") == "",
				"sluice":   resp.Header.Get("X-Request-Id") != "" && resp.Header.Get("Via") != "",
			}[name]
			if resp.StatusCode == 200 && right {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s (%s) did not answer 200 within 15s", name, url)
}

// fleet is the four servers of a scenario.
type fleet struct {
	stub, sluice, nginx, floor *proc
	urls                       map[string]string // by target name
}

func (f *fleet) stop() {
	for _, p := range []*proc{f.sluice, f.nginx, f.floor, f.stub} {
		p.stop()
	}
}

// servers starts the stub, sluice, nginx and the fasthttp floor for a
// scenario. The caller stops the fleet, also after an error.
func servers(ctx context.Context, dir string, sc scenario) (f *fleet, err error) {
	f = &fleet{}
	addrs := freeAddrs(6)
	stubAddr, sluiceAddr, adminAddr, nginxAddr, floorAddr, sluiceTLSAddr := addrs[0], addrs[1], addrs[2], addrs[3], addrs[4], addrs[5]
	sluiceExtra, nginxListen, scheme := sc.sluice, "listen "+nginxAddr+";", "http"
	if sc.tls {
		var tlsExtra string
		if tlsExtra, nginxListen, err = tlsConfigs(dir, sluiceTLSAddr, nginxAddr); err != nil {
			return f, err
		}
		sluiceExtra += "\n" + tlsExtra
		scheme = "https"
	}
	f.stub, err = start(ctx, "stub", filepath.Join(dir, "stub.log"), filepath.Join(*binDir, "upstream"), nil,
		"-addr", stubAddr, "-name", "bench", "-body-size", strconv.Itoa(sc.bodySize), "-body-json="+strconv.FormatBool(sc.jsonBody))
	if err != nil {
		return f, err
	}
	cfg := fmt.Sprintf(`listen: %s
admin: { listen: %s, password: bench }
%s
upstreams:
  stub: { targets: [ { url: "http://%s" } ] }
routes:
  - { name: bench, match: { prefix: / }, upstream: stub %s }
`, sluiceAddr, adminAddr, sluiceExtra+"\n"+*sluiceCfg, stubAddr, sc.route)
	cfgPath := filepath.Join(dir, "sluice.yaml")
	if err = os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return f, err
	}
	f.sluice, err = start(ctx, "sluice", filepath.Join(dir, "sluice.log"), filepath.Join(*binDir, "sluice"), strings.Fields(*sluiceEnv), "serve", "-c", cfgPath)
	if err != nil {
		return f, err
	}
	cacheZone, cacheUse, userLine := "", "", ""
	if sc.nginxCache {
		cacheZone = fmt.Sprintf("proxy_cache_path %s/cache levels=1:2 keys_zone=c:10m max_size=256m inactive=10m use_temp_path=off;", dir)
		cacheUse = "proxy_cache c; proxy_cache_valid 200 60s; proxy_cache_lock on; add_header X-Cache-Status $upstream_cache_status;"
		// The workers write the cache under the (private) work directory,
		// so they run as the harness's user (a non-root master ignores
		// this with a warning; a root one would drop them to nobody).
		if u, uerr := user.Current(); uerr == nil {
			userLine = "user " + u.Username + ";"
		}
	}
	ngxConf := fmt.Sprintf(`worker_processes auto;
%[6]s
daemon off;
master_process on;
pid %[1]s/nginx.pid;
error_log %[1]s/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  upstream stub { server %[2]s; keepalive 128; }
  %[4]s
  server {
    %[3]s
    location / {
      proxy_pass http://stub;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      # What sluice does to every request, so both do the same work.
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $host;
      proxy_set_header X-Request-Id $request_id;
      add_header X-Request-Id $request_id;
      %[5]s
    }
  }
}
`, dir, stubAddr, nginxListen, cacheZone, sc.nginx+" "+cacheUse, userLine)
	ngxPath := filepath.Join(dir, "nginx.conf")
	if err = os.WriteFile(ngxPath, []byte(ngxConf), 0o600); err != nil {
		return f, err
	}
	f.nginx, err = start(ctx, "nginx", filepath.Join(dir, "nginx.log"), "nginx", nil, "-c", ngxPath, "-p", dir, "-e", filepath.Join(dir, "nginx-error.log"))
	if err != nil {
		return f, err
	}
	f.floor, err = start(ctx, "floor", filepath.Join(dir, "floor.log"), filepath.Join(*binDir, "floor"), nil, "-addr", floorAddr, "-upstream", stubAddr)
	if err != nil {
		return f, err
	}
	sluiceURL := "http://" + sluiceAddr + "/"
	if sc.tls {
		sluiceURL = "https://" + sluiceTLSAddr + "/"
	}
	f.urls = map[string]string{"direct": "http://" + stubAddr + "/", "nginx": scheme + "://" + nginxAddr + "/",
		"fasthttp": "http://" + floorAddr + "/", "sluice": sluiceURL}
	for name, u := range f.urls {
		if err = waitHTTP(ctx, name, u, sc.headerFor(name)); err != nil {
			return f, err
		}
	}
	if sc.gzipped {
		for _, name := range []string{"nginx", "sluice"} {
			if err = checkGzip(ctx, f.urls[name], stub.APIJSON(sc.bodySize)); err != nil {
				return f, fmt.Errorf("%s: %w", name, err)
			}
		}
	}
	if sc.nginxCache {
		// Both caches must really be answering, or the table compares
		// something else.
		for name, hit := range map[string]func(http.Header) bool{
			"nginx":  func(h http.Header) bool { return h.Get("X-Cache-Status") == "HIT" },
			"sluice": func(h http.Header) bool { return strings.HasPrefix(h.Get("Cache-Status"), "sluice; hit") },
		} {
			resp, gerr := http.Get(f.urls[name])
			if gerr != nil {
				return f, gerr
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if !hit(resp.Header) {
				return f, fmt.Errorf("%s: not a cache hit after warm-up: %v", name, resp.Header)
			}
		}
	}
	return f, nil
}

// checkGzip makes sure a target compresses: its answer to a client
// accepting gzip is gzip, and decodes to the stub's body.
func checkGzip(ctx context.Context, url string, want []byte) error {
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := (&http.Client{Transport: &http.Transport{DisableCompression: true}}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if ce := resp.Header.Get("Content-Encoding"); ce != "gzip" {
		return fmt.Errorf("Content-Encoding %q, want gzip", ce)
	}
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		return err
	}
	got, err := io.ReadAll(zr)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("gunzipped answer (%d bytes) differs from the stub's (%d)", len(got), len(want))
	}
	return nil
}

// constantRate is one vegeta run.
type constantRate struct {
	rate int
	vegetaResult
}

// result is one target's figures in a scenario, over all its rounds.
// The per-round slices are index-aligned across targets: round i of
// sluice ran right after round i of nginx, which is what the paired
// ratios compare.
type result struct {
	rps              []float64
	cpuPerReq        []float64       // us of user+system CPU per request, per round
	readsPerReq      []float64       // read(2)-family syscalls per request, per round
	writesPerReq     []float64       // write(2)-family syscalls per request, per round
	p50, p99, p999   []time.Duration // wrk, at full load
	constant         []constantRate  // vegeta runs, one per rate
	peakRSS          int64           // bytes, VmHWM summed over the target's processes
	cpuSeconds, reqs float64
	bytes            float64 // read by wrk, headers included
	errors           int
}

func runScenario(ctx context.Context, base string, sc scenario) error {
	dir := filepath.Join(base, strings.NewReplacer(" ", "_", "(", "", ")", "", ",", "", "%", "").Replace(sc.name))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := servers(ctx, dir, sc)
	defer f.stop()
	if err != nil {
		return err
	}
	urls := f.urls
	procs := map[string]*proc{"direct": f.stub, "nginx": f.nginx, "fasthttp": f.floor, "sluice": f.sluice}
	targets := sc.targetList()
	if sc.idle > 0 {
		for _, name := range targets {
			closeIdle, err := holdIdle(urls[name], sc.idle)
			if err != nil {
				return fmt.Errorf("%s: idle connections: %w", name, err)
			}
			defer closeIdle()
		}
	}
	res := map[string]*result{}
	for _, t := range targets {
		res[t] = &result{}
	}
	for round := 0; round < *rounds; round++ {
		for _, name := range targets {
			pids := procs[name].pids()
			cpu0, io0 := cpuSeconds(pids), syscalls(pids)
			w, err := runWrk(ctx, dir, urls[name], sc.headerFor(name), *duration)
			if err != nil {
				return fmt.Errorf("wrk %s: %w", name, err)
			}
			cpu, io1 := cpuSeconds(pids)-cpu0, syscalls(pids)
			r := res[name]
			r.cpuSeconds += cpu
			r.reqs += w.requests
			r.bytes += w.bytes
			r.rps = append(r.rps, w.rps)
			if n := w.requests; n > 0 {
				r.cpuPerReq = append(r.cpuPerReq, cpu/n*1e6)
				r.readsPerReq = append(r.readsPerReq, float64(io1.reads-io0.reads)/n)
				r.writesPerReq = append(r.writesPerReq, float64(io1.writes-io0.writes)/n)
			}
			r.p50, r.p99, r.p999 = append(r.p50, w.p50), append(r.p99, w.p99), append(r.p999, w.p999)
			r.errors += w.errors
		}
	}
	// Half of nginx's best, as the budget says; and a low rate that the
	// load generator itself can pace without queueing on this machine.
	rates := []int{int(median(res["nginx"].rps) / 2), *lowRate}
	for _, rate := range rates {
		if *vegetaDur <= 0 || rate <= 0 {
			continue
		}
		for _, name := range targets {
			v, err := runVegeta(ctx, dir, urls[name], sc.headerFor(name), rate)
			if err != nil {
				return fmt.Errorf("vegeta %s: %w", name, err)
			}
			res[name].constant = append(res[name].constant, constantRate{rate, v})
		}
	}
	for _, name := range targets {
		r := res[name]
		r.peakRSS = peakRSS(procs[name].pids())
	}
	printTable(sc, res, targets)
	if sc.tls {
		printNewConnRates(ctx, urls)
	}
	return nil
}

// holdIdle opens n keep-alive connections, sends one request on each and
// keeps them open without further traffic.
func holdIdle(url string, n int) (func(), error) {
	host := strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/")
	var conns []net.Conn
	closeAll := func() {
		for _, c := range conns {
			c.Close()
		}
	}
	for i := 0; i < n; i++ {
		c, err := net.DialTimeout("tcp", host, 2*time.Second)
		if err != nil {
			closeAll()
			return nil, err
		}
		conns = append(conns, c)
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := fmt.Fprintf(c, "GET /__stub/status?code=200 HTTP/1.1\r\nHost: bench\r\n\r\n"); err != nil {
			closeAll()
			return nil, err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			closeAll()
			return nil, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		_ = c.SetDeadline(time.Time{})
	}
	return closeAll, nil
}

type wrkResult struct {
	rps, requests  float64
	bytes          float64
	p50, p99, p999 time.Duration
	errors         int
}

// wrk's Lua done() hook prints exact percentiles (its --latency table
// stops at p99).
const wrkScript = `
done = function(summary, latency, requests)
  io.write(string.format("SLUICE-BENCH %d %d %d %d %d %d %d\n",
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout,
    summary.bytes))
end
`

func runWrk(ctx context.Context, dir, url, header string, d time.Duration) (wrkResult, error) {
	script := filepath.Join(dir, "report.lua")
	if err := os.WriteFile(script, []byte(wrkScript), 0o644); err != nil {
		return wrkResult{}, err
	}
	// wrk reads "60s", not Go's "1m0s".
	args := []string{"-t" + strconv.Itoa(*threads), "-c" + strconv.Itoa(*conns), "-d" + strconv.Itoa(int(d.Seconds())) + "s", "--timeout", "5s", "-s", script}
	if header != "" {
		args = append(args, "-H", header)
	}
	out, err := exec.CommandContext(ctx, "wrk", append(args, url)...).CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("%v: %s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 8 && f[0] == "SLUICE-BENCH" {
			n := make([]float64, 7)
			for i := range n {
				n[i], _ = strconv.ParseFloat(f[i+1], 64)
			}
			return wrkResult{
				requests: n[0], rps: n[0] / (n[1] / 1e6),
				p50: time.Duration(n[2]) * time.Microsecond, p99: time.Duration(n[3]) * time.Microsecond,
				p999: time.Duration(n[4]) * time.Microsecond, errors: int(n[5]), bytes: n[6],
			}, nil
		}
	}
	return wrkResult{}, fmt.Errorf("no result line in wrk output:\n%s", out)
}

type vegetaResult struct {
	p50, p99, max time.Duration
	success       float64
}

func runVegeta(ctx context.Context, dir, url, header string, rate int) (vegetaResult, error) {
	vegeta, err := exec.LookPath("vegeta")
	if err != nil {
		gobin := filepath.Join(os.Getenv("HOME"), "go", "bin", "vegeta")
		if _, statErr := os.Stat(gobin); statErr != nil {
			return vegetaResult{}, errors.New("vegeta not found (make bench-proxy installs it)")
		}
		vegeta = gobin
	}
	targets := "GET " + url + "\n"
	if header != "" {
		targets += header + "\n"
	}
	results := filepath.Join(dir, "vegeta.bin")
	attack := exec.CommandContext(ctx, vegeta, "attack", "-rate", strconv.Itoa(rate), "-duration", vegetaDur.String(),
		// Bounded connections and workers: unbounded, vegeta opens and
		// drops connections when it falls behind, and the TIME_WAIT sockets
		// exhaust loopback's ephemeral ports within a few runs.
		"-insecure", "-keepalive", "-connections", "64", "-max-connections", "64", "-workers", "32", "-max-workers", "64", "-output", results)
	attack.Stdin = strings.NewReader(targets)
	if out, err := attack.CombinedOutput(); err != nil {
		return vegetaResult{}, fmt.Errorf("attack: %v: %s", err, out)
	}
	out, err := exec.CommandContext(ctx, vegeta, "report", "-type", "json", results).Output()
	if err != nil {
		return vegetaResult{}, fmt.Errorf("report: %v", err)
	}
	var rep struct {
		Latencies struct {
			P50 int64 `json:"50th"`
			P99 int64 `json:"99th"`
			Max int64 `json:"max"`
		} `json:"latencies"`
		Success float64 `json:"success"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		return vegetaResult{}, err
	}
	return vegetaResult{time.Duration(rep.Latencies.P50), time.Duration(rep.Latencies.P99), time.Duration(rep.Latencies.Max), rep.Success}, nil
}

// children lists the direct children of pid (nginx's workers).
func children(pid int) []int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(data)) {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// cpuSeconds is user+system CPU time of the processes, from /proc.
func cpuSeconds(pids []int) float64 {
	const ticks = 100 // USER_HZ on Linux
	total := 0.0
	for _, pid := range pids {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// Fields after the parenthesised command name; utime and stime are
		// the 14th and 15th fields of the whole line.
		s := string(data)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if len(f) > 12 {
			u, _ := strconv.ParseFloat(f[11], 64)
			st, _ := strconv.ParseFloat(f[12], 64)
			total += (u + st) / ticks
		}
	}
	return total
}

// ioCounts are a process tree's syscall counters.
type ioCounts struct{ reads, writes int64 }

// syscalls sums syscr and syscw of /proc/PID/io over the processes (each
// file covers all of a process's threads). syscr counts read(2), readv(2)
// and pread(2), not recv(2)/recvmsg(2); syscw likewise counts write(2)
// and writev(2), not send(2)/sendmsg(2). Go's net package and fasthttp use
// read and write, so sluice, the floor and the stub are counted in full;
// nginx receives with recv(2) on Linux, so its reads show as near 0.
func syscalls(pids []int) ioCounts {
	var c ioCounts
	for _, pid := range pids {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			k, v, ok := strings.Cut(line, ": ")
			if !ok {
				continue
			}
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			switch k {
			case "syscr":
				c.reads += n
			case "syscw":
				c.writes += n
			}
		}
	}
	return c
}

// pairedRatio is the median over rounds of a[i]/b[i]: each round's two
// runs were back to back, so a neighbour's load that slows one round
// slows both sides of its ratio. The ratio of the two medians would mix
// rounds run under different loads.
func pairedRatio(a, b []float64) float64 {
	var r []float64
	for i := range min(len(a), len(b)) {
		if b[i] > 0 {
			r = append(r, a[i]/b[i])
		}
	}
	return median(r)
}

// soakRSS answers "is memory flat under sustained load": sluice with 1000
// idle keep-alive connections and wrk for the whole -soak duration, its
// resident set sampled every 5 s.
func soakRSS(ctx context.Context, work string) error {
	f, err := servers(ctx, work, scenario{name: "soak"})
	defer f.stop()
	if err != nil {
		return err
	}
	closeIdle, err := holdIdle(f.urls["sluice"], 1000)
	if err != nil {
		return err
	}
	defer closeIdle()
	pid := f.sluice.cmd.Process.Pid
	done := make(chan struct {
		w   wrkResult
		err error
	}, 1)
	go func() {
		w, err := runWrk(ctx, work, f.urls["sluice"], "", *soak)
		done <- struct {
			w   wrkResult
			err error
		}{w, err}
	}()
	fmt.Printf("# sluice RSS under load: 1000 idle connections + wrk -t%d -c%d for %s\n\n%s\n\n| t (s) | RSS MiB |\n|---|---|\n",
		*threads, *conns, *soak, machine())
	start := time.Now()
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		select {
		case r := <-done:
			if r.err != nil {
				return r.err
			}
			fmt.Printf("\n%.0f requests at %.0f rps, %d errors; peak RSS (VmHWM) %.1f MiB\n",
				r.w.requests, r.w.rps, r.w.errors, float64(peakRSS([]int{pid}))/(1<<20))
			return nil
		case <-tick.C:
			fmt.Printf("| %.0f | %.1f |\n", time.Since(start).Seconds(), float64(currentRSS(pid))/(1<<20))
		}
	}
}

// idleMemory answers "what does an idle keep-alive connection cost": the
// resident set of each target before and after n connections that sent
// one request each and then stay open, quiet. For sluice, the Go
// runtime's stack and heap in use too (the admin listener's pprof), which
// say where the bytes are.
func idleMemory(ctx context.Context, work string, n int) error {
	f, err := servers(ctx, work, scenario{name: "idle"})
	defer f.stop()
	if err != nil {
		return err
	}
	admin := adminAddr(work)
	procs := map[string]*proc{"nginx": f.nginx, "fasthttp": f.floor, "sluice": f.sluice}
	fmt.Printf("# memory held by %d idle keep-alive connections\n\n%s\n\n", n, machine())
	fmt.Println("| target | RSS before MiB (anon) | RSS with idle MiB (anon) | RSS per connection KiB | anon per connection KiB | Go stack per connection KiB | Go heap per connection KiB |")
	fmt.Println("|---|---|---|---|---|---|---|")
	for _, name := range []string{"nginx", "fasthttp", "sluice"} {
		// RSS counts the binary's pages too (file-backed, shared with
		// the page cache): anon is the process's own memory.
		rss := func() (t, anon int64) {
			for _, pid := range procs[name].pids() {
				t += currentRSS(pid)
				anon += statusKB(pid, "RssAnon:") << 10
			}
			return t, anon
		}
		var s0, s1 memStats
		if name == "sluice" {
			if s0, err = sluiceMem(ctx, admin); err != nil {
				return err
			}
		}
		r0, a0 := rss()
		closeIdle, err := holdIdle(f.urls[name], n)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		time.Sleep(time.Second) // let the servers park their connections
		r1, a1 := rss()
		stack, heap := "-", "-"
		if name == "sluice" {
			if s1, err = sluiceMem(ctx, admin); err != nil {
				closeIdle()
				return err
			}
			stack = fmt.Sprintf("%.1f", float64(s1.stack-s0.stack)/float64(n)/1024)
			heap = fmt.Sprintf("%.1f", float64(s1.heap-s0.heap)/float64(n)/1024)
		}
		closeIdle()
		fmt.Printf("| %s | %.1f (%.1f) | %.1f (%.1f) | %.1f | %.1f | %s | %s |\n", name, float64(r0)/(1<<20), float64(a0)/(1<<20),
			float64(r1)/(1<<20), float64(a1)/(1<<20), float64(r1-r0)/float64(n)/1024, float64(a1-a0)/float64(n)/1024, stack, heap)
	}
	return nil
}

type memStats struct{ stack, heap int64 }

// sluiceMem reads StackInuse and HeapInuse from the admin listener's
// /debug/pprof/heap?debug=1 (the runtime.MemStats lines at its end:
// "# Stack = inuse / sys", "# HeapInuse = n").
func sluiceMem(ctx context.Context, admin string) (memStats, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+admin+"/debug/pprof/heap?debug=1", nil)
	req.SetBasicAuth("admin", "bench")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return memStats{}, err
	}
	defer resp.Body.Close()
	var m memStats
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " = ")
		if !ok {
			continue
		}
		v, _, _ = strings.Cut(v, " ") // "# Stack = inuse / sys"
		n, _ := strconv.ParseInt(v, 10, 64)
		switch k {
		case "# Stack":
			m.stack = n
		case "# HeapInuse":
			m.heap = n
		}
	}
	return m, sc.Err()
}

// adminAddr is sluice's admin listener, from the config servers wrote.
func adminAddr(work string) string {
	cfg, _ := os.ReadFile(filepath.Join(work, "sluice.yaml"))
	for _, line := range strings.Split(string(cfg), "\n") {
		if strings.HasPrefix(line, "admin:") {
			return strings.TrimSuffix(strings.Fields(line)[3], ",")
		}
	}
	return ""
}

// currentRSS is VmRSS of one process.
func currentRSS(pid int) int64 { return statusKB(pid, "VmRSS:") << 10 }

// statusKB is one "Name: N kB" line of /proc/PID/status.
func statusKB(pid int, field string) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, field) {
			kb, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			return kb
		}
	}
	return 0
}

// peakRSS sums VmHWM (the peak resident set) of the processes.
func peakRSS(pids []int) int64 {
	var total int64
	for _, pid := range pids {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(line, "VmHWM:") {
				kb, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
				total += kb << 10
			}
		}
	}
	return total
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func medianD(v []time.Duration) time.Duration {
	f := make([]float64, len(v))
	for i, d := range v {
		f[i] = float64(d)
	}
	return time.Duration(median(f))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/1e6) }

func printTable(sc scenario, res map[string]*result, targets []string) {
	fmt.Printf("## %s\n\n", sc.name)
	fmt.Println("| target | rps (median) | rps per round | p50 ms | p99 ms | p99.9 ms | errors | peak RSS MiB | CPU us / req (median) | reads / req | writes / req | bytes / response |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, name := range targets {
		r := res[name]
		per := make([]string, len(r.rps))
		for i, v := range r.rps {
			per[i] = strconv.Itoa(int(v))
		}
		perResp := 0.0
		if r.reqs > 0 {
			perResp = r.bytes / r.reqs
		}
		fmt.Printf("| %s | %d | %s | %s | %s | %s | %d | %.1f | %.1f | %.2f | %.2f | %.0f |\n",
			name, int(median(r.rps)), strings.Join(per, " "), ms(medianD(r.p50)), ms(medianD(r.p99)), ms(medianD(r.p999)),
			r.errors, float64(r.peakRSS)/(1<<20), median(r.cpuPerReq), median(r.readsPerReq), median(r.writesPerReq), perResp)
	}
	sl, ng, fl := res["sluice"], res["nginx"], res["fasthttp"]
	fmt.Println("\nPaired ratios (median over rounds of the ratio within a round; CPU: lower is better):")
	fmt.Println()
	fmt.Println("| pair | rps | CPU per request |")
	fmt.Println("|---|---|---|")
	for _, p := range []struct {
		name string
		a, b *result
	}{{"sluice / nginx", sl, ng}, {"sluice / fasthttp floor", sl, fl}, {"fasthttp floor / nginx", fl, ng}} {
		if p.a == nil || p.b == nil {
			continue // a scenario without the floor (gzip)
		}
		fmt.Printf("| %s | **%.2fx** | **%.2fx** |\n", p.name, pairedRatio(p.a.rps, p.b.rps), pairedRatio(p.a.cpuPerReq, p.b.cpuPerReq))
	}
	fmt.Println()
	if sl != nil && ng != nil && sl.reqs > 0 && ng.reqs > 0 && ng.bytes > 0 && sc.gzipped {
		fmt.Printf("sluice/nginx bytes per response: **%.3fx**.\n\n", (sl.bytes/sl.reqs)/(ng.bytes/ng.reqs))
	}
	if len(res["direct"].constant) == 0 {
		return
	}
	fmt.Println("| target | constant rate | p50 ms | p99 ms | max ms | success | added p99 over direct ms |")
	fmt.Println("|---|---|---|---|---|---|---|")
	for i := range res["direct"].constant {
		base := res["direct"].constant[i]
		for _, name := range targets {
			c := res[name].constant[i]
			fmt.Printf("| %s | %d | %s | %s | %s | %.4f | %+.2f |\n", name, c.rate, ms(c.p50), ms(c.p99), ms(c.max), c.success,
				float64(c.p99-base.p99)/1e6)
		}
	}
	fmt.Println()
}

// captureProfiles runs sluice (bare route) under wrk and saves CPU and
// allocation profiles, with `go tool pprof -top` text beside them.
func captureProfiles(ctx context.Context, work string) error {
	if err := os.MkdirAll(*profile, 0o755); err != nil {
		return err
	}
	f, err := servers(ctx, work, scenario{name: "profile"})
	defer f.stop()
	if err != nil {
		return err
	}
	urls := f.urls
	admin := adminAddr(work)
	load := *duration + 10*time.Second
	wrkDone := make(chan error, 1)
	go func() {
		_, err := runWrk(ctx, work, urls["sluice"], "", load)
		wrkDone <- err
	}()
	time.Sleep(2 * time.Second) // past connection setup
	secs := int(load.Seconds()) - 6
	get := func(path, file string) error {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+admin+path, nil)
		req.SetBasicAuth("admin", "bench")
		resp, err := (&http.Client{Timeout: time.Duration(secs+30) * time.Second}).Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("%s: %s", path, resp.Status)
		}
		f, err := os.Create(filepath.Join(*profile, file))
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(f, resp.Body)
		return err
	}
	if err := get("/debug/pprof/allocs", "allocs-before.pprof"); err != nil {
		return err
	}
	if err := get(fmt.Sprintf("/debug/pprof/profile?seconds=%d", secs), "cpu.pprof"); err != nil {
		return err
	}
	if err := get("/debug/pprof/allocs", "allocs.pprof"); err != nil {
		return err
	}
	if err := <-wrkDone; err != nil {
		return err
	}
	bin := filepath.Join(*binDir, "sluice")
	for _, p := range []struct {
		in, out string
		args    []string
	}{
		{"cpu.pprof", "cpu-top.txt", []string{"-top", "-nodecount=40"}},
		{"allocs.pprof", "allocs-top.txt", []string{"-top", "-nodecount=30", "-sample_index=alloc_space", "-base=" + filepath.Join(*profile, "allocs-before.pprof")}},
	} {
		args := append([]string{"tool", "pprof"}, p.args...)
		out, err := exec.CommandContext(ctx, "go", append(args, bin, filepath.Join(*profile, p.in))...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("pprof %s: %v: %s", p.in, err, out)
		}
		if err := os.WriteFile(filepath.Join(*profile, p.out), out, 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("profiles in %s: cpu.pprof, allocs.pprof (the allocations during the load are allocs.pprof minus allocs-before.pprof), cpu-top.txt, allocs-top.txt\n", *profile)
	return nil
}

// machine describes where the numbers come from.
func machine() string {
	model := "unknown CPU"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(line, "model name") {
				model = strings.TrimSpace(strings.SplitN(line, ":", 2)[1])
				break
			}
		}
	}
	wrkV, _ := exec.Command("wrk", "--version").CombinedOutput()
	ngxV, _ := exec.Command("nginx", "-v").CombinedOutput()
	return fmt.Sprintf("%s, %s, %d CPUs (load generator, proxies and stub share them), %s, %s",
		time.Now().UTC().Format("2006-01-02"), model, numCPU(), strings.TrimSpace(strings.SplitN(string(wrkV), "Copyright", 2)[0]), strings.TrimSpace(string(ngxV)))
}

func numCPU() int {
	data, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(data), "processor\t:")
}
