//! Mesos' ACLs (`--acls`, JSON) and their evaluation, as Mesos' local authorizer does it.
//!
//! The format is Mesos' `ACLs` message (`include/mesos/authorizer/acls.proto`,
//! `docs/authorization.md`):
//!
//! ```json
//! {
//!   "permissive": false,
//!   "register_frameworks": [{"principals": {"values": ["a"]}, "roles": {"values": ["web"]}}],
//!   "run_tasks": [{"principals": {"type": "ANY"}, "users": {"values": ["nobody"]}}]
//! }
//! ```
//!
//! Each list holds rules of a subject (`principals`) and an object (its name depends on the
//! action, see [`Action::object_key`]); each is an entity `{"values": [..]}` (type SOME),
//! `{"type": "ANY"}` or `{"type": "NONE"}`. Unknown keys are errors naming the key.
//!
//! Evaluation follows `src/authorizer/local/authorizer.cpp` (`matches`, `allows`,
//! `LocalAuthorizerObjectApprover::approved`): the request's subject is SOME{principal}, or ANY
//! when the caller has no principal; its object is SOME{value}, or ANY when the action has no
//! object. The first rule whose subject and object both *match* decides, and it grants when both
//! *allow*; when no rule matches, `permissive` (default `true`) decides.
//!
//! Match matrix (request row, rule column), from authorizer.cpp:
//!
//! | request \ rule | SOME      | NONE | ANY |
//! |----------------|-----------|------|-----|
//! | SOME           | subset?   | yes  | yes |
//! | NONE           | no        | yes  | no  |
//! | ANY            | no        | yes  | yes |
//!
//! Allow matrix: SOME is allowed by ANY, or by SOME when its values are a subset, never by
//! NONE; ANY only by ANY; NONE only by NONE.
//!
//! Not modelled: Mesos' hierarchical role wildcards (`a/%`) — a role value matches only itself.
//!
//! Strata's one addition: [`Acls::allows_root`] — a task may run as `root` only when a
//! `run_tasks` rule that names `root` in its `users` values grants it; `permissive` and
//! `{"type": "ANY"}` users never do.

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// An action an ACL list governs, with Mesos' JSON names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    RegisterFramework,
    RunTask,
    TeardownFramework,
    ReserveResources,
    UnreserveResources,
    CreateVolume,
    DestroyVolume,
    GetQuota,
    UpdateQuota,
    UpdateWeight,
    ViewRole,
    GetEndpoint,
    ViewFramework,
    ViewTask,
    ViewExecutor,
    AccessSandbox,
    ViewFlags,
    AccessMesosLog,
}

impl Action {
    pub const ALL: [Action; 18] = [
        Action::RegisterFramework,
        Action::RunTask,
        Action::TeardownFramework,
        Action::ReserveResources,
        Action::UnreserveResources,
        Action::CreateVolume,
        Action::DestroyVolume,
        Action::GetQuota,
        Action::UpdateQuota,
        Action::UpdateWeight,
        Action::ViewRole,
        Action::GetEndpoint,
        Action::ViewFramework,
        Action::ViewTask,
        Action::ViewExecutor,
        Action::AccessSandbox,
        Action::ViewFlags,
        Action::AccessMesosLog,
    ];

    /// The key of this action's list in the ACL file.
    pub fn key(self) -> &'static str {
        match self {
            Action::RegisterFramework => "register_frameworks",
            Action::RunTask => "run_tasks",
            Action::TeardownFramework => "teardown_frameworks",
            Action::ReserveResources => "reserve_resources",
            Action::UnreserveResources => "unreserve_resources",
            Action::CreateVolume => "create_volumes",
            Action::DestroyVolume => "destroy_volumes",
            Action::GetQuota => "get_quotas",
            Action::UpdateQuota => "update_quotas",
            Action::UpdateWeight => "update_weights",
            Action::ViewRole => "view_roles",
            Action::GetEndpoint => "get_endpoints",
            Action::ViewFramework => "view_frameworks",
            Action::ViewTask => "view_tasks",
            Action::ViewExecutor => "view_executors",
            Action::AccessSandbox => "access_sandboxes",
            Action::ViewFlags => "view_flags",
            Action::AccessMesosLog => "access_mesos_logs",
        }
    }

    /// The key of a rule's object entity (acls.proto).
    pub fn object_key(self) -> &'static str {
        match self {
            Action::RegisterFramework
            | Action::ReserveResources
            | Action::CreateVolume
            | Action::GetQuota
            | Action::UpdateQuota
            | Action::UpdateWeight
            | Action::ViewRole => "roles",
            Action::RunTask
            | Action::ViewFramework
            | Action::ViewTask
            | Action::ViewExecutor
            | Action::AccessSandbox => "users",
            Action::TeardownFramework => "framework_principals",
            Action::UnreserveResources => "reserver_principals",
            Action::DestroyVolume => "creator_principals",
            Action::GetEndpoint => "paths",
            Action::ViewFlags => "flags",
            Action::AccessMesosLog => "logs",
        }
    }

    fn from_key(key: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.key() == key)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// An ACL entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entity {
    Some(Vec<String>),
    Any,
    None,
}

