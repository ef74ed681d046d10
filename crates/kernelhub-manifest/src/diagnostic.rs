//! Problems found in a file, located by byte span, and how they are shown.
//!
//! Every check in this crate reports through [`Diagnostic`] instead of
//! returning on the first error, so a kernel author sees every problem in one
//! run. Rendering follows rustc and cargo (`error[code]: …`, ` --> path:line:col`,
//! the source line with a caret underline, `= hint: …`) and has a JSON form for
//! machines.

use std::fmt::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth fixing; fails `check` only with `--deny-warnings`.
    Warning,
    /// The file cannot be published or used as it is.
    Error,
}

/// One problem, with where it is and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// A stable kebab-case name for this kind of problem (`unknown-field`, …).
    pub code: &'static str,
    /// What is wrong, one sentence, user values in backticks.
    pub message: String,
    /// The file it is in.
    pub file: PathBuf,
    /// Byte range in that file, when the problem has a place in its text.
    pub span: Option<Range<usize>>,
    /// A short note printed under the underlined text.
    pub label: Option<String>,
    /// One line saying what to do.
    pub hint: Option<String>,
}

impl Diagnostic {
    /// An error in `file` at `span`.
    pub fn error(
        code: &'static str,
        file: &Path,
        span: Option<Range<usize>>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            severity: Severity::Error,
            code,
            message: message.into(),
            file: file.to_path_buf(),
            span,
            label: None,
            hint: None,
        }
    }

    /// A warning in `file` at `span`.
    pub fn warning(
        code: &'static str,
        file: &Path,
        span: Option<Range<usize>>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(code, file, span, message)
        }
    }

    /// Adds the line that says what to do.
    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Adds a note under the underlined text.
    #[must_use]
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// 1-based line and column (in characters) of the span's start in `source`.
    pub fn line_col(&self, source: &str) -> Option<(usize, usize)> {
        let span = self.span.as_ref()?;
        Some(line_col(source, span.start))
    }

    /// Renders the problem the way rustc does, with the source snippet when
    /// `source` (the file's text) is given.
    pub fn render(&self, source: Option<&str>) -> String {
        let mut out = String::new();
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let _ = writeln!(out, "{severity}[{}]: {}", self.code, self.message);
        let file = self.file.display();
        match (source, self.span.clone()) {
            (Some(source), Some(span)) => {
                // A span is byte offsets; one that ends (or starts) inside a
                // character must still render, not panic.
                let mut start = span.start.min(source.len());
                while !source.is_char_boundary(start) {
                    start -= 1;
                }
                let (line_no, col) = line_col(source, start);
                let gutter = " ".repeat(line_no.to_string().len());
                let _ = writeln!(out, "{gutter}--> {file}:{line_no}:{col}");
                let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
                let line_end = source[start..]
                    .find('\n')
                    .map_or(source.len(), |i| start + i);
                let line = source[line_start..line_end].trim_end_matches('\r');
                let before = source[line_start..start].chars().count();
                let mut end = span.end.clamp(start, line_end);
                while !source.is_char_boundary(end) {
                    end += 1;
                }
                let width = source[start..end].chars().count().max(1);
                let label = self
                    .label
                    .as_deref()
                    .map_or(String::new(), |l| format!(" {l}"));
                let _ = writeln!(out, "{gutter} |");
                let _ = writeln!(out, "{line_no} | {}", visible(line));
                let _ = writeln!(
                    out,
                    "{gutter} | {}{}{label}",
                    " ".repeat(before),
                    "^".repeat(width)
                );
                if let Some(hint) = &self.hint {
                    let _ = writeln!(out, "{gutter} = hint: {hint}");
                }
            }
            _ => {
                let _ = writeln!(out, " --> {file}");
                if let Some(label) = &self.label {
                    let _ = writeln!(out, "  = note: {label}");
                }
                if let Some(hint) = &self.hint {
                    let _ = writeln!(out, "  = hint: {hint}");
                }
            }
        }
        out
    }

    /// The problem as a JSON object for `--format json`.
    pub fn to_json(&self, source: Option<&str>) -> serde_json::Value {
        let (line, column) = source
            .and_then(|s| self.line_col(s))
            .map_or((None, None), |(l, c)| (Some(l), Some(c)));
        serde_json::json!({
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "file": self.file,
            "line": line,
            "column": column,
            "span": self.span.as_ref().map(|s| [s.start, s.end]),
            "label": self.label,
            "hint": self.hint,
        })
    }
}

/// 1-based line and character column of byte `offset` in `source`.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

/// Replaces control characters so a snippet never moves the terminal cursor.
fn visible(line: &str) -> String {
    line.chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_snippet_with_caret_under_span() {
        let source = "schema = 1\nname = \"x\"\n";
        let d = Diagnostic::error(
            "unknown-field",
            Path::new("k.toml"),
            Some(11..15),
            "Unknown field `name`",
        )
        .with_label("not a field here")
        .with_hint("remove it");
        let text = d.render(Some(source));
        assert_eq!(
            text,
            "error[unknown-field]: Unknown field `name`\n --> k.toml:2:1\n  |\n2 | name = \"x\"\n  | ^^^^ not a field here\n  = hint: remove it\n"
        );
    }

    #[test]
    fn line_col_counts_characters_not_bytes() {
        assert_eq!(line_col("é = 1\nab", 8), (2, 2));
        assert_eq!(line_col("éa", 1), (1, 1));
    }

    #[test]
    fn spans_inside_a_character_render() {
        // Found by fuzzing: a one-byte span on a three-byte character.
        let source = "x = \"r\u{feff}\"\n";
        for span in [6..7, 7..8, 6..9, 7..7] {
            let d = Diagnostic::error("e", Path::new("k.toml"), Some(span.clone()), "m");
            let text = d.render(Some(source));
            assert!(text.contains("--> k.toml:1:"), "{span:?}: {text}");
        }
    }
}
