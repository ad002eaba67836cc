//! `cgroups/io`: a block I/O share, and bandwidth caps on request.
//!
//! - `io.weight` = `default <w>` where `<w>` is the task's CPU weight (see
//!   [`crate::cgroups::cpu::weight`]): a task's share of a contended disk follows its share of
//!   the CPUs. Written where the file exists (it needs an I/O cost model such as iocost).
//! - `io.max` = `<MAJ:MIN> rbps=… wbps=… riops=… wiops=…` on every device of the agent's
//!   `--cgroups-io-devices` (default: the disk holding the work dir), when the task has one of
//!   the scalar resources (absent ones are `max`):
//!
//!   | resource           | `io.max` key | unit            |
//!   |--------------------|--------------|-----------------|
//!   | `disk_read_bps`    | `rbps`       | bytes/second    |
//!   | `disk_write_bps`   | `wbps`       | bytes/second    |
//!   | `disk_read_iops`   | `riops`      | operations/second |
//!   | `disk_write_iops`  | `wiops`      | operations/second |
//!
//!   The agent must offer them (e.g. `--resources 'disk_read_bps:1000000000;…'`) for tasks to
//!   get them. A task asking for bandwidth on an agent that knows no device fails to launch: a
//!   limit is never claimed and left unenforced.
//!
//! `usage` reports `io.stat` as `blkio_statistics`.

use super::write;
use crate::isolator::{Container, Isolator, IsolatorError};
use crate::launch::Launch;
use crate::statistics::{parse_io_stat, BlkioStatistics, ResourceStatistics};
use std::fmt;
use std::path::Path;
use std::str::FromStr;
use strata_schema::Resources;

pub const NAME: &str = "cgroups/io";

/// The disk bandwidth resources and their `io.max` keys.
pub const RESOURCES: [(&str, &str); 4] = [
    ("disk_read_bps", "rbps"),
    ("disk_write_bps", "wbps"),
    ("disk_read_iops", "riops"),
    ("disk_write_iops", "wiops"),
];

/// A block device number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Device {
    pub major: u32,
    pub minor: u32,
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

impl FromStr for Device {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not a block device number MAJOR:MINOR (e.g. 8:0)");
        let (major, minor) = s.trim().split_once(':').ok_or_else(bad)?;
        Ok(Device {
            major: major.parse().map_err(|_| bad())?,
            minor: minor.parse().map_err(|_| bad())?,
        })
    }
}

/// Parses `--cgroups-io-devices`: comma-separated `MAJOR:MINOR`.
pub fn parse_devices(text: &str) -> Result<Vec<Device>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(Device::from_str)
        .collect()
}

/// The whole disk holding `path` (io.max takes disks, not partitions), looked up under `sysfs`
/// (normally `/sys`); `None` when `path` is not on a block device (tmpfs, overlay, …).
pub fn disk_of(path: &Path, sysfs: &Path) -> Option<Device> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(path).ok()?.dev();
    let device = Device {
        major: libc::major(dev),
        minor: libc::minor(dev),
    };
    if device.major == 0 {
        return None;
    }
    let node = sysfs.join("dev/block").join(device.to_string());
    let node = std::fs::canonicalize(&node).ok()?;
    if !node.join("partition").exists() {
        return Some(device);
    }
    std::fs::read_to_string(node.parent()?.join("dev"))
        .ok()?
        .parse()
        .ok()
}

#[derive(Debug)]
pub struct IoIsolator {
    /// The devices `io.max` limits apply to.
    pub devices: Vec<Device>,
}

