//! The sidecar's HTTP surface, sans IO: what a request asks for ([`route`]), which object
//! names an application may use ([`object_name`]), the object's settings from its headers
//! ([`object_from_headers`]), the destinations from the environment ([`destinations`]) and the
//! answers ([`Answer`]). The wasi:http glue only moves bytes.
//!
//! ```text
//! GET  /healthz                                  200, the destinations (never a secret)
//! PUT  /v1/objects/{name...}                     201 + receipt   (one destination)
//! POST /v1/verify                                201 + receipt of the handshake object
//! PUT  /v1/destinations/{id}/objects/{name...}   201 + receipt   (several destinations)
//! POST /v1/destinations/{id}/verify
//! ```

use serde_json::json;

use crate::config::{ConfigError, Destination, DestinationInput};
use crate::error::{Error, Step};
use crate::gcs::deliver::Receipt;

/// The environment variable that lists several destinations (`partner-a,partner-b`).
pub const DESTINATIONS_VARIABLE: &str = "WIF_PUSH_DESTINATIONS";
/// The id of the one destination when [`DESTINATIONS_VARIABLE`] is unset.
pub const DEFAULT_ID: &str = "default";
/// GCS refuses longer object names.
const MAX_NAME_BYTES: usize = 1024;
/// GCS refuses more custom metadata than this (keys and values together).
const MAX_METADATA_BYTES: usize = 8 * 1024;

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
}

/// An answer: status, and a JSON body.
#[derive(Debug, PartialEq)]
pub struct Answer {
    pub status: u16,
    /// JSON text.
    pub body: String,
    /// Extra headers (`allow` on a 405).
    pub headers: Vec<(&'static str, String)>,
}

impl Answer {
    fn new(status: u16, body: serde_json::Value) -> Self {
        Answer {
            status,
            body: body.to_string(),
            headers: Vec::new(),
        }
    }

    /// A request the sidecar refuses before doing anything.
    pub fn refuse(status: u16, message: impl Into<String>) -> Self {
        Answer::new(
            status,
            json!({"error": {"step": "request", "message": message.into()}}),
        )
    }

    /// A failed step, in the shape `host-test --json` prints, with the HTTP status that tells
    /// the application what to do about it.
    pub fn failed(error: &Error) -> Self {
        Answer::new(
            status_for(error),
            json!({"error": {
                "step": error.step.name(),
                "message": error.to_string(),
                "fix": error.fix,
                "status": error.status,
                "transient": error.transient,
            }}),
        )
    }

    /// 201: an object was created.
    pub fn delivered(receipt: &Receipt) -> Self {
        // Serialized from the struct, so the fields keep the CLI's order (status first).
        Answer {
            status: 201,
            body: serde_json::to_string(receipt).expect("receipts serialize"),
            headers: Vec::new(),
        }
    }

    /// `GET /healthz`: 200 with what the sidecar delivers to, or 503 when its configuration is
    /// unusable.
    pub fn health(destinations: Result<&[(String, Destination)], &Error>) -> Self {
        match destinations {
            Ok(destinations) => {
                let list: Vec<_> = destinations
                    .iter()
                    .map(|(id, d)| {
                        json!({
                            "id": id,
                            "bucket": d.bucket,
                            "prefix": d.prefix,
                            "service_account": d.service_account,
                            "audience": d.audience,
                        })
                    })
                    .collect();
                Answer::new(200, json!({"status": "ok", "destinations": list}))
            }
            Err(error) => Answer {
                status: 503,
                ..Answer::failed(error)
            },
        }
    }

    pub fn body_bytes(&self) -> Vec<u8> {
        format!("{}\n", self.body).into_bytes()
    }
}

/// The HTTP status for a failed step:
/// - 400 when the request body was at fault (shorter or longer than its Content-Length),
/// - 412 when the object exists (it is never overwritten),
/// - 422 when a configuration is wrong, on this side or the partner's (retrying will not help;
///   the message names the setting and the fix),
/// - 502 when Google or AWS answered with a passing failure (5xx, 429), 504 when they did not
///   answer at all; both worth retrying later.
pub fn status_for(error: &Error) -> u16 {
    match error {
        Error {
            status: Some(412), ..
        } => 412,
        Error {
            step: Step::Read, ..
        } => 400,
        Error {
            transient: true,
            status: Some(_),
            ..
        } => 502,
        Error {
            transient: true, ..
        } => 504,
        _ => 422,
    }
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
            "nothing is served at {shown:?}: use PUT /v1/objects/NAME, POST /v1/verify, \
             GET /healthz, or /v1/destinations/ID/... when several destinations are configured"
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
                    "the object name {name:?} has an empty part (a leading, trailing or \
                     doubled /); name it like reports/2026-11-26.csv"
                ));
            }
            "." | ".." => {
                return Err(format!(
                    "the object name {name:?} has a {segment:?} part; names are taken \
                     literally, so relative parts are refused"
                ));
            }
            _ => {}
        }
    }
    if name.starts_with(".well-known/acme-challenge/") {
        return Err("Cloud Storage refuses names under .well-known/acme-challenge/".into());
    }
    Ok(name.into_owned())
}

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

