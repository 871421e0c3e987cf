//! YAML loading with positions: every value read from a file can be traced back to its
//! `file:line:column`, and every mapping is checked for unknown keys.
//!
//! serde_yaml's `Value` carries no positions, so [`Doc::locate`] finds a key path in the
//! block-style source text, fast, as every task's location is looked up for every host. Where
//! that search cannot follow the path (a flow mapping `{mode: rwx}`), and for the value
//! nodes errors point at ([`Doc::value_span`]), [`node`] asks serde_yaml's parser itself.

mod node;

use crate::error::{Diagnostic, Location, Span};
use serde_yaml::{Mapping, Value};
use std::path::{Path, PathBuf};

/// One step of a path into a YAML document.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A path into a YAML document, such as `hosts.web1.roles[0]`.
pub type YPath = Vec<Seg>;

/// Extends `path` by one key.
pub fn key(path: &[Seg], k: &str) -> YPath {
    let mut p = path.to_vec();
    p.push(Seg::Key(k.to_string()));
    p
}

/// Extends `path` by one index.
pub fn index(path: &[Seg], i: usize) -> YPath {
    let mut p = path.to_vec();
    p.push(Seg::Index(i));
    p
}

/// A parsed YAML file and its source text.
#[derive(Debug, Clone)]
pub struct Doc {
    pub path: PathBuf,
    pub text: String,
    pub value: Value,
    located: LocateCache,
}

/// Positions already searched for, by path and whether the value's (else the key's). Every
/// host lowers the same tasks of a role, so each path is searched in the text once, not once
/// per host.
#[derive(Default)]
struct LocateCache(std::sync::Mutex<std::collections::HashMap<(YPath, node::Target), (usize, usize)>>);

impl Clone for LocateCache {
    fn clone(&self) -> Self {
        LocateCache::default()
    }
}

impl std::fmt::Debug for LocateCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocateCache")
    }
}

impl Doc {
    /// Reads and parses `path`, applying `<<` merge keys (serde_yaml would drop them silently).
    pub fn load(path: &Path) -> Result<Doc, Diagnostic> {
        // No line to point at: the file itself is the problem.
        let text = std::fs::read_to_string(path).map_err(|e| {
            let d = Diagnostic::new(format!("cannot read `{}`: {e}", path.display()));
            match e.kind() {
                std::io::ErrorKind::NotFound => d.help("check the path (inventories are usually inventories/NAME.yml, run from the project's directory)"),
                _ => d,
            }
        })?;
        Doc::parse(path, text)
    }

    /// Parses `text` as if read from `path`.
    pub fn parse(path: &Path, text: String) -> Result<Doc, Diagnostic> {
        let mut value: Value = serde_yaml::from_str(&text).map_err(|e| {
            let message = strip_location(&e.to_string());
            let loc = e.location().map(|l| Location::new(path, l.line(), l.column()));
            // serde_yaml places a duplicate key at the start of its mapping: point at the
            // duplicate itself, and say where the first one is.
            let at = e.location().map(|l| l.index());
            if let (Some(l), Some(dup)) = (&loc, duplicate_key(&message)) {
                // In the block style the keys start their lines; in a flow mapping (`{a: 1,
                // a: 2}`) they follow its `{` and commas.
                let found = duplicate_lines(&text, l.line, l.column, dup)
                    .map(|(first, second)| (first, (second, l.column)))
                    .or_else(|| at.and_then(|i| node::duplicate_in_flow(&text, i, dup)));
                if let Some((first, (line, column))) = found {
                    return Diagnostic::new(format!("invalid YAML: {message}"))
                        .at(Location::new(path, line, column))
                        .help(format!("`{dup}` is already set on line {first}: keep one of the two"));
                }
            }
            let d = Diagnostic::new(format!("invalid YAML: {message}"))
                .help("fix the YAML syntax at this position (indentation, a missing `:` or an unclosed quote)");
            match loc {
                Some(l) => d.at(l),
                None => d.at(Location::file(path)),
            }
        })?;
        value.apply_merge().map_err(|e| {
            Diagnostic::new(format!("invalid merge key (`<<`): {e}")).at(Location::file(path))
        })?;
        if value.is_null() {
            value = Value::Mapping(Mapping::new());
        }
        Ok(Doc { path: path.to_path_buf(), text, value, located: LocateCache::default() })
    }

