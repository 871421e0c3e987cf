//! The module graph has no cycle: every `crate::NAME` a module of `src/` names (in a `use` or
//! inline, outside its unit tests) is an edge, and the graph must be a DAG, so that each
//! stage of the pipeline can be read without the ones after it. `sh!` expands to
//! `crate::shell`, which depends on nothing but itself.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn module_of(rel: &str) -> String {
    let rel = rel.trim_start_matches("src/").trim_end_matches(".rs");
    let top = rel.split('/').next().unwrap_or(rel);
    top.trim_end_matches("/mod").to_string()
}

/// `text` without its `#[cfg(test)]` items (the item's braces matched; tests may use anything).
fn without_tests(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        let Some(open) = after.find('{') else { return out };
        let mut depth = 0usize;
        let mut end = after.len();
        for (i, c) in after[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

fn edges() -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (rel, text) in sources() {
        if rel == "src/main.rs" || rel == "src/lib.rs" {
            continue;
        }
        let from = module_of(&rel);
        let code: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let mut targets: BTreeSet<String> = BTreeSet::new();
        for (i, _) in code.match_indices("crate::") {
            let name: String = code[i + 7..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if !name.is_empty() && name != from && name != "sh" {
                targets.insert(name);
            }
        }
        // `use crate::{a, b}` groups.
        for (i, _) in code.match_indices("use crate::{") {
            let group: String = code[i + 12..].chars().take_while(|c| *c != '}').collect();
            for part in group.split(',') {
                let name: String = part.trim().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                if !name.is_empty() && name != from {
                    targets.insert(name);
                }
            }
        }
        graph.entry(from).or_default().extend(targets);
    }
    graph
}

/// A cycle through `start`, if any (depth-first).
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(n: &str, g: &BTreeMap<String, BTreeSet<String>>, path: &mut Vec<String>, done: &mut BTreeSet<String>) -> Option<Vec<String>> {
        if let Some(pos) = path.iter().position(|p| p == n) {
            let mut c = path[pos..].to_vec();
            c.push(n.to_string());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for m in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, g, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|k| visit(k, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_module_graph_has_no_cycle() {
    let g = edges();
    assert!(g.len() > 10, "the scan found too few modules: {g:?}");
    if let Some(c) = cycle(&g) {
        panic!("an import cycle: {}", c.join(" -> "));
    }
}

#[test]
fn test_items_are_skipped_and_code_after_them_is_not() {
    let t = without_tests("a\n#[cfg(test)]\nmod tests { fn x() { crate::b } }\nuse crate::c;\n");
    assert!(!t.contains("crate::b") && t.contains("crate::c"), "{t}");
}

#[test]
fn the_cycle_finder_finds_one() {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    assert!(cycle(&g).is_none());
    g.entry("c".into()).or_default().insert("a".into());
    assert_eq!(cycle(&g), Some(vec!["a".into(), "b".into(), "c".into(), "a".into()]));
}

/// Every file of `src/` with its text before its unit tests, as (path from the root, code).
fn sources() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    let mut stack = vec![root.join("src")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let rel = p.strip_prefix(root).expect("under root").to_string_lossy().replace('\\', "/");
                out.push((rel, without_tests(&std::fs::read_to_string(&p).expect("read"))));
            }
        }
    }
    out.sort();
    out
}

/// One project loader: the inventory and the roles are read only by `Project::load`.
#[test]
fn the_project_is_loaded_by_one_function() {
    let readers: Vec<String> = sources()
        .into_iter()
        .filter(|(rel, code)| rel != "src/project.rs" && (code.contains("Inventory::load(") || code.contains("Roles::load(") || code.matches("find_roles_dir(").count() > code.matches("fn find_roles_dir(").count()))
        .map(|(rel, _)| rel)
        .collect();
    assert!(readers.is_empty(), "these load the inventory or the roles themselves instead of through Project::load: {readers:?}");
    let project = sources().into_iter().find(|(rel, _)| rel == "src/project.rs").expect("src/project.rs").1;
    assert_eq!(project.matches("Inventory::load(").count(), 1, "Project::load reads the inventory once");
}

/// The frame: each verb is `cli/<verb>.rs` over an operation; only the reporter prints;
/// no file is longer than one reader holds.
#[test]
fn every_verb_has_its_file_and_only_the_reporter_prints() {
    let files = sources();
    for verb in ["converge", "validate", "bootstrap", "release", "rollback", "releases", "do", "tasks", "db_copy"] {
        assert!(files.iter().any(|(rel, _)| *rel == format!("src/cli/{verb}.rs")), "src/cli/{verb}.rs is missing");
    }
    let printers: Vec<&str> = files
        .iter()
        .filter(|(rel, code)| rel != "src/report.rs" && ["println!", "eprintln!", "print!(", "eprint!(", "std::io::stdout", "std::io::stderr"].iter().any(|p| code.contains(p)))
        .map(|(rel, _)| rel.as_str())
        .collect();
    assert!(printers.is_empty(), "these print themselves instead of telling the reporter: {printers:?}");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (rel, _) in &files {
        let lines = std::fs::read_to_string(root.join(rel)).expect("read").lines().count();
        assert!(lines <= 620, "{rel} has {lines} lines: split it by concern");
    }
}
