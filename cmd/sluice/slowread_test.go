package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluicegw/sluice/internal/testutil"
)

// Issue #13 section 3: 500 clients reading a 1 MiB answer slowly took
// sluice to 546 MiB RSS (every body buffered whole, nginx peaked at 72
// MiB). Answers above server.buffer_response_bytes now stream with
// backpressure: each slow client holds a few buffers, not its answer.
// With the old behaviour (buffer_response_bytes: 1MiB) this test fails with
// a peak over 500 MiB.
func TestSlowReadersDoNotGrowMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("holds 500 connections to the real binary")
	}
	const (
		slow    = 500
		bigSize = 1 << 20
	)
	up := startBigUpstream(t, bigSize)
	s := testutil.StartSluice(t, sluiceConfig(up.url, "  - { name: all, match: { prefix: / }, upstream: up }\n"))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// Slow readers: a small receive buffer (set before connect, so the
	// window is small from the start), one request, then only its first
	// bytes read. They also announce Ethernet-sized segments (MSS 1460),
	// as a client across a real network does: with loopback's 64 KiB
	// segments the kernel sizes sluice's send buffer to take a whole 1 MiB
	// answer, which would hide where sluice keeps it.
	dialer := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		_ = c.Control(func(fd uintptr) {
			if err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096); err == nil {
				err = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_MAXSEG, 1460)
			}
		})
		return err
	}}
	var started atomic.Int64 // slow readers whose answer has begun
	var wg sync.WaitGroup
	errs := make(chan error, slow)
	conns := make([]net.Conn, slow)
	for i := range conns {
		c, err := dialer.DialContext(ctx, "tcp", s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c
		defer c.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.SetDeadline(time.Now().Add(50 * time.Second))
			if _, err := fmt.Fprintf(c, "GET /big/%d HTTP/1.1\r\nHost: slow\r\n\r\n", i); err != nil {
				errs <- err
				return
			}
			line, err := bufio.NewReaderSize(c, 64).ReadString('\n')
			if err != nil || !strings.HasPrefix(line, "HTTP/1.1 200") {
				errs <- fmt.Errorf("slow reader %d: %q %v", i, line, err)
				return
			}
			started.Add(1) // and reads nothing more
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := up.asked.Load(); n < slow {
		t.Fatalf("the upstream was asked %d times, want %d", n, slow)
	}

	// Meanwhile every other client is served normally: small answers and
	// whole 1 MiB ones, read at full speed.
	hc := &http.Client{Timeout: 20 * time.Second}
	for i := 0; i < 50; i++ {
		path := "/small"
		if i%10 == 0 {
			path = "/big/fast"
		}
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+s.Addr+path, nil)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("a normal client while %d slow ones wait: %v", started.Load(), err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := 2
		if path != "/small" {
			want = bigSize
		}
		if resp.StatusCode != 200 || err != nil || len(b) != want {
			t.Fatalf("%s: %d, %d bytes, %v", path, resp.StatusCode, len(b), err)
		}
	}

	hwm := peakRSS(t, s.Cmd.Process.Pid)
	t.Logf("%d slow readers of 1 MiB answers: sluice peak RSS %d MiB", started.Load(), hwm>>20)
	if hwm > 100<<20 {
		t.Errorf("peak RSS %d MiB with %d slow readers, want < 100 MiB: answers are being buffered whole", hwm>>20, slow)
	}
}

// bigUpstream answers /small with "ok" and anything else with size bytes,
// written from one shared buffer, so the upstream itself costs nothing per
// slow client and its writes block when sluice stops reading.
type bigUpstream struct {
	url   string
	asked atomic.Int64
}

func startBigUpstream(t *testing.T, size int) *bigUpstream {
	ln := testutil.Listen(t)
	u := &bigUpstream{url: "http://" + ln.Addr().String()}
	body := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	head := []byte(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(body)))
	small := []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	var mu sync.Mutex
	var open []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open = append(open, c)
			mu.Unlock()
			go func() {
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					for h := ""; h != "\r\n"; {
						if h, err = br.ReadString('\n'); err != nil {
							return
						}
					}
					u.asked.Add(1)
					if strings.HasPrefix(line, "GET /small ") {
						_, err = c.Write(small)
					} else if _, err = c.Write(head); err == nil {
						_, err = c.Write(body)
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
	})
	return u
}
