//! Roles: the data under `roles/NAME/`: defaults, tasks, handlers, actions, templates, files.
//! Loading only parses and checks shape; turning tasks into resources for a host is the
//! job of [`crate::resources`].

use crate::error::{Diagnostic, Diagnostics, Location};
use crate::template::Templates;
use crate::yaml::{Doc, MapReader, Seg};
use indexmap::IndexMap;
use serde_yaml::{Mapping, Value};
use std::path::{Path, PathBuf};

/// One role, loaded.
pub struct Role {
    pub name: String,
    pub dir: PathBuf,
    pub description: String,
    /// Roles applied before this one wherever it is applied.
    pub depends: Vec<String>,
    /// Variables whose values are secret wherever they come from.
    pub secrets: Vec<String>,
    pub defaults: Mapping,
    pub defaults_doc: Option<Doc>,
    pub tasks: Option<Doc>,
    /// Task files under `tasks/` that tasks.yml (or another of them) includes, by name.
    pub task_files: IndexMap<String, Doc>,
    pub handlers: Option<Doc>,
    pub actions: Option<Doc>,
    pub templates: Templates,
}

/// Every role of a project.
pub struct Roles {
    pub dir: PathBuf,
    pub roles: IndexMap<String, Role>,
}

impl Roles {
    /// Loads every role under `dir`.
    pub fn load(dir: &Path) -> Result<Roles, Diagnostics> {
        let mut errors = Diagnostics::default();
        let mut roles = IndexMap::new();
        let entries = std::fs::read_dir(dir).map_err(|e| {
            Diagnostic::new(format!("cannot read the roles directory `{}`: {e}", dir.display()))
                .help("run provision from the project directory, which has `roles/` beside `inventories/`")
        })?;
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        for name in names {
            match Role::load(&dir.join(&name), &name) {
                Ok(r) => {
                    roles.insert(name, r);
                }
                Err(e) => errors.0.extend(e.0),
            }
        }
        for role in roles.values() {
            for dep in &role.depends {
                if !roles.contains_key(dep) {
                    errors.push(
                        Diagnostic::new(format!("role `{}` depends on unknown role `{dep}`", role.name))
                            .at(Location::file(role.dir.join("role.yml")))
                            .did_you_mean(dep, roles.keys().map(String::as_str)),
                    );
                }
            }
        }
        errors.into_result()?;
        Ok(Roles { dir: dir.to_path_buf(), roles })
    }

    pub fn get(&self, name: &str) -> Option<&Role> {
        self.roles.get(name)
    }

    /// `names` with their dependencies first, each once, in application order.
    pub fn with_dependencies(&self, names: &[String]) -> Vec<String> {
        fn visit(roles: &Roles, name: &str, out: &mut Vec<String>, depth: usize) {
            if out.iter().any(|n| n == name) || depth > 32 {
                return;
            }
            if let Some(r) = roles.get(name) {
                for d in &r.depends {
                    visit(roles, d, out, depth + 1);
                }
            }
            out.push(name.to_string());
        }
        let mut out = Vec::new();
        for n in names {
            visit(self, n, &mut out, 0);
        }
        out
    }
}

/// Finds the project's `roles/` directory: beside the inventory's directory, or above it.
pub fn find_roles_dir(inventory: &Path) -> Option<PathBuf> {
    let start = std::fs::canonicalize(inventory).ok()?;
    let mut dir = start.parent();
    while let Some(d) = dir {
        if d.join("roles").is_dir() {
            return Some(d.join("roles"));
        }
        dir = d.parent();
    }
    let cwd = std::env::current_dir().ok()?.join("roles");
    cwd.is_dir().then_some(cwd)
}

fn load_optional(path: &Path) -> Result<Option<Doc>, Diagnostic> {
    if path.exists() {
        Doc::load(path).map(Some)
    } else {
        Ok(None)
    }
}

impl Role {
    fn load(dir: &Path, name: &str) -> Result<Role, Diagnostics> {
        let mut errors = Diagnostics::default();
        let mut keep = |r: Result<Option<Doc>, Diagnostic>| match r {
            Ok(d) => d,
            Err(e) => {
                errors.push(e);
                None
            }
        };
        let meta = keep(load_optional(&dir.join("role.yml")));
        let defaults_doc = keep(load_optional(&dir.join("defaults.yml")));
        let tasks = keep(load_optional(&dir.join("tasks.yml")));
        let handlers = keep(load_optional(&dir.join("handlers.yml")));
        let actions = keep(load_optional(&dir.join("actions.yml")));
        let mut role = Role {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            description: String::new(),
            depends: Vec::new(),
            secrets: Vec::new(),
            defaults: Mapping::new(),
            defaults_doc: None,
            tasks,
            task_files: IndexMap::new(),
            handlers,
            actions,
            templates: Templates::new(&dir.join("templates")),
        };
        if let Some(meta) = &meta {
            if let Err(e) = role.read_meta(meta) {
                errors.push(e);
            }
        }
        if let Some(d) = &defaults_doc {
            match &d.value {
                Value::Mapping(m) => role.defaults = m.clone(),
                _ => errors.push(d.error(&[], "defaults.yml must be a mapping of variable names to values")),
            }
        }
        role.defaults_doc = defaults_doc;
        if let Some(t) = &role.tasks {
            if !matches!(t.value, Value::Sequence(_)) && !matches!(&t.value, Value::Mapping(m) if m.is_empty()) {
                errors.push(t.error(&[], "tasks.yml must be a list of tasks").help("start each task with `- `"));
            } else {
                let mut files = IndexMap::new();
                // The stack starts with tasks.yml's own path, which no include name can equal.
                if let Err(e) = load_includes(dir, t, &mut vec![dir.join("tasks.yml").display().to_string()], &mut files) {
                    errors.push(e);
                }
                role.task_files = files;
            }
        }
        for doc in [&role.handlers, &role.actions].into_iter().flatten() {
            if !matches!(doc.value, Value::Mapping(_)) {
                errors.push(doc.error(&[], "this file must be a mapping of names to tasks"));
            }
        }
        errors.into_result()?;
        Ok(role)
    }

