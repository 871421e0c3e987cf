//! Role actions: the operational verbs a role declares as data in `roles/NAME/actions.yml`
//! (`provision do ROLE:VERB`, listed by `provision tasks`, like Capistrano's `cap -T`).
//!
//! The format, a mapping of verb to action:
//!
//! ```yaml
//! quiet:
//!   description: stop fetching new jobs (running jobs finish)   # shown by `provision tasks`
//!   run: |                                                       # a sh script, a template
//!     for u in {{ sidekiq_units }}; do sudo -n systemctl kill -s TSTP "$u"; done
//!   user: "{{ deploy_user }}"      # optional; who runs it (default: the deploy user)
//!   when: "{{ mysql_replication_role == 'replica' }}"  # optional: hosts where it applies
//!   args:                          # optional: what `provision do ROLE:VERB ARG...` takes
//!     - {name: file, grammar: file_name, description: a dump's name}
//!     - {name: database, grammar: sql_name, required: false}
//! ```
//!
//! An argument is checked against its grammar ([`crate::grammar::by_name`]) before anything
//! connects, and reaches `run` only as `{{ args.NAME }}`, a value like any other: printed
//! into the script as one quoted word (an optional one not given is `""`).
//!
//! Every string is a template rendered with the host's variables (strict: an undefined
//! variable is an error naming the file and line). The script travels to the host inside
//! the one script of the round trip, on stdin; as root, the host runs it as `user` with
//! `runuser -u USER -- sh -s`, so an action that needs privileges goes through the sudoers
//! rules its role installs for that user, which are exercised for real.

use crate::sh;
use crate::shell::Script;
use crate::error::{closest, Diagnostic, Diagnostics, Location, Span};
use crate::inventory::Host;
use crate::project::Project;
use crate::roles::{Role, Roles};
use crate::vars::{var_str, Secrets};
use crate::yaml::{Doc, MapReader, Seg};
use anyhow::{bail, Result};
use minijinja::value::Value as JValue;
use serde_yaml::Value;
use std::path::PathBuf;

/// One action of a role, as written (templates not rendered yet).
#[derive(Debug, Clone)]
pub struct Action {
    pub role: String,
    pub verb: String,
    pub description: String,
    pub run: String,
    pub user: Option<String>,
    pub when: Option<String>,
    /// What the action takes from the command line, in order.
    pub args: Vec<ActionArg>,
    pub location: Location,
    /// Where `run`, `user` and `when` are written, for errors in their templates.
    pub run_at: Span,
    pub user_at: Span,
    pub when_at: Span,
}

/// One argument of an action, given on the command line after `ROLE:VERB`.
#[derive(Debug, Clone)]
pub struct ActionArg {
    pub name: String,
    pub description: String,
    /// A grammar of [`crate::grammar::by_name`]: the value must match it.
    pub grammar: String,
    pub required: bool,
    /// Where it is declared, for the errors about its value.
    pub location: Location,
}

impl ActionArg {
    /// `FILE`, or `[DATABASE]` when optional.
    fn usage(&self) -> String {
        let n = self.name.to_ascii_uppercase();
        if self.required { n } else { format!("[{n}]") }
    }
}

/// Keys an action may have.
const ACTION_KEYS: [&str; 5] = ["description", "run", "user", "when", "args"];

/// The actions of `role`, in file order. Errors name the file and line.
pub fn role_actions(role: &Role) -> Result<Vec<Action>, Diagnostics> {
    let Some(doc) = &role.actions else { return Ok(Vec::new()) };
    let mut errors = Diagnostics::default();
    let mut out = Vec::new();
    let Value::Mapping(map) = &doc.value else {
        return Err(doc.error(&[], "actions.yml must be a mapping of verb to action").into());
    };
    for (verb, body) in map {
        let Some(verb) = verb.as_str() else {
            errors.push(doc.error(&[], "action names must be strings"));
            continue;
        };
        let path = vec![Seg::Key(verb.to_string())];
        if verb.is_empty() || !verb.chars().all(|c| c.is_ascii_alphanumeric() || "-_".contains(c)) {
            errors.push(doc.error(&path, format!("action name `{verb}` may only contain letters, digits, `-` and `_`")));
            continue;
        }
        match read_action(doc, &path, role, verb, body) {
            Ok(a) => out.push(a),
            Err(e) => errors.push(e),
        }
    }
    errors.into_result()?;
    Ok(out)
}

