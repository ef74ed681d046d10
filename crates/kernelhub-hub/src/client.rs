//! The only code that talks to a Hub: `hf-hub` for its API (refs), one
//! plain GET per file for downloads, kernelhub's retry policy and errors on
//! top.
//!
//! Why not `hf-hub`'s download stream: it sends a HEAD before every GET (to
//! learn whether a file is Xet-backed), doubling the requests per file. On
//! a request-bound server that doubled a cold fetch's time (measured in
//! BENCHMARKS.md). A GET of the `resolve` URL returns every file, Xet-backed
//! ones through a redirect to the Hub's bridge, so one request suffices;
//! kernel artifacts are megabytes, where Xet's chunk deduplication gains
//! nothing.
//!
//! `hf-hub`'s own retries are turned off so one policy governs everything:
//! transient failures (connection errors, timeouts, a body cut short, 408,
//! 5xx, 429) are retried with exponential backoff, and a 429's
//! `Retry-After` is honoured. A 404 becomes one of three errors (no repo, no
//! revision, no file) from the Hub's `X-Error-Code`. The token goes only
//! into the `Authorization` header; redirects to another host (a CDN or
//! mirror) drop it, as `reqwest` does for every cross-origin redirect.

use std::time::Duration;

use futures::StreamExt;
use hf_hub::{HFClient, HFError, RepoTypeKernel, RepoTypeModel};
use kernelhub_manifest::project::RepoType;

use crate::checksum::{Algorithm, Checksum, Hasher};
use crate::error::{Error, FileProblem};
use crate::settings::{Connectivity, Settings, Token};

/// The longest `Retry-After` honoured; a longer one is waited this long.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// The first backoff; it doubles each attempt.
const BASE_BACKOFF: Duration = Duration::from_millis(200);
/// The longest backoff between two tries.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A tag or branch and the commit it points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ref {
    /// Short name, e.g. `v1.2.0` or `main`.
    pub name: String,
    /// The 40-hex commit.
    pub commit: String,
}

/// A repo's tags and branches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Refs {
    /// Tags.
    pub tags: Vec<Ref>,
    /// Branches.
    pub branches: Vec<Ref>,
}

/// One file on the Hub.
#[derive(Debug, Clone, Copy)]
pub struct RemoteFile<'a> {
    /// Which kind of repo holds it.
    pub repo_type: RepoType,
    /// `owner/name`.
    pub repo: &'a str,
    /// A commit (or any revision the Hub resolves).
    pub revision: &'a str,
    /// Path inside the repo.
    pub path: &'a str,
}

/// Where downloaded bytes go.
pub trait Sink {
    /// Forget what was written: a new try starts from the first byte.
    fn restart(&mut self) -> std::io::Result<()>;
    /// Take the next bytes.
    fn write(&mut self, chunk: &[u8]) -> std::io::Result<()>;
}

impl Sink for Vec<u8> {
    fn restart(&mut self) -> std::io::Result<()> {
        self.clear();
        Ok(())
    }
    fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.extend_from_slice(chunk);
        Ok(())
    }
}

/// A connection to one Hub. Exists only when online.
#[derive(Debug, Clone)]
pub struct HubClient {
    hub: HFClient,
    http: reqwest::Client,
    token: Option<Token>,
    endpoint: String,
    attempts: u32,
}

/// One failed try.
enum Failure {
    /// Worth another try, after at least this long.
    Transient(Option<Duration>, String),
    /// Final.
    Fatal(Error),
}

