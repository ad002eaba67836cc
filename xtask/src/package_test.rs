//! `cargo xtask package-test`: the packages tested the way an operator uses them. Builds the
//! .deb and .rpm packages (`cargo xtask package`) and a second set one revision up, inspects them
//! (`dpkg-deb -c`/`-I`, `rpm -qpl`/`-qpi`/`--scripts`/`-qpR`: files, conffiles, dependencies,
//! maintainer scripts), then installs the .debs into a fresh Debian root booted with systemd as
//! init in the VM test bed's QEMU and kernel (`xtask/src/vm.rs`). There `GUEST_SCRIPT` drives
//! apt and systemctl through install, start, a task, an agent restart, an upgrade, remove and
//! purge, and reports each step on the second serial port as the VM test bed's scenarios do.
//!
//! ```text
//! cargo xtask package (target/packages) + revision 2 (target/package-test/upgrade)
//!   ─▶ dpkg-deb / rpm checks ─▶ debootstrap bookworm minbase + systemd ─▶ root.img (cached)
//!   ─▶ initramfs: busybox, virtio/ext4 modules, the .debs, the guest script
//!   ─▶ qemu (root.img as a snapshot: the cached image is never written)
//!   ─▶ /init mounts the root, copies the payload in, switch_root to systemd
//!   ─▶ strata-package-test.service runs the steps ─▶ ttyS1 ─▶ "package-test: N passed, M failed"
//! ```
//!
//! Everything lands in `target/package-test/`: `root.img` and `root.stamp` (the Debian root,
//! rebuilt when the recipe changes), `upgrade/` (the second revision), `initramfs/`,
//! `console.log` (kernel, systemd, the guest script's commands and output), `results.log`.

use crate::apt::{self, CI_PACKAGES};
use crate::cmd::Cmd;
use crate::package::{self, Built};
use crate::vm::{self, Accel};
use anyhow::{anyhow, bail, Context, Result};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What this test needs from Debian besides the VM test bed's packages.
pub const PACKAGE_TEST_PACKAGES: &[&str] = &["debootstrap", "rpm", "e2fsprogs"];

/// The guest's Debian: the release the packages are built on, and what the root holds besides
/// `minbase` (systemd as init; adduser and procps, which the packages and the script use). The
/// guest has no network: everything the packages depend on must be here.
const SUITE: &str = "bookworm";
const INCLUDE: &str = "systemd,systemd-sysv,adduser,procps";
const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";
/// Bumped whenever the root's recipe (`prepare_root`) changes, so that a cached root is rebuilt.
const ROOT_RECIPE: u32 = 1;
const ROOT_IMAGE_SIZE: &str = "3G";

/// Units of the Debian root that only slow a test boot down or wait for hardware it lacks
/// (there is no udev: serial-getty would wait 90 s for its device).
const MASKED_UNITS: &[&str] = &[
    "serial-getty@ttyS0.service",
    "getty@tty1.service",
    "getty-static.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "dpkg-db-backup.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "fstrim.timer",
    "man-db.timer",
];

/// Modules the initramfs loads to reach the root disk (and to seed entropy).
const GUEST_MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_blk",
    "virtio_rng",
    "crc32c_generic",
    "ext4",
];

/// The steps the guest script reports, in order; each must pass.
const STEPS: &[&str] = &[
    "install",
    "start",
    "agents",
    "run-task",
    "agent-restart",
    "memory-limit",
    "upgrade",
    "master-restart",
    "remove",
    "purge",
];

#[derive(Debug, Clone)]
pub struct Options {
    /// Kill the VM after this long.
    pub timeout: Duration,
    pub accel: Accel,
    pub memory_mib: u32,
    /// Rebuild the Debian root even when the cached one is current.
    pub fresh_root: bool,
}

