//! What a request asks for: the route, and which object names an application may use.

use super::answer::Answer;

/// GCS refuses longer object names.
const MAX_NAME_BYTES: usize = 1024;

/// What a request asks the sidecar to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Health,
    /// `destination` is `None` on the short paths, which serve the only destination.
    Verify {
        destination: Option<String>,
    },
    Deliver {
        destination: Option<String>,
        name: String,
    },
    /// `POST /v1/copy`: an S3 object into the bucket, named by the JSON body.
    Copy {
        destination: Option<String>,
    },
    /// `GET /v1/doctor`: the chain checked step by step (it delivers a handshake object).
    Doctor {
        destination: Option<String>,
    },
}

/// Splits `path_and_query` into a [`Route`], or the answer refusing it.
pub fn route(method: &str, path_and_query: &str) -> Result<Route, Answer> {
    if path_and_query.contains('?') {
        return Err(Answer::refuse(
            400,
            "query parameters are not supported: name the object in the path and set \
             Content-Type and x-goog-meta-* headers",
        ));
    }
    let path = path_and_query;
    if path == "/healthz" {
        return allow(method, &["GET", "HEAD"]).map(|()| Route::Health);
    }
    let (destination, rest) = match path.strip_prefix("/v1/destinations/") {
        Some(rest) => match rest.split_once('/') {
            Some((id, rest)) if !id.is_empty() => (Some(id.to_owned()), rest),
            _ => return Err(not_found(path)),
        },
        None => match path.strip_prefix("/v1/") {
            Some(rest) => (None, rest),
            None => return Err(not_found(path)),
        },
    };
    if rest == "verify" {
        return allow(method, &["POST"]).map(|()| Route::Verify { destination });
    }
    if rest == "copy" {
        return allow(method, &["POST"]).map(|()| Route::Copy { destination });
    }
    if rest == "doctor" {
        return allow(method, &["GET"]).map(|()| Route::Doctor { destination });
    }
    if let Some(raw) = rest.strip_prefix("objects/") {
        allow(method, &["PUT"])?;
        let name = object_name(raw).map_err(|problem| Answer::refuse(400, problem))?;
        return Ok(Route::Deliver { destination, name });
    }
    if rest == "objects" {
        return Err(Answer::refuse(
            400,
            "the object name is missing: PUT /v1/objects/NAME",
        ));
    }
    Err(not_found(path))
}

fn allow(method: &str, allowed: &[&str]) -> Result<(), Answer> {
    if allowed.contains(&method) {
        return Ok(());
    }
    let list = allowed.join(", ");
    let mut answer = Answer::refuse(405, format!("{method} is not allowed here; use {list}"));
    answer.headers.push(("allow", list));
    Err(answer)
}

fn not_found(path: &str) -> Answer {
    let shown: String = path.chars().take(200).collect();
    Answer::refuse(
        404,
        format!(
            "nothing is served at {shown_q}: use PUT /v1/objects/NAME, POST /v1/verify, \
             GET /v1/doctor, GET /healthz, or /v1/destinations/ID/... when several destinations are configured",
            shown_q = crate::error::quote(&shown, 100)
        ),
    )
}

/// The object name from the raw (percent-encoded) rest of the path. Names that could mean
/// something else to a file system or a later tool are refused rather than rewritten: empty
/// segments (a leading `/`, `a//b`), `.` and `..` (also encoded), backslashes, control
/// characters, more than 1024 bytes.
pub fn object_name(raw: &str) -> Result<String, String> {
    if raw.is_empty() {
        return Err("the object name is missing: PUT /v1/objects/NAME".into());
    }
    let name = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| "the object name is not UTF-8 once percent-decoded".to_owned())?;
    plain_object_name(&name)
}

