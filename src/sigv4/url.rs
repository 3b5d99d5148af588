//! Requests given by their absolute URL: the `host` header and the wire path come from it, and a
//! presigned request's URL is rebuilt with the signature.

use super::SigningError;
use super::settings::{SignableBody, SignableRequest, SigningParams};
use super::sign::{SigningOutput, sign_using};
use super::signing_key::SigningKeyCache;

/// An absolute URL's parts that signing needs.
struct UrlParts<'a> {
    /// `scheme://authority`, as the URL spells it.
    origin: &'a str,
    /// The `host` header SigV4 signs: lowercase, without the default port.
    host: String,
    /// The path and query as they go on the wire (`/` when the URL has none).
    path_and_query: String,
}

fn parse_url(url: &str) -> Result<UrlParts<'_>, SigningError> {
    let invalid = || SigningError::InvalidUrl(url.to_owned());
    let uri: http::Uri = url.parse().map_err(|_| invalid())?;
    let default_port = match uri.scheme_str() {
        Some("https") => 443,
        Some("http") => 80,
        _ => return Err(invalid()),
    };
    let authority = uri.authority().ok_or_else(invalid)?;
    if authority.as_str().contains('@') || authority.host().is_empty() {
        return Err(invalid());
    }
    let host = authority.host().to_ascii_lowercase();
    let host = match authority.port_u16() {
        Some(port) if port != default_port => format!("{host}:{port}"),
        _ => host,
    };
    let path_and_query = match uri.path_and_query().map(|pq| pq.as_str()) {
        None | Some("") => "/".to_owned(),
        Some(pq) if pq.starts_with('?') => format!("/{pq}"),
        Some(pq) => pq.to_owned(),
    };
    // The URL parsed as `scheme "://" authority ...`, so the authority ends there.
    let origin_len = url.find("://").ok_or_else(invalid)? + 3 + authority.as_str().len();
    Ok(UrlParts {
        origin: &url[..origin_len],
        host,
        path_and_query,
    })
}

/// Splits an absolute URL into the `host` header SigV4 signs (no default port, no user info)
/// and the path and query as they go on the wire.
pub fn split_url(url: &str) -> Result<(String, String), SigningError> {
    let parts = parse_url(url)?;
    Ok((parts.host, parts.path_and_query))
}