/// The destination a route names, from the configured ones.
pub fn pick<'a>(
    destinations: &'a [(String, Destination)],
    wanted: Option<&str>,
) -> Result<&'a Destination, Answer> {
    match wanted {
        Some(id) => destinations
            .iter()
            .find(|(have, _)| have == id)
            .map(|(_, d)| d)
            .ok_or_else(|| {
                let ids: Vec<&str> = destinations.iter().map(|(id, _)| id.as_str()).collect();
                Answer::refuse(
                    404,
                    format!(
                        "no destination {id:?} is configured; configured: {}",
                        ids.join(", ")
                    ),
                )
            }),
        None => match destinations {
            [(_, only)] => Ok(only),
            _ => {
                let ids: Vec<&str> = destinations.iter().map(|(id, _)| id.as_str()).collect();
                Err(Answer::refuse(
                    400,
                    format!(
                        "several destinations are configured ({}): use \
                         /v1/destinations/ID/objects/NAME or /v1/destinations/ID/verify",
                        ids.join(", ")
                    ),
                ))
            }
        },
    }
}

/// One setting of a destination: its field and the variable suffix that sets it.
const SETTINGS: &[&str] = &[
    "credential_config",
    "credential_config_file",
    "project_number",
    "pool_id",
    "provider_id",
    "service_account",
    "bucket",
    "prefix",
    "token_lifetime_seconds",
    "aws_region",
    "imds_v1_fallback",
    "sign_target_resource",
    "single_request_limit",
    "chunk_size",
    "initial_retry_delay_ms",
    "storage_url",
    "token_url",
    "iam_credentials_url",
];

/// The environment variable for `setting` of destination `id` (`None`: the shared one).
/// `WIF_PUSH_BUCKET`, or `WIF_PUSH_PARTNER_A_BUCKET` for destination `partner-a`.
pub fn variable(id: Option<&str>, setting: &str) -> String {
    let mut name = String::from("WIF_PUSH_");
    if let Some(id) = id {
        name.push_str(&id.to_ascii_uppercase().replace('-', "_"));
        name.push('_');
    }
    name.push_str(&setting.to_ascii_uppercase());
    name
}

/// The configured destinations, validated, from `lookup` (the environment, then `wasi:config`)
/// and `read_file` (for `WIF_PUSH_CREDENTIAL_CONFIG_FILE`). A destination's own variable wins
/// over the shared one, so common settings are written once.
pub fn destinations(
    lookup: &dyn Fn(&str) -> Option<String>,
    read_file: &dyn Fn(&str) -> std::io::Result<String>,
) -> Result<Vec<(String, Destination)>, Error> {
    let listed = lookup(DESTINATIONS_VARIABLE);
    let several = listed.is_some();
    let ids: Vec<String> = match listed {
        Some(list) => {
            let ids: Vec<String> = list
                .split(',')
                .map(|id| id.trim().to_owned())
                .filter(|id| !id.is_empty())
                .collect();
            if ids.is_empty() {
                return Err(config_error(
                    DESTINATIONS_VARIABLE,
                    "is empty",
                    "list destination ids, e.g. WIF_PUSH_DESTINATIONS=partner-a,partner-b, or \
                     unset it for one destination",
                ));
            }
            for id in &ids {
                let valid = id.len() <= 63
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !id.starts_with('-');
                if !valid {
                    return Err(config_error(
                        DESTINATIONS_VARIABLE,
                        &format!("names the destination {id:?}"),
                        "use ids of lowercase letters, digits and '-', e.g. partner-a",
                    ));
                }
            }
            ids
        }
        None => vec![DEFAULT_ID.to_owned()],
    };
    ids.into_iter()
        .map(|id| {
            let own = several.then_some(id.as_str());
            let destination = destination(own, lookup, read_file)
                .map_err(|e| in_destination(e, several.then_some(id.as_str())))?;
            Ok((id, destination))
        })
        .collect()
}

