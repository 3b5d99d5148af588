//! What S3 answered: an object's size, ETag, version and checksum; a ListObjectsV2 page; and
//! S3's refusals as diagnoses with fixes.

use crate::error::{Error, Step, excerpt, quote};

/// The object a GetObject answered with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    pub size: u64,
    pub etag: Option<String>,
    pub version_id: Option<String>,
    pub checksum: Option<SourceChecksum>,
}

/// The checksum S3 keeps for an object (`x-amz-checksum-*`, `x-amz-checksum-type`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceChecksum {
    /// `CRC32C`, `CRC32`, `CRC64NVME`, `SHA1` or `SHA256`.
    pub algorithm: String,
    /// Base64, as S3 gives it (a composite one ends in `-PARTS`).
    pub value: String,
    /// `FULL_OBJECT` or `COMPOSITE`.
    pub kind: String,
}

impl SourceChecksum {
    /// The object's own CRC32C, when this is one: composite checksums (of the parts) and other
    /// algorithms are not.
    pub fn full_object_crc32c(&self) -> Option<&str> {
        (self.algorithm == "CRC32C" && self.kind == "FULL_OBJECT").then_some(self.value.as_str())
    }
}

const ALGORITHMS: &[&str] = &["CRC32C", "CRC32", "CRC64NVME", "SHA1", "SHA256"];

fn header<'a>(head: &'a http::Response<()>, name: &str) -> Option<&'a str> {
    head.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The object described by a successful GetObject answer.
pub fn object_info(head: &http::Response<()>, uri: &str) -> Result<ObjectInfo, Error> {
    let size = header(head, "content-length")
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| {
            Error::new(
                Step::Read,
                format!("S3 answered GetObject for {uri} without a Content-Length"),
            )
        })?;
    let checksum = ALGORITHMS.iter().find_map(|algorithm| {
        let value = header(
            head,
            &format!("x-amz-checksum-{}", algorithm.to_lowercase()),
        )?;
        let kind = match header(head, "x-amz-checksum-type") {
            Some(kind) => kind.to_owned(),
            // Before S3 said so, a composite checksum was told by its part count.
            None if value.contains('-') => "COMPOSITE".to_owned(),
            None => "FULL_OBJECT".to_owned(),
        };
        Some(SourceChecksum {
            algorithm: (*algorithm).to_owned(),
            value: value.to_owned(),
            kind,
        })
    });
    Ok(ObjectInfo {
        size,
        etag: header(head, "etag").map(str::to_owned),
        version_id: header(head, "x-amz-version-id")
            .filter(|v| *v != "null")
            .map(str::to_owned),
        checksum,
    })
}

/// One page of a listing: keys and sizes, and the token of the next page.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListPage {
    pub objects: Vec<(String, u64)>,
    pub next: Option<String>,
}

pub fn list_page(body: &[u8], uri: &str) -> Result<ListPage, Error> {
    let bad = || {
        Error::new(
            Step::Read,
            format!(
                "S3 answered ListObjectsV2 for {uri} with something that is not a listing: {}",
                excerpt(body, 100)
            ),
        )
    };
    let text = std::str::from_utf8(body).map_err(|_| bad())?;
    let doc = roxmltree::Document::parse(text).map_err(|_| bad())?;
    let root = doc.root_element();
    if root.tag_name().name() != "ListBucketResult" {
        return Err(bad());
    }
    let child = |node: roxmltree::Node<'_, '_>, name: &str| {
        node.children()
            .find(|c| c.is_element() && c.tag_name().name() == name)
            .and_then(|c| c.text())
            .map(str::to_owned)
    };
    let mut page = ListPage::default();
    for contents in root
        .children()
        .filter(|c| c.is_element() && c.tag_name().name() == "Contents")
    {
        let key = child(contents, "Key").ok_or_else(bad)?;
        let size = child(contents, "Size")
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(bad)?;
        page.objects.push((key, size));
    }
    if child(root, "IsTruncated").as_deref() == Some("true") {
        page.next = Some(child(root, "NextContinuationToken").ok_or_else(bad)?);
    }
    Ok(page)
}

/// What an S3 refusal means.
#[derive(Debug)]
pub enum Refusal {
    /// The bucket is in this other region: ask again there.
    WrongRegion(String),
    Error(Error),
}

/// Which call S3 refused: the missing permission depends on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    GetObject,
    ListObjectsV2,
}

