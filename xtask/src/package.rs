//! `cargo xtask package`: the .deb and .rpm packages of the master, the agent and the CLI, built
//! from the `dist` profile by cargo-deb and cargo-generate-rpm (installed from crates.io with
//! `cargo install --locked` when missing) into `target/packages/`. What goes into each package
//! is the `[package.metadata.deb]` and `[package.metadata.generate-rpm]` of master/, agent/ and
//! cli/Cargo.toml; the files they name (systemd units, default configs, maintainer scripts) are
//! in packaging/ (its README says why the packages are split so).

use crate::cmd::Cmd;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The packages, each named after the crate whose metadata describes it.
pub const PACKAGES: [&str; 3] = ["strata-master", "strata-agent", "strata-cli"];

/// The crates' directories (cargo-generate-rpm's `-p` takes a directory).
const CRATE_DIRS: [&str; 3] = ["master", "agent", "cli"];

/// The binaries they ship.
const BINARIES: [&str; 3] = ["strata-master", "strata-agent", "strata"];

/// The Cargo profile of the packaged binaries (release without debug info; root Cargo.toml).
pub const PROFILE: &str = "dist";

/// The packaging tools, at the versions installed when they are missing.
const TOOLS: [Tool; 2] = [
    Tool {
        subcommand: "deb",
        krate: "cargo-deb",
        version: "3.8.0",
    },
    Tool {
        subcommand: "generate-rpm",
        krate: "cargo-generate-rpm",
        version: "0.21.1",
    },
];

struct Tool {
    /// `cargo <subcommand>`.
    subcommand: &'static str,
    krate: &'static str,
    version: &'static str,
}

#[derive(Debug, Clone)]
pub struct Options {
    /// Where the packages go (created; earlier Strata packages there are removed).
    pub out_dir: PathBuf,
    /// The package revision: the .deb's Debian revision (`0.1.0-<revision>`) and the .rpm's
    /// Release (`0.1.0-<revision>`). Both default to 1.
    pub revision: Option<String>,
}

impl Options {
    pub fn new(root: &Path) -> Self {
        Self {
            out_dir: root.join("target").join("packages"),
            revision: None,
        }
    }
}

/// What `build` produced, in the order of [`PACKAGES`].
#[derive(Debug, Clone)]
pub struct Built {
    pub debs: Vec<PathBuf>,
    pub rpms: Vec<PathBuf>,
}

