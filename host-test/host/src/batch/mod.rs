//! Batches: many objects delivered concurrently into one destination, each exactly once across
//! crashes when a [`ledger`] keeps the record.
//!
//! Concurrency is a pool of component instances, as `host-test serve` runs: each worker owns an
//! instance and delivers one object at a time; the first instance's token exchange serves them
//! all (the others adopt its tokens, and any renewed token is shared the same way). Memory
//! stays bounded by one chunk per worker. The component stays synchronous and small: several
//! requests in flight from one instance would need an async core for a gain the pool already
//! gives (README: Batches).

pub mod ledger;
pub mod plan;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow};
use serde::Serialize;

use crate::outbound::Outbound;
use crate::runtime::{
    GuestEnv, ReceiptLine, Runtime, Session, Settings, SharedTokens, StepError, Trapped, delivery,
};
use ledger::{Entry, Ledger, Record};
use plan::{Item, Plan, Problem, Shard, Source};

/// What a 412 means for a name the ledger does not know: another sender's object, or one an
/// earlier run without a ledger created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IfExists {
    /// The object fails, and with it the batch (exit ≠ 0).
    #[default]
    Fail,
    /// The object is skipped (and counted as such); the batch may still succeed.
    Skip,
}

/// How a batch runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Objects in flight at once, each on its own instance.
    pub concurrency: usize,
    pub if_exists: IfExists,
    /// Written last, listing every object of the batch, once all are delivered.
    pub manifest_object: Option<String>,
    /// What was given but could not be planned (each reported): with any, the batch is not
    /// whole, and no completion manifest is written.
    pub unplanned: usize,
    pub guest_memory_limit: Option<usize>,
    /// The part of a larger batch this run delivers (`--shard`), named in the manifest.
    pub shard: Option<Shard>,
}

/// Objects in flight by default: measured over a 40 ms round trip (README: Batches), where
/// small objects gain little past 8 and large ones are limited by the link.
pub const DEFAULT_CONCURRENCY: usize = 16;

/// What became of one object.
#[derive(Debug)]
pub enum Outcome {
    /// Delivered by this run: its receipt.
    Delivered(ReceiptLine),
    /// Delivered by an earlier run, as the ledger (or the session it kept) says.
    Earlier(ReceiptLine),
    /// The name was taken and `--if-exists skip` said to leave it.
    Skipped(Skipped),
    Failed(anyhow::Error),
}

impl Outcome {
    /// An earlier run's delivery, its receipt saying so (`"earlier": true`).
    fn earlier(line: ReceiptLine) -> Outcome {
        Outcome::Earlier(ReceiptLine {
            earlier: true,
            ..line
        })
    }
}

/// A name `--if-exists skip` left as it was, as printed.
#[derive(Debug, Serialize)]
pub struct Skipped {
    status: &'static str,
    bucket: String,
    name: String,
    reason: &'static str,
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&serde_json::to_string(self).map_err(|_| std::fmt::Error)?)
    }
}

/// What a batch reports as it goes.
pub enum Event<'a> {
    /// The object `item` (with its full `name`) ended so.
    Done {
        item: &'a Item,
        outcome: &'a Outcome,
    },
    /// The completion manifest, written last.
    Manifest { outcome: &'a Outcome },
}

/// Where a batch reports each outcome as it comes.
pub type Events = Arc<dyn Fn(Event<'_>) + Send + Sync>;

/// The batch's totals.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub objects: usize,
    pub delivered: usize,
    pub earlier: usize,
    pub skipped: usize,
    pub failed: usize,
    /// Objects not tried: the batch stopped at an error every object would meet.
    pub untried: usize,
    /// Bytes of the objects delivered by this run.
    pub bytes: u64,
    pub elapsed: Duration,
    /// The completion manifest's receipt, when one was written.
    pub manifest: Option<ReceiptLine>,
}

impl Summary {
    pub fn succeeded(&self) -> bool {
        self.failed == 0 && self.untried == 0
    }

