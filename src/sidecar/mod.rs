//! The sidecar's HTTP surface, sans IO: what a request asks for ([`route`]), which object
//! names an application may use ([`object_name`]), the object's settings from its headers
//! ([`object_from_headers`]), the destinations from the environment ([`destinations`]), who may
//! ask at all ([`guard`]) and the answers ([`Answer`]). The wasi:http glue only moves bytes.
//!
//! ```text
//! GET  /healthz                                  200, the destinations (never a secret)
//! PUT  /v1/objects/{name...}                     201 + receipt   (one destination)
//! POST /v1/verify                                201 + receipt of the handshake object
//! GET  /v1/doctor                                200 (or 503) + the checklist of every step
//! PUT  /v1/destinations/{id}/objects/{name...}   201 + receipt   (several destinations)
//! POST /v1/destinations/{id}/verify
//! GET  /v1/destinations/{id}/doctor
//! ```

pub mod answer;
pub mod copy;
pub mod guard;
pub mod object_headers;
pub mod routes;

pub use answer::{Answer, status_for};
pub use copy::{CopyRequest, copy_request};
pub use object_headers::{ObjectHeaders, object_from_headers};
pub use routes::{Route, object_name, plain_object_name, route};

use crate::config::environment::{self, DEFAULT_ID};
use crate::config::{ConfigError, Destination};
use crate::error::Error;

/// The configured destinations, each validated on its own: a broken one answers with its
/// error while the others keep working.
pub type Configured = Vec<(String, Result<Destination, Error>)>;

/// The destination a route names, from the configured ones.
pub fn pick<'a>(
    destinations: &'a Configured,
    wanted: Option<&str>,
) -> Result<&'a Destination, Answer> {
    pick_configured(destinations, wanted)?
        .as_ref()
        .map_err(Answer::failed)
}

