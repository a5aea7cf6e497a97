// Command upstream is the demo and benchmark backend: a fasthttp server
// answering a short JSON line (or -body-size bytes) after -latency, with
// -fail-ratio of answers being 503. See bench/stub for the /__stub/ paths.
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/sluicegw/sluice/bench/stub"
)

func main() {
	var o stub.Options
	addr := flag.String("addr", "127.0.0.1:9001", "listen address")
	flag.StringVar(&o.Name, "name", "demo", "name reported in every answer")
	flag.DurationVar(&o.Latency, "latency", 0, "delay before every answer")
	flag.IntVar(&o.BodySize, "body-size", 0, "answer this many bytes instead of the JSON line")
	flag.IntVar(&o.Status, "status", 200, "status code of the default answer")
	flag.Float64Var(&o.FailRatio, "fail-ratio", 0, "fraction of requests (0..1) answered 503")
	flag.Parse()
	if o.FailRatio < 0 || o.FailRatio > 1 {
		fmt.Fprintln(os.Stderr, "upstream: -fail-ratio must be between 0 and 1")
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "upstream:", err)
		os.Exit(1)
	}
	s := stub.New(o)
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
		<-sig
		_ = s.Close()
	}()
	slog.New(slog.NewJSONHandler(os.Stderr, nil)).Info("upstream listening", "addr", ln.Addr().String(), "name", o.Name)
	if err := s.Serve(ln); err != nil {
		fmt.Fprintln(os.Stderr, "upstream:", err)
		os.Exit(1)
	}
}
