/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The layout shared by Strata's BPF programs (strata.bpf.c) and the agent's loader
 * (ebpf/src/layout.rs, whose #[repr(C)] structs mirror these; `layout_matches_c` checks sizes
 * and offsets against this header).
 *
 * Every map is keyed by a container's cgroup id (the inode number of its cgroup2 directory,
 * what bpf_get_current_cgroup_id() returns): a __u64.
 */
#ifndef STRATA_BPF_H
#define STRATA_BPF_H

#include <linux/types.h>

/* Port ranges one container may hold (Mesos offers hand out a few ranges at most). */
#define STRATA_MAX_PORT_RANGES 16
/* Containers one agent may run at a time with ports enforcement / accounting. */
#define STRATA_MAX_CONTAINERS 16384

/* strata_ports.flags: refuse binds outside the ranges (else only count them). */
#define STRATA_PORTS_ENFORCE 1u

/* An inclusive range of ports, in host byte order. */
struct strata_port_range {
	__u16 first;
	__u16 last;
};

/* Value of the `strata_ports` hash map: the ports a container was allocated. */
struct strata_ports {
	__u32 flags;
	/* Ranges in use at the front of `ranges`. */
	__u32 count;
	/* Binds outside the ranges seen so far (refused when STRATA_PORTS_ENFORCE is set). */
	__u64 violations;
	struct strata_port_range ranges[STRATA_MAX_PORT_RANGES];
};

/* Value of the `strata_net` per-CPU hash map: one CPU's share of a container's traffic. */
struct strata_net_counters {
	__u64 rx_bytes;
	__u64 rx_packets;
	__u64 tx_bytes;
	__u64 tx_packets;
};

#endif
