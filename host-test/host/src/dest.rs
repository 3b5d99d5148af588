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
    let text = std::fs::read_to_string(path)
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
        .read_credential_config(&|file| std::fs::read_to_string(base.join(file)))
        .map_err(|e| anyhow!("{shown}: {e}"))?;
    Ok(settings)
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
