//! The bodies of Strata's fuzz targets: one function per family of parsers that read what the
//! network sends (Cap'n Proto messages, Mesos v1 JSON, the HTTP APIs' bodies, `--resources` and
//! `--attributes` text, RecordIO, image layers and manifests, sandbox paths). Each takes the
//! fuzzer's bytes, feeds them to the parser, and checks what holds whatever the input: no panic,
//! and what a parser accepts it accepts again after writing it back out (round trips). A body
//! panics only when such an invariant breaks.
//!
//! `fuzz/fuzz_targets/<name>.rs` (cargo-fuzz, libFuzzer, nightly) calls these; the smoke test
//! (`tests/smoke.rs`) runs each over `fuzz/corpus/<name>/`, `fuzz/regressions/<name>/` and a
//! fixed number of deterministic mutations of them, on stable Rust. The first byte of an input
//! often picks which parser of the family reads the rest.

use capnp::message::{Reader, ReaderSegments};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use strata_schema::{v1, wire};

/// A fuzz target: its name (the file under `fuzz/fuzz_targets/` and the corpus directory) and
/// its body.
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
}

/// Every target, in the order the smoke test runs them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "wire",
        run: wire,
    },
    Target {
        name: "v1_json",
        run: v1_json,
    },
    Target {
        name: "master_http",
        run: master_http,
    },
    Target {
        name: "executor_call",
        run: executor_call,
    },
    Target {
        name: "resources",
        run: resources,
    },
    Target {
        name: "recordio",
        run: recordio,
    },
    Target {
        name: "tar",
        run: tar,
    },
    Target {
        name: "image",
        run: image,
    },
    Target {
        name: "sandbox_path",
        run: sandbox_path,
    },
];

/// Two values are the same when they print the same (`NaN` included).
fn same<T: std::fmt::Debug>(a: &T, b: &T, what: &str) {
    let (a, b) = (format!("{a:?}"), format!("{b:?}"));
    assert!(a == b, "{what} changed in a round trip:\n{a}\n{b}");
}

/// Decodes a Cap'n Proto struct as `$read` does; what it accepts must be written by `$write`
/// and read back the same.
macro_rules! round_trip {
    ($message:expr, $owned:ty, $read:path, $write:path, $what:literal) => {{
        if let Ok(root) = $message.get_root::<<$owned as capnp::traits::Owned>::Reader<'_>>() {
            if let Ok(value) = $read(root) {
                let mut out = capnp::message::Builder::new_default();
                $write(
                    out.init_root::<<$owned as capnp::traits::Owned>::Builder<'_>>(),
                    &value,
                );
                let root = out
                    .get_root_as_reader::<<$owned as capnp::traits::Owned>::Reader<'_>>()
                    .expect("a message just built is readable");
                match $read(root) {
                    Ok(again) => same(&value, &again, $what),
                    Err(err) => panic!("{} accepted, written, then refused: {err}", $what),
                }
            }
        }
    }};
}

