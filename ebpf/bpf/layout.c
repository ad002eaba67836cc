/* Prints the sizes and offsets of strata.h's structs as Rust constants (build.rs runs it), so a
 * test can check ebpf/src/layout.rs against the C compiler's view. The BPF target lays out these
 * fixed-width, naturally aligned types exactly as the host (x86_64/aarch64, LP64) does. */
#include <stddef.h>
#include <stdio.h>

#include "strata.h"

#define FIELD(s, f) printf("    (\"" #s "." #f "\", %zu),\n", offsetof(struct s, f))
#define SIZE(s) printf("    (\"" #s "\", %zu),\n", sizeof(struct s))

int main(void)
{
	printf("/// Sizes and offsets of strata.h's structs, as the C compiler lays them out.\n");
	printf("pub const C_LAYOUT: &[(&str, usize)] = &[\n");
	SIZE(strata_port_range);
	FIELD(strata_port_range, first);
	FIELD(strata_port_range, last);
	SIZE(strata_ports);
	FIELD(strata_ports, flags);
	FIELD(strata_ports, count);
	FIELD(strata_ports, violations);
	FIELD(strata_ports, ranges);
	SIZE(strata_net_counters);
	FIELD(strata_net_counters, rx_bytes);
	FIELD(strata_net_counters, rx_packets);
	FIELD(strata_net_counters, tx_bytes);
	FIELD(strata_net_counters, tx_packets);
	printf("];\n");
	printf("pub const C_MAX_PORT_RANGES: usize = %d;\n", STRATA_MAX_PORT_RANGES);
	printf("pub const C_MAX_CONTAINERS: u32 = %d;\n", STRATA_MAX_CONTAINERS);
	printf("pub const C_PORTS_ENFORCE: u32 = %u;\n", STRATA_PORTS_ENFORCE);
	return 0;
}
