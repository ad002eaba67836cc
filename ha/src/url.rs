//! `--master` and `--zk` values: `host:port`, or `zk://host1:port1,host2:port2/path`.

use std::fmt;
use std::str::FromStr;

/// A ZooKeeper ensemble and the znode under which masters contend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZkUrl {
    /// `host1:port1,host2:port2`, as the ZooKeeper client takes it.
    pub servers: String,
    /// The znode, e.g. `/strata` (absolute, no trailing slash).
    pub path: String,
}

impl fmt::Display for ZkUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "zk://{}{}", self.servers, self.path)
    }
}

impl FromStr for ZkUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let rest = text.strip_prefix("zk://").ok_or_else(|| {
            format!("{text:?} is not a zk:// URL (zk://host:port[,host:port]/path)")
        })?;
        let (servers, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => {
                return Err(format!(
                    "{text:?} has no znode path (zk://host:port/strata)"
                ))
            }
        };
        if servers.contains('@') {
            return Err(format!(
                "{text:?}: credentials in zk:// URLs are not supported"
            ));
        }
        if servers.is_empty() {
            return Err(format!("{text:?} names no ZooKeeper server"));
        }
        for server in servers.split(',') {
            let (host, port) = server
                .rsplit_once(':')
                .ok_or_else(|| format!("{text:?}: server {server:?} is not host:port"))?;
            if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
                return Err(format!("{text:?}: server {server:?} is not host:port"));
            }
        }
        let path = path.trim_end_matches('/');
        if path.is_empty()
            || path.contains("//")
            || path.split('/').any(|c| c == "." || c == "..")
            || path.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(format!(
                "{text:?}: the znode path must be absolute, e.g. zk://host:2181/strata"
            ));
        }
        Ok(ZkUrl {
            servers: servers.to_string(),
            path: path.to_string(),
        })
    }
}

/// Where a daemon or client finds the leading master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MasterAddress {
    /// A fixed `host:port`.
    Direct(String),
    /// Whoever leads in ZooKeeper.
    Zk(ZkUrl),
}

impl fmt::Display for MasterAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MasterAddress::Direct(addr) => f.write_str(addr),
            MasterAddress::Zk(url) => url.fmt(f),
        }
    }
}

impl FromStr for MasterAddress {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.starts_with("zk://") {
            return text.parse().map(MasterAddress::Zk);
        }
        if let Some(scheme) = text.split_once("://").map(|(s, _)| s) {
            return Err(format!(
                "{text:?}: unsupported scheme {scheme}:// (use host:port or zk://host:port/path)"
            ));
        }
        let valid = text.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
        if !valid {
            return Err(format!(
                "{text:?} is not host:port or zk://host:port[,host:port]/path"
            ));
        }
        Ok(MasterAddress::Direct(text.to_string()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_mesos_style_zk_urls() {
        let url: ZkUrl = "zk://10.0.0.1:2181,10.0.0.2:2181/strata/".parse().unwrap();
        assert_eq!(url.servers, "10.0.0.1:2181,10.0.0.2:2181");
        assert_eq!(url.path, "/strata");
        assert_eq!(url.to_string(), "zk://10.0.0.1:2181,10.0.0.2:2181/strata");
        assert_eq!("zk://h:1/a/b".parse::<ZkUrl>().unwrap().path, "/a/b");
    }

    #[test]
    fn bad_urls_are_named() {
        for bad in [
            "zk://h:2181",
            "zk:///strata",
            "zk://h/strata",
            "zk://h:0/strata",
            "zk://h:2181/",
            "zk://h:2181/a/../b",
            "zk://u:p@h:2181/x",
            "http://h:1/x",
        ] {
            let err = bad.parse::<ZkUrl>().unwrap_err();
            assert!(err.contains(bad), "{bad}: {err}");
        }
    }

    #[test]
    fn master_addresses() {
        assert_eq!(
            "127.0.0.1:5050".parse::<MasterAddress>().unwrap(),
            MasterAddress::Direct("127.0.0.1:5050".into())
        );
        assert!(matches!(
            "zk://h:2181/strata".parse::<MasterAddress>().unwrap(),
            MasterAddress::Zk(_)
        ));
        for bad in ["nohost", ":5050", "h:0", "h:x", "http://h:5050", "zk://h"] {
            assert!(bad.parse::<MasterAddress>().is_err(), "{bad}");
        }
    }
}