fn decode<S: ReaderSegments>(kind: u8, message: &Reader<S>) {
    use strata_schema::agent_capnp::running_task;
    use strata_schema::common_capnp as c;
    match kind % 11 {
        0 => round_trip!(
            message,
            c::task_info::Owned,
            wire::task,
            wire::set_task,
            "TaskInfo"
        ),
        1 => round_trip!(
            message,
            c::framework_info::Owned,
            wire::framework,
            wire::set_framework,
            "FrameworkInfo"
        ),
        2 => round_trip!(
            message,
            c::agent_info::Owned,
            wire::agent,
            wire::set_agent,
            "AgentInfo"
        ),
        3 => round_trip!(
            message,
            c::task_status::Owned,
            wire::status,
            wire::set_status,
            "TaskStatus"
        ),
        4 => round_trip!(
            message,
            c::executor_info::Owned,
            wire::executor,
            wire::set_executor,
            "ExecutorInfo"
        ),
        5 => round_trip!(
            message,
            c::master_info::Owned,
            wire::master,
            wire::set_master,
            "MasterInfo"
        ),
        6 => round_trip!(
            message,
            strata_schema::scheduler_capnp::operation::Owned,
            wire::operation,
            wire::set_operation,
            "Operation"
        ),
        7 => round_trip!(
            message,
            c::command_info::Owned,
            wire::command,
            wire::set_command,
            "CommandInfo"
        ),
        8 => round_trip!(
            message,
            c::container_info::Owned,
            wire::container,
            wire::set_container,
            "ContainerInfo"
        ),
        9 => {
            // An agent's registration: its running tasks, as the master reads them
            // (`master/src/rpc.rs`): the first invalid one refuses the registration. (Going on
            // past errors, a short message of zero-sized elements made this decode millions of
            // default tasks: fuzz/regressions/wire/timeout-amplified-roles.)
            type List = capnp::struct_list::Owned<running_task::Owned>;
            if let Ok(list) = message.get_root::<<List as capnp::traits::Owned>::Reader<'_>>() {
                let _ = wire::check_len(list.len(), "running tasks").and_then(|()| {
                    list.iter()
                        .try_for_each(|r| -> Result<(), wire::WireError> {
                            wire::framework_id(r.get_framework_id())?;
                            wire::framework(r.get_framework()?)?;
                            wire::task(r.get_task()?)?;
                            wire::task_state(r.get_state())?;
                            Ok(())
                        })
                });
            }
        }
        _ => {
            // Resources and attributes as lists of their own.
            if let Ok(root) = message.get_root::<c::agent_info::Reader<'_>>() {
                let _ = wire::resources(root.get_resources());
                let _ = wire::attributes(root.get_attributes());
            }
        }
    }
}

/// Cap'n Proto messages (`schema/src/wire.rs`): the first byte picks the struct, the rest is a
/// frame as an RPC connection reads it (segment table first) and, again, one bare segment.
pub fn wire(data: &[u8]) {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let options = wire::rpc_reader_options();
    if let Ok(message) = capnp::serialize::read_message_from_flat_slice(&mut &rest[..], options) {
        decode(kind, &message);
    }
    let mut words = capnp::Word::allocate_zeroed_vec(rest.len().div_ceil(8));
    capnp::Word::words_to_bytes_mut(&mut words)[..rest.len()].copy_from_slice(rest);
    let bytes = capnp::Word::words_to_bytes(&words);
    let segments: [&[u8]; 1] = [bytes];
    let message = Reader::new(capnp::message::SegmentArray::new(&segments), options);
    decode(kind, &message);
}

/// Mesos v1 JSON (`schema/src/v1.rs`): the first byte picks the message, the rest is its JSON.
/// What is accepted is written back with the `_to_json` twin, which must read back and write
/// the same JSON again.
pub fn v1_json(data: &[u8]) {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let Ok(v) = serde_json::from_slice::<Value>(rest) else {
        return;
    };
    macro_rules! twice {
        ($parsed:expr, $write:expr, $read:expr, $what:literal) => {
            if let Ok(value) = $parsed {
                // Writing normalizes (default roles, capabilities Strata always has): what is
                // written must read back and write the same again.
                let written = $write(&value);
                match $read(&written) {
                    Ok(again) => {
                        let rewritten = $write(&again);
                        assert!(
                            rewritten == written,
                            "{} changed in a round trip:\n{written}\n{rewritten}",
                            $what
                        );
                    }
                    Err(err) => panic!(
                        "{} accepted, written as {written}, then refused: {err}",
                        $what
                    ),
                }
            }
        };
    }
    match kind % 7 {
        0 => twice!(
            v1::framework_info_from_json(&v, "f"),
            v1::framework_info_to_json,
            |w| v1::framework_info_from_json(w, "f"),
            "FrameworkInfo"
        ),
        1 => twice!(
            v1::task_info_from_json(&v, "t"),
            v1::task_info_to_json,
            |w| v1::task_info_from_json(w, "t"),
            "TaskInfo"
        ),
        2 => twice!(
            v1::executor_info_from_json(&v, "e"),
            |e| v1::executor_info_to_json(e, None),
            |w| v1::executor_info_from_json(w, "e"),
            "ExecutorInfo"
        ),
        3 => twice!(
            v1::task_status_from_json(&v, "s"),
            v1::task_status_to_json,
            |w| v1::task_status_from_json(w, "s"),
            "TaskStatus"
        ),
        4 => {
            let _ = v1::operation_from_json(&v, "o");
        }
        5 => twice!(
            v1::command_from_json(&v, "c"),
            v1::command_to_json,
            |w| v1::command_from_json(w, "c"),
            "CommandInfo"
        ),
        _ => twice!(
            v1::container_from_json(&v, "c"),
            |(c, h): &(strata_schema::ContainerInfo, Option<String>)| v1::container_to_json(
                c,
                h.as_deref()
            ),
            |w| v1::container_from_json(w, "c"),
            "ContainerInfo"
        ),
    }
}