fn read_action(doc: &Doc, path: &[Seg], role: &Role, verb: &str, body: &Value) -> Result<Action, Diagnostic> {
    let mut r = MapReader::new(doc, path.to_vec(), body, &format!("action `{verb}`"))?;
    let description = r.opt_string("description")?.unwrap_or_default();
    let run = r.string("run", &format!("action `{verb}`"))?;
    let user = r.opt_string("user")?;
    let when = r.opt_string("when")?;
    let args = match r.get("args") {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => read_args(doc, &r.path_of("args"), v, verb)?,
    };
    let _ = ACTION_KEYS;
    r.finish(&format!("action `{verb}` (keys: {})", ACTION_KEYS.join(", ")))?;
    let at = |k: &str| doc.value_span(&crate::yaml::key(path, k));
    let (run_at, user_at, when_at) = (at("run"), at("user"), at("when"));
    Ok(Action { role: role.name.clone(), verb: verb.to_string(), description, run, user, when, args, location: doc.locate(path), run_at, user_at, when_at })
}

/// An action's `args:`, a list of `{name, grammar, description, required}`.
fn read_args(doc: &Doc, path: &[Seg], value: &Value, verb: &str) -> Result<Vec<ActionArg>, Diagnostic> {
    let Value::Sequence(items) = value else {
        return Err(doc.value_error(path, format!("`args` of action `{verb}` must be a list")).help("write `args: [{name: file, grammar: file_name}]`"));
    };
    let mut out: Vec<ActionArg> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = crate::yaml::index(path, i);
        let mut r = MapReader::new(doc, at.clone(), item, "an argument")?;
        let name = r.string("name", "an argument")?;
        let grammar = r.string("grammar", &format!("argument `{name}`"))?;
        let description = r.opt_string("description")?.unwrap_or_default();
        let required = r.opt_bool("required")?.unwrap_or(true);
        let (name_at, grammar_at) = (r.path_of("name"), r.path_of("grammar"));
        r.finish("an argument (keys: name, grammar, description, required)")?;
        if !crate::inventory::is_identifier(&name) || out.iter().any(|a| a.name == name) {
            return Err(doc.value_error(&name_at, format!("argument name `{name}` must be a new identifier (letters, digits, _)")));
        }
        if crate::grammar::by_name(&grammar).is_none() {
            return Err(doc
                .value_error(&grammar_at, format!("no grammar `{grammar}`"))
                .did_you_mean(&grammar, crate::grammar::ARG_GRAMMARS.iter().copied())
                .help(format!("the grammars: {}", crate::grammar::ARG_GRAMMARS.join(", "))));
        }
        if required && out.last().is_some_and(|a| !a.required) {
            return Err(doc.error(&at, format!("argument `{name}` is required but follows an optional one")));
        }
        out.push(ActionArg { name, description, grammar, required, location: doc.locate(&at) });
    }
    Ok(out)
}

/// The command-line `values` of `action`'s arguments as the template variable `args`
/// (NAME → value; an optional one not given is `""`), each checked by its grammar. Every
/// error names where the argument is declared.
pub fn bind_args(action: &Action, values: &[String]) -> Result<JValue, Diagnostic> {
    let name = format!("{}:{}", action.role, action.verb);
    let usage = || format!("usage: provision do [INVENTORY] {name}{}", action.args.iter().map(|a| format!(" {}", a.usage())).collect::<String>());
    if values.len() > action.args.len() {
        return Err(Diagnostic::new(format!("`{name}` takes {} argument(s), got {}", action.args.len(), values.len())).at(action.location.clone()).help(usage()));
    }
    let mut map = std::collections::BTreeMap::new();
    for (i, a) in action.args.iter().enumerate() {
        let value = match values.get(i) {
            Some(v) => {
                let check = crate::grammar::by_name(&a.grammar).ok_or_else(|| Diagnostic::new(format!("no grammar `{}`", a.grammar)).at(a.location.clone()))?;
                check(v).map_err(|e| Diagnostic::new(format!("`{name}` {}: {e}", a.name.to_ascii_uppercase())).at(a.location.clone()).help(usage()))?
            }
            None if a.required => {
                return Err(Diagnostic::new(format!("`{name}` needs {}", a.name.to_ascii_uppercase())).at(a.location.clone()).help(usage()));
            }
            None => String::new(),
        };
        map.insert(a.name.clone(), value);
    }
    Ok(JValue::from(map))
}