/// S3's answer `status` (with its headers and XML body) to `call` for `uri`, diagnosed.
pub fn refusal(
    status: u16,
    headers: &http::HeaderMap,
    body: &[u8],
    call: Call,
    uri: &str,
    region: &str,
) -> Refusal {
    let text = std::str::from_utf8(body).unwrap_or("");
    let doc = roxmltree::Document::parse(text).ok();
    let field = |name: &str| {
        doc.as_ref().and_then(|d| {
            d.descendants()
                .find(|n| n.is_element() && n.tag_name().name() == name)
                .and_then(|n| n.text())
                .map(str::to_owned)
        })
    };
    let code = field("Code").unwrap_or_default();
    let bucket_region = headers
        .get("x-amz-bucket-region")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| field("Region"));
    let redirected = matches!(status, 301 | 307 | 400)
        && matches!(
            code.as_str(),
            "PermanentRedirect"
                | "AuthorizationHeaderMalformed"
                | "IllegalLocationConstraintException"
                | ""
        );
    if redirected
        && let Some(other) = bucket_region
            .clone()
            .filter(|r| r != region && crate::config::validate_region("region", r).is_ok())
    {
        return Refusal::WrongRegion(other);
    }
    let said = if code.is_empty() {
        excerpt(body, 200)
    } else {
        format!(
            "{}: {}",
            excerpt(code.as_bytes(), 60),
            excerpt(field("Message").unwrap_or_default().as_bytes(), 200)
        )
    };
    let call_name = match call {
        Call::GetObject => "GetObject",
        Call::ListObjectsV2 => "ListObjectsV2",
    };
    let error = Error::answered(
        Step::Read,
        status,
        format!("S3 {call_name} for {uri} answered {status}: {said}"),
    );
    let fix = match (code.as_str(), call) {
        ("NoSuchBucket", _) => Some(
            "no bucket has that name: check the s3:// URI (the bucket name alone, no region)"
                .to_owned(),
        ),
        ("NoSuchKey", _) => Some(
            "no object has that key in the bucket: check the key (keys are case-sensitive; for \
             every object under a prefix, end the URI with /)"
                .to_owned(),
        ),
        ("AccessDenied", Call::GetObject) => Some(
            "the pipeline's AWS identity needs s3:GetObject on the object (and kms:Decrypt for \
             an SSE-KMS object) in its IAM policy and the bucket policy"
                .to_owned(),
        ),
        ("AccessDenied", Call::ListObjectsV2) => Some(
            "the pipeline's AWS identity needs s3:ListBucket on the bucket (for this prefix) in \
             its IAM policy and the bucket policy"
                .to_owned(),
        ),
        ("PermanentRedirect" | "AuthorizationHeaderMalformed", _) => Some(format!(
            "the bucket is not in {region}: set aws_region (or AWS_REGION) to its region{}",
            match bucket_region {
                Some(r) => format!(", {}", quote(&r, 40)),
                None => String::new(),
            }
        )),
        ("InvalidAccessKeyId" | "SignatureDoesNotMatch" | "ExpiredToken" | "InvalidToken", _) => {
            Some("S3 refused the pipeline's AWS credentials: check them".to_owned())
        }
        ("PreconditionFailed", Call::GetObject) => Some(
            "the object was replaced while it was read; nothing was created: deliver it again"
                .to_owned(),
        ),
        _ => None,
    };
    Refusal::Error(match fix {
        Some(fix) => error.with_fix(fix),
        None => error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(pairs: &[(&str, &str)]) -> http::Response<()> {
        let mut response = http::Response::builder();
        for (name, value) in pairs {
            response = response.header(*name, *value);
        }
        response.body(()).unwrap()
    }

    #[test]
    fn checksums_say_whether_they_are_the_objects_own() {
        let full = object_info(
            &head(&[
                ("content-length", "5"),
                ("etag", "\"e\""),
                ("x-amz-checksum-crc32c", "yZRlqg=="),
                ("x-amz-checksum-type", "FULL_OBJECT"),
                ("x-amz-version-id", "null"),
            ]),
            "s3://b/k",
        )
        .unwrap();
        assert_eq!(
            full.checksum.as_ref().unwrap().full_object_crc32c(),
            Some("yZRlqg==")
        );
        assert_eq!(full.version_id, None);
        let composite = object_info(
            &head(&[("content-length", "5"), ("x-amz-checksum-crc32c", "abc=-3")]),
            "u",
        )
        .unwrap();
        assert_eq!(composite.checksum.as_ref().unwrap().kind, "COMPOSITE");
        assert_eq!(composite.checksum.unwrap().full_object_crc32c(), None);
        let sha = object_info(
            &head(&[("content-length", "5"), ("x-amz-checksum-sha256", "x")]),
            "u",
        )
        .unwrap();
        assert_eq!(sha.checksum.unwrap().full_object_crc32c(), None);
        assert!(object_info(&head(&[]), "u").is_err());
    }

    #[test]
    fn pages_are_read_with_their_continuation() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name>
<Contents><Key>p/a &amp; b.csv</Key><Size>12</Size></Contents>
<Contents><Key>p/c</Key><Size>0</Size></Contents>
<IsTruncated>true</IsTruncated><NextContinuationToken>tok/1</NextContinuationToken>
</ListBucketResult>"#;
        let page = list_page(body, "s3://b/p/").unwrap();
        assert_eq!(
            page.objects,
            vec![("p/a & b.csv".into(), 12), ("p/c".into(), 0)]
        );
        assert_eq!(page.next.as_deref(), Some("tok/1"));
        assert!(list_page(b"<Error/>", "s3://b/p/").is_err());
    }

    #[test]
    fn refusals_are_diagnosed_and_regions_followed() {
        let xml = |code: &str| {
            format!("<Error><Code>{code}</Code><Message>m\nm</Message></Error>").into_bytes()
        };
        let none = http::HeaderMap::new();
        let Refusal::Error(e) = refusal(
            404,
            &none,
            &xml("NoSuchKey"),
            Call::GetObject,
            "s3://b/k",
            "us-east-1",
        ) else {
            panic!()
        };
        assert!(e.fix.unwrap().contains("key"));
        assert!(!e.message.contains('\n'));
        let Refusal::Error(e) = refusal(
            403,
            &none,
            &xml("AccessDenied"),
            Call::ListObjectsV2,
            "s3://b/",
            "us-east-1",
        ) else {
            panic!()
        };
        assert!(e.fix.unwrap().contains("s3:ListBucket"));
        let mut moved = http::HeaderMap::new();
        moved.insert("x-amz-bucket-region", "eu-west-1".parse().unwrap());
        let Refusal::WrongRegion(r) = refusal(
            301,
            &moved,
            &xml("PermanentRedirect"),
            Call::GetObject,
            "u",
            "us-east-1",
        ) else {
            panic!()
        };
        assert_eq!(r, "eu-west-1");
    }
}
