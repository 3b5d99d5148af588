//! The delivery ledger: one append-only journal per destination (bucket and prefix), in JSON
//! Lines, each record synced to disk before the step it records goes ahead.
//!
//! Why a log and not SQLite: one process writes at a time (the file lock), every record is a
//! fact that is never updated (an object started with this session; an object delivered with
//! this receipt), and replaying them in order is the whole read path. A torn last record — the
//! only damage a crash can do to an append — is recognised and dropped; an operator can read
//! the file with `cat`. The records hold resumable session URLs, which let their holder upload
//! those objects: the file is created `0600` in a `0700` directory.
//!
//! What exactly-once rests on: a session is recorded before its first byte is sent, so a rerun
//! asks GCS what that session holds and continues it (or finds it finished); a multipart object
//! is recorded as started before its one request, so a rerun that meets 412 for it knows the
//! earlier run created it. Every upload is conditional on the name being free
//! (`ifGenerationMatch=0`), so nothing is ever created twice whatever the ledger says.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};

use super::plan::Shard;
use crate::runtime::ReceiptLine;
use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};

/// One line of the ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Record {
    /// The first line: whose deliveries these are.
    Ledger {
        version: u32,
        bucket: String,
        prefix: String,
    },
    /// An upload begins: through `session` (resumable), or in one request (`None`).
    Started {
        name: String,
        source: String,
        size: Option<u64>,
        session: Option<String>,
    },
    /// GCS answered 412 to this ledger's own request: the name is someone else's object, and
    /// what was started for it is over.
    Taken { name: String },
    /// GCS created the object: its receipt, as printed.
    Delivered {
        name: String,
        receipt: Box<ReceiptLine>,
    },
}

/// What the ledger knows of an object name (the full name, prefix included).
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Started {
        source: String,
        size: Option<u64>,
        session: Option<String>,
    },
    Delivered(Box<ReceiptLine>),
}

/// An open ledger, locked for this process until dropped.
pub struct Ledger {
    path: PathBuf,
    file: File,
    entries: HashMap<String, Entry>,
    /// Set when a torn last record was dropped on opening.
    pub recovered: Option<String>,
    /// Set when a write failed: nothing more is appended.
    broken: bool,
}

impl std::fmt::Debug for Ledger {
    // Entries hold session URLs: only the path and the count are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("path", &self.path)
            .field("entries", &self.entries.len())
            .finish()
    }
}

const VERSION: u32 = 1;

/// The default ledger of a destination: under the user's state directory
/// (`$XDG_STATE_HOME`, else `~/.local/state`), one file per bucket and prefix, and per shard:
/// workers sharing a state directory each keep their own.
pub fn default_path(bucket: &str, prefix: &str, shard: Option<Shard>) -> Result<PathBuf> {
    use sha2::Digest as _;
    let state = match std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(home) => PathBuf::from(home).join(".local/state"),
            None => bail!(
                "no state directory for the delivery ledger (neither XDG_STATE_HOME nor HOME is \
                 set): give --ledger FILE, or --no-ledger"
            ),
        },
    };
    let digest = sha2::Sha256::digest(format!("{bucket}\n{prefix}"));
    let shard = shard
        .map(|s| format!("-shard-{}-of-{}", s.index, s.count))
        .unwrap_or_default();
    Ok(state.join("wif-push/ledgers").join(format!(
        "{bucket}-{}{shard}.jsonl",
        hex::encode(&digest[..8])
    )))
}

