//! Reads the header directives (`.version`, `.target`, `.address_size`) and the kernel
//! (`.entry`) names of a PTX text file, skipping comments, without compiling anything.
//! It exists so that prebuilt PTX can be checked against the architecture and driver a
//! manifest claims before a GPU ever sees it; any input gives a result or an error.

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
                    Some(n) if is_identifier(n.text) => entries.push(n.text.to_owned()),
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