fn destination(
    id: Option<&str>,
    lookup: &dyn Fn(&str) -> Option<String>,
    read_file: &dyn Fn(&str) -> std::io::Result<String>,
) -> Result<Destination, Error> {
    // Which variable set each setting, to name it in errors.
    let get = |setting: &str| -> Option<(String, String)> {
        let own = id.map(|id| variable(Some(id), setting));
        own.into_iter()
            .chain([variable(None, setting)])
            .find_map(|name| lookup(&name).map(|value| (name, value)))
    };
    let number = |setting: &str| -> Result<Option<u64>, Error> {
        get(setting)
            .map(|(name, value)| {
                value.trim().parse().map_err(|_| {
                    config_error(&name, &format!("is {value:?}"), "set a whole number")
                })
            })
            .transpose()
    };
    let small = |setting: &str| -> Result<Option<u32>, Error> {
        number(setting)?
            .map(|n| {
                u32::try_from(n).map_err(|_| {
                    config_error(&variable(id, setting), "is too large", "see the README")
                })
            })
            .transpose()
    };
    let flag = |setting: &str| -> Result<Option<bool>, Error> {
        get(setting)
            .map(|(name, value)| match value.trim() {
                "true" | "1" => Ok(true),
                "false" | "0" => Ok(false),
                _ => Err(config_error(
                    &name,
                    &format!("is {value:?}"),
                    "set true or false",
                )),
            })
            .transpose()
    };
    let text = |setting: &str| get(setting).map(|(_, value)| value);
    let credential_config = match (text("credential_config"), get("credential_config_file")) {
        (Some(json), _) => Some(json),
        (None, Some((name, path))) => Some(read_file(&path).map_err(|e| {
            config_error(
                &name,
                &format!("names {path:?}, which cannot be read ({e})"),
                "give the host access to the file (wasmtime: --dir), or put its JSON in \
                 WIF_PUSH_CREDENTIAL_CONFIG",
            )
        })?),
        (None, None) => None,
    };
    let input = DestinationInput {
        credential_config,
        project_number: text("project_number"),
        pool_id: text("pool_id"),
        provider_id: text("provider_id"),
        service_account: text("service_account"),
        bucket: text("bucket"),
        prefix: text("prefix"),
        token_lifetime_seconds: small("token_lifetime_seconds")?,
        aws_region: text("aws_region"),
        storage_url: text("storage_url"),
        token_url: text("token_url"),
        iam_credentials_url: text("iam_credentials_url"),
        imds_v1_fallback: flag("imds_v1_fallback")?.unwrap_or(false),
        sign_target_resource: flag("sign_target_resource")?,
        single_request_limit: number("single_request_limit")?,
        chunk_size: number("chunk_size")?,
        initial_retry_delay_ms: small("initial_retry_delay_ms")?,
    };
    Destination::from_input(&input).map_err(|e| {
        // Name the variable, not the field, when the field is one of ours.
        let field = if SETTINGS.contains(&e.field.as_str()) {
            get(&e.field)
                .map(|(name, _)| name)
                .unwrap_or_else(|| variable(id, &e.field))
        } else {
            e.field
        };
        Error::from(ConfigError { field, ..e })
    })
}

fn config_error(variable: &str, problem: &str, fix: &str) -> Error {
    Error::from(ConfigError {
        field: variable.to_owned(),
        problem: problem.to_owned(),
        fix: fix.to_owned(),
    })
}

