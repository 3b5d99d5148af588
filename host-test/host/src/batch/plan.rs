//! What a batch delivers: files, directories (recursive), `s3://` URIs and manifests, turned
//! into objects with their names before anything is sent. What cannot be delivered (an
//! unreadable file, a FIFO, a symlink loop, a name GCS would refuse) is a [`Problem`] naming
//! it; the rest goes ahead. Two sources for one name are refused before anything is sent.
//!
//! Directories: object names are the paths relative to the directory given, `/`-separated.
//! Symbolic links are followed, to files and to directories (as `aws s3 cp` and `gsutil cp`
//! do); a link that leads back into a directory being walked is a loop, named and not
//! followed; a dangling link is named. FIFOs, sockets and devices are named and never opened.

use std::collections::{BTreeMap, HashMap};
use std::io::BufRead as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use wif_push::delivery::json_api::{ObjectSpec, validate_object};

/// Where an object's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    File(PathBuf),
    /// `s3://BUCKET/KEY` of one object.
    S3(String),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(path) => write!(f, "{}", path.display()),
            Source::S3(uri) => f.write_str(uri),
        }
    }
}

/// One object of the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The object name before the destination's prefix.
    pub name: String,
    pub source: Source,
    /// Known for files (when planned) and for listed S3 objects.
    pub size: Option<u64>,
    pub content_type: Option<String>,
    pub metadata: Vec<(String, String)>,
}

/// Something named on the command line or in a manifest that cannot be delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub source: String,
    pub message: String,
    /// The batch must not start (two sources for one name): nothing is sent.
    pub stops: bool,
}

/// What the command line gives every object that says nothing else.
#[derive(Debug, Clone, Default)]
pub struct Defaults {
    pub content_type: Option<String>,
    pub metadata: Vec<(String, String)>,
}

#[derive(Debug, Default)]
pub struct Plan {
    pub items: Vec<Item>,
    /// `s3://` URIs still to expand (by the component, which reads S3): each one object, or
    /// every object under a prefix.
    pub s3: Vec<String>,
    pub problems: Vec<Problem>,
}

impl Plan {
    fn problem(&mut self, source: impl std::fmt::Display, message: impl Into<String>) {
        self.problems.push(Problem {
            source: source.to_string(),
            message: message.into(),
            stops: false,
        });
    }

    /// A file, a directory (every file under it), or an `s3://` URI, from the command line.
    pub fn add_input(&mut self, input: &Path, defaults: &Defaults) {
        if let Some(uri) = input.to_str().filter(|i| i.starts_with("s3://")) {
            self.s3.push(uri.to_owned());
            return;
        }
        let metadata = match std::fs::metadata(input) {
            Ok(metadata) => metadata,
            Err(e) => return self.problem(input.display(), unreadable(input, &e)),
        };
        if metadata.is_dir() {
            let mut ancestors = Vec::new();
            self.walk(input, "", defaults, &mut ancestors);
            return;
        }
        let Some(name) = input.file_name().and_then(|n| n.to_str()) else {
            return self.problem(
                input.display(),
                "has no UTF-8 file name to use as object name: list it in a --manifest with a name",
            );
        };
        self.add_file(input, name.to_owned(), &metadata, defaults);
    }

    fn add_file(
        &mut self,
        path: &Path,
        name: String,
        metadata: &std::fs::Metadata,
        defaults: &Defaults,
    ) {
        if !metadata.is_file() {
            return self.problem(
                path.display(),
                format!("is {}, not a regular file: skipped", kind(metadata)),
            );
        }
        // Opening a regular file never blocks; one that cannot be opened is named now.
        if let Err(e) = std::fs::File::open(path) {
            return self.problem(path.display(), unreadable(path, &e));
        }
        self.items.push(Item {
            name,
            source: Source::File(path.to_owned()),
            size: Some(metadata.len()),
            content_type: defaults.content_type.clone(),
            metadata: defaults.metadata.clone(),
        });
    }

