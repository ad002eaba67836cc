//! Identifiers. Each is a validated string newtype so that an agent id can never be passed where a
//! framework id is expected.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An id string was empty, too long, or held a character that is unsafe in a path or URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} {value:?}: {why}")]
pub struct IdError {
    pub kind: &'static str,
    pub value: String,
    pub why: &'static str,
}

/// Longest id accepted (Mesos does not bound ids; we bound them because they become path names).
pub const MAX_ID_LEN: usize = 200;

fn validate(kind: &'static str, value: &str) -> Result<(), IdError> {
    let err = |why| IdError {
        kind,
        value: value.to_string(),
        why,
    };
    if value.is_empty() {
        return Err(err("it is empty"));
    }
    if value.len() > MAX_ID_LEN {
        return Err(err("it is longer than 200 bytes"));
    }
    if value == "." || value == ".." {
        return Err(err("it is a relative path component"));
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '@'))
    {
        return Err(err("only ASCII letters, digits and - _ . : @ are allowed"));
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates `value` as an id.
            pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                validate($kind, &value)?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                Self::new(value)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(value: &str) -> Result<Self, IdError> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
    };
}

id_type!(
    /// An agent's id, assigned by the master on first registration (`<master-id>-S<n>`).
    AgentId,
    "agent id"
);
id_type!(
    /// A framework's id, assigned by the master on first subscription (`<master-id>-<nnnn>`).
    FrameworkId,
    "framework id"
);
id_type!(
    /// A task's id, chosen by its framework; unique among the framework's live tasks.
    TaskId,
    "task id"
);
id_type!(
    /// An offer's id (`<master-id>-O<n>`).
    OfferId,
    "offer id"
);
id_type!(
    /// An executor's id, chosen by its framework; unique among the framework's executors on an
    /// agent.
    ExecutorId,
    "executor id"
);
id_type!(
    /// A container's id on an agent (a UUID).
    ContainerId,
    "container id"
);

impl ContainerId {
    /// A fresh random container id.
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rejects_unsafe_ids() {
        assert!(TaskId::new("").is_err());
        assert!(TaskId::new("..").is_err());
        assert!(TaskId::new("a/b").is_err());
        assert!(TaskId::new("a b").is_err());
        assert!(TaskId::new("x".repeat(201)).is_err());
        assert!(TaskId::new("web-1.2_3:4@x").is_ok());
        let err = TaskId::new("a/b").unwrap_err().to_string();
        assert!(err.contains("task id") && err.contains("a/b"), "{err}");
    }

    #[test]
    fn serde_validates() {
        let id: Result<AgentId, _> = serde_json::from_str("\"../etc\"");
        assert!(id.is_err());
        let id: AgentId = serde_json::from_str("\"m-S1\"").unwrap();
        assert_eq!(id.as_str(), "m-S1");
    }
}
