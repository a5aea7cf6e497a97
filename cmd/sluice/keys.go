package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// keysCmd implements `sluice keys create|list|revoke|delete`, a client of
// the admin API.
func keysCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: sluice keys create|list|revoke|delete [flags]")
		return 2
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("keys "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	adminURL := fs.String("admin", envOr("SLUICE_ADMIN_URL", "http://127.0.0.1:9901"), "admin API base URL")
	user := fs.String("user", envOr("SLUICE_ADMIN_USER", "admin"), "admin user (password from $SLUICE_ADMIN_PASSWORD)")
	name := fs.String("name", "", "create: key name")
	roles := fs.String("roles", "", "create: comma-separated roles")
	rate := fs.Int("rate-limit", 0, "create: requests per second for this key")
	quota := fs.Int("quota", 0, "create: requests per day for this key")
	expires := fs.Duration("expires-in", 0, "create: lifetime (0: never expires)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var method, path string
	var body []byte
	switch sub {
	case "create":
		spec := map[string]any{"name": *name, "rate_limit": *rate, "quota": *quota}
		if *roles != "" {
			spec["roles"] = strings.Split(*roles, ",")
		}
		if *expires > 0 {
			spec["expires_at"] = time.Now().Add(*expires).UTC()
		}
		body, _ = json.Marshal(spec)
		method, path = http.MethodPost, "/admin/apikeys"
	case "list":
		method, path = http.MethodGet, "/admin/apikeys"
	case "revoke", "delete":
		if fs.NArg() != 1 {
			fmt.Fprintf(stderr, "usage: sluice keys %s ID\n", sub)
			return 2
		}
		method, path = http.MethodPost, "/admin/apikeys/"+fs.Arg(0)+"/revoke"
		if sub == "delete" {
			method, path = http.MethodDelete, "/admin/apikeys/"+fs.Arg(0)
		}
	default:
		fmt.Fprintf(stderr, "sluice keys: unknown command %q\n", sub)
		return 2
	}
	req, err := http.NewRequest(method, strings.TrimSuffix(*adminURL, "/")+path, bytes.NewReader(body))
	if err != nil {
		fmt.Fprintln(stderr, "sluice keys:", err)
		return 1
	}
	req.Header.Set("Content-Type", "application/json")
	if tok := os.Getenv("SLUICE_ADMIN_TOKEN"); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	} else {
		req.SetBasicAuth(*user, os.Getenv("SLUICE_ADMIN_PASSWORD"))
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		fmt.Fprintln(stderr, "sluice keys:", err)
		return 1
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode >= 300 {
		fmt.Fprintf(stderr, "sluice keys %s: %s: %s", sub, resp.Status, out)
		return 1
	}
	_, _ = stdout.Write(out)
	return 0
}