    /// One line for a person: counts, bytes, time and rate.
    pub fn line(&self) -> String {
        let secs = self.elapsed.as_secs_f64();
        let mib = self.bytes as f64 / (1024.0 * 1024.0);
        format!(
            "{} objects: {} delivered, {} delivered earlier, {} skipped, {} failed{}; {mib:.1} MiB \
             in {secs:.1} s ({:.1} MiB/s, {:.1} objects/s)",
            self.objects,
            self.delivered,
            self.earlier,
            self.skipped,
            self.failed,
            if self.untried > 0 {
                format!(", {} not tried", self.untried)
            } else {
                String::new()
            },
            if secs > 0.0 { mib / secs } else { 0.0 },
            if secs > 0.0 {
                self.delivered as f64 / secs
            } else {
                0.0
            },
        )
    }
}

/// What the component needs to make instances: its runtime, environment and network policy.
#[derive(Clone)]
pub struct Instances {
    pub runtime: Runtime,
    pub env: GuestEnv,
    pub outbound: Outbound,
}

impl Instances {
    /// A new instance, its guest memory limited to `memory_limit` bytes when given.
    pub async fn session(&self, memory_limit: Option<usize>) -> Result<Session> {
        let mut session = Session::new(&self.runtime, &self.env, self.outbound.clone()).await?;
        if let Some(bytes) = memory_limit {
            session.limit_guest_memory(bytes);
        }
        Ok(session)
    }
}

/// Everything the workers share.
struct Shared {
    instances: Instances,
    settings: Settings,
    bucket: String,
    prefix: String,
    single_request_limit: u64,
    options: Options,
    ledger: Option<Mutex<Ledger>>,
    tokens: Mutex<SharedTokens>,
    queue: Mutex<VecDeque<Item>>,
    events: Events,
    /// Opened once the batch has its token; closed if it cannot get one.
    started: tokio::sync::Semaphore,
    /// Set when an error every object would meet stopped the batch: how many were not tried.
    stopped: Mutex<Option<usize>>,
    /// Bytes read from the sources so far (for a progress bar).
    read: Arc<AtomicU64>,
}

impl Shared {
    fn record(&self, record: Record) -> Result<()> {
        match &self.ledger {
            Some(ledger) => ledger.lock().unwrap().append(&record),
            None => Ok(()),
        }
    }

    fn ledger_entry(&self, name: &str) -> Option<Entry> {
        self.ledger
            .as_ref()
            .and_then(|l| l.lock().unwrap().get(name).cloned())
    }
}

/// Expands the `s3://` inputs of `plan` (listing prefixes with the component) and checks every
/// name; returns the objects to deliver. Two sources for one name stop the batch here, before
/// anything is sent.
pub async fn prepare(
    session: &mut Session,
    settings: &Settings,
    plan: &mut Plan,
    manifest_object: Option<&str>,
) -> Result<()> {
    for uri in std::mem::take(&mut plan.s3) {
        match session.plan_s3(settings, &uri).await {
            Ok(planned) => plan.items.extend(planned.into_iter().map(|p| Item {
                name: p.name,
                source: Source::S3(p.source),
                size: p.size,
                content_type: None,
                metadata: Vec::new(),
            })),
            Err(e) => plan.problems.push(Problem {
                source: uri,
                message: format!("{e:#}"),
                stops: false,
            }),
        }
    }
    let prefix = destination(settings)?.prefix;
    plan.check_names(&prefix);
    if let Some(name) = manifest_object
        && plan.items.iter().any(|i| i.name == name)
    {
        plan.problems.push(Problem {
            source: format!("--manifest-object {name}"),
            message: "is also an object of the batch: give the manifest a name of its own".into(),
            stops: true,
        });
    }
    Ok(())
}

fn destination(settings: &Settings) -> Result<wif_push::config::Destination> {
    wif_push::config::Destination::from_settings(settings).map_err(|e| anyhow!("{e}"))
}

