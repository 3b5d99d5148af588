//! The sidecar's answers: a status and a JSON body, in the shape `host-test --json` prints.

use serde_json::json;

use super::Configured;
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
        Answer::new(status_for(error), error_json(error))
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

    /// `GET /v1/doctor`: the checklist; 200 when the handshake object landed, else 503.
    pub fn doctor(report: &crate::doctor::Report) -> Self {
        Answer {
            status: if report.passed { 200 } else { 503 },
            body: serde_json::to_string(report).expect("reports serialize"),
            headers: Vec::new(),
        }
    }

    /// `GET /healthz`: each destination's state (never a secret); 200 while any destination
    /// can deliver (`"degraded"` when some cannot), 503 when none can.
    pub fn health(destinations: Result<&Configured, &Error>) -> Self {
        let destinations = match destinations {
            Ok(destinations) => destinations,
            Err(error) => {
                return Answer {
                    status: 503,
                    ..Answer::failed(error)
                };
            }
        };
        let list: Vec<_> = destinations
            .iter()
            .map(|(id, d)| match d {
                Ok(d) => json!({
                    "id": id,
                    "state": "ok",
                    "bucket": d.bucket,
                    "prefix": d.prefix,
                    "service_account": d.federation.service_account,
                    "audience": d.federation.audience,
                }),
                Err(error) => json!({
                    "id": id,
                    "state": "error",
                    "error": error_fields(error),
                }),
            })
            .collect();
        let working = destinations.iter().filter(|(_, d)| d.is_ok()).count();
        let (status, state) = match working {
            0 => (503, "unusable"),
            n if n == destinations.len() => (200, "ok"),
            _ => (200, "degraded"),
        };
        let mut answer = Answer::new(status, json!({"status": state, "destinations": list}));
        if working == 0
            && let [(_, Err(error))] = destinations.as_slice()
        {
            // One destination: its error at the top, as every other failed answer has it.
            answer.body =
                json!({"status": state, "error": error_fields(error), "destinations": list})
                    .to_string();
        }
        answer
    }

    pub fn body_bytes(&self) -> Vec<u8> {
        format!("{}\n", self.body).into_bytes()
    }
}

/// `{"error": {...}}` in the shape `host-test --json` prints.
fn error_json(error: &Error) -> serde_json::Value {
    json!({ "error": error_fields(error) })
}

fn error_fields(error: &Error) -> serde_json::Value {
    json!({
        "step": error.step.name(),
        "message": error.to_string(),
        "fix": error.fix,
        "status": error.status,
        "transient": error.transient,
    })
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
