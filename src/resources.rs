//! Resources: the tasks of a host's roles, with its variables, turned into an ordered list
//! of resources (plus the handlers they may notify). Everything here happens on the
//! controller, before any connection: an undefined variable, an unknown module or a bad
//! argument is found here, for every host, by `provision validate` too.

use crate::error::{Diagnostic, Diagnostics, Location, Span};
use crate::host_facts::{FactsUsed, HostFacts};
use crate::inventory::{Host, Inventory};
use crate::modules::{self, Args, LowerCx, Resource};
use crate::roles::{Role, Roles};
use crate::vars::{collect_strings, extract_role_secrets, inventory_facts, overlay, taint_derived_secrets, var_origin, variable_templates, Secrets};
use crate::yaml::{key, Doc, MapReader, Seg};
use indexmap::IndexMap;
use minijinja::value::{Serde, Value as JValue};
use serde_yaml::{Mapping, Value};

/// One resource and the task it came from.
#[derive(Debug)]
pub struct Entry {
    pub role: String,
    pub resource: Box<dyn Resource>,
    pub notify: Vec<String>,
    pub location: Location,
}

/// A handler of a role: the resources to act on when notified.
#[derive(Debug)]
pub struct Handler {
    pub role: String,
    pub name: String,
    pub resources: Vec<Box<dyn Resource>>,
}

impl Handler {
    /// The key recorded in the host's journal.
    pub fn key(&self) -> String {
        format!("{}/{}", self.role, self.name)
    }
}

/// Everything one host should look like.
#[derive(Debug, Default)]
pub struct HostResources {
    pub host: String,
    /// The roles applied, in order.
    pub roles: Vec<String>,
    pub entries: Vec<Entry>,
    pub handlers: Vec<Handler>,
    pub secrets: Secrets,
    /// Whether a template read the host's facts: the probe then reads them, and the host is
    /// lowered again with them (see [`crate::host_facts`]).
    pub uses_facts: bool,
    /// For a host that uses facts: lowers it again with the real ones, once probed.
    pub relower: Option<Relower>,
    /// The error of a lowering with assumed facts that read them (an assert that the
    /// memory is at least 4 GB, against the stand-ins' 2 GB): the host is lowered again with
    /// its own facts, and this is its error only if they are the assumed ones.
    pub deferred_error: Option<String>,
}

/// Lowers one host again with its real facts (made by [`crate::project::Project`], which
/// holds what lowering needs).
#[derive(Clone)]
pub struct Relower {
    pub lower: std::sync::Arc<RelowerFn>,
    /// The facts the resources were lowered with (the last known, else the stand-ins).
    pub assumed: HostFacts,
    /// Whose facts these are, for [`crate::host_facts::remember`]: `user@address:port`.
    pub login: String,
}

type RelowerFn = dyn Fn(&HostFacts) -> Result<HostResources, Diagnostics> + Send + Sync;

impl std::fmt::Debug for Relower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Relower")
    }
}

/// Keys a task may have besides its module.
const TASK_KEYS: [&str; 4] = ["name", "when", "loop", "notify"];

/// The variables of `host`: role defaults < inventory vars < group vars < host vars < extra vars, plus
/// the inventory facts, with templated values resolved.
pub fn host_vars(inv: &Inventory, host: &Host, roles: &Roles, role_names: &[String], extra: &Mapping, facts: &JValue, secrets: &mut Secrets) -> Result<Mapping, Diagnostics> {
    let mut errors = Diagnostics::default();
    let mut vars = Mapping::new();
    for name in role_names {
        if let Some(role) = roles.get(name) {
            match extract_role_secrets(Value::Mapping(role.defaults.clone()), secrets) {
                Ok(Value::Mapping(m)) => overlay(&mut vars, &m),
                Ok(_) => {}
                Err(e) => errors.push(Diagnostic::new(e).at(Location::file(role.dir.join("defaults.yml")))),
            }
        }
    }
    overlay(&mut vars, &inv.vars);
    overlay(&mut vars, &inv.group_vars_of(host));
    overlay(&mut vars, &host.vars);
    overlay(&mut vars, extra);
    overlay(&mut vars, &inventory_facts(inv, host));
    errors.into_result()?;
    let raw = vars.clone();
    let vars = resolve(vars, facts, inv, host, roles, role_names)?;
    // Variables a role declares secret are secret whatever their origin.
    for name in role_names {
        if let Some(role) = roles.get(name) {
            for s in &role.secrets {
                if let Some(v) = vars.get(s.as_str()).and_then(crate::yaml::scalar_string) {
                    secrets.add(&v);
                }
            }
        }
    }
    taint_derived_secrets(&raw, &vars, secrets);
    Ok(vars)
}