/// Delivers `items` into the destination, `options.concurrency` at a time, recording each step
/// in `ledger` (if any) before it happens. Reports each outcome through `events` as it comes,
/// and counts the bytes read from the sources in `read`.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    instances: Instances,
    settings: &Settings,
    first: Session,
    items: Vec<Item>,
    ledger: Option<Ledger>,
    options: &Options,
    events: Events,
    read: Arc<AtomicU64>,
) -> Result<Summary> {
    let started = Instant::now();
    let destination = destination(settings)?;
    let mut summary = Summary {
        objects: items.len(),
        ..Summary::default()
    };
    let mut receipts: HashMap<String, ReceiptLine> = HashMap::new();
    let mut skipped = Vec::new();
    let mut pending = VecDeque::new();
    for item in items {
        let full = format!("{}{}", destination.prefix, item.name);
        match ledger.as_ref().and_then(|l| l.get(&full)) {
            // The name was delivered from other bytes (an earlier day's file of that name, say):
            // never overwritten, and not reported as this source's delivery.
            Some(Entry::Delivered(receipt)) if !delivered_from(receipt, &item) => {
                let outcome = if options.if_exists == IfExists::Skip {
                    summary.skipped += 1;
                    Outcome::Skipped(Skipped {
                        status: "skipped",
                        bucket: destination.bucket.clone(),
                        name: full,
                        reason: "this ledger delivered the name earlier from another source \
                                 (--if-exists skip)",
                    })
                } else {
                    summary.failed += 1;
                    Outcome::Failed(anyhow!(
                        "{full} was delivered earlier from {} ({} bytes), not from this {}: it is \
                         not overwritten; give this object another name (e.g. a dated --prefix)",
                        receipt
                            .source
                            .as_ref()
                            .map(|s| s.uri.as_str())
                            .or(receipt.file.as_deref())
                            .unwrap_or("another source"),
                        receipt.size,
                        item.source
                    ))
                };
                events(Event::Done {
                    item: &item,
                    outcome: &outcome,
                });
            }
            Some(Entry::Delivered(receipt)) => {
                summary.earlier += 1;
                // Nothing is read for it: its bytes count as done.
                read.fetch_add(receipt.size, Ordering::Relaxed);
                receipts.insert(item.name.clone(), (**receipt).clone());
                events(Event::Done {
                    item: &item,
                    outcome: &Outcome::earlier((**receipt).clone()),
                });
            }
            _ => pending.push_back(item),
        }
    }
    let shared = Arc::new(Shared {
        instances,
        settings: settings.clone(),
        bucket: destination.bucket.clone(),
        prefix: destination.prefix.clone(),
        single_request_limit: destination.upload.single_request_limit,
        options: options.clone(),
        ledger: ledger.map(Mutex::new),
        tokens: Mutex::new(SharedTokens::default()),
        queue: Mutex::new(pending),
        events: events.clone(),
        started: tokio::sync::Semaphore::new(0),
        stopped: Mutex::new(None),
        read,
    });
    let mut first = Some(first);
    let mut results = Vec::new();
    let work = shared.queue.lock().unwrap().len();
    if work > 0 {
        // The other workers make their instances while the first runs the batch's one token
        // exchange; they start on objects once it has a token. A destination that cannot give
        // the sender a token stops the batch before any object is tried.
        let workers = options.concurrency.clamp(1, work);
        let mut tasks = Vec::with_capacity(workers);
        for _ in 1..workers {
            tasks.push(tokio::spawn(worker(shared.clone(), None)));
        }
        let mut session = first.take().expect("not yet taken");
        let exchanged = match session.access_token(settings).await {
            Ok(_) => session.cached_tokens().await,
            Err(e) => Err(e),
        };
        match exchanged {
            Ok(tokens) => {
                shared.tokens.lock().unwrap().merge(tokens);
                shared.started.add_permits(workers);
            }
            Err(e) => {
                shared.started.close();
                return Err(e.context(format!(
                    "the batch could not start: none of its {work} objects was sent"
                )));
            }
        }
        tasks.push(tokio::spawn(worker(shared.clone(), Some(session))));
        for task in tasks {
            results.extend(task.await.context("a delivery worker failed")?);
        }
    }
    summary.untried = shared.stopped.lock().unwrap().unwrap_or(0);
    for (item, outcome) in &results {
        match outcome {
            Outcome::Delivered(receipt) => {
                summary.delivered += 1;
                summary.bytes += receipt.size;
                receipts.insert(item.name.clone(), receipt.clone());
            }
            Outcome::Earlier(receipt) => {
                summary.earlier += 1;
                receipts.insert(item.name.clone(), receipt.clone());
            }
            Outcome::Skipped(note) => {
                summary.skipped += 1;
                skipped.push(note.name.clone());
            }
            Outcome::Failed(_) => summary.failed += 1,
        }
    }
    if let Some(name) = &options.manifest_object
        && summary.succeeded()
        && options.unplanned == 0
    {
        let manifest = completion_manifest(&receipts, &skipped, summary.objects, options.shard);
        let item = Item {
            name: name.clone(),
            source: Source::File("<completion manifest>".into()),
            size: Some(manifest.len() as u64),
            content_type: Some("application/json".into()),
            metadata: Vec::new(),
        };
        let full = format!("{}{}", destination.prefix, name);
        let outcome = match shared.ledger_entry(&full) {
            Some(Entry::Delivered(receipt)) => Outcome::earlier(*receipt),
            _ => {
                let mut session = shared.instances.session(options.guest_memory_limit).await?;
                let tokens = shared.tokens.lock().unwrap().tokens.clone();
                session.adopt_tokens(&tokens).await?;
                deliver_one(&shared, &mut session, &item, Body::Bytes(manifest)).await
            }
        };
        events(Event::Manifest { outcome: &outcome });
        match outcome {
            Outcome::Delivered(receipt) | Outcome::Earlier(receipt) => {
                summary.manifest = Some(receipt)
            }
            Outcome::Skipped(_) | Outcome::Failed(_) => summary.failed += 1,
        }
    }
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// Failures of the destination or the identity, not of one object: every object would meet
/// them.
fn stops_the_batch(e: &anyhow::Error) -> bool {
    e.downcast_ref::<StepError>()
        .is_some_and(|s| match s.0.step.as_str() {
            "config" | "aws-credentials" | "aws-region" | "subject-token" | "sts-exchange"
            | "impersonation" => true,
            "upload" => matches!(s.0.status, Some(401 | 403)),
            _ => false,
        })
}

/// One worker: takes objects off the queue until it is empty, on its own instance.
async fn worker(shared: Arc<Shared>, session: Option<Session>) -> Vec<(Item, Outcome)> {
    let mut done = Vec::new();
    let mut session = session;
    let mut adopted = 0;
    if session.is_none() {
        // Made now, while the token is being obtained; a failure shows with the first object.
        session = shared
            .instances
            .session(shared.options.guest_memory_limit)
            .await
            .ok();
    }
    match shared.started.acquire().await {
        Ok(permit) => permit.forget(),
        Err(_) => return done,
    }
    loop {
        let Some(item) = shared.queue.lock().unwrap().pop_front() else {
            break;
        };
        let outcome = handle(&shared, &mut session, &mut adopted, &item).await;
        done.push((item, outcome));
    }
    done
}

/// Delivers `item` on the worker's instance (made anew if it has none, or its last trapped),
/// shares the tokens it holds, and reports the outcome.
async fn handle(
    shared: &Shared,
    session: &mut Option<Session>,
    adopted: &mut u64,
    item: &Item,
) -> Outcome {
    let outcome = match ready(shared, session, adopted).await {
        Ok(instance) => {
            let body = match &item.source {
                Source::File(path) => Body::File(path.clone()),
                Source::S3(uri) => Body::S3(uri.clone()),
            };
            let outcome = deliver_one(shared, instance, item, body).await;
            if let Ok(tokens) = instance.cached_tokens().await {
                shared.tokens.lock().unwrap().merge(tokens);
            }
            outcome
        }
        Err(e) => Outcome::Failed(e),
    };
    let outcome = match outcome {
        Outcome::Failed(e) if e.downcast_ref::<Trapped>().is_some() => Outcome::Failed(anyhow!(
            "the component trapped while delivering {}: {e}; its instance was replaced and the \
             rest goes on",
            item.source
        )),
        outcome => outcome,
    };
    if session.as_ref().is_some_and(Session::is_broken) {
        *session = None;
    }
    let ledger_broken = shared
        .ledger
        .as_ref()
        .is_some_and(|l| l.lock().unwrap().is_broken());
    if ledger_broken || matches!(&outcome, Outcome::Failed(e) if stops_the_batch(e)) {
        // The others would meet it too: what is not yet started is not tried.
        let mut queue = shared.queue.lock().unwrap();
        *shared.stopped.lock().unwrap().get_or_insert(0) += queue.len();
        queue.clear();
    }
    (shared.events)(Event::Done {
        item,
        outcome: &outcome,
    });
    outcome
}

/// The worker's instance, made if it has none (or its last one trapped), holding the pool's
/// latest tokens.
async fn ready<'s>(
    shared: &Shared,
    session: &'s mut Option<Session>,
    adopted: &mut u64,
) -> Result<&'s mut Session> {
    if session.is_none() {
        *session = Some(
            shared
                .instances
                .session(shared.options.guest_memory_limit)
                .await?,
        );
        *adopted = 0;
    }
    let instance = session.as_mut().expect("just made");
    let newer = {
        let tokens = shared.tokens.lock().unwrap();
        (tokens.version > *adopted).then(|| (tokens.tokens.clone(), tokens.version))
    };
    if let Some((tokens, version)) = newer {
        instance.adopt_tokens(&tokens).await?;
        *adopted = version;
    }
    Ok(instance)
}

