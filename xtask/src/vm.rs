//! `cargo xtask vm-test`: the VM test bed, where kernel enforcement is proven. This machine's
//! cgroup2 hierarchy has no controllers (a hybrid host), so the scenarios run in a guest instead:
//! Debian's own kernel (`linux-image-amd64`, fetched with apt and cached under `target/vm/`) boots
//! under QEMU from an initramfs holding busybox-static, the built binaries and their libraries.
//! The guest's `/init` mounts a pure cgroup2 hierarchy and runs `strata-vm` (tests/), which starts
//! a real master and agent per scenario and reports each scenario on the guest's second serial
//! port; this side prints them and fails unless every scenario passed.
//!
//! ```text
//! apt (qemu, busybox-static, cpio) ─▶ kernel .deb (cached) ─▶ cargo build ─▶ initramfs
//!   ─▶ qemu (KVM where it really boots, else TCG) ─▶ ttyS0: console.log, ttyS1: results.log
//!   ─▶ parse results ─▶ "vm-test: N passed, M failed"
//! ```
//!
//! Everything lands in `target/vm/`: `debs/` (the kernel package), `kernel/` (extracted),
//! `initramfs/` (the staging tree, for inspection), `initramfs.cpio`, `console.log` (the guest's
//! console: kernel messages and the scenarios' own output), `results.log`, `qemu.log`.

use crate::apt::{self, CI_PACKAGES};
use crate::cmd::Cmd;
use anyhow::{anyhow, bail, Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What the test bed needs from Debian besides what CI needs anyway.
pub const VM_PACKAGES: &[&str] = &["qemu-system-x86", "busybox-static", "cpio"];

/// The kernel package apt resolves to a versioned `linux-image-<version>-amd64`.
const KERNEL_META_PACKAGE: &str = "linux-image-amd64";

/// Modules the guest loads (with their dependencies, resolved from the modules' `depends=`):
/// virtio-rng seeds the guest's entropy pool from the host, so the daemons' first getrandom(2)
/// does not wait for jitter entropy under emulation; overlay is the root filesystem of image
/// containers.
const GUEST_MODULES: &[&str] = &["virtio_pci", "virtio_rng", "overlay"];

/// The binaries the guest needs, from the cargo target directory.
const BINARIES: &[&str] = &[
    "strata-master",
    "strata-agent",
    "strata-vm",
    "strata-netprobe",
];

const INIT: &str = r#"#!/bin/sh
# /init of the Strata VM test bed (written by `cargo xtask vm-test`).
export PATH=/bin
# Image containers pivot_root(2) into their root filesystem, which the kernel refuses while the
# current root is the initramfs itself (a mount without a parent): run /init again, chrooted
# into a bind mount of the initramfs.
if [ -z "$STRATA_VM_CHROOTED" ]; then
    mount --bind / /newroot
    export STRATA_VM_CHROOTED=1
    exec chroot /newroot /init
fi
report() { echo "$*"; echo "$*" >/dev/ttyS1; }
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=755 tmpfs /run
# A pure cgroup v2 host: the unified hierarchy where v1 would be, and nothing else.
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
stty -F /dev/ttyS1 raw -echo 2>/dev/null
hostname strata-vm
ip link set lo up
for module in $(cat /etc/strata-vm/modules); do
    insmod "/lib/modules/strata-vm/$module" || report "STRATA-VM WARN insmod $module failed"
done
if [ "$STRATA_VM_MODE" = probe ]; then
    report "STRATA-VM PROBE OK"
    poweroff -f
fi
report "STRATA-VM BOOTED kernel=$(uname -r) uptime=$(cut -d' ' -f1 /proc/uptime) cpus=$(nproc) controllers=$(cat /sys/fs/cgroup/cgroup.controllers | tr ' ' ,)"
cd /tmp
STRATA_BIN_DIR=/bin STRATA_VM_REPORT=/dev/ttyS1 STRATA_LOG=info /bin/strata-vm run
report "STRATA-VM EXIT $? uptime=$(cut -d' ' -f1 /proc/uptime)"
sync
poweroff -f
echo o >/proc/sysrq-trigger
"#;

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                      nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\nnogroup:x:65534:\n";
const HOSTS: &str = "127.0.0.1\tlocalhost strata-vm\n::1\tlocalhost\n";
const NSSWITCH: &str = "passwd: files\ngroup: files\nshadow: files\nhosts: files\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Accel {
    /// KVM when /dev/kvm exists and a probe boot under it succeeds, TCG otherwise
    Auto,
    /// QEMU's software emulation
    Tcg,
    /// KVM (fails when it does not boot)
    Kvm,
}

