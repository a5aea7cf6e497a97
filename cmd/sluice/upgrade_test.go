package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/internal/testutil"
)

// sluiceUpgrade runs the real `sluice upgrade` with args and env.
func sluiceUpgrade(t *testing.T, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, testutil.Binary(t, "sluice"), append([]string{"upgrade"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String(), errb.String()
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, out.String(), errb.String()
}

// processGone is true once pid has exited (testutil.ProcessGone).
func processGone(pid int) bool { return testutil.ProcessGone(pid) }

// infoPID asks /info which process answers.
func infoPID(t *testing.T, adminAddr, password string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+adminAddr+"/info", nil)
	if password != "" {
		req.SetBasicAuth("admin", password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var info struct{ PID int }
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil || info.PID == 0 {
		t.Fatalf("/info: %d, no pid (%v)", resp.StatusCode, err)
	}
	return info.PID
}

// tcpInodes returns the inodes of pid's TCP sockets, and which of them
// are listening (from /proc/net/tcp{,6}).
func tcpInodes(t *testing.T, pid int) (all, listening map[string]bool) {
	t.Helper()
	state := map[string]string{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			if fs := strings.Fields(line); len(fs) > 9 {
				state[fs[9]] = fs[3]
			}
		}
	}
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	all, listening = map[string]bool{}, map[string]bool{}
	for _, e := range ents {
		link, err := os.Readlink(filepath.Join(dir, e.Name()))
		inode, ok := strings.CutPrefix(link, "socket:[")
		if err != nil || !ok {
			continue
		}
		inode = strings.TrimSuffix(inode, "]")
		if st, isTCP := state[inode]; isTCP {
			all[inode] = true
			if st == "0A" { // TCP_LISTEN
				listening[inode] = true
			}
		}
	}
	return all, listening
}

// load is a client loop per kind of connection: keep-alive ones reuse
// their connections, the others open a new one per request (a refused
// connection is a failed request there).
type load struct {
	stop    chan struct{}
	wg      sync.WaitGroup
	done    []atomic.Int64 // per loop
	failed  atomic.Int64
	newConn atomic.Int64 // connections the keep-alive loops opened
	errMu   sync.Mutex
	errs    []string
}

const loadLoops = 4 // 0, 1: keep-alive; 2, 3: a new connection per request

func startLoad(t *testing.T, url string, tlsConf *tls.Config) *load {
	l := &load{stop: make(chan struct{}), done: make([]atomic.Int64, loadLoops)}
	keepAlive := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 2, TLSClientConfig: tlsConf}}
	fresh := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: tlsConf}}
	for i := range loadLoops {
		client := keepAlive
		if i >= 2 {
			client = fresh
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for n := 0; n < 20000; n++ { // bounded, whatever happens
				select {
				case <-l.stop:
					return
				default:
				}
				ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
					GotConn: func(info httptrace.GotConnInfo) {
						if !info.Reused && i < 2 {
							l.newConn.Add(1)
						}
					},
				})
				req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
				resp, err := client.Do(req)
				if err == nil {
					var body []byte
					body, err = io.ReadAll(resp.Body)
					resp.Body.Close()
					if err == nil && (resp.StatusCode != 200 || !strings.Contains(string(body), `"upstream":"a"`)) {
						err = fmt.Errorf("%d %s", resp.StatusCode, body)
					}
				}
				if err != nil {
					l.failed.Add(1)
					l.errMu.Lock()
					if len(l.errs) < 5 {
						l.errs = append(l.errs, fmt.Sprintf("loop %d: %v", i, err))
					}
					l.errMu.Unlock()
				}
				l.done[i].Add(1)
				time.Sleep(time.Millisecond) // leave the two cores some room for the new processes
			}
		}()
	}
	t.Cleanup(l.end)
	return l
}

// progress waits until every loop has finished a request more, so each
// upgrade happens while all of them run.
func (l *load) progress(t *testing.T) {
	t.Helper()
	var before [loadLoops]int64
	for i := range l.done {
		before[i] = l.done[i].Load()
	}
	testutil.WaitFor(t, "every client loop to make progress", func() bool {
		for i := range l.done {
			if l.done[i].Load() <= before[i] {
				return false
			}
		}
		return true
	})
}

func (l *load) end() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// Five upgrades in a row under a steady client loop over keep-alive and
// new connections: no request fails and no connection is refused; each
// time a new process serves (its PID in /info) and the old one exits,
// and the new one holds exactly the two listening sockets.
//
// The keep-alive loops use Go's client, which sends a request again on a
// new connection when the server closed the idle one it was written on
// (RFC 9112 section 9.3.1: a client may retry an idempotent request when
// the connection closes before a response): the old process closes its
// idle keep-alive connections as it drains, as any HTTP/1.1 server may.
func TestUpgradeFiveTimesUnderLoad(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	s := testutil.StartSluice(t, sluiceConfig(up.URL, "  - { name: all, match: { prefix: / }, upstream: up }\n"))
	l := startLoad(t, "http://"+s.Addr+"/x", nil)
	prev := s.WaitStart(t, 1)
	for n := 2; n <= 6; n++ {
		l.progress(t)
		code, out, errOut := sluiceUpgrade(t, nil, "-admin", s.AdminAddr)
		if code != 0 {
			t.Fatalf("upgrade %d: exit %d\n%s%s", n-1, code, out, errOut)
		}
		st := s.WaitStart(t, n)
		if st.UpgradedFrom != prev.PID || st.PID == prev.PID || st.Addr != s.Addr || st.Admin != s.AdminAddr {
			t.Fatalf("upgrade %d: started %+v after %+v", n-1, st, prev)
		}
		if want := fmt.Sprintf("ok: pid %d serves now; pid %d is draining\n", st.PID, prev.PID); out != want {
			t.Errorf("upgrade %d: printed %q, want %q", n-1, out, want)
		}
		l.progress(t) // requests go on while the old one drains
		testutil.WaitFor(t, fmt.Sprintf("the old process %d to exit", prev.PID), func() bool { return processGone(prev.PID) })
		if got := infoPID(t, s.AdminAddr, ""); got != st.PID {
			t.Fatalf("upgrade %d: /info answered by pid %d, want %d", n-1, got, st.PID)
		}
		if _, ln := tcpInodes(t, st.PID); len(ln) != 2 {
			t.Errorf("upgrade %d: pid %d has %d listening sockets, want 2 (data, admin)", n-1, st.PID, len(ln))
		}
		prev = st
	}
	l.progress(t)
	l.end()
	if code, err := s.Wait(10 * time.Second); code != 0 || err != nil {
		t.Errorf("first process: exit %d %v", code, err)
	}
	var total int64
	for i := range l.done {
		total += l.done[i].Load()
	}
	t.Logf("%d requests, %d keep-alive connections opened, over 5 upgrades", total, l.newConn.Load())
	if f := l.failed.Load(); f != 0 {
		t.Errorf("%d of %d requests failed: %q", f, total, l.errs)
	}
	// The keep-alive loops moved to the new processes' connections.
	if l.newConn.Load() < 2+5 {
		t.Errorf("keep-alive loops opened %d connections over 5 upgrades: they did not move", l.newConn.Load())
	}
	if !strings.Contains(s.Log(), `"reason":"upgraded (pid `) || strings.Contains(s.Log(), `"level":"ERROR"`) {
		t.Errorf("log lacks the drain reason, or has an error")
	}
}