/// Renders templated variable values. Each variable is rendered after the variables its
/// templates refer to (depth first), so `pool: "{{ concurrency }}"` sees concurrency's
/// final value, whatever the order they are defined in. A cycle is an error naming it.
fn resolve(vars: Mapping, facts: &JValue, inv: &Inventory, host: &Host, roles: &Roles, role_names: &[String]) -> Result<Mapping, Diagnostics> {
    struct Resolver<'a> {
        facts: &'a JValue,
        current: Mapping,
        done: std::collections::HashSet<String>,
        stack: Vec<String>,
        templates: &'static crate::template::Templates,
        inv: &'a Inventory,
        host: &'a Host,
        roles: &'a Roles,
        role_names: &'a [String],
    }
    impl Resolver<'_> {
        fn resolve(&mut self, name: &str) -> Result<(), Diagnostic> {
            if self.done.contains(name) {
                return Ok(());
            }
            // Where the variable is written is searched only for an error: the search reads
            // the inventory's text, and doing it for every variable of every host made
            // loading quadratic in the hosts.
            let written = var_origin(name, self.inv, self.host, self.roles, self.role_names);
            if let Some(pos) = self.stack.iter().position(|n| n == name) {
                let cycle = self.stack[pos..].join(" → ");
                let at = match &written {
                    Some((doc, path)) => doc.locate(path),
                    None => Location::file(&self.inv.doc.path),
                };
                return Err(Diagnostic::new(format!("variables refer to each other in a cycle: {cycle} → {name}")).at(at));
            }
            let Some(value) = self.current.get(name).cloned() else { return Ok(()) };
            let mut refs = Vec::new();
            collect_strings(&value, &mut |s| refs.extend(self.templates.referenced(s)));
            self.stack.push(name.to_string());
            for r in &refs {
                if r != name && self.current.contains_key(r.as_str()) {
                    self.resolve(r)?;
                }
            }
            self.stack.pop();
            // The context holds only the names the value's templates use (with the
            // inventory's): building it from every variable, for every variable, cost the
            // square of the variables per host.
            // (`{% set x = x | f %}` reads x but minijinja does not list it as used: with a
            // block tag the whole context it is.)
            let mut blocks = false;
            collect_strings(&value, &mut |s| blocks |= s.contains("{%"));
            let ctx = if blocks {
                crate::context::of(&self.current, self.facts, self.inv)
            } else {
                let used: Mapping = refs.iter().filter_map(|r| self.current.get(r.as_str()).map(|v| (Value::String(r.clone()), v.clone()))).collect();
                crate::context::of(&used, self.facts, self.inv)
            };
            let inv_path = &self.inv.doc.path;
            let locate = |p: &[Seg]| match &written {
                Some((doc, path)) => doc.value_span(&[path.as_slice(), p].concat()),
                None => Span::at(Location::file(inv_path)),
            };
            let rendered = render_value(&value, self.templates, &ctx, &locate)?;
            self.current.insert(name.into(), rendered);
            self.done.insert(name.to_string());
            Ok(())
        }
    }
    let names: Vec<String> = vars.keys().filter_map(|k| k.as_str().map(str::to_string)).collect();
    let mut r = Resolver {
        facts,
        current: vars,
        done: Default::default(),
        stack: Vec::new(),
        templates: variable_templates(),
        inv,
        host,
        roles,
        role_names,
    };
    let mut errors = Diagnostics::default();
    for n in names {
        if let Err(e) = r.resolve(&n) {
            if !errors.0.contains(&e) {
                errors.push(e);
            }
            r.done.insert(n);
            r.stack.clear();
        }
    }
    errors.into_result()?;
    Ok(r.current)
}