/// The `io.max` settings of `resources` (`rbps=… wbps=… riops=… wiops=…`), or `None` when it has
/// no disk bandwidth resource.
pub fn io_max_settings(resources: &Resources) -> Option<String> {
    let values: Vec<(&str, f64)> = RESOURCES
        .iter()
        .map(|(name, key)| (*key, resources.scalar(name).floor()))
        .collect();
    if values.iter().all(|(_, v)| *v < 1.0) {
        return None;
    }
    Some(
        values
            .iter()
            .map(|(key, v)| {
                if *v >= 1.0 {
                    format!("{key}={}", *v as u64)
                } else {
                    format!("{key}=max")
                }
            })
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// Whether the container's `io.max` holds any limit (a line per limited device).
fn has_limits(container: &Container) -> bool {
    container
        .cgroup
        .read_optional("io.max")
        .ok()
        .flatten()
        .is_some_and(|text| {
            text.lines()
                .any(|l| l.contains('=') && !l.trim().is_empty())
        })
}

impl IoIsolator {
    fn apply(
        &self,
        container: &Container,
        resources: &Resources,
        updating: bool,
    ) -> Result<(), IsolatorError> {
        let cgroup = container.cgroup;
        if cgroup.has("io.weight") {
            let weight = super::cpu::weight(resources.cpus());
            write(NAME, cgroup, "io.weight", &format!("default {weight}"))?;
        }
        let requested = io_max_settings(resources);
        if self.devices.is_empty() {
            if requested.is_none() {
                return Ok(());
            }
            return Err(IsolatorError::Invalid {
                isolator: NAME,
                message: "the task asks for disk bandwidth but the agent knows no block device \
                          to limit (its work dir is not on a block device): start it with \
                          --cgroups-io-devices MAJOR:MINOR"
                    .to_string(),
            });
        }
        let settings = match requested {
            Some(settings) => settings,
            // A fresh cgroup has no limits; an updated one loses those it had.
            None if updating && has_limits(container) => {
                "rbps=max wbps=max riops=max wiops=max".to_string()
            }
            None => return Ok(()),
        };
        for device in &self.devices {
            write(NAME, cgroup, "io.max", &format!("{device} {settings}"))?;
        }
        Ok(())
    }
}

impl Isolator for IoIsolator {
    fn name(&self) -> &'static str {
        NAME
    }

    fn controller(&self) -> Option<&'static str> {
        Some("io")
    }

    fn prepare(&self, container: &Container, _launch: &mut Launch) -> Result<(), IsolatorError> {
        self.apply(container, container.resources, false)
    }

    fn update(&self, container: &Container, resources: &Resources) -> Result<(), IsolatorError> {
        self.apply(container, resources, true)
    }

    fn usage(
        &self,
        container: &Container,
        stats: &mut ResourceStatistics,
    ) -> Result<(), IsolatorError> {
        let text = container
            .cgroup
            .read_optional("io.stat")
            .map_err(IsolatorError::cgroup(NAME))?;
        if let Some(text) = text {
            stats.blkio_statistics = Some(BlkioStatistics::from(parse_io_stat(&text).as_slice()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::cgroups::testing::FakeCgroup;

    const SDA: Device = Device { major: 8, minor: 0 };

    #[test]
    fn parses_device_numbers() {
        assert_eq!(
            parse_devices("8:0, 259:0").unwrap(),
            vec![
                SDA,
                Device {
                    major: 259,
                    minor: 0
                }
            ]
        );
        assert_eq!(parse_devices("").unwrap(), vec![]);
        let err = parse_devices("8:0,sda").unwrap_err();
        assert_eq!(
            err,
            "\"sda\" is not a block device number MAJOR:MINOR (e.g. 8:0)"
        );
    }

    #[test]
    fn io_max_lines_name_every_key() {
        assert_eq!(io_max_settings(&Resources::parse("cpus:1").unwrap()), None);
        assert_eq!(
            io_max_settings(&Resources::parse("cpus:1;disk_read_bps:1048576").unwrap()).unwrap(),
            "rbps=1048576 wbps=max riops=max wiops=max"
        );
        assert_eq!(
            io_max_settings(
                &Resources::parse(
                    "disk_read_bps:1000;disk_write_bps:2000;disk_read_iops:10;disk_write_iops:20"
                )
                .unwrap()
            )
            .unwrap(),
            "rbps=1000 wbps=2000 riops=10 wiops=20"
        );
    }

    #[test]
    fn prepare_writes_weight_and_io_max_per_device() {
        let fake = FakeCgroup::new(
            &[("io.weight", ""), ("io.max", "")],
            "cpus:1;disk_write_bps:5242880",
        );
        IoIsolator { devices: vec![SDA] }
            .prepare(&fake.container(), &mut Launch::default())
            .unwrap();
        assert_eq!(fake.file("io.weight"), "default 39");
        assert_eq!(
            fake.file("io.max"),
            "8:0 rbps=max wbps=5242880 riops=max wiops=max"
        );

        // Without bandwidth resources io.max is not touched; without io.weight only io.max.
        let fake = FakeCgroup::new(&[("io.max", "")], "cpus:1");
        IoIsolator { devices: vec![SDA] }
            .prepare(&fake.container(), &mut Launch::default())
            .unwrap();
        assert_eq!(fake.file("io.max"), "");
    }

    #[test]
    fn update_clears_limits_that_are_gone() {
        let fake = FakeCgroup::new(&[("io.max", "")], "cpus:1");
        let iso = IoIsolator { devices: vec![SDA] };
        // Nothing to clear: nothing written.
        iso.update(&fake.container(), &Resources::parse("cpus:1").unwrap())
            .unwrap();
        assert_eq!(fake.file("io.max"), "");
        std::fs::write(
            fake.dir.path().join("io.max"),
            "8:0 rbps=1000 wbps=max riops=max wiops=max\n",
        )
        .unwrap();
        iso.update(&fake.container(), &Resources::parse("cpus:1").unwrap())
            .unwrap();
        // (The fake file keeps the tail of the longer earlier contents.)
        assert!(fake
            .file("io.max")
            .starts_with("8:0 rbps=max wbps=max riops=max wiops=max"));
        // No device: nothing to clear either.
        IoIsolator { devices: vec![] }
            .update(&fake.container(), &Resources::parse("cpus:1").unwrap())
            .unwrap();
    }

    #[test]
    fn bandwidth_without_a_device_fails_clearly() {
        let fake = FakeCgroup::new(&[("io.max", "")], "cpus:1;disk_read_bps:1000");
        let err = IoIsolator { devices: vec![] }
            .prepare(&fake.container(), &mut Launch::default())
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cgroups/io: the task asks for disk bandwidth"),
            "{err}"
        );
    }

    #[test]
    fn usage_reports_io_stat() {
        let fake = FakeCgroup::new(
            &[(
                "io.stat",
                "8:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n",
            )],
            "cpus:1",
        );
        let mut stats = ResourceStatistics::default();
        IoIsolator { devices: vec![SDA] }
            .usage(&fake.container(), &mut stats)
            .unwrap();
        let blkio = stats.blkio_statistics.unwrap();
        assert_eq!(blkio.throttling.len(), 1);
        assert_eq!(blkio.throttling[0].io_service_bytes[3].value, 300);
    }

    #[test]
    fn finds_the_disk_of_a_partition_in_sysfs() {
        // A fake sysfs where the device of the temp dir is a partition of a disk.
        let dir = tempfile::tempdir().unwrap();
        use std::os::unix::fs::MetadataExt;
        let dev = std::fs::metadata(dir.path()).unwrap().dev();
        let (major, minor) = (libc::major(dev), libc::minor(dev));
        if major == 0 {
            // The temp dir is on tmpfs/overlay: no block device at all.
            assert_eq!(disk_of(dir.path(), Path::new("/sys")), None);
            return;
        }
        let sysfs = dir.path().join("sys");
        let disk = sysfs.join("devices/virtual/disk");
        let part = disk.join("part");
        std::fs::create_dir_all(&part).unwrap();
        std::fs::write(disk.join("dev"), "7:0\n").unwrap();
        std::fs::write(part.join("partition"), "1\n").unwrap();
        std::fs::create_dir_all(sysfs.join("dev/block")).unwrap();
        std::os::unix::fs::symlink(&part, sysfs.join(format!("dev/block/{major}:{minor}")))
            .unwrap();
        assert_eq!(
            disk_of(dir.path(), &sysfs),
            Some(Device { major: 7, minor: 0 })
        );
        // A whole disk is its own answer.
        std::fs::remove_file(part.join("partition")).unwrap();
        assert_eq!(disk_of(dir.path(), &sysfs), Some(Device { major, minor }));
    }
}