/// Where an object's bytes come from, as the worker opens them.
enum Body {
    File(std::path::PathBuf),
    S3(String),
    Bytes(Vec<u8>),
}

/// Whether `receipt` (from the ledger) is a delivery of `item`: its size, and for S3 its URI.
fn delivered_from(receipt: &ReceiptLine, item: &Item) -> bool {
    item.size.is_none_or(|size| size == receipt.size)
        && match &item.source {
            Source::S3(uri) => receipt.source.as_ref().is_some_and(|s| &s.uri == uri),
            Source::File(_) => receipt.source.is_none(),
        }
}

/// The status Cloud Storage answered, when the upload step failed (not S3, not the token).
fn upload_status(e: &anyhow::Error) -> Option<u16> {
    e.downcast_ref::<StepError>()
        .filter(|s| s.0.step == "upload")
        .and_then(|s| s.0.status)
}

/// A failure of the upload itself that trying again in the same session cannot mend (the
/// session expired, was refused, or holds other bytes than the source now has).
fn session_is_spent(e: &anyhow::Error) -> bool {
    e.downcast_ref::<StepError>().is_some_and(|s| {
        s.0.step == "upload" && !s.0.transient && !matches!(s.0.status, Some(401 | 403 | 412))
    })
}

/// Whether what the ledger started is this item: the same size (a file may be named by
/// another path on another day), and for S3 the same URI.
fn same_source(item: &Item, source: &str, size: Option<u64>) -> bool {
    size == item.size
        && match &item.source {
            Source::S3(uri) => uri == source,
            Source::File(_) => !source.starts_with("s3://"),
        }
}