    fn read_meta(&mut self, meta: &Doc) -> Result<(), Diagnostic> {
        let mut r = MapReader::new(meta, vec![], &meta.value, "role.yml")?;
        self.description = r.opt_string("description")?.unwrap_or_default();
        self.depends = r.opt_strings("depends")?.unwrap_or_default();
        self.secrets = r.opt_strings("secrets")?.unwrap_or_default();
        r.finish("role.yml")
    }

    /// The tasks in order, each with its file and its path there: an `include` is replaced
    /// by the tasks of the file it names.
    pub fn task_list(&self) -> Vec<(&Doc, Vec<Seg>, &Value)> {
        let mut out = Vec::new();
        if let Some(doc) = &self.tasks {
            self.expand(doc, 0, &mut out);
        }
        out
    }

    fn expand<'a>(&'a self, doc: &'a Doc, depth: usize, out: &mut Vec<(&'a Doc, Vec<Seg>, &'a Value)>) {
        let Value::Sequence(items) = &doc.value else { return };
        for (i, task) in items.iter().enumerate() {
            match include_of(task).and_then(|f| self.task_files.get(f)) {
                // Loading refused cycles and bounded the depth; the bound here only guards.
                Some(included) if depth < MAX_INCLUDE_DEPTH => self.expand(included, depth + 1, out),
                Some(_) => {}
                None => out.push((doc, vec![Seg::Index(i)], task)),
            }
        }
    }
}

/// How deep includes may nest.
const MAX_INCLUDE_DEPTH: usize = 8;

/// The file a task `- include: FILE` names (`name:` may sit beside it), if it is one.
fn include_of(task: &Value) -> Option<&str> {
    let Value::Mapping(m) = task else { return None };
    if m.keys().all(|k| matches!(k.as_str(), Some("include" | "name"))) {
        m.get("include").and_then(Value::as_str)
    } else {
        None
    }
}

/// Loads the task files `doc` includes (and theirs), from the role's `tasks/` directory.
/// `stack` is the chain of files including each other, to refuse a cycle.
fn load_includes(dir: &Path, doc: &Doc, stack: &mut Vec<String>, files: &mut IndexMap<String, Doc>) -> Result<(), Diagnostic> {
    let Value::Sequence(items) = &doc.value else { return Ok(()) };
    for (i, task) in items.iter().enumerate() {
        let Value::Mapping(m) = task else { continue };
        let Some(target) = m.get("include") else { continue };
        let at = [Seg::Index(i), Seg::Key("include".into())];
        let Some(name) = target.as_str().filter(|_| include_of(task).is_some()) else {
            return Err(doc.error(&at, "`include` takes a file name and stands alone (only `name:` may sit beside it)").help("write `- include: setup.yml`, for roles/NAME/tasks/setup.yml"));
        };
        let plain = name.ends_with(".yml") && !name.starts_with('/') && name.split('/').all(|c| !c.is_empty() && c != "." && c != "..");
        if !plain {
            return Err(doc.error(&at, format!("`include: {}` must name a .yml file under the role's tasks/ directory", crate::terminal::printable(name))).help("write `- include: setup.yml`, for roles/NAME/tasks/setup.yml"));
        }
        if stack.iter().any(|s| s == name) || stack.len() > MAX_INCLUDE_DEPTH {
            return Err(doc.error(&at, format!("task files include each other in a cycle (or more than {MAX_INCLUDE_DEPTH} deep): {} -> {}", stack.join(" -> "), crate::terminal::printable(name))));
        }
        if files.contains_key(name) {
            continue;
        }
        // A link inside tasks/ must not reach outside it (its first line would show in errors).
        let file = dir.join("tasks").join(name);
        if let (Ok(real), Ok(base)) = (file.canonicalize(), dir.join("tasks").canonicalize()) {
            if !real.starts_with(&base) {
                return Err(doc.error(&at, format!("`include: {}` leads outside the role's tasks/ directory", crate::terminal::printable(name))).help("keep included task files inside roles/NAME/tasks/"));
            }
        }
        let included = match load_optional(&file)? {
            Some(d) if matches!(d.value, Value::Sequence(_)) => d,
            Some(d) => return Err(d.error(&[], "an included task file must be a list of tasks").help("start each task with `- `")),
            None => return Err(doc.error(&at, format!("`include: {}`: there is no roles/{}/tasks/{}", crate::terminal::printable(name), dir.file_name().unwrap_or_default().to_string_lossy(), crate::terminal::printable(name)))),
        };
        stack.push(name.to_string());
        load_includes(dir, &included, stack, files)?;
        stack.pop();
        files.insert(name.to_string(), included);
    }
    Ok(())
}
