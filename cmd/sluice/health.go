package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/sluicegw/sluice/edge/config"
)

// healthCmd implements `sluice health`: one GET of the admin listener's
// /health (or /ready with -ready), exit 0 on 200 and 1 otherwise. It is the
// container HEALTHCHECK: a scratch image has no curl or wget. Both paths
// answer without admin credentials (edge/admin/auth.go).
//
// The address is -admin, else admin.listen from the config (-c, else
// $SLUICE_CONFIG, else ./sluice.yaml) read the way serve reads it, with
// ${VAR} from the environment, so a container's SLUICE_ADMIN_LISTEN is
// seen. A wildcard host (":9901", "0.0.0.0:9901", "[::]:9901") is asked
// on loopback.
func healthCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {}
	c := fs.String("c", envOr("SLUICE_CONFIG", "sluice.yaml"), "config file (for admin.listen)")
	adminAddr := fs.String("admin", "", "admin address, host:port or http://host:port (default: admin.listen from the config)")
	ready := fs.Bool("ready", false, "ask /ready (serving, not draining) instead of /health (alive)")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usage)
		return 0
	} else if err != nil {
		fmt.Fprint(stderr, usage)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "sluice health: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	base := *adminAddr
	if base == "" {
		listen, err := adminListen(*c)
		if err != nil {
			fmt.Fprintf(stderr, "sluice health: %v\n", err)
			return 1
		}
		base = listen
	}
	path := "/health"
	if *ready {
		path = "/ready"
	}
	u, err := adminURL(base, path)
	if err != nil {
		fmt.Fprintf(stderr, "sluice health: %v\n", err)
		return 1
	}
	client := &http.Client{Timeout: *timeout}
	resp, err := client.Get(u)
	if err != nil {
		fmt.Fprintf(stderr, "sluice health: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	line := fmt.Sprintf("%s: %d %s", u, resp.StatusCode, strings.TrimSpace(string(body)))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(stderr, "sluice health:", line)
		return 1
	}
	fmt.Fprintln(stdout, line)
	return 0
}

// adminListen reads admin.listen from the config at path. The whole config
// is parsed (as serve would, less the checks of files it names): expansion
// and defaults live there, and a config serve would refuse can't say
// where a running sluice listens.
func adminListen(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%v (pass -admin ADDR, or -c FILE)", err)
	}
	cfg, err := config.Parse(path, data, os.LookupEnv)
	if err != nil {
		return "", fmt.Errorf("reading admin.listen from the config: %v\n(pass -admin ADDR to ask a running sluice anyway)", err)
	}
	if cfg.Admin.Listen == "off" {
		return "", fmt.Errorf("%s: admin.listen is off, so there is no admin listener to ask", path)
	}
	return cfg.Admin.Listen, nil
}

// adminURL makes the URL of path from an admin address: host:port or a
// URL with scheme; a wildcard or empty host becomes loopback.
func adminURL(addr, path string) (string, error) {
	scheme := "http"
	if s, rest, ok := strings.Cut(addr, "://"); ok {
		scheme, addr = s, strings.TrimSuffix(rest, "/")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("admin address %q is not host:port", addr)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return scheme + "://" + net.JoinHostPort(host, port) + path, nil
}
