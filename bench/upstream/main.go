package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/sluicegw/sluice/bench/stub"
)

func main() {
	var o stub.Options
	addr := flag.String("addr", "127.0.0.1:9001", "listen address")
	flag.StringVar(&o.Name, "name", "demo", "name reported in every answer")
	flag.DurationVar(&o.Latency, "latency", 0, "delay before every answer")
	flag.IntVar(&o.BodySize, "body-size", 0, "answer this many bytes instead of the JSON line")
	flag.BoolVar(&o.JSON, "body-json", false, "with -body-size: the bytes are API-like JSON (application/json), not a letter pattern")
	flag.IntVar(&o.Status, "status", 200, "status code of the default answer")
	flag.Float64Var(&o.FailRatio, "fail-ratio", 0, "fraction of requests (0..1) answered 503")
	consulAddr := flag.String("consul", "", "register in the Consul agent at this address")
	service := flag.String("service", "demo", "Consul service name to register as")
	advertise := flag.String("advertise", "", "host:port Consul and gateways reach this upstream at (default: the listen address)")
	drain := flag.Duration("drain", time.Second, "after deregistering, keep serving this long before stopping")
	flag.Parse()
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
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
	if *advertise == "" {
		*advertise = ln.Addr().String()
	}

	var deregister func()
	if *consulAddr != "" {
		deregister, err = register(*consulAddr, *service, *advertise)
		if err != nil {
			fmt.Fprintln(os.Stderr, "upstream:", err)
			os.Exit(1)
		}
		log.Info("registered in consul", "service", *service, "advertise", *advertise)
	}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
		<-sig
		if deregister != nil {
			deregister()
			log.Info("deregistered from consul; draining", "for", drain.String())
			time.Sleep(*drain)
		}
		_ = s.Close()
	}()
	log.Info("upstream listening", "addr", ln.Addr().String(), "name", o.Name)
	if err := s.Serve(ln); err != nil {
		fmt.Fprintln(os.Stderr, "upstream:", err)
		os.Exit(1)
	}
}

// register adds this upstream to Consul with an HTTP check and returns the
// function that removes it.
func register(consulAddr, service, advertise string) (func(), error) {
	cfg := api.DefaultConfig()
	cfg.Address = consulAddr
	client, err := api.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	host, portStr, err := net.SplitHostPort(advertise)
	if err != nil {
		return nil, fmt.Errorf("-advertise %q: %w", advertise, err)
	}
	port, _ := strconv.Atoi(portStr)
	id := service + "-" + advertise
	reg := &api.AgentServiceRegistration{
		ID: id, Name: service, Address: host, Port: port,
		Check: &api.AgentServiceCheck{
			HTTP: "http://" + advertise + "/healthz", Interval: "1s", Timeout: "1s",
			DeregisterCriticalServiceAfter: "1m",
		},
	}
	if err := client.Agent().ServiceRegister(reg); err != nil {
		return nil, fmt.Errorf("consul register: %w", err)
	}
	return func() { _ = client.Agent().ServiceDeregister(id) }, nil
}
