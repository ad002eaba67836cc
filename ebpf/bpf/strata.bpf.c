// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/*
 * Strata's BPF programs, attached once at the agent's cgroup subtree (<cgroup2>/<cgroups_root>)
 * and so run for every process and socket below it:
 *
 * - cgroup/bind4, cgroup/bind6: a bind() to a port outside the container's allocated ports fails
 *   with EPERM. Port 0 passes here; the kernel's choice is checked by the post_bind hooks.
 * - cgroup/post_bind4, cgroup/post_bind6: the port the socket ended up with must be allocated.
 * - cgroup_skb/ingress, cgroup_skb/egress: bytes and packets per container.
 *
 * A container is identified by its cgroup: the ancestor at `container_level` of the process
 * (or socket), so a task cannot step out of its limits by creating a child cgroup. Cgroups with
 * no map entry (not a Strata container, or one whose isolator is off) are left alone: entries are
 * added by the agent before the container's first process starts, and removed when it is gone.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "strata.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Depth of container cgroups in the cgroup2 hierarchy (root = 0); set by the loader. */
volatile const __u32 container_level = 2;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, STRATA_MAX_CONTAINERS);
	__type(key, __u64);
	__type(value, struct strata_ports);
} strata_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, STRATA_MAX_CONTAINERS);
	__type(key, __u64);
	__type(value, struct strata_net_counters);
} strata_net SEC(".maps");

/*
 * 1: allowed, 0: refused (the kernel turns that into EPERM). `count` says whether a violation
 * is counted here: post_bind hooks count only when enforcing, since an unenforced bind outside
 * the ranges was already counted by the bind hook (a port-0 bind the kernel places outside the
 * ranges then goes uncounted; enforced, it is refused).
 */
static __always_inline int check_port(__u16 port, int count)
{
	__u64 cgroup = bpf_get_current_ancestor_cgroup_id(container_level);
	struct strata_ports *ports = bpf_map_lookup_elem(&strata_ports, &cgroup);
	__u32 i;

	if (!ports)
		return 1;
	for (i = 0; i < STRATA_MAX_PORT_RANGES; i++) {
		if (i >= ports->count)
			break;
		if (port >= ports->ranges[i].first && port <= ports->ranges[i].last)
			return 1;
	}
	if (ports->flags & STRATA_PORTS_ENFORCE) {
		__sync_fetch_and_add(&ports->violations, 1);
		return 0;
	}
	if (count)
		__sync_fetch_and_add(&ports->violations, 1);
	return 1;
}

SEC("cgroup/bind4")
int strata_bind4(struct bpf_sock_addr *ctx)
{
	__u16 port = bpf_ntohs((__u16)ctx->user_port);

	/* Port 0 asks the kernel to choose; post_bind4 checks its choice. */
	return port == 0 ? 1 : check_port(port, 1);
}

SEC("cgroup/bind6")
int strata_bind6(struct bpf_sock_addr *ctx)
{
	__u16 port = bpf_ntohs((__u16)ctx->user_port);

	return port == 0 ? 1 : check_port(port, 1);
}

SEC("cgroup/post_bind4")
int strata_post_bind4(struct bpf_sock *sk)
{
	/* src_port is in host byte order. */
	return check_port((__u16)sk->src_port, 0);
}

SEC("cgroup/post_bind6")
int strata_post_bind6(struct bpf_sock *sk)
{
	return check_port((__u16)sk->src_port, 0);
}

static __always_inline void count(struct __sk_buff *skb, int egress)
{
	__u64 cgroup = bpf_skb_ancestor_cgroup_id(skb, container_level);
	struct strata_net_counters *c = bpf_map_lookup_elem(&strata_net, &cgroup);

	if (!c)
		return;
	/* Per-CPU values: no other CPU writes this copy, so plain adds are exact. */
	if (egress) {
		c->tx_bytes += skb->len;
		c->tx_packets += 1;
	} else {
		c->rx_bytes += skb->len;
		c->rx_packets += 1;
	}
}

SEC("cgroup_skb/ingress")
int strata_ingress(struct __sk_buff *skb)
{
	count(skb, 0);
	return 1;
}

SEC("cgroup_skb/egress")
int strata_egress(struct __sk_buff *skb)
{
	count(skb, 1);
	return 1;
}