#[derive(Debug, Clone)]
pub struct Options {
    /// Build and boot the release binaries instead of the debug ones.
    pub release: bool,
    /// Scenarios to run (all default ones when empty).
    pub scenarios: Vec<String>,
    /// Longest the guest may run before QEMU is killed.
    pub timeout: Duration,
    pub accel: Accel,
    /// Guest memory in MiB.
    pub memory_mib: u32,
}

pub fn run(opts: &Options) -> Result<()> {
    crate::require_root(
        "cargo xtask vm-test",
        "it installs packages with apt and downloads the kernel package",
    )?;
    let started = Instant::now();
    let root = crate::workspace_root();
    let vm_dir = root.join("target").join("vm");
    std::fs::create_dir_all(&vm_dir)
        .with_context(|| format!("cannot create {}", vm_dir.display()))?;

    println!("==> system packages");
    let mut packages: Vec<&str> = Vec::new();
    for package in CI_PACKAGES.iter().chain(VM_PACKAGES) {
        if !packages.contains(package) {
            packages.push(package);
        }
    }
    let installed = apt::install_missing(&packages, true)?;
    if !installed.is_empty() {
        println!("installed: {}", installed.join(" "));
    }

    println!("==> kernel");
    let kernel = fetch_kernel(&vm_dir)?;
    println!("kernel {} ({})", kernel.release, kernel.vmlinuz.display());

    println!("==> binaries");
    let profile = if opts.release { "release" } else { "debug" };
    let mut build = vec![
        "build",
        "-p",
        "strata-master",
        "-p",
        "strata-agent",
        "-p",
        "strata-tests",
    ];
    for bin in BINARIES {
        build.extend(["--bin", bin]);
    }
    if opts.release {
        build.push("--release");
    }
    Cmd::cargo(&build).run()?;
    let bin_dir = crate::up::target_dir()?.join(profile);

    println!("==> initramfs");
    let t = Instant::now();
    let initramfs = build_initramfs(&vm_dir, &bin_dir, &kernel)?;
    let size = std::fs::metadata(&initramfs).map(|m| m.len()).unwrap_or(0);
    println!(
        "{} ({} MiB) in {:.1} s",
        initramfs.display(),
        size >> 20,
        t.elapsed().as_secs_f64()
    );

    let accel = choose_accel(opts, &vm_dir, &kernel, &initramfs)?;
    println!("==> boot ({accel:?}, timeout {} s)", opts.timeout.as_secs());
    let guest = boot(
        &vm_dir,
        &kernel,
        &initramfs,
        accel,
        opts,
        &guest_env(&opts.scenarios),
        opts.timeout,
        &[],
    )?;
    let report = parse_report(&guest.results);
    println!("\n{}", summary(&report));

    let console = vm_dir.join("console.log");
    let tail = || log_tail(&console, 60);
    if let (Some(booted), Some(boot_wall)) = (&report.booted, guest.boot_wall) {
        println!(
            "vm-test: booted in {:.1} s ({booted}); scenarios {:.1} s; whole run {:.1} s \
             ({profile} binaries, {accel:?})",
            boot_wall.as_secs_f64(),
            guest.scenarios_wall.as_secs_f64(),
            started.elapsed().as_secs_f64(),
        );
    }
    let passed = report.scenarios.iter().filter(|s| s.passed).count();
    let failed = report.scenarios.len() - passed;
    println!("vm-test: {passed} passed, {failed} failed");
    if report.booted.is_none() {
        bail!(
            "the VM did not boot ({}); console log {}:\n{}",
            guest.ending,
            console.display(),
            tail()
        );
    }
    if report.scenarios.is_empty() {
        bail!(
            "no scenario ran ({}); console log {}:\n{}",
            guest.ending,
            console.display(),
            tail()
        );
    }
    if !report.done {
        bail!(
            "the scenario runner did not finish ({}); console log {}:\n{}",
            guest.ending,
            console.display(),
            tail()
        );
    }
    if failed > 0 {
        bail!(
            "{failed} of {} VM scenarios failed (console log: {})",
            report.scenarios.len(),
            console.display()
        );
    }
    Ok(())
}

/// The environment the kernel hands to /init: the scenario selection. (Kernel parameters with
/// `=` and no `.` in the name become init's environment.)
fn guest_env(scenarios: &[String]) -> Vec<String> {
    if scenarios.is_empty() {
        Vec::new()
    } else {
        vec![format!("STRATA_SCENARIOS={}", scenarios.join(","))]
    }
}

// ---------------------------------------------------------------------------------------------
// The kernel

