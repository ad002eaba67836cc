//! Builds the BPF programs (`bpf/strata.bpf.c`) with clang's BPF target, and runs `bpf/layout.c`
//! on the host to record the C layout of `bpf/strata.h` for the layout test.
//!
//! C compiled by clang is the robust route on this toolchain: Rust BPF programs need nightly and a
//! bpf-linker matched to its LLVM (see DESIGN.md). clang and libbpf-dev come from Debian
//! (`cargo xtask ci` and `cargo xtask up` install them).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    let bpf = manifest.join("bpf");
    for file in ["strata.h", "strata.bpf.c", "layout.c"] {
        println!("cargo::rerun-if-changed={}", bpf.join(file).display());
    }
    println!("cargo::rerun-if-env-changed=CLANG");

    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".to_string());
    let arch_include = format!("/usr/include/{}-linux-gnu", arch());
    run(
        Command::new(&clang)
            .args(["-O2", "-g", "-Wall", "-Werror", "-target", "bpf"])
            .arg(format!("-I{arch_include}"))
            .arg("-c")
            .arg(bpf.join("strata.bpf.c"))
            .arg("-o")
            .arg(out.join("strata.bpf.o")),
        &format!(
            "{clang} (the BPF programs need clang and libbpf-dev: apt-get install clang libbpf-dev)"
        ),
    );

    let layout_bin = out.join("layout");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    run(
        Command::new(&cc)
            .args(["-Wall", "-Werror"])
            .arg(format!("-I{arch_include}"))
            .arg(bpf.join("layout.c"))
            .arg("-o")
            .arg(&layout_bin),
        &cc,
    );
    let output = Command::new(&layout_bin)
        .output()
        .unwrap_or_else(|err| fail(&format!("failed to run {}: {err}", layout_bin.display())));
    if !output.status.success() {
        fail(&format!(
            "{} failed: {}",
            layout_bin.display(),
            output.status
        ));
    }
    write(&out.join("c_layout.rs"), &output.stdout);
}

fn arch() -> String {
    match std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("x86_64") | Err(_) => "x86_64".to_string(),
        Ok(other) => other.to_string(),
    }
}

fn run(command: &mut Command, what: &str) {
    match command.status() {
        Ok(status) if status.success() => {}
        Ok(status) => fail(&format!("{command:?} failed: {status}")),
        Err(err) => fail(&format!("failed to run {what}: {err}")),
    }
}

fn write(path: &Path, contents: &[u8]) {
    if let Err(err) = std::fs::write(path, contents) {
        fail(&format!("failed to write {}: {err}", path.display()));
    }
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    println!("cargo::error={message}");
    std::process::exit(1);
}
