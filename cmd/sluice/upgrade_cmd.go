package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// upgradeCmd implements `sluice upgrade`: POST /admin/upgrade on the
// running instance's admin listener, which answers once the new process
// serves or has failed; exit 0 on success, 1 otherwise.
//
// It asks the admin listener rather than signalling the PID in a PID
// file: the answer carries the result and the reason (a refused config
// with every error, a new process that exited, one already running),
// while a signal gives nothing back to wait on but a PID file that
// changes or doesn't. The admin credentials guard it like every other
// admin action, and it works wherever the admin port is reachable. With
// admin.listen off, `kill -USR2` (or `systemctl kill -s USR2 sluice`) is
// the trigger, and the log says how it went.
func upgradeCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("upgrade", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {}
	c := fs.String("c", envOr("SLUICE_CONFIG", "sluice.yaml"), "config file (for admin.listen)")
	adminAddr := fs.String("admin", "", "admin address, host:port or http://host:port (default: admin.listen from the config)")
	user := fs.String("user", envOr("SLUICE_ADMIN_USER", "admin"), "admin user (password from $SLUICE_ADMIN_PASSWORD, or $SLUICE_ADMIN_TOKEN)")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up waiting after this long (the new process gets a minute to get ready)")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usage)
		return 0
	} else if err != nil {
		fmt.Fprint(stderr, usage)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "sluice upgrade: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	base := *adminAddr
	if base == "" {
		listen, err := adminListen(*c)
		if err != nil {
			fmt.Fprintf(stderr, "sluice upgrade: %v\n(without an admin listener, send SIGUSR2: systemctl kill -s USR2 sluice)\n", err)
			return 1
		}
		base = listen
	}
	u, err := adminURL(base, "/admin/upgrade")
	if err != nil {
		fmt.Fprintf(stderr, "sluice upgrade: %v\n", err)
		return 1
	}
	req, _ := http.NewRequest(http.MethodPost, u, nil)
	if tok := os.Getenv("SLUICE_ADMIN_TOKEN"); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	} else {
		req.SetBasicAuth(*user, os.Getenv("SLUICE_ADMIN_PASSWORD"))
	}
	resp, err := (&http.Client{Timeout: *timeout}).Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "sluice upgrade: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	var body struct {
		PID         int      `json:"pid"`
		PreviousPID int      `json:"previous_pid"`
		Error       string   `json:"error"`
		Details     []string `json:"details"`
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	_ = json.Unmarshal(raw, &body)
	if resp.StatusCode != http.StatusOK {
		msg := body.Error
		if msg == "" {
			msg = strings.TrimSpace(string(raw))
		}
		fmt.Fprintf(stderr, "sluice upgrade: %s: %s\n", resp.Status, msg)
		for _, d := range body.Details {
			fmt.Fprintln(stderr, d)
		}
		return 1
	}
	fmt.Fprintf(stdout, "ok: pid %d serves now; pid %d is draining\n", body.PID, body.PreviousPID)
	return 0
}