/// Every action of every role, in role order.
pub fn all_actions(roles: &Roles) -> Result<Vec<Action>, Diagnostics> {
    let mut errors = Diagnostics::default();
    let mut out = Vec::new();
    for role in roles.roles.values() {
        match role_actions(role) {
            Ok(a) => out.extend(a),
            Err(e) => errors.0.extend(e.0),
        }
    }
    errors.into_result()?;
    Ok(out)
}

/// `provision tasks`: the listing, one line per action (`role:verb  description`).
pub fn tasks_listing(roles: &Roles) -> Result<String, Diagnostics> {
    let actions = all_actions(roles)?;
    let usage = |a: &Action| format!("{}:{}{}", a.role, a.verb, a.args.iter().map(|x| format!(" {}", x.usage())).collect::<String>());
    let width = actions.iter().map(|a| usage(a).len()).max().unwrap_or(0);
    let mut out = String::new();
    for a in &actions {
        let name = usage(a);
        let mut desc = a.description.split_whitespace().collect::<Vec<_>>().join(" ");
        if let Some(w) = &a.when {
            desc.push_str(&format!(" [when {}]", w.trim().trim_start_matches("{{").trim_end_matches("}}").trim()));
        }
        out.push_str(&format!("provision do {name:<width$}  # {desc}\n"));
    }
    if actions.is_empty() {
        out.push_str("(no role declares actions: add roles/NAME/actions.yml)\n");
    }
    Ok(out)
}

/// Renders a template string in a host's context (see [`crate::context::of`]).
pub fn render(role: &Role, source: &str, ctx: &JValue, at: &Span) -> Result<String, Diagnostic> {
    role.templates.render_str(source, ctx, at)
}

/// Evaluates a `when` expression (`{{ expr }}` or a bare expression) in a host's context.
pub fn eval_when(role: &Role, source: &str, ctx: &JValue, at: &Span) -> Result<bool, Diagnostic> {
    let value = role.templates.evaluate(source, ctx, at)?;
    Ok(JValue::from(minijinja::value::Serde(value)).is_true())
}

/// The sh lines that run `script` as `user` from a root shell: the script goes on the
/// inner shell's stdin as base64, never on a command line.
pub fn as_user_script(user: &str, script: &Script) -> Script {
    let write = sh!(
        "base64 -d > \"$PV_TMP/action\" {}[ -s \"$PV_TMP/action\" ] || [ {} -eq 0 ] || exit 3\nchmod 0644 \"$PV_TMP/action\"\ncd /\n",
        crate::shell::heredoc_base64(script.as_str().as_bytes()),
        script.len()
    );
    if user == "root" {
        sh!("{}sh \"$PV_TMP/action\"\n", write)
    } else {
        sh!(
            "if ! id -u -- {} >/dev/null 2>&1; then echo {} >&2; exit 3; fi\n{}runuser -u {} -- sh -s < \"$PV_TMP/action\"\n",
            user,
            format!("provision: user {user} does not exist on this host"),
            write,
            user
        )
    }
}

/// A root script wrapper: a private temp dir, removed on exit.
pub fn with_tmp(body: Script) -> Script {
    sh!("set -u\numask 022\nPV_TMP=$(mktemp -d /tmp/.pv-action.XXXXXX) || exit 3\nchmod 0755 \"$PV_TMP\"\ntrap 'rm -rf \"$PV_TMP\"' EXIT\n{}", body)
}

/// What `provision do` is asked to do, resolved per host.
#[derive(Debug)]
pub struct HostAction {
    pub host: Host,
    /// None: skipped because of `when`.
    pub script: Option<Script>,
    pub user: String,
    pub secrets: Secrets,
}

