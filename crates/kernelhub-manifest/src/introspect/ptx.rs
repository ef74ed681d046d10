//! Reads the header directives (`.version`, `.target`, `.address_size`) and the kernels
//! (`.entry` names and `.param` lists) of a PTX text file, skipping comments, without
//! compiling anything. It exists so that prebuilt PTX can be checked against the
//! architecture, driver and call signature a manifest claims before a GPU ever sees it;
//! any input gives a result or an error.

use std::iter::Peekable;

/// Longest line excerpt, in characters, quoted in an error message.
const MAX_EXCERPT_CHARS: usize = 120;

/// What a PTX file declares about itself, as read by [`parse_ptx`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PtxInfo {
    /// The PTX ISA version from `.version X.Y`, as `(X, Y)`.
    pub version: (u32, u32),
    /// The `.target` directive's architecture, e.g. "sm_80" or "sm_90a" (the first target
    /// token that starts with `sm_` or `compute_`).
    pub target: String,
    /// The other `.target` tokens, in file order, e.g. "texmode_independent", "debug".
    pub target_modifiers: Vec<String>,
    /// The `.address_size` value (32 or 64), if the directive is present.
    pub address_size: Option<u32>,
    /// Names of every `.entry` (kernel) in file order, including `.visible .entry` and
    /// `.weak .entry`; entries inside comments are not counted.
    pub entries: Vec<String>,
    /// 1-based line number of the `.version` directive, for diagnostics.
    pub version_line: usize,
    /// 1-based line number of the `.target` directive, for diagnostics.
    pub target_line: usize,
    /// Every `.entry` with its parameter list: one per item of `entries`, in the same
    /// order.
    pub kernels: Vec<PtxEntry>,
}

impl PtxInfo {
    /// The first `.entry` named `name`.
    pub fn kernel(&self, name: &str) -> Option<&PtxEntry> {
        self.kernels.iter().find(|k| k.name == name)
    }
}

/// One `.entry` (kernel) and the parameters it declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PtxEntry {
    /// The kernel's name.
    pub name: String,
    /// 1-based line number of the `.entry` directive.
    pub line: usize,
    /// The `.param` list in declaration order (empty for `()` or no list), or why it
    /// could not be read. A list this reader cannot follow does not make the file
    /// invalid: the header and names are still reported.
    pub params: Result<Vec<PtxParam>, PtxParamError>,
}

/// One kernel parameter, `.param [.align N] .TYPE [.ptr [.SPACE] [.align N]] NAME[[N]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PtxParam {
    /// The parameter's name.
    pub name: String,
    /// The type as written, without the alignment and pointer qualifiers: `.u64`,
    /// `.f32`, `.b8[8]`, `.v2 .f32`, `.texref`.
    pub ty: String,
    /// Size in bytes: the element size times the vector width and every array length.
    /// `None` for the opaque types (`.texref`, `.samplerref`, `.surfref`), for an
    /// array of unspecified length (`name[]`) and on overflow.
    pub size: Option<u64>,
    /// 1-based line number of the `.param` keyword.
    pub line: usize,
}

/// Why the parameter list of an `.entry` could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct PtxParamError {
    /// 1-based line number of the problem.
    pub line: usize,
    /// What was expected and what was found.
    pub message: String,
}

/// Why a file could not be read as PTX.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PtxError {
    /// The bytes are not UTF-8 text, or contain NUL bytes before the end.
    #[error("is not a PTX text file: {0}")]
    NotText(String),
    /// No `.version` directive outside comments.
    #[error("no `.version` directive found (expected a line such as `.version 7.0` near the top)")]
    MissingVersion,
    /// No `.target` directive outside comments.
    #[error("no `.target` directive found (expected a line such as `.target sm_80`)")]
    MissingTarget,
    /// The `.version` directive is not followed by `MAJOR.MINOR`.
    #[error(
        "line {line}: bad `.version` directive `{text}` (expected `.version MAJOR.MINOR`, e.g. `.version 7.0`)"
    )]
    BadVersion {
        /// 1-based line number of the directive.
        line: usize,
        /// The offending line, trimmed and shortened.
        text: String,
    },
    /// The `.target` directive names no `sm_*` / `compute_*` architecture, or a malformed one.
    #[error(
        "line {line}: bad `.target` directive `{text}` (expected an architecture such as `sm_80`, `sm_90a` or `compute_80`)"
    )]
    BadTarget {
        /// 1-based line number of the directive.
        line: usize,
        /// The offending line, trimmed and shortened.
        text: String,
    },
    /// The `.address_size` directive is not followed by a number.
    #[error(
        "line {line}: bad `.address_size` directive `{text}` (expected `.address_size 32` or `.address_size 64`)"
    )]
    BadAddressSize {
        /// 1-based line number of the directive.
        line: usize,
        /// The offending line, trimmed and shortened.
        text: String,
    },
    /// An `.entry` directive is not followed by a valid PTX identifier.
    #[error(
        "line {line}: bad `.entry` directive `{text}` (expected a kernel name such as `.entry my_kernel(`)"
    )]
    BadEntry {
        /// 1-based line number of the directive.
        line: usize,
        /// The offending line, trimmed and shortened.
        text: String,
    },
    /// A `/*` comment is never closed.
    #[error("line {line}: `/*` comment is never closed (expected a matching `*/`)")]
    UnterminatedComment {
        /// 1-based line number where the comment starts.
        line: usize,
    },
}

