//! The Rust framework SDK of Strata: a scheduler driver speaking the native Cap'n Proto scheduler
//! API to the master ([`scheduler`]), and small typed helpers for the master's and agents' HTTP
//! endpoints ([`http`]), over TLS once [`tls::use_tls`] is called. Used by the `strata` CLI, the tests and the benchmarks.

pub mod http;
pub mod scheduler;
pub mod tls;

pub use scheduler::{ClientError, Event, InverseOffer, Offer, Operation, SchedulerDriver};