/// Resolves `ROLE:VERB` on the selected hosts. Every input error is a diagnostic.
pub fn plan_do(project: &Project, spec: &str, values: &[String]) -> Result<(Action, Vec<HostAction>), Diagnostics> {
    let limits = &project.selection.limits;
    let (role_name, verb) = spec.split_once(':').ok_or_else(|| {
        Diagnostic::new(format!("`{spec}` is not ROLE:VERB")).help("write it like `sidekiq:quiet`; `provision tasks` lists every action")
    })?;
    let Some(role) = project.roles.get(role_name) else {
        return Err(Diagnostic::new(format!("no role `{role_name}`"))
            .did_you_mean(role_name, project.roles.roles.keys().map(String::as_str))
            .into());
    };
    let actions = role_actions(role)?;
    if actions.is_empty() {
        return Err(Diagnostic::new(format!("role `{role_name}` declares no actions"))
            .at(Location::file(role.dir.join("actions.yml")))
            .help("add roles/NAME/actions.yml; `provision tasks` lists the roles' actions")
            .into());
    }
    let Some(action) = actions.iter().find(|a| a.verb == verb).cloned() else {
        let verbs: Vec<&str> = actions.iter().map(|a| a.verb.as_str()).collect();
        let mut d = Diagnostic::new(format!("role `{role_name}` has no action `{verb}`")).at(Location::file(role.dir.join("actions.yml")));
        d = match closest(verb, verbs.iter().copied()) {
            Some(c) => d.help(format!("did you mean `{role_name}:{c}`? (its actions: {})", verbs.join(", "))),
            None => d.help(format!("its actions are: {}", verbs.join(", "))),
        };
        return Err(d.into());
    };
    let args = bind_args(&action, values)?;
    let hosts: Vec<Host> = project.hosts.iter().filter(|h| project.roles.with_dependencies(&h.roles).iter().any(|r| r == role_name)).cloned().collect();
    if hosts.is_empty() {
        let what = if limits.is_empty() { String::new() } else { format!(" among --limit {}", limits.join(",")) };
        return Err(Diagnostic::new(format!("no inventory host has the role `{role_name}`{what}"))
            .at(Location::file(&project.inventory.doc.path))
            .help("add the role to a host's `roles:` in the inventory, or check --limit")
            .into());
    }
    let mut errors = Diagnostics::default();
    let mut out = Vec::new();
    for host in hosts {
        let (vars, secrets) = match project.host_vars(&host) {
            Ok(v) => v,
            Err(e) => {
                errors.0.extend(e.0);
                continue;
            }
        };
        let ctx = crate::context::of(&vars, &minijinja::Value::UNDEFINED, &project.inventory);
        let ctx = minijinja::value::merge_maps([ctx, minijinja::context! { args => args.clone() }]);
        let resolved = (|| -> Result<HostAction, Diagnostic> {
            if let Some(w) = &action.when {
                if !eval_when(role, w, &ctx, &action.when_at)? {
                    return Ok(HostAction { host: host.clone(), script: None, user: String::new(), secrets: secrets.clone() });
                }
            }
            let user = match &action.user {
                Some(u) => render(role, u, &ctx, &action.user_at)?,
                None => var_str(&vars, "deploy_user").unwrap_or_else(|| "deploy".into()),
            };
            let user = user.trim().to_string();
            if user.is_empty() || !user.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
                return Err(Diagnostic::new(format!("action `{}:{}`: `{user}` is not a user name", action.role, action.verb)).at(action.location.clone()));
            }
            // The role's own code, its values quoted as they are printed into it.
            let run = role.templates.render_code(&action.run, &ctx, &action.run_at, crate::template::CodeKind::Shell)?;
            Ok(HostAction { host: host.clone(), script: Some(Script::user_code(run)), user, secrets: secrets.clone() })
        })();
        match resolved {
            Ok(a) => out.push(a),
            Err(e) => errors.push(e),
        }
    }
    errors.into_result()?;
    let mut all_secrets = Secrets::default();
    for a in &out {
        all_secrets.merge(&a.secrets);
    }
    let runnable: Vec<Host> = out.iter().filter(|a| a.script.is_some()).map(|a| a.host.clone()).collect();
    project.preflight(&runnable, &all_secrets)?;
    Ok((action, out))
}

/// Paths of the roles directory's actions files, for messages.
pub fn actions_file(role: &Role) -> PathBuf {
    role.dir.join("actions.yml")
}

