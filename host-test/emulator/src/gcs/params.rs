//! What a Cloud Storage request says in its query and headers.

use std::collections::HashMap;

use http::HeaderMap;

use super::errors::bad_request;
use super::object::Expected;
use crate::reply::Reply;

/// `X-Goog-Hash`, if the request has one.
pub(super) fn goog_hash(headers: &HeaderMap) -> Result<Option<Expected>, Reply> {
    header_str(headers, "x-goog-hash")
        .map(Expected::from_goog_hash)
        .transpose()
}

pub(super) fn if_generation_match(query: &HashMap<String, String>) -> Result<Option<i64>, Reply> {
    query
        .get("ifGenerationMatch")
        .map(|text| {
            text.parse::<i64>().map_err(|_| {
                bad_request(
                    "invalid",
                    format!("Invalid value for ifGenerationMatch: \"{text}\"."),
                )
            })
        })
        .transpose()
}

/// Query parameters, decoded; the first of a repeated name wins.
pub(super) fn query_map(query: Option<&str>) -> HashMap<String, String> {
    let mut map = HashMap::new();
    for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        map.entry(name.into_owned())
            .or_insert_with(|| value.into_owned());
    }
    map
}

pub(super) fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

pub(super) fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    header_str(headers, name).and_then(|v| v.trim().parse().ok())
}
