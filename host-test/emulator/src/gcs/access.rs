//! Who may do what: only unexpired access tokens that IAM Credentials issued, with a storage
//! scope, and only on the one bucket the service account may create objects in.

use http::header::AUTHORIZATION;
use http::{HeaderMap, StatusCode};
use percent_encoding::percent_decode_str;

use super::errors::gcs_error;
use super::params::header_str;
use crate::Misconfig;
use crate::reply::Reply;
use crate::state::{State, lock};

/// Scopes that let a token write objects.
const WRITE_SCOPES: &[&str] = &[
    "https://www.googleapis.com/auth/devstorage.read_write",
    "https://www.googleapis.com/auth/devstorage.full_control",
    "https://www.googleapis.com/auth/cloud-platform",
];
const READ_ONLY_SCOPE: &str = "https://www.googleapis.com/auth/devstorage.read_only";

/// Only access tokens IAM Credentials issued, unexpired, pass; `permission` names what an
/// anonymous caller lacks.
pub(super) fn authorize(
    state: &State,
    headers: &HeaderMap,
    permission: &str,
    write: bool,
) -> Result<(), Reply> {
    let bearer = header_str(headers, AUTHORIZATION.as_str())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("Bearer"))
        .map(|(_, token)| token.trim());
    let Some(token) = bearer else {
        let kind = if permission.starts_with("storage.buckets.") || permission.ends_with(".list") {
            "bucket"
        } else {
            "object"
        };
        let message = format!(
            "Anonymous caller does not have {permission} access to the Google Cloud Storage \
             {kind}. Permission '{permission}' denied on resource (or it may not exist)."
        );
        return Err(gcs_error(StatusCode::UNAUTHORIZED, "required", &message)
            .located("header", "Authorization"));
    };
    let now = state.now();
    let scopes = lock(&state.access_tokens)
        .get(token)
        .filter(|access| access.expires > now)
        .map(|access| access.scopes.clone());
    let Some(scopes) = scopes else {
        return Err(
            gcs_error(StatusCode::UNAUTHORIZED, "authError", "Invalid Credentials")
                .located("header", "Authorization"),
        );
    };
    let allowed = scopes.iter().any(|scope| {
        WRITE_SCOPES.contains(&scope.as_str()) || (!write && scope == READ_ONLY_SCOPE)
    });
    if !allowed {
        return Err(gcs_error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Provided scope(s) are not authorized",
        ));
    }
    if permission == "storage.objects.create" && state.config.has(Misconfig::ObjectCreatorMissing) {
        let message = format!(
            "{} does not have storage.objects.create access to the Google Cloud Storage object. \
             Permission 'storage.objects.create' denied on resource (or it may not exist).",
            state.config.service_account
        );
        return Err(gcs_error(StatusCode::FORBIDDEN, "forbidden", &message));
    }
    Ok(())
}

pub(super) fn check_bucket(state: &State, bucket: &str) -> Result<(), Reply> {
    if percent_decode_str(bucket).decode_utf8_lossy() == state.config.bucket
        && !state.config.has(Misconfig::BucketMissing)
    {
        Ok(())
    } else {
        Err(gcs_error(
            StatusCode::NOT_FOUND,
            "notFound",
            "The specified bucket does not exist.",
        ))
    }
}
