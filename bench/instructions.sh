#!/bin/sh
# instructions.sh: instructions per proxied request under callgrind, for
# the sub-benchmarks of edge's BenchmarkFloor (floor: a bare fasthttp
# Server + HostClient; floor+headers: the same, setting the headers sluice
# adds; bare: sluice, a route without policies; full: a
# cached JWT, a local rate limit, metrics, access log 1%) or the
# benchmarks named as arguments. Client, proxy and stub share the
# process, so the count covers all three (the client and the stub parse
# the headers sluice adds, as nginx's would). Each benchmark runs twice,
# at 1000 and 3000 requests; (I(3000) - I(1000)) / 2000 is one request
# without start-up. Repeatable to about 0.5%: a machine busy with other
# work changes the time, not the count. (Running the proxies as their own
# processes under valgrind, with curl outside, was tried: its counts moved
# by 10% between runs, from idle-loop and timer work that scales with the
# wall time valgrind's slowdown makes.)
#
#   bench/instructions.sh                      # Floor/floor, floor+headers, bare, full
#   bench/instructions.sh 'ServeHTTP/body=64$'
#   KEEP=dir bench/instructions.sh             # keep the callgrind files there
#
# GODEBUG=asyncpreemptoff=1: valgrind 3.19 asserts on Go's preemption signals.
set -eu
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
go test -c -o "$out/edge.test" ./edge
[ $# -gt 0 ] || set -- 'Floor/floor$' 'Floor/floor\+headers$' 'Floor/bare$' 'Floor/full$'
cd edge
printf '| benchmark | I(1000) | I(3000) | instructions per request |\n|---|---|---|---|\n'
for bench in "$@"; do
	for n in 1000 3000; do
		GODEBUG=asyncpreemptoff=1 valgrind --tool=callgrind --callgrind-out-file="$out/cg.$n.out" \
			"$out/edge.test" -test.run '^$' -test.bench "$bench" -test.benchtime ${n}x -test.cpu 1 >/dev/null 2>"$out/cg.$n.err"
		eval "i$n=\$(sed -n 's/^summary: //p' \"$out/cg.$n.out\")"
		[ -z "${KEEP:-}" ] || cp "$out/cg.$n.out" "$KEEP/$(echo "$bench" | tr -dc 'A-Za-z0-9=').$n.out"
	done
	echo "| $bench | $i1000 | $i3000 | $(( (i3000 - i1000) / 2000 )) |"
done
