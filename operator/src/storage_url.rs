//! Storage URLs as the operator accepts them: parsed, in normal form, and compared segment by
//! segment, so "under this prefix" means what the store will see (docs/security.md, "Storage
//! confinement").
//!
//! A URL is refused, not repaired, when it is not already in normal form: a `.` or `..` path
//! segment (also percent-encoded, `%2e`), an empty segment (`//`), a backslash, whitespace, a
//! control or non-ASCII character, a percent-encoded `/` or `\` inside a segment, a query, a
//! fragment, a port, user information (except the container in Azure's
//! `abfs(s)://<container>@<account>.dfs.core.windows.net/…` form), an upper-case scheme or
//! bucket, or anything the `url` crate would rewrite. One trailing `/` is dropped.
//!
//! Schemes are those the render pod supports (render-pod/src/storage.rs): `file`, `s3`, `s3a`,
//! `gs`, `az`, `azure`, `adl`, `abfs`, `abfss`, and `https` only for the object-store hosts the
//! render pod maps to S3 or Azure clients (`*.amazonaws.com`, `*.r2.cloudflarestorage.com`,
//! `*.blob|dfs.core.windows.net`, `*.blob|dfs.fabric.microsoft.com`). Plain `http://` is never
//! accepted: the render pod has no HTTP client.

use std::fmt;

/// The longest URL accepted (the CRDs' maxLength says the same).
pub const MAX_URL_LENGTH: usize = 2048;

/// Every scheme the render pod can read and write.
pub const SCHEMES: &[&str] = &[
    "file", "s3", "s3a", "gs", "az", "azure", "adl", "abfs", "abfss", "https",
];

/// Host suffixes of `https://` URLs that the render pod maps to an object store. Matched on a
/// label boundary (`.amazonaws.com`, never `evilamazonaws.com`).
pub const HTTPS_STORE_HOSTS: &[&str] = &[
    "amazonaws.com",
    "r2.cloudflarestorage.com",
    "blob.core.windows.net",
    "dfs.core.windows.net",
    "blob.fabric.microsoft.com",
    "dfs.fabric.microsoft.com",
];

/// A storage URL in normal form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageUrl {
    text: String,
    scheme: String,
    /// Bucket, container or host; empty for `file`.
    authority: String,
    /// Path segments as written (percent-encoded).
    raw: Vec<String>,
    /// Path segments as the store sees them (percent-decoded).
    segments: Vec<String>,
}

/// Why a URL was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlError(pub String);

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn refuse<T>(why: impl Into<String>) -> Result<T, UrlError> {
    Err(UrlError(why.into()))
}

