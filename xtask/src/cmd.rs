//! Running external commands, each echoed (`$ cargo …`) before it runs.

use anyhow::{bail, Context};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, Clone)]
pub struct Cmd {
    program: OsString,
    args: Vec<String>,
    dir: Option<PathBuf>,
    env: Vec<(String, String)>,
}

impl Cmd {
    pub fn new(program: impl Into<OsString>, args: &[&str]) -> Self {
        Self {
            program: program.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            dir: None,
            env: Vec::new(),
        }
    }

    /// `cargo` as the one running xtask (`$CARGO`), with `args`, in the workspace root.
    pub fn cargo(args: &[&str]) -> Self {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        Self::new(cargo, args).dir(&crate::workspace_root())
    }

    pub fn args(mut self, args: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn dir(mut self, dir: &Path) -> Self {
        self.dir = Some(dir.to_path_buf());
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// The command line as a shell would take it, for echoing.
    pub fn display(&self) -> String {
        let program = Path::new(&self.program);
        // `$CARGO` is an absolute path into the toolchain; show the familiar name.
        let name = match program.file_name() {
            Some(name) if name == "cargo" => "cargo".to_string(),
            _ => program.display().to_string(),
        };
        std::iter::once(name)
            .chain(self.args.iter().map(|a| shell_quote(a)))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.args);
        if let Some(dir) = &self.dir {
            command.current_dir(dir);
        }
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    /// Echoes and runs the command with inherited stdio; fails unless it exits 0.
    pub fn run(&self) -> anyhow::Result<()> {
        println!("$ {}", self.display());
        let status = self
            .command()
            .status()
            .with_context(|| format!("cannot run `{}`", self.display()))?;
        if !status.success() {
            bail!("`{}` failed ({status})", self.display());
        }
        Ok(())
    }

    /// Runs the command quietly (not echoed) and returns its exit status and stdout.
    pub fn capture(&self) -> anyhow::Result<(bool, String)> {
        let output = self
            .command()
            .stderr(std::process::Stdio::null())
            .output()
            .with_context(|| format!("cannot run `{}`", self.display()))?;
        Ok((
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        ))
    }

    /// Echoes the command and replaces this process with it.
    pub fn exec(&self) -> anyhow::Error {
        use std::os::unix::process::CommandExt;
        println!("$ {}", self.display());
        let err = self.command().exec();
        anyhow::Error::new(err).context(format!("cannot run `{}`", self.display()))
    }
}

/// Quotes an argument for a POSIX shell when it needs quoting.
pub fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+%".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("--check"), "--check");
        assert_eq!(shell_quote("${Status}"), "'${Status}'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn display() {
        let cmd = Cmd::new("/root/.cargo/bin/cargo", &["fmt", "--all", "--", "--check"]);
        assert_eq!(cmd.display(), "cargo fmt --all -- --check");
        let cmd = Cmd::new("dpkg-query", &["-W", "-f=${Status}", "capnproto"]);
        assert_eq!(cmd.display(), "dpkg-query -W '-f=${Status}' capnproto");
    }

    #[test]
    fn runs_and_reports_failure() {
        assert!(Cmd::new("true", &[]).run().is_ok());
        let err = Cmd::new("false", &[]).run().unwrap_err().to_string();
        assert!(err.contains("`false` failed"), "{err}");
        assert_eq!(
            Cmd::new("echo", &["hi"]).capture().unwrap(),
            (true, "hi\n".to_string())
        );
    }
}
