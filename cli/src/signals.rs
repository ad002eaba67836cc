//! Ctrl-C and SIGTERM as one stream: the commands that stay attached (`run`, `up --foreground`)
//! treat both as "stop".

use anyhow::Context;
use tokio::signal::unix::{signal, Signal, SignalKind};

pub struct Interrupts {
    interrupt: Signal,
    terminate: Signal,
}

impl Interrupts {
    /// Installs the handlers; from now on SIGINT and SIGTERM no longer end the process by
    /// themselves.
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
        })
    }

    /// Waits for the next SIGINT or SIGTERM.
    pub async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}
