//! Inputs the unit tests share.

use time::macros::datetime;

use super::{Credentials, SignableBody, SignableRequest, SigningParams, SigningSettings};
use crate::secret::Secret;

pub fn creds(token: Option<&str>) -> Credentials {
    Credentials {
        access_key_id: "AKIDEXAMPLE".into(),
        secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        session_token: token.map(Secret::new),
    }
}

pub fn request<'a>(path: &'a str, headers: Vec<(&'a str, &'a str)>) -> SignableRequest<'a> {
    SignableRequest {
        method: "GET",
        path_and_query: path,
        headers,
        body: SignableBody::Bytes(b""),
    }
}

pub fn params(creds: &Credentials) -> SigningParams<'_> {
    SigningParams {
        credentials: creds,
        region: "us-east-1",
        service: "service",
        time: datetime!(2015-08-30 12:36:00 UTC),
        settings: SigningSettings::default(),
    }
}