    /// The location of the entry at `path`: its key (a sequence item's start), as exact as the
    /// source allows. For errors about the entry itself: an unknown key, a missing argument.
    pub fn locate(&self, path: &[Seg]) -> Location {
        let (line, column) = self.cached(path, node::Target::Key, || match follow(&self.text, path) {
            (at, true) => at,
            // A flow mapping or a quoted key: the parser knows; else the nearest enclosing key.
            (at, false) => node::find(&self.text, path, node::Target::Key).unwrap_or(at),
        });
        Location::new(&self.path, line, column)
    }

    /// Where the value at `path` is written: its own start (not its key's) and, when the file
    /// holds it verbatim, each of its lines. For errors about a value: a wrong type, a
    /// template that fails. Falls back to the entry's location when the text does not hold
    /// the node (a key a `<<` merge brought in).
    pub fn value_span(&self, path: &[Seg]) -> Span {
        let (line, column) = self.cached(path, node::Target::Value, || {
            node::find(&self.text, path, node::Target::Value).unwrap_or_else(|| {
                let at = self.locate(path);
                (at.line, at.column)
            })
        });
        let lines = match value_at(&self.value, path) {
            Some(Value::String(s)) => node::verbatim_lines(&self.text, line, column, s),
            _ => Vec::new(),
        };
        Span { start: Location::new(&self.path, line, column), lines }
    }

    /// Looks `path` up in the cache, or searches with `search` and remembers the answer.
    fn cached(&self, path: &[Seg], target: node::Target, search: impl FnOnce() -> (usize, usize)) -> (usize, usize) {
        let k = (path.to_vec(), target);
        if let Some(found) = self.located.0.lock().ok().and_then(|c| c.get(&k).copied()) {
            return found;
        }
        let found = search();
        if let Ok(mut c) = self.located.0.lock() {
            c.insert(k, found);
        }
        found
    }

    /// A diagnostic located at the entry at `path` (see [`Doc::locate`]).
    pub fn error(&self, path: &[Seg], message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(message).at(self.locate(path))
    }

    /// A diagnostic located at the value at `path` (see [`Doc::value_span`]).
    pub fn value_error(&self, path: &[Seg], message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(message).at(self.value_span(path).start)
    }
}

/// The key of serde_yaml's "duplicate entry with key \"K\"" message.
fn duplicate_key(message: &str) -> Option<&str> {
    let rest = message.split("duplicate entry with key \"").nth(1)?;
    rest.split('"').next().filter(|k| !k.is_empty())
}

/// The lines (1-based) of the first and second `key:` of the block mapping that starts at
/// `line`:`column` (its first key), if the block style lets us find them.
fn duplicate_lines(text: &str, line: usize, column: usize, key: &str) -> Option<(usize, usize)> {
    let indent = column.checked_sub(1)?;
    let mut found = Vec::new();
    for (n, l) in text.lines().enumerate().skip(line.checked_sub(1)?) {
        let Some(start) = content_start(l) else { continue };
        if start < indent {
            break; // left the mapping
        }
        let rest = &l[start..];
        let is_key = [key.to_string(), format!("\"{key}\""), format!("'{key}'")]
            .iter()
            .any(|k| rest.strip_prefix(k.as_str()).is_some_and(|after| after.trim_start().starts_with(':')));
        if start == indent && is_key {
            found.push(n + 1);
            if found.len() == 2 {
                return Some((found[0], found[1]));
            }
        }
    }
    None
}

fn strip_location(msg: &str) -> String {
    // serde_yaml appends " at line X column Y"; we print the location ourselves.
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// The value at `path` inside `v`.
fn value_at<'v>(v: &'v Value, path: &[Seg]) -> Option<&'v Value> {
    path.iter().try_fold(v, |v, seg| match seg {
        Seg::Key(k) => v.get(k.as_str()),
        Seg::Index(i) => v.get(*i),
    })
}

/// Finds the (line, column) of the node at `path` in block-style YAML, 1-based.
#[cfg(test)]
fn locate_in(text: &str, path: &[Seg]) -> (usize, usize) {
    follow(text, path).0
}

/// The (line, column) of the node at `path` in block-style YAML, 1-based, and whether the
/// search followed the whole path (else the position is the last key it found).
fn follow(text: &str, path: &[Seg]) -> ((usize, usize), bool) {
    let lines: Vec<&str> = text.lines().collect();
    let mut at_line = 0usize; // line of the current node
    let mut at_col = 0usize;
    let mut parent_indent: isize = -1;
    let mut search_from = 0usize;
    for seg in path {
        let found = match seg {
            Seg::Key(k) => find_key(&lines, search_from, parent_indent, k),
            Seg::Index(i) => find_item(&lines, search_from, parent_indent, *i),
        };
        match found {
            Some((line, col, indent)) => {
                at_line = line;
                at_col = col;
                parent_indent = indent as isize;
                // A sequence item's first key sits on the same line as its dash.
                search_from = if matches!(seg, Seg::Index(_)) { line } else { line + 1 };
            }
            None => return ((at_line + 1, at_col + 1), false),
        }
    }
    ((at_line + 1, at_col + 1), true)
}