/// Renders every string inside `v`. `locate` gives where the value at a nested path is
/// written; it is called only for an error (it may parse the file again).
fn render_value(v: &Value, templates: &crate::template::Templates, ctx: &JValue, locate: &dyn Fn(&[Seg]) -> Span) -> Result<Value, Diagnostic> {
    fn walk(v: &Value, path: &mut Vec<Seg>, t: &crate::template::Templates, ctx: &JValue, locate: &dyn Fn(&[Seg]) -> Span) -> Result<Value, Diagnostic> {
        Ok(match v {
            Value::String(s) if single_expression(s) => {
                // `"{{ admin_keys }}"` is the list itself, not its text, as in Ansible.
                let value = t.evaluate(s, ctx, &|| locate(path))?;
                serde_yaml::to_value(value).map_err(|e| Diagnostic::new(e.to_string()).at(locate(path).start))?
            }
            Value::String(s) => Value::String(t.render_str(s, ctx, &|| locate(path))?),
            Value::Sequence(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    path.push(Seg::Index(i));
                    out.push(walk(item, path, t, ctx, locate)?);
                    path.pop();
                }
                Value::Sequence(out)
            }
            Value::Mapping(m) => {
                let mut out = Mapping::new();
                for (k, item) in m {
                    path.push(Seg::Key(k.as_str().unwrap_or_default().to_string()));
                    out.insert(k.clone(), walk(item, path, t, ctx, locate)?);
                    path.pop();
                }
                Value::Mapping(out)
            }
            other => other.clone(),
        })
    }
    walk(v, &mut Vec::new(), templates, ctx, locate)
}

/// Whether a string is exactly one `{{ expression }}`.
fn single_expression(s: &str) -> bool {
    // Only the whole string: "{{ x }}\n" is text (a trailing newline is content).
    let inner = s.strip_prefix("{{").and_then(|s| s.strip_suffix("}}"));
    inner.is_some_and(|inner| !inner.contains("{{") && !inner.contains("}}") && !inner.contains("{%"))
}

/// Evaluates a `when`/`loop` expression (`{{ expr }}` or a bare Jinja expression), written
/// at `at` in `doc`.
fn eval_expression(role: &Role, source: &str, ctx: &JValue, doc: &Doc, at: &[Seg]) -> Result<JValue, Diagnostic> {
    let json = role.templates.evaluate(source, ctx, &|| doc.value_span(at))?;
    Ok(JValue::from(Serde(json)))
}

/// Every role `host` names exists; errors point at the inventory line.
pub fn check_host_roles(inv: &Inventory, host: &Host, roles: &Roles) -> Result<(), Diagnostics> {
    let mut errors = Diagnostics::default();
    for (i, r) in host.roles.iter().enumerate() {
        if roles.get(r).is_none() {
            errors.push(
                inv.doc
                    .error(&crate::yaml::index(&key(&host.path, "roles"), i), format!("unknown role `{r}`"))
                    .did_you_mean(r, roles.roles.keys().map(String::as_str))
                    .help(format!("the roles are: {}", roles.roles.keys().cloned().collect::<Vec<_>>().join(", "))),
            );
        }
    }
    errors.into_result()
}

