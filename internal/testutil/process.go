package testutil

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Process is a child process started by StartProcess.
type Process struct {
	Cmd    *exec.Cmd
	logMu  sync.Mutex
	log    bytes.Buffer
	exited chan struct{}
}

// Log returns what the process wrote so far.
func (p *Process) Log() string {
	p.logMu.Lock()
	defer p.logMu.Unlock()
	return p.log.String()
}

// Exited is closed when the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// StartProcess starts the binary built from ./cmd/NAME or ./bench/NAME with
// args, and waits until a line of its output contains ready. It is killed
// when the test ends.
func StartProcess(t testing.TB, name, ready string, args ...string) *Process {
	t.Helper()
	return StartCommand(t, name, ready, exec.Command(Binary(t, name), args...))
}

// StartCommand starts cmd (a system binary, say), and waits until a line
// of its output contains ready, like StartProcess.
func StartCommand(t testing.TB, name, ready string, cmd *exec.Cmd) *Process {
	t.Helper()
	p := &Process{Cmd: cmd, exited: make(chan struct{})}
	// An *os.File, not an io.Writer: Wait then returns when this process
	// exits, though processes it started (a sluice upgrade) still write.
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p.Cmd.Stdout, p.Cmd.Stderr = pw, pw
	err = p.Cmd.Start()
	_ = pw.Close()
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan struct{})
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(pr)
		once := sync.Once{}
		for sc.Scan() {
			p.logMu.Lock()
			p.log.WriteString(sc.Text() + "\n")
			p.logMu.Unlock()
			if strings.Contains(sc.Text(), ready) {
				once.Do(func() { close(seen) })
			}
		}
	}()
	go func() {
		_ = p.Cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = p.Cmd.Process.Kill()
		<-p.exited
	})
	select {
	case <-seen:
	case <-p.exited:
		<-logDone
		t.Fatalf("%s exited before %q:\n%s", name, ready, p.Log())
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not log %q:\n%s", name, ready, p.Log())
	}
	return p
}

// ProcessGone is true once pid has exited: no such process, or a zombie
// its parent has not reaped yet (a process an upgrade started is not the
// test's child).
func ProcessGone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// pid (comm) STATE ...: comm may hold spaces, so after the last ')'.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) == 0 || f[0] == "Z" || f[0] == "X"
}