    fn walk(
        &mut self,
        dir: &Path,
        relative: &str,
        defaults: &Defaults,
        ancestors: &mut Vec<(u64, u64)>,
    ) {
        let id = dir_id(dir);
        if let Some(id) = id {
            if ancestors.contains(&id) {
                return self.problem(
                    dir.display(),
                    "is a symbolic link back into a directory being delivered (a loop): not followed",
                );
            }
            ancestors.push(id);
        }
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => {
                self.problem(dir.display(), unreadable(dir, &e));
                ancestors.pop();
                return;
            }
        };
        let mut entries: Vec<_> = entries.filter_map(|e| e.ok()).collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            let Some(file_name) = entry.file_name().to_str().map(str::to_owned) else {
                self.problem(
                    path.display(),
                    "has a name that is not UTF-8, so no object name: rename it, or list it in a --manifest",
                );
                continue;
            };
            let name = if relative.is_empty() {
                file_name
            } else {
                format!("{relative}/{file_name}")
            };
            match std::fs::metadata(&path) {
                Ok(metadata) if metadata.is_dir() => self.walk(&path, &name, defaults, ancestors),
                Ok(metadata) => self.add_file(&path, name, &metadata, defaults),
                Err(e) => self.problem(path.display(), unreadable(&path, &e)),
            }
        }
        if id.is_some() {
            ancestors.pop();
        }
    }

    /// A manifest: JSON Lines of `{"source", "name", "content_type"?, "metadata"?}`; `-` is
    /// standard input. A line that is not one is a problem naming its line number.
    pub fn add_manifest(&mut self, manifest: &Path, defaults: &Defaults) -> anyhow::Result<()> {
        let shown = if manifest == Path::new("-") {
            "the manifest on standard input".to_owned()
        } else {
            format!("the manifest {}", manifest.display())
        };
        let reader: Box<dyn std::io::BufRead> = if manifest == Path::new("-") {
            Box::new(std::io::stdin().lock())
        } else {
            let file = std::fs::File::open(manifest)
                .map_err(|e| anyhow::anyhow!("cannot read {shown}: {e}"))?;
            Box::new(std::io::BufReader::new(file))
        };
        for (i, line) in reader.split(b'\n').enumerate() {
            let line = line.map_err(|e| anyhow::anyhow!("cannot read {shown}: {e}"))?;
            let at = format!("{shown}, line {}", i + 1);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let entry: ManifestLine = match serde_json::from_slice(&line) {
                Ok(entry) => entry,
                Err(e) => {
                    self.problem(
                        &at,
                        format!(
                            "is not a manifest entry ({e}): expected {{\"source\": \"PATH or s3://BUCKET/KEY\", \"name\": \"NAME\"}}"
                        ),
                    );
                    continue;
                }
            };
            let mut metadata = defaults.metadata.clone();
            metadata.extend(entry.metadata.unwrap_or_default());
            let item_defaults = Defaults {
                content_type: entry.content_type.or_else(|| defaults.content_type.clone()),
                metadata,
            };
            if entry.source.starts_with("s3://") {
                if entry.source.ends_with('/') {
                    self.problem(&at, "names an S3 prefix: a manifest line names one object");
                    continue;
                }
                self.items.push(Item {
                    name: entry.name,
                    source: Source::S3(entry.source),
                    size: None,
                    content_type: item_defaults.content_type,
                    metadata: item_defaults.metadata,
                });
                continue;
            }
            let path = PathBuf::from(&entry.source);
            match std::fs::metadata(&path) {
                Ok(metadata) => {
                    let before = self.problems.len();
                    self.add_file(&path, entry.name, &metadata, &item_defaults);
                    if let Some(problem) = self.problems.get_mut(before) {
                        problem.source = format!("{at}: {}", problem.source);
                    }
                }
                Err(e) => self.problem(&at, unreadable(&path, &e)),
            }
        }
        Ok(())
    }

    /// Checks every name (with the destination's `prefix`) as GCS and the component would, and
    /// that no two objects share one: a name taken twice is a problem naming both sources.
    pub fn check_names(&mut self, prefix: &str) {
        let mut seen: HashMap<String, String> = HashMap::new();
        let mut kept = Vec::with_capacity(self.items.len());
        let mut duplicates = Vec::new();
        for item in std::mem::take(&mut self.items) {
            let spec = ObjectSpec {
                name: format!("{prefix}{}", item.name),
                size: item.size,
                content_type: item
                    .content_type
                    .clone()
                    .unwrap_or_else(|| wif_push::delivery::DEFAULT_CONTENT_TYPE.to_owned()),
                metadata: item.metadata.iter().cloned().collect::<BTreeMap<_, _>>(),
                expected_crc32c: None,
                session: None,
            };
            if let Err(e) = validate_object(&spec) {
                self.problem(&item.source, e.to_string());
                continue;
            }
            if let Some(first) = seen.get(&spec.name) {
                duplicates.push((spec.name.clone(), first.clone(), item.source.to_string()));
                continue;
            }
            seen.insert(spec.name, item.source.to_string());
            kept.push(item);
        }
        for (name, first, second) in duplicates {
            self.problems.push(Problem {
                source: second,
                message: format!(
                    "would also be {name}, which {first} already is: give each object its own name"
                ),
                stops: true,
            });
        }
        self.items = kept;
    }

    /// True when the batch must not start (a name taken twice): nothing is to be sent.
    pub fn must_stop(&self) -> bool {
        self.problems.iter().any(|p| p.stops)
    }
}

