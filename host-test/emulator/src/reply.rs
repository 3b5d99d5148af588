//! The answer an endpoint gives: status, JSON body, headers and reason phrase, with a one-line
//! outcome for the log; and Google's JSON error shape for its REST APIs.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};

/// An answer, with a one-line outcome for the log.
#[derive(Clone, Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    /// `Value::Null` is sent as an empty body without a content type.
    pub(crate) body: Value,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) outcome: String,
    /// An HTTP/1 reason phrase other than the status code's canonical one.
    pub(crate) reason: Option<&'static str>,
    /// `body` is a string of XML (AWS's answers), sent as it is.
    pub(crate) xml: bool,
}

impl Reply {
    pub(crate) fn new(status: StatusCode, body: Value, outcome: String) -> Self {
        Reply {
            status,
            body,
            headers: Vec::new(),
            outcome,
            reason: None,
            xml: false,
        }
    }

    /// An AWS answer: XML.
    pub(crate) fn xml(status: StatusCode, xml: String, outcome: String) -> Self {
        Reply {
            xml: true,
            ..Reply::new(status, Value::String(xml), outcome)
        }
    }

    pub(crate) fn ok(body: Value, outcome: String) -> Self {
        Reply::new(StatusCode::OK, body, outcome)
    }

    /// Google's JSON error shape for its REST APIs (IAM Credentials, Cloud Storage, ...).
    pub(crate) fn google_error(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Reply::new(
            status,
            json!({"error": {"code": status.as_u16(), "message": message, "status": code}}),
            format!("{code}: {message}"),
        )
    }

    pub(crate) fn with_details(mut self, details: Value) -> Self {
        self.body["error"]["details"] = details;
        self
    }

    pub(crate) fn with_header(mut self, name: HeaderName, value: &'static str) -> Self {
        self.headers.push((name, HeaderValue::from_static(value)));
        self
    }

    pub(crate) fn with_header_value(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    pub(crate) fn with_reason(mut self, reason: &'static str) -> Self {
        self.reason = Some(reason);
        self
    }

    /// What Google answers for a path or method its APIs do not have.
    pub(crate) fn not_found() -> Self {
        Reply::google_error(StatusCode::NOT_FOUND, "NOT_FOUND", "Method not found.")
    }

    pub(crate) fn into_response(self) -> Response<Full<Bytes>> {
        let xml = self.xml;
        let body = if let (true, Value::String(text)) = (xml, &self.body) {
            Bytes::from(text.clone())
        } else if self.body.is_null() {
            Bytes::new()
        } else {
            Bytes::from(self.body.to_string())
        };
        let json = !body.is_empty() && !xml;
        let mut response = Response::new(Full::new(body));
        *response.status_mut() = self.status;
        if let Some(reason) = self.reason {
            response
                .extensions_mut()
                .insert(hyper::ext::ReasonPhrase::from_static(reason.as_bytes()));
        }
        let headers = response.headers_mut();
        if json {
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=UTF-8"),
            );
        }
        if xml {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/xml"));
        }
        for (name, value) in self.headers {
            headers.insert(name, value);
        }
        response
    }
}
