//! `s3://BUCKET/KEY` and `s3://BUCKET/PREFIX/`.

use crate::error::{Error, Step, quote};

/// An S3 object, or (with an empty key or one ending in `/`) every object under a prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Uri {
    pub bucket: String,
    pub key: String,
}

impl S3Uri {
    pub fn parse(text: &str) -> Result<Self, Error> {
        let bad = |problem: &str| {
            Error::new(Step::Read, format!("{} {problem}", quote(text, 200))).with_fix(
                "write s3://BUCKET/KEY for one object, or s3://BUCKET/PREFIX/ (with the \
                 trailing slash) for every object under a prefix",
            )
        };
        let rest = text
            .strip_prefix("s3://")
            .ok_or_else(|| bad("is not an s3:// URI"))?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if !valid_bucket(bucket) {
            return Err(bad(
                "does not name a bucket: 3 to 63 lowercase letters, digits, dots and hyphens, \
                 starting and ending with a letter or digit",
            ));
        }
        if key.len() > 1024 || key.chars().any(char::is_control) {
            return Err(bad(
                "has a key S3 cannot hold: at most 1024 bytes, no control characters",
            ));
        }
        Ok(S3Uri {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        })
    }

    /// Every object under `key` rather than one object.
    pub fn is_prefix(&self) -> bool {
        self.key.is_empty() || self.key.ends_with('/')
    }

    /// The object name a key under this prefix gets: the key relative to the prefix.
    pub fn relative<'a>(&self, key: &'a str) -> &'a str {
        key.strip_prefix(self.key.as_str()).unwrap_or(key)
    }
}

impl std::fmt::Display for S3Uri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// S3's bucket naming rules (general purpose buckets).
pub fn valid_bucket(bucket: &str) -> bool {
    let bytes = bucket.as_bytes();
    (3..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'.' || *b == b'-')
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && !bucket.contains("..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_and_prefixes_are_told_apart() {
        let object = S3Uri::parse("s3://exports.example/2026/12/orders 1.csv").unwrap();
        assert_eq!(object.bucket, "exports.example");
        assert_eq!(object.key, "2026/12/orders 1.csv");
        assert!(!object.is_prefix());
        let prefix = S3Uri::parse("s3://exports/2026/12/").unwrap();
        assert!(prefix.is_prefix());
        assert_eq!(prefix.relative("2026/12/a/b.csv"), "a/b.csv");
        assert!(S3Uri::parse("s3://exports").unwrap().is_prefix());
    }

    #[test]
    fn malformed_uris_are_named_with_the_fix() {
        for bad in [
            "exports/a",
            "s3://",
            "s3://Ex/a",
            "s3://ab/a",
            "s3://-ab/a",
            "s3://a..b/a",
            "s3://bucket/a\nb",
            "gs://bucket/a",
        ] {
            let e = S3Uri::parse(bad).unwrap_err();
            assert!(
                e.fix.as_deref().unwrap().contains("s3://BUCKET/KEY"),
                "{bad}: {e}"
            );
            assert!(!e.message.contains('\n'), "{e}");
        }
    }
}
