//! `cargo xtask fuzz`: the real cargo-fuzz targets (`fuzz/`, libFuzzer), each for a bounded
//! time (`--time`) or number of runs (`--runs`), over its corpus (`fuzz/corpus/<target>`) and
//! regressions (`fuzz/regressions/<target>`). The test suite's smoke run
//! (`fuzzing/tests/smoke.rs`) runs the same bodies without libFuzzer on stable Rust; this needs
//! cargo-fuzz and, unless `--stable`, a nightly toolchain. Each target ends passed, FAILED or
//! skipped (by name, with why); a skipped target is never a pass: the task fails unless every
//! target passed.

use crate::cmd::Cmd;
use anyhow::bail;
use std::path::Path;

pub struct Options {
    /// Seconds per target (`-max_total_time`); `None` with `runs`.
    pub time: Option<u64>,
    /// Inputs per target (`-runs`), when no time is given.
    pub runs: u64,
    /// Only these targets (all when empty).
    pub targets: Vec<String>,
    /// Build with the stable toolchain and no sanitizer (`-s none`) instead of nightly and ASan.
    pub stable: bool,
}

/// The targets: `fuzz/fuzz_targets/*.rs`, sorted.
pub fn targets(fuzz: &Path) -> anyhow::Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(fuzz.join("fuzz_targets"))?
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".rs"))
                .map(str::to_string)
        })
        .collect();
    names.sort();
    Ok(names)
}

/// libFuzzer's arguments after `--`.
fn libfuzzer_args(options: &Options, fuzz: &Path, target: &str) -> Vec<String> {
    let mut args = vec![
        match options.time {
            Some(secs) => format!("-max_total_time={secs}"),
            None => format!("-runs={}", options.runs),
        },
        // Each input's own time and memory: a hang or a blow-up is a finding too.
        "-timeout=20".to_string(),
        "-rss_limit_mb=4096".to_string(),
        "-max_len=65536".to_string(),
    ];
    let regressions = fuzz.join("regressions").join(target);
    if regressions.is_dir() {
        // libFuzzer adds what it finds to the first corpus directory it is given: the corpus
        // (cargo-fuzz names it again after these), never the checked-in regressions.
        args.push(fuzz.join("corpus").join(target).display().to_string());
        args.push(regressions.display().to_string());
    }
    args
}

pub fn run(options: &Options) -> anyhow::Result<()> {
    let root = crate::workspace_root();
    let fuzz = root.join("fuzz");
    let all = targets(&fuzz)?;
    let chosen: Vec<String> = if options.targets.is_empty() {
        all.clone()
    } else {
        for t in &options.targets {
            if !all.contains(t) {
                bail!("no fuzz target {t:?} (there are: {})", all.join(", "));
            }
        }
        options.targets.clone()
    };
    let toolchain: &[&str] = if options.stable { &[] } else { &["+nightly"] };
    let sanitizer: &[&str] = if options.stable { &["-s", "none"] } else { &[] };
    let mut results: Vec<(String, &str, String)> = Vec::new();
    let missing = match Cmd::new("cargo", &[toolchain, &["fuzz", "--version"]].concat()).capture() {
        Ok((true, _)) => None,
        _ => Some(format!(
            "`cargo {}fuzz` is not available (cargo install cargo-fuzz{})",
            if options.stable { "" } else { "+nightly " },
            if options.stable {
                ""
            } else {
                "; rustup toolchain install nightly"
            }
        )),
    };
    let built = match &missing {
        Some(why) => Err(why.clone()),
        None => Cmd::new(
            "cargo",
            &[toolchain, &["fuzz", "build", "--fuzz-dir"]].concat(),
        )
        .args([fuzz.display().to_string()])
        .args(sanitizer.iter().copied())
        .run()
        .map_err(|e| format!("the build failed: {e:#}")),
    };
    for target in &chosen {
        if let Err(why) = &built {
            results.push((target.clone(), "skipped", why.clone()));
            continue;
        }
        let cmd = Cmd::new(
            "cargo",
            &[toolchain, &["fuzz", "run", "--fuzz-dir"]].concat(),
        )
        .args([fuzz.display().to_string()])
        .args(sanitizer.iter().copied())
        .args([target.clone(), "--".to_string()])
        .args(libfuzzer_args(options, &fuzz, target));
        match cmd.run() {
            Ok(()) => results.push((target.clone(), "passed", String::new())),
            Err(err) => results.push((
                target.clone(),
                "FAILED",
                format!("{err:#}; the input is under fuzz/artifacts/{target}/"),
            )),
        }
    }
    println!("\nxtask fuzz summary:");
    for (target, word, why) in &results {
        println!("  {word:<8} {target} {why}");
    }
    let bad = results.iter().filter(|(_, w, _)| *w != "passed").count();
    if bad > 0 {
        bail!(
            "{bad} of {} fuzz targets did not pass (a skipped target is not a pass)",
            results.len()
        );
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_target_is_found() {
        let fuzz = crate::workspace_root().join("fuzz");
        let names = targets(&fuzz).unwrap();
        assert!(names.contains(&"wire".to_string()), "{names:?}");
        assert!(names.len() >= 9, "{names:?}");
        let args = libfuzzer_args(
            &Options {
                time: None,
                runs: 1000,
                targets: vec![],
                stable: false,
            },
            &fuzz,
            "wire",
        );
        assert_eq!(args[0], "-runs=1000");
        // What libFuzzer finds goes to the first directory: the corpus, not the regressions.
        let dirs: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
        assert!(dirs[0].ends_with("fuzz/corpus/wire"), "{args:?}");
        assert!(dirs[1].ends_with("fuzz/regressions/wire"), "{args:?}");
    }
}