/// One of `count` stable parts of a batch (`--shard INDEX/COUNT`, INDEX from 0 as Kubernetes'
/// `JOB_COMPLETION_INDEX` counts): an object belongs to shard `u64::from_be_bytes(first 8 bytes
/// of SHA-256(its name in the bucket)) % count`. Every worker given the same inputs agrees on
/// whose each object is without talking to the others, and the hash spreads any naming scheme
/// (dates, sequence numbers) evenly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// True when the object named `name` (with the destination's prefix) is this shard's.
    pub fn holds(&self, name: &str) -> bool {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(name.as_bytes());
        let head = u64::from_be_bytes(digest[..8].try_into().expect("8 of 32 bytes"));
        head % u64::from(self.count) == u64::from(self.index)
    }
}

impl std::str::FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> Result<Shard, String> {
        let usage = "takes INDEX/COUNT with 0 <= INDEX < COUNT, e.g. 0/4 for the first of four \
                     workers (Kubernetes' JOB_COMPLETION_INDEX counts from 0)";
        let (index, count) = text.split_once('/').ok_or_else(|| usage.to_owned())?;
        let number = |part: &str| part.parse::<u32>().map_err(|_| usage.to_owned());
        let shard = Shard {
            index: number(index)?,
            count: number(count)?,
        };
        if shard.index >= shard.count {
            return Err(usage.to_owned());
        }
        Ok(shard)
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Plan {
    /// Keeps only `shard`'s objects (named with the destination's `prefix`). Problems stay:
    /// they belong to the batch, and every shard reports them. Run after
    /// [`Plan::check_names`], so that two sources for one name stop every shard alike.
    pub fn keep_shard(&mut self, shard: Shard, prefix: &str) {
        self.items
            .retain(|item| shard.holds(&format!("{prefix}{}", item.name)));
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestLine {
    source: String,
    name: String,
    content_type: Option<String>,
    metadata: Option<BTreeMap<String, String>>,
}

fn unreadable(path: &Path, e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(40) => "is a symbolic link loop: not followed".to_owned(),
        _ if e.kind() == std::io::ErrorKind::NotFound
            && std::fs::symlink_metadata(path).is_ok() =>
        {
            "is a symbolic link to nothing: skipped".to_owned()
        }
        _ if e.kind() == std::io::ErrorKind::NotFound => "does not exist".to_owned(),
        _ if e.kind() == std::io::ErrorKind::PermissionDenied => {
            "cannot be read (permission denied): give this user read access, or leave it out"
                .to_owned()
        }
        _ => format!("cannot be read: {e}"),
    }
}

fn kind(metadata: &std::fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        let t = metadata.file_type();
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_socket() {
            return "a socket";
        }
        if t.is_block_device() || t.is_char_device() {
            return "a device";
        }
    }
    let _ = metadata;
    "not a file"
}

#[cfg(unix)]
fn dir_id(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(dir).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn dir_id(_: &Path) -> Option<(u64, u64)> {
    None
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn names(plan: &Plan) -> Vec<&str> {
        plan.items.iter().map(|i| i.name.as_str()).collect()
    }

    /// Whose object is whose, as Python's hashlib computes it
    /// (`int.from_bytes(sha256(name).digest()[:8], "big") % count`), so the rule in the README
    /// is the rule in the code.
    #[test]
    fn a_shard_holds_the_names_the_documented_hash_gives_it() {
        let cases = [
            ("a", [0, 1, 2, 4]),
            ("f0001.bin", [0, 2, 0, 4]),
            ("inbox/2026-12-07/part-00001.csv", [1, 1, 1, 6]),
        ];
        for (name, indexes) in cases {
            for (count, index) in [2, 3, 4, 7].into_iter().zip(indexes) {
                for i in 0..count {
                    let shard = Shard { index: i, count };
                    assert_eq!(shard.holds(name), i == index, "{name} {shard}");
                }
            }
        }
    }

    #[test]
    fn every_object_is_in_exactly_one_shard_and_shards_are_even() {
        let names: Vec<String> = (0..4000)
            .map(|i| format!("2026-12-07/part-{i:05}.csv"))
            .collect();
        let mut sizes = [0usize; 4];
        for name in &names {
            let holders: Vec<u32> = (0..4)
                .filter(|&index| Shard { index, count: 4 }.holds(name))
                .collect();
            assert_eq!(holders.len(), 1, "{name}: {holders:?}");
            sizes[holders[0] as usize] += 1;
        }
        assert!(
            sizes.iter().all(|&n| (900..=1100).contains(&n)),
            "{sizes:?}"
        );
        assert!(names.iter().all(|n| Shard { index: 0, count: 1 }.holds(n)));
    }

    #[test]
    fn a_shard_is_index_slash_count_from_zero() {
        assert_eq!("0/4".parse(), Ok(Shard { index: 0, count: 4 }));
        assert_eq!("3/4".parse::<Shard>().unwrap().to_string(), "3/4");
        for bad in ["4/4", "1/0", "0/0", "1", "-1/4", "a/4", "1/4/2", " 1/4", ""] {
            let err = bad.parse::<Shard>().unwrap_err();
            assert!(err.contains("INDEX/COUNT"), "{bad}: {err}");
        }
    }

    #[test]
    fn keeping_a_shard_keeps_its_objects_and_the_problems() {
        let mut plan = Plan::default();
        for name in ["a", "f0001.bin", "2026-12-07/part-00001.csv"] {
            plan.items.push(Item {
                name: name.into(),
                source: Source::File(name.into()),
                size: Some(1),
                content_type: None,
                metadata: Vec::new(),
            });
        }
        plan.problem("missing.csv", "does not exist");
        // Named with the prefix (hashlib: inbox/a and inbox/2026-12-07/part-00001.csv are
        // shard 1 of 2, inbox/f0001.bin shard 0); without it, "a" would be shard 0.
        plan.keep_shard(Shard { index: 1, count: 2 }, "inbox/");
        assert_eq!(names(&plan), ["a", "2026-12-07/part-00001.csv"]);
        assert_eq!(plan.problems.len(), 1);
    }

    #[test]
    fn a_directory_becomes_relative_names_and_what_cannot_be_sent_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("export");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("top.csv"), "1").unwrap();
        std::fs::write(root.join("a/b/deep.csv"), "22").unwrap();
        std::os::unix::fs::symlink(root.join("top.csv"), root.join("link.csv")).unwrap();
        std::os::unix::fs::symlink(&root, root.join("a/loop")).unwrap();
        std::os::unix::fs::symlink(root.join("gone"), root.join("dangling")).unwrap();
        let fifo = root.join("pipe");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let locked = root.join("locked.csv");
        std::fs::write(&locked, "x").unwrap();
        std::fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o000))
            .unwrap();
        let root_user = std::fs::File::open(&locked).is_ok();
        std::fs::write(root.join("bad\rname"), "x").unwrap();
        let mut plan = Plan::default();
        plan.add_input(&root, &Defaults::default());
        plan.add_input(Path::new("/dev/null"), &Defaults::default());
        plan.check_names("");
        let mut expected = vec!["a/b/deep.csv", "link.csv", "top.csv"];
        if root_user {
            expected.insert(2, "locked.csv");
        }
        assert_eq!(names(&plan), expected);
        assert_eq!(plan.items[0].size, Some(2));
        let problem = |needle: &str| {
            plan.problems
                .iter()
                .find(|p| p.source.ends_with(needle))
                .unwrap_or_else(|| panic!("no problem for {needle}: {:?}", plan.problems))
                .message
                .clone()
        };
        assert!(problem("a/loop").contains("loop"));
        assert!(problem("dangling").contains("link to nothing"));
        assert!(problem("pipe").contains("a FIFO"));
        assert!(problem("/dev/null").contains("a device"));
        assert!(
            problem("name").contains("control character") || problem("name").contains("name"),
            "{:?}",
            plan.problems
        );
        if !root_user {
            assert!(problem("locked.csv").contains("permission denied"));
        }
        assert!(!plan.must_stop());
    }

    #[test]
    fn manifest_lines_are_named_by_number_and_duplicates_by_both_sources() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.csv");
        std::fs::write(&a, "a").unwrap();
        let manifest = dir.path().join("m.jsonl");
        std::fs::write(
            &manifest,
            format!(
                "{{\"source\":\"{a}\",\"name\":\"x/a.csv\",\"content_type\":\"text/csv\",\"metadata\":{{\"k\":\"v\"}}}}\n\
                 \n\
                 not json\n\
                 {{\"source\":\"{a}\",\"nome\":\"typo\"}}\n\
                 {{\"source\":\"s3://bucket/key\",\"name\":\"x/a.csv\"}}\n\
                 {{\"source\":\"s3://bucket/prefix/\",\"name\":\"p\"}}\n",
                a = a.display()
            ),
        )
        .unwrap();
        let mut plan = Plan::default();
        let defaults = Defaults {
            content_type: None,
            metadata: vec![("batch".into(), "7".into())],
        };
        plan.add_manifest(&manifest, &defaults).unwrap();
        plan.check_names("in/");
        assert_eq!(names(&plan), ["x/a.csv"]);
        assert_eq!(plan.items[0].content_type.as_deref(), Some("text/csv"));
        assert_eq!(
            plan.items[0].metadata,
            [("batch".into(), "7".into()), ("k".into(), "v".into())]
        );
        let sources: Vec<_> = plan.problems.iter().map(|p| p.source.as_str()).collect();
        assert!(sources[0].ends_with("line 3"), "{sources:?}");
        assert!(
            sources[1].ends_with("line 4") && plan.problems[1].message.contains("nome"),
            "{:?}",
            plan.problems
        );
        assert!(sources[2].ends_with("line 6"), "{sources:?}");
        assert_eq!(sources[3], "s3://bucket/key");
        assert!(
            plan.problems[3]
                .message
                .contains("would also be in/x/a.csv"),
            "{:?}",
            plan.problems[3]
        );
        assert!(plan.must_stop());
    }
}
