//! Turns a spanned TOML tree into typed values while collecting every problem.
//!
//! serde's derive stops at the first missing field or wrong type. Authors fixing
//! a manifest in CI want all of them at once, so the formats are read by hand
//! from `toml`'s spanned tree ([`DeTable`]) through these small helpers, which
//! record a located [`Diagnostic`] and carry on.

use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeArray, DeTable, DeValue};

use crate::diagnostic::Diagnostic;

/// Largest file any of the formats may be; bigger ones are refused unread.
pub const MAX_FILE_SIZE: u64 = 16 * 1024 * 1024;

/// A spanned value of the parsed TOML tree.
pub(crate) type Node<'i> = Spanned<DeValue<'i>>;

/// The most diagnostics one file reports; past it one `too-many-problems`
/// diagnostic (an error if any of them is) counts the rest. Rendering a
/// diagnostic scans the source up to its span, so an unbounded list made
/// rendering a hostile (up to [`MAX_FILE_SIZE`]) file quadratic: minutes for
/// a few megabytes.
pub(crate) const MAX_DIAGNOSTICS: usize = 200;

/// Where diagnostics go while one file is read.
pub(crate) struct Ctx {
    pub file: PathBuf,
    pub diagnostics: Vec<Diagnostic>,
    /// Unknown fields are errors (`check`) or warnings (plain loading).
    pub strict: bool,
    /// Errors found, reported or not.
    errors: usize,
    /// Diagnostics past [`MAX_DIAGNOSTICS`], counted and dropped.
    dropped: usize,
    /// Where a dropped diagnostic's hint goes.
    scratch: Diagnostic,
}

impl Ctx {
    pub fn new(file: &Path, strict: bool) -> Self {
        Self {
            file: file.to_path_buf(),
            diagnostics: Vec::new(),
            strict,
            errors: 0,
            dropped: 0,
            scratch: Diagnostic::warning("dropped", file, None, String::new()),
        }
    }

    pub fn error(
        &mut self,
        code: &'static str,
        span: Range<usize>,
        message: impl Into<String>,
    ) -> &mut Diagnostic {
        self.errors += 1;
        self.record(Diagnostic::error(code, &self.file, Some(span), message))
    }

    pub fn warning(
        &mut self,
        code: &'static str,
        span: Range<usize>,
        message: impl Into<String>,
    ) -> &mut Diagnostic {
        self.record(Diagnostic::warning(code, &self.file, Some(span), message))
    }

    fn record(&mut self, diagnostic: Diagnostic) -> &mut Diagnostic {
        if self.diagnostics.len() < MAX_DIAGNOSTICS {
            self.diagnostics.push(diagnostic);
            return self.diagnostics.last_mut().expect("just pushed");
        }
        self.dropped += 1;
        let note = format!(
            "{} more problems in this file are not reported; fix the first {MAX_DIAGNOSTICS} and check again",
            self.dropped
        );
        if self.diagnostics.len() == MAX_DIAGNOSTICS {
            self.diagnostics.push(Diagnostic::warning(
                "too-many-problems",
                &self.file,
                None,
                String::new(),
            ));
        }
        let summary = &mut self.diagnostics[MAX_DIAGNOSTICS];
        summary.message = note;
        // An error among the dropped ones keeps the file's errors visible.
        if diagnostic.severity == crate::Severity::Error {
            summary.severity = crate::Severity::Error;
        }
        self.scratch = diagnostic;
        &mut self.scratch
    }

    pub fn has_errors(&self) -> bool {
        self.errors > 0
            || self
                .diagnostics
                .iter()
                .any(|d| d.severity == crate::Severity::Error)
    }

    /// Parses `source` into a spanned tree, reporting every syntax error
    /// (duplicate keys included). `None` when the text is not TOML at all.
    pub fn parse<'i>(&mut self, source: &'i str) -> Option<Spanned<DeTable<'i>>> {
        let (root, errors) = DeTable::parse_recoverable(source);
        for error in &errors {
            let span = error.span().unwrap_or(0..0);
            let message = error.message().trim_end().to_string();
            self.error("syntax", span, format!("Invalid TOML: {message}"))
                .hint = Some("fix the TOML syntax at this place".into());
        }
        errors.is_empty().then_some(root)
    }
}