/// Delivers `item`, journaling first: the session it continues (or starts), or that its one
/// request is about to go.
async fn deliver_one(shared: &Shared, session: &mut Session, item: &Item, body: Body) -> Outcome {
    let full = format!("{}{}", shared.prefix, item.name);
    let source = item.source.to_string();
    let earlier = shared.ledger_entry(&full);
    let object = delivery::Object {
        name: item.name.clone(),
        size: item.size,
        content_type: item.content_type.clone(),
        metadata: item.metadata.clone(),
        session: None,
    };
    // Resumable when large, or of a size only S3 knows: those get a session journaled first.
    let resumable = shared.ledger.is_some()
        && item
            .size
            .is_none_or(|size| size > shared.single_request_limit);
    let record = |record: Record| shared.record(record);
    let kept_session = match &earlier {
        Some(Entry::Started {
            source: s,
            size,
            session: Some(session),
        }) if same_source(item, s, *size) => Some(session.clone()),
        _ => None,
    };
    // A single request an earlier run sent and never heard back about: it may have landed.
    let sent_before = matches!(
        &earlier,
        Some(Entry::Started { source: s, size, session: None }) if same_source(item, s, *size)
    );
    let attempt = async {
        let mut object = object;
        if resumable {
            let resumed = kept_session.is_some();
            let session_url = match kept_session {
                Some(url) => url,
                None => {
                    start_journaled(shared, session, &object, &full, &source, item.size).await?
                }
            };
            object.session = Some(session_url);
            match send(shared, session, &object, &body).await {
                // The session a crashed run kept is spent (expired after a week, or it holds
                // bytes the source no longer has): start another, once.
                Err(e) if resumed && session_is_spent(&e) => {
                    object.session = Some(
                        start_journaled(shared, session, &object, &full, &source, item.size)
                            .await?,
                    );
                    send(shared, session, &object, &body)
                        .await
                        .map(|r| (r, false))
                }
                result => result.map(|r| (r, resumed)),
            }
        } else {
            if !sent_before {
                record(Record::Started {
                    name: full.clone(),
                    source: source.clone(),
                    size: item.size,
                    session: None,
                })?;
            }
            send(shared, session, &object, &body)
                .await
                .map(|r| (r, false))
        }
    };
    match attempt.await {
        Ok((receipt, resumed)) => {
            let file = match &item.source {
                Source::File(path) if !matches!(body, Body::Bytes(_)) => Some(path.as_path()),
                _ => None,
            };
            let line = ReceiptLine::new(&receipt, file);
            if let Err(e) = record(Record::Delivered {
                name: full.clone(),
                receipt: Box::new(line.clone()),
            }) {
                return Outcome::Failed(e.context(format!(
                    "{full} was delivered but its receipt could not be recorded"
                )));
            }
            // A session that had finished before this run asked it: an earlier run's object.
            if resumed && receipt.requests <= 1 {
                return Outcome::earlier(line);
            }
            Outcome::Delivered(line)
        }
        Err(e) if upload_status(&e) == Some(412) && sent_before => {
            // The earlier run sent this request and was stopped before it recorded the answer:
            // GCS created the object then (after checking its checksum); the name is ours.
            let line = ReceiptLine {
                status: "delivered-unconfirmed".into(),
                file: match &item.source {
                    Source::File(path) => Some(path.display().to_string()),
                    Source::S3(_) => None,
                },
                bucket: shared.bucket.clone(),
                name: full.clone(),
                generation: None,
                size: item.size.unwrap_or_default(),
                crc32c: String::new(),
                md5_hash: String::new(),
                upload: "multipart".into(),
                requests: 1,
                retries: 0,
                elapsed_ms: 0,
                source: None,
                earlier: true,
                note: Some(
                    "an earlier run created this object and was stopped before it recorded \
                     the receipt; the service account may not read it back"
                        .into(),
                ),
            };
            match record(Record::Delivered {
                name: full.clone(),
                receipt: Box::new(line.clone()),
            }) {
                Ok(()) => Outcome::earlier(line),
                Err(e) => Outcome::Failed(e),
            }
        }
        Err(e) if upload_status(&e) == Some(412) => {
            // GCS answered: the name is someone else's. Recorded, so that a later run does not
            // take this run's request for one that may have landed.
            if let Err(e) = record(Record::Taken { name: full.clone() }) {
                return Outcome::Failed(e);
            }
            if shared.options.if_exists == IfExists::Fail {
                return Outcome::Failed(e.context(format!(
                    "{full} already exists and this ledger did not deliver it: it was left as it \
                     is (--if-exists skip skips such names)"
                )));
            }
            Outcome::Skipped(Skipped {
                status: "skipped",
                bucket: shared.bucket.clone(),
                name: full,
                reason: "an object of this name already exists (--if-exists skip)",
            })
        }
        Err(e) => Outcome::Failed(e),
    }
}

