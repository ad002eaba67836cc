//! The fuzz smoke run of the test suite, on stable Rust without libFuzzer: every target's body
//! over its checked-in corpus (`fuzz/corpus/<target>/`), its regressions
//! (`fuzz/regressions/<target>/`, the inputs the fuzzers once broke it with) and a fixed number
//! of deterministic mutations of them. `cargo xtask fuzz` runs the real cargo-fuzz targets.

#![allow(clippy::unwrap_used)] // reason: a failing unwrap is a failing test

use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use strata_fuzzing::{Target, TARGETS};

/// Mutations per target (the tar target unpacks each into a fresh directory: fewer).
const MUTATIONS: usize = 3000;
const TAR_MUTATIONS: usize = 500;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn inputs(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().is_file())
                .map(|e| (e.path(), std::fs::read(e.path()).unwrap()))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// xorshift64*: the same inputs on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: &[&[u8]] = &[
    b"\0",
    b"\xff\xff\xff\xff",
    b"\x7f\xff\xff\xff",
    b"-1",
    b"1e309",
    b"NaN",
    b"18446744073709551616",
    b"\"",
    b"{",
    b"[",
    b"]",
    b"}",
    b"null",
    b"..",
    b"/",
    b"\\",
    b":",
    b";",
    b"(",
    b")",
    b"[1-",
    b"\xc3",
    b"\n",
];

/// One mutation of `input`, or of a splice of it with `other`.
fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(8) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] = rng.next() as u8;
            }
            2 => {
                let end = (at + 1 + rng.below(16)).min(out.len());
                out.drain(at.min(end)..end);
            }
            3 => {
                let word = INTERESTING[rng.below(INTERESTING.len())];
                out.splice(at..at, word.iter().copied());
            }
            4 => out.truncate(at),
            5 if !other.is_empty() => {
                let from = rng.below(other.len());
                let len = rng.below(other.len() - from + 1);
                out.splice(at..at, other[from..from + len].iter().copied());
            }
            6 if !out.is_empty() => {
                // Repeat a slice: long lists, deep nesting.
                let from = rng.below(out.len());
                let len = 1 + rng.below((out.len() - from).min(32));
                let piece = out[from..from + len].to_vec();
                for _ in 0..rng.below(64) {
                    out.splice(at..at, piece.iter().copied());
                }
            }
            _ => {
                let i = rng.below(out.len() + 1);
                out.insert(i, rng.next() as u8);
            }
        }
    }
    out
}

/// Runs `target` on `input`, naming the input when it panics.
fn run(target: &Target, what: &str, input: &[u8]) {
    if catch_unwind(AssertUnwindSafe(|| (target.run)(input))).is_err() {
        let dir = std::env::temp_dir().join("strata-fuzz-smoke");
        let _ = std::fs::create_dir_all(&dir);
        let saved = dir.join(format!("{}-{what}", target.name));
        let _ = std::fs::write(&saved, input);
        panic!(
            "fuzz target {} failed on {what} (saved as {}; add it to fuzz/regressions/{}/ once fixed)",
            target.name,
            saved.display(),
            target.name
        );
    }
}

fn smoke(name: &str) {
    let target = TARGETS.iter().find(|t| t.name == name).unwrap();
    let corpus = inputs(&fuzz_dir().join("corpus").join(name));
    assert!(
        !corpus.is_empty(),
        "fuzz/corpus/{name}/ is empty: the smoke run would test nothing"
    );
    let regressions = inputs(&fuzz_dir().join("regressions").join(name));
    for (path, input) in corpus.iter().chain(&regressions) {
        let file = path.file_name().unwrap().to_string_lossy();
        run(target, &file, input);
    }
    let seeds: Vec<&[u8]> = corpus
        .iter()
        .chain(&regressions)
        .map(|(_, i)| i.as_slice())
        .collect();
    let mut rng = Rng(0x5eed_0000 ^ name.len() as u64 ^ (name.as_bytes()[0] as u64) << 32);
    let n = if name == "tar" {
        TAR_MUTATIONS
    } else {
        MUTATIONS
    };
    for i in 0..n {
        let input = if i % 10 == 9 {
            // Now and then, bytes from nowhere.
            (0..rng.below(64)).map(|_| rng.next() as u8).collect()
        } else {
            let a = seeds[rng.below(seeds.len())];
            let b = seeds[rng.below(seeds.len())];
            mutate(&mut rng, a, b)
        };
        run(target, &format!("mutation-{i}"), &input);
    }
    eprintln!(
        "fuzz target {name}: {} corpus inputs, {} regressions, {n} mutations",
        corpus.len(),
        regressions.len()
    );
}

#[test]
fn wire() {
    smoke("wire");
}

#[test]
fn v1_json() {
    smoke("v1_json");
}

#[test]
fn master_http() {
    smoke("master_http");
}

#[test]
fn executor_call() {
    smoke("executor_call");
}

#[test]
fn resources() {
    smoke("resources");
}

#[test]
fn recordio() {
    smoke("recordio");
}

#[test]
fn tar() {
    smoke("tar");
}

#[test]
fn image() {
    smoke("image");
}

#[test]
fn sandbox_path() {
    smoke("sandbox_path");
}

