//! The AWS SDKs' shared config and credentials files (`~/.aws/config`, `~/.aws/credentials`):
//! where they are ([`locations`]), which profiles they define ([`parse`]), and what credentials
//! a profile stands for ([`chain`]).
//!
//! A host set up for the AWS CLI or an SDK must be read the same way here, so the rules are the
//! SDKs' own, quirks included (smithy-rs `aws-runtime/src/profile`), checked by their shared
//! cases in `tests/vectors/aws-config`. Sans-IO: the caller reads the environment and the files.

pub mod chain;

use std::collections::BTreeMap;
use std::fmt;

/// A profile's (or an sso-session's) properties: lower-case key → value. A property with
/// sub-properties (`s3 =` and indented `name = value` lines) keeps them as its value, one per
/// line after a leading line break, as the SDKs do; [`Profiles::sub_properties`] splits them.
pub type Profile = BTreeMap<String, String>;

/// The profiles of both files, merged.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Profiles {
    profiles: BTreeMap<String, Profile>,
    /// The config file's `[sso-session NAME]` sections.
    sso_sessions: BTreeMap<String, Profile>,
}

impl Profiles {
    /// Profiles given as they are, with no normalization: for tests and callers that already
    /// hold maps (the SDKs' assume-role cases are written so).
    pub fn from_maps(
        profiles: BTreeMap<String, Profile>,
        sso_sessions: BTreeMap<String, Profile>,
    ) -> Self {
        Profiles {
            profiles,
            sso_sessions,
        }
    }

    pub fn profiles(&self) -> &BTreeMap<String, Profile> {
        &self.profiles
    }

    pub fn sso_sessions(&self) -> &BTreeMap<String, Profile> {
        &self.sso_sessions
    }

    pub fn is_empty(&self) -> bool {
        self.profiles.is_empty()
    }

    pub fn profile(&self, name: &str) -> Option<&Profile> {
        self.profiles.get(name)
    }

    pub fn sso_session(&self, name: &str) -> Option<&Profile> {
        self.sso_sessions.get(name)
    }

    /// The value of `key` (lower case) in `profile`, as written (it may be empty).
    pub fn get(&self, profile: &str, key: &str) -> Option<&str> {
        self.profile(profile)?.get(key).map(String::as_str)
    }

    /// The sub-properties of `key` in `profile` (`s3 =` then indented `name = value` lines), by
    /// name; empty when there are none. Like the SDKs, names keep their case and lines without
    /// `=` are skipped.
    pub fn sub_properties(&self, profile: &str, key: &str) -> BTreeMap<String, String> {
        let mut found = BTreeMap::new();
        for line in self.get(profile, key).unwrap_or_default().split('\n') {
            if let Some((name, value)) = line.split_once('=') {
                let name = name.trim_matches(WHITESPACE);
                if !name.is_empty() {
                    found.insert(name.to_owned(), value.trim_matches(WHITESPACE).to_owned());
                }
            }
        }
        found
    }
}

/// Values may be secret keys: only profile names and property keys are shown.
impl fmt::Debug for Profiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn keys(sections: &BTreeMap<String, Profile>) -> BTreeMap<&str, Vec<&str>> {
            sections
                .iter()
                .map(|(name, profile)| {
                    let keys = profile.keys().map(String::as_str).collect::<Vec<_>>();
                    (name.as_str(), keys)
                })
                .collect()
        }
        f.debug_struct("Profiles")
            .field("profiles", &keys(&self.profiles))
            .field("sso_sessions", &keys(&self.sso_sessions))
            .finish()
    }
}

/// A file that is not a profile file: which one, on which line, and what was expected. Never
/// quotes the line, which may hold a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileError {
    pub message: String,
}

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ProfileError {}

/// Parses both files' text and merges them as the SDKs do. Config file: `[profile NAME]`,
/// `[default]` (ignored when `[profile default]` is there too) and `[sso-session NAME]`;
/// credentials file: `[NAME]`. Sections or keys with invalid names are ignored; a profile
/// defined twice is merged, the last value winning, and the credentials file wins over the
/// config file. Only text that cannot be read as a profile file at all is an error.
pub fn parse(config: &str, credentials: &str) -> Result<Profiles, ProfileError> {
    let mut profiles = Profiles::default();
    merge(
        &mut profiles,
        read_sections(config, Kind::Config)?,
        Kind::Config,
    );
    merge(
        &mut profiles,
        read_sections(credentials, Kind::Credentials)?,
        Kind::Credentials,
    );
    Ok(profiles)
}