/// Parses the header directives and kernel names of a PTX file.
///
/// Comments (`//`, `/* */`) are skipped; quoted strings (as in `.file`) are skipped so that
/// comment markers inside them do not count. A UTF-8 byte-order mark and trailing NUL
/// bytes (as left by PTX embedded in a binary) are tolerated. Runs in time linear in the
/// input and allocates only for the names it returns.
pub fn parse_ptx(bytes: &[u8]) -> Result<PtxInfo, PtxError> {
    let text = decode_text(bytes)?;

    let mut version: Option<((u32, u32), usize)> = None;
    let mut target: Option<(String, Vec<String>, usize)> = None;
    let mut address_size: Option<u32> = None;
    let mut entries = Vec::new();
    let mut kernels = Vec::new();

    let mut tokens = Tokens::new(text).peekable();
    while let Some(tok) = tokens.next() {
        let tok = tok?;
        match tok.text {
            ".version" => {
                let arg = next_token(&mut tokens)?;
                let parsed = arg.as_ref().and_then(|a| parse_version(a.text));
                match parsed {
                    Some(v) => {
                        if version.is_none() {
                            version = Some((v, tok.line));
                        }
                    }
                    None => {
                        return Err(PtxError::BadVersion {
                            line: tok.line,
                            text: line_excerpt(text, tok.offset),
                        });
                    }
                }
            }
            ".target" => {
                let (arch, modifiers) =
                    parse_target_list(&mut tokens)?.ok_or_else(|| PtxError::BadTarget {
                        line: tok.line,
                        text: line_excerpt(text, tok.offset),
                    })?;
                if target.is_none() {
                    target = Some((arch, modifiers, tok.line));
                }
            }
            ".address_size" => {
                let arg = next_token(&mut tokens)?;
                match arg.and_then(|a| parse_decimal(a.text)) {
                    Some(n) => {
                        if address_size.is_none() {
                            address_size = Some(n);
                        }
                    }
                    None => {
                        return Err(PtxError::BadAddressSize {
                            line: tok.line,
                            text: line_excerpt(text, tok.offset),
                        });
                    }
                }
            }
            ".entry" => {
                let name = next_token(&mut tokens)?;
                match name {
                    Some(n) if is_identifier(n.text) => {
                        entries.push(n.text.to_owned());
                        // Read the parameter list on a copy of the stream, so that the
                        // directives found (and any error) are the same as without it.
                        let params = parse_params(&mut tokens.clone(), n.line);
                        kernels.push(PtxEntry {
                            name: n.text.to_owned(),
                            line: tok.line,
                            params,
                        });
                    }
                    _ => {
                        return Err(PtxError::BadEntry {
                            line: tok.line,
                            text: line_excerpt(text, tok.offset),
                        });
                    }
                }
            }
            _ => {}
        }
    }

    let (version, version_line) = version.ok_or(PtxError::MissingVersion)?;
    let (target, target_modifiers, target_line) = target.ok_or(PtxError::MissingTarget)?;
    Ok(PtxInfo {
        version,
        target,
        target_modifiers,
        address_size,
        entries,
        version_line,
        target_line,
        kernels,
    })
}

