//! `uploadType=media`: a single-request upload whose body is the object.

use std::collections::HashMap;

use http::header::CONTENT_TYPE;
use http::request::Parts;

use super::Fail;
use super::body::Body;
use super::errors::internal;
use super::object::UploadMetadata;
use super::params::{goog_hash, header_str};
use super::upload::{create, declares_md5, stage};
use crate::reply::Reply;
use crate::state::State;

/// `uploadType=media`: the body is the object; the name comes from the query.
pub(super) async fn upload(
    state: &State,
    parts: &Parts,
    query: &HashMap<String, String>,
    if_generation_match: Option<i64>,
    body: &mut Body,
) -> Result<Reply, Fail> {
    let spec = UploadMetadata::default().spec(
        query.get("name").map(String::as_str),
        header_str(&parts.headers, CONTENT_TYPE.as_str()),
    )?;
    let hash_header = goog_hash(&parts.headers)?;
    let doomed = state
        .gcs
        .check(state, &spec.name, if_generation_match)
        .err();
    let md5_declared = declares_md5(&spec, hash_header.as_ref());
    let mut staging = stage(state, doomed.is_some(), md5_declared)?;
    while let Some(data) = body.next().await? {
        staging.write(&data).map_err(internal)?;
    }
    if let Some(reply) = doomed {
        return Ok(reply);
    }
    create(state, spec, hash_header, if_generation_match, staging)
}
