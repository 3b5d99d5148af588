//! Values that must never be printed: AWS secret keys, session tokens, Google tokens.

use std::fmt;

/// A secret string. `Debug` and `Display` print `[redacted]`; the value is only reachable through
/// [`Secret::expose`], so every place that uses it is greppable.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether the value can travel in an HTTP header as it is (visible ASCII only). Tokens
    /// from an answer are checked with this before they are kept.
    pub fn is_header_safe(&self) -> bool {
        !self.0.is_empty() && self.0.bytes().all(|b| b.is_ascii_graphic())
    }

    /// `Authorization: Bearer TOKEN`, marked sensitive so `Debug` of the request never shows it.
    pub fn bearer(&self) -> http::HeaderValue {
        let mut value = http::HeaderValue::from_str(&format!("Bearer {}", self.0))
            // Unreachable for tokens checked with `is_header_safe`; an empty bearer is refused.
            .unwrap_or_else(|_| http::HeaderValue::from_static("Bearer"));
        value.set_sensitive(true);
        value
    }
}

/// Marks a request's `x-amz-security-token` sensitive, so `Debug` of the request never shows
/// the session token.
pub fn hide_session_token(headers: &mut http::HeaderMap) {
    if let Some(token) = headers.get_mut("x-amz-security-token") {
        token.set_sensitive(true);
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let secret = Secret::new("canary-SECRET-1234");
        assert!(!format!("{secret:?}").contains("canary"));
        assert!(!format!("{secret}").contains("canary"));
        assert!(!format!("{:?}", Some(&secret)).contains("canary"));
        assert_eq!(secret.expose(), "canary-SECRET-1234");
    }

    #[test]
    fn bearer_headers_are_sensitive() {
        let request = http::Request::get("https://example.test/")
            .header("authorization", Secret::new("canary-token").bearer())
            .body(())
            .unwrap();
        assert!(!format!("{request:?}").contains("canary"));
        assert_eq!(request.headers()["authorization"], "Bearer canary-token");
        assert!(!Secret::new("a\r\nb").is_header_safe());
        assert!(Secret::new("ya29.a0-_~+/=").is_header_safe());
    }
}
