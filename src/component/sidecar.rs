//! `wasi:http/incoming-handler`: the sidecar. What a request means and what to answer is the
//! core's (`crate::sidecar`); this reads the request, streams its body into the delivery and
//! writes the answer.

use wasip2::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

use super::exports::wasi::http::incoming_handler::Guest;
use super::{Component, deliver_from_s3, deliver_stream, delivery, doctor, io, verify_handshake};
use crate::sidecar::{self, Answer, Route};

impl Guest for Component {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let method = match request.method() {
            Method::Get => "GET".to_owned(),
            Method::Head => "HEAD".to_owned(),
            Method::Post => "POST".to_owned(),
            Method::Put => "PUT".to_owned(),
            Method::Delete => "DELETE".to_owned(),
            Method::Patch => "PATCH".to_owned(),
            Method::Options => "OPTIONS".to_owned(),
            Method::Connect => "CONNECT".to_owned(),
            Method::Trace => "TRACE".to_owned(),
            Method::Other(other) => other,
        };
        let path = request.path_with_query().unwrap_or_else(|| "/".to_owned());
        let answer = answer(&method, &path, request);
        eprintln!("wif-push: {method} {path} -> {}", answer.status);
        respond(out, &answer, method == "HEAD");
    }
}

fn answer(method: &str, path: &str, request: IncomingRequest) -> Answer {
    let headers = request.headers().entries();
    let headers = || headers.iter().map(|(n, v)| (n.as_str(), v.as_slice()));
    let authority = request.authority();
    let extra_hosts = sidecar::guard::extra_hosts(&io::setting);
    if let Err(refused) = sidecar::guard::check(authority.as_deref(), headers(), &extra_hosts) {
        return refused;
    }
    let route = match sidecar::route(method, path) {
        Ok(route) => route,
        Err(refused) => return refused,
    };
    let destinations = sidecar::destinations(&io::setting, &|path| std::fs::read_to_string(path));
    if let Route::Health = route {
        return Answer::health(destinations.as_ref());
    }
    let destinations = match destinations {
        Ok(list) => list,
        Err(error) => return Answer::failed(&error),
    };
    match route {
        Route::Health => unreachable!("answered above"),
        Route::Verify { destination } => {
            let content_type = headers()
                .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned());
            if let Err(refused) = sidecar::guard::check_not_form(content_type.as_deref()) {
                return refused;
            }
            match sidecar::pick(&destinations, destination.as_deref()) {
                Ok(destination) => match verify_handshake(destination) {
                    Ok(receipt) => Answer::delivered(&receipt),
                    Err(error) => Answer::failed(&error),
                },
                Err(refused) => refused,
            }
        }
        Route::Doctor { destination } => {
            match sidecar::pick_configured(&destinations, destination.as_deref()) {
                Ok(destination) => Answer::doctor(&doctor(destination.as_ref())),
                Err(refused) => refused,
            }
        }
        Route::Copy { destination } => {
            let destination = match sidecar::pick(&destinations, destination.as_deref()) {
                Ok(destination) => destination,
                Err(refused) => return refused,
            };
            let content_type = headers()
                .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned());
            let body = match read_body(request, sidecar::copy::MAX_BODY_BYTES) {
                Ok(body) => body,
                Err(refused) => return refused,
            };
            let copy = match sidecar::copy_request(content_type.as_deref(), &body) {
                Ok(copy) => copy,
                Err(refused) => return refused,
            };
            let object = delivery::Object {
                name: copy.name,
                size: None,
                content_type: copy.content_type,
                metadata: copy.metadata,
                session: None,
            };
            match deliver_from_s3(destination, &copy.source, object) {
                Ok(receipt) => Answer::delivered(&receipt),
                Err(error) => Answer::failed(&error),
            }
        }
        Route::Deliver { destination, name } => {
            let destination = match sidecar::pick(&destinations, destination.as_deref()) {
                Ok(destination) => destination,
                Err(refused) => return refused,
            };
            let object = match sidecar::object_from_headers(headers()) {
                Ok(object) => object,
                Err(refused) => return refused,
            };
            let Ok(body) = request.consume() else {
                return Answer::refuse(400, "the request body was already taken");
            };
            let Ok(stream) = body.stream() else {
                return Answer::refuse(400, "the request body stream was already taken");
            };
            let object = delivery::Object {
                name,
                size: object.size,
                content_type: object.content_type,
                metadata: object.metadata,
                session: None,
            };
            // The stream is consumed (and dropped) before its body, as wasi:http requires.
            let result = deliver_stream(destination, object, stream);
            drop(body);
            match result {
                Ok(receipt) => Answer::delivered(&receipt),
                Err(error) => Answer::failed(&error),
            }
        }
    }
}

/// A small request body, read whole; one larger than `max` is refused.
fn read_body(request: IncomingRequest, max: usize) -> Result<Vec<u8>, Answer> {
    let Ok(body) = request.consume() else {
        return Err(Answer::refuse(400, "the request body was already taken"));
    };
    let mut bytes = Vec::new();
    {
        let Ok(stream) = body.stream() else {
            return Err(Answer::refuse(
                400,
                "the request body stream was already taken",
            ));
        };
        loop {
            match stream.blocking_read(16 * 1024) {
                Ok(chunk) => bytes.extend_from_slice(&chunk),
                Err(wasip2::io::streams::StreamError::Closed) => break,
                // The client went away mid-body: what arrived is not the request.
                Err(_) => return Err(Answer::refuse(400, "the request body broke off")),
            }
            if bytes.len() > max {
                return Err(Answer::refuse(
                    413,
                    format!("the body is larger than {max} bytes"),
                ));
            }
        }
    }
    drop(body);
    Ok(bytes)
}

/// Writes the answer; a client that went away gets nothing, and nothing else happens.
fn respond(out: ResponseOutparam, answer: &Answer, head: bool) {
    let body = answer.body_bytes();
    let mut fields: Vec<(String, Vec<u8>)> =
        vec![("content-type".into(), b"application/json".to_vec())];
    if !head {
        fields.push(("content-length".into(), body.len().to_string().into_bytes()));
    }
    for (name, value) in &answer.headers {
        fields.push(((*name).to_owned(), value.clone().into_bytes()));
    }
    let headers = Fields::from_list(&fields).unwrap_or_else(|_| Fields::new());
    let response = OutgoingResponse::new(headers);
    let _ = response.set_status_code(answer.status);
    let Ok(outgoing) = response.body() else {
        return;
    };
    ResponseOutparam::set(out, Ok(response));
    if !head && let Ok(stream) = outgoing.write() {
        // blocking_write_and_flush takes at most 4096 bytes a call.
        for piece in body.chunks(4096) {
            if stream.blocking_write_and_flush(piece).is_err() {
                break;
            }
        }
    }
    let _ = OutgoingBody::finish(outgoing, None);
}
