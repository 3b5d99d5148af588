//! The object's settings from a request's headers.

use super::answer::Answer;
use crate::delivery::json_api::{check_content_type, check_metadata};

/// The object's settings from the request headers: `content-type`, `x-goog-meta-*` and
/// `content-length` (its size; absent for a chunked body).
#[derive(Debug, PartialEq, Eq)]
pub struct ObjectHeaders {
    pub content_type: Option<String>,
    pub metadata: Vec<(String, String)>,
    pub size: Option<u64>,
}

pub fn object_from_headers<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> Result<ObjectHeaders, Answer> {
    let mut object = ObjectHeaders {
        content_type: None,
        metadata: Vec::new(),
        size: None,
    };
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        let text = || {
            std::str::from_utf8(value)
                .map(str::trim)
                .map_err(|_| Answer::refuse(400, format!("the {name} header is not UTF-8")))
        };
        if name == "content-type" {
            object.content_type = Some(text()?.to_owned());
        } else if name == "content-length" {
            let size = text()?.parse().map_err(|_| {
                Answer::refuse(400, "the content-length header is not a byte count")
            })?;
            object.size = Some(size);
        } else if let Some(key) = name.strip_prefix("x-goog-meta-") {
            if key.is_empty() {
                return Err(Answer::refuse(
                    400,
                    "an x-goog-meta- header has no key: send x-goog-meta-KEY: VALUE",
                ));
            }
            let value = text()?;
            object.metadata.push((key.to_owned(), value.to_owned()));
        }
    }
    // The same rule as every other way in (`delivery::json_api::validate_object`).
    if let Some(Err(problem)) = object.content_type.as_deref().map(check_content_type) {
        return Err(Answer::refuse(
            400,
            format!("the content-type header {problem}"),
        ));
    }
    if let Err(problem) = check_metadata(object.metadata.iter().map(|(k, v)| (k, v))) {
        return Err(Answer::refuse(
            400,
            format!("the x-goog-meta-* headers: the metadata {problem}"),
        ));
    }
    Ok(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_make_the_object() {
        let object = object_from_headers([
            ("Content-Type", &b"text/csv"[..]),
            ("content-length", b"42"),
            ("X-Goog-Meta-Batch", b" 17 "),
            ("x-goog-hash", b"ignored"),
        ])
        .unwrap();
        assert_eq!(
            object,
            ObjectHeaders {
                content_type: Some("text/csv".into()),
                metadata: vec![("batch".into(), "17".into())],
                size: Some(42),
            }
        );
        assert_eq!(
            object_from_headers([("content-length", &b"-1"[..])])
                .unwrap_err()
                .status,
            400
        );
        let big = "v".repeat(9000);
        let err = object_from_headers([("x-goog-meta-k", big.as_bytes())]).unwrap_err();
        assert!(err.body.to_string().contains("8192"), "{}", err.body);
        assert_eq!(
            object_from_headers([("x-goog-meta-", &b"v"[..])])
                .unwrap_err()
                .status,
            400
        );
    }

    #[test]
    fn headers_obey_the_rule_every_object_obeys() {
        let refused = |headers: &[(&str, &[u8])]| {
            object_from_headers(headers.iter().copied())
                .unwrap_err()
                .status
        };
        assert_eq!(refused(&[("content-type", b"text/plain\x01")]), 400);
        let big = vec![b'v'; 9 * 1024];
        assert_eq!(refused(&[("x-goog-meta-k", &big)]), 400);
        assert_eq!(refused(&[("x-goog-meta-k", b"a\x7fb")]), 400);
    }
}