fn in_destination(mut error: Error, id: Option<&str>) -> Error {
    if let Some(id) = id {
        error.message = format!("destination {id}: {}", error.message);
    }
    error
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn no_files(path: &str) -> std::io::Result<String> {
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{path}: no such file"),
        ))
    }

    const FACTS: &[(&str, &str)] = &[
        ("WIF_PUSH_PROJECT_NUMBER", "123456789012"),
        ("WIF_PUSH_POOL_ID", "partner-pool"),
        ("WIF_PUSH_PROVIDER_ID", "aws-sender"),
        (
            "WIF_PUSH_SERVICE_ACCOUNT",
            "uploader@partner.iam.gserviceaccount.com",
        ),
        ("WIF_PUSH_BUCKET", "partner-inbox"),
    ];

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
    fn one_destination_from_the_environment() {
        let list = destinations(&env(FACTS), &no_files).unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].0, "default");
        assert_eq!(list[0].1.bucket, "partner-inbox");
        assert!(pick(&list, None).is_ok());
        assert!(pick(&list, Some("default")).is_ok());
        assert_eq!(pick(&list, Some("other")).unwrap_err().status, 404);
    }

    #[test]
    fn several_destinations_share_settings_and_override_them() {
        let mut pairs = FACTS.to_vec();
        pairs.push(("WIF_PUSH_DESTINATIONS", "partner-a, partner-b"));
        pairs.push(("WIF_PUSH_PARTNER_B_BUCKET", "b-inbox"));
        pairs.push(("WIF_PUSH_PARTNER_B_PREFIX", "from-us/"));
        let list = destinations(&env(&pairs), &no_files).unwrap();
        assert_eq!(list[0].0, "partner-a");
        assert_eq!(list[0].1.bucket, "partner-inbox");
        assert_eq!(list[1].1.bucket, "b-inbox");
        assert_eq!(list[1].1.prefix, "from-us/");
        assert_eq!(pick(&list, None).unwrap_err().status, 400);
        assert_eq!(pick(&list, Some("partner-b")).unwrap().bucket, "b-inbox");
    }

    #[test]
    fn configuration_errors_name_the_variable() {
        let mut pairs = FACTS.to_vec();
        pairs.push(("WIF_PUSH_CHUNK_SIZE", "lots"));
        let err = destinations(&env(&pairs), &no_files).unwrap_err();
        assert_eq!(err.step, Step::Config);
        assert!(err.to_string().contains("WIF_PUSH_CHUNK_SIZE"), "{err}");

        let missing: Vec<_> = FACTS
            .iter()
            .copied()
            .filter(|(k, _)| *k != "WIF_PUSH_BUCKET")
            .collect();
        let err = destinations(&env(&missing), &no_files).unwrap_err();
        assert!(err.to_string().contains("WIF_PUSH_BUCKET"), "{err}");

        let mut pairs = FACTS.to_vec();
        pairs.push(("WIF_PUSH_DESTINATIONS", "Partner_A"));
        let err = destinations(&env(&pairs), &no_files).unwrap_err();
        assert!(err.to_string().contains("WIF_PUSH_DESTINATIONS"), "{err}");

        let mut pairs = FACTS.to_vec();
        pairs.push(("WIF_PUSH_DESTINATIONS", "a,b"));
        pairs.push(("WIF_PUSH_B_CHUNK_SIZE", "1000"));
        let err = destinations(&env(&pairs), &no_files).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("destination b") && text.contains("WIF_PUSH_B_CHUNK_SIZE"),
            "{text}"
        );

        let err = destinations(
            &env(&[("WIF_PUSH_CREDENTIAL_CONFIG_FILE", "/run/partner.json")]),
            &no_files,
        )
        .unwrap_err();
        assert!(err.to_string().contains("--dir"), "{err}");
    }

    #[test]
    fn statuses_tell_the_application_what_to_do() {
        let upload = Error::new(Step::Upload, "x");
        assert_eq!(status_for(&upload.clone().with_status(412)), 412);
        assert_eq!(status_for(&upload.clone().with_status(403)), 422);
        assert_eq!(
            status_for(&upload.clone().with_status(503).transient()),
            502
        );
        assert_eq!(status_for(&upload.clone().transient()), 504);
        assert_eq!(status_for(&Error::new(Step::Read, "short")), 400);
        assert_eq!(status_for(&Error::new(Step::Config, "x")), 422);
    }

    #[test]
    fn health_never_shows_secrets() {
        let mut pairs = FACTS.to_vec();
        pairs.push(("AWS_SECRET_ACCESS_KEY", "canary-secret"));
        let list = destinations(&env(&pairs), &no_files).unwrap();
        let answer = Answer::health(Ok(&list));
        assert_eq!(answer.status, 200);
        let text = &answer.body;
        assert!(text.contains("partner-inbox") && !text.contains("canary"));
        let err = Error::new(Step::Config, "bad");
        assert_eq!(Answer::health(Err(&err)).status, 503);
    }
}
