package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cloudflare/tableflip"
	"github.com/sluicegw/sluice/edge/admin"
)

// Zero-downtime upgrades (SIGUSR2, POST /admin/upgrade, `sluice upgrade`).
//
// The running process starts a new one (the binary at the path it was
// started from, so a replaced binary is the one that runs) and hands it
// its listening sockets through cloudflare/tableflip: fd passing over
// exec, a readiness pipe, the PID file, and the rule that one upgrade runs
// at a time and the old code never outlives the next generation. The new
// process reads its config, builds its snapshot, serves on the inherited
// sockets (and opens new ones for addresses the config changed), and only
// then says it is ready. Until then the old process serves alone; if the
// new one exits or doesn't get ready in time, the old one kills it and
// keeps serving. Once the new one is ready, both accept from the same
// kernel queues for a moment, then the old one closes its copies and
// drains: a connection is never refused, because the listening socket
// itself never closes.
//
// Why tableflip and not SO_REUSEPORT with a hand-rolled handshake: with
// SO_REUSEPORT each process has its own socket and the kernel spreads new
// connections over them by hash; when the old process closes its socket,
// the connections queued on it but not yet accepted are reset. Passing
// the one socket keeps a single accept queue, so nothing queued is lost.
//
// Under systemd (Type=notify, NotifyAccess=main) the old process is the
// main PID: once the new one is ready, the old one sends MAINPID=<new> (and
// not STOPPING=1, which would mean the service stops), then tells the new
// one over a socket pair passed with the listeners; the new one, now the
// main PID, sends READY=1 and takes over the watchdog pings. The PID file
// (serve -pid-file, the unit's PIDFile=) is written by the new process
// when it is ready, so systemd also finds the new main PID there should
// the old one exit before its MAINPID= is read. Both messages carry a
// watchdog ping, so the watchdog sees no gap at the handover.
//
// Each upgrade gets a fresh handover socket pair (newPair): nothing a
// failed new process wrote can be read by the next upgrade. The new
// process does what can fail (the PID file, its PID to the parent)
// before it accepts a connection. API keys in a file and quota counts in
// limits.quota_file are held in memory by each process and written whole:
// admin writes to them are refused (admin.WriteGate) while two processes
// could write, and the new process saves no quota counts until the old
// one has exited, then adds what the old one counted meanwhile (main.go,
// limiter.LocalQuotas.MergeSaved).

// handoverFile names the socket pair end passed to the new process.
const handoverFile = "sluice-handover"

// upgrader is this process's side of the handover, to its parent (when it
// was started by an upgrade) and to its child.
type upgrader struct {
	flip    *tableflip.Upgrader
	log     *slog.Logger
	pidFile string
	// parent is the connection to the process that started this one (nil
	// on a first start): the new process writes its PID on it, and reads
	// "main" once the parent has made it the main PID.
	parent net.Conn
	// child is this process's end of the pair the next process inherits.
	child net.Conn

	// parentExited is closed when the parent has exited (at once on a
	// first start).
	parentExited chan struct{}
	// writes is shut while another process may write the key and quota
	// files: in a new process until it is the main one, in the old one
	// from the start of an upgrade (admin.WriteGate).
	writes *admin.WriteGate

	mu     sync.Mutex // held through an upgrade: one at a time
	done   chan struct{}
	newPID int // set before done is closed
}

// newUpgrader sets up tableflip. timeout bounds how long a new process
// may take to get ready.
func newUpgrader(pidFile string, timeout time.Duration, log *slog.Logger) (*upgrader, error) {
	flip, err := tableflip.New(tableflip.Options{PIDFile: pidFile, UpgradeTimeout: timeout})
	if err != nil {
		return nil, fmt.Errorf("upgrades: %w", err)
	}
	u := &upgrader{flip: flip, log: log, pidFile: pidFile, done: make(chan struct{}), parentExited: make(chan struct{}), writes: &admin.WriteGate{}}
	go func() {
		_ = flip.WaitForParent(context.Background())
		close(u.parentExited)
	}()
	// The inherited end first: adding our own under the same name
	// replaces it.
	if flip.HasParent() {
		f, err := flip.File(handoverFile)
		if err != nil || f == nil {
			return nil, fmt.Errorf("upgrades: no handover socket from the parent process (%v)", err)
		}
		u.parent, err = net.FileConn(f)
		_ = f.Close()
		if err != nil {
			return nil, fmt.Errorf("upgrades: handover socket: %w", err)
		}
		u.writes.Shut("this process is taking over from another one (an upgrade); key and quota changes are refused until it has; retry")
	}
	if err := u.newPair(); err != nil {
		return nil, err
	}
	return u, nil
}