/// Replaces one hint on a diagnostic just recorded.
pub(crate) trait Hint {
    fn hint(&mut self, hint: impl Into<String>);
}

impl Hint for Diagnostic {
    fn hint(&mut self, hint: impl Into<String>) {
        self.hint = Some(hint.into());
    }
}

/// The fields of one TOML table, remembering which were read so the rest
/// can be reported as unknown.
pub(crate) struct Fields<'t, 'i> {
    entries: Vec<(&'t Spanned<std::borrow::Cow<'i, str>>, &'t Node<'i>)>,
    used: Vec<bool>,
    span: Range<usize>,
    /// How the table is named in messages: "`[kernel]`", "artifact 2", …
    pub what: String,
}

impl<'t, 'i> Fields<'t, 'i> {
    pub fn new(table: &'t DeTable<'i>, span: Range<usize>, what: impl Into<String>) -> Self {
        let entries: Vec<_> = table.iter().collect();
        Self {
            used: vec![false; entries.len()],
            entries,
            span,
            what: what.into(),
        }
    }

    /// The table's own span, for problems with the table as a whole.
    pub fn span(&self) -> Range<usize> {
        self.span.clone()
    }

    /// The value of `key`, if present.
    pub fn get(&mut self, key: &str) -> Option<&'t Node<'i>> {
        let index = self.entries.iter().position(|(k, _)| k.get_ref() == key)?;
        self.used[index] = true;
        Some(self.entries[index].1)
    }

    /// The value of `key`, reporting it missing otherwise.
    pub fn require(&mut self, ctx: &mut Ctx, key: &str, example: &str) -> Option<&'t Node<'i>> {
        let value = self.get(key);
        if value.is_none() {
            let what = self.what.clone();
            ctx.error(
                "missing-field",
                self.span.clone(),
                format!("Missing field `{key}` in {what}"),
            )
            .hint(format!("add `{key} = {example}`"));
        }
        value
    }

    /// Reports every field not read, as an error or (when loading) a warning.
    pub fn finish(self, ctx: &mut Ctx, known: &[&str]) {
        for ((key, _), used) in self.entries.iter().zip(&self.used) {
            if *used {
                continue;
            }
            let name = key.get_ref().as_ref();
            let message = format!("Unknown field `{name}` in {}", self.what);
            let diagnostic = if ctx.strict {
                ctx.error("unknown-field", key.span(), message)
            } else {
                ctx.warning("unknown-field", key.span(), message)
            };
            match closest(name, known) {
                Some(close) => diagnostic.hint(format!("did you mean `{close}`?")),
                None => diagnostic.hint(format!("the fields here are: {}", known.join(", "))),
            }
        }
    }
}

/// The known name nearest to a misspelt one, when it is near enough.
pub(crate) fn closest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(name, k), *k))
        .filter(|(d, k)| *d <= (k.len() / 3).max(1))
        .min()
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

