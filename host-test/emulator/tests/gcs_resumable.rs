//! Cloud Storage's resumable uploads: chunks, status queries, checksums checked at the end, the
//! precondition checked again, sessions unknown, cancelled or inconsistent, and cut chunks.

mod common;

use http::Method;
use serde_json::json;
use tokio::io::AsyncWriteExt as _;
use wif_push_emulator::EmulatorConfig;

use common::gcs::*;
use common::*;

#[tokio::test]
async fn resumable_upload_in_three_chunks() {
    let emulator = start(EmulatorConfig::demo()).await;
    let token = emulator.issue_access_token_for_tests();
    let total = 2 * KIB256 + 1000;
    let data = pattern(0..total);
    let (crc32c, md5, sha256) = hashes(&data);
    let session = start_session(
        &emulator,
        &token,
        "big/one.bin",
        json!({"metadata": {"k": "v"}}),
    )
    .await;

    assert_incomplete(&status_query(&emulator, &session, "*").await, 0);
    assert_incomplete(
        &chunk(&emulator, &session, 0..KIB256, "*", &[]).await,
        KIB256,
    );
    // Not a multiple of 256 KiB and not final.
    chunk(&emulator, &session, KIB256..KIB256 + 1000, "*", &[])
        .await
        .expect(400);
    // Beyond the committed offset: a gap.
    chunk(&emulator, &session, 2 * KIB256..3 * KIB256, "*", &[])
        .await
        .expect(400);
    assert_incomplete(&status_query(&emulator, &session, "*").await, KIB256);
    // The first chunk again, with the second: the overlap is skipped and counted.
    assert_incomplete(
        &chunk(&emulator, &session, 0..2 * KIB256, "*", &[]).await,
        2 * KIB256,
    );
    let resent: Vec<u64> = gcs_entries(&emulator)
        .iter()
        .map(|e| e.gcs.as_ref().unwrap().bytes_resent)
        .collect();
    assert_eq!(resent, [0, 0, 0, 0, 0, 0, KIB256]);

    let goog_hash = format!("crc32c={crc32c},md5={md5}");
    let last = chunk(
        &emulator,
        &session,
        2 * KIB256..total,
        &total.to_string(),
        &[("x-goog-hash", &goog_hash)],
    )
    .await;
    last.expect(200);
    let object = last.json();
    assert_eq!(object["name"], "big/one.bin");
    assert_eq!(object["size"], total.to_string());
    assert_eq!(object["crc32c"], crc32c);
    assert_eq!(object["md5Hash"], md5);
    assert_eq!(object["contentType"], "application/x-test");
    assert_eq!(object["metadata"], json!({"k": "v"}));
    let stored = emulator.object("big/one.bin").unwrap();
    assert_eq!(stored.sha256_hex, sha256);
    assert_eq!(std::fs::read(stored.path.unwrap()).unwrap(), data);

    // A finished session answers with the object, whatever is asked.
    for total_text in ["*", &total.to_string()] {
        let answer = status_query(&emulator, &session, total_text).await;
        answer.expect(200);
        assert_eq!(answer.json(), object);
    }
    let again = chunk(
        &emulator,
        &session,
        2 * KIB256..total,
        &total.to_string(),
        &[],
    )
    .await;
    again.expect(200);
    assert_eq!(again.json(), object);

    let entries = gcs_entries(&emulator);
    let summary: Vec<(u16, Option<&str>)> = entries
        .iter()
        .map(|e| (e.status, e.gcs.as_ref().unwrap().content_range.as_deref()))
        .collect();
    assert_eq!(
        summary,
        [
            (200, None),
            (308, Some("bytes */*")),
            (308, Some("bytes 0-262143/*")),
            (400, Some("bytes 262144-263143/*")),
            (400, Some("bytes 524288-786431/*")),
            (308, Some("bytes */*")),
            (308, Some("bytes 0-524287/*")),
            (200, Some("bytes 524288-525287/525288")),
            (200, Some("bytes */*")),
            (200, Some("bytes */525288")),
            (200, Some("bytes 524288-525287/525288")),
        ]
    );
    assert!(
        entries
            .iter()
            .all(|e| e.gcs.as_ref().unwrap().upload_type.as_deref() == Some("resumable"))
    );
    assert_eq!(entries[6].gcs.as_ref().unwrap().bytes_received, 2 * KIB256);
    assert_eq!(entries[10].gcs.as_ref().unwrap().bytes_resent, 1000);
    assert_eq!(staged_files(&emulator), 0);
}