/// The oldest CUDA driver `(major, minor)` able to JIT this PTX ISA version, from NVIDIA's
/// PTX ISA release table (PTX 6.0 -> CUDA 9.0, 7.0 -> 11.0, 8.0 -> 12.0, 8.6 -> 12.7,
/// 9.0 -> 13.0, ...). `None` for versions not in the table.
pub fn min_driver_for_ptx(version: (u32, u32)) -> Option<(u32, u32)> {
    // "PTX ISA release history" in NVIDIA's PTX ISA manual, as also encoded by
    // cuda-python's `get_minimal_required_cuda_ver_from_ptx_ver`.
    let driver = match version {
        (1, 0) => (1, 0),
        (1, 1) => (1, 1),
        (1, 2) => (2, 0),
        (1, 3) => (2, 1),
        (1, 4) => (2, 2),
        (2, 0) => (3, 0),
        (2, 1) => (3, 1),
        (2, 2) => (3, 2),
        (2, 3) => (4, 0),
        (3, 0) => (4, 1),
        (3, 1) => (5, 0),
        (3, 2) => (5, 5),
        (4, 0) => (6, 0),
        (4, 1) => (6, 5),
        (4, 2) => (7, 0),
        (4, 3) => (7, 5),
        (5, 0) => (8, 0),
        (6, 0) => (9, 0),
        (6, 1) => (9, 1),
        (6, 2) => (9, 2),
        (6, 3) => (10, 0),
        (6, 4) => (10, 1),
        (6, 5) => (10, 2),
        (7, minor @ 0..=8) => (11, minor),
        (8, minor @ 0..=5) => (12, minor),
        (8, 6) => (12, 7),
        (8, 7) => (12, 8),
        (8, 8) => (12, 9),
        (9, 0) => (13, 0),
        (9, 1) => (13, 1),
        _ => return None,
    };
    Some(driver)
}

/// Checks that `bytes` is UTF-8 text without NULs, and strips a BOM and trailing NULs.
fn decode_text(bytes: &[u8]) -> Result<&str, PtxError> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let bytes = bytes.get(..end).unwrap_or_default();
    if let Some(pos) = bytes.iter().position(|&b| b == 0) {
        return Err(PtxError::NotText(format!(
            "NUL byte at offset {pos} (expected plain text)"
        )));
    }
    std::str::from_utf8(bytes).map_err(|e| {
        PtxError::NotText(format!(
            "invalid UTF-8 at byte offset {} (expected UTF-8 text)",
            e.valid_up_to()
        ))
    })
}

/// Reads the comma-separated token list after `.target`; returns the architecture and the
/// other tokens, or `None` if no well-formed `sm_*` / `compute_*` token is present.
fn parse_target_list<'a, I>(
    tokens: &mut Peekable<I>,
) -> Result<Option<(String, Vec<String>)>, PtxError>
where
    I: Iterator<Item = Result<Token<'a>, PtxError>>,
{
    let mut arch: Option<String> = None;
    let mut modifiers = Vec::new();
    loop {
        let Some(tok) = next_token(tokens)? else {
            return Ok(None);
        };
        if !tok.text.chars().all(is_ident_char) {
            return Ok(None);
        }
        if tok.text.starts_with("sm_") || tok.text.starts_with("compute_") {
            if !is_arch_name(tok.text) {
                return Ok(None);
            }
            if arch.is_none() {
                arch = Some(tok.text.to_owned());
            } else {
                modifiers.push(tok.text.to_owned());
            }
        } else {
            modifiers.push(tok.text.to_owned());
        }
        match tokens.peek() {
            Some(Ok(next)) if next.text == "," => {
                tokens.next();
            }
            _ => break,
        }
    }
    Ok(arch.map(|a| (a, modifiers)))
}

/// Reads the optional `( .param ..., .param ... )` list that follows an `.entry` name.
/// Stops at the closing `)` or at the first token that cannot be part of the list; never
/// reads past another `.entry`, so the work over a whole file stays linear.
fn parse_params<'a, I>(
    tokens: &mut Peekable<I>,
    entry_line: usize,
) -> Result<Vec<PtxParam>, PtxParamError>
where
    I: Iterator<Item = Result<Token<'a>, PtxError>>,
{
    let mut params = Vec::new();
    match tokens.peek() {
        Some(Ok(t)) if t.text == "(" => {
            tokens.next();
        }
        // `.entry name { ... }` and `.entry name .maxntid ...`: no parameters.
        _ => return Ok(params),
    }
    let mut last_line = entry_line;
    if let Some(Ok(t)) = tokens.peek()
        && t.text == ")"
    {
        return Ok(params);
    }
    loop {
        params.push(parse_param(tokens, &mut last_line)?);
        let tok = param_token(tokens, &mut last_line, "`,` or `)` after a parameter")?;
        match tok.text {
            "," => {}
            ")" => return Ok(params),
            other => {
                return Err(PtxParamError {
                    line: tok.line,
                    message: format!("expected `,` or `)` after a parameter, found `{other}`"),
                });
            }
        }
    }
}

