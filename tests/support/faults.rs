//! A small HTTP/1.1 server on 127.0.0.1 that serves one model repo the way
//! the Hub's `resolve` endpoint does, and misbehaves on request: the faults
//! a real server (olah) cannot be made to produce.
//!
//! Each file path has a queue of faults consumed by its GETs (HEADs pass
//! through, as a Hub answers them from metadata), plus persistent settings:
//! a status with an `X-Error-Code` for HEAD and GET alike, a redirect to
//! another origin, a slow body, and faults drawn at random from a seed for
//! load tests ([`FaultServer::random`]). Every request is recorded with its
//! `Authorization` header, and the body bytes sent per path are counted, so
//! tests can assert what went over the wire.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One misbehaviour of one GET.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status (and `X-Error-Code` if given), no body.
    Status(u16, Option<&'static str>),
    /// 429 with `Retry-After: <seconds>`.
    RateLimited(u64),
    /// Declare the full length, send only this many bytes, close.
    Truncate(usize),
    /// The right length, one byte flipped.
    WrongBytes,
    /// The file followed by this many extra bytes (length declared to match).
    Oversize(usize),
    /// Send the headers, then nothing, for this long.
    Stall(Duration),
    /// Declare no length and send the file followed by `x`s without end,
    /// until the client hangs up (or, as a backstop against a client that
    /// never does, [`ENDLESS_BACKSTOP`] bytes have gone out).
    Endless,
}

/// Where an [`Fault::Endless`] body gives up on a client that reads on.
pub const ENDLESS_BACKSTOP: u64 = 1 << 30;

/// Faults drawn at random, for load tests: each GET that has no queued
/// fault independently gets one with probability `per_mille / 1000`, its
/// kind drawn from `kinds` (a [`Fault::Truncate`] there cuts the body at a
/// random point below its length, whatever its own number). No path gets
/// more than `max_in_a_row` faults in a row, so a client that tries
/// `max_in_a_row + 1` times always succeeds in the end.
#[derive(Debug, Clone)]
pub struct RandomFaults {
    /// Seeds the generator: the same seed and request order give the same faults.
    pub seed: u64,
    /// Chance of a fault per GET, in thousandths.
    pub per_mille: u64,
    /// The longest run of faults one path gets.
    pub max_in_a_row: u32,
    /// What a fault can be.
    pub kinds: Vec<Fault>,
}

struct Random {
    faults: RandomFaults,
    state: u64,
    in_a_row: HashMap<String, u32>,
    injected: usize,
}

impl Random {
    /// SplitMix64: small, seedable, good enough to pick faults.
    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// The fault for the next GET of `file` (`length` bytes), if any.
    fn draw(&mut self, file: &str, length: usize) -> Option<Fault> {
        // Three draws per GET whatever happens, so the sequence depends only
        // on the order of requests.
        let roll = self.next() % 1000;
        let pick = self.next();
        let cut = self.next();
        let run = self.in_a_row.entry(file.to_string()).or_default();
        if *run >= self.faults.max_in_a_row
            || roll >= self.faults.per_mille
            || self.faults.kinds.is_empty()
        {
            *run = 0;
            return None;
        }
        *run += 1;
        self.injected += 1;
        let kind = self.faults.kinds[(pick % self.faults.kinds.len() as u64) as usize].clone();
        Some(match kind {
            Fault::Truncate(_) => Fault::Truncate((cut % length.max(1) as u64) as usize),
            other => other,
        })
    }
}

/// A request as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// `GET` or `HEAD`.
    pub method: String,
    /// The request path.
    pub path: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
}

