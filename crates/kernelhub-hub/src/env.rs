//! Every environment variable kernelhub reads, in one place, each documented.

/// Base URL of the Hub (`https://…`); `kernels.toml` `[hub] endpoint` and
/// `--endpoint` override it.
pub const HF_ENDPOINT: &str = "HF_ENDPOINT";
/// Access token for private or gated repos. Never printed or logged.
pub const HF_TOKEN: &str = "HF_TOKEN";
/// A file holding the token, used when `HF_TOKEN` is unset.
pub const HF_TOKEN_PATH: &str = "HF_TOKEN_PATH";
/// `1`/`true`/`yes`/`on`: no network at all; everything comes from the cache.
pub const HF_HUB_OFFLINE: &str = "HF_HUB_OFFLINE";
/// kernelhub's own cache root; wins over the Hub's variables below.
pub const KERNELHUB_CACHE: &str = "KERNELHUB_CACHE";
/// The Hub cache root shared with the Python `huggingface_hub`.
pub const HF_HUB_CACHE: &str = "HF_HUB_CACHE";
/// Hugging Face's home; the cache is `$HF_HOME/hub`, the token `$HF_HOME/token`.
pub const HF_HOME: &str = "HF_HOME";
/// Where `HF_HOME` defaults to when unset: `$XDG_CACHE_HOME/huggingface`.
pub const XDG_CACHE_HOME: &str = "XDG_CACHE_HOME";
/// The user's home; the last fallback is `~/.cache/huggingface/hub`.
pub const HOME: &str = "HOME";
/// Seconds without progress before a connection or read is abandoned
/// (default 30).
pub const KERNELHUB_HTTP_TIMEOUT: &str = "KERNELHUB_HTTP_TIMEOUT";
/// How many times a failed request is tried in all (default 5).
pub const KERNELHUB_HTTP_ATTEMPTS: &str = "KERNELHUB_HTTP_ATTEMPTS";
/// Forces one runtime backend: `wgpu`, `cuda` or `rocm` (default: the best
/// device found, native GPUs first).
pub const KERNELHUB_BACKEND: &str = "KERNELHUB_BACKEND";
/// Picks the wgpu adapter whose name contains this text (case-insensitive),
/// as wgpu's own examples do.
pub const WGPU_ADAPTER_NAME: &str = "WGPU_ADAPTER_NAME";
/// The password of an encrypted minisign secret key for `kernelhub sign`
/// (without it, kernelhub prompts).
pub const KERNELHUB_SIGNING_PASSWORD: &str = "KERNELHUB_SIGNING_PASSWORD";
