//! The user a container's process runs as: the task's user, else the image's `User`
//! (`name`, `uid`, `name:group`, `uid:gid`), looked up in the image's own `/etc/passwd` and
//! `/etc/group` (never the host's).

use std::path::Path;

/// A resolved user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
}

impl ResolvedUser {
    pub const ROOT: ResolvedUser = ResolvedUser {
        uid: 0,
        gid: 0,
        additional_gids: Vec::new(),
    };
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
}

fn passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            Some(PasswdEntry {
                name: f.first()?.to_string(),
                uid: f.get(2)?.parse().ok()?,
                gid: f.get(3)?.parse().ok()?,
            })
        })
        .collect()
}

/// (name, gid, members)
fn groups(text: &str) -> Vec<(String, u32, Vec<String>)> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            Some((
                f.first()?.to_string(),
                f.get(2)?.parse().ok()?,
                f.get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
            ))
        })
        .collect()
}

/// Resolves `spec` with the image's `/etc/passwd` and `/etc/group` contents (empty when absent).
pub fn resolve(spec: &str, passwd_text: &str, group_text: &str) -> Result<ResolvedUser, String> {
    let users = passwd(passwd_text);
    let groups = groups(group_text);
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user.is_empty() {
        return Err(format!("invalid user {spec:?}"));
    }
    let (uid, mut gid, name) = match user.parse::<u32>() {
        Ok(uid) => match users.iter().find(|e| e.uid == uid) {
            Some(e) => (uid, e.gid, Some(e.name.clone())),
            None => (uid, uid, None),
        },
        Err(_) => {
            let e = users
                .iter()
                .find(|e| e.name == user)
                .ok_or_else(|| format!("user {user:?} is not in the image's /etc/passwd"))?;
            (e.uid, e.gid, Some(e.name.clone()))
        }
    };
    if let Some(group) = group {
        gid = match group.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => groups
                .iter()
                .find(|(n, _, _)| n == group)
                .map(|(_, g, _)| *g)
                .ok_or_else(|| format!("group {group:?} is not in the image's /etc/group"))?,
        };
    }
    let additional_gids = match (&name, group) {
        (Some(name), None) => groups
            .iter()
            .filter(|(_, g, members)| *g != gid && members.contains(name))
            .map(|(_, g, _)| *g)
            .collect(),
        _ => Vec::new(),
    };
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
    })
}

/// Reads `<rootfs>/etc/<name>` unless it (or `etc`) is a symlink, which could point at the host's.
pub fn read_etc(rootfs: &Path, name: &str) -> String {
    let etc = rootfs.join("etc");
    let file = etc.join(name);
    let is_link = |p: &Path| {
        std::fs::symlink_metadata(p)
            .map(|m| m.file_type().is_symlink())
            .unwrap_or(true)
    };
    if is_link(&etc) || is_link(&file) {
        return String::new();
    }
    std::fs::read(&file)
        .map(|d| String::from_utf8_lossy(&d).into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nwww:x:33:33::/var/www:/bin/false\n";
    const GROUP: &str = "root:x:0:\nwww:x:33:\nstaff:x:50:www\n";

    #[test]
    fn users_resolve_in_the_image() {
        assert_eq!(resolve("root", PASSWD, GROUP).unwrap(), ResolvedUser::ROOT);
        assert_eq!(
            resolve("www", PASSWD, GROUP).unwrap(),
            ResolvedUser {
                uid: 33,
                gid: 33,
                additional_gids: vec![50]
            }
        );
        assert_eq!(resolve("1000", "", "").unwrap().gid, 1000);
        assert_eq!(resolve("1000:7", "", "").unwrap().gid, 7);
        assert_eq!(resolve("www:staff", PASSWD, GROUP).unwrap().gid, 50);
        assert!(resolve("nobody", PASSWD, GROUP)
            .unwrap_err()
            .contains("/etc/passwd"));
        assert!(resolve("www:nogroup", PASSWD, GROUP)
            .unwrap_err()
            .contains("/etc/group"));
    }
}