impl HubClient {
    /// A client for `settings`; `None` when offline, so offline code has no
    /// client to call.
    pub fn connect(settings: &Settings) -> Result<Option<Self>, Error> {
        if settings.connectivity == Connectivity::Offline {
            return Ok(None);
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("kernelhub/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(settings.timeout)
            .read_timeout(settings.timeout)
            .build()
            .map_err(|e| Error::Http {
                what: "an HTTP client".into(),
                message: e.to_string(),
            })?;
        let mut builder = HFClient::builder()
            .endpoint(settings.endpoint.clone())
            .client(http.clone())
            .cache_dir(settings.cache_dir.clone())
            .retry_max_attempts(0);
        if let Some(token) = &settings.token {
            builder = builder.token(token.expose());
        }
        let hub = builder.build().map_err(|e| Error::Http {
            what: format!("Hub `{}`", settings.endpoint),
            message: e.to_string(),
        })?;
        Ok(Some(HubClient {
            hub,
            http,
            token: settings.token.clone(),
            endpoint: settings.endpoint.clone(),
            attempts: settings.attempts.max(1),
        }))
    }

    /// The Hub's base URL.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The tags and branches of `repo`.
    pub async fn refs(&self, repo_type: RepoType, repo: &str) -> Result<Refs, Error> {
        let (owner, name) = hf_hub::split_id(repo);
        let what = format!("the tags and branches of `{repo}`");
        self.retrying(&what, || async {
            let refs = match repo_type {
                RepoType::Kernel => {
                    self.hub
                        .repository(RepoTypeKernel, owner, name)
                        .list_refs()
                        .send()
                        .await
                }
                RepoType::Model => {
                    self.hub
                        .repository(RepoTypeModel, owner, name)
                        .list_refs()
                        .send()
                        .await
                }
            }
            .map_err(|e| self.classify(e, repo_type, repo, "", ""))?;
            let convert = |list: Vec<hf_hub::repository::GitRefInfo>| {
                list.into_iter()
                    .map(|r| Ref {
                        name: r.name,
                        commit: r.target_commit,
                    })
                    .collect()
            };
            Ok(Refs {
                tags: convert(refs.tags),
                branches: convert(refs.branches),
            })
        })
        .await
    }

    /// Whether `repo` at `revision` has a file at the root named `name`
    /// (asked through the API, so a missing file costs no failed download).
    pub async fn has_root_file(
        &self,
        repo_type: RepoType,
        repo: &str,
        revision: &str,
        name: &str,
    ) -> Result<bool, Error> {
        let (owner, repo_name) = hf_hub::split_id(repo);
        let what = format!("the files of `{repo}` at `{revision}`");
        self.retrying(&what, || async {
            let classify = |e| self.classify(e, repo_type, repo, revision, "");
            match repo_type {
                // Model repos list every file in their info (mirrors have this).
                RepoType::Model => {
                    let info = self
                        .hub
                        .repository(RepoTypeModel, owner, repo_name)
                        .info()
                        .revision(revision)
                        .send()
                        .await
                        .map_err(classify)?;
                    Ok(info.siblings.unwrap_or_default().iter().any(|s| s.rfilename == name))
                }
                // Kernel repo info has no file list: read the root folder.
                RepoType::Kernel => {
                    let entries = list_tree(&self.hub.repository(RepoTypeKernel, owner, repo_name), revision, None)
                        .await
                        .map_err(classify)?;
                    Ok(entries
                        .iter()
                        .any(|e| matches!(e, hf_hub::repository::RepoTreeEntry::File { path, .. } if path == name)))
                }
            }
        })
        .await
    }

    /// Every file below `path` of `repo` at `revision`, with its size.
    pub async fn tree(
        &self,
        repo_type: RepoType,
        repo: &str,
        revision: &str,
        path: &str,
    ) -> Result<Vec<(String, u64)>, Error> {
        let (owner, name) = hf_hub::split_id(repo);
        let what = format!("the files below `{path}` of `{repo}` at `{revision}`");
        self.retrying(&what, || async {
            let classify = |e| self.classify(e, repo_type, repo, revision, path);
            let entries = match repo_type {
                RepoType::Kernel => {
                    list_tree(
                        &self.hub.repository(RepoTypeKernel, owner, name),
                        revision,
                        Some(path),
                    )
                    .await
                }
                RepoType::Model => {
                    list_tree(
                        &self.hub.repository(RepoTypeModel, owner, name),
                        revision,
                        Some(path),
                    )
                    .await
                }
            }
            .map_err(classify)?;
            Ok(entries
                .into_iter()
                .filter_map(|entry| match entry {
                    hf_hub::repository::RepoTreeEntry::File { path, size, .. } => {
                        Some((path, size))
                    }
                    _ => None,
                })
                .collect())
        })
        .await
    }

    /// Streams `remote` into `sink`, hashing as it goes and stopping past
    /// `limit` bytes; the sink is restarted before each try. Returns the
    /// hash and length.
    pub async fn download(
        &self,
        remote: &RemoteFile<'_>,
        algorithm: Algorithm,
        limit: u64,
        sink: &mut dyn Sink,
    ) -> Result<(Checksum, u64), Error> {
        let what = format!(
            "`{}` of `{}` at `{}`",
            remote.path, remote.repo, remote.revision
        );
        let url = self.resolve_url(remote)?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            sink.restart()?;
            let outcome = self.stream_once(&url, remote, algorithm, limit, sink).await;
            match outcome {
                Ok(done) => return Ok(done),
                Err(failure) => self.after_failure(attempt, failure, &what).await?,
            }
        }
    }

    /// `{endpoint}/[kernels/]{owner}/{name}/resolve/{revision}/{path}`,
    /// each segment percent-encoded.
    fn resolve_url(&self, remote: &RemoteFile<'_>) -> Result<reqwest::Url, Error> {
        let bad = |message: String| Error::Http {
            what: format!("the URL of `{}`", remote.path),
            message,
        };
        let mut url = reqwest::Url::parse(&self.endpoint).map_err(|e| bad(e.to_string()))?;
        {
            let mut segments = url
                .path_segments_mut()
                .map_err(|()| bad(format!("`{}` cannot be a base URL", self.endpoint)))?;
            segments.pop_if_empty();
            if remote.repo_type == RepoType::Kernel {
                segments.push("kernels");
            }
            segments.extend(remote.repo.split('/'));
            segments.push("resolve");
            segments.push(remote.revision);
            segments.extend(remote.path.split('/'));
        }
        Ok(url)
    }

    async fn stream_once(
        &self,
        url: &reqwest::Url,
        remote: &RemoteFile<'_>,
        algorithm: Algorithm,
        limit: u64,
        sink: &mut dyn Sink,
    ) -> Result<(Checksum, u64), Failure> {
        let mut request = self.http.get(url.clone());
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.expose());
        }
        let response = request.send().await.map_err(|e| transport(&e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(self.refusal(&response, remote));
        }
        let mut stream = response.bytes_stream();
        let mut hasher = Hasher::new(algorithm);
        let mut total = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| transport(&e))?;
            total += chunk.len() as u64;
            if total > limit {
                // Stop reading: dropping the stream closes the connection.
                return Err(Failure::Fatal(Error::Mismatch {
                    repo: remote.repo.to_string(),
                    file: remote.path.to_string(),
                    commit: remote.revision.to_string(),
                    problem: Box::new(FileProblem::Long { expected: limit }),
                }));
            }
            hasher.update(&chunk);
            sink.write(&chunk).map_err(|e| Failure::Fatal(e.into()))?;
        }
        Ok((hasher.finish(), total))
    }

    /// Runs `op` until it succeeds, fails for good, or runs out of tries.
    async fn retrying<T, Fut>(&self, what: &str, op: impl Fn() -> Fut) -> Result<T, Error>
    where
        Fut: Future<Output = Result<T, Failure>>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match op().await {
                Ok(value) => return Ok(value),
                Err(failure) => self.after_failure(attempt, failure, what).await?,
            }
        }
    }

    /// Gives up on a final failure or the last try; otherwise waits.
    async fn after_failure(&self, attempt: u32, failure: Failure, what: &str) -> Result<(), Error> {
        match failure {
            Failure::Fatal(error) => Err(error),
            Failure::Transient(_, message) if attempt >= self.attempts => Err(Error::Http {
                what: what.to_string(),
                message: format!("{message} (tried {attempt} times)"),
            }),
            Failure::Transient(wait, message) => {
                self.back_off(attempt, wait, what, &message).await;
                Ok(())
            }
        }
    }

    async fn back_off(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        what: &str,
        message: &str,
    ) {
        // Exponential, capped, with up to 50% jitter so parallel downloads
        // that failed together do not retry in lockstep.
        let backoff = (BASE_BACKOFF * 2u32.saturating_pow(attempt - 1)).min(MAX_BACKOFF);
        let jitter = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
            % 500;
        let backoff = backoff + backoff * jitter / 1000;
        let wait = retry_after.map_or(backoff, |w| w.min(MAX_RETRY_AFTER));
        tracing::warn!(
            "{what}: {message}; try {attempt} failed, trying again in {} ms",
            wait.as_millis()
        );
        tokio::time::sleep(wait).await;
    }

    /// Sorts a non-success answer to a file GET like [`HubClient::classify`]
    /// sorts `hf-hub`'s errors.
    fn refusal(&self, response: &reqwest::Response, remote: &RemoteFile<'_>) -> Failure {
        let status = response.status();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let code = header("x-error-code");
        let not_found = || {
            self.not_found(
                code.as_deref(),
                remote.repo_type,
                remote.repo,
                remote.revision,
                remote.path,
            )
        };
        match status.as_u16() {
            404 => Failure::Fatal(not_found()),
            401 if code.as_deref() == Some("RepoNotFound") => Failure::Fatal(not_found()),
            401 | 403 => Failure::Fatal(Error::Http {
                what: format!("`{}` of `{}`", remote.path, remote.repo),
                message: format!(
                    "HTTP {status}: the Hub refused access\n  hint: set `HF_TOKEN` to a token that can read `{}` (gated or private repos need one)",
                    remote.repo
                ),
            }),
            // `Retry-After` in seconds; its date form is treated as absent.
            429 | 503 => Failure::Transient(
                header("retry-after")
                    .and_then(|s| s.trim().parse().ok())
                    .map(Duration::from_secs),
                format!("HTTP {status}"),
            ),
            408 | 500..=599 => Failure::Transient(None, format!("HTTP {status}")),
            _ => Failure::Fatal(Error::Http {
                what: format!(
                    "`{}` of `{}` at `{}`",
                    remote.path, remote.repo, remote.revision
                ),
                message: format!(
                    "HTTP {status}{}",
                    header("x-error-message").map_or(String::new(), |m| format!(": {m}"))
                ),
            }),
        }
    }

    /// The error for a 404, by the Hub's `X-Error-Code`.
    fn not_found(
        &self,
        code: Option<&str>,
        repo_type: RepoType,
        repo: &str,
        revision: &str,
        path: &str,
    ) -> Error {
        match code {
            Some("RepoNotFound") => Error::RepoNotFound {
                repo: repo.to_string(),
                repo_type: repo_type.as_str(),
                endpoint: self.endpoint.clone(),
            },
            Some("RevisionNotFound") => Error::RevisionNotFound {
                repo: repo.to_string(),
                revision: revision.to_string(),
                name: repo.rsplit('/').next().unwrap_or(repo).to_string(),
            },
            _ => Error::FileNotFound {
                repo: repo.to_string(),
                revision: revision.to_string(),
                file: path.to_string(),
            },
        }
    }

    /// Sorts an `hf-hub` error into retry-worthy or final, with kernelhub's
    /// messages for the final ones.
    fn classify(
        &self,
        error: HFError,
        repo_type: RepoType,
        repo: &str,
        revision: &str,
        path: &str,
    ) -> Failure {
        let by_code = |code: Option<&str>| self.not_found(code, repo_type, repo, revision, path);
        match error {
            HFError::RepoNotFound { .. } => Failure::Fatal(by_code(Some("RepoNotFound"))),
            HFError::RevisionNotFound { .. } => Failure::Fatal(by_code(Some("RevisionNotFound"))),
            HFError::EntryNotFound { context, .. } => Failure::Fatal(by_code(
                context.as_ref().and_then(|c| c.error_code.as_deref()),
            )),
            // The Hub answers 401 for a repo it will not admit exists.
            HFError::AuthRequired { context }
                if context.error_code.as_deref() == Some("RepoNotFound") =>
            {
                Failure::Fatal(by_code(Some("RepoNotFound")))
            }
            HFError::RateLimited { retry_after, .. } => {
                Failure::Transient(retry_after, "rate limited (429)".to_string())
            }
            HFError::Http { context }
                if context.status.is_server_error() || context.status.as_u16() == 408 =>
            {
                Failure::Transient(None, format!("HTTP {}", context.status))
            }
            HFError::Request { source, .. }
                if source.is_timeout()
                    || source.is_connect()
                    || source.is_body()
                    || source.is_request()
                    || source.is_decode() =>
            {
                Failure::Transient(None, describe(&source))
            }
            other => Failure::Fatal(Error::Http {
                what: format!("`{path}` of `{repo}`"),
                message: other.to_string(),
            }),
        }
    }
}

