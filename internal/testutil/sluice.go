package testutil

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Sluice is a sluice process started by StartSluice.
type Sluice struct {
	Cmd        *exec.Cmd
	ConfigPath string
	Addr       string // data plane host:port
	AdminAddr  string
	TLSAddrs   []string // listen_tls host:port, in config order
	logMu      sync.Mutex
	log        bytes.Buffer
	exited     chan struct{}
	exitErr    error
}

// Log returns what the process has logged so far.
func (s *Sluice) Log() string {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	return s.log.String()
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
	bin := Binary(t, "sluice")
	dir := t.TempDir()
	s := &Sluice{ConfigPath: filepath.Join(dir, "sluice.yaml"), exited: make(chan struct{})}
	if err := os.WriteFile(s.ConfigPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	s.Cmd = exec.Command(bin, "serve", "-c", s.ConfigPath)
	s.Cmd.Env = append(os.Environ(), env...)
	pr, pw := io.Pipe()
	s.Cmd.Stderr = pw
	s.Cmd.Stdout = pw
	if err := s.Cmd.Start(); err != nil {
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
				s.Addr, _ = m["listen"].(string)
				s.AdminAddr, _ = m["admin"].(string)
				if l, _ := m["listen_tls"].(string); l != "" {
					s.TLSAddrs = strings.Split(l, ",")
				}
				once.Do(func() { close(started) })
			}
		}
	}()
	go func() {
		s.exitErr = s.Cmd.Wait()
		_ = pw.Close()
		close(s.exited)
	}()
	t.Cleanup(func() {
		_ = s.Cmd.Process.Kill()
		<-s.exited
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
