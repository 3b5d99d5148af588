//! The object's settings from a request's headers.

use super::answer::Answer;

/// GCS refuses more custom metadata than this (keys and values together).
const MAX_METADATA_BYTES: usize = 8 * 1024;

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
    let mut metadata_bytes = 0;
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
            metadata_bytes += key.len() + value.len();
            object.metadata.push((key.to_owned(), value.to_owned()));
        }
    }
    if metadata_bytes > MAX_METADATA_BYTES {
        return Err(Answer::refuse(
            400,
            format!(
                "the x-goog-meta-* headers carry {metadata_bytes} bytes; Cloud Storage allows \
                 at most {MAX_METADATA_BYTES} of custom metadata"
            ),
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
}