/// Where the files are and which profile is selected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Locations {
    /// `AWS_CONFIG_FILE`, else `~/.aws/config`, with a leading `~` expanded to `HOME`. `None`
    /// when the path needs a home and `HOME` is unset: the SDKs then find no file there (they
    /// try a literal `~`), so read nothing.
    pub config: Option<String>,
    /// `AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`; `None` as for `config`.
    pub credentials: Option<String>,
    /// `AWS_PROFILE`, else `default`.
    pub profile: String,
}

/// The files and profile the environment `env` selects (unix rules: the home is `HOME`).
/// Blank variables count as unset.
pub fn locations(env: &dyn Fn(&str) -> Option<String>) -> Locations {
    let var = |name: &str| env(name).filter(|value| !value.trim().is_empty());
    let home = var("HOME");
    let path = |variable: &str, default: &str| {
        let path = var(variable).unwrap_or_else(|| default.to_owned());
        expand_home(&path, home.as_deref())
    };
    Locations {
        config: path("AWS_CONFIG_FILE", "~/.aws/config"),
        credentials: path("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials"),
        profile: var("AWS_PROFILE").map_or_else(|| "default".to_owned(), |p| p.trim().to_owned()),
    }
}

/// `~` or `~/rest` with the home directory in place of `~`; other paths as they are (`~user`
/// is not expanded, as in the SDKs).
fn expand_home(path: &str, home: Option<&str>) -> Option<String> {
    let rest = if path == "~" {
        ""
    } else if let Some(rest) = path.strip_prefix("~/") {
        rest.trim_start_matches('/')
    } else {
        return Some(path.to_owned());
    };
    let home = home?.trim_end_matches('/');
    Some(if rest.is_empty() && !home.is_empty() {
        home.to_owned()
    } else {
        format!("{home}/{rest}")
    })
}

/// The only whitespace of the format: the SDKs do not trim other characters.
const WHITESPACE: &[char] = &[' ', '\t'];
const COMMENT: &[char] = &['#', ';'];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Config,
    Credentials,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Config => "config",
            Kind::Credentials => "credentials",
        }
    }

    fn example(self) -> &'static str {
        match self {
            Kind::Config => "[default] or [profile NAME]",
            Kind::Credentials => "[default] or [NAME]",
        }
    }
}

fn error_at(kind: Kind, line: usize, what: &str) -> ProfileError {
    ProfileError {
        message: format!("line {line} of the AWS {} file: {what}", kind.name()),
    }
}

/// A `[...]` section as written, with its properties in file order (lower-case keys, not yet
/// validated).
struct RawSection<'a> {
    header: &'a str,
    properties: Vec<(String, String)>,
}

/// Reads `text` line by line into its sections; names are judged later, as the SDKs do, so a
/// badly formed line is an error even in a section that will be ignored.
fn read_sections(text: &str, kind: Kind) -> Result<Vec<RawSection<'_>>, ProfileError> {
    let mut sections: Vec<RawSection<'_>> = Vec::new();
    // Whether the section has a property yet, and if so whether its value was empty: then the
    // indented lines after it are sub-properties, which must look like `name = value`.
    let mut property: Option<bool> = None;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if line.trim_matches(WHITESPACE).is_empty() || line.starts_with(COMMENT) {
            continue;
        }
        if line.starts_with('[') {
            let header = strip_comment(line, false);
            let Some(header) = header.strip_prefix('[').and_then(|h| h.strip_suffix(']')) else {
                return Err(error_at(kind, number, "a section header must end with ']'"));
            };
            sections.push(RawSection {
                header,
                properties: Vec::new(),
            });
            property = None;
        } else if line.starts_with(WHITESPACE) {
            let Some(section) = sections.last_mut() else {
                return Err(no_section(kind, number));
            };
            let (sub, last) = match (property, section.properties.last_mut()) {
                (Some(sub), Some(last)) => (sub, last),
                _ => {
                    return Err(error_at(
                        kind,
                        number,
                        "expected a property definition before this indented (continuation) line",
                    ));
                }
            };
            if sub {
                split_property(line).map_err(|e| e.error(kind, number, "sub-property"))?;
            }
            last.1.push('\n');
            last.1.push_str(line.trim_matches(WHITESPACE));
        } else {
            let Some(section) = sections.last_mut() else {
                return Err(no_section(kind, number));
            };
            let (key, value) =
                split_property(line).map_err(|e| e.error(kind, number, "property"))?;
            property = Some(value.is_empty());
            section.properties.push((key, value.to_owned()));
        }
    }
    Ok(sections)
}

