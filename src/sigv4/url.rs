//! Requests given by their absolute URL.

use super::SigningError;

/// Splits an absolute URL into the `host` header SigV4 signs (no default port, no user info)
/// and the path and query as they go on the wire.
pub fn split_url(url: &str) -> Result<(String, String), SigningError> {
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
    Ok((host, path_and_query))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
