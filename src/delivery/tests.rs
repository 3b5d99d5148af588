//! The delivery loop against a scripted Cloud Storage.

use std::cell::RefCell;
use std::rc::Rc;

use super::*;
use crate::io::{Request, TransportErrorKind};
use crate::testing::{FakeIo, destination, respond};

fn spec(name: &str, size: Option<u64>) -> ObjectSpec {
    ObjectSpec {
        name: name.into(),
        size,
        content_type: "application/octet-stream".into(),
        metadata: Default::default(),
        expected_crc32c: None,
        session: None,
    }
}

/// A resumable session as GCS keeps it, and the bytes that reached it twice.
#[derive(Default)]
struct Session {
    data: Vec<u8>,
    finished: bool,
    resent: u64,
    /// Commit the next chunk, then lose the answer.
    lose_next_answer: bool,
}

fn object_json(data: &[u8]) -> String {
    let mut c = Checksums::default();
    c.update(data);
    format!(
        r#"{{"name":"n","bucket":"partner-inbox","generation":"1","size":"{}","crc32c":"{}","md5Hash":"{}"}}"#,
        data.len(),
        c.crc32c(),
        c.md5().unwrap()
    )
}

fn io_with_google() -> FakeIo {
    let mut io = FakeIo::new();
    io.set_env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .set_env("AWS_SECRET_ACCESS_KEY", "s");
    io.on("POST https://sts.googleapis.com/", |_| {
        respond(200, r#"{"access_token":"fed","expires_in":3599}"#)
    });
    io.on("POST https://iamcredentials.googleapis.com/", |_| {
        respond(
            200,
            r#"{"accessToken":"at","expireTime":"2026-11-26T13:00:00Z"}"#,
        )
    });
    io
}

fn fake_resumable(io: &mut FakeIo, session: Rc<RefCell<Session>>) {
    io.on("POST https://storage.googleapis.com/upload/storage/v1/b/partner-inbox/o?uploadType=resumable", |_| {
        Ok(http::Response::builder().status(200).header("location", "https://storage.googleapis.com/session/1").body(Vec::new()).unwrap())
    });
    io.on(
        "PUT https://storage.googleapis.com/session/1",
        move |req: &Request| {
            let mut s = session.borrow_mut();
            let range = req.headers()["content-range"]
                .to_str()
                .unwrap()
                .strip_prefix("bytes ")
                .unwrap()
                .to_owned();
            let (span, total) = range.split_once('/').unwrap();
            if span != "*" {
                let start: u64 = span.split_once('-').unwrap().0.parse().unwrap();
                let committed = s.data.len() as u64;
                assert!(start <= committed, "a gap");
                let overlap = (committed - start).min(req.body().len() as u64);
                s.resent += overlap;
                let body = req.body()[overlap as usize..].to_vec();
                s.data.extend_from_slice(&body);
            }
            if total != "*" && s.data.len() as u64 == total.parse::<u64>().unwrap() {
                s.finished = true;
            }
            if std::mem::take(&mut s.lose_next_answer) {
                return Err(TransportError::new(
                    TransportErrorKind::Protocol,
                    "connection reset",
                ));
            }
            if s.finished {
                return respond(200, &object_json(&s.data));
            }
            let mut r = http::Response::builder().status(308);
            if !s.data.is_empty() {
                r = r.header("range", format!("bytes=0-{}", s.data.len() - 1));
            }
            Ok(r.body(Vec::new()).unwrap())
        },
    );
}

/// Delivers the five bytes "hello" as object "n" with the default settings.
fn deliver_hello(io: &mut FakeIo) -> Result<Receipt, Error> {
    deliver(
        io,
        &mut TokenSource::default(),
        &destination(),
        &spec("n", Some(5)),
        &mut &b"hello"[..],
    )
}

#[test]
fn small_objects_take_one_request() {
    let mut io = io_with_google();
    io.on("POST https://storage.googleapis.com/upload/storage/v1/b/partner-inbox/o?uploadType=multipart", |req| {
        assert_eq!(req.headers()["authorization"], "Bearer at");
        respond(200, &object_json(b"hello"))
    });
    let receipt = deliver_hello(&mut io).unwrap();
    assert_eq!(receipt.status, Status::Delivered);
    assert_eq!(receipt.requests, 1);
    assert_eq!(receipt.generation.as_deref(), Some("1"));
}

/// A CRC32C other than the one sent is named as GCS spells it, not in Rust's notation.
#[test]
fn another_crc32c_is_named_as_gcs_reports_it() {
    let mut io = io_with_google();
    io.on("POST https://storage.googleapis.com/upload/storage/v1/b/partner-inbox/o?uploadType=multipart", |_| {
        respond(200, &object_json(b"hello").replace(r#""crc32c":""#, r#""crc32c":"x"#))
    });
    let e = deliver_hello(&mut io).unwrap_err();
    assert!(e.message.starts_with("GCS reports CRC32C \"x"), "{e}");
}

#[test]
fn uploads_take_the_destination_s_timeout() {
    for (setting, expected) in [(None, 120), (Some(900), 900)] {
        let mut io = io_with_google();
        io.on("POST https://storage.googleapis.com/upload/storage/v1/b/partner-inbox/o?uploadType=multipart", |_| {
            respond(200, &object_json(b"hello"))
        });
        let destination = crate::config::Destination::from_settings(&crate::config::Settings {
            upload_timeout_seconds: setting,
            ..crate::testing::settings()
        })
        .unwrap();
        deliver(
            &mut io,
            &mut TokenSource::default(),
            &destination,
            &spec("n", Some(5)),
            &mut &b"hello"[..],
        )
        .unwrap();
        assert_eq!(
            io.timeouts.last(),
            Some(&std::time::Duration::from_secs(expected)),
            "the upload is the last request"
        );
    }
}

#[test]
fn a_lost_answer_then_412_is_delivered_unconfirmed_but_a_first_412_is_a_conflict() {
    let mut io = io_with_google();
    let mut calls = 0;
    io.on("POST https://storage.googleapis.com/upload/storage/v1/b/partner-inbox/o?uploadType=multipart", move |_| {
        calls += 1;
        if calls == 1 { Err(TransportError::new(TransportErrorKind::Protocol, "reset")) } else { respond(412, r#"{"error":{"code":412,"message":"At least one of the pre-conditions you specified did not hold."}}"#) }
    });
    let receipt = deliver_hello(&mut io).unwrap();
    assert_eq!(receipt.status, Status::DeliveredUnconfirmed);
    assert_eq!(receipt.retries, 1);

    let mut io = io_with_google();
    io.on("POST https://storage.googleapis.com/upload/storage/v1/b/partner-inbox/o?uploadType=multipart", |_| {
        respond(412, r#"{"error":{"code":412,"message":"At least one of the pre-conditions you specified did not hold."}}"#)
    });
    let err = deliver_hello(&mut io).unwrap_err();
    assert_eq!(err.status, Some(412));
    assert!(err.fix.unwrap().contains("never overwritten"));
}

#[test]
fn resumable_resumes_from_the_committed_offset_without_resending() {
    let data: Vec<u8> = (0..(600 * 1024)).map(|i| (i % 251) as u8).collect();
    let session = Rc::new(RefCell::new(Session::default()));
    let mut io = io_with_google();
    fake_resumable(&mut io, session.clone());
    session.borrow_mut().lose_next_answer = true;
    let mut destination = destination();
    destination.upload.single_request_limit = 1024;
    destination.upload.chunk_size = 256 * 1024;
    let receipt = deliver(
        &mut io,
        &mut TokenSource::default(),
        &destination,
        &spec("n", Some(data.len() as u64)),
        &mut &data[..],
    )
    .unwrap();
    let s = session.borrow();
    assert_eq!(s.data, data);
    assert_eq!(s.resent, 0, "committed bytes are never sent again");
    assert_eq!(receipt.status, Status::Delivered);
    assert_eq!(receipt.upload, "resumable");
    assert_eq!(receipt.retries, 1);
    assert!(
        io.sent.iter().any(|l| l.starts_with("PUT")),
        "{:?}",
        io.sent
    );
}

#[test]
fn streams_of_unknown_length_finish_with_an_empty_final_request() {
    let data = vec![7u8; 512 * 1024];
    let session = Rc::new(RefCell::new(Session::default()));
    let mut io = io_with_google();
    fake_resumable(&mut io, session.clone());
    let mut destination = destination();
    destination.upload.chunk_size = 256 * 1024;
    let receipt = deliver(
        &mut io,
        &mut TokenSource::default(),
        &destination,
        &spec("n", None),
        &mut &data[..],
    )
    .unwrap();
    assert_eq!(session.borrow().data, data);
    assert_eq!(receipt.size, data.len() as u64);
    let last = io.requests.last().unwrap();
    assert_eq!(last.headers()["content-range"], "bytes */524288");
    assert!(
        last.headers()["x-goog-hash"]
            .to_str()
            .unwrap()
            .starts_with("crc32c=")
    );
}

#[test]
fn a_session_that_fails_for_good_is_cancelled() {
    let data = vec![7u8; 600 * 1024];
    let mut io = io_with_google();
    fake_resumable(&mut io, Rc::new(RefCell::new(Session::default())));
    io.on("PUT https://storage.googleapis.com/session/1", |_| {
        respond(
            400,
            r#"{"error":{"code":400,"message":"Invalid request."}}"#,
        )
    });
    io.on("DELETE https://storage.googleapis.com/session/1", |req| {
        assert_eq!(req.headers()["authorization"], "Bearer at");
        respond(499, "")
    });
    let mut destination = destination();
    destination.upload.single_request_limit = 1024;
    destination.upload.chunk_size = 256 * 1024;
    let err = deliver(
        &mut io,
        &mut TokenSource::default(),
        &destination,
        &spec("n", Some(data.len() as u64)),
        &mut &data[..],
    )
    .unwrap_err();
    assert_eq!(err.status, Some(400), "{err}");
    assert_eq!(
        io.count("DELETE https://storage.googleapis.com/session/1"),
        1
    );
}

#[test]
fn a_source_shorter_or_longer_than_declared_creates_nothing() {
    for (declared, actual) in [(10u64, 5usize), (5, 10), (300 * 1024, 100)] {
        let mut io = io_with_google();
        io.on("POST https://storage.googleapis.com/upload/storage/v1/b/partner-inbox/o?uploadType=multipart", |_| panic!("must not upload"));
        fake_resumable(&mut io, Rc::new(RefCell::new(Session::default())));
        let data = vec![1u8; actual];
        let mut destination = destination();
        destination.upload.single_request_limit = 200 * 1024;
        destination.upload.chunk_size = 256 * 1024;
        let err = deliver(
            &mut io,
            &mut TokenSource::default(),
            &destination,
            &spec("n", Some(declared)),
            &mut &data[..],
        )
        .unwrap_err();
        assert_eq!(err.step, Step::Read, "{err}");
        assert!(
            !io.sent.iter().any(|l| l.starts_with("PUT")),
            "no chunk sent: {:?}",
            io.sent
        );
    }
}

/// A session an earlier run started (and a ledger kept): continued from what GCS committed,
/// the committed bytes read and hashed but not sent; never started anew nor cancelled.
#[test]
fn a_given_session_is_continued_from_its_committed_offset() {
    let data: Vec<u8> = (0..(600 * 1024)).map(|i| (i % 251) as u8).collect();
    let session = Rc::new(RefCell::new(Session {
        data: data[..256 * 1024].to_vec(),
        ..Default::default()
    }));
    let mut io = io_with_google();
    fake_resumable(&mut io, session.clone());
    let mut destination = destination();
    destination.upload.chunk_size = 256 * 1024;
    let mut spec = spec("n", Some(data.len() as u64));
    spec.session = Some("https://storage.googleapis.com/session/1".into());
    let receipt = deliver(
        &mut io,
        &mut TokenSource::default(),
        &destination,
        &spec,
        &mut &data[..],
    )
    .unwrap();
    let s = session.borrow();
    assert_eq!(s.data, data);
    assert_eq!(s.resent, 0, "committed bytes are never sent again");
    assert_eq!(receipt.upload, "resumable");
    let mut whole = Checksums::crc32c_only();
    whole.update(&data);
    assert_eq!(receipt.crc32c, whole.crc32c());
    assert!(
        !io.sent
            .iter()
            .any(|l| l.starts_with("POST https://storage")),
        "{:?}",
        io.sent
    );
    let first = io.requests.iter().find(|r| r.method() == "PUT").unwrap();
    assert_eq!(
        first.headers()["content-range"],
        "bytes */614400",
        "asked first"
    );
}

#[test]
fn a_given_session_that_finished_answers_with_its_object_and_one_that_fails_is_kept() {
    let data = vec![9u8; 300 * 1024];
    let session = Rc::new(RefCell::new(Session {
        data: data.clone(),
        finished: true,
        ..Default::default()
    }));
    let mut io = io_with_google();
    fake_resumable(&mut io, session.clone());
    let mut given = spec("n", Some(data.len() as u64));
    given.session = Some("https://storage.googleapis.com/session/1".into());
    let receipt = deliver(
        &mut io,
        &mut TokenSource::default(),
        &destination(),
        &given,
        &mut &data[..],
    )
    .unwrap();
    assert_eq!(receipt.status, Status::Delivered);
    assert_eq!(receipt.size, data.len() as u64);
    assert_eq!(io.count("PUT https://storage.googleapis.com/session/1"), 1);
    // Other bytes than the finished object's: its CRC32C is not theirs.
    let mut io = io_with_google();
    fake_resumable(&mut io, session);
    let other = vec![8u8; 300 * 1024];
    let err = deliver(
        &mut io,
        &mut TokenSource::default(),
        &destination(),
        &given,
        &mut &other[..],
    )
    .unwrap_err();
    assert!(err.message.contains("CRC32C"), "{err}");
    // A session that fails for good is left to whoever started it.
    let mut io = io_with_google();
    io.on("PUT https://storage.googleapis.com/session/1", |_| {
        respond(410, r#"{"error":{"code":410,"message":"gone"}}"#)
    });
    let err = deliver(
        &mut io,
        &mut TokenSource::default(),
        &destination(),
        &given,
        &mut &data[..],
    )
    .unwrap_err();
    assert_eq!(err.status, Some(410), "{err}");
    assert_eq!(
        io.count("DELETE https://storage.googleapis.com/session/1"),
        0
    );
}

#[test]
fn a_given_session_off_the_storage_host_is_refused_unasked() {
    let mut io = io_with_google();
    let mut given = spec("n", Some(5));
    given.session = Some("https://attacker.example/session/1".into());
    let err = deliver(
        &mut io,
        &mut TokenSource::default(),
        &destination(),
        &given,
        &mut &b"hello"[..],
    )
    .unwrap_err();
    assert!(
        err.message
            .contains("not on https://storage.googleapis.com"),
        "{err}"
    );
    assert!(
        io.sent.iter().all(|l| !l.contains("attacker")),
        "{:?}",
        io.sent
    );
}

#[test]
fn start_session_returns_the_session_for_the_object() {
    let mut io = io_with_google();
    fake_resumable(&mut io, Rc::new(RefCell::new(Session::default())));
    let url = start_session(
        &mut io,
        &mut TokenSource::default(),
        &destination(),
        &spec("n", Some(5)),
    )
    .unwrap();
    assert_eq!(url, "https://storage.googleapis.com/session/1");
}

/// A token that expires while a long upload runs is refused at the status query too: renewed
/// once, and the session goes on.
#[test]
fn a_status_query_refused_for_its_token_renews_it_once() {
    let data = vec![5u8; 300 * 1024];
    let session = Rc::new(RefCell::new(Session {
        data: data[..256 * 1024].to_vec(),
        ..Default::default()
    }));
    let mut io = io_with_google();
    let refused = Rc::new(RefCell::new(false));
    let inner = session.clone();
    let once = refused.clone();
    io.on("PUT https://storage.googleapis.com/session/1", move |req| {
        if !std::mem::replace(&mut *once.borrow_mut(), true) {
            return respond(
                401,
                r#"{"error":{"code":401,"message":"Invalid Credentials"}}"#,
            );
        }
        let mut s = inner.borrow_mut();
        let range = req.headers()["content-range"].to_str().unwrap().to_owned();
        if let Some(span) = range
            .strip_prefix("bytes ")
            .and_then(|r| r.split('/').next())
            && span != "*"
        {
            let start: usize = span.split('-').next().unwrap().parse().unwrap();
            let body = req.body();
            s.data.truncate(start);
            s.data.extend_from_slice(body);
            return respond(200, &object_json(&s.data));
        }
        Ok(http::Response::builder()
            .status(308)
            .header("range", format!("bytes=0-{}", s.data.len() - 1))
            .body(Vec::new())
            .unwrap())
    });
    let mut destination = destination();
    destination.upload.chunk_size = 256 * 1024;
    let mut given = spec("n", Some(data.len() as u64));
    given.session = Some("https://storage.googleapis.com/session/1".into());
    let receipt = deliver(
        &mut io,
        &mut TokenSource::default(),
        &destination,
        &given,
        &mut &data[..],
    )
    .unwrap();
    assert_eq!(receipt.size, data.len() as u64);
    assert_eq!(session.borrow().data, data);
    assert_eq!(
        io.count("POST https://sts.googleapis.com/"),
        2,
        "renewed once"
    );
}
