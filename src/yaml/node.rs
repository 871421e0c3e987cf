//! Where a node starts, in any YAML style: a value in a flow mapping (`{mode: rwx}`), a
//! quoted scalar, a key. The text search in `yaml.rs` knows only the block style, and only
//! keys.
//!
//! serde_yaml's `Value` has no positions, but its deserializer attaches the position of the
//! node being read to an error that a visitor raises there. So a visitor that walks down a
//! path and fails at the node the path names gets that node's line and column back, from
//! the same parser that read the file. Each question parses the file once: it is asked when
//! an error is reported, or when the text search could not follow the path.

use super::Seg;
use serde::de::{self, DeserializeSeed, Deserializer, EnumAccess, IgnoredAny, MapAccess, SeqAccess, VariantAccess, Visitor};
use std::fmt;

/// Which node of a path ending in a key: the key itself or its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    Key,
    Value,
}

/// The message of the error that carries the position out; no parse error holds it.
const FOUND: &str = "\u{0}provision: node found";

/// The (line, column) of the node at `path`, 1-based, column in characters; `None` when the
/// text does not hold it (a key that a `<<` merge brought in, or no such path).
pub fn find(text: &str, path: &[Seg], target: Target) -> Option<(usize, usize)> {
    let de = serde_yaml::Deserializer::from_str(text);
    match (Seek { path, target }).deserialize(de) {
        // serde_yaml prefixes the message with the path it was at.
        Err(e) if e.to_string().contains(FOUND) => e.location().map(|l| (l.line(), l.column())),
        _ => None,
    }
}

fn found<E: de::Error>() -> E {
    E::custom(FOUND)
}

/// Reads a node and fails at the end of `path`.
#[derive(Clone, Copy)]
struct Seek<'a> {
    path: &'a [Seg],
    target: Target,
}

impl<'de> DeserializeSeed<'de> for Seek<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl Seek<'_> {
    /// A scalar: the node when the path ends here; a path going further names nothing.
    fn leaf<E: de::Error>(self) -> Result<(), E> {
        if self.path.is_empty() {
            Err(found())
        } else {
            Ok(())
        }
    }
}

impl<'de> Visitor<'de> for Seek<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML node")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.leaf()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.leaf()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.leaf()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.leaf()
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.leaf()
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.leaf()
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.leaf()
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((first, rest)) = self.path.split_first() else { return Err(found()) };
        let wanted = match first {
            Seg::Index(i) => Some(*i),
            Seg::Key(_) => None,
        };
        // Every item is read, also after the wanted one: the parser checks the sequence's end.
        let mut i = 0usize;
        loop {
            let more = if wanted == Some(i) {
                seq.next_element_seed(Seek { path: rest, target: self.target })?.is_some()
            } else {
                seq.next_element::<IgnoredAny>()?.is_some()
            };
            if !more {
                return Ok(());
            }
            i += 1;
        }
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((first, rest)) = self.path.split_first() else { return Err(found()) };
        let Seg::Key(wanted) = first else {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(());
        };
        let stop_at_key = rest.is_empty() && self.target == Target::Key;
        while let Some(matched) = map.next_key_seed(KeySeek { wanted, stop: stop_at_key })? {
            if matched {
                map.next_value_seed(Seek { path: rest, target: self.target })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        // A tagged node (`!secret x`): the node itself, or nothing inside it.
        if self.path.is_empty() {
            return Err(found());
        }
        let (IgnoredAny, content) = data.variant::<IgnoredAny>()?;
        content.newtype_variant::<IgnoredAny>().map(|_| ())
    }
}

/// Reads a key: whether it is the wanted one, failing there when the key is the target.
struct KeySeek<'a> {
    wanted: &'a str,
    stop: bool,
}

impl<'de> DeserializeSeed<'de> for KeySeek<'_> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeySeek<'_> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping key")
    }
    fn visit_str<E: de::Error>(self, k: &str) -> Result<bool, E> {
        match k == self.wanted {
            true if self.stop => Err(found()),
            matched => Ok(matched),
        }
    }
    // Paths name string keys only (see `render_value`'s walk); other scalar keys never match.
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
}

/// Where each line of the scalar `value`, written at `line`:`column`, begins in `text`, when
/// the file holds it character for character: a plain or quoted scalar on one line without
/// escapes, or a literal block (`|`). Empty otherwise (escapes, folding): a position inside
/// the value cannot then be mapped, and errors point at the value's start.
pub fn verbatim_lines(text: &str, line: usize, column: usize, value: &str) -> Vec<(usize, usize)> {
    let Some(src) = line.checked_sub(1).and_then(|n| text.lines().nth(n)) else { return Vec::new() };
    let Some((at, _)) = src.char_indices().nth(column.saturating_sub(1)) else { return Vec::new() };
    let rest = &src[at..];
    let one_line = !value.contains('\n') && !value.contains('\r');
    let quoted = |q: char| {
        // Without the quote and the backslash, the text between the quotes is the value itself.
        let inner = rest.strip_prefix(q)?;
        let clean = one_line && !value.contains(q) && !(q == '"' && value.contains('\\'));
        (clean && inner.strip_prefix(value)?.starts_with(q)).then(|| vec![(line, column + 1)])
    };
    match rest.chars().next() {
        Some('"') => quoted('"').unwrap_or_default(),
        Some('\'') => quoted('\'').unwrap_or_default(),
        Some('|') => literal_block(text, line, value).unwrap_or_default(),
        Some('>') => Vec::new(),
        Some(_) if one_line && rest.starts_with(value) => vec![(line, column)],
        _ => Vec::new(),
    }
}

