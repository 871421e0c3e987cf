//! Diagnostics: errors that name the file, line and column they come from, and what to do.
//!
//! Everything the loaders find before connecting is collected as [`Diagnostic`]s so that
//! `provision validate` can list every error at once instead of stopping at the first.

use std::fmt;
use std::path::{Path, PathBuf};

/// A position in a source file, 1-based.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl Location {
    pub fn new(file: impl Into<PathBuf>, line: usize, column: usize) -> Self {
        Location { file: file.into(), line, column }
    }

    /// The start of a file, for errors that are about the whole file.
    pub fn file(file: impl Into<PathBuf>) -> Self {
        Location::new(file, 1, 1)
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// Where a text the user wrote (a YAML scalar) lies in its file: where it starts and, when
/// the file holds it character for character, where each of its lines begins, so that a
/// position inside the text (a template's failing expression) can be pointed at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub start: Location,
    /// (line, column) of each line of the text; empty when the file holds it otherwise
    /// (escaped, folded), and then every position inside it is its start.
    pub lines: Vec<(usize, usize)>,
}

impl Span {
    /// A text known only by where it starts.
    pub fn at(start: Location) -> Span {
        Span { start, lines: Vec::new() }
    }

    /// The location of byte `offset` of `text`, the text this span holds.
    pub fn offset(&self, text: &str, offset: usize) -> Location {
        let Some(before) = text.get(..offset) else { return self.start.clone() };
        let line = before.matches('\n').count();
        let column = before.rsplit('\n').next().unwrap_or("").chars().count();
        match self.lines.get(line) {
            Some(&(l, c)) => Location::new(&self.start.file, l, c + column),
            None => self.start.clone(),
        }
    }
}

/// One error found in the user's input, with where it is and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub message: String,
    pub location: Option<Location>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn new(message: impl Into<String>) -> Self {
        Diagnostic { message: message.into(), location: None, help: None }
    }

    pub fn at(mut self, location: Location) -> Self {
        self.location = Some(location);
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Suggests the closest of `candidates` to `wrong` as a fix, if one is close enough.
    pub fn did_you_mean<'a>(self, wrong: &str, candidates: impl IntoIterator<Item = &'a str>) -> Self {
        match closest(wrong, candidates) {
            Some(c) => self.help(format!("did you mean `{c}`?")),
            None => self,
        }
    }
}

/// The candidate most similar to `wrong`, if any is similar enough to be a likely typo.
pub fn closest<'a>(wrong: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(wrong, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            // A message may quote a value from an inventory: its control characters are
            // shown, never sent to the terminal.
            Some(loc) => write!(f, "{loc}: error: {}", crate::terminal::printable(&self.message))?,
            None => write!(f, "error: {}", crate::terminal::printable(&self.message))?,
        }
        if let Some(loc) = &self.location {
            if let Some(line) = source_line(&loc.file, loc.line) {
                write!(f, "\n  {:>4} | {}\n       | {}^", loc.line, crate::terminal::printable(&line), " ".repeat(loc.column.saturating_sub(1)))?;
            }
        }
        if let Some(help) = &self.help {
            write!(f, "\n  help: {}", crate::terminal::printable(help))?;
        }
        Ok(())
    }
}

fn source_line(file: &Path, line: usize) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().nth(line.checked_sub(1)?).map(|l| l.to_string())
}

/// Every error found by a loader, in the order found.
#[derive(Debug, Default, Clone)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Ok(()) when no error was found, else all of them.
    pub fn into_result(self) -> Result<(), Diagnostics> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        Diagnostics(vec![d])
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}
impl std::error::Error for Diagnostic {}
