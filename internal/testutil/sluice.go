package testutil

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Sluice is a sluice process started by StartSluice, and the processes
// that took over from it by upgrades (they log to the same place).
type Sluice struct {
	Cmd        *exec.Cmd
	ConfigPath string
	Addr       string // data plane host:port (of the first process)
	AdminAddr  string
	TLSAddrs   []string // listen_tls host:port, in config order
	logMu      sync.Mutex
	log        bytes.Buffer
	starts     []Start // under logMu
	exited     chan struct{}
	exitErr    error
}

// Start is one process's "sluice started" log line: the first process's,
// then one per upgrade.
type Start struct {
	PID          int
	UpgradedFrom int
	Addr, Admin  string
	TLS          []string // listen_tls host:port
}

// Log returns what the processes have logged so far.
func (s *Sluice) Log() string {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	return s.log.String()
}

// WaitStart waits until n processes have started (1: the first) and
// returns the n-th.
func (s *Sluice) WaitStart(t testing.TB, n int) Start {
	t.Helper()
	var st Start
	WaitFor(t, fmt.Sprintf("sluice process #%d to start", n), func() bool {
		s.logMu.Lock()
		defer s.logMu.Unlock()
		if len(s.starts) >= n {
			st = s.starts[n-1]
			return true
		}
		return false
	})
	return st
}

// Starts returns how many processes have started.
func (s *Sluice) Starts() int {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	return len(s.starts)
}

// Wait waits for the process to exit and returns its exit code.
func (s *Sluice) Wait(timeout time.Duration) (int, error) {
	select {
	case <-s.exited:
		if s.exitErr == nil {
			return 0, nil
		}
		if ee, ok := s.exitErr.(*exec.ExitError); ok {
			return ee.ExitCode(), nil
		}
		return -1, s.exitErr
	case <-time.After(timeout):
		return -1, fmt.Errorf("sluice did not exit within %v", timeout)
	}
}

// StartSluice writes config to a file (listen and admin addresses should be
// 127.0.0.1:0), starts the sluice binary on it, and waits until it logs the
// addresses it listens on.
func StartSluice(t testing.TB, config string, env ...string) *Sluice {
	t.Helper()
	return StartSluiceWith(t, config, nil, env...)
}

// StartSluiceWith is StartSluice with prepare run on the command before
// it starts (to wrap it, say).
func StartSluiceWith(t testing.TB, config string, prepare func(*exec.Cmd), env ...string) *Sluice {
	t.Helper()
	bin := Binary(t, "sluice")
	dir := t.TempDir()
	s := &Sluice{ConfigPath: filepath.Join(dir, "sluice.yaml"), exited: make(chan struct{})}
	if err := os.WriteFile(s.ConfigPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	s.Cmd = exec.Command(bin, "serve", "-c", s.ConfigPath)
	s.Cmd.Env = append(os.Environ(), env...)
	if prepare != nil {
		prepare(s.Cmd)
	}
	// An *os.File, not an io.Writer: Wait then returns when this process
	// exits, though processes started by its upgrades still write here.
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	s.Cmd.Stderr = pw
	s.Cmd.Stdout = pw
	err = s.Cmd.Start()
	_ = pw.Close()
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			s.logMu.Lock()
			s.log.WriteString(line + "\n")
			s.logMu.Unlock()
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "sluice started" {
				pid, _ := m["pid"].(float64)
				from, _ := m["upgraded_from"].(float64)
				st := Start{PID: int(pid), UpgradedFrom: int(from)}
				st.Addr, _ = m["listen"].(string)
				st.Admin, _ = m["admin"].(string)
				if l, _ := m["listen_tls"].(string); l != "" {
					st.TLS = strings.Split(l, ",")
				}
				s.logMu.Lock()
				s.starts = append(s.starts, st)
				s.logMu.Unlock()
				once.Do(func() {
					s.Addr, s.AdminAddr, s.TLSAddrs = st.Addr, st.Admin, st.TLS
					close(started)
				})
			}
		}
	}()
	go func() {
		s.exitErr = s.Cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		_ = s.Cmd.Process.Kill()
		<-s.exited
		// The processes upgrades started (not our children: by PID, and
		// only while it is still a sluice serving this test's config).
		s.logMu.Lock()
		starts := s.starts
		s.logMu.Unlock()
		for _, st := range starts[min(1, len(starts)):] {
			if cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", st.PID)); err == nil && strings.Contains(string(cmd), "\x00serve\x00-c\x00"+s.ConfigPath+"\x00") {
				_ = syscall.Kill(st.PID, syscall.SIGKILL)
			}
		}
		if t.Failed() {
			t.Logf("sluice log:\n%s", s.Log())
		}
	})
	select {
	case <-started:
	case <-s.exited:
		<-logDone
		t.Fatalf("sluice exited at start:\n%s", s.Log())
	case <-time.After(20 * time.Second):
		t.Fatalf("sluice did not start:\n%s", s.Log())
	}
	return s
}