/// Reads one `.param [.align N] .TYPE [.ptr [.SPACE] [.align N]] NAME[[N]]...`.
fn parse_param<'a, I>(
    tokens: &mut Peekable<I>,
    last_line: &mut usize,
) -> Result<PtxParam, PtxParamError>
where
    I: Iterator<Item = Result<Token<'a>, PtxError>>,
{
    let start = param_token(tokens, last_line, "`.param`")?;
    if start.text != ".param" {
        return Err(PtxParamError {
            line: start.line,
            message: format!("expected `.param`, found `{}`", start.text),
        });
    }
    let mut lanes: u64 = 1;
    let mut vector = "";
    let mut ty: Option<(&str, Option<u64>)> = None;
    let name = loop {
        let tok = param_token(tokens, last_line, "a parameter type and name")?;
        let unexpected = |what: &str| PtxParamError {
            line: tok.line,
            message: format!("{what} `{}` in a `.param` declaration", tok.text),
        };
        match tok.text {
            ".align" => {
                let n = param_token(tokens, last_line, "an alignment after `.align`")?;
                if parse_decimal(n.text).is_none() {
                    return Err(PtxParamError {
                        line: n.line,
                        message: format!(
                            "expected an alignment after `.align`, found `{}`",
                            n.text
                        ),
                    });
                }
            }
            ".ptr" | ".global" | ".const" | ".local" | ".shared" => {}
            ".v2" | ".v4" | ".v8" if vector.is_empty() && ty.is_none() => {
                vector = tok.text;
                lanes = match tok.text {
                    ".v2" => 2,
                    ".v4" => 4,
                    _ => 8,
                };
            }
            text if text.starts_with('.') => {
                let size = match scalar_size(text) {
                    Some(size) => Some(size),
                    None if matches!(text, ".texref" | ".samplerref" | ".surfref") => None,
                    None => return Err(unexpected("unknown type or qualifier")),
                };
                if ty.is_some() {
                    return Err(unexpected("second type"));
                }
                ty = Some((text, size));
            }
            text if is_identifier(text) => break text,
            _ => return Err(unexpected("unexpected")),
        }
    };
    let Some((base, element_size)) = ty else {
        return Err(PtxParamError {
            line: start.line,
            message: format!("parameter `{name}` has no type"),
        });
    };
    let mut ty = if vector.is_empty() {
        base.to_owned()
    } else {
        format!("{vector} {base}")
    };
    let mut size = element_size.and_then(|s| s.checked_mul(lanes));
    while let Some(Ok(t)) = tokens.peek()
        && t.text == "["
    {
        tokens.next();
        let tok = param_token(tokens, last_line, "an array length or `]`")?;
        let length = if tok.text == "]" {
            size = None;
            ty.push_str("[]");
            continue;
        } else {
            parse_decimal(tok.text).ok_or_else(|| PtxParamError {
                line: tok.line,
                message: format!("expected an array length, found `{}`", tok.text),
            })?
        };
        let close = param_token(tokens, last_line, "`]`")?;
        if close.text != "]" {
            return Err(PtxParamError {
                line: close.line,
                message: format!(
                    "expected `]` after the array length, found `{}`",
                    close.text
                ),
            });
        }
        ty.push_str(&format!("[{length}]"));
        size = size.and_then(|s| s.checked_mul(u64::from(length)));
    }
    Ok(PtxParam {
        name: name.to_owned(),
        ty,
        size,
        line: start.line,
    })
}

/// The next token of a parameter list; the end of the input or a tokenizer error is an
/// error naming what was `expected`.
fn param_token<'a, I>(
    tokens: &mut I,
    last_line: &mut usize,
    expected: &str,
) -> Result<Token<'a>, PtxParamError>
where
    I: Iterator<Item = Result<Token<'a>, PtxError>>,
{
    match tokens.next() {
        Some(Ok(tok)) => {
            *last_line = tok.line;
            Ok(tok)
        }
        Some(Err(e)) => Err(PtxParamError {
            line: *last_line,
            message: format!("expected {expected}: {e}"),
        }),
        None => Err(PtxParamError {
            line: *last_line,
            message: format!("expected {expected}, found the end of the file"),
        }),
    }
}

/// Bytes of one value of a PTX fundamental type (`.u32` -> 4); `None` for anything else.
fn scalar_size(ty: &str) -> Option<u64> {
    Some(match ty {
        ".b8" | ".s8" | ".u8" => 1,
        ".b16" | ".s16" | ".u16" | ".f16" | ".bf16" | ".e4m3x2" | ".e5m2x2" => 2,
        ".b32" | ".s32" | ".u32" | ".f32" | ".f16x2" | ".bf16x2" | ".tf32" => 4,
        ".b64" | ".s64" | ".u64" | ".f64" => 8,
        ".b128" => 16,
        _ => return None,
    })
}

