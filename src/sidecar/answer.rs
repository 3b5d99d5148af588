//! The sidecar's answers: a status and a JSON body, in the shape `host-test --json` prints.

use serde_json::json;

use crate::config::Destination;
use crate::delivery::Receipt;
use crate::error::{Error, Step};

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
                            "service_account": d.federation.service_account,
                            "audience": d.federation.audience,
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