fn no_section(kind: Kind, line: usize) -> ProfileError {
    error_at(
        kind,
        line,
        &format!(
            "expected a profile definition such as {} before the first property",
            kind.example()
        ),
    )
}

enum PropertyError {
    NoEquals,
    NoName,
}

impl PropertyError {
    fn error(self, kind: Kind, line: usize, what: &str) -> ProfileError {
        match self {
            PropertyError::NoEquals => error_at(
                kind,
                line,
                &format!("expected an '=' sign defining a {what} (name = value)"),
            ),
            PropertyError::NoName => error_at(
                kind,
                line,
                &format!("the {what} has no name before its '='"),
            ),
        }
    }
}

/// `name = value # comment` → (`name` in lower case, `value`).
fn split_property(line: &str) -> Result<(String, &str), PropertyError> {
    let line = strip_comment(line, true);
    let (key, value) = line.split_once('=').ok_or(PropertyError::NoEquals)?;
    let key = key.trim_matches(WHITESPACE);
    if key.is_empty() {
        return Err(PropertyError::NoName);
    }
    Ok((key.to_ascii_lowercase(), value.trim_matches(WHITESPACE)))
}

/// `line` trimmed and without its comment. In a property a comment starts only after
/// whitespace (`value;x` keeps its `;x`); in a section header anywhere.
fn strip_comment(line: &str, needs_whitespace: bool) -> &str {
    let line = line.trim_matches(WHITESPACE);
    let mut after_whitespace = false;
    for (at, c) in line.char_indices() {
        if COMMENT.contains(&c) && (after_whitespace || !needs_whitespace) {
            return line[..at].trim_matches(WHITESPACE);
        }
        after_whitespace = c.is_whitespace();
    }
    line
}

/// What a section header stands for, once judged.
enum Section<'a> {
    /// `bare`: the config file's `[default]`, which `[profile default]` replaces.
    Profile {
        name: &'a str,
        bare: bool,
    },
    SsoSession(&'a str),
}

/// `None` for sections the SDKs ignore: invalid names, `[NAME]` in the config file (but
/// `[default]`), `[profile NAME]` in the credentials file, prefixes they do not know here.
fn classify(header: &str, kind: Kind) -> Option<Section<'_>> {
    let header = header.trim_matches(WHITESPACE);
    let (prefix, name) = match header.split_once(WHITESPACE) {
        Some((prefix, name)) => (Some(prefix.trim()), name.trim()),
        None => (None, header.trim()),
    };
    match (kind, prefix) {
        (Kind::Config, Some("profile")) if is_identifier(name) => {
            Some(Section::Profile { name, bare: false })
        }
        (Kind::Config, Some("sso-session")) if is_identifier(name) => {
            Some(Section::SsoSession(name))
        }
        (Kind::Config, None) if name == "default" => Some(Section::Profile { name, bare: true }),
        (Kind::Credentials, None) if is_identifier(name) => {
            Some(Section::Profile { name, bare: false })
        }
        _ => None,
    }
}