fn content_start(line: &str) -> Option<usize> {
    let trimmed = line.trim_start();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        None
    } else {
        Some(line.len() - trimmed.len())
    }
}

fn find_key(lines: &[&str], from: usize, parent_indent: isize, key: &str) -> Option<(usize, usize, usize)> {
    let mut block_indent: Option<usize> = None;
    for (n, line) in lines.iter().enumerate().skip(from) {
        let Some(mut col) = content_start(line) else { continue };
        let mut rest = &line[col..];
        // `- key:` opens a mapping inside a sequence item.
        while let Some(r) = rest.strip_prefix("- ") {
            col += 2 + (r.len() - r.trim_start().len());
            rest = r.trim_start();
        }
        if (col as isize) <= parent_indent && n > from {
            return None; // left the enclosing block
        }
        if (col as isize) <= parent_indent {
            continue;
        }
        let indent = *block_indent.get_or_insert(col);
        if col != indent {
            continue;
        }
        for quoted in [key.to_string(), format!("\"{key}\""), format!("'{key}'")] {
            if let Some(after) = rest.strip_prefix(&quoted) {
                if after.trim_start().starts_with(':') {
                    return Some((n, col, col));
                }
            }
        }
    }
    None
}

fn find_item(lines: &[&str], from: usize, parent_indent: isize, index: usize) -> Option<(usize, usize, usize)> {
    let mut seen = 0usize;
    let mut item_indent: Option<usize> = None;
    for (n, line) in lines.iter().enumerate().skip(from) {
        let Some(col) = content_start(line) else { continue };
        let rest = &line[col..];
        if (col as isize) < parent_indent || ((col as isize) == parent_indent && !rest.starts_with('-')) {
            if n > from {
                return None;
            }
            continue;
        }
        if !(rest == "-" || rest.starts_with("- ")) {
            continue;
        }
        let indent = *item_indent.get_or_insert(col);
        if col != indent {
            continue;
        }
        if seen == index {
            let value_col = col + 2 + rest.get(2..).map(|r| r.len() - r.trim_start().len()).unwrap_or(0);
            return Some((n, value_col.min(line.len()), col));
        }
        seen += 1;
    }
    None
}

/// A type name for error messages.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing (null)",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// Reads a mapping's keys one by one and reports the keys nobody asked for.
pub struct MapReader<'a> {
    pub doc: &'a Doc,
    pub path: YPath,
    map: &'a Mapping,
    known: Vec<&'static str>,
}

impl<'a> MapReader<'a> {
    /// A reader for the mapping at `path`, or an error if `value` is not a mapping.
    pub fn new(doc: &'a Doc, path: YPath, value: &'a Value, what: &str) -> Result<Self, Diagnostic> {
        match value {
            Value::Mapping(map) => Ok(MapReader { doc, path, map, known: Vec::new() }),
            other => Err(doc
                .value_error(&path, format!("{what} must be a mapping, found {}", type_name(other)))
                .help("write it as `key: value` lines")),
        }
    }

    /// The raw value of `k`, if present; marks `k` as known.
    pub fn get(&mut self, k: &'static str) -> Option<&'a Value> {
        self.known.push(k);
        self.map.get(k)
    }

    /// The path of key `k`, for error messages.
    pub fn path_of(&self, k: &str) -> YPath {
        key(&self.path, k)
    }

    /// An optional string (numbers and booleans are accepted and converted).
    pub fn opt_string(&mut self, k: &'static str) -> Result<Option<String>, Diagnostic> {
        match self.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => scalar_string(v)
                .map(Some)
                .ok_or_else(|| self.doc.value_error(&self.path_of(k), format!("`{k}` must be a string, found {}", type_name(v)))),
        }
    }

    /// A required string.
    pub fn string(&mut self, k: &'static str, what: &str) -> Result<String, Diagnostic> {
        self.opt_string(k)?.ok_or_else(|| {
            self.doc.error(&self.path, format!("{what} has no `{k}`")).help(format!("add `{k}: ...`"))
        })
    }