fn type_name(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

fn wrong_type(ctx: &mut Ctx, node: &Node<'_>, key: &str, expected: &str) {
    ctx.error(
        "wrong-type",
        node.span(),
        format!(
            "Field `{key}` must be {expected}, found {}",
            type_name(node.get_ref())
        ),
    );
}

/// A string value.
pub(crate) fn string(ctx: &mut Ctx, node: &Node<'_>, key: &str) -> Option<Spanned<String>> {
    match node.get_ref() {
        DeValue::String(s) => Some(Spanned::new(node.span(), s.to_string())),
        _ => {
            wrong_type(ctx, node, key, "a string");
            None
        }
    }
}

/// A boolean value.
pub(crate) fn boolean(ctx: &mut Ctx, node: &Node<'_>, key: &str) -> Option<bool> {
    match node.get_ref() {
        DeValue::Boolean(b) => Some(*b),
        _ => {
            wrong_type(ctx, node, key, "`true` or `false`");
            None
        }
    }
}

/// The integer a TOML integer literal denotes, if it fits an `i64`.
pub(crate) fn integer_value(value: &DeValue<'_>) -> Option<i64> {
    let DeValue::Integer(integer) = value else {
        return None;
    };
    let digits: String = integer.as_str().chars().filter(|c| *c != '_').collect();
    let radix = integer.radix();
    let (negative, digits) = match digits.strip_prefix('-') {
        Some(rest) => (true, rest.to_string()),
        None => (false, digits.trim_start_matches('+').to_string()),
    };
    let digits = match radix {
        16 => digits.trim_start_matches("0x").to_string(),
        8 => digits.trim_start_matches("0o").to_string(),
        2 => digits.trim_start_matches("0b").to_string(),
        _ => digits,
    };
    let magnitude = i128::from_str_radix(&digits, radix).ok()?;
    i64::try_from(if negative { -magnitude } else { magnitude }).ok()
}

/// A non-negative integer value.
pub(crate) fn unsigned(ctx: &mut Ctx, node: &Node<'_>, key: &str) -> Option<Spanned<u64>> {
    match integer_value(node.get_ref()) {
        Some(value) if value >= 0 => Some(Spanned::new(node.span(), value.unsigned_abs())),
        Some(_) => {
            ctx.error(
                "wrong-type",
                node.span(),
                format!("Field `{key}` must not be negative"),
            );
            None
        }
        None if node.get_ref().is_integer() => {
            ctx.error(
                "wrong-type",
                node.span(),
                format!("Field `{key}` is too large"),
            );
            None
        }
        None => {
            wrong_type(ctx, node, key, "an integer");
            None
        }
    }
}

/// An array value.
pub(crate) fn array<'t, 'i>(
    ctx: &mut Ctx,
    node: &'t Node<'i>,
    key: &str,
) -> Option<&'t DeArray<'i>> {
    match node.get_ref() {
        DeValue::Array(a) => Some(a),
        _ => {
            wrong_type(ctx, node, key, "an array");
            None
        }
    }
}

/// A table value, ready to be read field by field.
pub(crate) fn table<'t, 'i>(
    ctx: &mut Ctx,
    node: &'t Node<'i>,
    key: &str,
    what: impl Into<String>,
) -> Option<Fields<'t, 'i>> {
    match node.get_ref() {
        DeValue::Table(t) => Some(Fields::new(t, node.span(), what)),
        _ => {
            wrong_type(ctx, node, key, "a table");
            None
        }
    }
}

/// An array of strings, each converted by `convert` (which reports its own problems).
pub(crate) fn string_list<T>(
    ctx: &mut Ctx,
    node: &Node<'_>,
    key: &str,
    mut convert: impl FnMut(&mut Ctx, Spanned<String>) -> Option<T>,
) -> Vec<T> {
    let Some(items) = array(ctx, node, key) else {
        return Vec::new();
    };
    let mut values = Vec::with_capacity(items.len());
    for item in items.iter() {
        if let Some(value) = string(ctx, item, key).and_then(|s| convert(ctx, s)) {
            values.push(value);
        }
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_literals_in_every_radix() {
        for (text, value) in [
            ("1_000", 1000),
            ("0x1F", 31),
            ("0o17", 15),
            ("0b101", 5),
            ("-3", -3),
            ("+4", 4),
        ] {
            let doc = format!("v = {text}");
            let root = DeTable::parse(&doc).unwrap();
            let node = root.get_ref().iter().next().unwrap().1;
            assert_eq!(integer_value(node.get_ref()), Some(value), "{text}");
        }
    }

    #[test]
    fn suggestions_only_for_near_misses() {
        assert_eq!(closest("sha265", &["sha256", "size"]), Some("sha256"));
        assert_eq!(closest("colour", &["sha256", "size"]), None);
    }
}