#[derive(Default)]
struct State {
    files: HashMap<String, Vec<u8>>,
    faults: HashMap<String, VecDeque<Fault>>,
    statuses: HashMap<String, (u16, &'static str)>,
    redirects: HashMap<String, String>,
    slow: Option<(usize, Duration)>,
    random: Option<Random>,
    seen: Vec<Seen>,
    sent: HashMap<String, Arc<AtomicU64>>,
}

/// The server; it stops accepting when dropped (its thread lingers on an
/// idle listener until the process ends).
#[derive(Clone)]
pub struct FaultServer {
    state: Arc<Mutex<State>>,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    /// The repo id served, `owner/name`.
    pub repo: String,
    /// The commit the files are served at (any revision works).
    pub commit: String,
}

impl FaultServer {
    /// Serves `files` (repo path → bytes) as repo `repo` at `commit`.
    pub fn start(repo: &str, commit: &str, files: &[(&str, Vec<u8>)]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        let state = Arc::new(Mutex::new(State {
            files: files
                .iter()
                .map(|(p, b)| (p.to_string(), b.clone()))
                .collect(),
            ..State::default()
        }));
        let server = FaultServer {
            state,
            endpoint,
            repo: repo.to_string(),
            commit: commit.to_string(),
        };
        let handler = server.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let handler = handler.clone();
                std::thread::spawn(move || handler.serve(stream));
            }
        });
        server
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues faults for the next GETs of `path` (a repo path).
    pub fn fail(&self, path: &str, faults: impl IntoIterator<Item = Fault>) {
        self.lock()
            .faults
            .entry(path.to_string())
            .or_default()
            .extend(faults);
    }

    /// Answers every request for `path` with `status` and `X-Error-Code: code`.
    pub fn status(&self, path: &str, status: u16, code: &'static str) {
        self.lock()
            .statuses
            .insert(path.to_string(), (status, code));
    }

    /// Redirects every request for `path` to `base` + the same request path.
    pub fn redirect(&self, path: &str, base: &str) {
        self.lock()
            .redirects
            .insert(path.to_string(), base.to_string());
    }

    /// Sends every body in chunks of `chunk` bytes with `delay` between them.
    pub fn slow(&self, chunk: usize, delay: Duration) {
        self.lock().slow = Some((chunk, delay));
    }

    /// From now on, injects faults at random as `faults` says (queued
    /// faults still come first).
    pub fn random(&self, faults: RandomFaults) {
        self.lock().random = Some(Random {
            state: faults.seed,
            faults,
            in_a_row: HashMap::new(),
            injected: 0,
        });
    }

    /// How many faults [`FaultServer::random`] has injected so far.
    pub fn injected(&self) -> usize {
        self.lock().random.as_ref().map_or(0, |r| r.injected)
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.lock().seen.clone()
    }

    /// How many GETs asked for `path`.
    pub fn gets(&self, path: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.method == "GET" && s.path.ends_with(&format!("/{path}")))
            .count()
    }

    /// Body bytes sent so far for `path`.
    pub fn sent(&self, path: &str) -> u64 {
        self.lock()
            .sent
            .get(path)
            .map_or(0, |c| c.load(Ordering::SeqCst))
    }

    fn serve(&self, stream: TcpStream) {
        let mut reader = BufReader::new(match stream.try_clone() {
            Ok(s) => s,
            Err(_) => return,
        });
        let mut stream = stream;
        // One request per connection keeps the bookkeeping simple.
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).is_err() {
            return;
        }
        let mut authorization = None;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("authorization")
            {
                authorization = Some(value.trim().to_string());
            }
        }
        let mut parts = request_line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("").to_string(),
        );
        let _ = self.respond(&mut stream, &method, &path, authorization);
    }

    fn respond(
        &self,
        stream: &mut TcpStream,
        method: &str,
        path: &str,
        authorization: Option<String>,
    ) -> std::io::Result<()> {
        let file = self.file_of(path);
        let mut state = self.lock();
        state.seen.push(Seen {
            method: method.to_string(),
            path: path.to_string(),
            authorization,
        });
        let Some(file) = file else {
            drop(state);
            return write_head(stream, 404, &[("X-Error-Code", "RepoNotFound")], 0);
        };
        if let Some(base) = state.redirects.get(&file) {
            let location = format!("{base}{path}");
            drop(state);
            return write_head(stream, 302, &[("Location", &location)], 0);
        }
        if let Some((status, code)) = state.statuses.get(&file).copied() {
            drop(state);
            return write_head(stream, status, &[("X-Error-Code", code)], 0);
        }
        let Some(body) = state.files.get(&file).cloned() else {
            drop(state);
            return write_head(stream, 404, &[("X-Error-Code", "EntryNotFound")], 0);
        };
        let etag = format!("\"{}\"", file.len());
        let commit = self.commit.clone();
        let headers = [("X-Repo-Commit", commit.as_str()), ("ETag", etag.as_str())];
        if method == "HEAD" {
            drop(state);
            return write_head(stream, 200, &headers, body.len());
        }
        let length = body.len();
        let fault = match state.faults.get_mut(&file).and_then(VecDeque::pop_front) {
            Some(fault) => Some(fault),
            None => state
                .random
                .as_mut()
                .and_then(|random| random.draw(&file, length)),
        };
        let slow = state.slow;
        let counter = state.sent.entry(file.clone()).or_default().clone();
        drop(state);
        let (declared, sent): (usize, Vec<u8>) = match fault {
            None => (body.len(), body),
            Some(Fault::Status(status, code)) => {
                let headers: Vec<(&str, &str)> =
                    code.map(|c| ("X-Error-Code", c)).into_iter().collect();
                return write_head(stream, status, &headers, 0);
            }
            Some(Fault::RateLimited(seconds)) => {
                return write_head(stream, 429, &[("Retry-After", &seconds.to_string())], 0);
            }
            Some(Fault::Truncate(n)) => (body.len(), body[..n.min(body.len())].to_vec()),
            Some(Fault::WrongBytes) => {
                let mut wrong = body;
                if let Some(last) = wrong.last_mut() {
                    *last ^= 0x20;
                }
                (wrong.len(), wrong)
            }
            Some(Fault::Oversize(extra)) => {
                let mut long = body;
                long.extend(std::iter::repeat_n(b'x', extra));
                (long.len(), long)
            }
            Some(Fault::Stall(duration)) => {
                write_head(stream, 200, &headers, body.len())?;
                std::thread::sleep(duration);
                return Ok(());
            }
            Some(Fault::Endless) => {
                // No `Content-Length`: the body ends when the connection does.
                let mut head = "HTTP/1.1 200 X\r\nConnection: close\r\n".to_string();
                for (name, value) in headers {
                    head.push_str(&format!("{name}: {value}\r\n"));
                }
                head.push_str("\r\n");
                stream.write_all(head.as_bytes())?;
                let filler = vec![b'x'; 64 * 1024];
                let mut piece: &[u8] = &body;
                let mut here = 0u64;
                while here < ENDLESS_BACKSTOP {
                    // An error here is the client hanging up: the point.
                    stream.write_all(piece)?;
                    counter.fetch_add(piece.len() as u64, Ordering::SeqCst);
                    here += piece.len() as u64;
                    piece = &filler;
                }
                return Ok(());
            }
        };
        write_head(stream, 200, &headers, declared)?;
        let (chunk, delay) = slow.unwrap_or((64 * 1024, Duration::ZERO));
        for piece in sent.chunks(chunk.max(1)) {
            stream.write_all(piece)?;
            stream.flush()?;
            counter.fetch_add(piece.len() as u64, Ordering::SeqCst);
            if !delay.is_zero() {
                std::thread::sleep(delay);
            }
        }
        Ok(())
    }

    /// The repo path a request is for: `/<repo>/resolve/<rev>/<path>`.
    fn file_of(&self, request: &str) -> Option<String> {
        let rest = request
            .strip_prefix('/')?
            .strip_prefix(&self.repo)?
            .strip_prefix("/resolve/")?;
        let (_revision, path) = rest.split_once('/')?;
        Some(path.to_string())
    }
}