/// The master's HTTP API bodies: the v1 scheduler API, the v1 operator API and the v0
/// operator endpoints (`strata_master::http::fuzzing`). The first byte picks which.
pub fn master_http(data: &[u8]) {
    use strata_master::http::fuzzing;
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    match kind % 3 {
        0 => {
            let _ = fuzzing::scheduler_call(rest);
        }
        1 => {
            let _ = fuzzing::operator_call(&String::from_utf8_lossy(rest));
        }
        _ => {
            let Some((&endpoint, body)) = rest.split_first() else {
                return;
            };
            let _ = fuzzing::operator_body(endpoint, &String::from_utf8_lossy(body));
        }
    }
}

/// The agent's executor API body (`strata_agent::executor::parse_call`).
pub fn executor_call(data: &[u8]) {
    let _ = strata_agent::executor::parse_call(data);
}

/// `--resources` and `--attributes` text, Mesos' `Resource` JSON, roles and durations. The first
/// byte picks which; what parses is written back and must parse the same.
pub fn resources(data: &[u8]) {
    use strata_schema::{Attributes, Resources};
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match kind % 4 {
        0 => {
            if let Ok(r) = Resources::parse(&text) {
                let written = r.to_string();
                match Resources::parse(&written) {
                    Ok(again) => same(&r, &again, "Resources"),
                    Err(err) => {
                        panic!("resources {text:?} written as {written:?}, then refused: {err}")
                    }
                }
            }
        }
        1 => {
            if let Ok(a) = Attributes::parse(&text) {
                let written = a.to_string();
                match Attributes::parse(&written) {
                    Ok(again) => same(&a, &again, "Attributes"),
                    Err(err) => {
                        panic!("attributes {text:?} written as {written:?}, then refused: {err}")
                    }
                }
            }
        }
        2 => {
            let Ok(v) = serde_json::from_slice::<Value>(rest) else {
                return;
            };
            if let Ok(r) = Resources::from_mesos_json(&v) {
                let written = r.to_mesos_json();
                match Resources::from_mesos_json(&written) {
                    Ok(again) => same(&r, &again, "Resources (JSON)"),
                    Err(err) => panic!("resources {v} written as {written}, then refused: {err}"),
                }
            }
        }
        _ => {
            let _ = strata_schema::validate_role(&text);
            let _ = strata_schema::parse_duration(&text);
        }
    }
}

/// RecordIO (`schema::v1::{record, split_record}`): a stream is split record by record, each
/// taking at least its length line; a JSON value written as a record splits back to its text.
pub fn recordio(data: &[u8]) {
    let mut rest = data;
    while let Ok(Some((record, taken))) = v1::split_record(rest) {
        assert!(
            taken > record.len() && taken <= rest.len(),
            "a record took {taken} bytes"
        );
        rest = &rest[taken..];
    }
    if let Ok(v) = serde_json::from_slice::<Value>(data) {
        let written = v1::record(&v);
        let (record, taken) = v1::split_record(&written)
            .expect("a written record is well-formed")
            .expect("a written record is whole");
        assert_eq!(taken, written.len());
        assert_eq!(record, v.to_string().as_bytes());
    }
}