pub fn run(opts: &Options) -> Result<()> {
    crate::require_root(
        "cargo xtask package-test",
        "it installs packages with apt, builds a Debian root with debootstrap and boots it",
    )?;
    let started = Instant::now();
    let root = crate::workspace_root();
    let dir = root.join("target").join("package-test");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;

    println!("==> system packages");
    let mut wanted: Vec<&str> = Vec::new();
    for package in CI_PACKAGES
        .iter()
        .chain(vm::VM_PACKAGES)
        .chain(PACKAGE_TEST_PACKAGES)
    {
        if !wanted.contains(package) {
            wanted.push(package);
        }
    }
    let installed = apt::install_missing(&wanted, true)?;
    if !installed.is_empty() {
        println!("installed: {}", installed.join(" "));
    }

    let t = Instant::now();
    let first = package::build(&package::Options::new(&root), true)?;
    let upgrade = package::build(
        &package::Options {
            out_dir: dir.join("upgrade"),
            revision: Some("2".to_string()),
        },
        false,
    )?;
    let packaging_wall = t.elapsed();

    println!("==> inspecting the packages");
    let t = Instant::now();
    let version = workspace_version(&root)?;
    inspect_debs(&first, &version, "1")?;
    inspect_debs(&upgrade, &version, "2")?;
    inspect_rpms(&first, &version)?;
    println!("packages inspected in {:.1} s", t.elapsed().as_secs_f64());

    println!("==> Debian root ({SUITE}, minbase + {INCLUDE})");
    let t = Instant::now();
    let image = debian_root(&dir, opts.fresh_root)?;
    let root_wall = t.elapsed();

    println!("==> kernel");
    let vm_dir = root.join("target").join("vm");
    let kernel = vm::fetch_kernel(&vm_dir)?;
    println!("kernel {} ({})", kernel.release, kernel.vmlinuz.display());

    println!("==> initramfs");
    let initramfs = build_initramfs(&dir, &kernel, &first, &upgrade)?;

    let vm_opts = vm::Options {
        release: true,
        scenarios: Vec::new(),
        timeout: opts.timeout,
        accel: opts.accel,
        memory_mib: opts.memory_mib,
    };
    // QEMU keeps the disk's snapshot in a file under $TMPDIR that it deletes on exit; a killed
    // QEMU's is removed here by the next run (and this run's at its end).
    let qemu_tmp = dir.join("qemu-tmp");
    let _ = std::fs::remove_dir_all(&qemu_tmp);
    std::fs::create_dir_all(&qemu_tmp)?;
    // xtask runs no threads of its own: setting the variable races with nothing.
    std::env::set_var("TMPDIR", &qemu_tmp);
    let accel = vm::choose_accel(&vm_opts, &dir, &kernel, &initramfs)?;
    println!("==> boot ({accel:?}, timeout {} s)", opts.timeout.as_secs());
    let drive = format!("file={},format=raw,if=virtio,snapshot=on", image.display());
    let guest = vm::boot(
        &dir,
        &kernel,
        &initramfs,
        accel,
        &vm_opts,
        &[
            "systemd.unified_cgroup_hierarchy=1".to_string(),
            "systemd.show_status=error".to_string(),
        ],
        opts.timeout,
        &["-drive".to_string(), drive],
    );
    let _ = std::fs::remove_dir_all(&qemu_tmp);
    let guest = guest?;
    let report = vm::parse_report(&guest.results);
    println!(
        "\n{}",
        vm::summary(&report).replace("vm-test", "package-test")
    );

    let console = dir.join("console.log");
    let tail = || vm::log_tail(&console, 80);
    let passed: BTreeSet<&str> = report
        .scenarios
        .iter()
        .filter(|s| s.passed)
        .map(|s| s.name.as_str())
        .collect();
    let failed: Vec<&str> = report
        .scenarios
        .iter()
        .filter(|s| !s.passed)
        .map(|s| s.name.as_str())
        .collect();
    let not_run: Vec<&str> = STEPS
        .iter()
        .copied()
        .filter(|s| !passed.contains(s) && !failed.contains(s))
        .collect();
    if let Some(boot_wall) = guest.boot_wall {
        println!(
            "package-test: packages {:.1} s, Debian root {:.1} s, booted in {:.1} s, steps \
             {:.1} s; whole run {:.1} s ({accel:?})",
            packaging_wall.as_secs_f64(),
            root_wall.as_secs_f64(),
            boot_wall.as_secs_f64(),
            guest.scenarios_wall.as_secs_f64(),
            started.elapsed().as_secs_f64()
        );
    }
    println!(
        "package-test: {} passed, {} failed, {} not run",
        passed.len(),
        failed.len(),
        not_run.len()
    );
    if report.booted.is_none() {
        bail!(
            "the Debian guest did not boot into the test ({}); console log {}:\n{}",
            guest.ending,
            console.display(),
            tail()
        );
    }
    if !failed.is_empty() {
        bail!(
            "package-test steps failed: {} (console log: {})",
            failed.join(", "),
            console.display()
        );
    }
    if !not_run.is_empty() {
        bail!(
            "package-test steps did not run: {} ({}); console log {}:\n{}",
            not_run.join(", "),
            guest.ending,
            console.display(),
            tail()
        );
    }
    Ok(())
}

/// `version` of `[workspace.package]`, which every package carries.
fn workspace_version(root: &Path) -> Result<String> {
    let manifest = root.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .with_context(|| format!("cannot read {}", manifest.display()))?;
    parse_workspace_version(&text)
        .ok_or_else(|| anyhow!("{} has no [workspace.package] version", manifest.display()))
}

fn parse_workspace_version(manifest: &str) -> Option<String> {
    let mut in_section = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_section = line == "[workspace.package]";
        } else if in_section {
            if let Some(value) = line.strip_prefix("version") {
                let value = value.trim_start().strip_prefix('=')?.trim();
                return Some(value.trim_matches('"').to_string());
            }
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Inspection

/// What one package must hold.
struct Expected {
    package: &'static str,
    files: &'static [&'static str],
    conffiles: &'static [&'static str],
    /// Every one of these must appear in Depends.
    depends: &'static [&'static str],
    /// (maintainer script, text it must contain)
    scripts: &'static [(&'static str, &'static str)],
}

const EXPECTED_DEBS: [Expected; 3] = [
    Expected {
        package: "strata-master",
        files: &[
            "./usr/bin/strata-master",
            "./usr/lib/systemd/system/strata-master.service",
            "./etc/strata/master.toml",
            "./usr/share/doc/strata-master/copyright",
        ],
        conffiles: &["/etc/strata/master.toml"],
        depends: &["libc6", "adduser"],
        scripts: &[
            ("postinst", "adduser --system"),
            (
                "postinst",
                "deb-systemd-helper enable strata-master.service",
            ),
            (
                "postinst",
                "deb-systemd-invoke try-restart strata-master.service",
            ),
            ("prerm", "deb-systemd-invoke stop strata-master.service"),
            ("postrm", "deluser --system"),
            ("postrm", "rm -rf /var/lib/strata/master"),
        ],
    },
    Expected {
        package: "strata-agent",
        files: &[
            "./usr/bin/strata-agent",
            "./usr/lib/systemd/system/strata-agent.service",
            "./etc/strata/agent.toml",
            "./usr/share/doc/strata-agent/copyright",
        ],
        conffiles: &["/etc/strata/agent.toml"],
        depends: &["libc6"],
        scripts: &[
            ("postinst", "deb-systemd-helper enable strata-agent.service"),
            (
                "postinst",
                "deb-systemd-invoke try-restart strata-agent.service",
            ),
            ("prerm", "deb-systemd-invoke stop strata-agent.service"),
            ("prerm", "/usr/bin/strata-agent cleanup-bpf"),
            ("postrm", "rm -rf /var/lib/strata/agent"),
        ],
    },
    Expected {
        package: "strata-cli",
        files: &["./usr/bin/strata", "./usr/share/doc/strata-cli/copyright"],
        conffiles: &[],
        depends: &["libc6"],
        scripts: &[],
    },
];