/// Takes the next token, passing on a tokenizer error.
fn next_token<'a, I>(tokens: &mut I) -> Result<Option<Token<'a>>, PtxError>
where
    I: Iterator<Item = Result<Token<'a>, PtxError>>,
{
    tokens.next().transpose()
}

/// `sm_80`, `sm_90a`, `sm_100f`, `compute_90a`: a prefix, digits, and at most one letter.
fn is_arch_name(s: &str) -> bool {
    let rest = s
        .strip_prefix("sm_")
        .or_else(|| s.strip_prefix("compute_"))
        .unwrap_or("");
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let suffix = rest.get(digits..).unwrap_or("");
    (1..=4).contains(&digits)
        && (suffix.is_empty()
            || (suffix.len() == 1 && suffix.bytes().all(|b| b.is_ascii_lowercase())))
}

/// Parses `MAJOR.MINOR` with decimal digits only.
fn parse_version(s: &str) -> Option<(u32, u32)> {
    let (major, minor) = s.split_once('.')?;
    Some((parse_decimal(major)?, parse_decimal(minor)?))
}

/// Parses a non-empty run of ASCII digits that fits in a `u32`.
fn parse_decimal(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// PTX identifier: `[a-zA-Z][a-zA-Z0-9_$]*` or `[_$%][a-zA-Z0-9_$]+`.
fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    let rest = chars.as_str();
    let follow_ok = rest
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
    if first.is_ascii_alphabetic() {
        follow_ok
    } else if matches!(first, '_' | '$' | '%') {
        follow_ok && !rest.is_empty()
    } else {
        false
    }
}

/// Characters that make up one token (identifiers, directives, numbers, dotted opcodes).
fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '$' | '%' | '.')
}

/// The trimmed line around byte `offset`, shortened to [`MAX_EXCERPT_CHARS`].
fn line_excerpt(text: &str, offset: usize) -> String {
    let before = text.get(..offset).unwrap_or("");
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text.get(start..).unwrap_or("");
    let line = line.split('\n').next().unwrap_or("").trim();
    let mut out: String = line.chars().take(MAX_EXCERPT_CHARS).collect();
    if line.chars().nth(MAX_EXCERPT_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// One token of comment-free PTX.
#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    text: &'a str,
    /// 1-based line number.
    line: usize,
    /// Byte offset in the source.
    offset: usize,
}

/// Streams the tokens of PTX source, skipping whitespace, comments and quoted strings.
#[derive(Clone)]
struct Tokens<'a> {
    src: &'a str,
    pos: usize,
    line: usize,
}

impl<'a> Tokens<'a> {
    fn new(src: &'a str) -> Self {
        Self {
            src,
            pos: 0,
            line: 1,
        }
    }

    fn rest(&self) -> &'a str {
        self.src.get(self.pos..).unwrap_or("")
    }

    /// Advances past `len` bytes of `skipped`, counting its newlines.
    fn skip(&mut self, skipped: &str) {
        self.line += skipped.bytes().filter(|&b| b == b'\n').count();
        self.pos += skipped.len();
    }
}