/// Every body has a test above, a cargo-fuzz target in `fuzz/fuzz_targets/` and a `[[bin]]` in
/// `fuzz/Cargo.toml`, and nothing there lacks a body.
#[test]
fn every_target_is_smoked_and_fuzzed() {
    let bodies: BTreeSet<&str> = TARGETS.iter().map(|t| t.name).collect();
    let files: BTreeSet<String> = std::fs::read_dir(fuzz_dir().join("fuzz_targets"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".rs"))
                .map(str::to_string)
        })
        .collect();
    assert_eq!(
        bodies,
        files.iter().map(String::as_str).collect::<BTreeSet<_>>()
    );
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    let this = std::fs::read_to_string(file!()).unwrap_or_else(|_| {
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smoke.rs"))
            .unwrap()
    });
    for name in bodies {
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "fuzz/Cargo.toml has no [[bin]] {name}"
        );
        assert!(
            this.contains(&format!("smoke(\"{name}\")")),
            "no smoke test runs {name}"
        );
    }
}

/// Writes `fuzz/corpus/wire/`: real Cap'n Proto messages, built from the v1 JSON seeds
/// (`fuzz/seeds.py` writes those), each framed as a connection reads it and as one bare
/// segment. `cargo test -p strata-fuzzing --test smoke -- --ignored write_wire_seeds`.
#[test]
#[ignore = "writes the checked-in corpus"]
fn write_wire_seeds() {
    use strata_schema::{v1, wire};
    let dir = fuzz_dir().join("corpus/wire");
    std::fs::create_dir_all(&dir).unwrap();
    let json = |name: &str| -> serde_json::Value {
        let bytes = std::fs::read(fuzz_dir().join("corpus/v1_json").join(name)).unwrap();
        serde_json::from_slice(&bytes[1..]).unwrap()
    };
    let mut seeds: Vec<(
        String,
        u8,
        capnp::message::Builder<capnp::message::HeapAllocator>,
    )> = Vec::new();
    let mut add = |name: &str, kind: u8, f: &dyn Fn(&mut capnp::message::Builder<_>)| {
        let mut m = capnp::message::Builder::new_default();
        f(&mut m);
        seeds.push((name.to_string(), kind, m));
    };
    use strata_schema::common_capnp as c;
    let task = v1::task_info_from_json(&json("seed-task"), "t").unwrap();
    let task2 = v1::task_info_from_json(&json("seed-task-executor"), "t").unwrap();
    let framework = v1::framework_info_from_json(&json("seed-framework"), "f").unwrap();
    let status = v1::task_status_from_json(&json("seed-status"), "s")
        .unwrap()
        .status;
    let executor = v1::executor_info_from_json(&json("seed-executor"), "e").unwrap();
    let (container, _) = v1::container_from_json(&json("seed-container"), "c").unwrap();
    let command = v1::command_from_json(&json("seed-command"), "c").unwrap();
    add("task", 0, &|m| {
        wire::set_task(m.init_root::<c::task_info::Builder>(), &task)
    });
    add("task-executor", 0, &|m| {
        wire::set_task(m.init_root::<c::task_info::Builder>(), &task2)
    });
    add("framework", 1, &|m| {
        wire::set_framework(m.init_root::<c::framework_info::Builder>(), &framework)
    });
    add("agent", 2, &|m| {
        let info = strata_schema::AgentInfo {
            id: Some(strata_schema::AgentId::new("a-S0").unwrap()),
            hostname: "node-1".into(),
            port: 5051,
            resources: task.resources.clone(),
            attributes: strata_schema::Attributes::parse("rack:r1;cores:8;range:[1-10];set:{a,b}")
                .unwrap(),
        };
        wire::set_agent(m.init_root::<c::agent_info::Builder>(), &info)
    });
    add("status", 3, &|m| {
        wire::set_status(m.init_root::<c::task_status::Builder>(), &status)
    });
    add("executor", 4, &|m| {
        wire::set_executor(m.init_root::<c::executor_info::Builder>(), &executor)
    });
    add("master", 5, &|m| {
        let info = strata_schema::MasterInfo {
            id: "m-1".into(),
            hostname: "master-1".into(),
            ip: "10.0.0.1".into(),
            port: 5050,
            version: "0.1.0".into(),
        };
        wire::set_master(m.init_root::<c::master_info::Builder>(), &info)
    });
    for i in 0..6 {
        let op = v1::operation_from_json(&json(&format!("seed-operation-{i}")), "o");
        if let Ok(op) = op {
            add(&format!("operation-{i}"), 6, &|m| {
                wire::set_operation(
                    m.init_root::<strata_schema::scheduler_capnp::operation::Builder>(),
                    &op,
                )
            });
        }
    }
    add("command", 7, &|m| {
        wire::set_command(m.init_root::<c::command_info::Builder>(), &command)
    });
    add("container", 8, &|m| {
        wire::set_container(m.init_root::<c::container_info::Builder>(), &container)
    });
    add("registration", 9, &|m| {
        use strata_schema::agent_capnp::running_task;
        let mut list = m
            .init_root::<capnp::any_pointer::Builder>()
            .initn_as::<capnp::struct_list::Builder<running_task::Owned>>(2);
        for (i, t) in [&task, &task2].into_iter().enumerate() {
            let mut r = list.reborrow().get(i as u32);
            r.set_framework_id("fw-1");
            wire::set_task(r.reborrow().init_task(), t);
            r.set_state(strata_schema::common_capnp::TaskState::Running);
            wire::set_framework(r.init_framework(), &framework);
        }
    });
    for (name, kind, message) in &seeds {
        let framed = capnp::serialize::write_message_to_words(message);
        let mut bytes = vec![*kind];
        bytes.extend_from_slice(&framed);
        std::fs::write(dir.join(format!("seed-{name}")), &bytes).unwrap();
        let segments = message.get_segments_for_output();
        if segments.len() == 1 {
            let mut bytes = vec![*kind];
            bytes.extend_from_slice(segments[0]);
            std::fs::write(dir.join(format!("seed-{name}-bare")), &bytes).unwrap();
        }
    }
}