/// Fails with a clear message when `spec` is ROLE:VERB-shaped but empty on a side.
pub fn check_spec(spec: &str) -> Result<()> {
    match spec.split_once(':') {
        Some((r, v)) if !r.is_empty() && !v.is_empty() => Ok(()),
        _ => bail!("`{spec}` is not ROLE:VERB (for example sidekiq:quiet)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role_with(actions: &str) -> (tempfile::TempDir, Roles) {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("roles/sidekiq")).unwrap();
        std::fs::write(d.path().join("roles/sidekiq/actions.yml"), actions).unwrap();
        let roles = Roles::load(&d.path().join("roles")).unwrap();
        (d, roles)
    }

    #[test]
    fn parses_actions_and_lists_them() {
        let (_d, roles) = role_with("quiet:\n  description: stop fetching jobs\n  run: systemctl kill -s TSTP sidekiq\nbackup:\n  description: dump\n  run: true\n  user: root\n  when: \"{{ x == 1 }}\"\n");
        let a = all_actions(&roles).unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(a[1].user.as_deref(), Some("root"));
        let list = tasks_listing(&roles).unwrap();
        assert!(list.contains("sidekiq:quiet"), "{list}");
        assert!(list.contains("stop fetching jobs"), "{list}");
        assert!(list.contains("[when x == 1]"), "{list}");
    }

    #[test]
    fn unknown_key_and_missing_run_are_located() {
        let (_d, roles) = role_with("quiet:\n  descripton: x\n  run: true\n");
        let e = all_actions(&roles).unwrap_err().to_string();
        assert!(e.contains("actions.yml:2:3"), "{e}");
        assert!(e.contains("did you mean `description`"), "{e}");
        let (_d, roles) = role_with("quiet:\n  description: x\n");
        let e = all_actions(&roles).unwrap_err().to_string();
        assert!(e.contains("has no `run`"), "{e}");
    }

    #[test]
    fn arguments_are_checked_by_their_grammar_before_anything_else() {
        let (_d, roles) = role_with("restore:\n  run: echo {{ args.file }} {{ args.db }}\n  args:\n    - {name: file, grammar: file_name}\n    - {name: db, grammar: sql_name, required: false}\n");
        let a = all_actions(&roles).unwrap();
        let w = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let bound = bind_args(&a[0], &w(&["x.sql.gz"])).unwrap();
        assert_eq!(bound.get_attr("db").unwrap().as_str(), Some(""));
        let role = roles.get("sidekiq").unwrap();
        let ctx = minijinja::context! { args => bind_args(&a[0], &w(&["x.sql.gz", "scratch"])).unwrap() };
        let code = role.templates.render_code(&a[0].run, &ctx, &Location::file("x"), crate::template::CodeKind::Shell).unwrap();
        assert_eq!(code, "echo x.sql.gz scratch");
        for bad in [&["../x"][..], &["x", "a'b"], &[], &["x", "y", "z"], &["$(id)"], &["x", "-d"]] {
            let e = bind_args(&a[0], &w(bad)).unwrap_err();
            assert!(e.location.as_ref().is_some_and(|l| l.line >= 1), "{bad:?}: {e}");
        }
        let list = tasks_listing(&roles).unwrap();
        assert!(list.contains("sidekiq:restore FILE [DB]"), "{list}");
        let (_d, roles) = role_with("r:\n  run: x\n  args: [{name: f, grammar: regex}]\n");
        assert!(all_actions(&roles).unwrap_err().to_string().contains("no grammar `regex`"));
    }

    #[test]
    fn when_evaluates() {
        let (_d, roles) = role_with("a:\n  run: true\n");
        let role = roles.get("sidekiq").unwrap();
        let ctx = minijinja::context! { r => "replica" };
        let at = Span::at(Location::file("x"));
        assert!(eval_when(role, "{{ r == 'replica' }}", &ctx, &at).unwrap());
        assert!(!eval_when(role, "r == 'primary'", &ctx, &at).unwrap());
        assert!(eval_when(role, "{{ nope }}", &ctx, &at).is_err());
    }

    #[test]
    fn user_script_runs_locally() {
        // As root locally only when we are root (the tests run as root on the testbed machine).
        let script = with_tmp(as_user_script("root", &Script::user_code("echo \"hi $((1+1))\"\n")));
        let out = std::process::Command::new("sh").arg("-c").arg(&script).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "hi 2", "{}", String::from_utf8_lossy(&out.stderr));
    }
}