#[tokio::test]
async fn a_status_query_never_finalizes_but_the_total_does() {
    let emulator = start(EmulatorConfig::demo()).await;
    let token = emulator.issue_access_token_for_tests();
    let session = start_session(&emulator, &token, "unknown-length", json!({})).await;
    chunk(&emulator, &session, 0..KIB256, "*", &[])
        .await
        .expect(308);
    chunk(&emulator, &session, KIB256..2 * KIB256, "*", &[])
        .await
        .expect(308);
    // All bytes are in, but the session has not been told the total.
    for _ in 0..2 {
        assert_incomplete(&status_query(&emulator, &session, "*").await, 2 * KIB256);
    }
    assert!(emulator.object("unknown-length").is_none());
    // A total larger than what is committed does not finalize either; a smaller one is wrong.
    assert_incomplete(
        &status_query(&emulator, &session, &(3 * KIB256).to_string()).await,
        2 * KIB256,
    );
    status_query(&emulator, &session, "1").await.expect(400);
    assert!(emulator.object("unknown-length").is_none());

    // `bytes */TOTAL` with TOTAL committed ends the upload, checked by X-Goog-Hash.
    let session = start_session(&emulator, &token, "ended-by-total", json!({})).await;
    chunk(&emulator, &session, 0..KIB256, "*", &[])
        .await
        .expect(308);
    let (crc32c, md5, sha256) = hashes(&pattern(0..KIB256));
    let goog_hash = format!("crc32c={crc32c},md5={md5}");
    let answer = send(
        &emulator,
        Method::PUT,
        &session,
        &[
            ("content-range", &format!("bytes */{KIB256}")),
            ("x-goog-hash", &goog_hash),
        ],
        bytes(""),
    )
    .await;
    answer.expect(200);
    assert_eq!(
        emulator.object("ended-by-total").unwrap().sha256_hex,
        sha256
    );

    // A 0-byte object.
    let session = start_session(&emulator, &token, "empty", json!({})).await;
    let answer = status_query(&emulator, &session, "0").await;
    answer.expect(200);
    assert_eq!(answer.json()["size"], "0");
    assert_eq!(answer.json()["crc32c"], "AAAAAA==");
    assert_eq!(answer.json()["md5Hash"], "1B2M2Y8AsgTpgAmY7PhCfg==");
}

#[tokio::test]
async fn wrong_x_goog_hash_kills_the_session() {
    let emulator = start(EmulatorConfig::demo()).await;
    let token = emulator.issue_access_token_for_tests();
    let total = KIB256 + 10;
    let (crc32c, md5, _) = hashes(&pattern(0..total));
    let session = start_session(&emulator, &token, "damaged", json!({})).await;
    chunk(&emulator, &session, 0..KIB256, "*", &[])
        .await
        .expect(308);
    let wrong = format!("crc32c=AAAAAA==,md5={md5}");
    let answer = chunk(
        &emulator,
        &session,
        KIB256..total,
        &total.to_string(),
        &[("x-goog-hash", &wrong)],
    )
    .await;
    let message =
        format!("Provided CRC32C \"AAAAAA==\" doesn't match calculated CRC32C \"{crc32c}\".");
    assert_gcs_error(&answer, 400, "invalid", &message);
    assert!(emulator.object("damaged").is_none());
    assert_eq!(staged_files(&emulator), 0);
    // Dead: asking again or re-sending the right data does not bring the object back.
    assert_gcs_error(
        &status_query(&emulator, &session, "*").await,
        400,
        "invalid",
        &message,
    );
    let right = format!("crc32c={crc32c},md5={md5}");
    let answer = chunk(
        &emulator,
        &session,
        KIB256..total,
        &total.to_string(),
        &[("x-goog-hash", &right)],
    )
    .await;
    answer.expect(400);
    assert!(emulator.object("damaged").is_none());

    // Checksums declared when the session started are checked too.
    let session = start_session(
        &emulator,
        &token,
        "damaged-2",
        json!({"md5Hash": "AAAAAAAAAAAAAAAAAAAAAA=="}),
    )
    .await;
    let answer = chunk(&emulator, &session, 0..total, &total.to_string(), &[]).await;
    assert_gcs_error(
        &answer,
        400,
        "invalid",
        &format!(
            "Provided MD5 hash \"AAAAAAAAAAAAAAAAAAAAAA==\" doesn't match calculated MD5 hash \"{md5}\"."
        ),
    );
    assert!(emulator.objects().is_empty());

    // A malformed X-Goog-Hash is refused before any byte is taken, and costs nothing.
    let session = start_session(&emulator, &token, "fine", json!({})).await;
    chunk(
        &emulator,
        &session,
        0..total,
        &total.to_string(),
        &[("x-goog-hash", "sha1=xyz")],
    )
    .await
    .expect(400);
    assert_incomplete(&status_query(&emulator, &session, "*").await, 0);
    chunk(
        &emulator,
        &session,
        0..total,
        &total.to_string(),
        &[("x-goog-hash", &right)],
    )
    .await
    .expect(200);
}

#[tokio::test]
async fn the_precondition_is_checked_again_at_the_end() {
    let emulator = start(EmulatorConfig::demo()).await;
    let token = emulator.issue_access_token_for_tests();
    let session = start_session(&emulator, &token, "contested", json!({})).await;
    chunk(&emulator, &session, 0..KIB256, "*", &[])
        .await
        .expect(308);
    try_multipart(&emulator, &token, "contested", b"winner")
        .await
        .unwrap()
        .expect(200);
    let answer = chunk(
        &emulator,
        &session,
        KIB256..KIB256 + 1,
        &(KIB256 + 1).to_string(),
        &[],
    )
    .await;
    answer.expect(412);
    status_query(&emulator, &session, "*").await.expect(412);
    let stored = emulator.object("contested").unwrap();
    assert_eq!(std::fs::read(stored.path.unwrap()).unwrap(), b"winner");
}