/// The destination a route names, or why its configuration is refused (for the doctor, which
/// reports that as its first line).
pub fn pick_configured<'a>(
    destinations: &'a Configured,
    wanted: Option<&str>,
) -> Result<&'a Result<Destination, Error>, Answer> {
    let ids = || {
        destinations
            .iter()
            .map(|(id, _)| id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let found = match wanted {
        Some(id) => destinations
            .iter()
            .find(|(have, _)| have == id)
            .map(|(_, d)| d)
            .ok_or_else(|| {
                Answer::refuse(
                    404,
                    format!(
                        "no destination {id_q} is configured; configured: {}",
                        ids(),
                        id_q = crate::error::quote(id, 100)
                    ),
                )
            })?,
        None => match destinations.as_slice() {
            [(_, only)] => only,
            _ => {
                return Err(Answer::refuse(
                    400,
                    format!(
                        "several destinations are configured ({}): use \
                         /v1/destinations/ID/objects/NAME or /v1/destinations/ID/verify",
                        ids()
                    ),
                ));
            }
        },
    };
    Ok(found)
}

/// The configured destinations from `lookup` (the environment, then `wasi:config`) and
/// `read_file` (for a `WIF_PUSH_CREDENTIAL_CONFIG` that names a file). Only a bad
/// `WIF_PUSH_DESTINATIONS` fails them all; every error names the variable at fault.
pub fn destinations(
    lookup: &dyn Fn(&str) -> Option<String>,
    read_file: &dyn Fn(&str) -> std::io::Result<String>,
) -> Result<Configured, Error> {
    let listed = environment::destination_ids(lookup)?;
    let several = listed.is_some();
    let ids = listed.unwrap_or_else(|| vec![DEFAULT_ID.to_owned()]);
    Ok(ids
        .into_iter()
        .map(|id| {
            let own = several.then_some(id.as_str());
            let destination = destination(own, lookup, read_file).map_err(|e| {
                let mut error = Error::from(e);
                if let Some(id) = own {
                    error.message = format!("destination {id}: {}", error.message);
                }
                error
            });
            (id, destination)
        })
        .collect())
}

fn destination(
    id: Option<&str>,
    lookup: &dyn Fn(&str) -> Option<String>,
    read_file: &dyn Fn(&str) -> std::io::Result<String>,
) -> Result<Destination, ConfigError> {
    let (mut settings, set_by) = environment::settings(id, lookup)?;
    settings
        .read_credential_config(read_file)
        .map_err(|e| set_by.rename(e))?;
    Destination::from_settings(&settings).map_err(|e| set_by.rename(e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Step;
    use crate::testing::lookup as env;

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
    fn one_destination_from_the_environment() {
        let list = destinations(&env(FACTS), &no_files).unwrap();
        let bucket = |i: usize| list[i].1.as_ref().unwrap().bucket.clone();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].0, "default");
        assert_eq!(bucket(0), "partner-inbox");
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
        let destination = |i: usize| list[i].1.as_ref().unwrap();
        assert_eq!(list[0].0, "partner-a");
        assert_eq!(destination(0).bucket, "partner-inbox");
        assert_eq!(destination(1).bucket, "b-inbox");
        assert_eq!(destination(1).prefix, "from-us/");
        assert_eq!(pick(&list, None).unwrap_err().status, 400);
        assert_eq!(pick(&list, Some("partner-b")).unwrap().bucket, "b-inbox");
    }

    /// The first configuration error, whether of the list or of a destination.
    fn first_error(list: Result<Configured, Error>) -> Error {
        match list {
            Err(error) => error,
            Ok(list) => list
                .into_iter()
                .find_map(|(_, d)| d.err())
                .expect("an error"),
        }
    }

    #[test]
    fn one_broken_destination_leaves_the_others_working() {
        let mut pairs = FACTS.to_vec();
        pairs.push(("WIF_PUSH_DESTINATIONS", "good,bad"));
        pairs.push(("WIF_PUSH_BAD_BUCKET", "gs://nope"));
        let list = destinations(&env(&pairs), &no_files).unwrap();
        assert!(pick(&list, Some("good")).is_ok());
        let refused = pick(&list, Some("bad")).unwrap_err();
        assert_eq!(refused.status, 422);
        assert!(
            refused.body.contains("WIF_PUSH_BAD_BUCKET"),
            "{}",
            refused.body
        );
        assert_eq!(pick(&list, Some("other")).unwrap_err().status, 404);
        let health = Answer::health(Ok(&list));
        assert_eq!(health.status, 200, "{}", health.body);
        let body: serde_json::Value = serde_json::from_str(&health.body).unwrap();
        assert_eq!(body["status"], "degraded");
        assert_eq!(body["destinations"][0]["state"], "ok");
        assert_eq!(body["destinations"][1]["state"], "error");
        assert!(
            body["destinations"][1]["error"]["message"]
                .as_str()
                .unwrap()
                .contains("WIF_PUSH_BAD_BUCKET")
        );
    }

    #[test]
    fn configuration_errors_name_the_variable() {
        let mut pairs = FACTS.to_vec();
        pairs.push(("WIF_PUSH_CHUNK_SIZE", "lots"));
        let err = first_error(destinations(&env(&pairs), &no_files));
        assert_eq!(err.step, Step::Config);
        assert!(err.to_string().contains("WIF_PUSH_CHUNK_SIZE"), "{err}");

        let missing: Vec<_> = FACTS
            .iter()
            .copied()
            .filter(|(k, _)| *k != "WIF_PUSH_BUCKET")
            .collect();
        let err = first_error(destinations(&env(&missing), &no_files));
        assert!(err.to_string().contains("WIF_PUSH_BUCKET"), "{err}");

        let mut pairs = FACTS.to_vec();
        pairs.push(("WIF_PUSH_DESTINATIONS", "Partner_A"));
        let err = first_error(destinations(&env(&pairs), &no_files));
        assert!(err.to_string().contains("WIF_PUSH_DESTINATIONS"), "{err}");

        let mut pairs = FACTS.to_vec();
        pairs.push(("WIF_PUSH_DESTINATIONS", "a,b"));
        pairs.push(("WIF_PUSH_B_CHUNK_SIZE", "1000"));
        let err = first_error(destinations(&env(&pairs), &no_files));
        let text = err.to_string();
        assert!(
            text.contains("destination b") && text.contains("WIF_PUSH_B_CHUNK_SIZE"),
            "{text}"
        );

        let err = first_error(destinations(
            &env(&[("WIF_PUSH_CREDENTIAL_CONFIG_FILE", "/run/partner.json")]),
            &no_files,
        ));
        assert!(err.to_string().contains("--dir"), "{err}");
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