fn inspect_debs(built: &Built, version: &str, revision: &str) -> Result<()> {
    for (deb, expected) in built.debs.iter().zip(&EXPECTED_DEBS) {
        let name = deb.display().to_string();
        let contents = output(Cmd::new("dpkg-deb", &["-c"]).args([name.as_str()]))?;
        let files: Vec<&str> = contents
            .lines()
            .filter_map(|l| l.split_whitespace().last())
            .collect();
        for file in expected.files {
            if !files.contains(file) {
                bail!("{name} lacks {file}; it holds:\n{contents}");
            }
        }
        let field = |field: &str| output(Cmd::new("dpkg-deb", &["-f", name.as_str(), field]));
        let package = field("Package")?;
        let got_version = field("Version")?;
        let depends = field("Depends")?;
        check(package.trim() == expected.package, || {
            format!("{name}: Package is {package:?}")
        })?;
        let want_version = format!("{version}-{revision}");
        check(got_version.trim() == want_version, || {
            format!("{name}: Version is {got_version:?}, not {want_version}")
        })?;
        for dep in expected.depends {
            check(
                depends
                    .split(',')
                    .any(|d| d.split_whitespace().next() == Some(dep)),
                || format!("{name}: Depends ({}) lacks {dep}", depends.trim()),
            )?;
        }
        let info = output(Cmd::new("dpkg-deb", &["-I", name.as_str()]))?;
        let conffiles = if info.contains(" conffiles ") {
            output(Cmd::new("dpkg-deb", &["-I", name.as_str(), "conffiles"]))?
        } else {
            String::new()
        };
        let listed: Vec<&str> = conffiles.lines().map(str::trim).collect();
        check(listed == expected.conffiles, || {
            format!(
                "{name}: conffiles are {listed:?}, not {:?}",
                expected.conffiles
            )
        })?;
        for (script, text) in expected.scripts {
            let body = output(Cmd::new("dpkg-deb", &["-I", name.as_str(), script]))?;
            check(body.contains(text), || {
                format!("{name}: {script} lacks `{text}`:\n{body}")
            })?;
            // Enabled on installation, never started by it.
            check(!body.contains("deb-systemd-invoke start"), || {
                format!("{name}: {script} starts a service:\n{body}")
            })?;
        }
        // The unit the package installs is packaging/'s.
        let unit = format!("{}.service", expected.package);
        if expected.files.iter().any(|f| f.ends_with(&unit)) {
            let tmp = tempdir("strata-deb")?;
            Cmd::new("dpkg-deb", &["-x", name.as_str()])
                .args([tmp.path.display().to_string()])
                .capture()?;
            let shipped = std::fs::read(tmp.path.join("usr/lib/systemd/system").join(&unit))?;
            let source = std::fs::read(
                crate::workspace_root()
                    .join("packaging/systemd")
                    .join(&unit),
            )?;
            check(shipped == source, || {
                format!("{name}: its {unit} differs from packaging/systemd/{unit}")
            })?;
        }
        println!(
            "{}: {} files, conffiles {:?}, Depends: {}",
            deb.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default(),
            files.iter().filter(|f| !f.ends_with('/')).count(),
            listed,
            depends.trim()
        );
    }
    Ok(())
}

/// (package, files, config files, requires, (scriptlet, text it must contain)); a scriptlet's
/// texts must appear in it in the order given.
type ExpectedRpm = (
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
);

const EXPECTED_RPMS: [ExpectedRpm; 3] = [
    (
        "strata-master",
        &[
            "/usr/bin/strata-master",
            "/usr/lib/systemd/system/strata-master.service",
            "/etc/strata/master.toml",
        ],
        &["/etc/strata/master.toml"],
        &["libc.so.6()(64bit)", "shadow-utils", "/bin/sh"],
        &[
            ("preinstall", "useradd --system"),
            ("postinstall", "systemctl enable strata-master.service"),
            ("preuninstall", "disable --now strata-master.service"),
            ("postuninstall", "try-restart strata-master.service"),
        ],
    ),
    (
        "strata-agent",
        &[
            "/usr/bin/strata-agent",
            "/usr/lib/systemd/system/strata-agent.service",
            "/etc/strata/agent.toml",
        ],
        &["/etc/strata/agent.toml"],
        &["libc.so.6()(64bit)", "/bin/sh"],
        &[
            ("postinstall", "systemctl enable strata-agent.service"),
            // Erase stops the agent, then unpins its BPF programs (as the .deb's prerm).
            ("preuninstall", "disable --now strata-agent.service"),
            ("preuninstall", "/usr/bin/strata-agent cleanup-bpf"),
            ("postuninstall", "try-restart strata-agent.service"),
        ],
    ),
    (
        "strata-cli",
        &["/usr/bin/strata"],
        &[],
        &["libc.so.6()(64bit)"],
        &[],
    ),
];

/// `rpm -qp --scripts`, split into its scriptlets: (`preuninstall`, body), … in its order.
fn rpm_scriptlets(text: &str) -> Vec<(&str, String)> {
    let mut out: Vec<(&str, String)> = Vec::new();
    for line in text.lines() {
        if let Some(name) = scriptlet_header(line) {
            out.push((name, String::new()));
        } else if let Some((_, body)) = out.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    out
}

/// The scriptlet a line of `rpm --scripts` starts: `preuninstall scriptlet (using /bin/sh):`
/// (or without the interpreter) → `preuninstall`.
fn scriptlet_header(line: &str) -> Option<&str> {
    let (name, rest) = line.split_once(" scriptlet")?;
    let rest = rest.strip_suffix(':')?;
    let named = !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase());
    (named && (rest.is_empty() || rest.starts_with(" (using "))).then_some(name)
}

/// Checks that each scriptlet holds its expected texts, in their order.
fn check_scriptlets(
    scriptlets: &[(&str, String)],
    expected: &[(&str, &str)],
) -> std::result::Result<(), String> {
    let mut from: Vec<(&str, usize)> = Vec::new();
    for (scriptlet, text) in expected {
        let Some((_, body)) = scriptlets.iter().find(|(name, _)| name == scriptlet) else {
            return Err(format!("no {scriptlet} scriptlet (for `{text}`)"));
        };
        let start = from
            .iter()
            .find(|(name, _)| name == scriptlet)
            .map_or(0, |(_, at)| *at);
        let Some(at) = body[start..].find(text) else {
            let problem = if body.contains(text) {
                "has it too early"
            } else {
                "lacks it"
            };
            return Err(format!("its {scriptlet} scriptlet {problem}: `{text}`"));
        };
        let end = start + at + text.len();
        match from.iter_mut().find(|(name, _)| name == scriptlet) {
            Some(entry) => entry.1 = end,
            None => from.push((scriptlet, end)),
        }
    }
    Ok(())
}