impl Ledger {
    /// Opens (or creates) the ledger at `path` for `bucket` and `prefix`, locking it; a second
    /// process is refused with the first one's name.
    pub fn open(path: &Path, bucket: &str, prefix: &str) -> Result<Ledger> {
        let shown = path.display();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir).with_context(|| {
                format!("cannot create the ledger's directory {}", dir.display())
            })?;
        }
        let mut file =
            open_private(path).with_context(|| format!("cannot open the ledger {shown}"))?;
        match lock(&file) {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let owner = std::fs::read_to_string(owner_path(path)).unwrap_or_default();
                let owner: String = owner
                    .trim()
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(200)
                    .collect();
                bail!(
                    "the ledger {shown} is in use by {}: wait for that delivery to end, or give \
                     another --ledger",
                    if owner.is_empty() {
                        "another process"
                    } else {
                        &owner
                    }
                );
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock the ledger {shown}"));
            }
        }
        let _ = std::fs::write(
            owner_path(path),
            format!(
                "process {} ({})\n",
                std::process::id(),
                std::env::args().take(2).collect::<Vec<_>>().join(" ")
            ),
        );
        let mut text = Vec::new();
        file.read_to_end(&mut text)
            .with_context(|| format!("cannot read the ledger {shown}"))?;
        let (records, kept, recovered) = parse(&text, path)?;
        if kept < text.len() {
            file.set_len(kept as u64)
                .with_context(|| format!("cannot repair the ledger {shown}"))?;
            file.seek(std::io::SeekFrom::End(0))?;
        }
        let mut ledger = Ledger {
            path: path.to_owned(),
            file,
            entries: HashMap::new(),
            recovered,
            broken: false,
        };
        let mut records = records.into_iter();
        match records.next() {
            None => ledger.append(&Record::Ledger {
                version: VERSION,
                bucket: bucket.to_owned(),
                prefix: prefix.to_owned(),
            })?,
            Some(Record::Ledger {
                version,
                bucket: b,
                prefix: p,
            }) => {
                if version != VERSION {
                    bail!(
                        "the ledger {shown} has version {version}; this host-test writes {VERSION}"
                    );
                }
                if b != bucket || p != prefix {
                    bail!(
                        "the ledger {shown} records deliveries to gs://{b}/{p}, not to \
                         gs://{bucket}/{prefix}: give this destination's ledger with --ledger"
                    );
                }
            }
            Some(_) => bail!(
                "the ledger {shown} does not begin with its destination: it is not a ledger, \
                 or was damaged; move it aside (objects it lists as delivered then meet 412: \
                 use --if-exists skip)"
            ),
        }
        for record in records {
            match record {
                Record::Ledger { .. } => bail!(
                    "the ledger {shown} names its destination twice: move it aside and run again"
                ),
                Record::Started {
                    name,
                    source,
                    size,
                    session,
                } => {
                    ledger.entries.insert(
                        name,
                        Entry::Started {
                            source,
                            size,
                            session,
                        },
                    );
                }
                Record::Delivered { name, receipt } => {
                    ledger.entries.insert(name, Entry::Delivered(receipt));
                }
                Record::Taken { name } => {
                    ledger.entries.remove(&name);
                }
            }
        }
        Ok(ledger)
    }

    /// True once a write failed (the batch stops).
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.get(name)
    }

    /// Appends `record` and syncs it to disk before returning.
    pub fn append(&mut self, record: &Record) -> Result<()> {
        if self.broken {
            bail!(
                "the ledger {} could not be written: nothing more is recorded or sent",
                self.path.display()
            );
        }
        let mut line = serde_json::to_vec(record).expect("a record serializes");
        line.push(b'\n');
        let before = self.file.metadata().map(|m| m.len());
        let written = self
            .file
            .write_all(&line)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            // Whatever part of the line reached the file would join the next one: it goes,
            // and nothing more is written (what this run did is asked of GCS again next time).
            if let Ok(before) = before {
                let _ = self.file.set_len(before);
            }
            self.broken = true;
            return Err(e).with_context(|| {
                format!(
                    "cannot write the ledger {} (the batch stops): make room, or give another \
                     --ledger, and run the same command again",
                    self.path.display()
                )
            });
        }
        match record {
            Record::Ledger { .. } => {}
            Record::Started {
                name,
                source,
                size,
                session,
            } => {
                self.entries.insert(
                    name.clone(),
                    Entry::Started {
                        source: source.clone(),
                        size: *size,
                        session: session.clone(),
                    },
                );
            }
            Record::Delivered { name, receipt } => {
                self.entries
                    .insert(name.clone(), Entry::Delivered(receipt.clone()));
            }
            Record::Taken { name } => {
                self.entries.remove(name);
            }
        }
        Ok(())
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(owner_path(&self.path));
    }
}

