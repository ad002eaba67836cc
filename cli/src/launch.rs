//! The pure half of `strata run`: what to launch (command, id, resources), which offer to take,
//! and what exit status a final task state means.

use strata_schema::{CommandInfo, TaskId, TaskState, TaskStatus};

/// Exit status when the task could not run at all (TASK_ERROR, _DROPPED, _LOST, _GONE), as
/// `docker run` uses 125 for errors of the runner rather than of the command.
pub const EXIT_NOT_RUN: u8 = 125;
/// Exit status after Ctrl-C or SIGTERM (128 + SIGINT).
pub const EXIT_INTERRUPTED: u8 = 130;

/// The command of the task: one word-string runs through the shell; several words are an argv.
pub fn build_command(
    words: &[String],
    user: Option<&str>,
    env: &[(String, String)],
) -> Result<CommandInfo, String> {
    let mut command = match words {
        [] => return Err("no command given".to_string()),
        [line] => CommandInfo::shell(line.clone()),
        argv => CommandInfo::argv(argv.to_vec()),
    };
    command.user = user.map(str::to_string);
    command.environment = env.to_vec();
    command.validate()?;
    Ok(command)
}

/// `<name or "run">-<suffix>`, with characters a task id cannot hold in the name replaced by `-`.
pub fn task_id(name: Option<&str>, suffix: &str) -> Result<TaskId, String> {
    let prefix: String = name
        .unwrap_or("run")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    let prefix = prefix.trim_matches('-');
    let prefix = if prefix.is_empty() { "run" } else { prefix };
    TaskId::new(format!("{prefix}-{suffix}")).map_err(|err| err.to_string())
}

/// Eight random hex digits.
pub fn random_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_string()
}

/// The task's resources in Mesos syntax.
pub fn resources_text(cpus: f64, mem: f64) -> String {
    format!("cpus:{cpus};mem:{mem}")
}

/// The first offer (given as its free cpus and mem) that holds what the task needs.
/// The `n` lowest ports of `ranges`, or `None` when they hold fewer.
pub fn pick_ports(ranges: &[strata_schema::Range], n: usize) -> Option<Vec<u64>> {
    let mut sorted = ranges.to_vec();
    sorted.sort_by_key(|r| r.begin);
    let ports: Vec<u64> = sorted
        .iter()
        .flat_map(|r| r.begin..=r.end)
        .take(n)
        .collect();
    (ports.len() == n).then_some(ports)
}

/// `ports` as ranges of consecutive ports.
pub fn port_ranges(ports: &[u64]) -> Vec<strata_schema::Range> {
    let mut ranges: Vec<strata_schema::Range> = Vec::new();
    for &port in ports {
        match ranges.last_mut() {
            Some(last) if last.end + 1 == port => last.end = port,
            _ => ranges.push(strata_schema::Range::new(port, port)),
        }
    }
    ranges
}

/// The environment a task with `ports` gets: PORT0…, and PORTS, as Marathon and Aurora set.
pub fn port_environment(ports: &[u64]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = ports
        .iter()
        .enumerate()
        .map(|(i, port)| (format!("PORT{i}"), port.to_string()))
        .collect();
    let all: Vec<String> = ports.iter().map(u64::to_string).collect();
    env.push(("PORTS".to_string(), all.join(",")));
    env
}

pub fn pick_offer(offers: &[(f64, f64)], cpus: f64, mem: f64) -> Option<usize> {
    // Offers carry floating-point sums; allow for rounding in the last decimal Mesos keeps.
    const EPSILON: f64 = 1e-4;
    offers
        .iter()
        .position(|&(c, m)| c + EPSILON >= cpus && m + EPSILON >= mem)
}

/// What `strata run` does once the task reached a final state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Exit with the task's status.
    Exit(u8),
    /// The task never ran properly: print `error: task <id> <STATE>: <message>`, exit 125.
    NotRun,
}

/// The outcome of a terminal status; `None` while the task is not in a terminal state.
pub fn outcome(status: &TaskStatus) -> Option<Outcome> {
    let nonzero = |code: Option<i32>| code.and_then(|c| u8::try_from(c).ok()).filter(|&c| c != 0);
    Some(match status.state {
        TaskState::Finished => Outcome::Exit(0),
        TaskState::Failed => Outcome::Exit(nonzero(status.exit_code).unwrap_or(1)),
        TaskState::Killed => Outcome::Exit(nonzero(status.exit_code).unwrap_or(137)),
        TaskState::Error
        | TaskState::Dropped
        | TaskState::Lost
        | TaskState::Gone
        | TaskState::GoneByOperator => Outcome::NotRun,
        TaskState::Staging
        | TaskState::Starting
        | TaskState::Running
        | TaskState::Killing
        | TaskState::Unreachable
        | TaskState::Unknown => return None,
    })
}

