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
//! ```
//!
//! Every string is a template rendered with the host's variables (strict: an undefined
//! variable is an error naming the file and line). The script travels to the host inside
//! the one script of the round trip, on stdin; as root, the host runs it as `user` with
//! `runuser -u USER -- sh -s`, so an action that needs privileges goes through the sudoers
//! rules its role installs for that user, which are exercised for real.
//!
//! This module also holds what the release step shares with `do`: loading the inventory,
//! the roles and each host's merged variables, and connecting to hosts in parallel.

use crate::sh;
use crate::shell::Script;
use crate::error::{closest, Diagnostic, Diagnostics, Location};
use crate::inventory::{Host, Inventory};
use crate::roles::{find_roles_dir, Role, Roles};
use crate::transport::Connection;
use crate::vars::{parse_extra_vars, Secrets};
use crate::yaml::{key, Doc, MapReader, Seg};
use anyhow::{anyhow, bail, Result};
use minijinja::value::{Serde, Value as JValue};
use serde_yaml::{Mapping, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// One action of a role, as written (templates not rendered yet).
#[derive(Debug, Clone)]
pub struct Action {
    pub role: String,
    pub verb: String,
    pub description: String,
    pub run: String,
    pub user: Option<String>,
    pub when: Option<String>,
    pub location: Location,
}

/// Keys an action may have.
const ACTION_KEYS: [&str; 4] = ["description", "run", "user", "when"];

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
    let _ = ACTION_KEYS;
    r.finish(&format!("action `{verb}` (keys: description, run, user, when)"))?;
    Ok(Action { role: role.name.clone(), verb: verb.to_string(), description, run, user, when, location: doc.locate(path) })
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

/// The roles of a project: beside or above the inventory, else `./roles`.
pub fn load_roles(inventory: &Path) -> Result<Roles, Diagnostics> {
    let dir = find_roles_dir(inventory)
        .or_else(|| std::env::current_dir().ok().map(|d| d.join("roles")).filter(|d| d.is_dir()))
        .ok_or_else(|| Diagnostic::new("no `roles/` directory found beside or above the inventory, nor in the current directory").at(Location::file(inventory)))?;
    Roles::load(&dir)
}

/// `provision tasks`: the listing, one line per action (`role:verb  description`).
pub fn tasks_listing(roles: &Roles) -> Result<String, Diagnostics> {
    let actions = all_actions(roles)?;
    let width = actions.iter().map(|a| a.role.len() + a.verb.len() + 1).max().unwrap_or(0);
    let mut out = String::new();
    for a in &actions {
        let name = format!("{}:{}", a.role, a.verb);
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

/// The project, loaded for a command that works on hosts by their variables.
pub struct Project {
    pub inventory: Inventory,
    pub roles: Roles,
    pub extra: Mapping,
}

impl Project {
    pub fn load(inventory: &Path, extra_vars: &[String]) -> Result<Project, Diagnostics> {
        let inv = Inventory::load(inventory)?;
        let roles = load_roles(inventory)?;
        let extra = parse_extra_vars(extra_vars).map_err(Diagnostic::new)?;
        let mut errors = Diagnostics::default();
        for host in &inv.hosts {
            for (i, r) in host.roles.iter().enumerate() {
                if roles.get(r).is_none() {
                    errors.push(
                        inv.doc
                            .error(&crate::yaml::index(&key(&host.path, "roles"), i), format!("unknown role `{r}`"))
                            .did_you_mean(r, roles.roles.keys().map(String::as_str)),
                    );
                }
            }
        }
        errors.into_result()?;
        Ok(Project { inventory: inv, roles, extra })
    }

    /// The hosts matching `limits` (host or group names; empty: all). Unknown names are errors.
    pub fn limited(&self, limits: &[String]) -> Result<Vec<Host>, Diagnostics> {
        Ok(self.inventory.limited(limits)?.into_iter().cloned().collect())
    }

    /// The merged variables of `host` (role defaults of its roles and their dependencies <
    /// inventory < host < `-e`), and the secrets to redact from its output.
    pub fn host_vars(&self, host: &Host) -> Result<(Mapping, Secrets), Diagnostics> {
        let mut secrets = self.inventory.secrets.clone();
        let role_names = self.roles.with_dependencies(&host.roles);
        let vars = crate::resources::host_vars(&self.inventory, host, &self.roles, &role_names, &self.extra, &mut secrets)?;
        Ok((vars, secrets))
    }

    /// Errors when a host can't be connected to (placeholder address, unset `!env`).
    pub fn preflight(&self, hosts: &[Host], secrets: &Secrets) -> Result<(), Diagnostics> {
        self.inventory.preflight(hosts, &secrets.missing_env)
    }
}

/// A variable of a host as a string, if set.
pub fn var_str(vars: &Mapping, name: &str) -> Option<String> {
    vars.get(name).and_then(crate::yaml::scalar_string).filter(|s| !s.trim().is_empty())
}

/// A variable as a list of strings: a YAML list, or a string of whitespace-separated words.
pub fn var_list(vars: &Mapping, name: &str) -> Option<Vec<String>> {
    match vars.get(name)? {
        Value::Sequence(items) => Some(items.iter().filter_map(crate::yaml::scalar_string).collect()),
        Value::Null => None,
        other => crate::yaml::scalar_string(other).map(|s| s.split_whitespace().map(String::from).collect()),
    }
}

/// Renders a template string with `vars`.
pub fn render(role: &Role, source: &str, vars: &Mapping, at: &Location) -> Result<String, Diagnostic> {
    role.templates.render_str(source, &JValue::from(Serde(vars)), at)
}

/// Evaluates a `when` expression (`{{ expr }}` or a bare expression) with `vars`.
pub fn eval_when(role: &Role, source: &str, vars: &Mapping, at: &Location) -> Result<bool, Diagnostic> {
    let t = source.trim();
    let expr = t.strip_prefix("{{").and_then(|s| s.strip_suffix("}}")).unwrap_or(t);
    let out = render(role, &format!("{{% if {expr} %}}true{{% else %}}false{{% endif %}}"), vars, at)?;
    Ok(out.trim() == "true")
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
pub fn plan_do(project: &Project, spec: &str, limits: &[String]) -> Result<(Action, Vec<HostAction>), Diagnostics> {
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
    let hosts: Vec<Host> = project.limited(limits)?.into_iter().filter(|h| project.roles.with_dependencies(&h.roles).iter().any(|r| r == role_name)).collect();
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
        let resolved = (|| -> Result<HostAction, Diagnostic> {
            if let Some(w) = &action.when {
                if !eval_when(role, w, &vars, &action.location)? {
                    return Ok(HostAction { host: host.clone(), script: None, user: String::new(), secrets: secrets.clone() });
                }
            }
            let user = match &action.user {
                Some(u) => render(role, u, &vars, &action.location)?,
                None => var_str(&vars, "deploy_user").unwrap_or_else(|| "deploy".into()),
            };
            let user = user.trim().to_string();
            if user.is_empty() || !user.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
                return Err(Diagnostic::new(format!("action `{}:{}`: `{user}` is not a user name", action.role, action.verb)).at(action.location.clone()));
            }
            // The role's own code, its values quoted as they are printed into it.
            let run = role.templates.render_code(&action.run, &JValue::from(Serde(&vars)), &action.location, crate::template::CodeKind::Shell)?;
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

/// The result of an action on one host.
#[derive(Debug)]
pub struct DoResult {
    pub host: String,
    pub skipped: bool,
    pub status: Option<i32>,
    pub error: Option<String>,
}

/// A temp dir for SSH control sockets.
pub fn control_dir() -> Result<tempfile::TempDir> {
    tempfile::Builder::new().prefix(".pv-ssh-").tempdir_in("/tmp").map_err(|e| anyhow!("cannot create a directory for SSH control sockets in /tmp: {e}"))
}

/// `provision do ROLE:VERB`: runs the action on every host in parallel (at most `forks`
/// at once), printing each output line prefixed by the host's name.
pub async fn run_do(project: &Project, planned: Vec<HostAction>, forks: usize, verbose: bool) -> Result<Vec<DoResult>> {
    let dir = control_dir()?;
    let ssh = Arc::new(project.inventory.ssh.clone());
    let sem = Arc::new(tokio::sync::Semaphore::new(forks.max(1)));
    let mut set = tokio::task::JoinSet::new();
    for (i, a) in planned.into_iter().enumerate() {
        let ssh = ssh.clone();
        let sem = sem.clone();
        let dir = dir.path().to_path_buf();
        set.spawn(async move {
            let _permit = sem.acquire_owned().await;
            (i, do_host(a, &ssh, &dir, verbose).await)
        });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        out.push(r.map_err(|e| anyhow!("internal error: a host task panicked: {e}"))?);
    }
    out.sort_by_key(|(i, _)| *i);
    Ok(out.into_iter().map(|(_, r)| r).collect())
}

async fn do_host(a: HostAction, ssh: &crate::inventory::SshSettings, dir: &Path, verbose: bool) -> DoResult {
    let name = a.host.name.clone();
    let Some(script) = &a.script else {
        println!("{name}: skipped (`when` is false on this host)");
        return DoResult { host: name, skipped: true, status: None, error: None };
    };
    let conn = match Connection::connect(&a.host, ssh, dir, false).await {
        Ok(c) => c,
        Err(e) => return DoResult { host: name.clone(), skipped: false, status: None, error: Some(a.secrets.redact(&format!("{e:#}"))) },
    };
    if verbose {
        println!("{name}: running as {}", a.user);
    }
    let full = with_tmp(as_user_script(&a.user, script));
    let secrets = a.secrets.clone();
    let res = conn
        .run_script_streaming(&full, Duration::from_secs(3600), |line| println!("{name}: {}", secrets.redact(line)))
        .await;
    conn.close().await;
    match res {
        Ok((status, stderr)) => {
            for l in stderr.lines() {
                eprintln!("{name}: {}", a.secrets.redact(l));
            }
            let error = match status {
                Some(0) => None,
                s => {
                    let mut e = format!("the action ended with status {}", s.map(|s| s.to_string()).unwrap_or_else(|| "(killed)".into()));
                    if stderr.contains("a password is required") || stderr.contains("not allowed to execute") || stderr.contains("may not run sudo") {
                        e.push_str(&format!("; `sudo -n` refused a command for {}: the role's sudoers rules must allow exactly that command", a.user));
                    }
                    Some(e)
                }
            };
            DoResult { host: name, skipped: false, status, error }
        }
        Err(e) => DoResult { host: name, skipped: false, status: None, error: Some(a.secrets.redact(&format!("{e:#}"))) },
    }
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
    fn when_evaluates() {
        let (_d, roles) = role_with("a:\n  run: true\n");
        let role = roles.get("sidekiq").unwrap();
        let mut vars = Mapping::new();
        vars.insert("r".into(), "replica".into());
        let at = Location::file("x");
        assert!(eval_when(role, "{{ r == 'replica' }}", &vars, &at).unwrap());
        assert!(!eval_when(role, "r == 'primary'", &vars, &at).unwrap());
        assert!(eval_when(role, "{{ nope }}", &vars, &at).is_err());
    }

    #[test]
    fn user_script_runs_locally() {
        // As root locally only when we are root (the tests run as root on the testbed machine).
        let script = with_tmp(as_user_script("root", &Script::user_code("echo \"hi $((1+1))\"\n")));
        let out = std::process::Command::new("sh").arg("-c").arg(&script).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "hi 2", "{}", String::from_utf8_lossy(&out.stderr));
    }
}

// ------------------------------------------------------------------ command line

pub const DO_HELP: &str = "Examples:
  provision do inventories/staging.yml sidekiq:quiet
  provision do sidekiq:restart --limit worker1
  provision do puma:phased-restart
  provision do inventories/staging.yml mysql:backup     (runs on the replica only)

The action runs on every host with that role, as its `user` (default: the deploy user), so
privileged steps go through the sudoers rules the role installs. `provision tasks` lists
the actions.

Exit status: 0 when it succeeded on every host, 1 otherwise.";

pub const TASKS_HELP: &str = "Example:
  provision tasks                  every role's actions with their descriptions (like cap -T)";

/// `provision do`.
#[derive(clap::Args, Debug, Clone)]
pub struct DoArgs {
    /// [INVENTORY] ROLE:VERB (the inventory defaults to $PROVISION_INVENTORY, else inventories/staging.yml)
    #[arg(value_name = "ARGS", num_args = 1..=2, required = true)]
    pub args: Vec<String>,
    #[command(flatten)]
    pub hosts: crate::flags::HostOptions,
}

/// `provision tasks`.
#[derive(clap::Args, Debug, Clone)]
pub struct TasksArgs {
    /// The inventory file, to find the roles beside it [default: $PROVISION_INVENTORY, else inventories/staging.yml]
    pub inventory: Option<PathBuf>,
}

pub fn cli_do(a: DoArgs) -> i32 {
    let (inventory, spec) = match a.args.as_slice() {
        [spec] => (None, spec.clone()),
        [inv, spec] => (Some(PathBuf::from(inv)), spec.clone()),
        _ => {
            eprintln!("error: give [INVENTORY] ROLE:VERB");
            return 1;
        }
    };
    if let Err(e) = check_spec(&spec) {
        eprintln!("error: {e}\n  help: `provision tasks` lists every action");
        return 1;
    }
    let inventory = crate::inventory::inventory_path(inventory);
    let project = match Project::load(&inventory, &a.hosts.extra_vars) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let (action, planned) = match plan_do(&project, &spec, &a.hosts.limits) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    println!("{}:{} ({}) on {}", action.role, action.verb, action.description.split_whitespace().collect::<Vec<_>>().join(" "), planned.iter().map(|p| p.host.name.as_str()).collect::<Vec<_>>().join(" "));
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return 1;
        }
    };
    match rt.block_on(run_do(&project, planned, a.hosts.forks, a.hosts.verbose)) {
        Ok(results) => {
            let failed: Vec<&DoResult> = results.iter().filter(|r| r.error.is_some()).collect();
            for r in &results {
                match (&r.error, r.skipped) {
                    (Some(e), _) => println!("{}: FAILED: {e}", r.host),
                    (None, true) => {}
                    (None, false) => println!("{}: ok", r.host),
                }
            }
            let ran = results.iter().filter(|r| !r.skipped).count();
            println!("{}:{}: {} ok, {} failed, {} skipped", action.role, action.verb, ran - failed.len(), failed.len(), results.len() - ran);
            if failed.is_empty() && ran > 0 {
                0
            } else {
                if ran == 0 {
                    eprintln!("error: `when` excluded every host; nothing ran");
                }
                1
            }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    }
}

pub fn cli_tasks(a: TasksArgs) -> i32 {
    let inventory = crate::inventory::inventory_path(a.inventory);
    let roles = match load_roles(&inventory) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    match tasks_listing(&roles) {
        Ok(s) => {
            print!("{s}");
            0
        }
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}
