//! Small objects: how many 4 KiB objects a second, with the token cached, in one instance and
//! in several at once; and how many HTTP requests each costs. The Python client does the same.

use std::time::Instant;

use anyhow::{Context as _, Result};
use bytes::Bytes;

use super::{Bench, Row};
use wif_push_emulator::Endpoint;
use wif_push_host::runtime::{Session, Settings, delivery};

const SIZE: usize = 4096;

pub(super) async fn run(bench: &Bench) -> Result<Vec<Row>> {
    let demo = bench.demo().await?;
    let count = bench.args.objects;
    let data = Bytes::from((0..SIZE).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let group = "small objects";
    let mut rows = Vec::new();

    // One instance, in sequence.
    let mut session = demo.session(&bench.runtime).await?;
    session.access_token(&demo.destination).await?;
    let (sent, gcs) = (session.requests_sent(), demo.emulator.count(Endpoint::Gcs));
    let started = Instant::now();
    deliver_all(&mut session, &demo.destination, "seq", 0..count, &data).await?;
    let seconds = started.elapsed().as_secs_f64();
    let sent = session.requests_sent() - sent;
    let arrived = demo.emulator.count(Endpoint::Gcs) - gcs;
    let per_object = sent as f64 / count as f64;
    let sequential = count as f64 / seconds;
    eprintln!("small objects: wif-push sequential {sequential:.0}/s, {per_object} requests each");

    // Several instances at once, each with its own cached token.
    let n = bench.args.concurrency.max(1);
    let mut sessions = Vec::new();
    for _ in 0..n {
        let mut session = demo.session(&bench.runtime).await?;
        session.access_token(&demo.destination).await?;
        sessions.push(session);
    }
    let gcs = demo.emulator.count(Endpoint::Gcs);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, mut session) in sessions.into_iter().enumerate() {
        let destination = demo.destination.clone();
        let data = data.clone();
        let range = (i * count / n)..((i + 1) * count / n);
        tasks.spawn(async move {
            deliver_all(&mut session, &destination, &format!("par{i}"), range, &data).await
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.context("a delivering task")??;
    }
    let seconds = started.elapsed().as_secs_f64();
    let concurrent = count as f64 / seconds;
    let concurrent_per_object = (demo.emulator.count(Endpoint::Gcs) - gcs) as f64 / count as f64;
    eprintln!("small objects: wif-push ×{n} {concurrent:.0}/s");

    // The Python client, in sequence.
    let python = if bench.peers.python.is_some() {
        let token = demo.emulator.issue_access_token_for_tests();
        let endpoint = format!("http://{}", demo.emulator.addr());
        let gcs = demo.emulator.count(Endpoint::Gcs);
        let answer = bench
            .peers
            .python(
                bench.dir.path(),
                &[
                    "small",
                    &endpoint,
                    &token,
                    &demo.emulator.config().bucket,
                    "python/",
                    &count.to_string(),
                    &SIZE.to_string(),
                ],
            )
            .await;
        Some(answer.and_then(|a| {
            let seconds = a["seconds"].as_f64().context("the Python peer's seconds")?;
            let per_object = (demo.emulator.count(Endpoint::Gcs) - gcs) as f64 / count as f64;
            Ok((count as f64 / seconds, per_object))
        }))
    } else {
        None
    };
    let python_rate = python.as_ref().and_then(|p| p.as_ref().ok()).map(|p| p.0);
    let vs_python = |v: f64| python_rate.map(|p| v / p);

    rows.push(
        Row::new(group, "wif-push, one instance", "objects/s")
            .value(sequential)
            .ratio(vs_python(sequential), "Python")
            .note(format!(
                "{count} × 4 KiB in sequence, token cached (multipart, CRC32C + MD5)"
            )),
    );
    rows.push(
        Row::new(group, format!("wif-push, {n} instances at once"), "objects/s")
            .value(concurrent)
            .ratio(vs_python(concurrent), "Python")
            .note(format!(
                "{count} × 4 KiB split over {n} instances of one compiled component, each with its token cached; {concurrent_per_object:.3} requests per object"
            )),
    );
    rows.push(
        Row::new(group, "wif-push, HTTP requests per object", "requests")
            .value(per_object)
            .target(
                "exactly 1",
                Some(sent as usize == count && arrived == count),
            )
            .note(format!(
                "{sent} requests left the host, {arrived} reached the emulator, for {count} objects"
            )),
    );
    let row = Row::new(
        group,
        "Python google-cloud-storage, one process",
        "objects/s",
    );
    rows.push(match python {
        Some(Ok((rate, per_object))) => row.value(rate).ratio(Some(1.0), "Python").note(format!(
            "{}, {count} × upload_from_string in sequence; {per_object:.3} requests per object",
            bench.peers.python_version.as_deref().unwrap_or_default()
        )),
        Some(Err(e)) => row.note(format!("failed: {e:#}")),
        None => row.note("skipped: no Python with google-cloud-storage"),
    });
    Ok(rows)
}

async fn deliver_all(
    session: &mut Session,
    destination: &Settings,
    prefix: &str,
    range: std::ops::Range<usize>,
    data: &Bytes,
) -> Result<()> {
    for i in range {
        let object = delivery::Object {
            name: format!("{prefix}/{i}"),
            size: Some(data.len() as u64),
            content_type: None,
            metadata: vec![],
            session: None,
        };
        session
            .deliver(destination, &object, std::io::Cursor::new(data.clone()))
            .await?;
    }
    Ok(())
}