/// Lowers every task of `host`'s roles (limited to `only_roles` and their dependencies when
/// given) into resources.
/// `facts` are the host's (or stand-ins, before the probe): whether any was read is recorded
/// in the result's `uses_facts`.
pub fn lower_host(inv: &Inventory, host: &Host, roles: &Roles, extra: &Mapping, only_roles: &[String], facts: &HostFacts, used: &FactsUsed) -> Result<HostResources, Diagnostics> {
    check_host_roles(inv, host, roles)?;
    let mut errors = Diagnostics::default();
    let all_roles = roles.with_dependencies(&host.roles);
    let applied: Vec<String> = if only_roles.is_empty() {
        all_roles.clone()
    } else {
        let selected: Vec<String> = host.roles.iter().filter(|r| only_roles.contains(r)).cloned().collect();
        roles.with_dependencies(&selected)
    };
    let mut secrets = inv.secrets.clone();
    let facts = facts.template_value(used);
    let vars = host_vars(inv, host, roles, &all_roles, extra, &facts, &mut secrets)?;
    let mut out = HostResources { host: host.name.clone(), roles: applied.clone(), secrets, ..Default::default() };
    let ctx = crate::context::of(&vars, &facts, inv);

    for role_name in &all_roles {
        let Some(role) = roles.get(role_name) else { continue };
        if applied.contains(role_name) {
            for (doc, path, task) in role.task_list() {
                match lower_task(role, doc, &path, task, &vars, &ctx, &out.secrets, false) {
                    Ok(list) => {
                        let location = doc.locate(&path);
                        let notify = task_notify(task);
                        for resource in list {
                            out.entries.push(Entry { role: role_name.clone(), resource, notify: notify.clone(), location: location.clone() });
                        }
                    }
                    Err(e) => errors.push(e),
                }
            }
        }
        if let Some(doc) = &role.handlers {
            if let Value::Mapping(m) = &doc.value {
                for (name, task) in m {
                    let name = name.as_str().unwrap_or_default().to_string();
                    let path = vec![Seg::Key(name.clone())];
                    match lower_task(role, doc, &path, task, &vars, &ctx, &out.secrets, true) {
                        Ok(resources) => out.handlers.push(Handler { role: role_name.clone(), name, resources }),
                        Err(e) => errors.push(e),
                    }
                }
            }
        }
    }
    // Every notify must name a handler of its role.
    for e in &out.entries {
        for n in &e.notify {
            if !out.handlers.iter().any(|h| h.role == e.role && &h.name == n) {
                let names: Vec<&str> = out.handlers.iter().filter(|h| h.role == e.role).map(|h| h.name.as_str()).collect();
                let d = Diagnostic::new(format!("`notify: {n}` names no handler of role `{}`", e.role))
                    .at(e.location.clone())
                    .did_you_mean(n, names.iter().copied());
                if !errors.0.contains(&d) {
                    errors.push(d);
                }
            }
        }
    }
    // Two tasks managing one path would fight: the later would undo the earlier on every run.
    let mut seen: IndexMap<(String, String), Location> = IndexMap::new();
    for e in &out.entries {
        let id = (e.resource.kind().to_string(), e.resource.target());
        if matches!(id.0.as_str(), "command") {
            continue;
        }
        if let Some(first) = seen.insert(id.clone(), e.location.clone()) {
            errors.push(
                Diagnostic::new(format!("{} {} is managed twice (first at {first})", id.0, id.1))
                    .at(e.location.clone())
                    .help("manage each resource in one task; merge the two"),
            );
        }
    }
    errors.into_result()?;
    out.uses_facts = used.get();
    Ok(out)
}

fn task_notify(task: &Value) -> Vec<String> {
    task.get("notify").and_then(crate::yaml::string_list).unwrap_or_default()
}

/// Refuses a `when`/`loop` expression that names a variable nobody defined, as every other
/// template does: an undefined variable must not silently skip a task. `x | default(...)`
/// and `x is defined` are the ways to allow one.
fn check_defined(role: &Role, source: &str, vars: &Mapping, doc: &Doc, at: &[Seg]) -> Result<(), Diagnostic> {
    let (_, expr) = crate::template::expression_of(source);
    if expr.contains("default(") || expr.contains("defined") || expr.contains("| d(") {
        return Ok(());
    }
    let known = |n: &str| vars.contains_key(n) || crate::context::SHARED.contains(&n) || n == crate::context::FACTS || matches!(n, "item" | "loop" | "true" | "false" | "none" | "True" | "False" | "None" | "range" | "dict" | "namespace" | "debug" | "lipsum" | "cycler" | "joiner");
    match role.templates.referenced(&format!("{{{{ {expr} }}}}")).into_iter().find(|n| !known(n)) {
        Some(missing) => Err(Diagnostic::new(format!("undefined variable `{missing}` in `{expr}`"))
            .at(doc.value_span(at).offset(source, name_offset(source, &missing)))
            .help("define it in the role's defaults.yml, the inventory's vars or with -e, or write `| default(...)`")),
        None => Ok(()),
    }
}

/// Where the name `name` is first used in `source` (not inside a longer name); 0 if nowhere.
fn name_offset(source: &str, name: &str) -> usize {
    let word = |c: char| c.is_alphanumeric() || c == '_';
    source
        .match_indices(name)
        .find(|(i, _)| !source[..*i].ends_with(word) && !source[i + name.len()..].starts_with(word))
        .map_or(0, |(i, _)| i)
}