/// Signs the request `method url` with `headers` (to which the URL's `host` is added when they
/// have none) and `body`, taking the signing key from `keys` when given. Returns the URL to send
/// (`url` itself for header signing; with the `X-Amz-*` parameters appended for a presigned URL)
/// and the signing output.
pub fn sign_url(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: SignableBody<'_>,
    params: &SigningParams<'_>,
    keys: Option<&SigningKeyCache>,
) -> Result<(String, SigningOutput), SigningError> {
    let parts = parse_url(url)?;
    let mut headers = headers.to_vec();
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        headers.push(("host", &parts.host));
    }
    let request = SignableRequest {
        method,
        path_and_query: &parts.path_and_query,
        headers,
        body,
    };
    let out = sign_using(&request, params, keys)?;
    let url = match out.query_params.is_empty() {
        true => url.to_owned(),
        false => format!(
            "{}{}",
            parts.origin,
            out.presigned_path_and_query(&parts.path_and_query)
        ),
    };
    Ok((url, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sigv4::canonical_request::encode;
    use crate::sigv4::fixtures::{creds, params};
    use crate::sigv4::{SignatureLocation, sign};

    #[test]
    fn split_url_gives_host_and_wire_path() {
        assert_eq!(
            split_url("https://STS.us-east-1.amazonaws.com:443/?Action=GetCallerIdentity").unwrap(),
            (
                "sts.us-east-1.amazonaws.com".into(),
                "/?Action=GetCallerIdentity".into()
            )
        );
        assert_eq!(
            split_url("http://127.0.0.1:8080").unwrap(),
            ("127.0.0.1:8080".into(), "/".into())
        );
        for bad in [
            "sts.amazonaws.com/",
            "ftp://h/",
            "https://user:pw@h/",
            "https://h/a b",
            "",
        ] {
            assert!(
                matches!(split_url(bad), Err(SigningError::InvalidUrl(_))),
                "{bad}"
            );
        }
    }

    fn presigned(creds: &crate::sigv4::Credentials) -> SigningParams<'_> {
        let mut p = params(creds);
        p.settings.signature_location = SignatureLocation::QueryParams { expires_in: 60 };
        p
    }

    fn sign_get(
        url: &str,
        headers: &[(&str, &str)],
        p: &SigningParams<'_>,
    ) -> (String, SigningOutput) {
        sign_url("GET", url, headers, SignableBody::Bytes(b""), p, None).unwrap()
    }

    #[test]
    fn host_comes_from_the_url_only_when_no_header_gives_it() {
        let creds = creds(None);
        let p = params(&creds);
        let (_, out) = sign_get("https://h.example:8443/x", &[], &p);
        assert!(out.canonical_request.contains("\nhost:h.example:8443\n"));
        assert_eq!(out.signed_headers, "host;x-amz-date");
        for name in ["host", "HOST", "Host"] {
            let (_, out) = sign_get("https://h.example/x", &[(name, "other.example")], &p);
            assert!(
                out.canonical_request.contains("\nhost:other.example\n"),
                "{name}"
            );
            assert!(!out.canonical_request.contains("h.example\n"), "{name}");
        }
    }

    #[test]
    fn header_signing_leaves_the_url_as_given() {
        let creds = creds(None);
        for url in ["https://h.example/x?a=1", "http://127.0.0.1:8080"] {
            let (sent, out) = sign_get(url, &[], &params(&creds));
            assert_eq!(sent, url);
            assert!(out.authorization().is_some());
            assert!(out.query_params.is_empty());
        }
    }

    #[test]
    fn presigned_url_is_the_url_plus_the_encoded_params() {
        let creds = creds(Some("TOKEN/+="));
        let p = presigned(&creds);
        let url = "https://h.example/x?a=1";
        let (sent, out) = sign_get(url, &[], &p);
        let params: String = out
            .query_params
            .iter()
            .map(|(n, v)| format!("&{}={}", encode(n.as_bytes()), encode(v.as_bytes())))
            .collect();
        assert_eq!(sent, format!("{url}{params}"));
        assert!(sent.contains("&X-Amz-Security-Token=TOKEN%2F%2B%3D&"));
        assert!(sent.ends_with(&format!("&X-Amz-Signature={}", out.signature)));
        // The same signature as signing the parts by hand.
        let by_hand = SignableRequest {
            method: "GET",
            path_and_query: "/x?a=1",
            headers: vec![("host", "h.example")],
            body: SignableBody::Bytes(b""),
        };
        assert_eq!(sign(&by_hand, &p).unwrap(), out);
    }

    #[test]
    fn presigned_url_is_rebuilt_from_origin_and_wire_path() {
        let creds = creds(None);
        let p = presigned(&creds);
        let (sent, _) = sign_get("http://127.0.0.1:8080", &[], &p);
        assert!(
            sent.starts_with("http://127.0.0.1:8080/?X-Amz-Algorithm="),
            "{sent}"
        );
        let (sent, _) = sign_get("https://h.example?a=1", &[], &p);
        assert!(
            sent.starts_with("https://h.example/?a=1&X-Amz-Algorithm="),
            "{sent}"
        );
        // A fragment is never sent, so it is neither signed nor kept.
        let (sent, _) = sign_get("https://h.example/x#part", &[], &p);
        assert!(
            sent.starts_with("https://h.example/x?X-Amz-Algorithm="),
            "{sent}"
        );
    }

    #[test]
    fn sign_url_refuses_what_split_url_refuses() {
        let creds = creds(None);
        let err = sign_url(
            "GET",
            "ftp://h/",
            &[],
            SignableBody::Bytes(b""),
            &params(&creds),
            None,
        );
        assert!(matches!(err, Err(SigningError::InvalidUrl(_))));
    }
}
