//! The allocator's cost per allocation cycle, in the shape of Mesos' `DeclineOffers` benchmark
//! (`HierarchicalAllocator_BENCHMARK_Test`): every framework declines every offer it gets with a
//! long refuse filter, so filters pile up cycle after cycle. Each figure is printed beside a
//! floor measured in the same run (cloning every agent's available resources once, which any
//! allocator that makes an offer per agent has to do) and Mesos' published figure.
//!
//! Times are wall-clock and, where Linux reports it (`/proc/thread-self/schedstat`), the CPU
//! time of the allocating thread: on a busy machine the wall-clock figure counts the time other
//! processes held the CPU.
//!
//! Run: `cargo bench -p strata-master --bench allocator` (or `cargo xtask bench allocator`).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};
use strata_master::allocator::{self, AgentView, FrameworkView, RefuseFilter, RoleConfig, View};
use strata_schema::{AgentId, FrameworkId, Resources};

/// Mesos 1.x, DeclineOffers, 10,000 agents and 1,000 frameworks: one allocation cycle.
const MESOS_REFERENCE: &str = "1.06 s";
const AGENT: &str = "cpus:24;mem:4096;disk:4096;ports:[31000-32000]";

fn main() -> anyhow::Result<()> {
    println!("allocator: one allocate() per cycle; every offer declined with a 1 h filter");
    println!("reference: Mesos DeclineOffers (10,000 agents, 1,000 frameworks): {MESOS_REFERENCE} per cycle");
    decline_offers("decline", 10_000, 1_000, BTreeMap::new(), 20)?;
    decline_offers("decline", 50_000, 6_000, BTreeMap::new(), 8)?;
    // 3,000 roles with quota: each guaranteed one agent's worth, limited to three.
    let mut roles = BTreeMap::new();
    for r in 0..3_000 {
        roles.insert(
            role(r),
            RoleConfig {
                weight: 1.0,
                guarantees: Resources::parse("cpus:24;mem:4096")?,
                limits: Resources::parse("cpus:72;mem:12288")?,
            },
        );
    }
    decline_offers("quota", 10_000, 3_000, roles, 10)?;
    Ok(())
}

fn role(i: usize) -> String {
    format!("role{i:05}")
}

fn decline_offers(
    name: &str,
    agents: usize,
    frameworks: usize,
    roles: BTreeMap<String, RoleConfig>,
    cycles: usize,
) -> anyhow::Result<()> {
    let resources = Resources::parse(AGENT)?;
    let agent_views: Vec<AgentView> = (0..agents)
        .map(|i| {
            Ok(AgentView {
                id: AgentId::new(format!("agent-{i:06}"))?,
                available: resources.clone(),
                total: resources.clone(),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let mut framework_views: Vec<FrameworkView> = (0..frameworks)
        .map(|i| {
            Ok(FrameworkView {
                id: FrameworkId::new(format!("framework-{i:05}"))?,
                roles: vec![role(i)],
                active: true,
                suppressed_roles: Vec::new(),
                allocated: BTreeMap::new(),
                filters: Default::default(),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let index: HashMap<FrameworkId, usize> = framework_views
        .iter()
        .enumerate()
        .map(|(i, f)| (f.id.clone(), i))
        .collect();
    let min = allocator::default_min_allocatable();
    let now = Instant::now();
    let mut times = Vec::with_capacity(cycles);
    let mut cpu_times = Vec::with_capacity(cycles);
    let mut offers = Vec::with_capacity(cycles);
    for _ in 0..cycles {
        let view = View {
            agents: &agent_views,
            frameworks: &framework_views,
            roles: &roles,
            min_allocatable: &min,
            now,
        };
        let cpu_start = thread_cpu();
        let start = Instant::now();
        let out = allocator::allocate(&view);
        times.push(start.elapsed());
        if let (Some(before), Some(after)) = (cpu_start, thread_cpu()) {
            cpu_times.push(after.saturating_sub(before));
        }
        offers.push(out.len());
        // Every framework declines: the resources go back to the agent (nothing to undo in
        // the view: `allocated` stays empty) and a filter holds them back for an hour.
        for alloc in out {
            if let Some(&f) = index.get(&alloc.framework) {
                std::sync::Arc::make_mut(&mut framework_views[f].filters).insert(
                    alloc.agent,
                    RefuseFilter {
                        resources: alloc.resources,
                        expires: now + Duration::from_secs(3600),
                    },
                );
            }
        }
    }
    let (floor, floor_cpu) = clone_floor(&agent_views);
    let filters: usize = framework_views.iter().map(|f| f.filters.len()).sum();
    let (p50, max) = p50_max(&times);
    println!(
        "{name}: {agents} agents, {frameworks} frameworks{}, {cycles} cycles: allocate p50 {} max {} \
         (first cycle {}, last {}); offers per cycle first {} last {}; filters at the end {} \
         ({:.1} per agent)",
        if roles.is_empty() { String::new() } else { format!(", {} roles with quota", roles.len()) },
        ms(p50),
        ms(max),
        ms(times[0]),
        ms(times[times.len() - 1]),
        offers[0],
        offers[offers.len() - 1],
        filters,
        filters as f64 / agents as f64,
    );
    println!(
        "{name}:   baseline: cloning every agent's available resources once: {} (p50 {:.1}x that); \
         Mesos reference {MESOS_REFERENCE}",
        ms(floor),
        p50.as_secs_f64() / floor.as_secs_f64(),
    );
    if cpu_times.len() == times.len() {
        let (cpu_p50, cpu_max) = p50_max(&cpu_times);
        println!(
            "{name}:   CPU time: allocate p50 {} max {}; baseline {} (p50 {:.1}x that)",
            ms(cpu_p50),
            ms(cpu_max),
            floor_cpu.map_or("n/a".to_string(), ms),
            floor_cpu.map_or(f64::NAN, |f| cpu_p50.as_secs_f64() / f.as_secs_f64()),
        );
    }
    Ok(())
}

fn p50_max(times: &[Duration]) -> (Duration, Duration) {
    let mut sorted = times.to_vec();
    sorted.sort();
    (sorted[sorted.len() / 2], sorted[sorted.len() - 1])
}

/// The CPU time this thread has run, from `/proc/thread-self/schedstat` (Linux).
fn thread_cpu() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

/// The median of five loops that clone each agent's available resources: wall-clock, and CPU
/// time where known.
fn clone_floor(agents: &[AgentView]) -> (Duration, Option<Duration>) {
    let mut times = Vec::new();
    let mut cpu_times = Vec::new();
    for _ in 0..5 {
        let cpu_start = thread_cpu();
        let start = Instant::now();
        let clones: Vec<Resources> = agents.iter().map(|a| a.available.clone()).collect();
        times.push(start.elapsed());
        if let (Some(before), Some(after)) = (cpu_start, thread_cpu()) {
            cpu_times.push(after.saturating_sub(before));
        }
        std::hint::black_box(clones);
    }
    let cpu = (cpu_times.len() == times.len()).then(|| p50_max(&cpu_times).0);
    (p50_max(&times).0, cpu)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}
