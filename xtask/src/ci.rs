//! `cargo xtask ci`: the project's test command (what `.ci/run` executes). Installs the system
//! packages the tests need, then runs fmt, clippy, the build, every test, the VM test bed
//! (`cargo xtask vm-test`) and the package test (`cargo xtask package-test`), and reports which
//! steps passed. A failed step does not stop the later ones; a failed package install does,
//! since nothing builds without it.

use crate::apt::{self, CI_PACKAGES};
use crate::cmd::Cmd;
use anyhow::bail;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Passed,
    Failed,
    Skipped,
}

pub fn run() -> anyhow::Result<()> {
    crate::require_root(
        "cargo xtask ci",
        "it installs packages, and the end-to-end tests start agents that create cgroups and \
         namespaces",
    )?;
    let packages = format!("system packages ({})", CI_PACKAGES.join(" "));
    let steps = [
        Cmd::cargo(&["fmt", "--all", "--", "--check"]),
        Cmd::cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
        Cmd::cargo(&["build", "--workspace", "--bins"]),
        Cmd::cargo(&["test", "--workspace", "--no-fail-fast"]),
        // Kernel enforcement, in a VM (it reuses the debug binaries built above).
        Cmd::cargo(&["xtask", "vm-test"]),
        // The .deb and .rpm packages, inspected, and the .debs installed, run, upgraded and
        // removed in a Debian guest booted with systemd.
        Cmd::cargo(&["xtask", "package-test"]),
    ];

    let mut results: Vec<(String, Outcome)> = Vec::new();
    println!("==> {packages}");
    let packages_ok = match apt::install_missing(CI_PACKAGES, true) {
        Ok(installed) if installed.is_empty() => {
            println!("all installed: {}", CI_PACKAGES.join(" "));
            true
        }
        Ok(installed) => {
            println!("installed: {}", installed.join(" "));
            true
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            false
        }
    };
    results.push((
        packages,
        if packages_ok {
            Outcome::Passed
        } else {
            Outcome::Failed
        },
    ));

    for step in &steps {
        if !packages_ok {
            results.push((step.display(), Outcome::Skipped));
            continue;
        }
        println!("\n==> {}", step.display());
        let outcome = match step.run() {
            Ok(()) => Outcome::Passed,
            Err(err) => {
                eprintln!("error: {err:#}");
                Outcome::Failed
            }
        };
        results.push((step.display(), outcome));
    }

    print!("\n{}", summary(&results));
    let failed = results
        .iter()
        .filter(|(_, o)| *o != Outcome::Passed)
        .count();
    if failed > 0 {
        bail!("{failed} of {} CI steps did not pass", results.len());
    }
    Ok(())
}

fn summary(results: &[(String, Outcome)]) -> String {
    let mut text = String::from("xtask ci summary:\n");
    for (name, outcome) in results {
        let word = match outcome {
            Outcome::Passed => "passed",
            Outcome::Failed => "FAILED",
            Outcome::Skipped => "skipped",
        };
        text.push_str(&format!("  {word:<8} {name}\n"));
    }
    text
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn summary_lists_every_step() {
        let results = [
            ("cargo fmt --all -- --check".to_string(), Outcome::Passed),
            ("cargo test --workspace".to_string(), Outcome::Failed),
            ("x".to_string(), Outcome::Skipped),
        ];
        assert_eq!(
            summary(&results),
            "xtask ci summary:\n  passed   cargo fmt --all -- --check\n  \
             FAILED   cargo test --workspace\n  skipped  x\n"
        );
    }
}
