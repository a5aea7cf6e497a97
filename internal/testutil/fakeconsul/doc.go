// Package fakeconsul is an in-process server speaking the subset of the
// Consul HTTP API sluice uses, for tests (Consul has no package on the
// build machines):
//
//	GET    /v1/health/service/NAME   ?passing ?tag= ?dc= ?index= ?wait=
//	GET    /v1/kv/KEY                ?index= ?wait= ?dc=
//	PUT    /v1/kv/KEY                ?cas=
//	DELETE /v1/kv/KEY
//	PUT    /v1/agent/service/register
//	PUT    /v1/agent/service/deregister/ID
//
// It keeps one raft-like index that grows on every write (starting at 1,
// so never 0), answers with X-Consul-Index, and blocks a query whose
// ?index= is not behind the current index until something changes or
// ?wait= passes, as Consul does. Like an agent, it runs the HTTP checks
// services register (GET, passing on 2xx), and a service's checks start
// critical until they first pass. Stop and StartAt on the same address
// play a Consul restart: the state is lost and the index starts over,
// below what watchers last saw.
//
// Tests reach Consul through Addr; when CONSUL_HTTP_ADDR is set they use a
// real agent there instead (see Start).
//
// fakeconsul imports only internal/testutil of sluice's, and no Consul
// library: the code under test talks to it with the real Consul client.
// It must never import the packages whose tests use it (pool, edge/...).
package fakeconsul
