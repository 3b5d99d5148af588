//! The AWS subject token: a SigV4-signed STS `GetCallerIdentity` request, serialized as Google
//! expects it (the JSON google-auth writes, URL-encoded). Google STS forwards it to AWS, which
//! says who signed it.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Serialize;
use time::OffsetDateTime;

use crate::config::Destination;
use crate::secret::Secret;
use crate::sigv4::{
    self, Credentials, SignableBody, SignableRequest, SigningError, SigningKeyCache, SigningParams,
    SigningSettings,
};

pub const TARGET_RESOURCE_HEADER: &str = "x-goog-cloud-target-resource";

/// Python's `urllib.parse.quote` default: everything but letters, digits, `_.-~` and `/`.
const QUOTE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'_')
    .remove(b'.')
    .remove(b'-')
    .remove(b'~')
    .remove(b'/');

/// Whether the target-resource header is covered by the signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetResource {
    /// Signed, as Google recommends and golang/oauth2 does: the token cannot be replayed
    /// against another pool.
    Signed,
    /// Added after signing, as google-auth (Python) does.
    Unsigned,
}

#[derive(Serialize)]
struct SerializedRequest<'a> {
    headers: Vec<Header<'a>>,
    method: &'a str,
    url: &'a str,
}

#[derive(Serialize)]
struct Header<'a> {
    key: &'a str,
    value: &'a str,
}

/// Builds the URL-encoded subject token, with the signing key from `signing_keys` when it holds
/// it. It embeds the session token and a signature, so it is a secret.
pub fn subject_token(
    credentials: &Credentials,
    region: &str,
    destination: &Destination,
    time: OffsetDateTime,
    target: TargetResource,
    signing_keys: &SigningKeyCache,
) -> Result<Secret, SigningError> {
    let url = destination.federation.cred_verification_url(region);
    let (host, path_and_query) = sigv4::split_url(&url)?;
    let mut headers = vec![("host", host.as_str())];
    if target == TargetResource::Signed {
        headers.push((
            TARGET_RESOURCE_HEADER,
            destination.federation.audience.as_str(),
        ));
    }
    let signed = sigv4::sign_with_keys(
        &SignableRequest {
            method: "POST",
            path_and_query: &path_and_query,
            headers,
            body: SignableBody::Bytes(b""),
        },
        &SigningParams {
            credentials,
            region,
            service: "sts",
            time,
            settings: SigningSettings::default(),
        },
        signing_keys,
    )?;
    // google-auth's header order: Authorization, host, x-amz-date, x-amz-security-token, target.
    let mut headers = vec![
        Header {
            key: "Authorization",
            value: signed.authorization().unwrap_or_default(),
        },
        Header {
            key: "host",
            value: &host,
        },
        Header {
            key: "x-amz-date",
            value: &signed.x_amz_date,
        },
    ];
    if let Some(token) = signed.header("x-amz-security-token") {
        headers.push(Header {
            key: "x-amz-security-token",
            value: token,
        });
    }
    headers.push(Header {
        key: TARGET_RESOURCE_HEADER,
        value: &destination.federation.audience,
    });
    let json = serde_json::to_string(&SerializedRequest {
        headers,
        method: "POST",
        url: &url,
    })
    .expect("strings always serialize");
    Ok(Secret::new(utf8_percent_encode(&json, QUOTE).to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Destination, Settings};
    use time::macros::datetime;

    fn destination() -> Destination {
        Destination::from_settings(&Settings {
            project_number: Some("123456".into()),
            pool_id: Some("aws-pool".into()),
            provider_id: Some("aws-provider".into()),
            service_account: Some("sa@p.iam.gserviceaccount.com".into()),
            bucket: Some("bucket".into()),
            ..Default::default()
        })
        .unwrap()
    }

    fn decode(token: &Secret) -> serde_json::Value {
        let json = percent_encoding::percent_decode_str(token.expose())
            .decode_utf8()
            .unwrap();
        serde_json::from_str(&json).unwrap()
    }

    #[test]
    fn token_is_google_auths_shape() {
        let creds = Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Secret::new("secret"),
            session_token: Some(Secret::new("session")),
        };
        let time = datetime!(2020-08-11 06:55:22 UTC);
        let token = subject_token(
            &creds,
            "us-east-2",
            &destination(),
            time,
            TargetResource::Signed,
            &SigningKeyCache::new(),
        )
        .unwrap();
        assert!(
            token
                .expose()
                .starts_with("%7B%22headers%22%3A%5B%7B%22key%22%3A%22Authorization%22")
        );
        let v = decode(&token);
        assert_eq!(v["method"], "POST");
        assert_eq!(
            v["url"],
            "https://sts.us-east-2.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15"
        );
        let keys: Vec<&str> = v["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["key"].as_str().unwrap())
            .collect();
        assert_eq!(
            keys,
            [
                "Authorization",
                "host",
                "x-amz-date",
                "x-amz-security-token",
                TARGET_RESOURCE_HEADER
            ]
        );
        let auth = v["headers"][0]["value"].as_str().unwrap();
        assert!(
            auth.contains(
                "SignedHeaders=host;x-amz-date;x-amz-security-token;x-goog-cloud-target-resource"
            ),
            "{auth}"
        );
        assert!(auth.contains("Credential=AKIDEXAMPLE/20200811/us-east-2/sts/aws4_request"));
    }

    #[test]
    fn unsigned_target_leaves_it_out_of_the_signature() {
        let creds = Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Secret::new("secret"),
            session_token: None,
        };
        let token = subject_token(
            &creds,
            "us-east-1",
            &destination(),
            datetime!(2020-08-11 06:55:22 UTC),
            TargetResource::Unsigned,
            &SigningKeyCache::new(),
        )
        .unwrap();
        let v = decode(&token);
        assert!(
            v["headers"][0]["value"]
                .as_str()
                .unwrap()
                .contains("SignedHeaders=host;x-amz-date,")
        );
        assert_eq!(v["headers"][3]["key"], TARGET_RESOURCE_HEADER);
    }
}
