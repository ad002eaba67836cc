//! The Rust mirror of `bpf/strata.h`: map values as the BPF programs read and write them.

/// The most port ranges one container may hold (`STRATA_MAX_PORT_RANGES`).
pub const MAX_PORT_RANGES: usize = 16;
/// The most containers the maps hold at once (`STRATA_MAX_CONTAINERS`).
pub const MAX_CONTAINERS: u32 = 16384;
/// [`Ports::flags`]: refuse binds outside the ranges (`STRATA_PORTS_ENFORCE`).
pub const PORTS_ENFORCE: u32 = 1;

/// An inclusive range of ports (`struct strata_port_range`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

/// A container's allocated ports (`struct strata_ports`, the value of the `strata_ports` map).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ports {
    pub flags: u32,
    /// Ranges in use at the front of `ranges`.
    pub count: u32,
    /// Binds outside the ranges so far (refused when [`PORTS_ENFORCE`] is set).
    pub violations: u64,
    pub ranges: [PortRange; MAX_PORT_RANGES],
}

/// One CPU's share of a container's traffic (`struct strata_net_counters`, the value of the
/// per-CPU `strata_net` map); `+` sums the CPUs.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetCounters {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
}

impl std::ops::Add for NetCounters {
    type Output = NetCounters;

    fn add(self, other: NetCounters) -> NetCounters {
        NetCounters {
            rx_bytes: self.rx_bytes.wrapping_add(other.rx_bytes),
            rx_packets: self.rx_packets.wrapping_add(other.rx_packets),
            tx_bytes: self.tx_bytes.wrapping_add(other.tx_bytes),
            tx_packets: self.tx_packets.wrapping_add(other.tx_packets),
        }
    }
}

// SAFETY: plain `#[repr(C)]` structs of integers with no padding (checked against the C layout
// by `layout_matches_c`); every bit pattern is a valid value.
unsafe impl aya::Pod for PortRange {}
// SAFETY: as above.
unsafe impl aya::Pod for Ports {}
// SAFETY: as above.
unsafe impl aya::Pod for NetCounters {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    mod c {
        include!(concat!(env!("OUT_DIR"), "/c_layout.rs"));
    }

    #[test]
    fn layout_matches_c() {
        let rust: &[(&str, usize)] = &[
            ("strata_port_range", size_of::<PortRange>()),
            ("strata_port_range.first", offset_of!(PortRange, first)),
            ("strata_port_range.last", offset_of!(PortRange, last)),
            ("strata_ports", size_of::<Ports>()),
            ("strata_ports.flags", offset_of!(Ports, flags)),
            ("strata_ports.count", offset_of!(Ports, count)),
            ("strata_ports.violations", offset_of!(Ports, violations)),
            ("strata_ports.ranges", offset_of!(Ports, ranges)),
            ("strata_net_counters", size_of::<NetCounters>()),
            (
                "strata_net_counters.rx_bytes",
                offset_of!(NetCounters, rx_bytes),
            ),
            (
                "strata_net_counters.rx_packets",
                offset_of!(NetCounters, rx_packets),
            ),
            (
                "strata_net_counters.tx_bytes",
                offset_of!(NetCounters, tx_bytes),
            ),
            (
                "strata_net_counters.tx_packets",
                offset_of!(NetCounters, tx_packets),
            ),
        ];
        assert_eq!(
            rust,
            c::C_LAYOUT,
            "ebpf/src/layout.rs disagrees with bpf/strata.h"
        );
        assert_eq!(MAX_PORT_RANGES, c::C_MAX_PORT_RANGES);
        assert_eq!(MAX_CONTAINERS, c::C_MAX_CONTAINERS);
        assert_eq!(PORTS_ENFORCE, c::C_PORTS_ENFORCE);
    }

    #[test]
    fn counters_add_per_cpu_shares() {
        let a = NetCounters {
            rx_bytes: 1,
            rx_packets: 2,
            tx_bytes: 3,
            tx_packets: 4,
        };
        let b = NetCounters {
            rx_bytes: 10,
            rx_packets: 20,
            tx_bytes: 30,
            tx_packets: 40,
        };
        assert_eq!(
            a + b,
            NetCounters {
                rx_bytes: 11,
                rx_packets: 22,
                tx_bytes: 33,
                tx_packets: 44
            }
        );
    }
}
