//! The daemons' configuration in three layers over one clap definition. Every long flag of a
//! daemon is also a key of its TOML config file (`work_dir = "/srv/strata"`; `-` and `_` alike)
//! and, where the flag names one, a `STRATA_*` environment variable. The command line wins over
//! the environment, which wins over the file, which wins over the flag's default.
//!
//! Nothing here lists flags: the keys are the long names (and aliases) of clap's `Command`, so a
//! flag added to a daemon's config struct is a config key at once. The file's entries become
//! arguments (`--flag=value`) placed before the real ones, each value first checked by the
//! flag's own parser so that an error names the file and the key.
//!
//! ```text
//! argv ─▶ clap, errors ignored ─▶ which flags argv and the environment set; which file to read
//!      ─▶ TOML table ─▶ key → flag, value → `--flag=value`, checked by the flag's parser
//!      ─▶ argv' = [binary, file's arguments (those argv and env left unset)…, argv…]
//!      ─▶ clap, strict ─▶ the config struct
//! ```

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, Command};
use std::any::TypeId;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use toml::Value;

/// The id of the flag that names the config file (`--config`, `STRATA_CONFIG`): a
/// `PathBuf`-valued argument of the config struct.
pub const CONFIG_ARG: &str = "config";

/// Exit status for bad flags, environment or config file (clap's usage-error status). The
/// systemd units do not restart a daemon that exits with it.
pub const USAGE_EXIT: u8 = 2;