impl Entity {
    /// authorizer.cpp `matches`.
    fn matches(request: &Entity, rule: &Entity) -> bool {
        match (request, rule) {
            (Entity::None, rule) => *rule == Entity::None,
            (Entity::Any, rule) => matches!(rule, Entity::Any | Entity::None),
            (Entity::Some(_), Entity::Any | Entity::None) => true,
            (Entity::Some(wanted), Entity::Some(values)) => {
                wanted.iter().all(|w| values.contains(w))
            }
        }
    }

    /// authorizer.cpp `allows`.
    fn allows(request: &Entity, rule: &Entity) -> bool {
        match (request, rule) {
            (Entity::None, rule) => *rule == Entity::None,
            (Entity::Any, rule) => *rule == Entity::Any,
            (Entity::Some(_), Entity::Any) => true,
            (Entity::Some(_), Entity::None) => false,
            (Entity::Some(wanted), Entity::Some(values)) => {
                wanted.iter().all(|w| values.contains(w))
            }
        }
    }

    fn request(value: Option<&str>) -> Entity {
        match value {
            Some(v) => Entity::Some(vec![v.to_string()]),
            None => Entity::Any,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    subjects: Entity,
    objects: Entity,
}

/// Why an ACL file could not be used. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum AclError {
    #[error("failed to read ACL file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid JSON in ACL file {path}: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("ACL file {path}: {at}: {reason}")]
    Invalid {
        path: PathBuf,
        /// Where: a key such as `run_tasks[2].users`.
        at: String,
        reason: String,
    },
}

/// A parsed ACL file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acls {
    permissive: bool,
    rules: Vec<(Action, Vec<Rule>)>,
}

impl Default for Acls {
    /// No rules, permissive: what a master without `--acls` uses.
    fn default() -> Self {
        Acls {
            permissive: true,
            rules: Vec::new(),
        }
    }
}

/// The outcome of an authorization, with what decided it (for logs and 403 bodies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub action: Action,
    /// The index of the rule that decided, or `None` when `permissive` did.
    pub rule: Option<usize>,
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.allowed { "allowed" } else { "denied" };
        match self.rule {
            Some(i) => write!(f, "{verdict} by ACL {}[{i}]", self.action),
            None if self.allowed => write!(
                f,
                "allowed: no {} ACL matches and permissive is true",
                self.action
            ),
            None => write!(
                f,
                "denied: no {} ACL matches and permissive is false",
                self.action
            ),
        }
    }
}