// writeConfig replaces the config file in one step (the watcher never
// reads half a file).
func writeConfig(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path+".new", []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
}

// A refused config and a new process that can't start leave the old one
// serving, and `sluice upgrade` says why and exits 1; a changed listen
// address (restart-only: a reload only warns) is applied by an upgrade.
func TestUpgradeRefusedKeepsOldAndListenChange(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	config := func(listen string) string {
		return strings.Replace(strings.Replace(sluiceConfig(up.URL, "  - { name: all, match: { prefix: / }, upstream: up }\n"),
			"auth: false", `password: "${TEST_ADMIN_PW}"`, 1), "listen: 127.0.0.1:0\n", "listen: "+listen+"\n", 1)
	}
	s := testutil.StartSluice(t, config("127.0.0.1:0"), "TEST_ADMIN_PW=pw")
	first := s.WaitStart(t, 1)
	cred := []string{"SLUICE_ADMIN_PASSWORD=pw", "SLUICE_ADMIN_TOKEN="}
	serves := func(addr string) {
		t.Helper()
		if code, body := testutil.Get(t, "http://"+addr+"/x"); code != 200 {
			t.Fatalf("%s: %d %s", addr, code, body)
		}
		if pid := infoPID(t, s.AdminAddr, "pw"); pid != first.PID {
			t.Fatalf("/info answered by pid %d, want the old %d", pid, first.PID)
		}
	}

	// Admin credentials guard it.
	if code, _, errOut := sluiceUpgrade(t, []string{"SLUICE_ADMIN_PASSWORD=wrong", "SLUICE_ADMIN_TOKEN="}, "-admin", s.AdminAddr); code != 1 || !strings.Contains(errOut, "401") {
		t.Errorf("upgrade with a wrong password: exit %d %s", code, errOut)
	}

	// 1. A broken config: refused before any process starts.
	writeConfig(t, s.ConfigPath, config("127.0.0.1:0")+"colour: blue\n")
	code, out, errOut := sluiceUpgrade(t, cred, "-admin", s.AdminAddr)
	if code != 1 || out != "" || !strings.Contains(errOut, "400 Bad Request: config refused; not upgrading") ||
		!strings.Contains(errOut, s.ConfigPath+":8: colour: unknown field") {
		t.Errorf("upgrade with a broken config: exit %d, stdout %q, stderr:\n%s", code, out, errOut)
	}
	serves(s.Addr)

	// 2. A config that loads but can't be served (its listen address is
	// taken): the new process exits, the old one kills nothing and serves.
	taken := testutil.Listen(t)
	defer taken.Close()
	writeConfig(t, s.ConfigPath, config(taken.Addr().String()))
	code, out, errOut = sluiceUpgrade(t, cred, "-admin", s.AdminAddr)
	if code != 1 || !strings.Contains(errOut, "500 Internal Server Error: the new process did not get ready") ||
		!strings.Contains(errOut, "exited: exit status 1") || !strings.Contains(errOut, "this one keeps serving") {
		t.Errorf("upgrade whose new process fails: exit %d, stdout %q, stderr:\n%s", code, out, errOut)
	}
	if !strings.Contains(s.Log(), `"msg":"listen failed","listen":"`+taken.Addr().String()) ||
		!strings.Contains(s.Log(), `"msg":"upgrade failed; this process keeps serving"`) {
		t.Errorf("the log does not say why:\n%s", s.Log())
	}
	if s.Starts() != 1 {
		t.Errorf("%d processes started", s.Starts())
	}
	serves(s.Addr)

	// 3. A new listen address: the reload warns it needs an upgrade, the
	// upgrade applies it; the old address closes with the old process.
	newAddr := testutil.DeadAddr(t)
	writeConfig(t, s.ConfigPath, config(newAddr))
	testutil.WaitFor(t, "the reload's restart-only warning", func() bool {
		return strings.Contains(s.Log(), `"msg":"config change takes effect in a new process; apply with sluice upgrade (or a restart)","field":"listen"`)
	})
	if code, out, errOut = sluiceUpgrade(t, cred, "-admin", s.AdminAddr); code != 0 {
		t.Fatalf("upgrade to a new listen address: exit %d %s %s", code, out, errOut)
	}
	st := s.WaitStart(t, 2)
	if st.Addr != newAddr {
		t.Errorf("new process listens on %s, want %s", st.Addr, newAddr)
	}
	if code, body := testutil.Get(t, "http://"+newAddr+"/x"); code != 200 {
		t.Errorf("new address: %d %s", code, body)
	}
	if code, err := s.Wait(20 * time.Second); code != 0 || err != nil {
		t.Fatalf("old process: exit %d %v", code, err)
	}
	if c, err := net.DialTimeout("tcp", s.Addr, time.Second); err == nil {
		c.Close()
		t.Errorf("the old address %s still accepts after the upgrade", s.Addr)
	}
}

// slowUpload is a chunked upload the test feeds piece by piece.
type slowUpload struct {
	pw     *io.PipeWriter
	result chan string
}

