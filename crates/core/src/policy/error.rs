//! Load errors: every problem in a policy file, each naming file, line, column and key.
//! Owns the offset-to-line translation; not the checks themselves (`raw.rs`, `compile.rs`).

use std::fmt;
use std::path::PathBuf;

/// Why a policy could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read at all.
    #[error("{}: cannot read the policy file: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file was read but is not a valid policy; every problem found, in file order.
    #[error("{}", render(.0))]
    Invalid(Vec<Problem>),
}

impl PolicyError {
    /// The problems of an invalid policy (empty for a read error).
    pub fn problems(&self) -> &[Problem] {
        match self {
            PolicyError::Read { .. } => &[],
            PolicyError::Invalid(problems) => problems,
        }
    }
}

/// One problem in a policy file. Displays as `file:line:column: key: message`, the shape editors
/// and CI annotations understand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub origin: String,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    /// Dotted path of the key, e.g. `tools[1].name` or `methods."prompts/get"`; empty for
    /// syntax errors, where TOML cannot say which key it was reading.
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.origin, self.line, self.column)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

fn render(problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(Problem::to_string).collect();
    lines.join("\n")
}

/// Problems found while loading, located by byte offset until the end, when they are sorted into
/// file order and translated to lines.
#[derive(Debug, Default)]
pub(super) struct Problems {
    found: Vec<(usize, String, String)>,
}

impl Problems {
    pub(super) fn push(&mut self, at: usize, key: impl Into<String>, message: impl Into<String>) {
        self.found.push((at, key.into(), message.into()));
    }

    pub(super) fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    pub(super) fn into_error(mut self, origin: &str, source: &str) -> PolicyError {
        // Stable sort: problems at one offset keep the order the checks found them in.
        self.found.sort_by_key(|(at, _, _)| *at);
        let problems = self
            .found
            .into_iter()
            .map(|(at, key, message)| {
                let (line, column) = line_col(source, at);
                Problem {
                    origin: origin.to_owned(),
                    line,
                    column,
                    key,
                    message,
                }
            })
            .collect();
        PolicyError::Invalid(problems)
    }
}

/// 1-based line of a byte offset (clamped to the source).
pub(super) fn line_of(source: &str, at: usize) -> usize {
    line_col(source, at).0
}

pub(super) use crate::diagnostics::line_col;

#[cfg(test)]
mod tests {
    use super::line_col;

    #[test]
    fn offsets_translate_to_one_based_lines_and_character_columns() {
        let source = "a = 1\nbé = 2\n";
        assert_eq!(line_col(source, 0), (1, 1));
        assert_eq!(line_col(source, 6), (2, 1));
        // `=` follows a two-byte character: column counts characters, not bytes.
        assert_eq!(line_col(source, 10), (2, 4));
        assert_eq!(line_col(source, 999), (3, 1));
    }
}
