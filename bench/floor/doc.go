// Command floor is the smallest fasthttp reverse proxy: a Server whose
// handler hands every request to one HostClient, with no timeouts and no
// header work. The bench harness measures it beside sluice to show what
// fasthttp itself costs on the machine, and so how much of sluice's cost
// is its own gateway work. It is not a usable proxy.
//
// floor imports nothing of sluice's, so it measures fasthttp alone.
package main