/// A parsed config and where its values came from.
#[derive(Debug)]
pub struct Layered<T> {
    pub config: T,
    /// The config file that was read; `None` when the default file does not exist.
    pub file: Option<PathBuf>,
    /// The file's keys that took effect.
    pub applied: Vec<String>,
    /// The file's keys that a flag or an environment variable overrode.
    pub overridden: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum FlagsError {
    /// Bad flags or environment variables, or `--help` / `--version` (clap renders these).
    #[error("{0}")]
    Clap(#[from] clap::Error),
    #[error("cannot read the config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid TOML: {message}")]
    Toml { path: PathBuf, message: String },
    #[error("{path}: unknown key `{key}` (the keys are the long flags, e.g. {known})")]
    UnknownKey {
        path: PathBuf,
        key: String,
        known: String,
    },
    #[error("{path}: `{key}` {problem}")]
    BadValue {
        path: PathBuf,
        key: String,
        problem: String,
    },
}

impl FlagsError {
    /// Prints the error (or clap's help or version text) and exits: 0 after `--help` and
    /// `--version`, [`USAGE_EXIT`] otherwise.
    pub fn exit(&self, bin: &str) -> ! {
        match self {
            FlagsError::Clap(err) => err.exit(),
            err => {
                eprintln!("{bin}: error: {err}");
                std::process::exit(i32::from(USAGE_EXIT))
            }
        }
    }
}

/// Parses `T` from this process's arguments and environment over the config file (`--config`,
/// else `STRATA_CONFIG`, else `default_file`, which may be missing).
pub fn parse<T: clap::Parser>(default_file: &Path) -> Result<Layered<T>, FlagsError> {
    parse_from(std::env::args_os(), default_file)
}

/// [`parse`] with explicit arguments (the first is the binary's name).
pub fn parse_from<T, I, S>(args: I, default_file: &Path) -> Result<Layered<T>, FlagsError>
where
    T: clap::Parser,
    I: IntoIterator<Item = S>,
    S: Into<OsString> + Clone,
{
    layered(args, default_file, None)
}

/// [`parse`] for a command of a daemon's binary that takes some of the daemon's flags (a
/// maintenance subcommand such as `strata-agent cleanup-bpf`), read over the daemon's own config
/// file with the same layering. `daemon` is the daemon's command: the file's keys of its flags
/// that `T` lacks are the daemon's business and left alone (neither applied nor checked); a key
/// that is no flag of `daemon` is still an error. `T` needs the [`CONFIG_ARG`] flag too.
pub fn parse_part<T: clap::Parser>(
    daemon: &Command,
    default_file: &Path,
) -> Result<Layered<T>, FlagsError> {
    parse_part_from(daemon, std::env::args_os(), default_file)
}

/// [`parse_part`] with explicit arguments (the first is the command's name).
pub fn parse_part_from<T, I, S>(
    daemon: &Command,
    args: I,
    default_file: &Path,
) -> Result<Layered<T>, FlagsError>
where
    T: clap::Parser,
    I: IntoIterator<Item = S>,
    S: Into<OsString> + Clone,
{
    layered(args, default_file, Some(daemon))
}

/// [`parse_from`], or [`parse_part_from`] when the file is `daemon`'s.
fn layered<T, I, S>(
    args: I,
    default_file: &Path,
    daemon: Option<&Command>,
) -> Result<Layered<T>, FlagsError>
where
    T: clap::Parser,
    I: IntoIterator<Item = S>,
    S: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let cmd = T::command();
    // What the command line and the environment set, and the config file they name, without
    // failing yet on anything the file may still supply (a required flag) or that the strict
    // parse below reports anyway.
    let first = cmd
        .clone()
        .ignore_errors(true)
        .try_get_matches_from(&args)?;
    let from_outside = |id: &str| {
        matches!(
            first.value_source(id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        )
    };
    let named = if from_outside(CONFIG_ARG) {
        first
            .try_get_one::<PathBuf>(CONFIG_ARG)
            .ok()
            .flatten()
            .cloned()
    } else {
        None
    };
    let (path, explicit) = match named {
        Some(path) => (path, true),
        None => (default_file.to_path_buf(), false),
    };
    let mut layered = Layered {
        config: (),
        file: None,
        applied: Vec::new(),
        overridden: Vec::new(),
    };
    let mut from_file: Vec<OsString> = Vec::new();
    match std::fs::read_to_string(&path) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound && !explicit => {}
        Err(source) => return Err(FlagsError::Read { path, source }),
        Ok(text) => {
            for entry in entries(&cmd, daemon, &path, &text)? {
                if from_outside(entry.arg_id.as_str()) {
                    layered.overridden.push(entry.key);
                } else {
                    from_file.extend(entry.args.into_iter().map(OsString::from));
                    layered.applied.push(entry.key);
                }
            }
            layered.file = Some(path);
        }
    }
    let mut argv = Vec::with_capacity(args.len() + from_file.len());
    argv.extend(args.first().cloned());
    argv.extend(from_file);
    argv.extend(args.iter().skip(1).cloned());
    // The command line comes after the file's arguments and overrides them where both set a
    // flag (only possible where the first pass could not read the command line's value).
    let mut matches = cmd.args_override_self(true).try_get_matches_from(argv)?;
    let config = T::from_arg_matches_mut(&mut matches)?;
    Ok(Layered {
        config,
        file: layered.file,
        applied: layered.applied,
        overridden: layered.overridden,
    })
}

/// One key of the config file, as arguments.
#[derive(Debug)]
struct Entry {
    /// The key as written in the file.
    key: String,
    arg_id: String,
    args: Vec<String>,
}

/// The file's keys, each turned into arguments and checked by its flag's parser. With `daemon`
/// (the file is that command's), keys of its flags that `cmd` lacks are skipped.
fn entries(
    cmd: &Command,
    daemon: Option<&Command>,
    path: &Path,
    text: &str,
) -> Result<Vec<Entry>, FlagsError> {
    let table: toml::Table = text
        .parse()
        .map_err(|err: toml::de::Error| FlagsError::Toml {
            path: path.to_path_buf(),
            message: err.to_string().trim_end().to_string(),
        })?;
    // A copy of the command that requires nothing and reads no environment: it checks one
    // value at a time.
    let mut probe = cmd
        .clone()
        .mut_args(|arg| arg.required(false).env(None::<&'static str>));
    let bad = |key: &str, problem: String| FlagsError::BadValue {
        path: path.to_path_buf(),
        key: key.to_string(),
        problem,
    };
    let mut out: Vec<Entry> = Vec::new();
    for (key, value) in &table {
        if key == CONFIG_ARG {
            return Err(bad(
                key,
                "cannot be set in a config file (use --config or STRATA_CONFIG)".to_string(),
            ));
        }
        let Some((arg, long)) = find_arg(cmd, key) else {
            if daemon.is_some_and(|daemon| find_arg(daemon, key).is_some()) {
                continue;
            }
            return Err(FlagsError::UnknownKey {
                path: path.to_path_buf(),
                key: key.clone(),
                known: known_keys(daemon.unwrap_or(cmd)).join(", "),
            });
        };
        let arg_id = arg.get_id().as_str().to_string();
        if let Some(earlier) = out.iter().find(|e| e.arg_id == arg_id) {
            return Err(bad(
                key,
                format!("sets the same flag as `{}` (--{long})", earlier.key),
            ));
        }
        let args = to_args(arg, long, value).map_err(|problem| bad(key, problem))?;
        for one in &args {
            if let Err(err) = probe.try_get_matches_from_mut([cmd.get_name(), one.as_str()]) {
                return Err(bad(key, format!("has {}", clap_message(&err))));
            }
        }
        out.push(Entry {
            key: key.clone(),
            arg_id,
            args,
        });
    }
    Ok(out)
}

/// The argument a key names: by its long name or an alias, `-` and `_` alike.
fn find_arg<'a>(cmd: &'a Command, key: &str) -> Option<(&'a Arg, &'a str)> {
    let wanted = key.replace('_', "-");
    cmd.get_arguments()
        .filter(|arg| is_key(arg))
        .find_map(|arg| {
            let long = arg.get_long()?;
            let mut names = std::iter::once(long).chain(arg.get_all_aliases().unwrap_or_default());
            names
                .any(|name| name.replace('_', "-") == wanted)
                .then_some((arg, long))
        })
}

/// Whether a flag is also a config key: every long flag but help, version and `--config`.
fn is_key(arg: &Arg) -> bool {
    arg.get_long().is_some() && arg.get_id() != CONFIG_ARG && !is_help_or_version(arg)
}

fn is_help_or_version(arg: &Arg) -> bool {
    matches!(
        arg.get_action(),
        ArgAction::Help | ArgAction::HelpShort | ArgAction::HelpLong | ArgAction::Version
    )
}

/// The environment variable of a long flag: `STRATA_` and the flag in upper snake case
/// (`--work-dir` → `STRATA_WORK_DIR`).
pub fn env_name(long: &str) -> String {
    format!("STRATA_{}", long.replace('-', "_").to_ascii_uppercase())
}

/// The long flags of a command (help and version aside) that do not read their [`env_name`],
/// one line each naming the flag and what it reads instead. The daemons' tests keep this empty.
pub fn env_mismatches(cmd: &Command) -> Vec<String> {
    cmd.get_arguments()
        .filter(|arg| !is_help_or_version(arg))
        .filter_map(|arg| {
            let long = arg.get_long()?;
            let wanted = env_name(long);
            match arg.get_env() {
                Some(env) if env == wanted.as_str() => None,
                Some(env) => Some(format!(
                    "--{long} reads {}, not {wanted}",
                    env.to_string_lossy()
                )),
                None => Some(format!(
                    "--{long} reads no environment variable (expected {wanted})"
                )),
            }
        })
        .collect()
}

/// Every config key of a command, in `snake_case`, in the order of its flags.
pub fn known_keys(cmd: &Command) -> Vec<String> {
    cmd.get_arguments()
        .filter(|arg| is_key(arg))
        .filter_map(|arg| arg.get_long())
        .map(|long| long.replace('-', "_"))
        .collect()
}

/// A TOML value as the arguments that set it.
fn to_args(arg: &Arg, long: &str, value: &Value) -> Result<Vec<String>, String> {
    match arg.get_action() {
        action @ (ArgAction::SetTrue | ArgAction::SetFalse) => match value {
            Value::Boolean(on) => {
                let give_flag = *on == matches!(action, ArgAction::SetTrue);
                Ok(if give_flag {
                    vec![format!("--{long}")]
                } else {
                    Vec::new()
                })
            }
            other => Err(format!("must be true or false, not {}", describe(other))),
        },
        ArgAction::Count => match value {
            Value::Integer(n) if (0..=255).contains(n) => {
                Ok(vec![format!("--{long}"); usize::try_from(*n).unwrap_or(0)])
            }
            other => Err(format!(
                "must be a count from 0 to 255, not {}",
                describe(other)
            )),
        },
        ArgAction::Append => match value {
            Value::Array(items) => items
                .iter()
                .map(|item| scalar(arg, item).map(|s| format!("--{long}={s}")))
                .collect(),
            other => scalar(arg, other).map(|s| vec![format!("--{long}={s}")]),
        },
        _ => scalar(arg, value).map(|s| vec![format!("--{long}={s}")]),
    }
}

/// One value's text: strings as they are (the flag's parser reads them as on the command line),
/// numbers for flags that are not plain text, booleans for boolean-valued flags.
fn scalar(arg: &Arg, value: &Value) -> Result<String, String> {
    let parser = arg.get_value_parser().type_id();
    let textual = parser == TypeId::of::<String>()
        || parser == TypeId::of::<OsString>()
        || parser == TypeId::of::<PathBuf>();
    let boolean = parser == TypeId::of::<bool>();
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Integer(n) if !textual && !boolean => Ok(n.to_string()),
        Value::Float(f) if !textual && !boolean => Ok(f.to_string()),
        Value::Boolean(b) if boolean => Ok(b.to_string()),
        other => {
            let expected = if textual {
                "a string"
            } else if boolean {
                "true or false"
            } else {
                "a string or a number"
            };
            Err(format!("must be {expected}, not {}", describe(other)))
        }
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::String(s) => format!("the string {s:?}"),
        Value::Integer(n) => format!("the integer {n}"),
        Value::Float(f) => format!("the float {f}"),
        Value::Boolean(b) => format!("the boolean {b}"),
        Value::Datetime(d) => format!("the date-time {d}"),
        Value::Array(_) => "an array".to_string(),
        Value::Table(_) => "a table".to_string(),
    }
}

/// clap's message without its `error: ` prefix and usage hints.
fn clap_message(err: &clap::Error) -> String {
    let text = err.to_string();
    let first = text.lines().next().unwrap_or_default();
    first.strip_prefix("error: ").unwrap_or(first).to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use clap::{CommandFactory, Parser};
    use std::time::Duration;

    fn duration(text: &str) -> Result<Duration, String> {
        let secs = text
            .strip_suffix("secs")
            .ok_or_else(|| format!("{text:?} is not a duration such as 5secs"))?;
        secs.parse()
            .map(Duration::from_secs)
            .map_err(|e| format!("{e}"))
    }

    /// A daemon's flags in miniature; env names are unique to these tests.
    #[derive(Debug, Parser)]
    #[command(name = "toy", version)]
    struct Toy {
        #[arg(long, env = "STRATA_FLAGS_TEST_CONFIG")]
        config: Option<PathBuf>,
        #[arg(long, env = "STRATA_FLAGS_TEST_MASTER")]
        master: String,
        #[arg(long, env = "STRATA_FLAGS_TEST_PORT", default_value_t = 5051)]
        port: u16,
        #[arg(long, alias = "work_dir", default_value = "/var/lib/toy")]
        work_dir: PathBuf,
        #[arg(long, default_value = "3secs", value_parser = duration)]
        grace: Duration,
        #[arg(long, env = "STRATA_FLAGS_TEST_CFS")]
        enable_cfs: bool,
        #[arg(long)]
        cpus: Option<f64>,
        #[arg(long = "mount")]
        mounts: Vec<String>,
    }

    struct Files(tempfile::TempDir);

    impl Files {
        fn new() -> Self {
            Self(tempfile::tempdir().unwrap())
        }

        fn write(&self, text: &str) -> PathBuf {
            let path = self.0.path().join("toy.toml");
            std::fs::write(&path, text).unwrap();
            path
        }

        fn missing(&self) -> PathBuf {
            self.0.path().join("absent.toml")
        }
    }

    /// Tests run in parallel threads of one process, and one of them sets
    /// `STRATA_FLAGS_TEST_*` variables: every other parse waits until it is done.
    static ENVIRONMENT: std::sync::RwLock<()> = std::sync::RwLock::new(());

    fn parse(args: &[&str], default: &Path) -> Result<Layered<Toy>, FlagsError> {
        let _unchanged = ENVIRONMENT.read().unwrap_or_else(|e| e.into_inner());
        parse_in_current_environment(args, default)
    }

    fn parse_in_current_environment(
        args: &[&str],
        default: &Path,
    ) -> Result<Layered<Toy>, FlagsError> {
        let argv = std::iter::once("toy").chain(args.iter().copied());
        parse_from(argv, default)
    }

    #[test]
    fn a_missing_default_file_is_fine_and_flags_alone_work() {
        let files = Files::new();
        let layered = parse(&["--master", "m:5050"], &files.missing()).unwrap();
        assert_eq!(layered.file, None);
        assert_eq!(layered.config.master, "m:5050");
        assert_eq!(layered.config.port, 5051);
    }

    #[test]
    fn every_kind_of_flag_is_a_key() {
        let files = Files::new();
        let path = files.write(
            "master = \"10.0.0.1:5050\"\nport = 6000\nwork-dir = \"/srv/toy\"\ngrace = \"7secs\"\n\
             enable_cfs = true\ncpus = 2\nmount = [\"/a\", \"/b\"]\n",
        );
        let layered = parse(&[], &path).unwrap();
        let toy = layered.config;
        assert_eq!(toy.master, "10.0.0.1:5050");
        assert_eq!(toy.port, 6000);
        assert_eq!(toy.work_dir, PathBuf::from("/srv/toy"));
        assert_eq!(toy.grace, Duration::from_secs(7));
        assert!(toy.enable_cfs);
        assert_eq!(toy.cpus, Some(2.0));
        assert_eq!(toy.mounts, ["/a", "/b"]);
        assert_eq!(layered.file, Some(path));
        assert_eq!(layered.applied.len(), 7);
    }

    #[test]
    fn aliases_and_snake_case_name_the_same_flag() {
        let files = Files::new();
        let path = files.write("master = \"m:1\"\nwork_dir = \"/x\"\n");
        assert_eq!(
            parse(&[], &path).unwrap().config.work_dir,
            PathBuf::from("/x")
        );
        let path = files.write("master = \"m:1\"\nwork_dir = \"/x\"\nwork-dir = \"/y\"\n");
        let err = parse(&[], &path).unwrap_err().to_string();
        assert!(
            err.contains("`work-dir` sets the same flag as `work_dir`"),
            "{err}"
        );
    }

    #[test]
    fn flags_win_over_the_environment_which_wins_over_the_file() {
        let files = Files::new();
        let path = files.write("master = \"file:1\"\nport = 1111\nenable_cfs = true\n");
        // Only this test sets these variables, and no other parse runs meanwhile.
        let (from_env, from_flag) = {
            let _changing = ENVIRONMENT.write().unwrap_or_else(|e| e.into_inner());
            std::env::set_var("STRATA_FLAGS_TEST_PORT", "2222");
            std::env::set_var("STRATA_FLAGS_TEST_MASTER", "env:2");
            let from_env = parse_in_current_environment(&[], &path);
            let from_flag = parse_in_current_environment(&["--port", "3333"], &path);
            std::env::remove_var("STRATA_FLAGS_TEST_PORT");
            std::env::remove_var("STRATA_FLAGS_TEST_MASTER");
            (from_env.unwrap(), from_flag.unwrap())
        };
        let from_file = parse(&[], &path).unwrap();
        assert_eq!(from_env.config.port, 2222);
        assert_eq!(from_env.config.master, "env:2");
        assert_eq!(from_env.overridden, ["master", "port"]);
        assert_eq!(from_flag.config.port, 3333);
        assert_eq!(from_file.config.port, 1111);
        assert_eq!(from_file.config.master, "file:1");
        assert!(from_file.config.enable_cfs);
    }

    #[test]
    fn a_required_flag_may_come_from_the_file_only() {
        let files = Files::new();
        let err = parse(&[], &files.missing()).unwrap_err();
        assert!(matches!(&err, FlagsError::Clap(e)
            if e.kind() == clap::error::ErrorKind::MissingRequiredArgument));
        assert!(err.to_string().contains("--master <MASTER>"), "{err}");
    }

    #[test]
    fn an_explicit_file_must_exist() {
        let files = Files::new();
        let missing = files.missing();
        let err = parse(&["--config", missing.to_str().unwrap()], &files.missing()).unwrap_err();
        assert!(matches!(err, FlagsError::Read { .. }));
        assert_eq!(
            err.to_string(),
            format!(
                "cannot read the config file {}: No such file or directory (os error 2)",
                missing.display()
            )
        );
        // Named by --config, the file replaces the default one.
        let path = files.write("master = \"named:1\"\n");
        let layered = parse(&["--config", path.to_str().unwrap()], &missing).unwrap();
        assert_eq!(layered.config.master, "named:1");
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key_and_the_file() {
        let files = Files::new();
        let cases = [
            (
                "mastr = \"x\"\n",
                "unknown key `mastr` (the keys are the long flags, e.g. master, port, work_dir, \
                 grace, enable_cfs, cpus, mount)",
            ),
            ("port = \"http\"\n", "`port` has invalid value 'http' for '--port <PORT>'"),
            ("port = 70000\n", "`port` has invalid value '70000' for '--port <PORT>'"),
            ("port = true\n", "`port` must be a string or a number, not the boolean true"),
            ("work_dir = 5\n", "`work_dir` must be a string, not the integer 5"),
            ("enable_cfs = \"yes\"\n", "`enable_cfs` must be true or false, not the string \"yes\""),
            ("grace = 3\n", "`grace` has invalid value '3' for '--grace <GRACE>': \"3\" is not a duration such as 5secs"),
            ("[master]\nx = 1\n", "`master` must be a string, not a table"),
            ("config = \"/x\"\n", "`config` cannot be set in a config file"),
            ("mount = [1]\n", "`mount` must be a string, not the integer 1"),
        ];
        for (text, expected) in cases {
            let path = files.write(text);
            let err = parse(&["--master", "m:1"], &path).unwrap_err().to_string();
            let prefix = format!("{}: ", path.display());
            assert!(err.starts_with(&prefix), "{err}");
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn broken_toml_is_reported_with_its_place() {
        let files = Files::new();
        let path = files.write("master = \"unterminated\n");
        let err = parse(&[], &path).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{} is not valid TOML: ", path.display())),
            "{err}"
        );
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn a_bad_flag_is_still_clap_s_error_when_the_file_sets_it_too() {
        let files = Files::new();
        let path = files.write("master = \"m:1\"\nport = 6000\n");
        let err = parse(&["--port", "nope"], &path).unwrap_err();
        assert!(matches!(&err, FlagsError::Clap(_)), "{err}");
        assert!(err.to_string().contains("invalid value 'nope'"), "{err}");
    }

    #[test]
    fn help_and_version_pass_through() {
        let files = Files::new();
        let err = parse(&["--version"], &files.missing()).unwrap_err();
        assert!(matches!(&err, FlagsError::Clap(e)
            if e.kind() == clap::error::ErrorKind::DisplayVersion));
        // A broken file does not stand in the way of --help.
        let path = files.write("nonsense");
        let err = parse(
            &["--help", "--config", path.to_str().unwrap()],
            &files.missing(),
        );
        assert!(matches!(&err, Err(FlagsError::Clap(e))
            if e.kind() == clap::error::ErrorKind::DisplayHelp));
    }

    /// A maintenance command of the toy's binary that takes two of its flags.
    #[derive(Debug, Parser)]
    #[command(name = "toy part")]
    struct ToyPart {
        #[arg(long, env = "STRATA_FLAGS_TEST_CONFIG")]
        config: Option<PathBuf>,
        #[arg(long, alias = "work_dir", default_value = "/var/lib/toy")]
        work_dir: PathBuf,
        #[arg(long)]
        enable_cfs: bool,
    }

    fn parse_part(args: &[&str], default: &Path) -> Result<Layered<ToyPart>, FlagsError> {
        let _unchanged = ENVIRONMENT.read().unwrap_or_else(|e| e.into_inner());
        let argv = std::iter::once("toy part").chain(args.iter().copied());
        parse_part_from(&Toy::command(), argv, default)
    }

    #[test]
    fn a_part_reads_its_keys_of_the_daemon_s_file_and_leaves_the_others() {
        let files = Files::new();
        // `grace` is wrong for the daemon, which is not this command's business.
        let path = files.write(
            "master = \"m:1\"\nport = 6000\nwork_dir = \"/srv/toy\"\ngrace = 3\n\
             enable_cfs = true\n",
        );
        let layered = parse_part(&[], &path).unwrap();
        assert_eq!(layered.config.work_dir, PathBuf::from("/srv/toy"));
        assert!(layered.config.enable_cfs);
        assert_eq!(layered.file, Some(path.clone()));
        assert_eq!(layered.applied, ["work_dir", "enable_cfs"]);
        // The command line still wins over the file.
        let layered = parse_part(&["--work-dir", "/cli"], &path).unwrap();
        assert_eq!(layered.config.work_dir, PathBuf::from("/cli"));
        assert_eq!(layered.overridden, ["work_dir"]);
        // Named by --config, and the default file missing.
        let named = parse_part(&["--config", path.to_str().unwrap()], &files.missing()).unwrap();
        assert_eq!(named.config.work_dir, PathBuf::from("/srv/toy"));
        let absent = parse_part(&[], &files.missing()).unwrap();
        assert_eq!(absent.config.work_dir, PathBuf::from("/var/lib/toy"));
        assert_eq!(absent.file, None);
    }

    #[test]
    fn a_part_still_refuses_what_the_daemon_would() {
        let files = Files::new();
        let path = files.write("work_dri = \"/x\"\n");
        let err = parse_part(&[], &path).unwrap_err().to_string();
        assert!(
            err.contains("unknown key `work_dri` (the keys are the long flags, e.g. master, port,"),
            "{err}"
        );
        let path = files.write("work_dir = 5\n");
        let err = parse_part(&[], &path).unwrap_err().to_string();
        assert!(
            err.contains("`work_dir` must be a string, not the integer 5"),
            "{err}"
        );
        let path = files.write("config = \"/x\"\n");
        let err = parse_part(&[], &path).unwrap_err().to_string();
        assert!(
            err.contains("`config` cannot be set in a config file"),
            "{err}"
        );
    }

    #[test]
    fn env_names_follow_the_flags() {
        assert_eq!(env_name("work-dir"), "STRATA_WORK_DIR");
        assert_eq!(env_name("zk"), "STRATA_ZK");
        #[derive(Debug, Parser)]
        #[command(name = "tidy", version)]
        struct Tidy {
            #[arg(long, env = "STRATA_WORK_DIR")]
            work_dir: Option<PathBuf>,
            #[arg(short, long, env = "STRATA_VERBOSE")]
            verbose: bool,
            // Positional and short-only arguments have no long name to follow.
            #[arg(short = 'q')]
            quiet: bool,
            file: Option<PathBuf>,
        }
        assert_eq!(env_mismatches(&Tidy::command()), Vec::<String>::new());
        assert_eq!(
            env_mismatches(&Toy::command()),
            [
                "--config reads STRATA_FLAGS_TEST_CONFIG, not STRATA_CONFIG",
                "--master reads STRATA_FLAGS_TEST_MASTER, not STRATA_MASTER",
                "--port reads STRATA_FLAGS_TEST_PORT, not STRATA_PORT",
                "--work-dir reads no environment variable (expected STRATA_WORK_DIR)",
                "--grace reads no environment variable (expected STRATA_GRACE)",
                "--enable-cfs reads STRATA_FLAGS_TEST_CFS, not STRATA_ENABLE_CFS",
                "--cpus reads no environment variable (expected STRATA_CPUS)",
                "--mount reads no environment variable (expected STRATA_MOUNT)",
            ]
        );
    }

    #[test]
    fn keys_come_from_the_command() {
        assert_eq!(
            known_keys(&Toy::command()),
            [
                "master",
                "port",
                "work_dir",
                "grace",
                "enable_cfs",
                "cpus",
                "mount"
            ]
        );
    }
}
