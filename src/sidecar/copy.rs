//! `POST /v1/copy`: which S3 object to deliver, and as what, from a small JSON body
//! (`{"source": "s3://BUCKET/KEY", "name": "NAME", "content_type": ..., "metadata": {...}}`).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::answer::Answer;
use super::routes::plain_object_name;
use crate::s3::S3Uri;

/// A copy request's body is a few hundred bytes; more is refused unread.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    source: String,
    name: String,
    content_type: Option<String>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

/// What to copy: the S3 object and the object it becomes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyRequest {
    pub source: S3Uri,
    pub name: String,
    pub content_type: Option<String>,
    pub metadata: Vec<(String, String)>,
}

/// The request in `body`, sent with `content_type`, which must be JSON (a form could be sent
/// by any web page).
pub fn copy_request(content_type: Option<&str>, body: &[u8]) -> Result<CopyRequest, Answer> {
    let essence = content_type
        .and_then(|c| c.split(';').next())
        .map(|c| c.trim().to_ascii_lowercase());
    if essence.as_deref() != Some("application/json") {
        return Err(Answer::refuse(
            415,
            "POST /v1/copy takes a JSON body: send Content-Type: application/json",
        ));
    }
    if body.len() > MAX_BODY_BYTES {
        return Err(Answer::refuse(
            413,
            "the copy request is larger than 64 KiB",
        ));
    }
    let parsed: Body = serde_json::from_slice(body).map_err(|e| {
        Answer::refuse(
            400,
            format!(
                "the copy request is not {{\"source\": \"s3://BUCKET/KEY\", \"name\": \"NAME\"}} \
                 (with content_type and metadata optional): {}",
                crate::error::excerpt(e.to_string().as_bytes(), 200)
            ),
        )
    })?;
    let source = S3Uri::parse(&parsed.source).map_err(|e| Answer::refuse(400, e.to_string()))?;
    if source.is_prefix() {
        return Err(Answer::refuse(
            400,
            "the source names a prefix; the sidecar copies one object a request: list the \
             prefix and send one request per object (host-test deliver takes prefixes)",
        ));
    }
    let name = plain_object_name(&parsed.name).map_err(|problem| Answer::refuse(400, problem))?;
    Ok(CopyRequest {
        source,
        name,
        content_type: parsed.content_type,
        metadata: parsed.metadata.into_iter().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_names_one_s3_object_and_a_safe_name_in_json() {
        let ok = copy_request(
            Some("application/json; charset=utf-8"),
            br#"{"source": "s3://exports/a b.csv", "name": "in/a.csv", "metadata": {"k": "v"}}"#,
        )
        .unwrap();
        assert_eq!(ok.source.key, "a b.csv");
        assert_eq!(ok.metadata, vec![("k".to_owned(), "v".to_owned())]);
        let status =
            |ct: Option<&str>, body: &str| copy_request(ct, body.as_bytes()).unwrap_err().status;
        assert_eq!(
            status(Some("text/plain"), r#"{"source":"s3://b/k","name":"n"}"#),
            415
        );
        assert_eq!(status(None, r#"{"source":"s3://b/k","name":"n"}"#), 415);
        let json = Some("application/json");
        assert_eq!(status(json, r#"{"source":"s3://bkt/p/","name":"n"}"#), 400);
        assert_eq!(
            status(json, r#"{"source":"s3://bkt/k","name":"../x"}"#),
            400
        );
        assert_eq!(status(json, r#"{"source":"s3://bkt/k"}"#), 400);
        assert_eq!(
            status(json, r#"{"source":"s3://bkt/k","name":"n","extra":1}"#),
            400
        );
        assert_eq!(status(json, "not json"), 400);
    }
}