// newPair makes the socket pair the next new process inherits: our end
// in u.child, theirs registered with tableflip (replacing the previous
// one). Each upgrade gets a fresh pair, so nothing a failed new process
// wrote can be read by the next upgrade as its successor's PID.
func (u *upgrader) newPair() error {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("upgrades: socketpair: %w", err)
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "handover"), os.NewFile(uintptr(fds[1]), "handover")
	defer ours.Close()
	defer theirs.Close()
	conn, err := net.FileConn(ours)
	if err != nil {
		return fmt.Errorf("upgrades: handover socket: %w", err)
	}
	if err := u.flip.AddFile(handoverFile, theirs); err != nil {
		_ = conn.Close()
		return fmt.Errorf("upgrades: %w", err)
	}
	if u.child != nil {
		_ = u.child.Close()
	}
	u.child = conn
	// AddFile replaced tableflip's previous entry under handoverFile (the
	// end a failed new process had, or the one inherited from our parent)
	// without closing it; tableflip offers no way to, and nothing refers
	// to it now, so its os.File finalizer closes it. Collecting now makes
	// that happen at once rather than at some later collection: otherwise
	// each failed upgrade and each generation would hold a socket more.
	runtime.GC()
	return nil
}

// listen returns the listener the parent passed for key (role and
// configured address), or opens addr. An inherited listener the new
// config no longer names is closed by ready.
func (u *upgrader) listen(key, addr string) (net.Listener, error) {
	return u.flip.ListenWithCallback("tcp", key, func(string, string) (net.Listener, error) {
		return net.Listen("tcp", addr)
	})
}

// prepare does, before this process serves, what ready could otherwise
// fail at once connections are accepted (which would drop them): it
// writes the PID file (tableflip writes it again in Ready, in the same
// way) and, after an upgrade, tells the parent its PID.
func (u *upgrader) prepare() error {
	if u.pidFile != "" {
		if err := writePIDFile(u.pidFile); err != nil {
			return fmt.Errorf("upgrades: PID file: %w", err)
		}
	}
	if u.parent != nil {
		if _, err := fmt.Fprintf(u.parent, "pid %d\n", os.Getpid()); err != nil {
			return fmt.Errorf("upgrades: telling the parent process our PID: %w", err)
		}
	}
	return nil
}

// removePIDFile removes the PID file if it names this process.
func (u *upgrader) removePIDFile() {
	if u.pidFile == "" {
		return
	}
	if b, err := os.ReadFile(u.pidFile); err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(os.Getpid()) {
		_ = os.Remove(u.pidFile)
	}
}

