//! Cloud Storage's error answers, in its JSON shape and words.

use http::StatusCode;
use serde_json::json;

use crate::reply::Reply;
use crate::state::State;

/// Cloud Storage's error shape: `{"error": {"code", "message", "errors": [{...}]}}`.
pub(super) fn gcs_error(status: StatusCode, reason: &str, message: &str) -> Reply {
    Reply::new(
        status,
        json!({"error": {
            "code": status.as_u16(),
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason}],
        }}),
        format!("{} {reason}: {message}", status.as_u16()),
    )
}

impl Reply {
    /// Where in the request the error is (`locationType`, `location`).
    pub(super) fn located(mut self, location_type: &str, location: &str) -> Self {
        if let Some(first) = self.body["error"]["errors"].get_mut(0) {
            first["locationType"] = json!(location_type);
            first["location"] = json!(location);
        }
        self
    }
}

pub(super) fn bad_request(reason: &str, message: impl AsRef<str>) -> Reply {
    gcs_error(StatusCode::BAD_REQUEST, reason, message.as_ref())
}

pub(super) fn forbidden(state: &State, permission: &str, kind: &str) -> Reply {
    gcs_error(
        StatusCode::FORBIDDEN,
        "forbidden",
        &format!(
            "{} does not have {permission} access to the Google Cloud Storage {kind}. \
             Permission '{permission}' denied on resource (or it may not exist).",
            state.config.service_account
        ),
    )
}

pub(super) fn precondition_failed() -> Reply {
    gcs_error(
        StatusCode::PRECONDITION_FAILED,
        "conditionNotMet",
        "At least one of the pre-conditions you specified did not hold.",
    )
    .located("header", "If-Match")
}

pub(super) fn wrong_url_for_upload() -> Reply {
    bad_request(
        "wrongUrlForUpload",
        "Upload requests must include an uploadType URL parameter and a URL path beginning \
         with /upload/",
    )
}

pub(super) fn internal(error: std::io::Error) -> Reply {
    let mut reply = gcs_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "backendError",
        "Backend Error",
    );
    reply.outcome = format!("500 backendError: the emulator's storage failed: {error}");
    reply
}