fn merge(into: &mut Profiles, sections: Vec<RawSection<'_>>, kind: Kind) {
    let sections: Vec<(Section<'_>, Vec<(String, String)>)> = sections
        .into_iter()
        .filter_map(|raw| Some((classify(raw.header, kind)?, raw.properties)))
        .collect();
    let prefixed_default = sections.iter().any(|(section, _)| {
        matches!(
            section,
            Section::Profile {
                name: "default",
                bare: false
            }
        )
    });
    for (section, properties) in sections {
        let target = match section {
            Section::Profile { bare: true, .. } if prefixed_default => continue,
            Section::Profile { name, .. } => into.profiles.entry(name.to_owned()).or_default(),
            Section::SsoSession(name) => into.sso_sessions.entry(name.to_owned()).or_default(),
        };
        for (key, value) in properties {
            if is_identifier(&key) {
                target.insert(key, value);
            }
        }
    }
}

/// The SDKs' names for profiles and keys: `[A-Za-z0-9_\-/.%@:+]+`.
fn is_identifier(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-/.%@:+".contains(c))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn errors_name_the_file_and_line_and_quote_nothing() {
        let err = parse(
            "[default]\nregion = us-east-1\n",
            "[default]\n\naws_secret_access_key canary",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 3 of the AWS credentials file: expected an '=' sign defining a property (name = value)"
        );
        let err = parse("region = us-east-1", "").unwrap_err();
        assert!(
            err.message.starts_with("line 1 of the AWS config file: "),
            "{err}"
        );
        assert!(err.message.contains("[profile NAME]"), "{err}");
        let err = parse("[profile a]\ns3 =\n  nope", "").unwrap_err();
        assert!(
            err.message.contains("line 3") && err.message.contains("sub-property"),
            "{err}"
        );
    }

    #[test]
    fn sub_properties_are_split_on_request() {
        let profiles = parse(
            "[profile a]\ns3 =\n  max_concurrent_requests = 10\n  Addressing_Style = path\n",
            "",
        )
        .unwrap();
        let subs = profiles.sub_properties("a", "s3");
        assert_eq!(subs.len(), 2);
        assert_eq!(subs["max_concurrent_requests"], "10");
        assert_eq!(subs["Addressing_Style"], "path");
        assert!(profiles.sub_properties("a", "missing").is_empty());
        assert!(profiles.sub_properties("nobody", "s3").is_empty());
    }

    #[test]
    fn debug_shows_keys_not_values() {
        let profiles = parse("", "[a]\naws_secret_access_key = canary-secret-key\n").unwrap();
        let shown = format!("{profiles:?}");
        assert!(shown.contains("aws_secret_access_key"), "{shown}");
        assert!(!shown.contains("canary"), "{shown}");
    }

    #[test]
    fn odd_text_does_not_panic() {
        for text in [
            "[",
            "]",
            "[]",
            "=",
            " =",
            "\u{feff}[default]",
            "[default]\n\u{a0}x",
            "[a]\r\n\r\n",
            "[profile é]\nk = ü\n ü",
            "[default]\nx =\n\t=\n",
            "[default]\n#\n;\n[default",
            "[default]\nk = v \u{3000};c",
        ] {
            let _ = parse(text, text);
        }
    }

    fn locations_of(vars: &[(&str, &str)]) -> Locations {
        let vars: HashMap<&str, &str> = vars.iter().copied().collect();
        locations(&|name: &str| vars.get(name).map(|v| v.to_string()))
    }

    #[test]
    fn home_is_expanded_only_at_the_start() {
        let found = locations_of(&[
            ("HOME", "/home/u/"),
            ("AWS_CONFIG_FILE", "~/custom/config"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/etc/~/credentials"),
        ]);
        assert_eq!(found.config.as_deref(), Some("/home/u/custom/config"));
        assert_eq!(found.credentials.as_deref(), Some("/etc/~/credentials"));
        assert_eq!(found.profile, "default");
        assert_eq!(
            expand_home("~user/x", Some("/h")).as_deref(),
            Some("~user/x")
        );
        assert_eq!(expand_home("~", Some("/h")).as_deref(), Some("/h"));
        assert_eq!(expand_home("~/x", Some("/")).as_deref(), Some("/x"));
    }

    #[test]
    fn without_home_the_default_files_are_not_located() {
        let found = locations_of(&[
            ("HOME", "  "),
            ("AWS_PROFILE", ""),
            ("AWS_CONFIG_FILE", "/c"),
        ]);
        assert_eq!(found.config.as_deref(), Some("/c"));
        assert_eq!(found.credentials, None);
        assert_eq!(found.profile, "default");
    }
}
