//! Where a master keeps its registry (what a new leader must know): a znode written with
//! versioned compare-and-set when masters are elected through ZooKeeper, or a file written
//! atomically (temp, fsync, rename, fsync the directory) for a standalone master. The content is
//! the master's business: this stores bytes.

use std::io::Write;
use std::path::{Path, PathBuf};
use zookeeper_client as zk;

/// The znode under the election path that holds the registry.
pub const ZNODE: &str = "registry";
/// The file in a standalone master's work dir that holds the registry.
pub const FILE: &str = "registry.json";

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("registry {}: {source}", path.display())]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("registry znode {path}: {source}")]
    Zk { path: String, source: zk::Error },
    #[error(
        "registry znode {path}: another master wrote it (version {found} where {expected} was \
         expected); this master no longer leads"
    )]
    Conflict {
        path: String,
        expected: i32,
        found: String,
    },
}

/// A registry's storage.
pub enum Store {
    File {
        path: PathBuf,
    },
    Zk {
        client: zk::Client,
        path: String,
        /// The znode version last read or written (-1: it did not exist).
        version: i32,
    },
}

impl Store {
    pub fn file(work_dir: &Path) -> Store {
        Store::File {
            path: work_dir.join(FILE),
        }
    }

    pub fn zk(client: zk::Client, election_path: &str) -> Store {
        Store::Zk {
            client,
            path: format!("{election_path}/{ZNODE}"),
            version: -1,
        }
    }

    /// Where it lives, for messages.
    pub fn location(&self) -> String {
        match self {
            Store::File { path } => path.display().to_string(),
            Store::Zk { path, .. } => format!("znode {path}"),
        }
    }

    /// The stored bytes (`None` if nothing was ever stored); remembers the znode version for
    /// the next [`Store::store`].
    pub async fn load(&mut self) -> Result<Option<Vec<u8>>, RegistryError> {
        match self {
            Store::File { path } => match std::fs::read(&*path) {
                Ok(data) => Ok(Some(data)),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(source) => Err(RegistryError::File {
                    path: path.clone(),
                    source,
                }),
            },
            Store::Zk {
                client,
                path,
                version,
            } => match client.get_data(path).await {
                Ok((data, stat)) => {
                    *version = stat.version;
                    Ok(Some(data))
                }
                Err(zk::Error::NoNode) => {
                    *version = -1;
                    Ok(None)
                }
                Err(source) => Err(RegistryError::Zk {
                    path: path.clone(),
                    source,
                }),
            },
        }
    }

    /// Replaces the stored bytes. On ZooKeeper the write succeeds only if nobody else wrote
    /// since this store's last load or store (compare-and-set on the znode version).
    pub async fn store(&mut self, data: &[u8]) -> Result<(), RegistryError> {
        match self {
            Store::File { path } => {
                write_atomic(path, data).map_err(|source| RegistryError::File {
                    path: path.clone(),
                    source,
                })
            }
            Store::Zk {
                client,
                path,
                version,
            } => {
                if *version < 0 {
                    let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
                    return match client.create(path, data, &options).await {
                        Ok((stat, _)) => {
                            *version = stat.version;
                            Ok(())
                        }
                        Err(zk::Error::NodeExists) => Err(RegistryError::Conflict {
                            path: path.clone(),
                            expected: -1,
                            found: "an existing znode".into(),
                        }),
                        Err(source) => Err(RegistryError::Zk {
                            path: path.clone(),
                            source,
                        }),
                    };
                }
                match client.set_data(path, data, Some(*version)).await {
                    Ok(stat) => {
                        *version = stat.version;
                        Ok(())
                    }
                    Err(zk::Error::BadVersion) => Err(RegistryError::Conflict {
                        path: path.clone(),
                        expected: *version,
                        found: "a newer one".into(),
                    }),
                    Err(source) => Err(RegistryError::Zk {
                        path: path.clone(),
                        source,
                    }),
                }
            }
        }
    }
}

/// Writes `data` to `path` so that a crash leaves the old or the new content, never a mix.
fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension("json.tmp");
    {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(data)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn file_store_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::file(dir.path());
        assert_eq!(store.load().await.unwrap(), None);
        store.store(b"{\"a\":1}").await.unwrap();
        store.store(b"{\"a\":2}").await.unwrap();
        assert_eq!(store.load().await.unwrap().unwrap(), b"{\"a\":2}");
        assert!(!dir.path().join("registry.json.tmp").exists());
    }
}