#[tokio::test]
async fn sessions_unknown_cancelled_and_inconsistent() {
    let emulator = start(EmulatorConfig::demo()).await;
    let token = emulator.issue_access_token_for_tests();
    let unknown = format!("{UPLOAD}?uploadType=resumable&name=x&upload_id=nope");
    status_query(&emulator, &unknown, "*").await.expect(404);

    let session = start_session(&emulator, &token, "cancelled", json!({})).await;
    chunk(&emulator, &session, 0..KIB256, "*", &[])
        .await
        .expect(308);
    let answer = send(&emulator, Method::DELETE, &session, &[], bytes("")).await;
    answer.expect(499);
    status_query(&emulator, &session, "*").await.expect(404);
    assert!(emulator.object("cancelled").is_none());
    assert_eq!(staged_files(&emulator), 0);

    // X-Upload-Content-Length binds the total.
    let bearer = format!("Bearer {token}");
    let answer = send(
        &emulator,
        Method::POST,
        &upload_path("resumable", "sized", Some("0")),
        &[
            ("authorization", &bearer),
            ("x-upload-content-length", "1000"),
        ],
        bytes(""),
    )
    .await;
    answer.expect(200);
    let session = answer
        .header("location")
        .unwrap()
        .strip_prefix(&format!("https://{HOST}"))
        .unwrap()
        .to_owned();
    chunk(&emulator, &session, 0..999, "999", &[])
        .await
        .expect(400);
    status_query(&emulator, &session, "1001").await.expect(400);
    for bad in ["bytes 0-9", "0-9/10", "bytes 9-0/10", "bytes a-b/c"] {
        send(
            &emulator,
            Method::PUT,
            &session,
            &[("content-range", bad)],
            bytes(""),
        )
        .await
        .expect(400);
    }
    // Content-Length disagreeing with Content-Range.
    send(
        &emulator,
        Method::PUT,
        &session,
        &[("content-range", "bytes 0-999/1000")],
        bytes(pattern(0..10)),
    )
    .await
    .expect(400);
    assert_incomplete(&status_query(&emulator, &session, "*").await, 0);
    chunk(&emulator, &session, 0..1000, "1000", &[])
        .await
        .expect(200);
    // Session requests need no Authorization, but starting one does.
    send(
        &emulator,
        Method::POST,
        &upload_path("resumable", "unauthenticated", Some("0")),
        &[],
        bytes(""),
    )
    .await
    .expect(401);
}

#[tokio::test]
async fn a_client_that_hangs_up_mid_chunk_keeps_whole_256_kib_units() {
    let emulator = start(EmulatorConfig::demo()).await;
    let token = emulator.issue_access_token_for_tests();
    let total = 4 * KIB256;
    let session = start_session(&emulator, &token, "hung-up", json!({})).await;
    chunk(&emulator, &session, 0..KIB256, "*", &[])
        .await
        .expect(308);

    // GCS's words on the status line.
    let mut stream = tokio::net::TcpStream::connect(emulator.addr())
        .await
        .unwrap();
    let query = format!(
        "PUT {session} HTTP/1.1\r\nhost: {HOST}\r\ncontent-range: bytes */*\r\n\
         content-length: 0\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(query.as_bytes()).await.unwrap();
    let mut head = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut head)
        .await
        .unwrap();
    assert!(
        head.starts_with("HTTP/1.1 308 Resume Incomplete\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nrange: bytes=0-262143\r\n"), "{head}");

    // Announce 3 units, send 1.5, hang up.
    let mut stream = tokio::net::TcpStream::connect(emulator.addr())
        .await
        .unwrap();
    let head = format!(
        "PUT {session} HTTP/1.1\r\nhost: {HOST}\r\ncontent-range: bytes {KIB256}-{}/{total}\r\n\
         content-length: {}\r\n\r\n",
        total - 1,
        3 * KIB256
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
        .write_all(&pattern(KIB256..KIB256 + KIB256 * 3 / 2))
        .await
        .unwrap();
    stream.flush().await.unwrap();
    drop(stream);
    let entries = wait_for_gcs_log(&emulator, 4).await;
    assert_eq!(entries[3].status, 0, "no answer: {:?}", entries[3]);
    assert!(
        entries[3].outcome.contains("client went away"),
        "{}",
        entries[3].outcome
    );

    assert_incomplete(&status_query(&emulator, &session, "*").await, 2 * KIB256);
    let (crc32c, md5, sha256) = hashes(&pattern(0..total));
    let goog_hash = format!("crc32c={crc32c},md5={md5}");
    chunk(
        &emulator,
        &session,
        2 * KIB256..total,
        &total.to_string(),
        &[("x-goog-hash", &goog_hash)],
    )
    .await
    .expect(200);
    assert_eq!(emulator.object("hung-up").unwrap().sha256_hex, sha256);
}