impl<'a> Iterator for Tokens<'a> {
    type Item = Result<Token<'a>, PtxError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let rest = self.rest();
            let c = rest.chars().next()?;
            if c.is_whitespace() {
                let n = rest
                    .find(|c: char| !c.is_whitespace())
                    .unwrap_or(rest.len());
                self.skip(rest.get(..n).unwrap_or(""));
            } else if rest.starts_with("//") {
                let n = rest.find('\n').unwrap_or(rest.len());
                self.skip(rest.get(..n).unwrap_or(""));
            } else if let Some(body) = rest.strip_prefix("/*") {
                let Some(end) = body.find("*/") else {
                    let line = self.line;
                    self.pos = self.src.len();
                    return Some(Err(PtxError::UnterminatedComment { line }));
                };
                self.skip(rest.get(..end + 4).unwrap_or(rest));
            } else if let Some(body) = rest.strip_prefix('"') {
                // A string ends at the closing quote (backslash escapes honoured) or at the
                // end of the line, whichever comes first.
                let mut n = body.len();
                let mut escaped = false;
                for (i, ch) in body.char_indices() {
                    if ch == '\n' {
                        n = i;
                        break;
                    }
                    if escaped {
                        escaped = false;
                    } else if ch == '\\' {
                        escaped = true;
                    } else if ch == '"' {
                        n = i + 1;
                        break;
                    }
                }
                self.skip(rest.get(..n + 1).unwrap_or(rest));
            } else {
                let n = if is_ident_char(c) {
                    rest.find(|c: char| !is_ident_char(c)).unwrap_or(rest.len())
                } else {
                    c.len_utf8()
                };
                let token = Token {
                    text: rest.get(..n).unwrap_or(""),
                    line: self.line,
                    offset: self.pos,
                };
                self.pos += n;
                return Some(Ok(token));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REAL_PTX: &[u8] = include_bytes!("../../tests/fixtures/silu_sm80.ptx");

    #[test]
    fn real_clang_ptx() {
        let info = parse_ptx(REAL_PTX).expect("fixture parses");
        assert_eq!(info.version, (7, 0));
        assert_eq!(info.target, "sm_80");
        assert!(info.target_modifiers.is_empty());
        assert_eq!(info.address_size, Some(64));
        assert_eq!(info.entries, vec!["silu_f32".to_owned()]);
        assert_eq!(info.version_line, 5);
        assert_eq!(info.target_line, 6);
        assert_eq!(min_driver_for_ptx(info.version), Some((11, 0)));
    }

    /// `(name, size)` of each parameter of kernel `name`.
    fn sizes(info: &PtxInfo, name: &str) -> Vec<(String, Option<u64>)> {
        info.kernel(name)
            .expect("kernel exists")
            .params
            .as_ref()
            .expect("params read")
            .iter()
            .map(|p| (p.name.clone(), p.size))
            .collect()
    }

    #[test]
    fn real_clang_ptx_params() {
        let info = parse_ptx(REAL_PTX).unwrap();
        assert_eq!(info.kernels.len(), 1);
        let kernel = &info.kernels[0];
        assert_eq!((kernel.name.as_str(), kernel.line), ("silu_f32", 11));
        let params = kernel.params.as_ref().unwrap();
        let tys: Vec<_> = params.iter().map(|p| p.ty.as_str()).collect();
        assert_eq!(tys, [".u64", ".u64", ".u32"]);
        assert_eq!(
            params.iter().map(|p| p.size).collect::<Vec<_>>(),
            [Some(8), Some(8), Some(4)]
        );
        assert_eq!(params[2].name, "silu_f32_param_2");
        assert_eq!(params[2].line, 14);
    }

    #[test]
    fn reference_kernels_params() {
        // The committed clang-15 PTX of the reference kernels: every entry has a readable
        // list of 64-bit pointers followed by 32-bit scalars.
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../kernels");
        for (kernel, count) in [
            ("activation", 4),
            ("rmsnorm", 6),
            ("rotary", 10),
            ("softmax", 4),
        ] {
            let path = format!("{root}/{kernel}/build/cuda/{kernel}_sm80.ptx");
            let Ok(bytes) = std::fs::read(&path) else {
                continue; // packaged crate without the repo's kernels
            };
            let info = parse_ptx(&bytes).unwrap();
            assert!(!info.kernels.is_empty(), "{path}");
            assert_eq!(info.kernels.len(), info.entries.len());
            for entry in &info.kernels {
                let params = entry.params.as_ref().unwrap();
                assert_eq!(params.len(), count, "{path}: {}", entry.name);
                assert!(
                    params.iter().all(|p| matches!(p.size, Some(4 | 8))),
                    "{path}: {params:?}"
                );
            }
        }
    }

    #[test]
    fn param_forms() {
        let src = ".version 8.0\n.target sm_90\n.address_size 64\n\
            .visible .entry a(\n  .param .u64 .ptr .global .align 16 a_out, // out\n\
              /* in */ .param .u64 .ptr .align 8 a_in,\n  .param .align 8 .b8 a_pair[8],\n\
              .param .f32 a_alpha , .param .s64 a_big, .param .b32 a_bits,\n\
              .param .align 4 .b8 a_grid[2][6], .param .v2 .f32 a_v\n)\n.maxntid 256, 1, 1\n{ ret; }\n\
            .weak .entry b()\n{ ret; }\n\
            .entry c\n{ ret; }\n\
            .entry d .maxntid 32 { ret; }\n\
            .entry e(.param .texref e_tex, .param .b8 e_open[]) { ret; }\n";
        let info = parse_ptx(src.as_bytes()).unwrap();
        assert_eq!(info.entries, ["a", "b", "c", "d", "e"]);
        let a = sizes(&info, "a");
        let expect: Vec<(String, Option<u64>)> = [
            ("a_out", 8),
            ("a_in", 8),
            ("a_pair", 8),
            ("a_alpha", 4),
            ("a_big", 8),
            ("a_bits", 4),
            ("a_grid", 12),
            ("a_v", 8),
        ]
        .into_iter()
        .map(|(n, s)| (n.to_owned(), Some(s)))
        .collect();
        assert_eq!(a, expect);
        let tys: Vec<_> = info.kernel("a").unwrap().params.as_ref().unwrap()[6..]
            .iter()
            .map(|p| p.ty.clone())
            .collect();
        assert_eq!(tys, [".b8[2][6]", ".v2 .f32"]);
        assert!(sizes(&info, "b").is_empty());
        assert!(sizes(&info, "c").is_empty());
        assert!(sizes(&info, "d").is_empty());
        assert_eq!(
            sizes(&info, "e"),
            [("e_tex".to_owned(), None), ("e_open".to_owned(), None)]
        );
    }

    #[test]
    fn malformed_param_lists_are_reported_per_entry() {
        // A list that cannot be read leaves the rest of the file, and the other entries,
        // as they were.
        let src = ".version 7.0\n.target sm_80\n\
            .entry no_type(.param n) {}\n\
            .entry no_comma(.param .u32 a .param .u32 b) {}\n\
            .entry odd_type(.param .quux q) {}\n\
            .entry two_types(.param .u32 .f32 q) {}\n\
            .entry bad_len(.param .b8 q[x]) {}\n\
            .entry good(.param .u64 p) {}\n\
            .entry open(\n.param .u64 p,\n";
        let info = parse_ptx(src.as_bytes()).unwrap();
        assert_eq!(
            info.entries,
            [
                "no_type",
                "no_comma",
                "odd_type",
                "two_types",
                "bad_len",
                "good",
                "open"
            ]
        );
        let error = |name: &str| info.kernel(name).unwrap().params.clone().unwrap_err();
        assert_eq!(error("no_type").message, "parameter `n` has no type");
        assert_eq!(error("no_type").line, 3);
        assert_eq!(
            error("no_comma").message,
            "expected `,` or `)` after a parameter, found `.param`"
        );
        assert_eq!(
            error("odd_type").message,
            "unknown type or qualifier `.quux` in a `.param` declaration"
        );
        assert_eq!(
            error("two_types").message,
            "second type `.f32` in a `.param` declaration"
        );
        assert_eq!(
            error("bad_len").message,
            "expected an array length, found `x`"
        );
        assert_eq!(sizes(&info, "good"), [("p".to_owned(), Some(8))]);
        let open = error("open");
        assert_eq!(open.line, 10);
        assert_eq!(
            open.to_string(),
            "line 10: expected `.param`, found the end of the file"
        );
    }

    #[test]
    fn param_list_running_into_the_next_entry_stops_there() {
        let src =
            ".version 7.0\n.target sm_80\n.entry a(.param .u32 x,\n.entry b(.param .u32 y) {}\n";
        let info = parse_ptx(src.as_bytes()).unwrap();
        assert_eq!(info.entries, ["a", "b"]);
        assert!(info.kernel("a").unwrap().params.is_err());
        assert_eq!(sizes(&info, "b"), [("y".to_owned(), Some(4))]);
    }

    #[test]
    fn comments_and_strings_are_skipped() {
        let src = "// .version 1.0\n/* .target sm_20\n.entry fake( */\n.version 8.3 // trailing\n\
                   .target sm_90a, texmode_independent,debug\n.file 1 \"/src/*odd*/dir/k.cu\"\n\
                   .visible .entry real_one(\n) {}\n// .entry commented(\n.weak .entry $w2() {}\n\
                   .entry\n  %third (\n";
        let info = parse_ptx(src.as_bytes()).unwrap();
        assert_eq!(info.version, (8, 3));
        assert_eq!(info.version_line, 4);
        assert_eq!(info.target, "sm_90a");
        assert_eq!(info.target_line, 5);
        assert_eq!(info.target_modifiers, vec!["texmode_independent", "debug"]);
        assert_eq!(info.address_size, None);
        assert_eq!(info.entries, vec!["real_one", "$w2", "%third"]);
    }

    #[test]
    fn modifiers_before_arch_and_compute_target() {
        let info = parse_ptx(b".version 7.8\n.target texmode_independent, compute_80\n").unwrap();
        assert_eq!(info.target, "compute_80");
        assert_eq!(info.target_modifiers, vec!["texmode_independent"]);
    }

    #[test]
    fn missing_and_bad_directives() {
        assert_eq!(parse_ptx(b".target sm_80\n"), Err(PtxError::MissingVersion));
        assert_eq!(parse_ptx(b".version 7.0\n"), Err(PtxError::MissingTarget));
        assert_eq!(parse_ptx(b""), Err(PtxError::MissingVersion));
        assert!(matches!(
            parse_ptx(b"\n.version seven\n.target sm_80"),
            Err(PtxError::BadVersion { line: 2, .. })
        ));
        assert!(matches!(
            parse_ptx(b".version 99999999999.0\n.target sm_80"),
            Err(PtxError::BadVersion { line: 1, .. })
        ));
        assert!(matches!(
            parse_ptx(b".version 7.0\n.target texmode_independent\n"),
            Err(PtxError::BadTarget { line: 2, .. })
        ));
        assert!(matches!(
            parse_ptx(b".version 7.0\n.target sm_eighty\n"),
            Err(PtxError::BadTarget { line: 2, .. })
        ));
        assert!(matches!(
            parse_ptx(b".version 7.0\n.target sm_80\n.address_size big\n"),
            Err(PtxError::BadAddressSize { line: 3, .. })
        ));
        assert!(matches!(
            parse_ptx(b".version 7.0\n.target sm_80\n.entry (\n"),
            Err(PtxError::BadEntry { line: 3, .. })
        ));
        assert!(matches!(
            parse_ptx(b".version 7.0\n.target sm_80\n.entry"),
            Err(PtxError::BadEntry { line: 3, .. })
        ));
        assert_eq!(
            parse_ptx(b".version 7.0\n\n/* .target sm_80\n"),
            Err(PtxError::UnterminatedComment { line: 3 })
        );
    }

    #[test]
    fn error_messages_say_what_was_expected() {
        let err = parse_ptx(b".version 7.0\n.target bogus\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 2: bad `.target` directive `.target bogus` (expected an architecture such as `sm_80`, `sm_90a` or `compute_80`)"
        );
    }

    #[test]
    fn not_text() {
        let err = parse_ptx(b".version 7.0\n\xff\xfe.target sm_80").unwrap_err();
        assert!(matches!(err, PtxError::NotText(_)));
        assert_eq!(
            err.to_string(),
            "is not a PTX text file: invalid UTF-8 at byte offset 13 (expected UTF-8 text)"
        );
        let err = parse_ptx(b".version 7.0\0.target sm_80").unwrap_err();
        assert!(err.to_string().contains("NUL byte at offset 12"), "{err}");
        // A BOM and trailing NULs (PTX embedded as a C string) are fine.
        let info = parse_ptx(b"\xef\xbb\xbf.version 7.0\n.target sm_80\n\0\0").unwrap();
        assert_eq!(info.target, "sm_80");
    }

    #[test]
    fn driver_table() {
        assert_eq!(min_driver_for_ptx((6, 0)), Some((9, 0)));
        assert_eq!(min_driver_for_ptx((6, 3)), Some((10, 0)));
        assert_eq!(min_driver_for_ptx((6, 5)), Some((10, 2)));
        assert_eq!(min_driver_for_ptx((7, 8)), Some((11, 8)));
        assert_eq!(min_driver_for_ptx((7, 9)), None);
        assert_eq!(min_driver_for_ptx((8, 5)), Some((12, 5)));
        assert_eq!(min_driver_for_ptx((8, 6)), Some((12, 7)));
        assert_eq!(min_driver_for_ptx((8, 8)), Some((12, 9)));
        assert_eq!(min_driver_for_ptx((9, 0)), Some((13, 0)));
        assert_eq!(min_driver_for_ptx((5, 1)), None);
        assert_eq!(min_driver_for_ptx((99, 0)), None);
    }

    #[test]
    fn large_inputs_are_fast() {
        // 100 MB of random bytes: rejected by the UTF-8 check in linear time.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let random: Vec<u8> = (0..100_000_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 32) as u8
            })
            .collect();
        let start = std::time::Instant::now();
        assert!(parse_ptx(&random).is_err());
        // ~40 MB of valid text with many entries and comments.
        let mut text = String::from(".version 8.0\n.target sm_90\n");
        while text.len() < 40_000_000 {
            text.push_str(
                "/* c */ .visible .entry k_0123456789( ) { ld.param.u32 %r1, [p]; } // x\n",
            );
        }
        let info = parse_ptx(text.as_bytes()).unwrap();
        assert!(info.entries.len() > 100_000);
        assert_eq!(info.kernels.len(), info.entries.len());
        assert!(start.elapsed() < std::time::Duration::from_secs(20));
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..2048)) {
            let _ = parse_ptx(&bytes);
        }

        #[test]
        fn never_panics_on_ptxish_text(s in "[ \\n\\t./*\"\\\\,a-z_0-9%$()]{0,512}") {
            let _ = parse_ptx(s.as_bytes());
            let mut with_header = String::from(".version 7.0\n.target sm_80\n");
            with_header.push_str(&s);
            let _ = parse_ptx(with_header.as_bytes());
        }
    }
}