/// A new resumable session for `object`, journaled (as `full`, from `source`) before any byte
/// is sent into it.
async fn start_journaled(
    shared: &Shared,
    session: &mut Session,
    object: &delivery::Object,
    full: &str,
    source: &str,
    size: Option<u64>,
) -> Result<String> {
    let url = session.start_upload(&shared.settings, object).await?;
    shared.record(Record::Started {
        name: full.to_owned(),
        source: source.to_owned(),
        size,
        session: Some(url.clone()),
    })?;
    Ok(url)
}

/// One delivery call with the object's bytes.
async fn send(
    shared: &Shared,
    session: &mut Session,
    object: &delivery::Object,
    body: &Body,
) -> Result<delivery::Receipt> {
    match body {
        Body::S3(uri) => {
            // The component reads S3 itself: the bytes count once the object is in.
            let receipt = session.deliver_s3(&shared.settings, uri, object).await?;
            shared.read.fetch_add(receipt.size, Ordering::Relaxed);
            Ok(receipt)
        }
        Body::Bytes(bytes) => {
            session
                .deliver(
                    &shared.settings,
                    object,
                    std::io::Cursor::new(bytes.clone()),
                )
                .await
        }
        Body::File(path) => {
            let read = Some(shared.read.clone());
            session
                .deliver_file(&shared.settings, object, path, read)
                .await
        }
    }
}

