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

    /// The tasks, with their paths in tasks.yml.
    pub fn task_list(&self) -> Vec<(Vec<Seg>, &Value)> {
        match self.tasks.as_ref().map(|d| &d.value) {
            Some(Value::Sequence(items)) => items.iter().enumerate().map(|(i, v)| (vec![Seg::Index(i)], v)).collect(),
            _ => Vec::new(),
        }
    }
}
