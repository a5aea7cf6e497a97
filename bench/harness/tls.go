package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The TLS scenario: sluice's listen_tls and nginx's `listen ... ssl` with
// the same self-signed ECDSA P-256 certificate, TLS 1.2 and 1.3, session
// tickets on in both. wrk measures keep-alive throughput over TLS (direct
// and the fasthttp floor stay plain, for reference); newConnRates then
// measures new TLS connections per second, one request each, with and
// without session resumption.

// insecureClient is for the harness's own checks of its self-signed
// servers.
var insecureClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
	TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}

// writeSelfSigned writes cert.pem and key.pem for 127.0.0.1 into dir.
func writeSelfSigned(dir string) (certFile, keyFile string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "bench"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", err
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return "", "", err
	}
	return certFile, keyFile, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
}

// tlsConfigs are the sluice and nginx config pieces of the TLS scenario.
func tlsConfigs(dir, sluiceTLSAddr, nginxAddr string) (sluiceExtra, nginxListen string, err error) {
	cert, key, err := writeSelfSigned(dir)
	if err != nil {
		return "", "", err
	}
	sluiceExtra = fmt.Sprintf("listen_tls: [ { listen: %s, certificates: [ { cert_file: %s, key_file: %s } ] } ]\n", sluiceTLSAddr, cert, key)
	nginxListen = fmt.Sprintf(`listen %s ssl;
    ssl_certificate %s;
    ssl_certificate_key %s;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_tickets on;
    ssl_session_cache shared:SSL:10m;
    keepalive_requests 1000000;`, nginxAddr, cert, key)
	return sluiceExtra, nginxListen, nil
}

// newConnRate is new TLS connections per second, one GET each, from 8
// client goroutines for d; with resume, each goroutine keeps a session
// cache, so after its first connection every handshake resumes.
func newConnRate(ctx context.Context, url string, resume bool, d time.Duration) (rate float64, resumed, errs int64) {
	addr := strings.TrimSuffix(strings.TrimPrefix(url, "https://"), "/")
	var n, r, e atomic.Int64
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cfg := &tls.Config{InsecureSkipVerify: true}
			if resume {
				cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
			}
			for time.Now().Before(stop) && ctx.Err() == nil {
				did, err := oneTLSRequest(addr, cfg)
				if err != nil {
					e.Add(1)
					continue
				}
				n.Add(1)
				if did {
					r.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return float64(n.Load()) / d.Seconds(), r.Load(), e.Load()
}

// oneTLSRequest connects, sends one GET with Connection: close and reads
// the answer (which also reads a TLS 1.3 session ticket).
func oneTLSRequest(addr string, cfg *tls.Config) (bool, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return false, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"); err != nil {
		return false, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return false, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return false, fmt.Errorf("status %d", resp.StatusCode)
	}
	return c.ConnectionState().DidResume, nil
}

// printNewConnRates measures and prints the new-connection table for
// sluice and nginx, interleaved over the rounds.
func printNewConnRates(ctx context.Context, urls map[string]string) {
	type key struct {
		target string
		resume bool
	}
	rates := map[key][]float64{}
	resumedPct := map[key]float64{}
	errs := map[key]int64{}
	for round := 0; round < *rounds; round++ {
		for _, resume := range []bool{false, true} {
			for _, t := range []string{"nginx", "sluice"} {
				r, res, e := newConnRate(ctx, urls[t], resume, *duration)
				k := key{t, resume}
				rates[k] = append(rates[k], r)
				if r > 0 {
					resumedPct[k] = 100 * float64(res) / (r * duration.Seconds())
				}
				errs[k] += e
			}
		}
	}
	fmt.Printf("New TLS connections per second, one GET with `Connection: close` each, 8 Go client goroutines for %s, %d interleaved rounds:\n\n", *duration, *rounds)
	fmt.Println("| target | session resumption | conns/s (median) | per round | resumed % (last round) | errors |")
	fmt.Println("|---|---|---|---|---|---|")
	for _, resume := range []bool{false, true} {
		for _, t := range []string{"nginx", "sluice"} {
			k := key{t, resume}
			per := make([]string, len(rates[k]))
			for i, v := range rates[k] {
				per[i] = fmt.Sprintf("%d", int(v))
			}
			mode := "off (full handshake)"
			if resume {
				mode = "on (tickets)"
			}
			fmt.Printf("| %s | %s | %d | %s | %.0f | %d |\n", t, mode, int(median(rates[k])), strings.Join(per, " "), resumedPct[k], errs[k])
		}
	}
	for _, resume := range []bool{false, true} {
		s, n := median(rates[key{"sluice", resume}]), median(rates[key{"nginx", resume}])
		fmt.Printf("\nsluice/nginx new connections per second, resumption %v: **%.2fx**.", resume, s/n)
	}
	fmt.Print("\n\n")
}
