//! Image references by Docker's naming rules: `debian` is `docker.io/library/debian:latest`, `user/app:1`
//! is on Docker Hub, a first component with a `.` or `:` (or `localhost`) names the registry, and
//! `name@sha256:<hex>` pins a digest.

use std::fmt;

use crate::error::{ImageError, ImageResult};

/// A parsed, normalized image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageReference {
    inner: oci_client::Reference,
}

impl ImageReference {
    /// Parses `s` by Docker's naming rules; a malformed reference is an `invalid_image_reference` error.
    pub fn parse(s: &str) -> ImageResult<ImageReference> {
        let invalid = |reason: String| ImageError::InvalidReference { reference: s.to_owned(), reason };
        if s.trim() != s || s.is_empty() {
            return Err(invalid("empty, or surrounded by whitespace".to_owned()));
        }
        let inner: oci_client::Reference = s.parse().map_err(|error: oci_client::ParseError| {
            let name = s.split(['@']).next().unwrap_or(s);
            let path = name.rsplit_once('/').map_or(name, |(_, last)| last);
            let path = path.split(':').next().unwrap_or(path);
            if error == oci_client::ParseError::ReferenceInvalidFormat && path.chars().any(|c| c.is_ascii_uppercase()) {
                invalid("repository names must be lowercase".to_owned())
            } else {
                invalid(error.to_string())
            }
        })?;
        Ok(ImageReference { inner })
    }

    /// The registry host (with port if any), e.g. `docker.io` or `127.0.0.1:5000`.
    pub fn registry(&self) -> &str {
        self.inner.registry()
    }

    /// The repository path, e.g. `library/debian`.
    pub fn repository(&self) -> &str {
        self.inner.repository()
    }

    /// The tag (`latest` when neither tag nor digest was given).
    pub fn tag(&self) -> Option<&str> {
        self.inner.tag()
    }

    /// The pinned digest, if any.
    pub fn digest(&self) -> Option<&str> {
        self.inner.digest()
    }

    pub(crate) fn oci(&self) -> &oci_client::Reference {
        &self.inner
    }
}

impl fmt::Display for ImageReference {
    /// The normalized form, e.g. `docker.io/library/debian:latest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.inner.whole())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn docker_naming_rules() {
        let cases = [
            ("debian", "docker.io", "library/debian", Some("latest"), None),
            ("debian:12", "docker.io", "library/debian", Some("12"), None),
            ("user/app:1", "docker.io", "user/app", Some("1"), None),
            ("index.docker.io/user/app", "docker.io", "user/app", Some("latest"), None),
            ("ghcr.io/org/team/app:v1.2", "ghcr.io", "org/team/app", Some("v1.2"), None),
            ("127.0.0.1:5000/repo:tag", "127.0.0.1:5000", "repo", Some("tag"), None),
            ("localhost/x", "localhost", "x", Some("latest"), None),
            ("localhost:5000/x/y", "localhost:5000", "x/y", Some("latest"), None),
        ];
        for (input, registry, repository, tag, digest) in cases {
            let r = ImageReference::parse(input).unwrap();
            assert_eq!(
                (r.registry(), r.repository(), r.tag(), r.digest()),
                (registry, repository, tag, digest),
                "{input}"
            );
        }
        let pinned = ImageReference::parse(&format!("repo@{DIGEST}")).unwrap();
        assert_eq!((pinned.repository(), pinned.tag(), pinned.digest()), ("library/repo", None, Some(DIGEST)));
        assert_eq!(pinned.to_string(), format!("docker.io/library/repo@{DIGEST}"));
        assert_eq!(ImageReference::parse("debian").unwrap().to_string(), "docker.io/library/debian:latest");
    }

    #[test]
    fn malformed_references_are_refused_with_a_reason() {
        for bad in [
            "",
            " debian",
            "Debian",
            "user/App:1",
            "repo:",
            "repo:tag with space",
            "repo@sha256:1234",
            "repo@md5:0123456789abcdef0123456789abcdef",
            "/repo",
            "repo/",
            "http://registry/repo",
            "a//b",
        ] {
            let error = ImageReference::parse(bad).unwrap_err();
            assert_eq!(error.code(), "invalid_image_reference", "{bad:?}");
        }
        let upper = ImageReference::parse("Debian").unwrap_err().to_string();
        assert!(upper.contains("lowercase"), "{upper}");
    }
}