/// Image layers (`strata_images::unpack`): unpacked into an empty directory next to another
/// one, which must stay empty, with nothing else appearing beside them.
pub fn tar(data: &[u8]) {
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let (dest, beside) = (dir.path().join("dest"), dir.path().join("beside"));
    if std::fs::create_dir(&dest).is_err() || std::fs::create_dir(&beside).is_err() {
        return;
    }
    let _ = strata_images::unpack::unpack(data, &dest, None);
    let names = |p: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(p)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    };
    assert!(
        names(&beside).is_empty(),
        "a layer wrote beside its directory: {:?}",
        names(&beside)
    );
    let mut top = names(dir.path());
    top.sort();
    assert_eq!(
        top,
        vec![beside, dest],
        "a layer wrote next to its directory"
    );
}

/// Image manifests, indexes and configs, references and digests (`strata_images`), as a
/// registry or a user sends them. The first byte picks which.
pub fn image(data: &[u8]) {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    match kind % 4 {
        0 => {
            let _ = strata_images::manifest::Manifest::parse(rest, "manifest");
        }
        1 => {
            let _ = strata_images::ImageConfig::parse(rest);
        }
        2 => {
            let _ = strata_images::Source::parse(&String::from_utf8_lossy(rest));
        }
        _ => {
            let _ = strata_images::Digest::parse(&String::from_utf8_lossy(rest));
        }
    }
}

/// A sandbox tree the path checks are tried against: `root/fw/run/stdout`, a link inside
/// (`root/in -> fw`), links out (`root/out -> ..`, `root/abs -> /`), and `secret` beside the
/// root.
fn sandboxes() -> &'static Option<(tempfile::TempDir, PathBuf)> {
    static TREE: OnceLock<Option<(tempfile::TempDir, PathBuf)>> = OnceLock::new();
    TREE.get_or_init(|| {
        let dir = tempfile::tempdir().ok()?;
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("fw/run")).ok()?;
        std::fs::write(root.join("fw/run/stdout"), "out").ok()?;
        std::fs::write(dir.path().join("secret"), "secret").ok()?;
        std::os::unix::fs::symlink("fw", root.join("in")).ok()?;
        std::os::unix::fs::symlink("..", root.join("out")).ok()?;
        std::os::unix::fs::symlink("/", root.join("abs")).ok()?;
        let root = std::fs::canonicalize(root).ok()?;
        Some((dir, root))
    })
}

/// The agent's sandbox path checks (`/files/*`, READ_FILE): whatever the path, what is allowed
/// lies under the root, and `confine` allows files only. A first byte of 0 makes the path
/// relative to the root (`<root>/<rest>`); otherwise it is taken as sent.
pub fn sandbox_path(data: &[u8]) {
    use strata_agent::http::fuzzing::{confine, confine_any};
    let Some((root_dir, root)) = sandboxes().as_ref().map(|(d, r)| (d.path(), r)) else {
        return;
    };
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let rest = String::from_utf8_lossy(rest);
    let path = if kind == 0 {
        format!("{}/{rest}", root.display())
    } else {
        rest.into_owned()
    };
    if let Ok(p) = confine_any(root, &path) {
        assert!(
            p.starts_with(root),
            "{path:?} was allowed as {}",
            p.display()
        );
        assert!(!p.starts_with(root_dir.join("secret")));
    }
    if let Ok(p) = confine(root, &path) {
        assert!(
            p.starts_with(root) && p.is_file(),
            "{path:?} was allowed as {}",
            p.display()
        );
    }
}