    /// An optional boolean; accepts YAML 1.1 spellings (`yes`, `no`, `on`, `off`) as Ansible users write them.
    pub fn opt_bool(&mut self, k: &'static str) -> Result<Option<bool>, Diagnostic> {
        match self.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => lenient_bool(v).map(Some).ok_or_else(|| {
                self.doc
                    .value_error(&self.path_of(k), format!("`{k}` must be true or false, found {}", type_name(v)))
            }),
        }
    }

    /// An optional list of strings; a single string is a list of one.
    pub fn opt_strings(&mut self, k: &'static str) -> Result<Option<Vec<String>>, Diagnostic> {
        match self.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => string_list(v).map(Some).ok_or_else(|| {
                self.doc
                    .value_error(&self.path_of(k), format!("`{k}` must be a list of strings, found {}", type_name(v)))
                    .help(format!("write `{k}: [a, b]`"))
            }),
        }
    }

    /// Errors for every key that no `get` asked for, with a "did you mean".
    pub fn finish(self, what: &str) -> Result<(), Diagnostic> {
        for (k, _) in self.map {
            let name = match k {
                Value::String(s) => s.clone(),
                other => format!("{other:?}"),
            };
            if !self.known.iter().any(|known| *known == name) {
                let mut d = self
                    .doc
                    .error(&key(&self.path, &name), format!("unknown key `{name}` in {what}"))
                    .did_you_mean(&name, self.known.iter().copied());
                if d.help.is_none() {
                    d = d.help(format!("known keys: {}", self.known.join(", ")));
                }
                return Err(d);
            }
        }
        Ok(())
    }
}

/// A scalar as a string: strings, numbers and booleans.
pub fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A boolean, accepting the YAML 1.1 words that Ansible users write.
pub fn lenient_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "yes" | "on" | "true" | "y" => Some(true),
            "no" | "off" | "false" | "n" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// A list of strings; a single scalar is a list of one.
pub fn string_list(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::Sequence(items) => items.iter().map(scalar_string).collect(),
        other => scalar_string(other).map(|s| vec![s]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "stage: staging\nhosts:\n  web1:\n    address: 1.2.3.4\n    roles: [nginx]\n  app1:\n    address: 1.2.3.5\n    rolez:\n      - puma\n      - sidekiq\n";

    #[test]
    fn locates_nested_keys_and_items() {
        let p = vec![Seg::Key("hosts".into()), Seg::Key("app1".into()), Seg::Key("rolez".into())];
        assert_eq!(locate_in(SRC, &p), (8, 5));
        let p = vec![Seg::Key("hosts".into()), Seg::Key("app1".into()), Seg::Key("rolez".into()), Seg::Index(1)];
        assert_eq!(locate_in(SRC, &p), (10, 9));
        let p = vec![Seg::Key("hosts".into()), Seg::Key("web1".into()), Seg::Key("address".into())];
        assert_eq!(locate_in(SRC, &p), (4, 5));
    }

    #[test]
    fn locates_keys_of_sequence_items() {
        let src = "- name: a\n  package: [x]\n- name: b\n  file:\n    path: /x\n    mdoe: 1\n";
        assert_eq!(locate_in(src, &[Seg::Index(1)]), (3, 3));
        assert_eq!(locate_in(src, &[Seg::Index(1), Seg::Key("file".into()), Seg::Key("mdoe".into())]), (6, 5));
    }

    #[test]
    fn unknown_key_suggests_the_closest() {
        let doc = Doc::parse(Path::new("inv.yml"), SRC.to_string()).unwrap();
        let host = &doc.value["hosts"]["app1"];
        let path = vec![Seg::Key("hosts".into()), Seg::Key("app1".into())];
        let mut r = MapReader::new(&doc, path, host, "host `app1`").unwrap();
        r.get("address");
        r.get("roles");
        let err = r.finish("host `app1`").unwrap_err();
        assert_eq!(err.help.as_deref(), Some("did you mean `roles`?"));
        assert_eq!(err.location.unwrap().line, 8);
    }

    #[test]
    fn merge_keys_are_applied() {
        let doc = Doc::parse(Path::new("x.yml"), "a: &d {x: 1}\nb:\n  <<: *d\n  y: 2\n".into()).unwrap();
        assert_eq!(doc.value["b"]["x"], Value::from(1));
    }

    #[test]
    fn syntax_errors_have_a_line() {
        let err = Doc::parse(Path::new("x.yml"), "a: [1, 2\nb: 3\n".into()).unwrap_err();
        assert!(err.location.unwrap().line >= 1);
    }
}