/// [`object_name`]'s rules for a name given as it is (in JSON, not in a path).
pub fn plain_object_name(name: &str) -> Result<String, String> {
    if name.is_empty() {
        return Err("the object name is empty".into());
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(format!(
            "the object name is {} bytes; Cloud Storage allows at most {MAX_NAME_BYTES}",
            name.len()
        ));
    }
    if name.chars().any(|c| c.is_control()) {
        return Err("the object name contains a control character".into());
    }
    if name.contains('\\') {
        return Err("the object name contains a backslash; use / between parts".into());
    }
    for segment in name.split('/') {
        match segment {
            "" => {
                return Err(format!(
                    "the object name {name_q} has an empty part (a leading, trailing or \
                     doubled /); name it like reports/2026-11-26.csv",
                    name_q = crate::error::quote(name, 100)
                ));
            }
            "." | ".." => {
                return Err(format!(
                    "the object name {name_q} has a {segment_q} part; names are taken \
                     literally, so relative parts are refused",
                    name_q = crate::error::quote(name, 100),
                    segment_q = crate::error::quote(segment, 100)
                ));
            }
            _ => {}
        }
    }
    if name.starts_with(".well-known/acme-challenge/") {
        return Err("Cloud Storage refuses names under .well-known/acme-challenge/".into());
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let deliver = |d: Option<&str>, n: &str| Route::Deliver {
            destination: d.map(str::to_owned),
            name: n.to_owned(),
        };
        assert_eq!(route("GET", "/healthz").unwrap(), Route::Health);
        assert_eq!(
            route("POST", "/v1/verify").unwrap(),
            Route::Verify { destination: None }
        );
        assert_eq!(
            route("PUT", "/v1/objects/reports/a%20b.csv").unwrap(),
            deliver(None, "reports/a b.csv")
        );
        assert_eq!(
            route("PUT", "/v1/destinations/partner-a/objects/x.bin").unwrap(),
            deliver(Some("partner-a"), "x.bin")
        );
        assert_eq!(
            route("GET", "/v1/destinations/partner-a/doctor").unwrap(),
            Route::Doctor {
                destination: Some("partner-a".into())
            }
        );
        assert_eq!(
            route("GET", "/v1/doctor").unwrap(),
            Route::Doctor { destination: None }
        );
        assert_eq!(route("POST", "/v1/doctor").unwrap_err().status, 405);
        assert_eq!(
            route("POST", "/v1/destinations/partner-a/verify").unwrap(),
            Route::Verify {
                destination: Some("partner-a".into())
            }
        );
    }

    #[test]
    fn refused_requests_say_why() {
        let refused = |method, path| route(method, path).unwrap_err();
        let wrong_method = refused("GET", "/v1/objects/a.txt");
        assert_eq!(wrong_method.status, 405);
        assert_eq!(wrong_method.headers, vec![("allow", "PUT".to_owned())]);
        assert_eq!(refused("PUT", "/v1/objects/").status, 400);
        assert_eq!(refused("PUT", "/v1/objects").status, 400);
        assert_eq!(refused("PUT", "/v1/things/a").status, 404);
        assert_eq!(refused("PUT", "/v2/objects/a").status, 404);
        assert_eq!(refused("PUT", "/v1/destinations//objects/a").status, 404);
        assert_eq!(refused("PUT", "/v1/objects/a?x=1").status, 400);
        assert_eq!(refused("DELETE", "/healthz").status, 405);
    }

    #[test]
    fn traversal_and_odd_names_are_refused() {
        for raw in [
            "../etc/passwd",
            "a/../../b",
            "%2e%2e/secret",
            "%2E%2E%2Fsecret",
            "a/%2e/b",
            "/leading",
            "a//b",
            "trailing/",
            "a%00b",
            "a%0d%0aSet-Cookie:x",
            "..%5csecret",
            "%ff%fe",
            ".well-known/acme-challenge/token",
        ] {
            let err = object_name(raw).unwrap_err();
            assert!(!err.is_empty(), "{raw}");
        }
        assert!(object_name(&"a".repeat(1025)).is_err());
        assert_eq!(object_name(&"a".repeat(1024)).unwrap().len(), 1024);
        assert_eq!(object_name("..a/b..").unwrap(), "..a/b..");
        assert_eq!(object_name("%252e%252e").unwrap(), "%2e%2e");
    }
}
