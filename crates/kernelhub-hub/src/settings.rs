//! One place where flags, `kernels.toml` `[hub]` and the environment become
//! the settings every command runs with (highest first, in that order).
//!
//! Offline mode is a value, [`Connectivity`], decided here once: commands
//! build a [`crate::HubClient`] only when it is `Online`, so an offline run
//! has no HTTP client at all and cannot open a socket.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use kernelhub_manifest::project::{HubSettings, RepoType};

use crate::env;

/// The Hub used when nothing else is configured.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Whether the network may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connectivity {
    /// Requests may be made.
    Online,
    /// No request is ever made; everything comes from the lock and cache.
    Offline,
}

/// An access token. Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// The secret itself, for the one place that sends it.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(****)")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

/// What the command line says; `None` means "not given".
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--endpoint`.
    pub endpoint: Option<String>,
    /// `--cache-dir`.
    pub cache_dir: Option<PathBuf>,
    /// `--repo-type`: the default for dependencies that do not set their own.
    pub repo_type: Option<RepoType>,
    /// `--offline`.
    pub offline: bool,
}

/// The resolved settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The Hub's base URL, without a trailing `/`.
    pub endpoint: String,
    /// The access token, if any.
    pub token: Option<Token>,
    /// Root of the Hub cache.
    pub cache_dir: PathBuf,
    /// Repo type for dependencies that do not set their own.
    pub repo_type: RepoType,
    /// Whether requests may be made.
    pub connectivity: Connectivity,
    /// How long a connect or read may make no progress.
    pub timeout: Duration,
    /// How many times a request is tried in all.
    pub attempts: u32,
}

/// Why the settings cannot be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// A variable has a value kernelhub cannot use.
    #[error("Environment variable `{name}` is `{value}`: {expected}")]
    BadVariable {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What would be accepted.
        expected: &'static str,
    },
    /// An endpoint that is not an http(s) URL.
    #[error("Hub endpoint `{0}` is not an http(s) URL")]
    BadEndpoint(String),
    /// No cache directory can be derived.
    #[error(
        "No cache directory: set `KERNELHUB_CACHE`, `HF_HUB_CACHE` or `HOME`, or pass `--cache-dir`"
    )]
    NoCache,
}

impl Settings {
    /// Merges `overrides` > `project` > the environment read through `var`.
    pub fn resolve(
        overrides: &Overrides,
        project: Option<&HubSettings>,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, SettingsError> {
        let var = |name: &str| var(name).filter(|v| !v.is_empty());
        let endpoint = overrides
            .endpoint
            .clone()
            .or_else(|| project.and_then(|p| p.endpoint.as_ref().map(|e| e.get_ref().clone())))
            .or_else(|| var(env::HF_ENDPOINT))
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(SettingsError::BadEndpoint(endpoint));
        }
        let hf_home = var(env::HF_HOME).map(PathBuf::from).or_else(|| {
            var(env::XDG_CACHE_HOME)
                .map(|x| PathBuf::from(x).join("huggingface"))
                .or_else(|| var(env::HOME).map(|h| PathBuf::from(h).join(".cache/huggingface")))
        });
        let cache_dir = overrides
            .cache_dir
            .clone()
            .or_else(|| var(env::KERNELHUB_CACHE).map(PathBuf::from))
            .or_else(|| var(env::HF_HUB_CACHE).map(PathBuf::from))
            .or_else(|| hf_home.as_ref().map(|h| h.join("hub")))
            .ok_or(SettingsError::NoCache)?;
        let token = var(env::HF_TOKEN)
            .or_else(|| {
                let path = var(env::HF_TOKEN_PATH)
                    .map(PathBuf::from)
                    .or_else(|| hf_home.as_ref().map(|h| h.join("token")))?;
                std::fs::read_to_string(path).ok()
            })
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .map(Token);
        let offline = overrides.offline
            || match var(env::HF_HUB_OFFLINE) {
                None => false,
                Some(value) => parse_bool(env::HF_HUB_OFFLINE, &value)?,
            };
        let number =
            |name: &'static str, default: u64| -> Result<u64, SettingsError> {
                match var(name) {
                    None => Ok(default),
                    Some(value) => value.parse::<u64>().ok().filter(|n| *n > 0).ok_or(
                        SettingsError::BadVariable {
                            name,
                            value,
                            expected: "a whole number above 0",
                        },
                    ),
                }
            };
        Ok(Settings {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            token,
            cache_dir,
            repo_type: overrides
                .repo_type
                .or_else(|| project.and_then(|p| p.repo_type.as_ref().map(|r| *r.get_ref())))
                .unwrap_or(RepoType::Kernel),
            connectivity: if offline {
                Connectivity::Offline
            } else {
                Connectivity::Online
            },
            timeout: Duration::from_secs(number(env::KERNELHUB_HTTP_TIMEOUT, 30)?),
            attempts: u32::try_from(number(env::KERNELHUB_HTTP_ATTEMPTS, 5)?).unwrap_or(u32::MAX),
        })
    }

    /// [`Settings::resolve`] over the process environment.
    pub fn from_env(
        overrides: &Overrides,
        project: Option<&HubSettings>,
    ) -> Result<Self, SettingsError> {
        Self::resolve(overrides, project, |name| std::env::var(name).ok())
    }
}

/// The spellings `huggingface_hub` accepts for a boolean variable.
fn parse_bool(name: &'static str, value: &str) -> Result<bool, SettingsError> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(SettingsError::BadVariable {
            name,
            value: value.to_string(),
            expected: "one of 1, true, yes, on, 0, false, no, off",
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use toml::Spanned;

    use super::*;

    fn resolve(
        overrides: &Overrides,
        hub: Option<&HubSettings>,
        vars: &[(&str, &str)],
    ) -> Settings {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::resolve(overrides, hub, |name| vars.get(name).cloned()).unwrap()
    }

    #[test]
    fn flags_beat_project_beat_environment() {
        let hub = HubSettings {
            endpoint: Some(Spanned::new(0..0, "http://project".to_string())),
            repo_type: Some(Spanned::new(0..0, RepoType::Model)),
        };
        let vars = [(env::HF_ENDPOINT, "http://env"), (env::HOME, "/home/u")];
        let flags = Overrides {
            endpoint: Some("http://flag/".into()),
            ..Overrides::default()
        };
        assert_eq!(resolve(&flags, Some(&hub), &vars).endpoint, "http://flag");
        let none = Overrides::default();
        let from_project = resolve(&none, Some(&hub), &vars);
        assert_eq!(from_project.endpoint, "http://project");
        assert_eq!(from_project.repo_type, RepoType::Model);
        let from_env = resolve(&none, None, &vars);
        assert_eq!(from_env.endpoint, "http://env");
        assert_eq!(from_env.repo_type, RepoType::Kernel);
        assert_eq!(from_env.connectivity, Connectivity::Online);
    }

    #[test]
    fn cache_directory_precedence() {
        let none = Overrides::default();
        let all = [
            (env::KERNELHUB_CACHE, "/k"),
            (env::HF_HUB_CACHE, "/h"),
            (env::HF_HOME, "/home-hf"),
            (env::HOME, "/u"),
        ];
        for skip in 0..all.len() {
            let expected = ["/k", "/h", "/home-hf/hub", "/u/.cache/huggingface/hub"][skip];
            let settings = resolve(&none, None, &all[skip..]);
            assert_eq!(settings.cache_dir, PathBuf::from(expected));
        }
        let flag = Overrides {
            cache_dir: Some("/flag".into()),
            ..Overrides::default()
        };
        assert_eq!(resolve(&flag, None, &all).cache_dir, PathBuf::from("/flag"));
    }

    #[test]
    fn offline_spellings_and_the_token_is_never_shown() {
        let none = Overrides::default();
        for on in ["1", "TRUE", "yes", "On"] {
            let s = resolve(&none, None, &[(env::HOME, "/u"), (env::HF_HUB_OFFLINE, on)]);
            assert_eq!(s.connectivity, Connectivity::Offline);
        }
        let bad = Settings::resolve(&none, None, |n| match n {
            env::HF_HUB_OFFLINE => Some("maybe".to_string()),
            env::HOME => Some("/u".to_string()),
            _ => None,
        });
        assert!(bad.unwrap_err().to_string().contains("`HF_HUB_OFFLINE`"));
        let s = resolve(
            &none,
            None,
            &[(env::HOME, "/u"), (env::HF_TOKEN, "hf_secret")],
        );
        assert_eq!(s.token.as_ref().unwrap().expose(), "hf_secret");
        assert!(!format!("{s:?}").contains("hf_secret"));
    }
}