/// Every entry of a repo's tree below `path` (recursively), or of its root.
async fn list_tree<T: hf_hub::RepoType>(
    handle: &hf_hub::HFRepository<T>,
    revision: &str,
    path: Option<&str>,
) -> Result<Vec<hf_hub::repository::RepoTreeEntry>, HFError> {
    let stream = handle
        .list_tree()
        .revision(revision)
        .maybe_path_in_repo(path.map(str::to_string))
        .recursive(path.is_some())
        .send()?;
    stream.collect::<Vec<_>>().await.into_iter().collect()
}

/// Transport failures (connect, timeout, a body cut short) are worth
/// another try; the rest (a bad URL, too many redirects) are not.
fn transport(error: &reqwest::Error) -> Failure {
    // A body cut short while streaming surfaces as a decode error.
    if error.is_timeout()
        || error.is_connect()
        || error.is_body()
        || error.is_decode()
        || error.is_request()
    {
        Failure::Transient(None, describe(error))
    } else {
        Failure::Fatal(Error::Http {
            what: error.url().map_or_else(
                || "a request".to_string(),
                |u| format!("`{}`", without_query(u)),
            ),
            message: describe(error),
        })
    }
}

/// A URL without its query, where a CDN puts signatures that must not
/// reach logs or error messages.
fn without_query(url: &reqwest::Url) -> reqwest::Url {
    let mut url = url.clone();
    url.set_query(None);
    url
}

/// A `reqwest` error with its causes, which hold the useful part; the URL
/// is shown without its query.
fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out".to_string()
    } else {
        let kind = if error.is_connect() {
            "could not connect"
        } else if error.is_body() || error.is_decode() {
            "the response body failed"
        } else {
            "the request failed"
        };
        match error.url() {
            Some(url) => format!("{kind} ({})", without_query(url)),
            None => kind.to_string(),
        }
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}