impl Acls {
    pub fn load(path: &Path) -> Result<Self, AclError> {
        let text = std::fs::read_to_string(path).map_err(|source| AclError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses an ACL file's text; `path` only names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self, AclError> {
        let invalid = |at: String, reason: String| AclError::Invalid {
            path: path.to_path_buf(),
            at,
            reason,
        };
        let value: Value = serde_json::from_str(text).map_err(|source| AclError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        let Value::Object(top) = value else {
            return Err(invalid("top level".into(), "expected a JSON object".into()));
        };
        let mut acls = Acls::default();
        for (key, value) in top {
            if key == "permissive" {
                acls.permissive = value
                    .as_bool()
                    .ok_or_else(|| invalid(key.clone(), "expected true or false".into()))?;
                continue;
            }
            let Some(action) = Action::from_key(&key) else {
                return Err(invalid(key.clone(), "unknown ACL key".into()));
            };
            let Value::Array(list) = value else {
                return Err(invalid(key.clone(), "expected a list of rules".into()));
            };
            let mut rules = Vec::with_capacity(list.len());
            for (i, rule) in list.into_iter().enumerate() {
                let at = format!("{key}[{i}]");
                let Value::Object(mut rule) = rule else {
                    return Err(invalid(at, "expected an object".into()));
                };
                let object_key = action.object_key();
                if let Some(other) = rule
                    .keys()
                    .find(|k| k.as_str() != "principals" && k.as_str() != object_key)
                {
                    return Err(invalid(
                        format!("{at}.{other}"),
                        format!("unknown key (a {key} rule has principals and {object_key})"),
                    ));
                }
                let mut entity = |name: &str| -> Result<Entity, AclError> {
                    let at = format!("{at}.{name}");
                    let value = rule
                        .remove(name)
                        .ok_or_else(|| invalid(at.clone(), "missing".into()))?;
                    parse_entity(&value).map_err(|reason| invalid(at, reason))
                };
                let subjects = entity("principals")?;
                let objects = entity(object_key)?;
                rules.push(Rule { subjects, objects });
            }
            match acls.rules.iter_mut().find(|(a, _)| *a == action) {
                Some((_, existing)) => existing.extend(rules),
                None => acls.rules.push((action, rules)),
            }
        }
        Ok(acls)
    }

    /// ACLs that grant everything (permissive, no rules) plus running tasks as `root` for any
    /// principal: what `strata up` and the test harness use.
    pub fn allow_all_with_root() -> Self {
        Acls {
            permissive: true,
            rules: vec![(
                Action::RunTask,
                vec![Rule {
                    subjects: Entity::Any,
                    objects: Entity::Some(vec!["root".into()]),
                }],
            )],
        }
    }

    /// The JSON text of [`Self::allow_all_with_root`] (for `--acls` files).
    pub const ALLOW_ROOT_JSON: &'static str = r#"{"permissive": true, "run_tasks": [{"principals": {"type": "ANY"}, "users": {"values": ["root"]}}]}"#;

    pub fn permissive(&self) -> bool {
        self.permissive
    }

    /// Whether the ACLs hold any rule for `action`.
    pub fn has_rules(&self, action: Action) -> bool {
        self.rules_for(action).is_some_and(|r| !r.is_empty())
    }

    fn rules_for(&self, action: Action) -> Option<&[Rule]> {
        self.rules
            .iter()
            .find(|(a, _)| *a == action)
            .map(|(_, r)| r.as_slice())
    }

    /// May `principal` (None: an unauthenticated caller) do `action` on `object` (None: the
    /// action as a whole)? authorizer.cpp `approved`.
    pub fn authorize(
        &self,
        principal: Option<&str>,
        action: Action,
        object: Option<&str>,
    ) -> Decision {
        let subject = Entity::request(principal);
        let object = Entity::request(object);
        for (i, rule) in self
            .rules_for(action)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            if Entity::matches(&subject, &rule.subjects) && Entity::matches(&object, &rule.objects)
            {
                return Decision {
                    allowed: Entity::allows(&subject, &rule.subjects)
                        && Entity::allows(&object, &rule.objects),
                    action,
                    rule: Some(i),
                };
            }
        }
        Decision {
            allowed: self.permissive,
            action,
            rule: None,
        }
    }

    /// Shorthand for `authorize(..).allowed`.
    pub fn allowed(&self, principal: Option<&str>, action: Action, object: Option<&str>) -> bool {
        self.authorize(principal, action, object).allowed
    }

    /// May `principal` run a task as `root`? Only when the deciding `run_tasks` rule names `root`
    /// among its users' values and grants it; `permissive` and `{"type": "ANY"}` users never do.
    pub fn allows_root(&self, principal: Option<&str>) -> Decision {
        let decision = self.authorize(principal, Action::RunTask, Some("root"));
        let explicit = decision.rule.is_some_and(|i| {
            self.rules_for(Action::RunTask)
                .and_then(|r| r.get(i))
                .is_some_and(
                    |r| matches!(&r.objects, Entity::Some(v) if v.iter().any(|u| u == "root")),
                )
        });
        Decision {
            allowed: decision.allowed && explicit,
            ..decision
        }
    }
}

fn parse_entity(value: &Value) -> Result<Entity, String> {
    let Value::Object(map) = value else {
        return Err(r#"expected {"values": [..]} or {"type": "ANY"|"NONE"}"#.into());
    };
    if let Some(other) = map.keys().find(|k| *k != "values" && *k != "type") {
        return Err(format!(
            "unknown key {other:?} (an entity has values or type)"
        ));
    }
    let values = match map.get("values") {
        None => None,
        Some(Value::Array(list)) => Some(
            list.iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| "values must be strings".to_string())
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(_) => return Err("values must be a list of strings".into()),
    };
    match (map.get("type").map(|t| t.as_str()), values) {
        (None, Some(values)) | (Some(Some("SOME")), Some(values)) => Ok(Entity::Some(values)),
        (Some(Some("ANY")), None) => Ok(Entity::Any),
        (Some(Some("NONE")), None) => Ok(Entity::None),
        (Some(Some("ANY" | "NONE")), Some(_)) => Err("type ANY or NONE takes no values".into()),
        (None, None) => Err(r#"expected "values" or "type""#.into()),
        (Some(Some("SOME")), None) => Err("type SOME needs values".into()),
        (Some(t), _) => Err(format!(
            "unknown type {t:?} (ANY, NONE or SOME)",
            t = t.unwrap_or("?")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acls(text: &str) -> Acls {
        Acls::parse(Path::new("acls.json"), text).unwrap()
    }

    fn err(text: &str) -> String {
        Acls::parse(Path::new("acls.json"), text)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn first_matching_rule_decides_then_permissive() {
        // docs/authorization.md's example: "foo" may register with role "analytics" only,
        // nobody else may register with "analytics".
        let a = acls(
            r#"{"register_frameworks": [
                {"principals": {"values": ["foo"]}, "roles": {"values": ["analytics"]}},
                {"principals": {"type": "ANY"}, "roles": {"values": ["analytics"]}},
                {"principals": {"values": ["bar"]}, "roles": {"type": "NONE"}}
            ]}"#,
        );
        let d = a.authorize(Some("foo"), Action::RegisterFramework, Some("analytics"));
        assert_eq!((d.allowed, d.rule), (true, Some(0)));
        // Rule 1 matches baz/analytics (a SOME subject matches and is allowed by ANY).
        let d = a.authorize(Some("baz"), Action::RegisterFramework, Some("analytics"));
        assert_eq!((d.allowed, d.rule), (true, Some(1)));
        // bar with any role: rule 2 matches (NONE rule objects match SOME) and does not allow.
        let d = a.authorize(Some("bar"), Action::RegisterFramework, Some("web"));
        assert_eq!((d.allowed, d.rule), (false, Some(2)));
        assert_eq!(d.to_string(), "denied by ACL register_frameworks[2]");
        // Nothing matches foo/web: permissive (default true).
        let d = a.authorize(Some("foo"), Action::RegisterFramework, Some("web"));
        assert_eq!((d.allowed, d.rule), (true, None));
    }

    #[test]
    fn none_principals_deny_everyone_for_an_object() {
        let a = acls(
            r#"{"permissive": false, "run_tasks": [
                {"principals": {"type": "NONE"}, "users": {"values": ["root"]}},
                {"principals": {"values": ["ops"]}, "users": {"type": "ANY"}}
            ]}"#,
        );
        assert!(!a.allowed(Some("ops"), Action::RunTask, Some("root")));
        assert_eq!(
            a.authorize(Some("ops"), Action::RunTask, Some("root")).rule,
            Some(0)
        );
        assert!(a.allowed(Some("ops"), Action::RunTask, Some("nobody")));
        assert!(!a.allowed(Some("dev"), Action::RunTask, Some("nobody")));
        assert_eq!(
            a.authorize(Some("dev"), Action::RunTask, Some("nobody"))
                .to_string(),
            "denied: no run_tasks ACL matches and permissive is false"
        );
        // An unauthenticated caller (subject ANY) matches only ANY/NONE rules: rule 0 matches
        // (ANY request vs NONE rule) and NONE does not allow ANY.
        assert!(!a.allowed(None, Action::RunTask, Some("root")));
        // Other actions have no rules: permissive false decides.
        assert!(!a.allowed(Some("ops"), Action::GetEndpoint, Some("/flags")));
    }

    #[test]
    fn any_subject_rules_cover_unauthenticated_callers() {
        let a = acls(
            r#"{"permissive": false, "get_endpoints": [
                {"principals": {"type": "ANY"}, "paths": {"values": ["/metrics/snapshot"]}}
            ]}"#,
        );
        assert!(a.allowed(None, Action::GetEndpoint, Some("/metrics/snapshot")));
        assert!(a.allowed(Some("x"), Action::GetEndpoint, Some("/metrics/snapshot")));
        assert!(!a.allowed(None, Action::GetEndpoint, Some("/flags")));
        // A request for no particular object (ANY) matches a SOME rule? No: falls to permissive.
        assert!(!a.allowed(Some("x"), Action::GetEndpoint, None));
    }

    #[test]
    fn values_subjects_do_not_match_unauthenticated_callers() {
        let a = acls(
            r#"{"teardown_frameworks": [
                {"principals": {"values": ["ops"]}, "framework_principals": {"type": "ANY"}},
                {"principals": {"type": "ANY"}, "framework_principals": {"type": "NONE"}}
            ]}"#,
        );
        assert!(a.allowed(Some("ops"), Action::TeardownFramework, Some("fw")));
        assert!(!a.allowed(Some("dev"), Action::TeardownFramework, Some("fw")));
        assert!(!a.allowed(None, Action::TeardownFramework, Some("fw")));
    }

    #[test]
    fn root_needs_an_explicit_rule() {
        assert!(!Acls::default().allows_root(Some("a")).allowed);
        assert!(!Acls::default().allows_root(None).allowed);
        let any_users =
            acls(r#"{"run_tasks": [{"principals": {"type": "ANY"}, "users": {"type": "ANY"}}]}"#);
        assert!(any_users.allowed(Some("a"), Action::RunTask, Some("root")));
        assert!(!any_users.allows_root(Some("a")).allowed);
        let a = acls(
            r#"{"run_tasks": [{"principals": {"values": ["ops"]}, "users": {"values": ["root", "nobody"]}}]}"#,
        );
        assert!(a.allows_root(Some("ops")).allowed);
        assert!(!a.allows_root(Some("dev")).allowed);
        assert!(!a.allows_root(None).allowed);
        let harness = Acls::parse(Path::new("x"), Acls::ALLOW_ROOT_JSON).unwrap();
        assert_eq!(harness, Acls::allow_all_with_root());
        assert!(harness.allows_root(None).allowed);
        assert!(harness.allows_root(Some("anyone")).allowed);
        assert!(harness.allowed(Some("anyone"), Action::RunTask, Some("nobody")));
    }

    #[test]
    fn all_mesos_lists_parse_with_their_object_keys() {
        for action in Action::ALL {
            let text = format!(
                r#"{{"{}": [{{"principals": {{"values": ["p"]}}, "{}": {{"type": "NONE"}}}}]}}"#,
                action.key(),
                action.object_key()
            );
            let a = acls(&text);
            assert!(a.has_rules(action), "{action}");
            assert!(!a.allowed(Some("p"), action, Some("x")), "{action}");
        }
    }

    #[test]
    fn errors_name_the_key() {
        assert_eq!(
            err(r#"{"run_task": []}"#),
            "ACL file acls.json: run_task: unknown ACL key"
        );
        assert_eq!(
            err(r#"{"run_tasks": [{"principals": {"type": "ANY"}, "roles": {"type": "ANY"}}]}"#),
            "ACL file acls.json: run_tasks[0].roles: unknown key (a run_tasks rule has principals and users)"
        );
        assert_eq!(
            err(r#"{"run_tasks": [{"principals": {"type": "ANY"}}]}"#),
            "ACL file acls.json: run_tasks[0].users: missing"
        );
        assert!(err(
            r#"{"run_tasks": [{"principals": {"type": "ALL"}, "users": {"type": "ANY"}}]}"#
        )
        .contains("run_tasks[0].principals: unknown type \"ALL\""));
        assert!(err(r#"{"permissive": "yes"}"#).contains("permissive: expected true or false"));
        assert!(err("[1]").contains("top level"));
        assert!(err("{").starts_with("invalid JSON in ACL file acls.json"));
    }
}