fn write_head(
    stream: &mut TcpStream,
    status: u16,
    headers: &[(&str, &str)],
    length: usize,
) -> std::io::Result<()> {
    let mut head =
        format!("HTTP/1.1 {status} X\r\nContent-Length: {length}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())
}

/// The commit the fault server's repo is locked at.
pub const COMMIT: &str = "c0ffee0000000000000000000000000000000001";

/// Serves the test kernel `acme/scale` (the valid [`crate::Repo`] with
/// `wgsl` as its artifact) and returns the server and a lock pinning it.
pub fn scale_repo(wgsl: Vec<u8>) -> (FaultServer, kernelhub_manifest::Lockfile) {
    let repo = crate::Repo::good().file("scale.wgsl", wgsl.clone());
    let manifest = std::fs::read(repo.write()).expect("manifest written");
    let server = FaultServer::start(
        "acme/scale",
        COMMIT,
        &[("kernel.toml", manifest.clone()), ("scale.wgsl", wgsl)],
    );
    let lock = kernelhub_manifest::Lockfile {
        kernels: vec![kernelhub_manifest::lock::LockedKernel {
            name: "scale".into(),
            repo: "acme/scale".into(),
            repo_type: kernelhub_manifest::project::RepoType::Model,
            reference: "v1.0.0".into(),
            commit: COMMIT.into(),
            manifest_sha256: kernelhub_manifest::hash::Sha256Digest::of(&manifest),
            signature: None,
        }],
        hf: Vec::new(),
    };
    (server, lock)
}
