//! What a PTX file declares: `.version`, `.target`, `.address_size` and its
//! `.entry` kernels.
//!
//! `check` compares these with the manifest (targets, `min_driver`, symbols)
//! and the CUDA backend uses the version to explain why a driver refuses a
//! file. Only directives are read; instructions are the driver's business.

/// The directives of a PTX module that matter for loading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PtxInfo {
    /// PTX ISA version, `.version 7.0` → `(7, 0)`.
    pub version: (u32, u32),
    /// The architecture in `.target`, e.g. `sm_80`.
    pub target: String,
    /// Other `.target` tokens, e.g. `texmode_independent`, `debug`.
    pub target_modifiers: Vec<String>,
    /// `.address_size`, when given.
    pub address_size: Option<u32>,
    /// Every `.entry` (kernel) in file order.
    pub entries: Vec<String>,
}

/// Why bytes are not a PTX module kernelhub can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PtxError {
    /// Not UTF-8, or contains NUL bytes.
    #[error("not a PTX text file (invalid UTF-8 or NUL bytes near byte {0})")]
    NotText(usize),
    /// No `.version` directive before the first `.target`.
    #[error("no `.version` directive: PTX files start with `.version X.Y`")]
    MissingVersion,
    /// No `.target` directive.
    #[error("no `.target` directive after `.version`")]
    MissingTarget,
    /// A directive that does not parse.
    #[error("line {line}: cannot read `{text}`")]
    Malformed {
        /// 1-based line.
        line: usize,
        /// The directive as written (shortened).
        text: String,
    },
}

/// Reads the directives of a PTX module.
pub fn parse_ptx(bytes: &[u8]) -> Result<PtxInfo, PtxError> {
    if let Some(nul) = bytes.iter().position(|b| *b == 0) {
        return Err(PtxError::NotText(nul));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| PtxError::NotText(e.valid_up_to()))?;
    let code = strip_comments(text);
    let mut version = None;
    let mut target = None;
    let mut address_size = None;
    let mut entries = Vec::new();
    for (index, line) in code.lines().enumerate() {
        let mut tokens = line
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|t| !t.is_empty())
            .peekable();
        let malformed = || PtxError::Malformed {
            line: index + 1,
            text: line.trim().chars().take(60).collect(),
        };
        while let Some(token) = tokens.next() {
            match token {
                ".version" if version.is_none() => {
                    let value = tokens.next().ok_or_else(malformed)?;
                    let (major, minor) = value.split_once('.').ok_or_else(malformed)?;
                    version = Some((
                        major.parse().map_err(|_| malformed())?,
                        minor.parse().map_err(|_| malformed())?,
                    ));
                }
                ".target" if target.is_none() => {
                    let values: Vec<String> = tokens.by_ref().map(str::to_string).collect();
                    let (arch, rest): (Vec<_>, Vec<_>) = values
                        .into_iter()
                        .partition(|v| v.starts_with("sm_") || v.starts_with("compute_"));
                    let arch = arch.into_iter().next().ok_or_else(malformed)?;
                    target = Some((arch, rest));
                }
                ".address_size" if address_size.is_none() => {
                    address_size = Some(
                        tokens
                            .next()
                            .and_then(|v| v.parse().ok())
                            .ok_or_else(malformed)?,
                    );
                }
                ".entry" => {
                    let name = tokens.next().ok_or_else(malformed)?;
                    let name = name.split('(').next().unwrap_or_default();
                    if name.is_empty() {
                        return Err(malformed());
                    }
                    entries.push(name.to_string());
                }
                _ => {}
            }
        }
    }
    let version = version.ok_or(PtxError::MissingVersion)?;
    let (target, target_modifiers) = target.ok_or(PtxError::MissingTarget)?;
    Ok(PtxInfo {
        version,
        target,
        target_modifiers,
        address_size,
        entries,
    })
}

/// Replaces `//` and `/* */` comments with spaces, keeping line breaks so
/// line numbers stay true. String literals do not occur in PTX directives.
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('/', Some('/')) => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            ('/', Some('*')) => {
                chars.next();
                let mut previous = ' ';
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                    }
                    if previous == '*' && c == '/' {
                        break;
                    }
                    previous = c;
                }
                out.push(' ');
            }
            _ => out.push(c),
        }
    }
    out
}

/// The oldest CUDA driver (`major`, `minor`) that can JIT-compile PTX of ISA
/// `version`, from NVIDIA's PTX ISA release history. `None` when unknown.
pub fn min_driver_for_ptx(version: (u32, u32)) -> Option<(u32, u32)> {
    Some(match version {
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
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PTX: &str = "//\n// Generated by LLVM NVPTX Back-End\n//\n\n.version 7.0\n.target sm_80, texmode_independent\n.address_size 64\n\n\t// .globl\tsilu_f32\n/* .entry commented_out( */\n.visible .entry silu_f32(\n\t.param .u64 silu_f32_param_0\n)\n{\n\tret;\n}\n.entry plain\n{\n}\n";

    #[test]
    fn reads_directives_and_skips_comments() {
        let info = parse_ptx(PTX.as_bytes()).unwrap();
        assert_eq!(info.version, (7, 0));
        assert_eq!(info.target, "sm_80");
        assert_eq!(info.target_modifiers, vec!["texmode_independent"]);
        assert_eq!(info.address_size, Some(64));
        assert_eq!(info.entries, vec!["silu_f32", "plain"]);
    }

    #[test]
    fn errors_say_what_is_missing() {
        assert_eq!(parse_ptx(b".target sm_80\n"), Err(PtxError::MissingVersion));
        assert_eq!(parse_ptx(b".version 7.0\n"), Err(PtxError::MissingTarget));
        assert!(matches!(
            parse_ptx(b".version seven\n.target sm_80"),
            Err(PtxError::Malformed { line: 1, .. })
        ));
        assert_eq!(parse_ptx(b"\xff\xfe"), Err(PtxError::NotText(0)));
        assert_eq!(parse_ptx(b".version 7.0\0"), Err(PtxError::NotText(12)));
    }

    #[test]
    fn driver_table() {
        assert_eq!(min_driver_for_ptx((7, 0)), Some((11, 0)));
        assert_eq!(min_driver_for_ptx((8, 4)), Some((12, 4)));
        assert_eq!(min_driver_for_ptx((8, 7)), Some((12, 8)));
        assert_eq!(min_driver_for_ptx((42, 0)), None);
    }
}