/// The completion manifest: every object of the batch, for the partner's pipeline.
fn completion_manifest(
    receipts: &HashMap<String, ReceiptLine>,
    skipped: &[String],
    count: usize,
    shard: Option<Shard>,
) -> Vec<u8> {
    #[derive(Serialize)]
    struct Manifest<'a> {
        #[serde(rename = "wif-push-batch")]
        version: u32,
        completed: String,
        /// `INDEX/COUNT` when this lists one shard's objects: the partner waits for COUNT.
        #[serde(skip_serializing_if = "Option::is_none")]
        shard: Option<String>,
        count: usize,
        bytes: u64,
        objects: Vec<Entry<'a>>,
        /// Names that already existed and were left as they were (`--if-exists skip`).
        skipped: &'a [String],
    }
    #[derive(Serialize)]
    struct Entry<'a> {
        name: &'a str,
        size: u64,
        crc32c: &'a str,
        generation: &'a Option<String>,
        status: &'a str,
        source: Option<&'a str>,
    }
    let mut objects: Vec<Entry> = receipts
        .values()
        .map(|r| Entry {
            name: &r.name,
            size: r.size,
            crc32c: &r.crc32c,
            generation: &r.generation,
            status: &r.status,
            source: r
                .source
                .as_ref()
                .map(|s| s.uri.as_str())
                .or(r.file.as_deref()),
        })
        .collect();
    objects.sort_by(|a, b| a.name.cmp(b.name));
    let manifest = Manifest {
        version: 1,
        completed: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        shard: shard.map(|s| s.to_string()),
        count,
        bytes: objects.iter().map(|o| o.size).sum(),
        objects,
        skipped,
    };
    serde_json::to_vec_pretty(&manifest).expect("plain structs serialize")
}
