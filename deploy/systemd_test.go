package deploy

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/internal/testutil"
)

const (
	unitPath   = "systemd/sluice.service"
	unitBinary = "/usr/local/bin/sluice"
	unitConfig = "/etc/sluice/sluice.yaml"
	unitPID    = "/run/sluice/sluice.pid"
	// sluice's default server.shutdown_timeout (deploy's tests don't
	// import edge/config); TimeoutStopSec must leave it room to drain.
	defaultShutdownTimeout = 15 * time.Second
)

// readUnit parses a unit file: section -> key -> values, in order (a key
// may be given more than once, as ExecReload is).
func readUnit(t *testing.T, path string) map[string]map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	unit := map[string]map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[':
			section = strings.Trim(line, "[]")
			unit[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s: not a key=value line in a section: %q", path, line)
			}
			unit[section][k] = append(unit[section][k], v)
		}
	}
	return unit
}

// The unit holds what running sluice well under systemd needs: readiness
// and a watchdog through sd_notify, reload by SIGHUP after a validation,
// a dedicated user, enough descriptors, and a sandbox that leaves sluice
// one capability (binding ports below 1024).
func TestSystemdUnitDirectives(t *testing.T) {
	svc := readUnit(t, unitPath)["Service"]
	one := func(key string) string {
		t.Helper()
		v := svc[key]
		if len(v) != 1 {
			t.Errorf("[Service] %s: %d values %q, want one", key, len(v), v)
			return ""
		}
		return v[0]
	}
	for key, want := range map[string]string{
		"Type": "notify", "NotifyAccess": "main", "KillSignal": "SIGTERM",
		"User": "sluice", "Group": "sluice",
		"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
		"CapabilityBoundingSet": "CAP_NET_BIND_SERVICE", "AmbientCapabilities": "CAP_NET_BIND_SERVICE",
		"StateDirectory": "sluice", "Restart": "on-failure",
	} {
		if got := one(key); got != want {
			t.Errorf("[Service] %s=%s, want %s", key, got, want)
		}
	}
	if d, err := time.ParseDuration(one("WatchdogSec")); err != nil || d < 2*time.Second {
		t.Errorf("WatchdogSec=%s: want a duration of a few seconds at least", one("WatchdogSec"))
	}
	if d, err := time.ParseDuration(one("TimeoutStopSec")); err != nil || d <= defaultShutdownTimeout {
		t.Errorf("TimeoutStopSec=%s: want more than the %v sluice drains for", one("TimeoutStopSec"), defaultShutdownTimeout)
	}
	if n, err := strconv.Atoi(one("LimitNOFILE")); err != nil || n < 65536 {
		t.Errorf("LimitNOFILE=%s: want at least 65536", one("LimitNOFILE"))
	}
	if got := one("ExecStart"); got != unitBinary+" serve -c "+unitConfig+" -pid-file "+unitPID {
		t.Errorf("ExecStart=%s", got)
	}
	// Upgrades: the new process writes the PID file systemd reads, in a
	// directory it may write under ProtectSystem=strict.
	if one("PIDFile") != unitPID || "/run/"+one("RuntimeDirectory")+"/sluice.pid" != unitPID {
		t.Errorf("PIDFile=%s RuntimeDirectory=%s: want %s in /run/<RuntimeDirectory>", one("PIDFile"), one("RuntimeDirectory"), unitPID)
	}
	if r := svc["ExecReload"]; len(r) == 0 || r[len(r)-1] != "/bin/kill -HUP $MAINPID" {
		t.Errorf("ExecReload=%q: want SIGHUP to $MAINPID last", r)
	}
	data, err := os.ReadFile("systemd/sluice.sysusers")
	if err != nil || !strings.Contains(string(data), "\nu sluice - ") {
		t.Errorf("systemd/sluice.sysusers does not create the sluice user: %v\n%s", err, data)
	}
}

// installedUnit is the unit with its paths pointed at the test's binary
// and config, written where systemd-analyze can read it.
func installedUnit(t *testing.T, bin, config string) string {
	t.Helper()
	data, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.NewReplacer(unitBinary, bin, unitConfig, config).Replace(string(data))
	path := filepath.Join(t.TempDir(), "sluice.service")
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// systemd-analyze verify accepts the unit without a warning (an unknown
// or misspelt directive is only a warning, so any output fails), and
// systemd-analyze security rates its sandbox at most 2.0 ("OK").
func TestSystemdUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (Debian package systemd): TestSystemdUnitDirectives still checks the unit")
	}
	unit := installedUnit(t, testutil.Binary(t, "sluice"), "/etc/sluice/sluice.yaml")
	if out, err := exec.Command(analyze, "verify", unit).CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	if out, err := exec.Command(analyze, "security", "--offline=yes", "--threshold=20", unit).CombinedOutput(); err != nil {
		t.Errorf("systemd-analyze security rates the sandbox above 2.0: %v\n%s", err, out)
	}
}

