//! Who may ask the sidecar to deliver. It has no authentication of its own and listens on
//! loopback for the application beside it, so the threats are the ones a browser on the same
//! machine brings: DNS rebinding (a page whose name resolves to 127.0.0.1 sends
//! `Host: attacker.example`) and cross-site requests a page may send without a preflight
//! (`POST` with `Content-Type: text/plain`). Refused: a missing or non-loopback `Host` (unless
//! named in [`HOSTS_VARIABLE`]), a foreign `Origin`, browser fetch metadata saying
//! `Sec-Fetch-Site: cross-site` or `same-site`, and, where a body is JSON or absent, the
//! content types an HTML form can send.

use super::answer::Answer;
use crate::config::validate::is_loopback;

/// More names the sidecar answers to besides loopback ones (`sidecar.local,uploader`), for a
/// host that reaches it by a service name.
pub const HOSTS_VARIABLE: &str = "WIF_PUSH_SIDECAR_HOSTS";

/// The extra host names from [`HOSTS_VARIABLE`].
pub fn extra_hosts(lookup: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    lookup(HOSTS_VARIABLE)
        .unwrap_or_default()
        .split(',')
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect()
}

/// Checks a request's `Host` (its authority), `Origin` and fetch metadata.
pub fn check<'a>(
    authority: Option<&str>,
    headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    extra_hosts: &[String],
) -> Result<(), Answer> {
    let Some(authority) = authority.filter(|a| !a.is_empty()) else {
        return Err(Answer::refuse(
            400,
            "the request has no Host header: send Host: 127.0.0.1:PORT (HTTP/1.1 requires it)",
        ));
    };
    if !host_allowed(authority, extra_hosts) {
        return Err(Answer::refuse(
            403,
            format!(
                "the sidecar answers only requests addressed to a loopback name, not Host {}: \
                 connect to 127.0.0.1 or localhost (or list the name in {HOSTS_VARIABLE})",
                crate::error::quote(authority, 100)
            ),
        ));
    }
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value);
        let value = value.trim();
        if name.eq_ignore_ascii_case("origin") && !origin_allowed(value, extra_hosts) {
            return Err(Answer::refuse(
                403,
                format!(
                    "cross-origin requests are refused (Origin {}): the sidecar is for the \
                     application beside it, not for web pages",
                    crate::error::quote(value, 100)
                ),
            ));
        }
        if name.eq_ignore_ascii_case("sec-fetch-site")
            && matches!(
                value.to_ascii_lowercase().as_str(),
                "cross-site" | "same-site"
            )
        {
            return Err(Answer::refuse(
                403,
                format!("requests from web pages are refused (Sec-Fetch-Site: {value})"),
            ));
        }
    }
    Ok(())
}

/// Refuses a content type that an HTML form can send without a preflight, on a route whose
/// body is JSON or empty (`POST /v1/verify`).
pub fn check_not_form(content_type: Option<&str>) -> Result<(), Answer> {
    let essence = content_type
        .and_then(|c| c.split(';').next())
        .map(|c| c.trim().to_ascii_lowercase());
    match essence.as_deref() {
        Some("application/x-www-form-urlencoded" | "multipart/form-data" | "text/plain") => {
            Err(Answer::refuse(
                415,
                "this route takes no form body: send no body or Content-Type: application/json",
            ))
        }
        _ => Ok(()),
    }
}

/// The host part of `HOST[:PORT]` (brackets kept off IPv6 literals).
fn host_of(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

fn host_allowed(authority: &str, extra_hosts: &[String]) -> bool {
    let host = host_of(authority).to_ascii_lowercase();
    is_loopback(&host) || extra_hosts.contains(&host)
}

fn origin_allowed(origin: &str, extra_hosts: &[String]) -> bool {
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|authority| host_allowed(authority.trim_end_matches('/'), extra_hosts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(authority: Option<&str>, headers: &[(&str, &str)]) -> u16 {
        let headers = headers.iter().map(|(n, v)| (*n, v.as_bytes()));
        match check(authority, headers, &["uploader".to_owned()]) {
            Ok(()) => 200,
            Err(answer) => answer.status,
        }
    }

    #[test]
    fn only_loopback_hosts_and_configured_names() {
        for ok in [
            "127.0.0.1:8787",
            "localhost:8787",
            "[::1]:8787",
            "127.0.0.2",
            "uploader:80",
        ] {
            assert_eq!(status(Some(ok), &[]), 200, "{ok}");
        }
        for bad in [
            "attacker.example:8787",
            "attacker.example",
            "10.0.0.1:8787",
            "[fe80::1]:1",
        ] {
            assert_eq!(status(Some(bad), &[]), 403, "{bad}");
        }
        assert_eq!(status(None, &[]), 400);
        assert_eq!(status(Some(""), &[]), 400);
    }

    #[test]
    fn browsers_from_other_sites_are_refused() {
        let host = Some("127.0.0.1:8787");
        assert_eq!(status(host, &[("Origin", "https://attacker.example")]), 403);
        assert_eq!(status(host, &[("origin", "null")]), 403);
        assert_eq!(status(host, &[("Origin", "http://127.0.0.1:8787")]), 200);
        assert_eq!(status(host, &[("Sec-Fetch-Site", "cross-site")]), 403);
        assert_eq!(status(host, &[("sec-fetch-site", "same-site")]), 403);
        assert_eq!(status(host, &[("Sec-Fetch-Site", "same-origin")]), 200);
        assert_eq!(status(host, &[("Sec-Fetch-Site", "none")]), 200);
    }

    #[test]
    fn form_bodies_are_refused_where_json_is_expected() {
        for form in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "TEXT/PLAIN;charset=utf-8",
        ] {
            assert_eq!(
                check_not_form(Some(form)).unwrap_err().status,
                415,
                "{form}"
            );
        }
        assert!(check_not_form(None).is_ok());
        assert!(check_not_form(Some("application/json")).is_ok());
    }
}