fn inspect_rpms(built: &Built, version: &str) -> Result<()> {
    for (rpm, (package, files, configs, requires, scripts)) in built.rpms.iter().zip(&EXPECTED_RPMS)
    {
        let name = rpm.display().to_string();
        let query = |args: &[&str]| output(Cmd::new("rpm", args).args([name.as_str()]));
        let listed = query(&["-qpl"])?;
        for file in *files {
            check(listed.lines().any(|l| l.trim() == *file), || {
                format!("{name} lacks {file}; it holds:\n{listed}")
            })?;
        }
        let info = query(&["-qpi"])?;
        let field = |key: &str| {
            info.lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    (k.trim() == key).then(|| v.trim().to_string())
                })
                .unwrap_or_default()
        };
        check(field("Name") == *package, || {
            format!("{name}: rpm -qpi says:\n{info}")
        })?;
        check(field("Version") == version, || {
            format!("{name}: rpm -qpi says:\n{info}")
        })?;
        check(field("License") == "Apache-2.0", || {
            format!("{name}: rpm -qpi says:\n{info}")
        })?;
        let config = query(&["-qpc"])?;
        let config: Vec<&str> = config
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        check(config == *configs, || {
            format!("{name}: config files are {config:?}, not {configs:?}")
        })?;
        let reqs = query(&["-qpR"])?;
        for req in *requires {
            check(reqs.lines().any(|l| l.trim() == *req), || {
                format!("{name}: Requires lacks {req}:\n{reqs}")
            })?;
        }
        let scriptlets = query(&["-qp", "--scripts"])?;
        let parsed = rpm_scriptlets(&scriptlets);
        check_scriptlets(&parsed, scripts)
            .map_err(|problem| anyhow!("{name}: {problem}:\n{scriptlets}"))?;
        check(!scriptlets.contains("systemctl start"), || {
            format!("{name}: a scriptlet starts a service on installation:\n{scriptlets}")
        })?;
        println!(
            "{}: {} files, config {:?}, {} requirements, {} scriptlets",
            rpm.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default(),
            listed.lines().count(),
            config,
            reqs.lines().count(),
            parsed.len()
        );
    }
    Ok(())
}

fn output(cmd: Cmd) -> Result<String> {
    let (ok, text) = cmd.capture()?;
    if !ok {
        bail!("`{}` failed", cmd.display());
    }
    Ok(text)
}

fn check(ok: bool, message: impl FnOnce() -> String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        bail!("{}", message())
    }
}

/// A temporary directory, removed when dropped.
struct TempDir {
    path: PathBuf,
}

fn tempdir(prefix: &str) -> Result<TempDir> {
    let path = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&path);
    std::fs::create_dir_all(&path)?;
    Ok(TempDir { path })
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

// ---------------------------------------------------------------------------------------------
// The Debian root

/// The cached root image, rebuilt with debootstrap when missing, stale or asked for.
fn debian_root(dir: &Path, fresh: bool) -> Result<PathBuf> {
    let image = dir.join("root.img");
    let stamp_file = dir.join("root.stamp");
    let mirror = std::env::var("STRATA_DEBIAN_MIRROR").unwrap_or_else(|_| DEFAULT_MIRROR.into());
    let stamp =
        format!("recipe {ROOT_RECIPE}\nsuite {SUITE}\ninclude {INCLUDE}\nmirror {mirror}\n");
    let current = std::fs::read_to_string(&stamp_file).ok().as_deref() == Some(stamp.as_str());
    if current && image.is_file() && !fresh {
        println!("using the cached {}", image.display());
        return Ok(image);
    }
    let _ = std::fs::remove_file(&stamp_file);
    let tree = dir.join("root");
    remove_tree(&tree)?;
    let result = (|| {
        Cmd::new(
            "debootstrap",
            &["--variant=minbase", &format!("--include={INCLUDE}"), SUITE],
        )
        .args([tree.display().to_string(), mirror.clone()])
        .run()?;
        prepare_root(&tree)?;
        let _ = std::fs::remove_file(&image);
        Cmd::new("truncate", &["-s", ROOT_IMAGE_SIZE])
            .args([image.display().to_string()])
            .run()?;
        Cmd::new("mkfs.ext4", &["-q", "-F", "-L", "strata-root", "-d"])
            .args([tree.display().to_string(), image.display().to_string()])
            .run()
    })();
    // The tree is only the image's source; debootstrap's mounts in it (it mounts /proc and
    // /sys while it installs) must not outlive it either way.
    let removed = remove_tree(&tree);
    result?;
    removed?;
    std::fs::write(&stamp_file, stamp)?;
    println!("built {}", image.display());
    Ok(image)
}

/// What the test boot needs of the fresh root: a hostname, and no units that wait for devices
/// the guest lacks.
fn prepare_root(tree: &Path) -> Result<()> {
    std::fs::write(tree.join("etc/hostname"), "strata-pkg\n")?;
    std::fs::write(
        tree.join("etc/hosts"),
        "127.0.0.1\tlocalhost strata-pkg\n::1\tlocalhost\n",
    )?;
    let system = tree.join("etc/systemd/system");
    std::fs::create_dir_all(&system)?;
    for unit in MASKED_UNITS {
        let link = system.join(unit);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink("/dev/null", &link)
            .with_context(|| format!("cannot mask {unit}"))?;
    }
    // The packages must come from the payload only: apt never reaches a mirror in the guest.
    std::fs::write(
        tree.join("etc/apt/apt.conf.d/99strata-package-test"),
        "Acquire::Retries \"0\";\nAPT::Install-Recommends \"false\";\n",
    )?;
    Ok(())
}

