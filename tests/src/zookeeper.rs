//! A real ZooKeeper (Debian's `zookeeper` package, run with the installed Java) for the HA tests:
//! a standalone server on a free loopback port with a data dir of its own, stopped (by pid) and
//! its directory removed on drop. It can be stopped and started again on the same port and data,
//! as an operator restarting it would.

use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian's package puts the server's classes.
const CLASSPATH: &str = "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar";

pub struct ZooKeeper {
    dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
}

impl ZooKeeper {
    /// Starts a server and waits until it answers `ruok`.
    pub fn start() -> Result<Self> {
        if !std::path::Path::new("/usr/share/java/zookeeper.jar").exists() {
            bail!(
                "ZooKeeper is not installed (/usr/share/java/zookeeper.jar): apt-get install \
                 zookeeper (cargo xtask ci installs it)"
            );
        }
        let dir = tempfile::Builder::new().prefix("strata-zk-").tempdir()?;
        let port = crate::free_port();
        std::fs::create_dir(dir.path().join("data"))?;
        std::fs::write(
            dir.path().join("zoo.cfg"),
            format!(
                "tickTime=200\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={port}\n\
                 clientPortAddress=127.0.0.1\nminSessionTimeout=400\nmaxSessionTimeout=60000\n\
                 admin.enableServer=false\n4lw.commands.whitelist=ruok,srvr\n",
                dir.path().join("data").display()
            ),
        )?;
        let mut zk = ZooKeeper {
            dir,
            port,
            child: None,
        };
        zk.start_server()?;
        Ok(zk)
    }

    fn start_server(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("zookeeper.log"))?;
        let child = Command::new("java")
            .args([
                "-Xmx256m",
                "-Dzookeeper.jmx.log4j.disable=true",
                "-cp",
                CLASSPATH,
            ])
            .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
            .arg(self.dir.path().join("zoo.cfg"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("start ZooKeeper (java from Debian's zookeeper package)")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.ruok() {
                return Ok(());
            }
            if let Some(child) = &mut self.child {
                if let Ok(Some(status)) = child.try_wait() {
                    bail!("ZooKeeper exited ({status}):\n{}", self.log_tail());
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("ZooKeeper did not answer within 30 s:\n{}", self.log_tail())
    }

    fn ruok(&self) -> bool {
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let mut answer = String::new();
        stream.write_all(b"ruok").is_ok()
            && stream.read_to_string(&mut answer).is_ok()
            && answer == "imok"
    }

    /// `zk://127.0.0.1:PORT<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("zk://127.0.0.1:{}{path}", self.port)
    }

    /// Stops the server (SIGKILL, by pid).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and data.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.start_server()
    }

    pub fn log_tail(&self) -> String {
        let text =
            std::fs::read_to_string(self.dir.path().join("zookeeper.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for ZooKeeper {
    fn drop(&mut self) {
        self.stop();
    }
}