// The unit's own command lines run the real binary the way systemd would
// (this sandbox has no systemd to start it): ExecStartPre passes,
// ExecStart serves and sends READY=1 on NOTIFY_SOCKET, each ExecReload
// line succeeds and sluice answers RELOADING=1 then READY=1, a bad config
// makes the reload fail at its validation line, and KillSignal drains
// (STOPPING=1) and exits 0.
func TestSystemdUnitRunsSluice(t *testing.T) {
	svc := readUnit(t, unitPath)["Service"]
	bin := testutil.Binary(t, "sluice")
	dir := t.TempDir()
	config := filepath.Join(dir, "sluice.yaml")
	up := testutil.StartUpstream(t, stub.Options{Name: "app"})
	good := `
listen: 127.0.0.1:0
admin: { listen: 127.0.0.1:0, password: "${SLUICE_ADMIN_PASSWORD}" }
upstreams: { app: { targets: [ { url: "` + up.URL + `" } ] } }
routes: [ { name: all, match: { prefix: / }, upstream: app } ]
`
	if err := os.WriteFile(config, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	sd := testutil.ListenNotify(t, filepath.Join(dir, "notify.sock"))
	watchdog, _ := time.ParseDuration(svc["WatchdogSec"][0])
	// What systemd and EnvironmentFile give the service.
	t.Setenv("NOTIFY_SOCKET", sd.Name)
	t.Setenv("WATCHDOG_USEC", strconv.FormatInt(watchdog.Microseconds(), 10))
	t.Setenv("SLUICE_ADMIN_PASSWORD", "from-sluice.env")

	pidFile := filepath.Join(dir, "sluice.pid")
	command := func(line string, pid int) []string {
		line = strings.NewReplacer(unitBinary, bin, unitConfig, config, unitPID, pidFile, "$MAINPID", strconv.Itoa(pid)).Replace(line)
		return strings.Fields(line)
	}
	runAll := func(key string, pid int) (string, error) {
		for _, line := range svc[key] {
			argv := command(line, pid)
			if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
				return string(out), err
			}
		}
		return "", nil
	}
	if out, err := runAll("ExecStartPre", 0); err != nil {
		t.Fatalf("ExecStartPre: %v\n%s", err, out)
	}
	argv := command(svc["ExecStart"][0], 0)
	if argv[0] != bin {
		t.Fatalf("ExecStart does not run %s: %q", unitBinary, svc["ExecStart"][0])
	}
	p := testutil.StartProcess(t, "sluice", `"msg":"sluice started"`, argv[1:]...)
	if m := sd.Next(t, "READY=1"); !strings.Contains(m, "STATUS=serving 1 routes") {
		t.Errorf("READY=1 without the status: %q", m)
	}
	var started struct{ Admin string }
	for _, l := range strings.Split(p.Log(), "\n") {
		if strings.Contains(l, `"msg":"sluice started"`) {
			_ = json.Unmarshal([]byte(l), &started)
		}
	}
	if code, body := testutil.Get(t, "http://"+started.Admin+"/ready"); code != 200 {
		t.Errorf("/ready after READY=1: %d %s", code, body)
	}

	pid := p.Cmd.Process.Pid
	if out, err := runAll("ExecReload", pid); err != nil {
		t.Fatalf("ExecReload: %v\n%s", err, out)
	}
	sd.Next(t, "RELOADING=1")
	sd.Next(t, "READY=1")

	// An upgrade as the unit's comment says: SIGUSR2 to the main PID. The
	// new process becomes the main PID (MAINPID= from the old one, then
	// READY=1 from itself, as systemd accepts with NotifyAccess=main) and
	// is in PIDFile=; the old one drains and exits 0.
	m := &testutil.Manager{Main: pid}
	if err := p.Cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	sd.Follow(t, m, "MAINPID=")
	sd.Follow(t, m, "READY=1")
	if b, _ := os.ReadFile(pidFile); string(b) != strconv.Itoa(m.Main) || m.Main == pid {
		t.Fatalf("after the upgrade: PIDFile holds %q, main PID %d (was %d)", b, m.Main, pid)
	}
	select {
	case <-p.Exited():
		if code := p.Cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("the old process: exit %d after the upgrade, want 0", code)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the old process did not exit after the upgrade")
	}
	pid = m.Main
	newProc, _ := os.FindProcess(pid)
	t.Cleanup(func() { _ = newProc.Kill() })
	if out, err := runAll("ExecReload", pid); err != nil { // reaches the new main PID
		t.Fatalf("ExecReload after the upgrade: %v\n%s", err, out)
	}
	sd.Next(t, "RELOADING=1")
	sd.Next(t, "READY=1")

	// systemctl reload on a bad config fails at the validation line, with
	// every error; systemd then runs no further ExecReload line (the kill),
	// as runAll doesn't.
	bad := strings.Replace(good, "prefix: /", "prefix: nope", 1) + "colour: blue\n"
	if err := os.WriteFile(config+".new", []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(config+".new", config); err != nil {
		t.Fatal(err)
	}
	if out, err := runAll("ExecReload", pid); err == nil || !strings.Contains(out, "colour: unknown field") || !strings.Contains(out, "must start with '/'") {
		t.Errorf("ExecReload with a bad config: %v\n%s", err, out)
	}

	if err := newProc.Signal(syscall.SIGTERM); err != nil { // KillSignal
		t.Fatal(err)
	}
	sd.Next(t, "STOPPING=1")
	stop, _ := time.ParseDuration(svc["TimeoutStopSec"][0])
	// Not our child (the old process started it).
	testutil.WaitForWithin(t, stop, "sluice to exit within TimeoutStopSec", func() bool { return testutil.ProcessGone(pid) })
	testutil.WaitFor(t, "both processes to log their drain", func() bool {
		return strings.Count(p.Log(), `"msg":"shutdown complete"`) == 2
	})
}