/// Lowers one task: checks its keys, evaluates `when` and `loop`, renders its arguments.
/// `base_ctx` is the host's template context (`vars` with the inventory's topology).
#[allow(clippy::too_many_arguments)]
fn lower_task(role: &Role, doc: &Doc, path: &[Seg], task: &Value, vars: &Mapping, base_ctx: &JValue, secrets: &Secrets, is_handler: bool) -> Result<Vec<Box<dyn Resource>>, Diagnostic> {
    let mut r = MapReader::new(doc, path.to_vec(), task, "a task")?;
    let task_name = r.opt_string("name")?;
    let when = r.get("when").cloned();
    let looped = r.get("loop").cloned();
    r.opt_strings("notify")?;
    let Value::Mapping(map) = task else { return Err(doc.error(path, "a task must be a mapping")) };
    let module_keys: Vec<&str> = map.keys().filter_map(|k| k.as_str()).filter(|k| !TASK_KEYS.contains(k)).collect();
    let module_name = match module_keys.as_slice() {
        [one] => *one,
        [] => {
            return Err(doc
                .error(path, "this task names no module")
                .help(format!("add one of: {}", modules::MODULES.iter().map(|m| m.name()).collect::<Vec<_>>().join(", "))))
        }
        [_, second, ..] => {
            let candidates = modules::MODULES.iter().map(|m| m.name()).chain(TASK_KEYS);
            let d = doc.error(&key(path, second), format!("a task has one module, but this one has `{}`", module_keys.join("`, `")));
            return Err(match modules::find(second) {
                Some(_) => d.help("split it into two tasks"),
                None => d.did_you_mean(second, candidates),
            });
        }
    };
    let Some(module) = modules::find(module_name) else {
        let names: Vec<&str> = modules::MODULES.iter().map(|m| m.name()).collect();
        let d = doc.error(&key(path, module_name), format!("unknown module `{module_name}`"));
        return Err(match crate::error::closest(module_name, names.iter().copied().chain(TASK_KEYS)) {
            Some(c) => d.help(format!("did you mean `{c}`?")),
            None => d.help(format!("the modules are: {}", names.join(", "))),
        });
    };
    let raw_args = map.get(module_name).cloned().unwrap_or(Value::Null);
    let args_path = key(path, module_name);
    let location = doc.locate(path);

    if let Some(w) = &when {
        let src = crate::yaml::scalar_string(w).ok_or_else(|| doc.value_error(&key(path, "when"), "`when` must be an expression"))?;
        check_defined(role, &src, vars, doc, &key(path, "when"))?;
        if !eval_expression(role, &src, base_ctx, doc, &key(path, "when"))?.is_true() {
            return Ok(Vec::new());
        }
    }
    let items: Vec<Option<JValue>> = match &looped {
        None => vec![None],
        Some(Value::String(s)) => {
            check_defined(role, s, vars, doc, &key(path, "loop"))?;
            let v = eval_expression(role, s, base_ctx, doc, &key(path, "loop"))?;
            // A string would loop over its characters, a mapping over its keys: neither is
            // what anyone means.
            if v.kind() != minijinja::value::ValueKind::Seq {
                return Err(doc
                    .value_error(&key(path, "loop"), format!("`loop` must give a list, but `{}` gives a {}", s.trim(), v.kind()))
                    .help("loop over a list, such as `[a, b]`, or split a string with `| split`"));
            }
            let iter = v.try_iter().map_err(|_| doc.value_error(&key(path, "loop"), "`loop` must evaluate to a list"))?;
            iter.map(Some).collect()
        }
        Some(list @ Value::Sequence(_)) => {
            let loop_path = key(path, "loop");
            let locate = |p: &[Seg]| doc.value_span(&[loop_path.as_slice(), p].concat());
            match render_value(list, &role.templates, base_ctx, &locate)? {
                Value::Sequence(items) => items.iter().map(|i| Some(JValue::from(Serde(i)))).collect(),
                _ => Vec::new(),
            }
        }
        Some(_) => return Err(doc.value_error(&key(path, "loop"), "`loop` must be a list or an expression giving one")),
    };
    let mut out = Vec::new();
    for item in items {
        let ctx = match &item {
            Some(item) => crate::context::with_item(base_ctx, item),
            None => base_ctx.clone(),
        };
        let locate = |p: &[Seg]| doc.value_span(&[args_path.as_slice(), p].concat());
        // Code arguments (`run`, `unless`, `validate`, `sql`) are rendered with every value
        // quoted for their language; the rest as plain text.
        let mut plain_args = raw_args.clone();
        let mut code = Vec::new();
        if let Value::Mapping(m) = &mut plain_args {
            for (name, kind) in module.code_args() {
                if let Some(v) = m.shift_remove(*name) {
                    let at = || locate(&[Seg::Key(name.to_string())]);
                    let text = crate::yaml::scalar_string(&v)
                        .ok_or_else(|| doc.value_error(&key(&args_path, name), format!("`{name}` must be a string")))?;
                    code.push((name.to_string(), role.templates.render_code(&text, &ctx, &at, *kind)?));
                }
            }
        }
        let mut rendered = render_value(&plain_args, &role.templates, &ctx, &locate)?;
        if let Value::Mapping(m) = &mut rendered {
            for (name, text) in code {
                m.insert(Value::String(name), Value::String(text));
            }
        }
        let args = Args { doc, path: args_path.clone(), value: rendered };
        let cx = LowerCx {
            role: &role.name,
            role_dir: role.dir.clone(),
            templates: &role.templates,
            vars: &ctx,
            secrets,
            location: location.clone(),
            task_name: task_name.clone(),
            is_handler,
        };
        // An error may quote a rendered value: secrets in it are redacted like all output.
        let resources = module.lower(&args, &cx).map_err(|mut d| {
            d.message = secrets.redact(&d.message);
            d.help = d.help.map(|h| secrets.redact(&h));
            d
        })?;
        // A path or a name is on command lines (`find`, `useradd`, `systemctl`) that `ps`
        // shows to every user of the host, and in every line of output.
        if let Some(r) = resources.iter().find(|r| secrets.touches(&r.target())) {
            return Err(doc
                .error(&args_path, format!("a secret appears in what this `{}` task manages ({})", module_name, r.kind()))
                .help("paths and names are printed and visible in `ps` on the host; keep secrets in contents or `stdin:`"));
        }
        out.extend(resources);
    }
    Ok(out)
}


