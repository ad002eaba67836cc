//! What an image name means: a registry reference, or a local image behind a transport prefix
//! (the prefixes of `skopeo` and `podman`).
//!
//! ```text
//! registry:5000/team/app:1.2            a registry (the tag defaults to latest)
//! registry:5000/team/app@sha256:…       a registry, by digest
//! docker://registry:5000/team/app:1.2   the same, with the transport spelled out
//! oci:/srv/images/app[:REF]             an OCI image layout directory (REF: a ref.name or digest)
//! oci-archive:/srv/app.tar[:REF]        a tar of an OCI image layout
//! docker-archive:/srv/app.tar[:REF]     a `docker save` tarball (REF: one of its RepoTags)
//! ```
//!
//! A local path holds no `:`; the first `:` after the transport's starts `REF`.

use crate::ImageError;
use std::fmt;
use std::path::PathBuf;

/// Where an image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Registry(oci_client::Reference),
    /// An OCI image layout directory.
    Layout {
        path: PathBuf,
        reference: Option<String>,
    },
    /// A tar of an OCI image layout.
    OciArchive {
        path: PathBuf,
        reference: Option<String>,
    },
    /// A `docker save` tarball.
    DockerArchive {
        path: PathBuf,
        reference: Option<String>,
    },
}

impl Source {
    pub fn parse(name: &str) -> Result<Self, ImageError> {
        let bad = |why: String| ImageError::Reference {
            name: name.to_string(),
            why,
        };
        let local = |rest: &str| -> Result<(PathBuf, Option<String>), ImageError> {
            // `PATH[:REF]`: the path holds no ':', the first one starts REF (which may hold
            // more, as in `sha256:…` or `busybox:latest`).
            let (path, reference) = match rest.split_once(':') {
                Some((path, reference)) => (path, Some(reference.to_string())),
                None => (rest, None),
            };
            let path = PathBuf::from(path);
            if !path.is_absolute() {
                return Err(bad(format!("the path {} must be absolute", path.display())));
            }
            if reference.as_deref() == Some("") {
                return Err(bad("the reference after ':' is empty".to_string()));
            }
            Ok((path, reference))
        };
        if let Some(rest) = name.strip_prefix("oci:") {
            let (path, reference) = local(rest)?;
            return Ok(Source::Layout { path, reference });
        }
        if let Some(rest) = name.strip_prefix("oci-archive:") {
            let (path, reference) = local(rest)?;
            return Ok(Source::OciArchive { path, reference });
        }
        if let Some(rest) = name.strip_prefix("docker-archive:") {
            let (path, reference) = local(rest)?;
            return Ok(Source::DockerArchive { path, reference });
        }
        let rest = name.strip_prefix("docker://").unwrap_or(name);
        if rest.starts_with('/') {
            return Err(bad(
                "a path needs a transport: oci:PATH, oci-archive:PATH or docker-archive:PATH"
                    .to_string(),
            ));
        }
        let reference: oci_client::Reference = rest
            .parse()
            .map_err(|err: oci_client::ParseError| bad(err.to_string()))?;
        if !reference
            .repository()
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/".contains(&b))
        {
            return Err(bad(format!(
                "the repository {:?} must be lowercase letters, digits and . _ - /",
                reference.repository()
            )));
        }
        if let Some(digest) = reference.digest() {
            crate::Digest::parse(digest).map_err(bad)?;
        }
        Ok(Source::Registry(reference))
    }

    pub fn is_registry(&self) -> bool {
        matches!(self, Source::Registry(_))
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let local = |f: &mut fmt::Formatter<'_>, t: &str, p: &PathBuf, r: &Option<String>| {
            write!(f, "{t}:{}", p.display())?;
            if let Some(r) = r {
                write!(f, ":{r}")?;
            }
            Ok(())
        };
        match self {
            Source::Registry(r) => write!(f, "{}", r.whole()),
            Source::Layout { path, reference } => local(f, "oci", path, reference),
            Source::OciArchive { path, reference } => local(f, "oci-archive", path, reference),
            Source::DockerArchive { path, reference } => {
                local(f, "docker-archive", path, reference)
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_parse() {
        let Source::Registry(r) = Source::parse("127.0.0.1:5000/team/app:1.2").unwrap() else {
            panic!()
        };
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "team/app");
        assert_eq!(r.tag(), Some("1.2"));
        let digest = format!("sha256:{}", "a".repeat(64));
        let Source::Registry(r) =
            Source::parse(&format!("docker://localhost:5000/app@{digest}")).unwrap()
        else {
            panic!()
        };
        assert_eq!(r.digest(), Some(digest.as_str()));
        assert_eq!(
            Source::parse("oci:/srv/img").unwrap(),
            Source::Layout {
                path: "/srv/img".into(),
                reference: None
            }
        );
        assert_eq!(
            Source::parse("oci-archive:/srv/img.tar:v1").unwrap(),
            Source::OciArchive {
                path: "/srv/img.tar".into(),
                reference: Some("v1".into())
            }
        );
        assert_eq!(
            Source::parse(&format!("oci:/srv/img:{digest}")).unwrap(),
            Source::Layout {
                path: "/srv/img".into(),
                reference: Some(digest.clone())
            }
        );
        assert_eq!(
            Source::parse("docker-archive:/srv/a.tar:busybox:latest").unwrap(),
            Source::DockerArchive {
                path: "/srv/a.tar".into(),
                reference: Some("busybox:latest".into())
            }
        );
    }

    #[test]
    fn bad_names_say_why() {
        for (name, why) in [
            ("oci:relative/dir", "absolute"),
            ("/srv/img", "transport"),
            ("UPPER/case", "UPPER"),
            ("localhost:5000/app@sha256:zz", "digest"),
        ] {
            let err = Source::parse(name).unwrap_err().to_string();
            assert!(
                err.contains(why) || err.contains("invalid"),
                "{name}: {err}"
            );
        }
    }
}