/// Whether a sandbox with output can exist in this state (worth following).
pub fn has_sandbox(state: TaskState) -> bool {
    matches!(
        state,
        TaskState::Starting
            | TaskState::Running
            | TaskState::Killing
            | TaskState::Finished
            | TaskState::Failed
            | TaskState::Killed
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use strata_schema::StatusSource;

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn one_word_string_is_a_shell_command() {
        let command = build_command(&words(&["echo $HOME | wc -c"]), None, &[]).unwrap();
        assert!(command.shell);
        assert_eq!(command.value, "echo $HOME | wc -c");
        assert!(command.arguments.is_empty());
        assert_eq!(command.user, None);
    }

    #[test]
    fn several_words_are_an_argv() {
        let env = vec![("A".to_string(), "1".to_string())];
        let command = build_command(&words(&["ls", "-la", "/"]), Some("nobody"), &env).unwrap();
        assert!(!command.shell);
        assert_eq!(command.value, "ls");
        assert_eq!(command.arguments, ["ls", "-la", "/"]);
        assert_eq!(command.user.as_deref(), Some("nobody"));
        assert_eq!(command.environment, env);
    }

    #[test]
    fn invalid_commands_are_refused() {
        assert!(build_command(&[], None, &[]).is_err());
        assert!(build_command(&words(&["  "]), None, &[]).is_err());
        assert!(build_command(&words(&["", "x"]), None, &[]).is_err());
        assert!(build_command(&words(&["true"]), Some("a/b"), &[]).is_err());
    }

    #[test]
    fn task_ids() {
        assert_eq!(task_id(None, "0123abcd").unwrap().as_str(), "run-0123abcd");
        assert_eq!(
            task_id(Some("web"), "0123abcd").unwrap().as_str(),
            "web-0123abcd"
        );
        assert_eq!(
            task_id(Some("my job/1"), "0123abcd").unwrap().as_str(),
            "my-job-1-0123abcd"
        );
        assert_eq!(
            task_id(Some("///"), "0123abcd").unwrap().as_str(),
            "run-0123abcd"
        );
        let suffix = random_suffix();
        assert_eq!(suffix.len(), 8);
        assert!(suffix.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(random_suffix(), suffix);
    }

    #[test]
    fn resources() {
        assert_eq!(resources_text(0.5, 64.0), "cpus:0.5;mem:64");
        assert_eq!(resources_text(2.0, 1536.5), "cpus:2;mem:1536.5");
    }

    #[test]
    fn ports() {
        use strata_schema::Range;
        let ranges = [Range::new(31005, 31006), Range::new(31000, 31001)];
        assert_eq!(pick_ports(&ranges, 3), Some(vec![31000, 31001, 31005]));
        assert_eq!(pick_ports(&ranges, 5), None);
        assert_eq!(pick_ports(&[], 0), Some(vec![]));
        assert_eq!(
            port_ranges(&[31000, 31001, 31005]),
            vec![Range::new(31000, 31001), Range::new(31005, 31005)]
        );
        assert_eq!(
            port_environment(&[80, 81]),
            vec![
                ("PORT0".to_string(), "80".to_string()),
                ("PORT1".to_string(), "81".to_string()),
                ("PORTS".to_string(), "80,81".to_string())
            ]
        );
    }

    #[test]
    fn offers() {
        let offers = [(0.25, 4096.0), (2.0, 32.0), (1.0, 128.0), (4.0, 4096.0)];
        assert_eq!(pick_offer(&offers, 0.5, 64.0), Some(2));
        assert_eq!(pick_offer(&offers, 0.1, 10.0), Some(0));
        assert_eq!(pick_offer(&offers, 8.0, 64.0), None);
        assert_eq!(
            pick_offer(&[(0.30000000000000004 - 1e-9, 64.0)], 0.3, 64.0),
            Some(0)
        );
        assert_eq!(pick_offer(&[], 0.1, 1.0), None);
    }

    fn status(state: TaskState, exit_code: Option<i32>) -> TaskStatus {
        TaskStatus {
            task_id: TaskId::new("t").unwrap(),
            state,
            message: String::new(),
            source: StatusSource::Executor,
            reason: None,
            agent_id: None,
            framework_id: None,
            container_id: None,
            timestamp: 0.0,
            uuid: None,
            exit_code,
        }
    }

    #[test]
    fn exit_codes() {
        use TaskState::*;
        assert_eq!(outcome(&status(Finished, Some(0))), Some(Outcome::Exit(0)));
        assert_eq!(outcome(&status(Failed, Some(3))), Some(Outcome::Exit(3)));
        assert_eq!(outcome(&status(Failed, None)), Some(Outcome::Exit(1)));
        // a failure never reads as success, and odd codes do not wrap around
        assert_eq!(outcome(&status(Failed, Some(0))), Some(Outcome::Exit(1)));
        assert_eq!(outcome(&status(Failed, Some(256))), Some(Outcome::Exit(1)));
        assert_eq!(outcome(&status(Failed, Some(-1))), Some(Outcome::Exit(1)));
        assert_eq!(
            outcome(&status(Killed, Some(143))),
            Some(Outcome::Exit(143))
        );
        assert_eq!(outcome(&status(Killed, None)), Some(Outcome::Exit(137)));
        for state in [Error, Dropped, Lost, Gone, GoneByOperator] {
            assert_eq!(
                outcome(&status(state, None)),
                Some(Outcome::NotRun),
                "{state}"
            );
        }
        for state in [Staging, Starting, Running, Killing, Unreachable, Unknown] {
            assert_eq!(outcome(&status(state, None)), None, "{state}");
        }
        // every terminal state has an outcome
        for state in TaskState::ALL {
            assert_eq!(
                state.is_terminal(),
                outcome(&status(state, None)).is_some(),
                "{state}"
            );
        }
    }
}
