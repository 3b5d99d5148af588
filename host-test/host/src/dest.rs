//! `DEST.toml`: the partner destination as the CLI takes it, read into the core's one schema
//! ([`Settings`]): unknown keys are refused naming the closest valid one, and a relative
//! `credential_config` is read from beside the file. AWS credentials never go here; they come
//! from the environment or AWS's endpoints.

use std::path::Path;

use anyhow::{Context as _, Result, anyhow};
use wif_push::config::Settings;
use wif_push::config::environment::{DESTINATIONS_VARIABLE, variables};

/// The settings in the DEST.toml at `path`, with the credential configuration's text in place
/// of its path.
pub fn load(path: &Path) -> Result<Settings> {
    let text = read_bounded(path, "the destination file")
        .with_context(|| format!("read the destination file {}", path.display()))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| {
        anyhow!(
            "{} is not a valid destination file: {}",
            path.display(),
            e.to_string().trim()
        )
    })?;
    let value = serde_json::to_value(table).context("convert the destination file")?;
    let shown = path.display().to_string();
    let mut settings = Settings::from_value(value, &shown).map_err(|e| anyhow!("{shown}: {e}"))?;
    let base = path.parent().unwrap_or(Path::new("."));
    settings
        .read_credential_config(&|file| {
            read_bounded(&base.join(file), "the credential configuration")
        })
        .map_err(|e| anyhow!("{shown}: {e}"))?;
    Ok(settings)
}

/// The most a configuration file may hold.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The text of the configuration file at `path`: a regular file only (a FIFO, a device or a
/// directory is refused, never waited on or read without end) of at most 1 MiB.
pub(crate) fn read_bounded(path: &Path, what: &str) -> std::io::Result<String> {
    use std::io::{Error, ErrorKind, Read as _};
    let refuse = |meta: &std::fs::Metadata| {
        let kind = file_kind(meta);
        Error::new(
            ErrorKind::InvalidInput,
            format!("{what} {} is {kind}, not a regular file", path.display()),
        )
    };
    // Checked before opening, since opening a FIFO without a writer waits for one.
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(refuse(&meta));
    }
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(refuse(&meta));
    }
    let mut text = String::new();
    file.take(MAX_CONFIG_BYTES + 1).read_to_string(&mut text)?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!("{what} {} is larger than 1 MiB", path.display()),
        ));
    }
    Ok(text)
}

fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        let t = meta.file_type();
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if meta.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

/// The sidecar's environment for the destinations: `WIF_PUSH_*` variables, as the component
/// reads them (one destination, or several listed in `WIF_PUSH_DESTINATIONS`).
pub fn sidecar_env(destinations: &[(String, Settings)]) -> Vec<(String, String)> {
    let several = destinations.len() > 1;
    let mut vars = Vec::new();
    if several {
        let ids: Vec<&str> = destinations.iter().map(|(id, _)| id.as_str()).collect();
        vars.push((DESTINATIONS_VARIABLE.to_owned(), ids.join(",")));
    }
    for (id, settings) in destinations {
        vars.extend(variables(several.then_some(id.as_str()), settings));
    }
    vars
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(path: &Path) -> String {
        format!("{:#}", load(path).unwrap_err())
    }

    #[test]
    fn configuration_reads_are_bounded_and_never_wait() {
        let dir = tempfile_dir();
        let fifo = dir.join("fifo.toml");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let (done, finished) = std::sync::mpsc::channel();
        let path = fifo.clone();
        std::thread::spawn(move || done.send(error(&path)).unwrap());
        let message = finished
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("reading a FIFO without a writer hung");
        assert!(
            message.contains("is a FIFO, not a regular file"),
            "{message}"
        );

        let message = error(Path::new("/dev/zero"));
        assert!(
            message.contains("/dev/zero is a character device"),
            "{message}"
        );
        let message = error(&dir);
        assert!(message.contains("is a directory"), "{message}");
        let big = dir.join("big.toml");
        std::fs::write(&big, vec![b'#'; (MAX_CONFIG_BYTES + 1) as usize]).unwrap();
        let message = error(&big);
        assert!(message.contains("is larger than 1 MiB"), "{message}");
        assert_eq!(message.lines().count(), 1, "{message}");

        // The credential configuration a DEST.toml names is read the same way.
        let dest = dir.join("dest.toml");
        std::fs::write(&dest, "credential_config = \"fifo.toml\"\n").unwrap();
        let message = error(&dest);
        assert!(message.contains("is a FIFO"), "{message}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("wif-push-dest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
