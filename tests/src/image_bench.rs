//! `strata-bench image`: image tasks.
//!
//! - pull and unpack throughput: a 64 MiB-layer image pushed to a local `docker-registry`,
//!   pulled by the store's registry client (MB/s of compressed bytes) and unpacked by its
//!   unpacker (MB/s of tar), then provisioned end to end into an empty store;
//! - start: with the busybox image already in the agent's store, p50/p99 from accept to
//!   TASK_RUNNING of a busybox task, one at a time through the real master and agent; beside
//!   `crun run` and `runc run` of a bundle of the same unpacked image (its layers as one overlay,
//!   the runtime spec Strata's supervisor builds), in the same run. crun and runc run in a child
//!   process confined as the isolation bench confines them (a private mount namespace whose
//!   `/sys/fs/cgroup` is a cgroup2 directory of its own, see `crate::isolation`).

use crate::framework::{task, TestFramework};
use crate::images::{self, ImageSpec, Layer, TarBuilder};
use crate::registry::{Auth, Registry};
use crate::Cluster;
use anyhow::{bail, ensure, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use strata_schema::{ContainerInfo, ImageType, TaskState};

pub struct Figures {
    pub pull_bytes: u64,
    pub pull: Duration,
    pub unpack_bytes: u64,
    pub unpack: Duration,
    pub provision: Duration,
    pub strata: Vec<Duration>,
    pub crun: Vec<Duration>,
    pub runc: Vec<Duration>,
    pub crun_version: String,
    pub runc_version: String,
}

/// A layer of `mib` MiB that compresses about 2:1 (half random, half zeros, per 4 KiB).
fn big_layer(mib: usize) -> Layer {
    let mut data = vec![0u8; mib << 20];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for chunk in data.chunks_mut(4096) {
        for b in chunk[..2048].iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
    }
    Layer::gzip(TarBuilder::new().file("big/blob", &data).finish())
}

pub fn run(bin_dir: &Path, runs: usize) -> Result<Figures> {
    ensure!(
        nix::unistd::geteuid().is_root(),
        "the image bench needs root"
    );
    std::env::set_var("STRATA_BIN_DIR", bin_dir);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let registry = Registry::start(Auth::Anonymous)?;
    let busybox = images::build(&ImageSpec::new(vec![
        images::busybox_layer()?,
        images::whiteout_layer(),
    ]));
    let big = images::build(&ImageSpec::new(vec![
        images::busybox_layer()?,
        big_layer(64),
    ]));
    runtime.block_on(async {
        images::push(&registry.addr, "bench/busybox", "1", &busybox, None).await?;
        images::push(&registry.addr, "bench/big", "1", &big, None).await
    })?;

    // Pull and unpack throughput, through the store's own client and unpacker.
    let work = tempfile::Builder::new()
        .prefix("strata-image-bench-")
        .tempdir()?;
    let config = strata_images::RegistryConfig {
        http_registries: vec![registry.addr.clone()],
        ..Default::default()
    };
    let client = strata_images::registry::Registry::new(&config).map_err(anyhow::Error::msg)?;
    let reference: oci_client::Reference = format!("{}/bench/big:1", registry.addr).parse()?;
    let (_, _, layers) = runtime.block_on(client.manifest(&reference))?;
    let layer = layers.last().context("the big image has no layers")?;
    let blob = work.path().join("blob");
    let started = Instant::now();
    let pull_bytes =
        runtime.block_on(client.blob(&reference, layer, u64::MAX, &blob, "layer", None))?;
    let pull = started.elapsed();
    let dest = work.path().join("unpacked");
    std::fs::create_dir(&dest)?;
    let started = Instant::now();
    let unpacked = strata_images::unpack::unpack(std::fs::File::open(&blob)?, &dest, None)?;
    let unpack = started.elapsed();
    let store = strata_images::Store::open(
        work.path().join("store"),
        work.path().join("containers"),
        config,
        runtime.handle().clone(),
    )?;
    std::fs::create_dir_all(work.path().join("containers/c"))?;
    let started = Instant::now();
    store.provision(
        &format!("{}/bench/big:1", registry.addr),
        &work.path().join("containers/c/image.json"),
    )?;
    let provision = started.elapsed();

    // Accept -> TASK_RUNNING of a busybox task, the image in the store.
    let name = format!("{}/bench/busybox:1", registry.addr);
    let cluster = Cluster::start_with_agent_flags(
        &["cpus:4;mem:4096"],
        &[],
        &["--image-registry-http", &registry.addr],
    )?;
    let strata = runtime.block_on(start_times(&cluster, &name, runs))?;
    let store_dir = cluster.agents[0].0.work_dir.join("images");
    let layer_dirs: Vec<PathBuf> = busybox
        .layers
        .iter()
        .map(|(d, ..)| {
            store_dir
                .join("layers")
                .join(d.trim_start_matches("sha256:"))
        })
        .collect();

    // crun and runc, in a confined child.
    let output = Command::new(std::env::current_exe()?)
        .arg("image-oci-runtimes")
        .arg(runs.to_string())
        .args(&layer_dirs)
        .stderr(Stdio::inherit())
        .output()
        .context("run the crun/runc child")?;
    drop(cluster);
    if !output.status.success() {
        bail!("the crun/runc child failed ({})", output.status);
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut crun = Vec::new();
    let mut runc = Vec::new();
    let mut crun_version = String::new();
    let mut runc_version = String::new();
    for line in text.lines() {
        let mut words = line.splitn(2, ' ');
        match (words.next(), words.next()) {
            (Some("crun"), Some(ns)) => crun.push(Duration::from_nanos(ns.parse()?)),
            (Some("runc"), Some(ns)) => runc.push(Duration::from_nanos(ns.parse()?)),
            (Some("crun-version"), Some(v)) => crun_version = v.to_string(),
            (Some("runc-version"), Some(v)) => runc_version = v.to_string(),
            _ => {}
        }
    }
    // Percentiles are read from sorted samples.
    crun.sort();
    runc.sort();
    Ok(Figures {
        pull_bytes,
        pull,
        unpack_bytes: unpacked.size,
        unpack,
        provision,
        strata,
        crun,
        runc,
        crun_version,
        runc_version,
    })
}

async fn start_times(cluster: &Cluster, image: &str, runs: usize) -> Result<Vec<Duration>> {
    let mut fw = TestFramework::subscribe(&cluster.master.addr(), "bench-image").await?;
    let mut out = Vec::new();
    // One warm-up task pulls the image into the store.
    for i in 0..runs + 1 {
        let offer = fw
            .offer_with("cpus:0.1;mem:32", Duration::from_secs(30))
            .await?;
        let id = format!("image-{i}");
        let mut t = task(&id, &offer.agent_id, "cpus:0.1;mem:32", "true");
        t.command = strata_schema::CommandInfo::argv(vec!["/bin/true".into()]);
        t.container = Some(ContainerInfo::image(ImageType::Docker, image));
        let accepted = Instant::now();
        fw.launch(&offer, vec![t]).await?;
        let status = fw
            .wait_for(&id, Duration::from_secs(60), |s| {
                s == TaskState::Running || s.is_terminal()
            })
            .await?;
        let index = fw
            .updates
            .iter()
            .position(|u| u.task_id.as_str() == id && u.state == TaskState::Running);
        let Some(index) = index else {
            bail!("task {id} never ran: {status:?}\n{}", cluster.logs());
        };
        let elapsed = fw.arrivals[index].duration_since(accepted);
        let end = fw.wait_terminal(&id, Duration::from_secs(60)).await?;
        ensure!(end.state == TaskState::Finished, "task {id}: {end:?}");
        if i > 0 {
            out.push(elapsed);
        }
    }
    out.sort();
    Ok(out)
}

/// The child: enters the confined cgroup view, mounts the image's layers as one overlay, and
/// times `crun run` and `runc run` of a bundle with Strata's runtime spec, alternating.
/// Prints `crun <ns>` / `runc <ns>` lines.
pub fn oci_runtimes_child(runs: usize, layers: &[PathBuf]) -> Result<()> {
    let host_mount = crate::cgroup2_mount().context("no cgroup2 mount")?;
    let work = tempfile::Builder::new()
        .prefix("strata-image-oci-")
        .tempdir()?;
    let mut cgroup = crate::isolation::BenchCgroup::create(&host_mount)?;
    let result = (|| -> Result<()> {
        cgroup.enter_view(&work.path().join("staging"))?;
        let rootfs = work.path().join("rootfs");
        let dirs = strata_images::overlay::RootfsDirs {
            layers_root: PathBuf::from("/"),
            layers: layers
                .iter()
                .map(|l| l.to_string_lossy().into_owned())
                .collect(),
            upper: work.path().join("upper"),
            work: work.path().join("work"),
            target: rootfs.clone(),
        };
        strata_images::overlay::mount_rootfs(&dirs)?;
        let sandbox = work.path().join("sandbox");
        std::fs::create_dir_all(&sandbox)?;
        for name in ["crun", "runc"] {
            let bundle = work.path().join(format!("{name}-bundle"));
            std::fs::create_dir_all(&bundle)?;
            std::fs::create_dir_all(work.path().join(format!("{name}-state")))?;
            let cgroups_path = format!("/{name}");
            let argv = ["/bin/true".to_string()];
            let env = [("PATH".to_string(), "/bin".to_string())];
            let binds = [strata_images::runtime::Bind {
                source: sandbox.clone(),
                destination: strata_images::runtime::SANDBOX.into(),
                read_only: false,
            }];
            let spec = strata_images::runtime::build(&strata_images::runtime::SpecInput {
                rootfs: &rootfs,
                argv: &argv,
                env: &env,
                cwd: strata_images::runtime::SANDBOX,
                user: &strata_images::user::ResolvedUser::ROOT,
                hostname: "bench",
                namespaces: strata_images::runtime::Namespaces {
                    pid: true,
                    uts: true,
                    ipc: true,
                    net: false,
                },
                cgroups_path: &cgroups_path,
                binds: &binds,
                tmp: None,
                bounding_capabilities: None,
                no_new_privs: false,
                rlimits: &[],
            })
            .map_err(anyhow::Error::msg)?;
            spec.save(bundle.join("config.json"))?;
            let version = Command::new(name).arg("--version").output()?;
            println!(
                "{name}-version {}",
                String::from_utf8_lossy(&version.stdout)
                    .lines()
                    .next()
                    .unwrap_or(name)
            );
        }
        for i in 0..runs + 2 {
            for name in ["crun", "runc"] {
                let mut cmd = Command::new(name);
                cmd.arg("--root")
                    .arg(work.path().join(format!("{name}-state")));
                if name == "crun" {
                    cmd.arg("--cgroup-manager=cgroupfs");
                }
                cmd.arg("run")
                    .arg("--bundle")
                    .arg(work.path().join(format!("{name}-bundle")))
                    .arg(format!("{name}-{i}"))
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped());
                let started = Instant::now();
                let out = cmd.output()?;
                let elapsed = started.elapsed();
                if !out.status.success() {
                    bail!(
                        "`{name} run` failed ({}): {}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
                if i >= 2 {
                    println!("{name} {}", elapsed.as_nanos());
                }
            }
        }
        strata_images::overlay::unmount_rootfs(&rootfs);
        Ok(())
    })();
    cgroup.remove();
    result
}
