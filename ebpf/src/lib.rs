//! BPF programs of the Strata agent and their aya loader. Empty until the eBPF issue: the
//! `network/ports` and `network/accounting` isolators are not available yet, and selecting them
//! fails agent start-up.