impl StorageUrl {
    /// Parses `input`, refusing anything not in normal form (see the module docs).
    pub fn parse(input: &str) -> Result<Self, UrlError> {
        if input.is_empty() {
            return refuse("is empty");
        }
        if input.len() > MAX_URL_LENGTH {
            return refuse(format!("is longer than {MAX_URL_LENGTH} characters"));
        }
        if let Some(c) = input.chars().find(|c| !c.is_ascii()) {
            return refuse(format!(
                "contains the non-ASCII character {c:?} (percent-encode it)"
            ));
        }
        if input.bytes().any(|b| b.is_ascii_control()) {
            return refuse("contains a control character");
        }
        if input.bytes().any(|b| b.is_ascii_whitespace()) {
            return refuse("contains whitespace (percent-encode it as %20)");
        }
        if input.contains('\\') {
            return refuse("contains a backslash");
        }
        let Some((scheme, rest)) = input.split_once("://") else {
            return refuse("is not of the form scheme://…");
        };
        if !SCHEMES.contains(&scheme) {
            return refuse(format!(
                "has the scheme {scheme:?}; supported: {} (https only for S3 and Azure hosts)",
                SCHEMES.join(", ")
            ));
        }
        if rest.contains('?') {
            return refuse("has a query (`?…`)");
        }
        if rest.contains('#') {
            return refuse("has a fragment (`#…`)");
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        check_authority(scheme, authority)?;
        if scheme == "file" && path.is_empty() {
            return refuse("has no path (file URLs are file:///absolute/path)");
        }
        // One trailing slash is a directory spelling, not a segment.
        let path = path.strip_suffix('/').unwrap_or(path);
        let mut raw = Vec::new();
        let mut segments = Vec::new();
        if !path.is_empty() {
            for segment in path[1..].split('/') {
                segments.push(check_segment(segment)?);
                raw.push(segment.to_string());
            }
        }
        let mut text = format!("{scheme}://{authority}");
        for segment in &raw {
            text.push('/');
            text.push_str(segment);
        }
        // Special schemes always have a path; `file:///` and `https://host/` are their roots.
        if matches!(scheme, "file" | "https") && raw.is_empty() {
            text.push('/');
        }
        // Whatever the URL parser would rewrite is not in normal form.
        let parsed =
            url::Url::parse(&text).map_err(|e| UrlError(format!("does not parse: {e}")))?;
        if parsed.as_str() != text {
            return refuse(format!(
                "is not in normal form (a URL parser reads it as {:?})",
                parsed.as_str()
            ));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() || parsed.port().is_some() {
            return refuse("has a query, fragment or port");
        }
        if parsed.password().is_some() {
            return refuse("contains a password");
        }
        Ok(Self {
            text,
            scheme: scheme.to_string(),
            authority: authority.to_string(),
            raw,
            segments,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// `file://` URLs: what a pod reaches through the pool's volume (or its image), never
    /// through a Secret.
    pub fn is_file(&self) -> bool {
        self.scheme == "file"
    }

    /// Path segments as the store sees them.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// This URL with one more path segment. `segment` must be a plain name (a Kubernetes
    /// namespace or object name: lower-case letters, digits, `-` and `.`, never `.` or `..`).
    pub fn child(&self, segment: &str) -> Result<Self, UrlError> {
        let base = self.text.strip_suffix('/').unwrap_or(&self.text);
        Self::parse(&format!("{base}/{segment}"))
    }

    /// Whether this URL lies strictly under `base`: the same scheme and bucket (as written: an
    /// alias such as `s3a://` for `s3://` is another location here) and `base`'s path segments
    /// followed by at least one more.
    pub fn is_strictly_under(&self, base: &StorageUrl) -> bool {
        self.scheme == base.scheme
            && self.authority == base.authority
            && self.segments.len() > base.segments.len()
            && self.segments.starts_with(&base.segments)
    }

    /// The store and key this URL may address, with scheme aliases folded together.
    fn location(&self) -> (Store, Vec<String>) {
        let bucket = |name: &str| name.to_string();
        let mut key = self.segments.clone();
        let store = match self.scheme.as_str() {
            "file" => Store::File,
            "s3" | "s3a" => Store::S3(bucket(&self.authority)),
            "gs" => Store::Gcs(bucket(&self.authority)),
            "az" | "azure" | "adl" | "abfs" | "abfss" => match self.authority.split_once('@') {
                Some((container, host)) => Store::Azure {
                    account: host.split('.').next().map(str::to_string),
                    container: container.to_string(),
                },
                None => Store::Azure {
                    account: None,
                    container: self.authority.clone(),
                },
            },
            _ => {
                // https: the first path segment is the bucket or container, except for
                // virtual-hosted S3 (`<bucket>.s3….amazonaws.com`).
                let host = self.authority.as_str();
                let first_label = host.split('.').next().unwrap_or_default().to_string();
                let is_azure =
                    host.ends_with(".core.windows.net") || host.ends_with(".fabric.microsoft.com");
                if is_azure {
                    let container = if key.is_empty() {
                        String::new()
                    } else {
                        key.remove(0)
                    };
                    Store::Azure {
                        account: Some(first_label),
                        container,
                    }
                } else if host.ends_with(".amazonaws.com") && !host.starts_with("s3") {
                    Store::S3(first_label)
                } else if key.is_empty() {
                    Store::S3(String::new())
                } else {
                    Store::S3(key.remove(0))
                }
            }
        };
        (store, key)
    }

    /// Whether the two URLs may name overlapping places (one is, or lies under, the other),
    /// in any spelling: scheme aliases (`s3`/`s3a`/`https://…amazonaws.com`, the Azure forms)
    /// are folded together, and an Azure URL that does not name its account may be any account.
    pub fn may_overlap(&self, other: &StorageUrl) -> bool {
        let (a, a_key) = self.location();
        let (b, b_key) = other.location();
        a.may_equal(&b) && (a_key.starts_with(&b_key) || b_key.starts_with(&a_key))
    }
}

impl fmt::Display for StorageUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Store {
    File,
    S3(String),
    Gcs(String),
    Azure {
        account: Option<String>,
        container: String,
    },
}

impl Store {
    fn may_equal(&self, other: &Store) -> bool {
        match (self, other) {
            (
                Store::Azure {
                    account: a,
                    container: c,
                },
                Store::Azure {
                    account: b,
                    container: d,
                },
            ) => c == d && (a.is_none() || b.is_none() || a == b),
            _ => self == other,
        }
    }
}

fn is_bucket_char(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
}

fn check_host(host: &str) -> Result<(), UrlError> {
    let ok = !host.is_empty()
        && host.bytes().all(is_bucket_char)
        && host.as_bytes()[0].is_ascii_alphanumeric()
        && !host.contains("..");
    if ok {
        Ok(())
    } else {
        refuse(format!(
            "has the bucket or host {host:?}: only lower-case letters, digits, `.`, `-` and `_`, \
             starting with a letter or digit"
        ))
    }
}

fn check_authority(scheme: &str, authority: &str) -> Result<(), UrlError> {
    if scheme == "file" {
        if !authority.is_empty() {
            return refuse("names a host (file URLs are file:///absolute/path)");
        }
        return Ok(());
    }
    if authority.contains(':') {
        return refuse("has a port or a password");
    }
    if let Some((container, host)) = authority.split_once('@') {
        // Azure Data Lake's documented form names the container before the account.
        let azure_form = matches!(scheme, "abfs" | "abfss")
            && (host.ends_with(".dfs.core.windows.net")
                || host.ends_with(".dfs.fabric.microsoft.com"));
        if !azure_form {
            return refuse(
                "has user information (`user@`); only abfs(s)://<container>@<account>.dfs.core.windows.net names a container there",
            );
        }
        check_host(container)?;
        return check_host(host);
    }
    check_host(authority)?;
    if scheme == "https" {
        let store_host = HTTPS_STORE_HOSTS
            .iter()
            .any(|suffix| authority.ends_with(&format!(".{suffix}")));
        if !store_host {
            return refuse(format!(
                "is an https URL of {authority:?}, which is not an S3 or Azure storage host \
                 (the render pod reads no plain HTTP(S) URLs)"
            ));
        }
    }
    Ok(())
}

/// Checks one raw path segment; answers it percent-decoded.
fn check_segment(segment: &str) -> Result<String, UrlError> {
    if segment.is_empty() {
        return refuse("has an empty path segment (`//`)");
    }
    let bytes = segment.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = segment
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            let Some(byte) = hex else {
                return refuse(format!(
                    "has a bad percent-escape in the segment {segment:?}"
                ));
            };
            decoded.push(byte);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    let Ok(decoded) = String::from_utf8(decoded) else {
        return refuse(format!(
            "has a segment that is not UTF-8 once decoded: {segment:?}"
        ));
    };
    if decoded == "." || decoded == ".." {
        return refuse(format!(
            "has a `{decoded}` path segment ({segment:?}); relative segments are never allowed"
        ));
    }
    if decoded.contains(['/', '\\']) || decoded.chars().any(char::is_control) {
        return refuse(format!(
            "has an encoded `/`, `\\` or control character in the segment {segment:?}"
        ));
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(input: &str) -> StorageUrl {
        StorageUrl::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"))
    }

    fn refused(input: &str) -> String {
        match StorageUrl::parse(input) {
            Ok(url) => panic!("{input} was accepted as {url}"),
            Err(e) => e.0,
        }
    }

    #[test]
    fn supported_urls_parse_and_lose_one_trailing_slash() {
        for (input, normal) in [
            ("s3://bucket/tessera", "s3://bucket/tessera"),
            ("s3://bucket/tessera/", "s3://bucket/tessera"),
            ("s3://bucket", "s3://bucket"),
            ("s3a://bucket/a/b", "s3a://bucket/a/b"),
            ("gs://studio-renders/tessera", "gs://studio-renders/tessera"),
            ("az://renders/tessera", "az://renders/tessera"),
            ("file:///data/tessera", "file:///data/tessera"),
            ("file:///", "file:///"),
            (
                "abfss://renders@acct.dfs.core.windows.net/x",
                "abfss://renders@acct.dfs.core.windows.net/x",
            ),
            (
                "https://acct.blob.core.windows.net/renders/x",
                "https://acct.blob.core.windows.net/renders/x",
            ),
            (
                "https://bucket.s3.eu-west-1.amazonaws.com/x",
                "https://bucket.s3.eu-west-1.amazonaws.com/x",
            ),
            ("s3://b/a%20b/c", "s3://b/a%20b/c"),
        ] {
            assert_eq!(ok(input).as_str(), normal, "{input}");
        }
    }

    #[test]
    fn relative_and_empty_segments_are_refused_in_every_spelling() {
        for input in [
            "s3://b/a/../c",
            "s3://b/..",
            "s3://b/a/./c",
            "s3://b/a/%2e%2e/c",
            "s3://b/a/%2E%2e/c",
            "s3://b/a/.%2e/c",
            "s3://b/a/%2e/c",
            "file:///data/../etc",
            "file:///data/%2e%2e",
        ] {
            assert!(refused(input).contains("segment"), "{input}");
        }
        for input in ["s3://b/a//c", "file:////data", "s3://b//"] {
            assert!(refused(input).contains("empty path segment"), "{input}");
        }
    }

    #[test]
    fn everything_else_not_in_normal_form_is_refused_with_its_reason() {
        for (input, why) in [
            ("", "empty"),
            ("s3://b/a\\b", "backslash"),
            ("s3://b/a b", "whitespace"),
            ("s3://b/a\tb", "control"),
            ("s3://b/é", "non-ASCII"),
            ("s3://b/x?versionId=1", "query"),
            ("s3://b/x#frag", "fragment"),
            ("s3://user@b/x", "user information"),
            ("s3://user:pw@b/x", "port or a password"),
            (
                "https://evil.example.com/x",
                "not an S3 or Azure storage host",
            ),
            (
                "https://evilamazonaws.com/x",
                "not an S3 or Azure storage host",
            ),
            ("https://bucket.s3.amazonaws.com:8443/x", "port"),
            ("http://bucket.s3.amazonaws.com/x", "scheme \"http\""),
            ("ftp://host/x", "scheme \"ftp\""),
            ("S3://b/x", "scheme"),
            ("s3://Bucket/x", "bucket or host"),
            ("file://host/x", "names a host"),
            ("file://", "no path"),
            ("s3://b/a%2fb", "encoded `/`"),
            ("s3://b/a%5Cb", "encoded `/`, `\\`"),
            ("s3://b/a%00b", "control"),
            ("s3://b/a%zz", "percent-escape"),
            ("s3://b/a%ff", "not UTF-8"),
            ("s3://b/a\"b", "normal form"),
            ("s3:/b/x", "scheme://"),
        ] {
            let error = refused(input);
            assert!(error.contains(why), "{input:?}: {error}");
        }
        assert!(refused(&format!("s3://b/{}", "a".repeat(MAX_URL_LENGTH))).contains("longer"));
    }

    #[test]
    fn under_means_the_same_bucket_and_whole_segments() {
        let area = ok("s3://bucket/tessera/team-a");
        assert!(ok("s3://bucket/tessera/team-a/shot").is_strictly_under(&area));
        assert!(ok("s3://bucket/tessera/team-a/shot/v2").is_strictly_under(&area));
        assert!(ok("s3://bucket/tessera/team%2Da/shot").is_strictly_under(&area));
        assert!(!ok("s3://bucket/tessera/team-a").is_strictly_under(&area));
        assert!(!ok("s3://bucket/tessera/team-ab/shot").is_strictly_under(&area));
        assert!(!ok("s3://bucket/tessera/team-b/shot").is_strictly_under(&area));
        assert!(!ok("s3://other/tessera/team-a/shot").is_strictly_under(&area));
        assert!(!ok("s3a://bucket/tessera/team-a/shot").is_strictly_under(&area));
        assert!(!ok("gs://bucket/tessera/team-a/shot").is_strictly_under(&area));
        let root = ok("file:///");
        assert!(ok("file:///data").is_strictly_under(&root));
        assert_eq!(root.child("data").unwrap(), ok("file:///data"));
        assert_eq!(ok("s3://bucket/tessera/").child("team-a").unwrap(), area);
    }

    #[test]
    fn overlap_sees_through_aliases_and_unnamed_azure_accounts() {
        let storage = ok("s3://bucket/tessera");
        assert!(ok("s3://bucket/tessera").may_overlap(&storage));
        assert!(ok("s3://bucket").may_overlap(&storage));
        assert!(ok("s3a://bucket/tessera/team-a").may_overlap(&storage));
        assert!(ok("https://bucket.s3.amazonaws.com/tessera").may_overlap(&storage));
        assert!(ok("https://s3.eu-west-1.amazonaws.com/bucket/tessera/x").may_overlap(&storage));
        assert!(!ok("s3://bucket/libraries").may_overlap(&storage));
        assert!(!ok("s3://bucket/tessera-libraries").may_overlap(&storage));
        assert!(!ok("s3://other/tessera").may_overlap(&storage));
        assert!(!ok("gs://bucket/tessera").may_overlap(&storage));

        let azure = ok("az://renders/tessera");
        assert!(ok("https://acct.blob.core.windows.net/renders/tessera/x").may_overlap(&azure));
        assert!(ok("abfss://renders@acct.dfs.core.windows.net/").may_overlap(&azure));
        assert!(!ok("az://assets/tessera").may_overlap(&azure));
        let named = ok("https://acct.blob.core.windows.net/renders/tessera");
        assert!(!ok("https://other.blob.core.windows.net/renders/tessera").may_overlap(&named));

        assert!(ok("file:///data").may_overlap(&ok("file:///data/tessera")));
        assert!(!ok("file:///scenes").may_overlap(&ok("file:///data/tessera")));
    }
}
