//! `uploadType=media`: a single-request upload whose body is the object.

use std::collections::HashMap;

use http::header::CONTENT_TYPE;
use http::request::Parts;

use super::Fail;
use super::body::Body;
use super::errors::internal;
use super::object::UploadMetadata;
use super::params::header_str;
use super::upload::Single;
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
    let mut upload = Single::begin(state, spec, &parts.headers, if_generation_match)?;
    while let Some(data) = body.next().await? {
        upload.staging.write(&data).map_err(internal)?;
    }
    upload.finish(state)
}
