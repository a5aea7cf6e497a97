// Package ipset is an immutable set of IP prefixes (IPv4 and IPv6) that
// answers "is this address inside any of them?": the IP filters' lists.
//
// A Set is built once (with the snapshot) and only read afterwards, from
// any number of goroutines without locks. It is a path-compressed binary
// trie (PATRICIA) per address family in one flat slice: n prefixes take at
// most 2n+1 nodes of 32 bytes, and Contains follows one bit of the address
// per node, so a lookup costs at most the address's bit length (32 or 128)
// steps whatever the number of prefixes (about 15 for 10,000 random ones),
// and never allocates.
//
// ipset imports nothing of sluice's.
package ipset