#[cfg(test)]
mod tests {
    use crate::project::{Project, Selection};

    fn load(sel: &Selection) -> Result<Vec<(crate::inventory::Host, super::HostResources)>, crate::error::Diagnostics> {
        std::sync::Arc::new(Project::load(sel)?).lower()
    }

    fn project(defaults: &str, inv_vars: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let role = dir.path().join("roles/r");
        std::fs::create_dir_all(role.join("templates")).expect("mkdir");
        std::fs::write(role.join("defaults.yml"), defaults).expect("write");
        std::fs::write(role.join("templates/t.j2"), "pool={{ pool }} dir={{ dir }}\n").expect("write");
        std::fs::write(role.join("tasks.yml"), "- template: {src: t.j2, dest: /x}\n").expect("write");
        std::fs::write(dir.path().join("inv.yml"), format!("stage: s\nvars:\n{inv_vars}hosts:\n  h: {{address: 10.0.0.1, roles: [r]}}\n")).expect("write");
        dir
    }

    #[test]
    fn variables_resolve_in_dependency_order_not_file_order() {
        let dir = project("pool: \"{{ concurrency | int + 2 }}\"\ndir: \"/var/www/{{ app }}\"\nconcurrency: \"{{ base }}\"\nbase: 3\n", "  app: shop\n");
        let loaded = load(&Selection { inventory: dir.path().join("inv.yml"), ..Default::default() }).expect("loads");
        let text = format!("{:?}", loaded[0].1.entries[0].resource);
        let rendered: Vec<u8> = b"pool=5 dir=/var/www/shop\n".to_vec();
        assert!(text.contains(&format!("{rendered:?}")), "{text}");
    }

    #[test]
    fn a_cycle_is_an_error_that_names_it() {
        let dir = project("pool: \"{{ dir }}\"\ndir: \"{{ pool }}\"\n", "");
        let err = load(&Selection { inventory: dir.path().join("inv.yml"), ..Default::default() }).expect_err("a cycle");
        assert!(err.to_string().contains("cycle: pool → dir → pool"), "{err}");
    }
}