pub fn run(opts: &Options) -> Result<()> {
    let started = Instant::now();
    let built = build(opts, true)?;
    println!("==> packages in {}", opts.out_dir.display());
    for path in built.debs.iter().chain(&built.rpms) {
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        println!("{} ({:.1} MiB)", path.display(), size as f64 / 1048576.0);
    }
    println!(
        "package: {} packages in {:.1} s",
        built.debs.len() + built.rpms.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Builds the binaries (when `compile`; otherwise they must exist) and every package.
pub fn build(opts: &Options, compile: bool) -> Result<Built> {
    for tool in &TOOLS {
        ensure_tool(tool)?;
    }
    if compile {
        // One build per package, as `cargo deb -p` would run it: Cargo unifies features across
        // the packages of one build, and a feature the agent needs of a shared dependency must
        // not change the CLI's binary.
        println!("==> binaries (profile {PROFILE})");
        for (package, bin) in PACKAGES.into_iter().zip(BINARIES) {
            Cmd::cargo(&["build", "--profile", PROFILE, "-p", package, "--bin", bin]).run()?;
        }
    }
    let bin_dir = crate::up::target_dir()?.join(PROFILE);
    for bin in BINARIES {
        if !bin_dir.join(bin).is_file() {
            bail!(
                "{} is missing: build it with `cargo build --profile {PROFILE} --bin {bin}`",
                bin_dir.join(bin).display()
            );
        }
    }

    let out = &opts.out_dir;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    remove_old_packages(out)?;
    let out_arg = format!("{}/", out.display());
    let mut built = Built {
        debs: Vec::new(),
        rpms: Vec::new(),
    };
    for (package, crate_dir) in PACKAGES.into_iter().zip(CRATE_DIRS) {
        println!("==> {package}");
        let mut deb = Cmd::cargo(&[
            "deb",
            "-p",
            package,
            "--no-build",
            "--profile",
            PROFILE,
            "--output",
            &out_arg,
        ]);
        if let Some(revision) = &opts.revision {
            deb = deb.args(["--deb-revision", revision.as_str()]);
        }
        deb.run()?;
        built.debs.push(find_package(out, package, "deb")?);

        let mut rpm = Cmd::cargo(&[
            "generate-rpm",
            "-p",
            crate_dir,
            "--profile",
            PROFILE,
            "--output",
            &out_arg,
        ]);
        if let Some(revision) = &opts.revision {
            rpm = rpm.args(["--set-metadata", &format!("release = {revision:?}")]);
        }
        rpm.run()?;
        built.rpms.push(find_package(out, package, "rpm")?);
    }
    Ok(built)
}

/// Installs a packaging tool from crates.io unless `cargo <subcommand>` already works.
fn ensure_tool(tool: &Tool) -> Result<()> {
    let (present, version) = Cmd::cargo(&[tool.subcommand, "--version"]).capture()?;
    if present {
        println!("{} found: {}", tool.krate, version.trim());
        return Ok(());
    }
    println!(
        "==> installing {} {} from crates.io",
        tool.krate, tool.version
    );
    Cmd::cargo(&["install", "--locked", tool.krate, "--version", tool.version])
        .run()
        .with_context(|| format!("cannot install {}", tool.krate))
}

/// Removes the Strata packages an earlier build left in `out` (other files stay).
fn remove_old_packages(out: &Path) -> Result<()> {
    for entry in std::fs::read_dir(out).with_context(|| format!("cannot list {}", out.display()))? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if package_of(name).is_some() {
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove {}", path.display()))?;
        }
    }
    Ok(())
}

/// The package a file in `out` holds: `strata-agent_0.1.0-1_amd64.deb` → `(strata-agent, deb)`,
/// `strata-agent-0.1.0-1.x86_64.rpm` → `(strata-agent, rpm)`.
fn package_of(file_name: &str) -> Option<(&'static str, &'static str)> {
    PACKAGES.into_iter().find_map(|package| {
        let rest = file_name.strip_prefix(package)?;
        if rest.ends_with(".deb") && rest.starts_with('_') {
            return Some((package, "deb"));
        }
        // `strata-agent-0…` is the agent's; a digit must follow, or `strata-a…` would match
        // another package's prefix.
        let version = rest.strip_prefix('-')?;
        (rest.ends_with(".rpm") && version.starts_with(|c: char| c.is_ascii_digit()))
            .then_some((package, "rpm"))
    })
}

fn find_package(out: &Path, package: &str, kind: &str) -> Result<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(out)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(package_of)
                .is_some_and(|(name, k)| name == package && k == kind)
        })
        .collect();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => bail!(
            "no {kind} of {package} in {} after the build",
            out.display()
        ),
        _ => bail!(
            "several {kind}s of {package} in {}: {found:?}",
            out.display()
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn package_files_are_told_apart() {
        assert_eq!(
            package_of("strata-agent_0.1.0-1_amd64.deb"),
            Some(("strata-agent", "deb"))
        );
        assert_eq!(
            package_of("strata-master-0.1.0-2.x86_64.rpm"),
            Some(("strata-master", "rpm"))
        );
        assert_eq!(
            package_of("strata-cli_0.1.0-1_amd64.deb"),
            Some(("strata-cli", "deb"))
        );
        assert_eq!(package_of("strata-agent-dbgsym_0.1.0_amd64.deb"), None);
        assert_eq!(package_of("strata-agent.service"), None);
        assert_eq!(package_of("README"), None);
    }
}