/// The lines of a literal block scalar whose `|` is on `line`, if the file holds `value`'s
/// lines as they are, each after the block's indentation.
fn literal_block(text: &str, line: usize, value: &str) -> Option<Vec<(usize, usize)>> {
    let body: Vec<&str> = text.lines().skip(line).collect();
    let indent = body.iter().find(|l| !l.trim().is_empty()).map(|l| l.len() - l.trim_start_matches(' ').len())?;
    let mut out = Vec::new();
    for (i, want) in value.lines().enumerate() {
        let have = body.get(i)?;
        let same = if want.is_empty() { have.trim().is_empty() } else { have.get(indent..) == Some(want) && have[..indent].trim().is_empty() };
        if !same {
            return None;
        }
        out.push((line + 1 + i, indent + 1));
    }
    Some(out)
}

/// The line of the first `key:` of the flow mapping whose `{` is at byte `start`, and the
/// (line, column) of the second, if it has two: serde_yaml reports the mapping's start.
pub fn duplicate_in_flow(text: &str, start: usize, key: &str) -> Option<(usize, (usize, usize))> {
    let body = text.get(start..)?.strip_prefix('{')?;
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut entry_start = true; // after `{` or a comma of this mapping
    let mut found = Vec::new();
    for (i, c) in body.char_indices() {
        if let Some(q) = quote {
            // A `''` in single quotes closes and reopens: the same as staying inside.
            if c == q && !(q == '"' && body[..i].ends_with('\\')) {
                quote = None;
            }
            continue;
        }
        if entry_start && depth == 0 && !c.is_whitespace() {
            entry_start = false;
            let rest = &body[i..];
            let is_key = [key.to_string(), format!("\"{key}\""), format!("'{key}'")]
                .iter()
                .any(|k| rest.strip_prefix(k.as_str()).is_some_and(|after| after.trim_start_matches([' ', '\t']).starts_with(':')));
            if is_key {
                found.push(start + 1 + i);
                if let [first, second] = found[..] {
                    return Some((line_col(text, first).0, line_col(text, second)));
                }
            }
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '{' | '[' => depth += 1,
            '}' | ']' if depth == 0 => return None,
            '}' | ']' => depth -= 1,
            ',' if depth == 0 => entry_start = true,
            _ => {}
        }
    }
    None
}

/// The 1-based (line, column in characters) of byte `at` of `text`.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let before = text.get(..at).unwrap_or(text);
    (before.matches('\n').count() + 1, before.rsplit('\n').next().unwrap_or("").chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> Seg {
        Seg::Key(s.into())
    }

    #[test]
    fn finds_values_and_keys_in_flow_and_block_style() {
        let src = "- file: {path: /srv/x, state: directory, mode: rwx}\n- user:\n    name: deploy\n    system: \"maybe\"\n";
        assert_eq!(find(src, &[Seg::Index(0), k("file"), k("mode")], Target::Value), Some((1, 48)));
        assert_eq!(find(src, &[Seg::Index(0), k("file"), k("mode")], Target::Key), Some((1, 42)));
        assert_eq!(find(src, &[Seg::Index(1), k("user"), k("system")], Target::Value), Some((4, 13)));
        assert_eq!(find(src, &[Seg::Index(1), k("user"), k("nope")], Target::Value), None);
        assert_eq!(find(src, &[Seg::Index(2)], Target::Value), None);
    }

    #[test]
    fn a_tagged_value_and_a_list_item() {
        let src = "vars:\n  pw: !secret x\nhosts: [a, b]\n";
        assert_eq!(find(src, &[k("vars"), k("pw")], Target::Value), Some((2, 7)));
        assert_eq!(find(src, &[k("hosts"), Seg::Index(1)], Target::Value), Some((3, 12)));
    }

    #[test]
    fn a_duplicate_in_a_flow_mapping() {
        let src = "- file: {path: /a, state: \"x, path: y\",\n    path: /b}\n";
        assert_eq!(duplicate_in_flow(src, 8, "path"), Some((1, (2, 5))));
        assert_eq!(duplicate_in_flow(src, 8, "state"), None);
    }

    #[test]
    fn verbatim_scalars_map_their_lines() {
        let src = "a: \"/srv/{{ x }}\"\nb: /srv/{{ x }}\nc: \"\\t{{ x }}\"\nd: |\n  one\n\n  {{ x }}\n";
        assert_eq!(verbatim_lines(src, 1, 4, "/srv/{{ x }}"), vec![(1, 5)]);
        assert_eq!(verbatim_lines(src, 2, 4, "/srv/{{ x }}"), vec![(2, 4)]);
        assert_eq!(verbatim_lines(src, 3, 4, "\t{{ x }}"), vec![]);
        assert_eq!(verbatim_lines(src, 4, 4, "one\n\n{{ x }}\n"), vec![(5, 3), (6, 3), (7, 3)]);
    }
}