func startSlowUpload(t *testing.T, url string) *slowUpload {
	pr, pw := io.Pipe()
	u := &slowUpload{pw: pw, result: make(chan string, 1)}
	go func() {
		resp, err := http.Post(url, "application/octet-stream", pr)
		if err != nil {
			u.result <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		u.result <- fmt.Sprintf("%d %s", resp.StatusCode, b)
	}()
	t.Cleanup(func() { _ = pw.Close() })
	return u
}

// An upgrade during a slow upload and a streamed answer: both complete
// through the old process while the new one serves new requests; the new
// process inherited none of the old one's connections (only the
// listening sockets are shared).
func TestUpgradeDuringSlowUploadAndStream(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	s := testutil.StartSluice(t, sluiceConfig(up.URL, "  - { name: all, match: { prefix: / }, upstream: up }\n"))
	first := s.WaitStart(t, 1)
	base := "http://" + s.Addr

	upload := startSlowUpload(t, base+"/__stub/echo")
	chunk := make([]byte, 64<<10)
	_, _ = (&stub.Pattern{}).Read(chunk)
	if _, err := upload.pw.Write(chunk); err != nil {
		t.Fatal(err)
	}
	const streamSize = 16 << 20
	resp, err := http.Get(fmt.Sprintf("%s/__stub/stream?n=%d", base, streamSize))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	check := &stub.PatternChecker{}
	if _, err := io.CopyN(check, resp.Body, 64<<10); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "both requests to reach the upstream", func() bool { return up.Requests() >= 2 })
	oldTCP, _ := tcpInodes(t, first.PID)

	if code, out, errOut := sluiceUpgrade(t, nil, "-admin", s.AdminAddr); code != 0 {
		t.Fatalf("upgrade: exit %d %s %s", code, out, errOut)
	}
	st := s.WaitStart(t, 2)
	if code, _ := testutil.Get(t, base+"/x"); code != 200 {
		t.Errorf("a new request during the drain: %d", code)
	}
	newTCP, listening := tcpInodes(t, st.PID)
	for inode := range oldTCP {
		if newTCP[inode] && !listening[inode] {
			t.Errorf("the new process holds socket %s of the old one's connections", inode)
		}
	}
	if len(listening) != 2 {
		t.Errorf("the new process has %d listening sockets, want 2", len(listening))
	}
	if processGone(first.PID) {
		t.Fatal("the old process exited with requests in flight")
	}

	// Finish both through the old process.
	for range 7 {
		if _, err := upload.pw.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	_ = upload.pw.Close()
	if got := <-upload.result; !strings.HasPrefix(got, "200 ") || !strings.Contains(got, `"body_bytes":`+strconv.Itoa(8*len(chunk))) {
		t.Errorf("slow upload across the upgrade: %s", got)
	}
	n, err := io.Copy(check, resp.Body)
	if err != nil || n+64<<10 != streamSize {
		t.Errorf("streamed answer across the upgrade: %d of %d bytes, %v", n+64<<10, streamSize, err)
	}
	if code, err := s.Wait(20 * time.Second); code != 0 || err != nil {
		t.Errorf("old process: exit %d %v", code, err)
	}
}

// Three upgrade triggers at once (two `sluice upgrade`, one SIGUSR2):
// exactly one new process; the others are refused with a reason. An
// upload held open keeps the old process draining meanwhile, so a late
// trigger that reaches the new process is refused too (the old one has
// not exited): never two children, never a third generation.
func TestUpgradeConcurrentTriggers(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	s := testutil.StartSluice(t, sluiceConfig(up.URL, "  - { name: all, match: { prefix: / }, upstream: up }\n"))
	upload := startSlowUpload(t, "http://"+s.Addr+"/__stub/echo")
	if _, err := upload.pw.Write([]byte("held open")); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the upload to reach the upstream", func() bool { return up.Requests() >= 1 })

	type result struct {
		code     int
		out, err string
	}
	results := make(chan result, 2)
	for range 2 {
		go func() {
			code, out, errOut := sluiceUpgrade(t, nil, "-admin", s.AdminAddr)
			results <- result{code, out, errOut}
		}()
	}
	if err := s.Cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	ok := 0
	for range 2 {
		r := <-results
		switch {
		case r.code == 0:
			ok++
		case r.code == 1 && strings.Contains(r.err, "409 Conflict: upgrade refused: ") &&
			(strings.Contains(r.err, "already in progress") || strings.Contains(r.err, "has handed over") || strings.Contains(r.err, "still draining")):
		default:
			t.Errorf("upgrade: exit %d %q %q", r.code, r.out, r.err)
		}
	}
	testutil.WaitFor(t, "the SIGUSR2 upgrade's outcome in the log", func() bool {
		return strings.Contains(s.Log(), `"msg":"SIGUSR2: upgrading"`) &&
			strings.Count(s.Log(), `"msg":"upgrade: the new process serves"`)+strings.Count(s.Log(), `"msg":"upgrade failed; this process keeps serving"`) == 3
	})
	if n := strings.Count(s.Log(), `"msg":"upgrade: the new process serves"`); n != 1 {
		t.Errorf("%d upgrades succeeded, want 1", n)
	}
	s.WaitStart(t, 2)
	// A fourth trigger, at the new process while the old one drains.
	if code, _, errOut := sluiceUpgrade(t, nil, "-admin", s.AdminAddr); code != 1 || !strings.Contains(errOut, "still draining") {
		t.Errorf("upgrade while the previous process drains: exit %d %s", code, errOut)
	}
	_ = upload.pw.Close()
	if got := <-upload.result; !strings.HasPrefix(got, "200 ") {
		t.Errorf("upload: %s", got)
	}
	if code, err := s.Wait(20 * time.Second); code != 0 || err != nil {
		t.Errorf("old process: exit %d %v", code, err)
	}
	if n := s.Starts(); n != 2 {
		t.Errorf("%d processes started, want 2", n)
	}
	if ok > 1 {
		t.Errorf("%d upgrade commands succeeded", ok)
	}
}

// Under (a stand-in for) systemd with NotifyAccess=main: the old process,
// the main PID, sends MAINPID=<new> once the new one is ready and never
// STOPPING=1; the new one, then the main PID, sends READY=1 and takes
// over the watchdog pings (WATCHDOG_PID named the old one: it is not
// passed on); the PID file names it. Nothing the new process
// sends before it is the main PID would be dropped by systemd: it sends
// nothing then.
func TestUpgradeSystemdNotify(t *testing.T) {
	dir := t.TempDir()
	sd := testutil.ListenNotify(t, filepath.Join(dir, "notify.sock"))
	pidFile := filepath.Join(dir, "sluice.pid")
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	// systemd names the main PID in WATCHDOG_PID: the shell sets its own
	// PID, which exec hands to sluice.
	wrap := func(cmd *exec.Cmd) {
		cmd.Args = append([]string{"sh", "-c", `WATCHDOG_PID=$$ exec "$0" "$@"`}, cmd.Args...)
		cmd.Path = "/bin/sh"
	}
	s := testutil.StartSluiceWith(t, sluiceConfig(up.URL, "  - { name: all, match: { prefix: / }, upstream: up }\n"), wrap,
		"NOTIFY_SOCKET="+sd.Name, "WATCHDOG_USEC=200000", "SLUICE_PID_FILE="+pidFile)
	first := s.WaitStart(t, 1)
	m := &testutil.Manager{Main: first.PID}
	sd.Follow(t, m, "READY=1")
	sd.Follow(t, m, "WATCHDOG=1")
	readPID := func() int {
		b, _ := os.ReadFile(pidFile)
		pid, _ := strconv.Atoi(string(b))
		return pid
	}
	if got := readPID(); got != first.PID {
		t.Errorf("PID file holds %d, want %d", got, first.PID)
	}

	if err := s.Cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	handover := sd.Follow(t, m, "MAINPID=")
	st := s.WaitStart(t, 2)
	if handover.PID != first.PID || m.Main != st.PID || strings.Contains(handover.Text, "STOPPING=1") {
		t.Fatalf("handover %+v: main pid now %d, new process %d", handover, m.Main, st.PID)
	}
	ready := sd.Follow(t, m, "READY=1")
	if !strings.Contains(ready.Text, fmt.Sprintf("(upgraded from pid %d)", first.PID)) {
		t.Errorf("READY=1 from the new process: %q", ready.Text)
	}
	sd.Follow(t, m, "WATCHDOG=1") // from the new main PID
	if got := readPID(); got != st.PID {
		t.Errorf("PID file holds %d, want the new %d", got, st.PID)
	}
	if code, err := s.Wait(20 * time.Second); code != 0 || err != nil {
		t.Errorf("old process: exit %d %v", code, err)
	}
	for _, n := range append(m.Accepted, m.Refused...) {
		if strings.Contains(n.Text, "STOPPING=1") {
			t.Errorf("STOPPING=1 during an upgrade, from pid %d", n.PID)
		}
	}
	for _, n := range m.Refused {
		if n.PID == st.PID {
			t.Errorf("the new process notified before it was the main PID (systemd drops it): %q", n.Text)
		}
	}
	// The new process is the service now: SIGTERM stops it as before.
	if err := syscall.Kill(st.PID, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	sd.Follow(t, m, "STOPPING=1")
	testutil.WaitFor(t, "the new process to exit", func() bool { return processGone(st.PID) })
}

// The TLS listener is inherited like the plain one: a client loop over
// TLS keeps working across an upgrade, on the same address, now answered
// by the new process (which holds three listening sockets).
func TestUpgradeInheritsTLSListener(t *testing.T) {
	ca := testutil.NewCA(t, "edge")
	leaf := ca.Issue(t, testutil.LeafOptions{Name: "site", DNS: []string{"site.example"}})
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	s := testutil.StartSluice(t, sluiceConfig(up.URL, "  - { name: all, match: { prefix: / }, upstream: up }\n")+`
listen_tls:
  - listen: 127.0.0.1:0
    certificates: [ { cert_file: `+leaf.CertFile+`, key_file: `+leaf.KeyFile+` } ]
`)
	first := s.WaitStart(t, 1)
	tlsLoad := startLoad(t, "https://"+s.TLSAddrs[0]+"/x", &tls.Config{RootCAs: ca.Pool, ServerName: "site.example"})
	tlsLoad.progress(t)
	if code, out, errOut := sluiceUpgrade(t, nil, "-admin", s.AdminAddr); code != 0 {
		t.Fatalf("upgrade: exit %d %s %s", code, out, errOut)
	}
	st := s.WaitStart(t, 2)
	tlsLoad.progress(t)
	testutil.WaitFor(t, "the old process to exit", func() bool { return processGone(first.PID) })
	tlsLoad.progress(t)
	tlsLoad.end()
	if f := tlsLoad.failed.Load(); f != 0 {
		t.Errorf("%d TLS requests failed: %q", f, tlsLoad.errs)
	}
	if st.UpgradedFrom != first.PID || len(st.TLS) != 1 || st.TLS[0] != s.TLSAddrs[0] {
		t.Errorf("the new process %+v does not serve TLS on %s", st, s.TLSAddrs[0])
	}
	if c, err := tls.Dial("tcp", s.TLSAddrs[0], &tls.Config{RootCAs: ca.Pool, ServerName: "site.example"}); err != nil {
		t.Errorf("TLS handshake after the upgrade: %v", err)
	} else {
		c.Close()
	}
	if _, ln := tcpInodes(t, st.PID); len(ln) != 3 {
		t.Errorf("the new process has %d listening sockets, want 3 (plain, TLS, admin)", len(ln))
	}
}

// A WebSocket tunnel open through the old process gets its 1001 close
// (going away, RFC 6455 section 7.4.1) on both sides as the old process
// drains, as on SIGTERM; the client's reconnection reaches the new one.
func TestUpgradeWebSocketGoingAway(t *testing.T) {
	up := testutil.StartWSUpstream(t)
	s := testutil.StartSluice(t, sluiceConfig(up.URL, "  - { name: ws, match: { prefix: / }, upstream: up, websocket: true }\n"))
	first := s.WaitStart(t, 1)
	dial := func() *websocket.Conn {
		t.Helper()
		c, resp, err := websocket.DefaultDialer.Dial("ws://"+s.Addr+"/echo", nil)
		if err != nil {
			t.Fatalf("dial: %v %v", err, resp)
		}
		t.Cleanup(func() { c.Close() })
		if err := c.WriteMessage(websocket.TextMessage, []byte("hi")); err != nil {
			t.Fatal(err)
		}
		if _, msg, err := c.ReadMessage(); err != nil || string(msg) != "hi" {
			t.Fatalf("echo: %q %v", msg, err)
		}
		return c
	}
	c := dial()
	got := make(chan error, 1)
	go func() {
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, _, err := c.ReadMessage()
		got <- err
	}()
	if code, out, errOut := sluiceUpgrade(t, nil, "-admin", s.AdminAddr); code != 0 {
		t.Fatalf("upgrade: exit %d %s %s", code, out, errOut)
	}
	var ce *websocket.CloseError
	if err := <-got; !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
		t.Fatalf("tunnel through the old process: want close 1001, got %v", err)
	}
	testutil.WaitFor(t, "the upstream to see 1001", func() bool {
		cl := up.Closes()
		return len(cl) == 1 && cl[0] == websocket.CloseGoingAway
	})
	dial() // through the new process
	if code, err := s.Wait(20 * time.Second); code != 0 || err != nil {
		t.Errorf("old process: exit %d %v", code, err)
	}
	if st := s.WaitStart(t, 2); st.UpgradedFrom != first.PID || up.Upgrades() != 2 {
		t.Errorf("new process %+v, %d upstream upgrades", st, up.Upgrades())
	}
}

// A PID file that can't be written stops serve at start, saying so
// (systemd would otherwise wait for a PID file that never comes).
func TestServePIDFileUnwritable(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	dir := t.TempDir()
	cfg := writeFile(t, dir, "sluice.yaml", sluiceConfig(up.URL, "  - { name: all, match: { prefix: / }, upstream: up }\n"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pidFile := filepath.Join(dir, "missing", "sluice.pid")
	out, err := exec.CommandContext(ctx, testutil.Binary(t, "sluice"), "serve", "-c", cfg, "-pid-file", pidFile).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 ||
		!strings.Contains(string(out), "startup failed: could not report readiness") || !strings.Contains(string(out), "missing") {
		t.Errorf("serve with an unwritable PID file: %v\n%s", err, out)
	}
}

// The new process runs the binary at the path the old one was started
// from: a broken binary put there fails the upgrade (exit 1, the old
// process serves on), and the good one put back succeeds.
func TestUpgradeBrokenBinary(t *testing.T) {
	dir := t.TempDir()
	binPath := filepath.Join(dir, "sluice")
	data, err := os.ReadFile(testutil.Binary(t, "sluice"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(binPath, data, 0o755); err != nil {
		t.Fatal(err)
	}
	// Replaced by rename, as package managers and make install do (the
	// running file can't be written).
	install := func(content []byte) {
		t.Helper()
		if err := os.WriteFile(binPath+".new", content, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(binPath+".new", binPath); err != nil {
			t.Fatal(err)
		}
	}
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	s := testutil.StartSluiceWith(t, sluiceConfig(up.URL, "  - { name: all, match: { prefix: / }, upstream: up }\n"),
		func(cmd *exec.Cmd) { cmd.Path, cmd.Args[0] = binPath, binPath })
	first := s.WaitStart(t, 1)

	install([]byte("#!/bin/sh\necho 'not sluice' >&2\nexit 3\n"))
	code, _, errOut := sluiceUpgrade(t, nil, "-admin", s.AdminAddr)
	if code != 1 || !strings.Contains(errOut, "exited: exit status 3") || !strings.Contains(errOut, "this one keeps serving") {
		t.Errorf("upgrade to a broken binary: exit %d %s", code, errOut)
	}
	if code, _ := testutil.Get(t, "http://"+s.Addr+"/x"); code != 200 || infoPID(t, s.AdminAddr, "") != first.PID {
		t.Errorf("the old process does not serve after a failed upgrade: %d", code)
	}

	install(data)
	if code, out, errOut := sluiceUpgrade(t, nil, "-admin", s.AdminAddr); code != 0 {
		t.Fatalf("upgrade with the binary back: exit %d %s %s", code, out, errOut)
	}
	if st := s.WaitStart(t, 2); st.UpgradedFrom != first.PID {
		t.Errorf("started %+v", st)
	}
}

// A new redis address is restart-only: a reload warns and keeps the old
// connection, an upgrade applies it. Seen through the API key store in
// Redis: after the upgrade a key that lives only in the old Redis is
// unknown, one created now works with the old Redis stopped.
func TestUpgradeAppliesRedisChange(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	ra, rb := testutil.StartRedis(t), testutil.StartRedis(t)
	config := func(redisAddr string) string {
		return fmt.Sprintf(`
listen: 127.0.0.1:0
admin: { listen: 127.0.0.1:0, auth: false }
redis: { addrs: [%q], timeout: 200ms }
auth: { api_keys: { store: redis } }
upstreams: { up: { targets: [ { url: %q } ] } }
routes: [ { name: k, match: { prefix: /k/ }, upstream: up, auth: api_key } ]
`, redisAddr, up.URL)
	}
	s := testutil.StartSluice(t, config(ra.Addr))
	createKey := func() string {
		t.Helper()
		var out, errb strings.Builder
		if code := run([]string{"keys", "create", "-admin=http://" + s.AdminAddr, "-name", "k"}, &out, &errb); code != 0 {
			t.Fatalf("create: %s", errb.String())
		}
		var created struct {
			RawKey string `json:"raw_key"`
		}
		_ = json.Unmarshal([]byte(out.String()), &created)
		return created.RawKey
	}
	url := "http://" + s.Addr + "/k/x"
	inA := createKey()
	if code := authedGet(t, url, "X-API-Key", inA); code != 200 {
		t.Fatalf("key in redis A: %d", code)
	}

	writeConfig(t, s.ConfigPath, config(rb.Addr))
	testutil.WaitFor(t, "the reload's warning about redis", func() bool {
		return strings.Contains(s.Log(), `apply with sluice upgrade (or a restart)","field":"redis"`)
	})
	if code := authedGet(t, url, "X-API-Key", inA); code != 200 {
		t.Fatalf("after the reload (redis is restart-only): %d", code)
	}

	if code, out, errOut := sluiceUpgrade(t, nil, "-admin", s.AdminAddr); code != 0 {
		t.Fatalf("upgrade: exit %d %s %s", code, out, errOut)
	}
	s.WaitStart(t, 2)
	if _, err := s.Wait(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	if code := authedGet(t, url, "X-API-Key", inA); code != 401 {
		t.Errorf("a key only redis A holds, after the upgrade to redis B: %d, want 401", code)
	}
	inB := createKey()
	ra.Stop()
	if code := authedGet(t, url, "X-API-Key", inB); code != 200 {
		t.Errorf("a key created after the upgrade, redis A stopped: %d, want 200", code)
	}
}

// A new process that fails after it said who it is (its PID file could
// not be written) leaves nothing behind for the next upgrade: that one
// reports the PID of the process that serves, to `sluice upgrade` and
// to systemd as MAINPID= (systemd refuses a dead one, and then every
// notification of the real new process, watchdog pings included).
func TestUpgradeAfterFailedOneReportsLivePID(t *testing.T) {
	dir := t.TempDir()
	sd := testutil.ListenNotify(t, filepath.Join(dir, "notify.sock"))
	runDir := filepath.Join(dir, "run")
	if err := os.Mkdir(runDir, 0o755); err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(runDir, "sluice.pid")
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	s := testutil.StartSluice(t, sluiceConfig(up.URL, "  - { name: all, match: { prefix: / }, upstream: up }\n"),
		"NOTIFY_SOCKET="+sd.Name, "SLUICE_PID_FILE="+pidFile)
	first := s.WaitStart(t, 1)
	m := &testutil.Manager{Main: first.PID}
	sd.Follow(t, m, "READY=1")

	if err := os.RemoveAll(runDir); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := sluiceUpgrade(t, nil, "-admin", s.AdminAddr); code != 1 {
		t.Fatalf("upgrade with the PID file's directory gone: exit %d %s %s", code, out, errOut)
	}
	if err := os.Mkdir(runDir, 0o755); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := sluiceUpgrade(t, nil, "-admin", s.AdminAddr)
	if code != 0 {
		t.Fatalf("upgrade: exit %d %s %s", code, out, errOut)
	}
	b, _ := os.ReadFile(pidFile)
	serving, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if want := fmt.Sprintf("ok: pid %d serves now", serving); serving == 0 || !strings.Contains(out, want) {
		t.Errorf("sluice upgrade said %q; the PID file names %d", out, serving)
	}
	sd.Follow(t, m, "MAINPID=")
	if m.Main != serving || len(m.DeadMainID) != 0 {
		t.Errorf("systemd's main PID is %d (refused dead ones: %v), want %d", m.Main, m.DeadMainID, serving)
	}
	sd.Follow(t, m, "READY=1") // from the new main PID: accepted
	if code, _ := testutil.Get(t, "http://"+s.Addr+"/x"); code != 200 {
		t.Errorf("after the upgrade: %d", code)
	}
}

// Quotas counted in memory and saved to limits.quota_file survive an
// upgrade: the old process saves its counts as it exits, the new one
// (which saves nothing meanwhile) then adds what the old one counted
// since it started to its own counts. No count is lost or counted twice.
func TestUpgradeKeepsFileQuotaCounts(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	s := testutil.StartSluice(t, sluiceConfig(up.URL,
		"  - { name: q, match: { prefix: / }, upstream: up, quota: { limit: 1000, per: 24h, key: ip } }\n")+
		"limits: { quota_file: quotas.json }\n")
	first := s.WaitStart(t, 1)
	remaining := func() string {
		t.Helper()
		resp, err := http.Get("http://" + s.Addr + "/x")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.Header.Get("X-Quota-Remaining")
	}
	for range 20 {
		remaining()
	}
	if got := remaining(); got != "979" {
		t.Fatalf("21st request: %s remaining, want 979", got)
	}
	if code, out, errOut := sluiceUpgrade(t, nil, "-admin", s.AdminAddr); code != 0 {
		t.Fatalf("upgrade: exit %d %s %s", code, out, errOut)
	}
	testutil.WaitFor(t, "the old process to exit", func() bool { return processGone(first.PID) })
	// The new process takes the counts over once the old one has exited.
	testutil.WaitFor(t, "the new process to hold the old one's 21 counts", func() bool {
		code, body := testutil.Get(t, "http://"+s.AdminAddr+"/admin/quotas/127.0.0.1")
		var u struct {
			Current int `json:"current_window"`
		}
		return code == 200 && json.Unmarshal([]byte(body), &u) == nil && u.Current == 21
	})
	if got := remaining(); got != "978" {
		t.Errorf("first request after the upgrade: %s remaining, want 978", got)
	}
	s2 := s.WaitStart(t, 2)
	if err := syscall.Kill(s2.PID, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the new process to exit", func() bool { return processGone(s2.PID) })
	b, _ := os.ReadFile(filepath.Join(filepath.Dir(s.ConfigPath), "quotas.json"))
	if !strings.Contains(string(b), `"c":22`) {
		t.Errorf("quotas.json after the new process stopped: %s, want 22 counts", b)
	}
}

// gatedBinary copies the sluice binary to a directory of its own, for
// StartSluiceWith, and returns hold: after it, the next process an
// upgrade starts from that path waits until release is called (a
// wrapper script reading a FIFO, then exec'ing sluice). hold returns
// once that process is waiting, so the upgrade is under way.
func gatedBinary(t *testing.T) (prepare func(*exec.Cmd), hold func() (release func())) {
	t.Helper()
	dir := t.TempDir()
	real := testutil.Binary(t, "sluice")
	binPath, fifo := filepath.Join(dir, "sluice"), filepath.Join(dir, "gate")
	data, err := os.ReadFile(real)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(binPath, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	prepare = func(cmd *exec.Cmd) { cmd.Path, cmd.Args[0] = binPath, binPath }
	hold = func() func() {
		t.Helper()
		script := fmt.Sprintf("#!/bin/sh\nread _ < %q\nexec %q \"$@\"\n", fifo, real)
		if err := os.WriteFile(binPath+".new", []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(binPath+".new", binPath); err != nil {
			t.Fatal(err)
		}
		return func() {
			// Opening blocks until the wrapper has the FIFO open.
			f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = f.WriteString("go\n")
			_ = f.Close()
		}
	}
	return prepare, hold
}

// An API key revoked while an upgrade runs is never lost: both processes
// keep the key file in memory and write it whole, so from the start of
// the upgrade until the new process has taken over, key writes are
// refused with 503 (the caller retries) rather than taken by one process
// and overwritten by the other. Once the upgrade is done, the revoke
// goes through and holds.
func TestUpgradeRefusesKeyWritesDuringTheWindow(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	prepare, hold := gatedBinary(t)
	s := testutil.StartSluiceWith(t, fmt.Sprintf(`
listen: 127.0.0.1:0
admin: { listen: 127.0.0.1:0, auth: false }
auth: { api_keys: { store: file, file: apikeys.json } }
upstreams: { up: { targets: [ { url: %q } ] } }
routes: [ { name: k, match: { prefix: /k/ }, upstream: up, auth: api_key } ]
`, up.URL), prepare)
	var out, errb strings.Builder
	if code := run([]string{"keys", "create", "-admin=http://" + s.AdminAddr, "-name", "k"}, &out, &errb); code != 0 {
		t.Fatalf("create: %s", errb.String())
	}
	var created struct {
		APIKey struct{ ID string } `json:"api_key"`
		RawKey string              `json:"raw_key"`
	}
	if err := json.Unmarshal([]byte(out.String()), &created); err != nil || created.RawKey == "" {
		t.Fatalf("create: %q %v", out.String(), err)
	}
	url := "http://" + s.Addr + "/k/x"
	if code := authedGet(t, url, "X-API-Key", created.RawKey); code != 200 {
		t.Fatalf("a new key: %d", code)
	}
	revoke := func() (int, string) {
		return post(t, "http://"+s.AdminAddr+"/admin/apikeys/"+created.APIKey.ID+"/revoke")
	}

	release := hold()
	upgraded := make(chan string, 1)
	go func() {
		code, out, errOut := sluiceUpgrade(t, nil, "-admin", s.AdminAddr)
		upgraded <- fmt.Sprintf("%d %s %s", code, out, errOut)
	}()
	waiting := make(chan struct{})
	go func() { release(); close(waiting) }()
	// The new process is started (the wrapper waits on the FIFO, so
	// release's open returns only once it runs): the upgrade is under way.
	// A write now is refused, plainly.
	testutil.WaitFor(t, "the upgrade to start", func() bool { return strings.Contains(s.Log(), "upgrade: starting a new process") })
	<-waiting
	if code, body := revoke(); code != 503 || !strings.Contains(body, `"error"`) || !strings.Contains(body, "retry") {
		t.Errorf("revoke during the upgrade: %d %s, want 503 with an error", code, body)
	}
	if got := <-upgraded; !strings.HasPrefix(got, "0 ") {
		t.Fatalf("upgrade: %s", got)
	}
	if code, body := revoke(); code != 200 {
		t.Fatalf("revoke after the upgrade: %d %s", code, body)
	}
	if code := authedGet(t, url, "X-API-Key", created.RawKey); code != 401 {
		t.Errorf("the revoked key after the upgrade: %d, want 401", code)
	}
	if _, err := s.Wait(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	if code := authedGet(t, url, "X-API-Key", created.RawKey); code != 401 {
		t.Errorf("the revoked key once the old process has exited: %d, want 401", code)
	}
}

// A new process that can't write the PID file fails before it serves:
// five such upgrades under load drop no request (it would otherwise have
// accepted connections on the shared sockets and exited without
// answering them), it logs no "sluice started", and the old process
// serves on, named by the PID file.
func TestUpgradeFailingBeforeServingDropsNothing(t *testing.T) {
	dir := t.TempDir()
	runDir := filepath.Join(dir, "run")
	if err := os.Mkdir(runDir, 0o755); err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(runDir, "sluice.pid")
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	s := testutil.StartSluice(t, sluiceConfig(up.URL, "  - { name: all, match: { prefix: / }, upstream: up }\n"), "SLUICE_PID_FILE="+pidFile)
	first := s.WaitStart(t, 1)
	l := startLoad(t, "http://"+s.Addr+"/x", nil)
	if err := os.RemoveAll(runDir); err != nil {
		t.Fatal(err)
	}
	for n := 1; n <= 5; n++ {
		l.progress(t)
		if code, out, errOut := sluiceUpgrade(t, nil, "-admin", s.AdminAddr); code != 1 {
			t.Fatalf("upgrade %d with the PID file's directory gone: exit %d %s %s", n, code, out, errOut)
		}
	}
	l.progress(t)
	l.end()
	if f := l.failed.Load(); f != 0 {
		t.Errorf("%d requests failed: %q", f, l.errs)
	}
	if n := s.Starts(); n != 1 {
		t.Errorf("%d processes logged \"sluice started\"; only the first serves", n)
	}
	if got := infoPID(t, s.AdminAddr, ""); got != first.PID {
		t.Errorf("/info answered by pid %d, want the first %d", got, first.PID)
	}
}

// SIGTERM and SIGINT stop sluice while it starts, too: here its config
// comes from a Consul that accepts connections and never answers (the
// first load alone would wait 10 s, and it tries five times). The
// reload and upgrade signals, held while it starts, are not affected.
func TestServeStopsOnSignalDuringStartup(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			ln := testutil.Listen(t)
			connected := make(chan struct{})
			var once sync.Once
			go func() {
				var held []net.Conn // never answered
				defer func() {
					for _, c := range held {
						c.Close()
					}
				}()
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					held = append(held, c)
					once.Do(func() { close(connected) })
				}
			}()
			t.Cleanup(func() { ln.Close() })
			dir := t.TempDir()
			cfg := writeFile(t, dir, "bootstrap.yaml", fmt.Sprintf("consul: { address: %q, config_key: sluice/config }\n", ln.Addr().String()))
			cmd := exec.Command(testutil.Binary(t, "sluice"), "serve", "-c", cfg)
			var out strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			t.Cleanup(func() { _ = cmd.Process.Kill() })
			select {
			case <-connected:
			case err := <-exited:
				t.Fatalf("sluice exited before asking Consul: %v\n%s", err, out.String())
			case <-time.After(20 * time.Second):
				t.Fatal("sluice never asked Consul")
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-exited:
				if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(out.String(), "stopped while starting") {
					t.Errorf("after %v during startup: %v\n%s", sig, err, out.String())
				}
			case <-time.After(5 * time.Second): // the config load alone waits 10 s
				t.Fatalf("sluice did not stop within 5s of %v during startup", sig)
			}
		})
	}
}

// unixSockets counts pid's open sockets that are not TCP ones (the
// handover socket pairs, here).
func unixSockets(t *testing.T, pid int) int {
	t.Helper()
	tcp, _ := tcpInodes(t, pid)
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if inode, ok := strings.CutPrefix(target, "socket:["); err == nil && ok && !tcp[strings.TrimSuffix(inode, "]")] {
			n++
		}
	}
	return n
}

// Each process holds its end of the handover socket pair and the other
// end, kept for its next new process: two sockets, whatever number of
// upgrades (failed ones included) came before. The end it inherited from
// its parent is closed once the parent has handed over, and a failed
// upgrade's pair once the next one starts.
func TestUpgradeHandoverSocketsDoNotLeak(t *testing.T) {
	dir := t.TempDir()
	binPath := filepath.Join(dir, "sluice")
	data, err := os.ReadFile(testutil.Binary(t, "sluice"))
	if err != nil {
		t.Fatal(err)
	}
	install := func(content []byte) {
		t.Helper()
		if err := os.WriteFile(binPath+".new", content, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(binPath+".new", binPath); err != nil {
			t.Fatal(err)
		}
	}
	install(data)
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	s := testutil.StartSluiceWith(t, sluiceConfig(up.URL, "  - { name: all, match: { prefix: / }, upstream: up }\n"),
		func(cmd *exec.Cmd) { cmd.Path, cmd.Args[0] = binPath, binPath })
	prev := s.WaitStart(t, 1)
	for n := 2; n <= 3; n++ {
		install([]byte("#!/bin/sh\nexit 3\n"))
		for range 3 {
			if code, _, _ := sluiceUpgrade(t, nil, "-admin", s.AdminAddr); code != 1 {
				t.Fatalf("upgrade to a broken binary: exit %d", code)
			}
		}
		testutil.WaitFor(t, "the old process to hold 2 handover sockets after failed upgrades", func() bool { return unixSockets(t, prev.PID) == 2 })
		install(data)
		if code, out, errOut := sluiceUpgrade(t, nil, "-admin", s.AdminAddr); code != 0 {
			t.Fatalf("upgrade: exit %d %s %s", code, out, errOut)
		}
		st := s.WaitStart(t, n)
		testutil.WaitFor(t, "the old process to exit", func() bool { return processGone(prev.PID) })
		testutil.WaitFor(t, fmt.Sprintf("process %d to hold 2 handover sockets", n), func() bool { return unixSockets(t, st.PID) == 2 })
		prev = st
	}
}

// The watchdog sees no gap at an upgrade: the old process pings with its
// MAINPID= (its last word as the main PID) and the new one with its
// READY=1 (its first), then every half period as before; accepted pings
// are never further apart than WatchdogSec.
func TestUpgradeWatchdogPingsAtHandover(t *testing.T) {
	dir := t.TempDir()
	sd := testutil.ListenNotify(t, filepath.Join(dir, "notify.sock"))
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	wrap := func(cmd *exec.Cmd) {
		cmd.Args = append([]string{"sh", "-c", `WATCHDOG_PID=$$ exec "$0" "$@"`}, cmd.Args...)
		cmd.Path = "/bin/sh"
	}
	s := testutil.StartSluiceWith(t, sluiceConfig(up.URL, "  - { name: all, match: { prefix: / }, upstream: up }\n"), wrap,
		"NOTIFY_SOCKET="+sd.Name, "WATCHDOG_USEC=2000000")
	first := s.WaitStart(t, 1)
	m := &testutil.Manager{Main: first.PID, Watchdog: 2 * time.Second}
	sd.Follow(t, m, "READY=1")
	sd.Follow(t, m, "WATCHDOG=1")
	if err := s.Cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	if handover := sd.Follow(t, m, "MAINPID="); !strings.Contains(handover.Text, "WATCHDOG=1") {
		t.Errorf("the old process's handover carries no watchdog ping: %q", handover.Text)
	}
	if ready := sd.Follow(t, m, "READY=1"); !strings.Contains(ready.Text, "WATCHDOG=1") {
		t.Errorf("the new process's takeover carries no watchdog ping: %q", ready.Text)
	}
	sd.Follow(t, m, "WATCHDOG=1")
	sd.Follow(t, m, "WATCHDOG=1")
	if len(m.Late) != 0 {
		t.Errorf("watchdog pings %v apart (WatchdogSec 2s): systemd would have killed sluice", m.Late)
	}
}

// The PID file goes with the last process: an upgrade leaves it naming
// the new one (the old one doesn't remove it as it exits), and the new
// one removes it when it stops.
func TestServePIDFileRemovedAtFinalExit(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "sluice.pid")
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	s := testutil.StartSluice(t, sluiceConfig(up.URL, "  - { name: all, match: { prefix: / }, upstream: up }\n"), "SLUICE_PID_FILE="+pidFile)
	if code, out, errOut := sluiceUpgrade(t, nil, "-admin", s.AdminAddr); code != 0 {
		t.Fatalf("upgrade: exit %d %s %s", code, out, errOut)
	}
	st := s.WaitStart(t, 2)
	if _, err := s.Wait(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(pidFile); err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(st.PID) {
		t.Fatalf("PID file after the old process exited: %q %v, want %d", b, err, st.PID)
	}
	if err := syscall.Kill(st.PID, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the new process to exit", func() bool { return processGone(st.PID) })
	if _, err := os.Stat(pidFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("PID file after the last process stopped: %v, want it removed", err)
	}
}

// A process draining after an upgrade still obeys SIGTERM: it closes what
// is left at once rather than at the end of server.shutdown_timeout (a
// stop during the drain, systemd's KillMode=control-group sends it to
// both processes).
func TestUpgradeDrainingProcessStopsOnSIGTERM(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	s := testutil.StartSluice(t, sluiceConfig(up.URL, "  - { name: all, match: { prefix: / }, upstream: up }\n")+
		"server: { shutdown_timeout: 120s }\n")
	upload := startSlowUpload(t, "http://"+s.Addr+"/__stub/echo")
	if _, err := upload.pw.Write(make([]byte, 1024)); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the upload to reach the upstream", func() bool { return up.Requests() >= 1 })
	if code, out, errOut := sluiceUpgrade(t, nil, "-admin", s.AdminAddr); code != 0 {
		t.Fatalf("upgrade: exit %d %s %s", code, out, errOut)
	}
	testutil.WaitFor(t, "the old process to drain", func() bool { return strings.Contains(s.Log(), `"reason":"upgraded (pid `) })
	if err := s.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Wait(15 * time.Second); err != nil { // the drain would last 120 s
		t.Fatalf("the draining process ignored SIGTERM: %v", err)
	}
	if !strings.Contains(s.Log(), "signal while draining: closing the remaining connections now") {
		t.Errorf("the log does not say why the drain was cut short")
	}
	if code, _ := testutil.Get(t, "http://"+s.Addr+"/x"); code != 200 {
		t.Errorf("the new process after the old one stopped: %d", code)
	}
}

// A listen address written another way for the same socket (":PORT",
// "0.0.0.0:PORT": both the wildcard, as Go listens on it) is inherited,
// not opened again next to the old process's socket (which fails:
// address in use).
func TestUpgradeListenSpelledDifferently(t *testing.T) {
	_, port, _ := net.SplitHostPort(testutil.DeadAddr(t))
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	config := func(listen string) string {
		return strings.Replace(sluiceConfig(up.URL, "  - { name: all, match: { prefix: / }, upstream: up }\n"),
			"listen: 127.0.0.1:0\n", "listen: "+listen+"\n", 1)
	}
	s := testutil.StartSluice(t, config(":"+port))
	writeConfig(t, s.ConfigPath, config("0.0.0.0:"+port))
	if code, out, errOut := sluiceUpgrade(t, nil, "-admin", s.AdminAddr); code != 0 {
		t.Fatalf("upgrade with the listen address spelled differently: exit %d %s %s", code, out, errOut)
	}
	st := s.WaitStart(t, 2)
	if code, _ := testutil.Get(t, "http://127.0.0.1:"+port+"/x"); code != 200 {
		t.Errorf("after the upgrade: %d", code)
	}
	if _, err := s.Wait(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	if got := infoPID(t, s.AdminAddr, ""); got != st.PID {
		t.Errorf("/info answered by %d, want the new %d", got, st.PID)
	}
}

func TestListenKey(t *testing.T) {
	for in, want := range map[string]string{
		":8080":           ":8080",
		"0.0.0.0:8080":    ":8080",
		"[::]:8080":       ":8080",
		"127.0.0.1:0":     "127.0.0.1:0",
		"[::1]:443":       "[::1]:443",
		"[0:0::1]:443":    "[::1]:443",
		"localhost:8080":  "localhost:8080",
		"not an address":  "not an address",
		"127.0.0.1:https": "127.0.0.1:443",
	} {
		if got := listenKey(in); got != want {
			t.Errorf("listenKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// logrotate during an upgrade's drain: the draining process still obeys
// SIGUSR1, so the line of the request it finishes lands in the new file.
func TestUpgradeDrainingProcessReopensAccessLog(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	logPath := filepath.Join(t.TempDir(), "access.log")
	s := testutil.StartSluice(t, "access_log: { enabled: true, output: "+logPath+" }\n"+
		sluiceConfig(up.URL, "  - { name: all, match: { prefix: / }, upstream: up }\n"))
	first := s.WaitStart(t, 1)
	upload := startSlowUpload(t, "http://"+s.Addr+"/__stub/echo")
	if _, err := upload.pw.Write(make([]byte, 1024)); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the upload to reach the upstream", func() bool { return up.Requests() >= 1 })
	if code, out, errOut := sluiceUpgrade(t, nil, "-admin", s.AdminAddr); code != 0 {
		t.Fatalf("upgrade: exit %d %s %s", code, out, errOut)
	}
	testutil.WaitFor(t, "the old process to drain", func() bool { return strings.Contains(s.Log(), `"reason":"upgraded (pid `) })
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(first.PID, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the draining process to reopen its access log", func() bool { return strings.Contains(s.Log(), "access log reopened") })
	_ = upload.pw.Close()
	if got := <-upload.result; !strings.HasPrefix(got, "200 ") {
		t.Fatalf("the upload through the draining process: %.200s", got)
	}
	if _, err := s.Wait(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(logPath)
	if !strings.Contains(string(b), `"path":"/__stub/echo"`) {
		t.Errorf("the finished upload is not in the new access log:\n%s", b)
	}
}
