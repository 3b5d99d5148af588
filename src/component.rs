//! The wit-bindgen glue: translates between the `wif:push` world and the core. No logic lives
//! here; anything worth testing belongs in the core modules.

use time::OffsetDateTime;

use crate::secret::Secret;
use crate::sigv4;

wit_bindgen::generate!({
    world: "library",
    path: "wit",
    generate_all,
});

use exports::wif::push::sigv4 as wit;

struct Component;

impl wit::Guest for Component {
    fn sign(request: wit::Request) -> Result<wit::Signed, String> {
        sign(request).map_err(|e| e.to_string())
    }
}

fn sign(request: wit::Request) -> Result<wit::Signed, sigv4::SigningError> {
    let (host, path_and_query) = sigv4::split_url(&request.url)?;
    let mut headers: Vec<(&str, &str)> = request
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        headers.push(("host", &host));
    }
    let body = match &request.payload {
        wit::Payload::Bytes(bytes) => sigv4::SignableBody::Bytes(bytes),
        wit::Payload::Sha256Hex(hash) => sigv4::SignableBody::Precomputed(hash),
        wit::Payload::Unsigned => sigv4::SignableBody::UnsignedPayload,
    };
    let credentials = sigv4::Credentials {
        access_key_id: request.credentials.access_key_id,
        secret_access_key: Secret::new(request.credentials.secret_access_key),
        session_token: request.credentials.session_token.map(Secret::new),
    };
    let time = match request.time {
        // SigV4 signs whole seconds.
        Some(t) => i64::try_from(t.seconds)
            .ok()
            .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
            .ok_or(sigv4::SigningError::InvalidTime(t.seconds))?,
        None => OffsetDateTime::now_utc(),
    };
    let s = &request.settings;
    let settings = sigv4::SigningSettings {
        signature_location: match s.placement {
            wit::Placement::Header => sigv4::SignatureLocation::Headers,
            wit::Placement::Query => sigv4::SignatureLocation::QueryParams {
                expires_in: u64::from(s.expires_in_seconds),
            },
        },
        session_token_mode: match s.session_token_mode {
            wit::SessionTokenMode::Signed => sigv4::SessionTokenMode::Include,
            wit::SessionTokenMode::AddedAfterSigning => sigv4::SessionTokenMode::AddAfterSigning,
        },
        percent_encoding_mode: if s.double_uri_encode {
            sigv4::PercentEncodingMode::Double
        } else {
            sigv4::PercentEncodingMode::Single
        },
        uri_path_normalization: if s.normalize_path {
            sigv4::UriPathNormalization::Enabled
        } else {
            sigv4::UriPathNormalization::Disabled
        },
        payload_checksum_header: if s.content_sha256_header {
            sigv4::PayloadChecksumHeader::Add
        } else {
            sigv4::PayloadChecksumHeader::Omit
        },
    };
    let out = sigv4::sign(
        &sigv4::SignableRequest {
            method: &request.method,
            path_and_query: &path_and_query,
            headers,
            body,
        },
        &sigv4::SigningParams {
            credentials: &credentials,
            region: &request.region,
            service: &request.service,
            time,
            settings,
        },
    )?;
    let url = match out.query_params.is_empty() {
        true => request.url,
        false => {
            let base = request
                .url
                .strip_suffix(&path_and_query)
                .unwrap_or(&request.url);
            format!("{base}{}", out.presigned_path_and_query(&path_and_query))
        }
    };
    Ok(wit::Signed {
        url,
        authorization: out.authorization().map(str::to_owned),
        headers: out.headers,
        x_amz_date: out.x_amz_date,
        signed_headers: out.signed_headers,
        credential_scope: out.credential_scope,
        canonical_request: out.canonical_request,
        string_to_sign: out.string_to_sign,
        signature: out.signature,
    })
}

export!(Component);