// writePIDFile replaces path with this process's PID in one step.
func writePIDFile(path string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = fmt.Fprint(tmp, os.Getpid())
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// ready says this process serves (tableflip's readiness to the parent,
// after prepare). handedOver is closed once the parent has made this
// process the main PID (or has gone); nil on a first start.
func (u *upgrader) ready() (handedOver <-chan struct{}, err error) {
	if err := u.flip.Ready(); err != nil {
		return nil, err
	}
	if u.parent == nil {
		return nil, nil
	}
	ch := make(chan struct{})
	go func() {
		// "main", or EOF if the parent went away first: either way the
		// parent no longer serves, and the PID file names this process.
		// Admin writes open before the parent hears back ("ok"), so its
		// caller's next write finds them open.
		_, _ = bufio.NewReader(u.parent).ReadString('\n')
		u.writes.Open()
		_, _ = u.parent.Write([]byte("ok\n"))
		_ = u.parent.Close()
		close(ch)
	}()
	return ch, nil
}

// handedOver is closed once a new process serves in this one's place.
func (u *upgrader) handedOver() <-chan struct{} { return u.done }

// upgrade starts the new process and waits until it is ready or has
// failed. On success it makes the new process the main PID (notify) and
// closes handedOver; the caller then drains.
func (u *upgrader) upgrade(notify *notifier) (int, error) {
	if !u.mu.TryLock() {
		return 0, fmt.Errorf("%w: an upgrade is already in progress", admin.ErrConflict)
	}
	defer u.mu.Unlock()
	select {
	case <-u.done:
		return 0, fmt.Errorf("%w: this process has handed over to pid %d and is draining", admin.ErrConflict, u.newPID)
	default:
	}
	// A process that is itself draining its parent's connections can't
	// start a third generation yet (tableflip's rule): say so plainly.
	if u.parent != nil {
		select {
		case <-u.parentExited:
		default:
			return 0, fmt.Errorf("%w: the previous process (pid %d) is still draining; upgrade again once it has exited", admin.ErrConflict, os.Getppid())
		}
	}
	if err := u.newPair(); err != nil {
		return 0, err
	}
	u.writes.Shut("an upgrade is under way; key and quota changes are refused until it is done; retry")
	// The watchdog is the new process's once it is the main PID: without
	// WATCHDOG_PID naming this process, it takes WATCHDOG_USEC as its own.
	if os.Getenv("WATCHDOG_PID") == strconv.Itoa(os.Getpid()) {
		_ = os.Unsetenv("WATCHDOG_PID")
	}
	if err := u.flip.Upgrade(); err != nil {
		u.writes.Open()
		// The new process may have written the PID file before it failed.
		if u.pidFile != "" {
			if werr := writePIDFile(u.pidFile); werr != nil {
				u.log.Error("upgrade failed, and the PID file could not be given back this process's PID", "error", werr.Error())
			}
		}
		return 0, fmt.Errorf("the new process did not get ready (%v); this one keeps serving", err)
	}
	pid, err := u.readPID()
	if err != nil {
		// It is ready and serving: hand over all the same; the PID file
		// names it.
		u.log.Warn("upgrade: the new process did not send its PID", "error", err.Error())
	}
	if pid > 0 {
		notify.send(notify.withPing("MAINPID="+strconv.Itoa(pid), fmt.Sprintf("STATUS=handed over to pid %d; draining", pid))...)
	}
	u.writes.Shut(fmt.Sprintf("this process has handed over to pid %d; retry", pid))
	_, _ = u.child.Write([]byte("main\n"))
	// Wait (briefly) for the new process to take over, so that whoever
	// asked for the upgrade finds it open for writes.
	_ = u.child.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _ = bufio.NewReader(u.child).ReadString('\n')
	u.newPID = pid
	close(u.done)
	return pid, nil
}

// readPID reads the "pid N" line a ready new process wrote, and checks
// that N is a live child of this process: a PID that isn't would be
// reported to the operator and to systemd as the one that serves.
func (u *upgrader) readPID() (int, error) {
	_ = u.child.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer func() { _ = u.child.SetReadDeadline(time.Time{}) }()
	line, err := bufio.NewReader(u.child).ReadString('\n')
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(line), "pid "))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("handover: %q is not a PID", line)
	}
	if ppid, ok := liveParent(pid); !ok || ppid != os.Getpid() {
		return 0, fmt.Errorf("handover: pid %d is not a live child of this process", pid)
	}
	return pid, nil
}

// liveParent returns pid's parent PID, with ok false if pid is not a live
// process (gone, or a zombie).
func liveParent(pid int) (ppid int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// pid (comm) STATE PPID ...: comm may hold spaces, so after the last ')'.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 2 || f[0] == "Z" || f[0] == "X" {
		return 0, false
	}
	ppid, err = strconv.Atoi(f[1])
	return ppid, err == nil
}

// stop ends upgrades (one in progress kills its new process).
func (u *upgrader) stop() { u.flip.Stop() }