/// Unmounts whatever is mounted below `tree` (deepest first), then removes it.
fn remove_tree(tree: &Path) -> Result<()> {
    if !tree.exists() {
        return Ok(());
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
    let mut mounts: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .map(|p| PathBuf::from(unescape_mount_path(p)))
        .filter(|p| p.starts_with(tree))
        .collect();
    mounts.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for mount in &mounts {
        Cmd::new("umount", &["--lazy"])
            .args([mount.display().to_string()])
            .run()
            .with_context(|| {
                format!("cannot unmount {} left in the Debian root", mount.display())
            })?;
    }
    std::fs::remove_dir_all(tree).with_context(|| format!("cannot remove {}", tree.display()))
}

/// `/proc/self/mountinfo` writes space, tab, newline and backslash as octal escapes.
fn unescape_mount_path(path: &str) -> String {
    path.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

// ---------------------------------------------------------------------------------------------
// The initramfs and the guest

/// /init: loads the modules, mounts the root disk, copies the payload (packages, the guest
/// script and its unit) in and hands over to systemd.
const INIT: &str = r#"#!/bin/sh
# /init of the Strata package test (written by `cargo xtask package-test`).
export PATH=/bin
report() { echo "$*"; echo "$*" >/dev/ttyS1; }
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
stty -F /dev/ttyS1 raw -echo 2>/dev/null
if [ "$STRATA_VM_MODE" = probe ]; then
    report "STRATA-VM PROBE OK"
    poweroff -f
fi
for module in $(cat /etc/strata-vm/modules); do
    insmod "/lib/modules/strata-vm/$module" || report "STRATA-VM WARN insmod $module failed"
done
i=0
while [ ! -b /dev/vda ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
mkdir -p /newroot
if ! mount -t ext4 -o rw /dev/vda /newroot; then
    report "STRATA-VM ERROR cannot mount the root disk /dev/vda"
    poweroff -f
fi
rm -rf /newroot/root/strata-test
mkdir -p /newroot/root/strata-test
cp -a /payload/. /newroot/root/strata-test/
cp /payload/strata-package-test.service /newroot/etc/systemd/system/
mkdir -p /newroot/etc/systemd/system/multi-user.target.wants
ln -sf /etc/systemd/system/strata-package-test.service \
    /newroot/etc/systemd/system/multi-user.target.wants/strata-package-test.service
umount /proc /sys /dev
exec switch_root /newroot /lib/systemd/systemd
report "STRATA-VM ERROR switch_root failed"
poweroff -f
"#;

/// Runs the guest script once the system is up, with its output on the console (ttyS0, kept in
/// console.log; the journal dies with the guest).
const GUEST_UNIT: &str = "[Unit]
Description=Strata package test (cargo xtask package-test)
After=multi-user.target

[Service]
Type=oneshot
ExecStart=/bin/sh /root/strata-test/run.sh
StandardOutput=journal+console
StandardError=journal+console
TimeoutStartSec=infinity

[Install]
WantedBy=multi-user.target
";

/// The steps, as an operator would run them: each reports `STRATA-SCENARIO PASS|FAIL <step>`
/// on ttyS1; the first failure also sends the failing command's output and the daemons'
/// journal (`STRATA-LOG`) and ends the run. Every command is echoed on the console.
const GUEST_SCRIPT: &str = r#"#!/bin/sh
# The guest side of `cargo xtask package-test`, run by strata-package-test.service.
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export DEBIAN_FRONTEND=noninteractive
T=/root/strata-test
R=/dev/ttyS1
LOG=$T/step.log
STEP=none
STEP_START=0
stty -F $R raw -echo 2>/dev/null

report() { echo "$*"; echo "$*" >$R; }
uptime_s() { cut -d' ' -f1 /proc/uptime; }
finish() {
    report "STRATA-SCENARIOS DONE"
    sync
    systemctl --no-block poweroff
    exit 0
}
step() {
    STEP=$1
    STEP_START=$(uptime_s)
    : >$LOG
    report "STRATA-START $STEP"
}
pass() {
    report "STRATA-SCENARIO PASS $STEP: $* ($(echo "$(uptime_s) $STEP_START" | awk '{printf "%.1f", $1 - $2}') s)"
}
fail() {
    report "STRATA-SCENARIO FAIL $STEP: $*"
    tail -n 40 $LOG | while IFS= read -r line; do report "STRATA-LOG $STEP: $line"; done
    report "STRATA-LOG $STEP: --- journal of strata-master and strata-agent ---"
    journalctl -u strata-master -u strata-agent --no-pager -n 40 -o short-monotonic 2>&1 |
        while IFS= read -r line; do report "STRATA-LOG $STEP: $line"; done
    finish
}
# run CMD...: runs it (echoed, output kept for a failure report); fails the step unless it exits 0.
run() {
    echo "+ $*" | tee -a $LOG
    "$@" >>$LOG 2>&1
    status=$?
    tail -n 20 $LOG | sed 's/^/  | /'
    [ $status -eq 0 ] || fail "\`$*\` exited with $status"
}
# expect WHAT GOT WANTED
expect() { [ "$2" = "$3" ] || fail "$1: expected '$3', got '$2'"; }
# wait_for SECS WHAT CMD...: retries CMD every half second until it succeeds.
wait_for() {
    secs=$1 what=$2
    shift 2
    i=0
    until "$@" >>$LOG 2>&1; do
        i=$((i + 1))
        [ $i -lt $((secs * 2)) ] || fail "no $what after $secs s (\`$*\`)"
        sleep 0.5
    done
}
main_pid() { systemctl show -p MainPID --value "$1"; }
version_of() { dpkg-query -W -f '${Version}' "$1" 2>/dev/null; }
task_running() { strata tasks | grep -q "^$1 .*TASK_RUNNING"; }
agent_active() { strata agents | grep -q "127.0.0.1:5051 *active"; }

report "STRATA-VM BOOTED kernel=$(uname -r) uptime=$(uptime_s) $(systemctl --version | head -n 1) cgroup=$(stat -fc %T /sys/fs/cgroup)"
for unit in strata-master strata-agent; do
    [ ! -e /usr/lib/systemd/system/$unit.service ] || { step install; fail "$unit.service exists before the installation"; }
done

step install
run apt-get install -y $T/v1/strata-cli_*.deb $T/v1/strata-master_*.deb $T/v1/strata-agent_*.deb
for unit in strata-master strata-agent; do
    expect "systemctl is-enabled $unit" "$(systemctl is-enabled $unit)" enabled
    expect "systemctl is-active $unit" "$(systemctl is-active $unit)" inactive
done
getent passwd strata >>$LOG || fail "no user strata"
expect "owner of /var/lib/strata/master" "$(stat -c %U:%G /var/lib/strata/master)" strata:strata
expect "owner of /var/lib/strata/agent" "$(stat -c %U /var/lib/strata/agent)" root
for file in /etc/strata/master.toml /etc/strata/agent.toml; do
    [ -f $file ] || fail "no $file"
done
run strata-agent --version
pass "$(version_of strata-master) installed; enabled, not started; user strata; /var/lib/strata/{master,agent}"

step start
run systemd-analyze verify strata-master.service strata-agent.service
printf '\n# cargo xtask package-test\nmaster = "127.0.0.1:5050"\nresources = "cpus:2;mem:768"\n' >>/etc/strata/agent.toml
# `strata run` as root: the master runs root tasks only with a run_tasks ACL naming root (issue 11).
# Not under /tmp or /var/tmp, which the unit's PrivateTmp hides, nor where the purge rightly keeps
# what the administrator added (/etc/strata, /var/lib/strata): the master's state dir goes.
printf '%s\n' '{"run_tasks": [{"principals": {"type": "ANY"}, "users": {"values": ["root"]}}]}' >/var/lib/strata/master/acls.json
chmod 644 /var/lib/strata/master/acls.json
printf '\n# cargo xtask package-test\nacls = "/var/lib/strata/master/acls.json"\n' >>/etc/strata/master.toml
# Type=notify: systemctl returns once the daemon sent READY=1, and fails if it never does.
run systemctl start strata-master
run systemctl start strata-agent
MASTER_PID=$(main_pid strata-master)
AGENT_PID=$(main_pid strata-agent)
expect "strata-master is-active" "$(systemctl is-active strata-master)" active
expect "strata-agent is-active" "$(systemctl is-active strata-agent)" active
expect "user of strata-master" "$(stat -c %U /proc/$MASTER_PID)" strata
expect "cgroup of strata-agent" "$(cat /proc/$AGENT_PID/cgroup)" "0::/system.slice/strata-agent.service"
expect "oom_score_adj of strata-agent" "$(cat /proc/$AGENT_PID/oom_score_adj)" -1000
run sh -c "journalctl -u strata-agent --no-pager | grep -q 'isolators active'"
pass "master pid $MASTER_PID (user strata), agent pid $AGENT_PID; root controllers: $(cat /sys/fs/cgroup/cgroup.subtree_control)"

step agents
wait_for 60 "active agent 127.0.0.1:5051 in \`strata agents\`" agent_active
pass "$(strata agents | grep 127.0.0.1:5051 | tr -s ' ')"

step run-task
strata run --task-id sleeper-1 --mem 32 -- sleep 3600 >$T/run.out 2>$T/run.err &
RUN_PID=$!
# Running, or a failure with what `strata run` said.
sleeper_started() {
    task_running sleeper-1 && return 0
    kill -0 $RUN_PID 2>/dev/null || fail "\`strata run\` ended: $(tail -n 3 $T/run.err | tr '\n' ' ')"
    return 1
}
wait_for 90 "sleeper-1 TASK_RUNNING in \`strata tasks\`" sleeper_started
TASK_PID=$(pgrep -x -n sleep)
[ -n "$TASK_PID" ] || fail "no sleep process"
TASK_CGROUP=$(cut -d: -f3 /proc/$TASK_PID/cgroup)
case $TASK_CGROUP in
    /strata/*) ;;
    *) fail "the task's cgroup is $TASK_CGROUP, not below /strata" ;;
esac
expect "memory.max of the task" "$(cat /sys/fs/cgroup$TASK_CGROUP/memory.max)" 33554432
expect "oom_score_adj of the task" "$(cat /proc/$TASK_PID/oom_score_adj)" 0
pass "pid $TASK_PID in $TASK_CGROUP, memory.max 32 MiB, oom_score_adj 0"

step agent-restart
run systemctl restart strata-agent
NEW_AGENT_PID=$(main_pid strata-agent)
[ "$NEW_AGENT_PID" != "$AGENT_PID" ] && [ "$NEW_AGENT_PID" != 0 ] ||
    fail "strata-agent's main pid is $NEW_AGENT_PID after the restart (was $AGENT_PID)"
kill -0 $TASK_PID 2>/dev/null || fail "the task (pid $TASK_PID) died with the agent"
wait_for 60 "re-registration of the restarted agent" \
    sh -c "journalctl -u strata-agent _PID=$NEW_AGENT_PID --no-pager | grep -q 'registered with the master'"
run sh -c "journalctl -u strata-agent _PID=$NEW_AGENT_PID --no-pager | grep 'recovering container' | grep -q 'alive=true'"
wait_for 30 "sleeper-1 TASK_RUNNING after the restart" task_running sleeper-1
kill -0 $TASK_PID 2>/dev/null || fail "the task (pid $TASK_PID) is gone"
kill -0 $RUN_PID 2>/dev/null || fail "\`strata run\` exited: $(cat $T/run.err)"
pass "agent pid $AGENT_PID -> $NEW_AGENT_PID; task pid $TASK_PID adopted, still TASK_RUNNING"

step memory-limit
timeout 180 strata run --mem 32 -- tail /dev/zero >$T/oom.out 2>$T/oom.err
status=$?
cat $T/oom.err >>$LOG
[ $status -ne 0 ] && [ $status -ne 124 ] || fail "a task over 32 MiB ended with status $status"
grep -q "Memory limit exceeded" $T/oom.err || fail "no memory limitation reported: $(tail -n 3 $T/oom.err)"
pass "tail /dev/zero killed at 32 MiB under systemd: $(grep -m1 'Memory limit exceeded' $T/oom.err)"

step upgrade
run strata kill sleeper-1
wait_for 30 "the end of \`strata run\` after the kill" sh -c "! kill -0 $RUN_PID 2>/dev/null"
echo kept >/var/lib/strata/agent/package-test-marker
echo kept >/var/lib/strata/master/package-test-marker
OLD_MASTER_PID=$(main_pid strata-master)
OLD_AGENT_PID=$(main_pid strata-agent)
run apt-get install -y -o Dpkg::Options::=--force-confold $T/v2/strata-cli_*.deb $T/v2/strata-master_*.deb $T/v2/strata-agent_*.deb
for package in strata-cli strata-master strata-agent; do
    case $(version_of $package) in
        *-2) ;;
        *) fail "$package is at $(version_of $package) after the upgrade" ;;
    esac
done
for unit in strata-master strata-agent; do
    expect "$unit is-active after the upgrade" "$(systemctl is-active $unit)" active
done
[ "$(main_pid strata-master)" != "$OLD_MASTER_PID" ] || fail "the upgrade did not restart strata-master"
[ "$(main_pid strata-agent)" != "$OLD_AGENT_PID" ] || fail "the upgrade did not restart strata-agent"
for marker in /var/lib/strata/agent/package-test-marker /var/lib/strata/master/package-test-marker; do
    [ -f $marker ] || fail "the upgrade lost $marker"
done
grep -q '^master = "127.0.0.1:5050"' /etc/strata/agent.toml || fail "the upgrade lost the edit of /etc/strata/agent.toml"
wait_for 60 "active agent 127.0.0.1:5051 after the upgrade" agent_active
run sh -c "timeout 120 strata run -- echo upgraded-and-running | grep -qx upgraded-and-running"
pass "$(version_of strata-agent); both restarted; /var/lib/strata and agent.toml kept; a task runs"

step master-restart
# Restart=on-failure: a master killed by a signal comes back (after RestartSec), the agent
# registers with it again and tasks run.
OLD_MASTER_PID=$(main_pid strata-master)
run kill -9 $OLD_MASTER_PID
master_back() {
    pid=$(main_pid strata-master)
    [ "$pid" != "$OLD_MASTER_PID" ] && [ "$pid" != 0 ] && [ "$(systemctl is-active strata-master)" = active ]
}
wait_for 60 "strata-master restarted by systemd after kill -9" master_back
wait_for 60 "active agent 127.0.0.1:5051 with the restarted master" agent_active
run sh -c "timeout 120 strata run -- echo after-master-restart | grep -qx after-master-restart"
pass "master pid $OLD_MASTER_PID killed -> $(main_pid strata-master), restarted by systemd; agent back; a task runs"

step remove
# Where the kernel let the agent load its network isolators, their programs and maps are pinned
# in /sys/fs/bpf/strata; the prerm's `strata-agent cleanup-bpf` must take them away.
BPF_PINS=none
if journalctl -u strata-agent --no-pager | grep 'isolators active' | grep -q 'network/ports'; then
    [ -d /sys/fs/bpf/strata ] || fail "network/ports is active but /sys/fs/bpf/strata does not exist"
    BPF_PINS=/sys/fs/bpf/strata
fi
run apt-get remove -y strata-agent strata-master strata-cli
for unit in strata-master strata-agent; do
    expect "$unit is-active after the removal" "$(systemctl is-active $unit)" inactive
done
for file in /usr/bin/strata-agent /usr/bin/strata-master /usr/bin/strata; do
    [ ! -e $file ] || fail "$file is still there"
done
for kept in /var/lib/strata/agent/package-test-marker /var/lib/strata/master/package-test-marker \
    /etc/strata/agent.toml /etc/strata/master.toml; do
    [ -e $kept ] || fail "the removal deleted $kept"
done
getent passwd strata >/dev/null || fail "the removal deleted the user strata"
if [ $BPF_PINS = none ]; then
    BPF_NOTE="no network isolators were active, BPF pins not checked"
else
    [ ! -e $BPF_PINS ] || fail "$BPF_PINS survived the removal (the prerm runs strata-agent cleanup-bpf)"
    BPF_NOTE="$BPF_PINS removed"
fi
pass "stopped; binaries gone; $BPF_NOTE; /var/lib/strata, /etc/strata and the user kept"

step purge
run apt-get purge -y strata-agent strata-master strata-cli
for gone in /var/lib/strata /etc/strata /etc/systemd/system/multi-user.target.wants/strata-agent.service \
    /etc/systemd/system/multi-user.target.wants/strata-master.service; do
    [ ! -e $gone ] || fail "$gone survived the purge"
done
! getent passwd strata >/dev/null || fail "the user strata survived the purge"
! getent group strata >/dev/null || fail "the group strata survived the purge"
for package in strata-cli strata-master strata-agent; do
    status=$(dpkg-query -W -f '${Status}' $package 2>/dev/null)
    case $status in
        "" | *not-installed) ;;
        *) fail "dpkg still has $package: $status" ;;
    esac
done
pass "/var/lib/strata, /etc/strata, the user and group strata gone"
finish
"#;

fn build_initramfs(
    dir: &Path,
    kernel: &vm::Kernel,
    first: &Built,
    upgrade: &Built,
) -> Result<PathBuf> {
    let stage = dir.join("initramfs");
    if stage.exists() {
        std::fs::remove_dir_all(&stage)
            .with_context(|| format!("cannot remove {}", stage.display()))?;
    }
    for sub in [
        "bin",
        "dev",
        "proc",
        "sys",
        "newroot",
        "etc/strata-vm",
        "lib/modules/strata-vm",
    ] {
        std::fs::create_dir_all(stage.join(sub))?;
    }
    let busybox = Path::new("/bin/busybox");
    vm::copy(busybox, &stage.join("bin/busybox"))?;
    for applet in [
        "sh",
        "mount",
        "umount",
        "insmod",
        "sleep",
        "switch_root",
        "mkdir",
        "cp",
        "ln",
        "rm",
        "cat",
        "poweroff",
        "stty",
        "echo",
    ] {
        std::os::unix::fs::symlink("busybox", stage.join("bin").join(applet))?;
    }
    vm::write_executable(&stage.join("init"), INIT)?;

    let modules = vm::module_load_order(&kernel.modules, GUEST_MODULES)?;
    let mut names = String::new();
    for module in &modules {
        let name = module
            .file_name()
            .ok_or_else(|| anyhow!("{} has no file name", module.display()))?;
        vm::copy(module, &stage.join("lib/modules/strata-vm").join(name))?;
        names.push_str(&format!("{}\n", name.to_string_lossy()));
    }
    std::fs::write(stage.join("etc/strata-vm/modules"), names)?;

    let payload = stage.join("payload");
    for (sub, built) in [("v1", first), ("v2", upgrade)] {
        for deb in &built.debs {
            let name = deb
                .file_name()
                .ok_or_else(|| anyhow!("{} has no file name", deb.display()))?;
            vm::copy(deb, &payload.join(sub).join(name))?;
        }
    }
    std::fs::write(payload.join("strata-package-test.service"), GUEST_UNIT)?;
    vm::write_executable(&payload.join("run.sh"), GUEST_SCRIPT)?;

    let archive = dir.join("initramfs.cpio");
    vm::cpio(&stage, &archive)?;
    let size = std::fs::metadata(&archive).map(|m| m.len()).unwrap_or(0);
    println!("{} ({} MiB)", archive.display(), size >> 20);
    Ok(archive)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_workspace_version() {
        let manifest = "[workspace]\nmembers = []\n\n[workspace.package]\nedition = \"2021\"\n\
                        version = \"0.3.1\"\n\n[workspace.dependencies]\nversion = \"9\"\n";
        assert_eq!(parse_workspace_version(manifest).as_deref(), Some("0.3.1"));
        assert_eq!(
            parse_workspace_version("[package]\nversion = \"1\"\n"),
            None
        );
        let actual = workspace_version(&crate::workspace_root()).unwrap();
        assert!(actual.split('.').count() == 3, "{actual}");
    }

    #[test]
    fn the_guest_reports_every_step() {
        for step in STEPS {
            assert!(
                GUEST_SCRIPT.contains(&format!("\nstep {step}\n")),
                "the guest script has no step {step}"
            );
        }
        assert_eq!(GUEST_SCRIPT.matches("\nstep ").count(), STEPS.len());
    }

    /// What the issue asks of the units; the package test shows they work under systemd.
    #[test]
    fn the_units_say_what_the_services_need() {
        let unit = |name: &str| {
            let path = crate::workspace_root().join("packaging/systemd").join(name);
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        };
        let master = unit("strata-master.service");
        for line in [
            "Type=notify",
            "User=strata",
            "ExecStart=/usr/bin/strata-master",
            "Restart=on-failure",
            "WantedBy=multi-user.target",
        ] {
            assert!(
                master.lines().any(|l| l == line),
                "strata-master.service: {line}"
            );
        }
        let agent = unit("strata-agent.service");
        for line in [
            "Type=notify",
            "User=root",
            "ExecStart=/usr/bin/strata-agent",
            "Restart=on-failure",
            "Delegate=yes",
            "KillMode=process",
            "OOMScoreAdjust=-1000",
            "WantedBy=multi-user.target",
        ] {
            assert!(
                agent.lines().any(|l| l == line),
                "strata-agent.service: {line}"
            );
        }
    }

    /// What `rpm -qp --scripts` prints for the agent's package, from packaging/rpm's sources.
    fn agent_scripts_output() -> String {
        let dir = crate::workspace_root().join("packaging/rpm/strata-agent");
        let mut out = String::new();
        for (scriptlet, file) in [
            ("postinstall", "post.sh"),
            ("preuninstall", "preun.sh"),
            ("postuninstall", "postun.sh"),
        ] {
            let body = std::fs::read_to_string(dir.join(file)).unwrap();
            out.push_str(&format!("{scriptlet} scriptlet (using /bin/sh):\n{body}"));
        }
        out
    }

    #[test]
    fn rpm_scriptlets_are_split_by_their_headers() {
        let text = "preinstall scriptlet (using /bin/sh):\necho pre\npostinstall scriptlet:\n\
                    echo a scriptlet: here\necho post\n";
        let parsed = rpm_scriptlets(text);
        assert_eq!(
            parsed,
            [
                ("preinstall", "echo pre\n".to_string()),
                (
                    "postinstall",
                    "echo a scriptlet: here\necho post\n".to_string()
                ),
            ]
        );
    }

    /// The expectations hold for the scriptlets in packaging/rpm, and catch a cleanup-bpf that is
    /// missing, in another scriptlet, or before the agent is stopped.
    #[test]
    fn the_agent_rpm_unpins_its_bpf_programs_on_erase() {
        let (package, _, _, _, expected) = EXPECTED_RPMS[1];
        assert_eq!(package, "strata-agent");
        assert!(expected.contains(&("preuninstall", "/usr/bin/strata-agent cleanup-bpf")));
        let real = agent_scripts_output();
        check_scriptlets(&rpm_scriptlets(&real), expected).unwrap();

        let moved = real.replace("/usr/bin/strata-agent cleanup-bpf", "true");
        let moved = format!("{moved}    /usr/bin/strata-agent cleanup-bpf\n");
        let err = check_scriptlets(&rpm_scriptlets(&moved), expected).unwrap_err();
        assert_eq!(
            err,
            "its preuninstall scriptlet lacks it: `/usr/bin/strata-agent cleanup-bpf`"
        );
        let early = "preuninstall scriptlet:\n/usr/bin/strata-agent cleanup-bpf\n\
                     systemctl --no-reload disable --now strata-agent.service\n";
        let err = check_scriptlets(
            &rpm_scriptlets(early),
            &[
                ("preuninstall", "disable --now strata-agent.service"),
                ("preuninstall", "/usr/bin/strata-agent cleanup-bpf"),
            ],
        )
        .unwrap_err();
        assert_eq!(
            err,
            "its preuninstall scriptlet has it too early: `/usr/bin/strata-agent cleanup-bpf`"
        );
        let err = check_scriptlets(&rpm_scriptlets(""), expected).unwrap_err();
        assert!(err.starts_with("no postinstall scriptlet"), "{err}");
    }

    #[test]
    fn mount_paths_are_unescaped() {
        assert_eq!(unescape_mount_path("/a\\040b/c"), "/a b/c");
        assert_eq!(unescape_mount_path("/plain"), "/plain");
    }
}