#[derive(Debug)]
pub(crate) struct Kernel {
    /// `uname -r` of the guest, e.g. `6.1.0-56-amd64`.
    pub(crate) release: String,
    pub(crate) vmlinuz: PathBuf,
    /// `lib/modules/<release>` of the extracted package.
    pub(crate) modules: PathBuf,
}

/// Resolves, downloads (once) and extracts (once) Debian's kernel package.
pub(crate) fn fetch_kernel(vm_dir: &Path) -> Result<Kernel> {
    let debs = vm_dir.join("debs");
    std::fs::create_dir_all(&debs)?;
    let cached = cached_kernel_debs(&debs);
    let deb = match resolve_kernel_package() {
        Ok(package) => match cached
            .iter()
            .find(|d| deb_package_name(d) == Some(&package))
        {
            Some(deb) => {
                println!("using the cached {}", deb.display());
                deb.clone()
            }
            None => match download(&package, &debs) {
                Ok(deb) => deb,
                Err(err) => newest(&cached).ok_or(err)?,
            },
        },
        Err(err) => {
            let deb = newest(&cached).ok_or(err)?;
            println!(
                "apt cannot resolve {KERNEL_META_PACKAGE}; using the cached {}",
                deb.display()
            );
            deb
        }
    };
    let stem = deb
        .file_stem()
        .ok_or_else(|| anyhow!("{} has no file name", deb.display()))?;
    let dir = vm_dir.join("kernel").join(stem);
    let marker = dir.join(".extracted");
    if !marker.exists() {
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("cannot remove {}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir)?;
        Cmd::new("dpkg-deb", &["-x"])
            .args([deb.to_string_lossy(), dir.to_string_lossy()])
            .run()?;
        std::fs::write(&marker, "")?;
    }
    // Older kernels' trees (400 MB each) go; their .debs stay as an offline fallback.
    if let Ok(entries) = std::fs::read_dir(vm_dir.join("kernel")) {
        for entry in entries.flatten() {
            if entry.path() != dir {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let boot = dir.join("boot");
    let vmlinuz = std::fs::read_dir(&boot)
        .with_context(|| format!("cannot list {}", boot.display()))?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .ok_or_else(|| anyhow!("{} holds no vmlinuz-*", boot.display()))?;
    let release = vmlinuz
        .file_name()
        .map(|n| {
            n.to_string_lossy()
                .trim_start_matches("vmlinuz-")
                .to_string()
        })
        .unwrap_or_default();
    let modules = dir.join("lib").join("modules").join(&release);
    if !modules.is_dir() {
        bail!("{} does not exist", modules.display());
    }
    Ok(Kernel {
        release,
        vmlinuz,
        modules,
    })
}

/// The versioned package `linux-image-amd64` depends on, per apt (updating its lists once when
/// it does not know the package).
fn resolve_kernel_package() -> Result<String> {
    let query = || Cmd::new("apt-cache", &["depends", KERNEL_META_PACKAGE]).capture();
    if let Ok((true, text)) = query() {
        if let Some(package) = parse_depends(&text) {
            return Ok(package);
        }
    }
    Cmd::new("apt-get", &["update"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .run()?;
    let (_, text) = query()?;
    parse_depends(&text)
        .ok_or_else(|| anyhow!("apt-cache depends {KERNEL_META_PACKAGE} names no kernel: {text}"))
}

/// The first `Depends: linux-image-…` of `apt-cache depends` output.
fn parse_depends(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let rest = line
            .trim()
            .trim_start_matches('|')
            .strip_prefix("Depends:")?;
        let name = rest.trim();
        (name.starts_with("linux-image-") && !name.contains(' ')).then(|| name.to_string())
    })
}

fn cached_kernel_debs(debs: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(debs)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.extension().is_some_and(|x| x == "deb")
                        && deb_package_name(p).is_some_and(|n| n.starts_with("linux-image-"))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

fn newest(debs: &[PathBuf]) -> Option<PathBuf> {
    debs.iter()
        .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .cloned()
}

/// `linux-image-6.1.0-56-amd64` of `…/linux-image-6.1.0-56-amd64_6.1.192-2_amd64.deb`.
fn deb_package_name(path: &Path) -> Option<&str> {
    path.file_name()?.to_str()?.split('_').next()
}

fn download(package: &str, debs: &Path) -> Result<PathBuf> {
    // Sandbox user root: the files land in target/, which apt's `_apt` user may not reach.
    Cmd::new(
        "apt-get",
        &["-o", "APT::Sandbox::User=root", "download", package],
    )
    .dir(debs)
    .run()?;
    cached_kernel_debs(debs)
        .into_iter()
        .find(|d| deb_package_name(d) == Some(package))
        .ok_or_else(|| {
            anyhow!(
                "apt-get download {package} left no .deb in {}",
                debs.display()
            )
        })
}

// ---------------------------------------------------------------------------------------------
// Modules

/// The modules' `.ko` files, in load order (dependencies first).
pub(crate) fn module_load_order(modules_dir: &Path, wanted: &[&str]) -> Result<Vec<PathBuf>> {
    let mut index = BTreeMap::new();
    index_modules(&modules_dir.join("kernel"), &mut index)?;
    let mut order = Vec::new();
    let mut seen = BTreeSet::new();
    for name in wanted {
        visit_module(&module_key(name), &index, &mut seen, &mut order, 0)?;
    }
    Ok(order)
}

fn module_key(name: &str) -> String {
    name.replace('-', "_")
}

fn index_modules(dir: &Path, index: &mut BTreeMap<String, PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            index_modules(&path, index)?;
        } else if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
            if let Some(stem) = name.strip_suffix(".ko") {
                index.insert(module_key(stem), path.clone());
            }
        }
    }
    Ok(())
}

fn visit_module(
    name: &str,
    index: &BTreeMap<String, PathBuf>,
    seen: &mut BTreeSet<String>,
    order: &mut Vec<PathBuf>,
    depth: usize,
) -> Result<()> {
    if depth > 32 {
        bail!("module dependencies nest too deep at {name}");
    }
    if !seen.insert(name.to_string()) {
        return Ok(());
    }
    let path = index.get(name).ok_or_else(|| {
        anyhow!("the kernel package has no module {name} (or it is built in; drop it from GUEST_MODULES)")
    })?;
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    for dep in module_depends(&bytes) {
        visit_module(&module_key(&dep), index, seen, order, depth + 1)?;
    }
    order.push(path.clone());
    Ok(())
}

/// The `depends=` of a module's `.modinfo` section (NUL-separated `key=value` strings).
fn module_depends(ko: &[u8]) -> Vec<String> {
    let needle = b"\0depends=";
    let Some(start) = ko.windows(needle.len()).position(|w| w == needle) else {
        return Vec::new();
    };
    let value = &ko[start + needle.len()..];
    let end = value.iter().position(|b| *b == 0).unwrap_or(value.len());
    String::from_utf8_lossy(&value[..end])
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The initramfs

fn build_initramfs(vm_dir: &Path, bin_dir: &Path, kernel: &Kernel) -> Result<PathBuf> {
    let stage = vm_dir.join("initramfs");
    if stage.exists() {
        std::fs::remove_dir_all(&stage)
            .with_context(|| format!("cannot remove {}", stage.display()))?;
    }
    for dir in [
        "bin",
        "dev",
        "proc",
        "sys",
        "tmp",
        "run",
        "root",
        "var/lib",
        "etc/strata-vm",
        "lib/modules/strata-vm",
        "newroot",
    ] {
        std::fs::create_dir_all(stage.join(dir))?;
    }
    for link in ["sbin", "usr/bin", "usr/sbin"] {
        let path = stage.join(link);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let target = if link.starts_with("usr/") {
            "../bin"
        } else {
            "bin"
        };
        std::os::unix::fs::symlink(target, &path)?;
    }

    // busybox-static and its applets.
    let busybox = Path::new("/bin/busybox");
    copy(busybox, &stage.join("bin/busybox"))?;
    let (ok, list) = Cmd::new(busybox, &["--list"]).capture()?;
    if !ok {
        bail!("`busybox --list` failed");
    }
    for applet in list.lines().map(str::trim) {
        if applet.is_empty() || applet == "busybox" || applet.contains('/') {
            continue;
        }
        std::os::unix::fs::symlink("busybox", stage.join("bin").join(applet))?;
    }

    // The binaries (without debug info: smaller, faster to unpack) and their libraries.
    let mut libraries = BTreeSet::new();
    for name in BINARIES {
        let src = bin_dir.join(name);
        if !src.exists() {
            bail!("{} is missing after the build", src.display());
        }
        let dst = stage.join("bin").join(name);
        let stripped = Cmd::new("objcopy", &["--strip-debug"])
            .args([src.to_string_lossy(), dst.to_string_lossy()])
            .capture()
            .map(|(ok, _)| ok)
            .unwrap_or(false);
        if !stripped {
            copy(&src, &dst)?;
        }
        let (ok, text) = Cmd::new("ldd", &[])
            .args([src.to_string_lossy()])
            .capture()?;
        if !ok {
            bail!("`ldd {}` failed", src.display());
        }
        libraries.extend(parse_ldd(&text).map_err(|e| anyhow!("ldd {}: {e}", src.display()))?);
    }
    for lib in &libraries {
        let rel = lib.strip_prefix("/").unwrap_or(lib);
        copy(lib, &stage.join(rel))?;
    }

    for (path, text) in [
        ("etc/passwd", PASSWD),
        ("etc/group", GROUP),
        ("etc/hosts", HOSTS),
        ("etc/nsswitch.conf", NSSWITCH),
        ("etc/hostname", "strata-vm\n"),
    ] {
        std::fs::write(stage.join(path), text)?;
    }
    write_executable(&stage.join("init"), INIT)?;

    let modules = module_load_order(&kernel.modules, GUEST_MODULES)?;
    let mut names = String::new();
    for module in &modules {
        let name = module
            .file_name()
            .ok_or_else(|| anyhow!("{} has no file name", module.display()))?;
        copy(module, &stage.join("lib/modules/strata-vm").join(name))?;
        names.push_str(&format!("{}\n", name.to_string_lossy()));
    }
    std::fs::write(stage.join("etc/strata-vm/modules"), names)?;

    // Uncompressed: the guest need not decompress anything (slow under emulation), and the
    // archive only lives in the guest's memory until it is unpacked.
    let archive = vm_dir.join("initramfs.cpio");
    cpio(&stage, &archive)?;
    Ok(archive)
}

pub(crate) fn copy(src: &Path, dst: &Path) -> Result<()> {
    if let Some(parent) = dst.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::copy(src, dst)
        .with_context(|| format!("cannot copy {} to {}", src.display(), dst.display()))?;
    Ok(())
}

pub(crate) fn write_executable(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// The absolute paths of the libraries (and the loader) in `ldd` output.
fn parse_ldd(text: &str) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.contains("not found") {
            return Err(format!("missing library: {line}"));
        }
        if line.contains("statically linked") || line.contains("not a dynamic executable") {
            continue;
        }
        let path = match line.split_once("=>") {
            Some((_, right)) => right.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(path) = path.filter(|p| p.starts_with('/')) {
            out.push(PathBuf::from(path));
        }
    }
    Ok(out)
}

/// A `newc` archive of the tree at `stage`, owned by root.
pub(crate) fn cpio(stage: &Path, archive: &Path) -> Result<()> {
    let mut entries = Vec::new();
    list_tree(stage, Path::new("."), &mut entries)?;
    entries.sort();
    let out = std::fs::File::create(archive)
        .with_context(|| format!("cannot create {}", archive.display()))?;
    let mut child = Command::new("cpio")
        .args([
            "--create",
            "--format=newc",
            "--null",
            "--quiet",
            "--owner=0:0",
        ])
        .current_dir(stage)
        .stdin(Stdio::piped())
        .stdout(out)
        .spawn()
        .context("cannot run cpio")?;
    {
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| anyhow!("cpio has no stdin"))?;
        for entry in &entries {
            stdin.write_all(entry.as_os_str().as_encoded_bytes())?;
            stdin.write_all(b"\0")?;
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("cpio failed ({status})");
    }
    Ok(())
}

fn list_tree(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    out.push(rel.to_path_buf());
    let path = root.join(rel);
    if path.is_symlink() || !path.is_dir() {
        return Ok(());
    }
    for entry in std::fs::read_dir(&path)? {
        let entry = entry?;
        list_tree(root, &rel.join(entry.file_name()), out)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// QEMU

/// A running QEMU, killed (by pid) and reaped when dropped, whatever path drops it.
struct Qemu {
    child: Child,
}

impl Drop for Qemu {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// What one boot produced.
pub(crate) struct Guest {
    /// The results port's text (ttyS1).
    pub(crate) results: String,
    /// How the QEMU process ended.
    pub(crate) ending: String,
    /// From QEMU's start to the guest's `STRATA-VM BOOTED` line.
    pub(crate) boot_wall: Option<Duration>,
    /// From that line to QEMU's exit.
    pub(crate) scenarios_wall: Duration,
}

#[allow(clippy::too_many_arguments)] // reason: each is one QEMU setting; a struct would only rename them
fn qemu_args(
    accel: Accel,
    kernel: &Path,
    initramfs: &Path,
    memory_mib: u32,
    console: &Path,
    results: &Path,
    env: &[String],
    extra: &[String],
) -> Vec<String> {
    let mut args: Vec<String> = Vec::new();
    match accel {
        Accel::Kvm => args.extend(["-accel", "kvm", "-cpu", "host"].map(String::from)),
        Accel::Tcg | Accel::Auto => args.extend(["-accel", "tcg,thread=multi"].map(String::from)),
    }
    let mut append = vec![
        "console=ttyS0".to_string(),
        "panic=-1".to_string(),
        "loglevel=4".to_string(),
        "rdinit=/init".to_string(),
    ];
    append.extend(env.iter().cloned());
    args.extend(
        [
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-m",
            &memory_mib.to_string(),
            "-smp",
            "2",
            "-no-reboot",
            "-device",
            "virtio-rng-pci",
            "-serial",
            &format!("file:{}", console.display()),
            "-serial",
            &format!("file:{}", results.display()),
            "-kernel",
            &kernel.to_string_lossy(),
            "-initrd",
            &initramfs.to_string_lossy(),
            "-append",
            &append.join(" "),
        ]
        .map(String::from),
    );
    args.extend(extra.iter().cloned());
    args
}

/// Boots the guest and waits until QEMU exits (the guest powers off) or `timeout` passes.
/// Prints the results port's lines as they come. `extra` are more QEMU arguments (disks).
#[allow(clippy::too_many_arguments)] // reason: one call per kind of guest, each naming all
pub(crate) fn boot(
    vm_dir: &Path,
    kernel: &Kernel,
    initramfs: &Path,
    accel: Accel,
    opts: &Options,
    env: &[String],
    timeout: Duration,
    extra: &[String],
) -> Result<Guest> {
    let console = vm_dir.join("console.log");
    let results = vm_dir.join("results.log");
    let qemu_log = vm_dir.join("qemu.log");
    for file in [&console, &results] {
        std::fs::write(file, "").with_context(|| format!("cannot create {}", file.display()))?;
    }
    let args = qemu_args(
        accel,
        &kernel.vmlinuz,
        initramfs,
        opts.memory_mib,
        &console,
        &results,
        env,
        extra,
    );
    println!(
        "$ qemu-system-x86_64 {}",
        args.iter()
            .map(|a| crate::cmd::shell_quote(a))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let log = std::fs::File::create(&qemu_log)?;
    let mut command = Command::new("qemu-system-x86_64");
    command
        .args(&args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: prctl(2) is async-signal-safe; the child only sets its own death signal, so QEMU
    // dies with this process even if this process is killed before its Drop runs.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let started = Instant::now();
    let mut qemu = Qemu {
        child: command.spawn().context("cannot start qemu-system-x86_64")?,
    };
    let mut follower = Follower::new(&results);
    let mut boot_wall = None;
    let ending = loop {
        for line in follower.poll() {
            if line.starts_with("STRATA-VM BOOTED") && boot_wall.is_none() {
                boot_wall = Some(started.elapsed());
            }
            print_progress(&line);
        }
        match qemu.child.try_wait() {
            Ok(Some(status)) => break format!("qemu exited: {status}"),
            Ok(None) => {}
            Err(err) => break format!("cannot wait for qemu: {err}"),
        }
        if started.elapsed() > timeout {
            drop(qemu);
            break format!("killed qemu after the {} s timeout", timeout.as_secs());
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    for line in follower.poll() {
        print_progress(&line);
    }
    let qemu_text = std::fs::read_to_string(&qemu_log).unwrap_or_default();
    if !qemu_text.trim().is_empty() {
        println!("qemu said: {}", qemu_text.trim());
    }
    let total = started.elapsed();
    Ok(Guest {
        results: std::fs::read_to_string(&results).unwrap_or_default(),
        ending,
        boot_wall,
        scenarios_wall: total.saturating_sub(boot_wall.unwrap_or(total)),
    })
}

fn print_progress(line: &str) {
    if let Some(name) = line.strip_prefix("STRATA-START ") {
        println!("  … {name}");
    } else if let Some(rest) = line.strip_prefix("STRATA-SCENARIO ") {
        println!("  {rest}");
    } else if line.starts_with("STRATA-VM") || line.starts_with("STRATA-SCENARIOS") {
        println!("{line}");
    }
}

/// Reads the lines appended to a file since the last poll.
struct Follower {
    path: PathBuf,
    offset: u64,
    partial: String,
}

impl Follower {
    fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            offset: 0,
            partial: String::new(),
        }
    }

    fn poll(&mut self) -> Vec<String> {
        let mut bytes = Vec::new();
        if let Ok(mut file) = std::fs::File::open(&self.path) {
            if file.seek(SeekFrom::Start(self.offset)).is_ok() {
                let _ = file.read_to_end(&mut bytes);
            }
        }
        self.offset += bytes.len() as u64;
        self.partial.push_str(&String::from_utf8_lossy(&bytes));
        let mut lines = Vec::new();
        while let Some(i) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=i).collect();
            lines.push(line.trim_end_matches(['\r', '\n']).to_string());
        }
        lines
    }
}

/// KVM where asked, or (auto) where /dev/kvm exists and a probe boot under it succeeds. The
/// initramfs's `/init` answers `STRATA_VM_MODE=probe` with `STRATA-VM PROBE OK` and powers off.
pub(crate) fn choose_accel(
    opts: &Options,
    vm_dir: &Path,
    kernel: &Kernel,
    initramfs: &Path,
) -> Result<Accel> {
    match opts.accel {
        Accel::Tcg | Accel::Kvm => Ok(opts.accel),
        Accel::Auto if !Path::new("/dev/kvm").exists() => {
            println!("==> accelerator: no /dev/kvm, using TCG (software emulation)");
            Ok(Accel::Tcg)
        }
        Accel::Auto => {
            println!("==> accelerator: /dev/kvm exists; probing a KVM boot");
            let probe_dir = vm_dir.join("kvm-probe");
            std::fs::create_dir_all(&probe_dir)?;
            let env = ["STRATA_VM_MODE=probe".to_string()];
            let guest = boot(
                &probe_dir,
                kernel,
                initramfs,
                Accel::Kvm,
                opts,
                &env,
                Duration::from_secs(30),
                &[],
            )?;
            if guest.results.contains("STRATA-VM PROBE OK") {
                println!("KVM boots: using it");
                Ok(Accel::Kvm)
            } else {
                println!(
                    "KVM does not boot here ({}; see {}): using TCG",
                    guest.ending,
                    probe_dir.join("qemu.log").display()
                );
                Ok(Accel::Tcg)
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Results

#[derive(Debug, Default, PartialEq)]
pub(crate) struct Report {
    /// The guest's `STRATA-VM BOOTED` line (after the prefix).
    pub(crate) booted: Option<String>,
    pub(crate) scenarios: Vec<Scenario>,
    pub(crate) done: bool,
}

#[derive(Debug, PartialEq)]
pub(crate) struct Scenario {
    pub(crate) name: String,
    pub(crate) passed: bool,
    pub(crate) detail: String,
    pub(crate) log: Vec<String>,
}

pub(crate) fn parse_report(text: &str) -> Report {
    let mut report = Report::default();
    for line in text.lines().map(|l| l.trim_end_matches('\r')) {
        // Tolerate noise before a marker on the same line.
        let Some(at) = line.find("STRATA-") else {
            continue;
        };
        let line = &line[at..];
        if let Some(rest) = line.strip_prefix("STRATA-VM BOOTED") {
            report.booted = Some(rest.trim().to_string());
        } else if let Some(rest) = line.strip_prefix("STRATA-SCENARIO ") {
            let (verdict, rest) = rest.split_once(' ').unwrap_or((rest, ""));
            let passed = match verdict {
                "PASS" => true,
                "FAIL" => false,
                _ => continue,
            };
            let (name, detail) = rest.split_once(": ").unwrap_or((rest, ""));
            report.scenarios.push(Scenario {
                name: name.trim().to_string(),
                passed,
                detail: detail.to_string(),
                log: Vec::new(),
            });
        } else if let Some(rest) = line.strip_prefix("STRATA-LOG ") {
            let (name, text) = rest.split_once(": ").unwrap_or((rest, ""));
            if let Some(s) = report.scenarios.iter_mut().rev().find(|s| s.name == name) {
                s.log.push(text.to_string());
            }
        } else if line.starts_with("STRATA-SCENARIOS DONE") {
            report.done = true;
        }
    }
    report
}

pub(crate) fn summary(report: &Report) -> String {
    let mut text = String::from("vm-test scenarios:\n");
    for s in &report.scenarios {
        let word = if s.passed { "passed" } else { "FAILED" };
        text.push_str(&format!("  {word:<7} {}: {}\n", s.name, s.detail));
        for line in &s.log {
            text.push_str(&format!("          | {line}\n"));
        }
    }
    if report.scenarios.is_empty() {
        text.push_str("  (none reported)\n");
    }
    text
}

pub(crate) fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_versioned_kernel_package() {
        let text = "linux-image-amd64\n  Depends: linux-image-6.1.0-56-amd64\n";
        assert_eq!(
            parse_depends(text).as_deref(),
            Some("linux-image-6.1.0-56-amd64")
        );
        let alt = "linux-image-amd64\n |Depends: linux-image-6.1.0-9-amd64\n  Depends: x\n";
        assert_eq!(
            parse_depends(alt).as_deref(),
            Some("linux-image-6.1.0-9-amd64")
        );
        assert_eq!(parse_depends("linux-image-amd64\n"), None);
        assert_eq!(
            deb_package_name(Path::new(
                "/x/linux-image-6.1.0-56-amd64_6.1.192-2_amd64.deb"
            )),
            Some("linux-image-6.1.0-56-amd64")
        );
    }

    #[test]
    fn reads_libraries_from_ldd() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                    \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
        assert_eq!(
            parse_ldd(text).unwrap(),
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libgcc_s.so.1"),
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
        assert!(parse_ldd("\tlibfoo.so => not found\n").is_err());
        assert!(parse_ldd("\tnot a dynamic executable\n")
            .unwrap()
            .is_empty());
    }

    #[test]
    fn reads_module_dependencies() {
        let ko =
            b"\x7fELF...\0license=GPL\0depends=virtio,virtio_ring\0intree=Y\0name=virtio_rng\0";
        assert_eq!(module_depends(ko), ["virtio", "virtio_ring"]);
        assert!(module_depends(b"\0depends=\0name=x\0").is_empty());
        assert!(module_depends(b"nothing here").is_empty());
    }

    #[test]
    fn orders_modules_after_their_dependencies() {
        let dir = tempdir();
        let kernel = dir.join("kernel/drivers");
        std::fs::create_dir_all(&kernel).unwrap();
        std::fs::write(
            kernel.join("virtio-rng.ko"),
            b"\0depends=virtio,virtio_ring\0",
        )
        .unwrap();
        std::fs::write(kernel.join("virtio_ring.ko"), b"\0depends=virtio\0").unwrap();
        std::fs::write(kernel.join("virtio.ko"), b"\0depends=\0").unwrap();
        let order = module_load_order(&dir, &["virtio_rng"]).unwrap();
        let names: Vec<String> = order
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["virtio.ko", "virtio_ring.ko", "virtio-rng.ko"]);
        assert!(module_load_order(&dir, &["nope"]).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempdir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "xtask-vm-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn parses_the_results_port() {
        let text = "STRATA-VM BOOTED kernel=6.1.0-56-amd64 uptime=2.01\r\n\
                    STRATA-START a\n\
                    STRATA-SCENARIO PASS a: fine (1.0 s)\n\
                    noise STRATA-SCENARIO FAIL b: broke: badly (2.0 s)\n\
                    STRATA-LOG b: --- agent0 log ---\n\
                    STRATA-SCENARIO MAYBE c: ?\n\
                    STRATA-SCENARIOS DONE 1 passed, 1 failed\n";
        let report = parse_report(text);
        assert_eq!(
            report.booted.as_deref(),
            Some("kernel=6.1.0-56-amd64 uptime=2.01")
        );
        assert!(report.done);
        assert_eq!(
            report.scenarios,
            [
                Scenario {
                    name: "a".into(),
                    passed: true,
                    detail: "fine (1.0 s)".into(),
                    log: vec![],
                },
                Scenario {
                    name: "b".into(),
                    passed: false,
                    detail: "broke: badly (2.0 s)".into(),
                    log: vec!["--- agent0 log ---".into()],
                },
            ]
        );
        let empty = parse_report("garbage\n");
        assert_eq!(empty, Report::default());
        assert!(summary(&empty).contains("(none reported)"));
    }

    #[test]
    fn qemu_gets_two_serial_ports_and_the_scenarios() {
        let args = qemu_args(
            Accel::Tcg,
            Path::new("/k/vmlinuz"),
            Path::new("/k/initramfs.cpio"),
            2048,
            Path::new("/v/console.log"),
            Path::new("/v/results.log"),
            &guest_env(&["memory-oom".to_string(), "cpu-cfs-quota".to_string()]),
            &[],
        );
        let joined = args.join(" ");
        assert!(joined.starts_with("-accel tcg,thread=multi "), "{joined}");
        assert!(joined.contains("-serial file:/v/console.log -serial file:/v/results.log"));
        assert!(joined.contains("-no-reboot"));
        let append = &args[args.iter().position(|a| a == "-append").unwrap() + 1];
        assert!(append.starts_with("console=ttyS0 panic=-1"), "{append}");
        assert!(append.ends_with(" STRATA_SCENARIOS=memory-oom,cpu-cfs-quota"));
        assert!(guest_env(&[]).is_empty());
    }

    #[test]
    fn follower_returns_whole_lines_once() {
        let dir = tempdir();
        let path = dir.join("log");
        std::fs::write(&path, "one\ntw").unwrap();
        let mut f = Follower::new(&path);
        assert_eq!(f.poll(), ["one"]);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"o\r\nthree\n")
            .unwrap();
        assert_eq!(f.poll(), ["two", "three"]);
        assert!(f.poll().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
