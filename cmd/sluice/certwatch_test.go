package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/edge"
	"github.com/sluicegw/sluice/edge/config"
	"github.com/sluicegw/sluice/internal/testutil"
)

// inotifyInstances counts this process's open inotify instances.
func inotifyInstances(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, fd := range fds {
		if l, _ := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); l == "anon_inode:inotify" {
			n++
		}
	}
	return n
}

// Reloads that move the listener to new certificate files close the
// watches of the files no longer named: the inotify instances in use stay
// those of the files named now (a user has 128 by default).
func TestCertificateWatchesOfUnnamedFilesClosed(t *testing.T) {
	ca := testutil.NewCA(t, "edge")
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	parse := func(l *testutil.Leaf) *config.Config {
		cfg, err := config.Parse("c.yaml", []byte(`
listen: "off"
listen_tls:
  - listen: 127.0.0.1:0
    certificates: [ { cert_file: `+l.CertFile+`, key_file: `+l.KeyFile+` } ]
admin: { listen: "off" }
upstreams:
  up: { targets: [ { url: "`+up.URL+`" } ] }
routes:
  - { name: all, match: { prefix: / }, upstream: up }
`), nil)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	base := inotifyInstances(t)
	gw, err := edge.New(parse(ca.Issue(t, testutil.LeafOptions{Name: "l0", DNS: []string{"site.example"}})), quiet, "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gw.Shutdown(context.Background()) })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &certWatcher{ctx: ctx, gw: gw, log: quiet, reload: func() {}}
	w.watchNew()
	if n := inotifyInstances(t) - base; n != 2 {
		t.Fatalf("%d inotify instances for a certificate and its key, want 2", n)
	}
	for i := range 10 {
		if err := gw.Apply(parse(ca.Issue(t, testutil.LeafOptions{Name: fmt.Sprint("l", i+1), DNS: []string{"site.example"}}))); err != nil {
			t.Fatal(err)
		}
		w.watchNew()
	}
	testutil.WaitFor(t, "the watches of the files no longer named to close", func() bool {
		return inotifyInstances(t)-base == 2
	})
}