/// Takes the file's lock, waiting a moment for it: a process this one forks holds the open file
/// (and its lock) from the fork until it execs, so a ledger just closed can look held briefly.
/// Another delivery holds it for longer, and is refused.
fn lock(file: &File) -> Result<(), std::fs::TryLockError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        match file.try_lock() {
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            result => return result,
        }
    }
}

fn owner_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".owner");
    PathBuf::from(name)
}

/// The records of `text`, how many of its bytes hold them, and what was dropped: a last
/// record that does not parse (a write cut short) is dropped; anything else that does not
/// parse is damage, refused with its line number.
fn parse(text: &[u8], path: &Path) -> Result<(Vec<Record>, usize, Option<String>)> {
    let mut records = Vec::new();
    let mut at = 0;
    let mut line_no = 0;
    while at < text.len() {
        line_no += 1;
        let end = text[at..].iter().position(|&b| b == b'\n');
        let line = &text[at..end.map_or(text.len(), |e| at + e)];
        let next = end.map_or(text.len(), |e| at + e + 1);
        match serde_json::from_slice::<Record>(line) {
            Ok(record) if end.is_some() => records.push(record),
            parsed => {
                let why = match parsed {
                    Ok(_) => "it has no line end".to_owned(),
                    Err(e) => e.to_string(),
                };
                // A write cut short leaves a last line without its end (or, after a power
                // loss, a tail of NULs); a complete line that does not parse is damage.
                // After a power loss the last line may hold anything; the first (the header)
                // must always be whole, or this is not a ledger at all.
                let torn = !records.is_empty() && text[next..].is_empty()
                    || text[at..].iter().all(|&b| b == 0);
                if !torn {
                    bail!(
                        "line {line_no} of the ledger {} is not a ledger record ({why}): the file \
                         was damaged; move it aside to start a new one (objects it lists as \
                         delivered then meet 412: use --if-exists skip)",
                        path.display()
                    );
                }
                return Ok((
                    records,
                    at,
                    Some(format!(
                        "line {line_no} of the ledger {} was cut short by an interrupted write \
                         ({why}) and was dropped; what it recorded is asked of GCS again",
                        path.display()
                    )),
                ));
            }
        }
        at = next;
    }
    Ok((records, at, None))
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Opens (or creates) the ledger readable by its owner alone; one that exists with looser
/// permissions is tightened, since it holds session URLs.
fn open_private(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).append(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if file.metadata()?.permissions().mode() & 0o077 != 0 {
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(name: &str, session: Option<&str>) -> Record {
        Record::Started {
            name: name.into(),
            source: format!("/data/{name}"),
            size: Some(5),
            session: session.map(str::to_owned),
        }
    }

    #[test]
    fn records_replay_in_order_across_opens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/ledger.jsonl");
        {
            let mut ledger = Ledger::open(&path, "b", "p/").unwrap();
            ledger.append(&started("p/a", Some("https://s/1"))).unwrap();
            ledger.append(&started("p/b", None)).unwrap();
            ledger
                .append(&Record::Delivered {
                    name: "p/b".into(),
                    receipt: serde_json::from_str(
                        r#"{"status":"delivered","bucket":"b","name":"p/b","generation":"1",
                            "size":5,"crc32c":"x","md5Hash":"y","upload":"multipart",
                            "requests":1,"retries":0,"elapsed_ms":3}"#,
                    )
                    .unwrap(),
                })
                .unwrap();
        }
        let ledger = Ledger::open(&path, "b", "p/").unwrap();
        assert!(matches!(
            ledger.get("p/a"),
            Some(Entry::Started { session: Some(s), .. }) if s == "https://s/1"
        ));
        assert!(matches!(ledger.get("p/b"), Some(Entry::Delivered(_))));
        assert_eq!(ledger.recovered, None);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "the ledger holds sessions: {mode:o}");
            // A ledger file given with looser permissions is tightened when opened.
            let loose = dir.path().join("loose.jsonl");
            std::fs::write(&loose, "").unwrap();
            std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
            drop(Ledger::open(&loose, "b", "").unwrap());
            let mode = std::fs::metadata(&loose).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{mode:o}");
        }
    }

    #[test]
    fn a_torn_last_record_is_dropped_and_garbage_before_the_end_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.jsonl");
        drop(Ledger::open(&path, "b", "").unwrap());
        let whole = std::fs::read(&path).unwrap();
        let record = serde_json::to_string(&started("a", Some("https://s/1"))).unwrap();
        for cut in [1, record.len() / 2, record.len()] {
            let mut torn = whole.clone();
            torn.extend_from_slice(&record.as_bytes()[..cut]);
            std::fs::write(&path, &torn).unwrap();
            let mut ledger = Ledger::open(&path, "b", "").unwrap();
            assert!(
                ledger.recovered.as_deref().unwrap().contains("line 2"),
                "{cut}"
            );
            assert_eq!(ledger.get("a"), None);
            // The torn bytes are gone: the next record starts on a line of its own.
            ledger.append(&started("c", None)).unwrap();
            drop(ledger);
            let ledger = Ledger::open(&path, "b", "").unwrap();
            assert!(ledger.get("c").is_some());
            assert_eq!(ledger.recovered, None);
        }
        // After a power loss the last line may end in a newline and still be garbage.
        let mut garbled = whole.clone();
        garbled.extend_from_slice(b"\x00\x17{\"rec\n");
        std::fs::write(&path, &garbled).unwrap();
        assert!(Ledger::open(&path, "b", "").unwrap().recovered.is_some());
        let mut damaged = whole.clone();
        damaged.extend_from_slice(b"garbage\n");
        damaged.extend_from_slice(record.as_bytes());
        damaged.push(b'\n');
        std::fs::write(&path, &damaged).unwrap();
        let err = Ledger::open(&path, "b", "").unwrap_err().to_string();
        assert!(
            err.contains("line 2 of the ledger") && err.contains("move it aside"),
            "{err}"
        );
        std::fs::write(&path, b"\x00\xff\xfe not json\n").unwrap();
        let err = Ledger::open(&path, "b", "").unwrap_err().to_string();
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn another_destination_s_ledger_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.jsonl");
        drop(Ledger::open(&path, "b", "p/").unwrap());
        let err = Ledger::open(&path, "other", "p/").unwrap_err().to_string();
        assert!(err.contains("gs://b/p/, not to gs://other/p/"), "{err}");
        let err = Ledger::open(&path, "b", "q/").unwrap_err().to_string();
        assert!(err.contains("not to gs://b/q/"), "{err}");
        std::fs::write(
            &path,
            format!("{}\n", serde_json::to_string(&started("a", None)).unwrap()),
        )
        .unwrap();
        let err = Ledger::open(&path, "b", "p/").unwrap_err().to_string();
        assert!(err.contains("does not begin with its destination"), "{err}");
    }

    #[test]
    fn a_second_holder_is_refused_by_name_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.jsonl");
        let first = Ledger::open(&path, "b", "").unwrap();
        let err = Ledger::open(&path, "b", "").unwrap_err().to_string();
        assert!(
            err.contains(&format!("in use by process {}", std::process::id())),
            "{err}"
        );
        drop(first);
        Ledger::open(&path, "b", "").unwrap();
    }

    #[test]
    fn the_default_ledger_is_per_bucket_prefix_and_shard() {
        let a = default_path("b", "p/", None).unwrap();
        assert_ne!(a, default_path("b", "q/", None).unwrap());
        assert_ne!(a, default_path("c", "p/", None).unwrap());
        let first = default_path("b", "p/", Some(Shard { index: 0, count: 4 })).unwrap();
        let second = default_path("b", "p/", Some(Shard { index: 1, count: 4 })).unwrap();
        assert_ne!(first, a);
        assert_ne!(first, second);
        assert!(first.to_string_lossy().ends_with("-shard-0-of-4.jsonl"));
        assert!(
            a.to_string_lossy().contains("wif-push/ledgers/b-"),
            "{}",
            a.display()
        );
    }
}
