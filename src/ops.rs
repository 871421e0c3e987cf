//! Operations: each CLI command is one call here. An operation chains the pipeline stages
//! (inventory → variables → roles → resources → probe → plan → apply → report) and
//! returns what happened; it parses no arguments.

use crate::apply::{self, Event, EventParser, Outcome};
use crate::error::{Diagnostic, Diagnostics, Location};
use crate::inventory::{Host, Inventory};
use crate::planner::plan_host;
use crate::report::{ChangeResult, HostReport, HostStatus, Reporter, RunReport, Summary, Timings};
use crate::resources::{lower_host, HostResources};
use crate::roles::{find_roles_dir, Roles};
use crate::transport::{Connection, DEFAULT_COMMAND_TIMEOUT};
use crate::vars::parse_extra_vars;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to load and for which hosts.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub inventory: PathBuf,
    pub roles: Vec<String>,
    pub limits: Vec<String>,
    pub extra_vars: Vec<String>,
}

/// A loaded project, with every selected host's resources.
pub struct Loaded {
    pub inventory: Inventory,
    pub roles: Roles,
    pub hosts: Vec<(Host, HostResources)>,
}

/// Loads the inventory and the roles and lowers every selected host's tasks. Every error
/// found is returned; nothing connects.
pub fn load(sel: &Selection) -> Result<Loaded, Diagnostics> {
    let inventory = Inventory::load(&sel.inventory)?;
    let roles_dir = find_roles_dir(&sel.inventory).ok_or_else(|| {
        Diagnostic::new("no `roles/` directory found beside or above the inventory, nor in the current directory")
            .at(Location::file(&sel.inventory))
    })?;
    let roles = Roles::load(&roles_dir)?;
    let extra = parse_extra_vars(&sel.extra_vars).map_err(Diagnostic::new)?;
    let mut errors = Diagnostics::default();

    for r in &sel.roles {
        if roles.get(r).is_none() {
            errors.push(Diagnostic::new(format!("`--role {r}`: no such role")).did_you_mean(r, roles.roles.keys().map(String::as_str)));
        }
    }
    let limited = match inventory.limited(&sel.limits) {
        Ok(hosts) => hosts,
        Err(e) => {
            errors.0.extend(e.0);
            Vec::new()
        }
    };
    errors.clone().into_result()?;

    let mut hosts = Vec::new();
    for host in limited {
        if !sel.roles.is_empty() && !host.roles.iter().any(|r| sel.roles.contains(r)) {
            continue;
        }
        match lower_host(&inventory, host, &roles, &extra, &sel.roles) {
            Ok(res) => hosts.push((host.clone(), res)),
            Err(e) => {
                for d in e.0 {
                    if !errors.0.contains(&d) {
                        errors.push(d);
                    }
                }
            }
        }
    }
    errors.into_result()?;
    Ok(Loaded { inventory, roles, hosts })
}

/// `provision validate`: loads everything and renders every template for every host.
pub fn validate(inventory: &Path) -> Result<usize, Diagnostics> {
    let loaded = load(&Selection { inventory: inventory.to_path_buf(), ..Default::default() })?;
    Ok(loaded.hosts.len())
}

/// Options of a converge run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub selection: Selection,
    pub check: bool,
    pub forks: usize,
}

/// `provision INVENTORY [--check]`: probe, plan and (unless checking) apply on every
/// selected host in parallel.
pub async fn run(opts: &RunOptions, reporter: Arc<Reporter>) -> Result<RunReport, Diagnostics> {
    let loaded = load(&opts.selection)?;
    loaded.inventory.preflight(loaded.hosts.iter().map(|(h, _)| h), loaded.hosts.iter().flat_map(|(_, r)| &r.secrets.missing_env))?;
    let control_dir = tempfile::Builder::new()
        .prefix(".pv-ssh-")
        .tempdir_in("/tmp")
        .map_err(|e| Diagnostic::new(format!("cannot create a directory for SSH control sockets in /tmp: {e}")))?;
    let ssh = Arc::new(loaded.inventory.ssh.clone());
    let who = format!("provision on {} at {}", hostname(), unix_now());
    let check = opts.check;
    let dir = control_dir.path().to_path_buf();
    let hosts = in_parallel(loaded.hosts, opts.forks, move |(host, res)| {
        let (ssh, reporter, dir, who) = (ssh.clone(), reporter.clone(), dir.clone(), who.clone());
        async move { converge_host(host, res, &ssh, &dir, check, &who, &reporter).await }
    })
    .await?;
    Ok(summarize(if check { "check" } else { "apply" }, hosts))
}

/// Runs `work` for every item, at most `forks` at a time, and returns the results in the
/// items' order. A failing host is a result like any other; only a panic is an error.
pub async fn in_parallel<T, F, Fut, R>(items: Vec<T>, forks: usize, work: F) -> Result<Vec<R>, Diagnostics>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = R> + Send + 'static,
{
    let forks = Arc::new(tokio::sync::Semaphore::new(forks.max(1)));
    let mut set = tokio::task::JoinSet::new();
    for (i, item) in items.into_iter().enumerate() {
        let forks = forks.clone();
        let job = work(item);
        set.spawn(async move {
            let _permit = forks.acquire_owned().await;
            (i, job.await)
        });
    }
    let mut results = Vec::new();
    while let Some(done) = set.join_next().await {
        match done {
            Ok(r) => results.push(r),
            Err(e) => return Err(Diagnostic::new(format!("internal error: a host task panicked: {e}")).into()),
        }
    }
    results.sort_by_key(|(i, _)| *i);
    Ok(results.into_iter().map(|(_, r)| r).collect())
}

/// After login files changed: a FRESH connection (not the multiplexed one, which stays
/// authenticated whatever the files say) must log in and pass `sudo -n true`. Returns the
/// line to send to the waiting apply script, and why the login failed, if it did.
async fn lockout_canary(host: &Host, ssh: &crate::inventory::SshSettings, control_dir: &Path) -> (String, Option<String>) {
    match login_with_sudo(host, ssh, &control_dir.join(format!("canary-{}", host.name))).await {
        Ok(()) => (apply::CANARY_CONFIRM.to_string(), None),
        Err(why) => (apply::CANARY_REVERT.to_string(), Some(format!("{why:#}"))),
    }
}

/// Options of `provision bootstrap`.
#[derive(Debug, Clone)]
pub struct BootstrapOptions {
    pub selection: Selection,
    /// Overrides the inventory's `ssh.initial_user`.
    pub initial_user: Option<String>,
    pub forks: usize,
}

/// The roles bootstrap applies: first as the initial user, then, after a fresh admin login
/// with `sudo -n true` worked, the sshd hardening as the admin.
const BOOTSTRAP_ROLES: [&str; 2] = ["bootstrap", "bootstrap-ssh"];

/// `provision bootstrap`: from "root with a key" to "ready for provisioning", without
/// locking anyone out. A host already bootstrapped is reached as the admin and nothing changes.
pub async fn bootstrap(opts: &BootstrapOptions, reporter: Arc<Reporter>) -> Result<RunReport, Diagnostics> {
    let inventory = Inventory::load(&opts.selection.inventory)?;
    let roles_dir = find_roles_dir(&opts.selection.inventory)
        .ok_or_else(|| Diagnostic::new("no `roles/` directory found beside or above the inventory").at(Location::file(&opts.selection.inventory)))?;
    let roles = Roles::load(&roles_dir)?;
    let extra = parse_extra_vars(&opts.selection.extra_vars).map_err(Diagnostic::new)?;
    let initial_user = opts.initial_user.clone().unwrap_or_else(|| inventory.ssh.initial_user.clone());
    let mut errors = Diagnostics::default();
    for r in BOOTSTRAP_ROLES {
        if roles.get(r).is_none() {
            errors.push(Diagnostic::new(format!("the project has no `roles/{r}`, which bootstrap applies")).help("copy roles/bootstrap and roles/bootstrap-ssh from provision's repository"));
        }
    }
    let mut plans = Vec::new();
    for host in inventory.limited(&opts.selection.limits)? {
        if host.user == "root" {
            errors.push(inventory.doc.error(&host.path, format!("host `{}` connects as root; bootstrap creates an admin user and then disables root login", host.name)).help("set `user: admin` (the admin bootstrap creates) on the host"));
            continue;
        }
        let mut phases = Vec::new();
        for r in BOOTSTRAP_ROLES {
            let mut h = host.clone();
            h.roles = vec![r.to_string()];
            match lower_host(&inventory, &h, &roles, &extra, &[]) {
                Ok(res) => phases.push(res),
                Err(e) => errors.0.extend(e.0),
            }
        }
        plans.push((host.clone(), phases));
    }
    errors.into_result()?;
    inventory.preflight(plans.iter().map(|(h, _)| h), plans.iter().flat_map(|(_, phases)| phases.iter().flat_map(|r| &r.secrets.missing_env)))?;
    let control_dir = tempfile::Builder::new().prefix(".pv-ssh-").tempdir_in("/tmp").map_err(|e| Diagnostic::new(format!("cannot create /tmp/.pv-ssh-*: {e}")))?;
    let ssh = Arc::new(inventory.ssh.clone());
    let who = format!("provision bootstrap on {} at {}", hostname(), unix_now());
    let base = control_dir.path().to_path_buf();
    let hosts = in_parallel(plans.into_iter().enumerate().collect(), opts.forks, move |(i, (host, phases))| {
        let (ssh, reporter, who, initial_user) = (ssh.clone(), reporter.clone(), who.clone(), initial_user.clone());
        let dir = base.join(format!("h{i}"));
        async move { bootstrap_host(host, phases, &ssh, &dir, &who, &reporter, &initial_user).await }
    })
    .await?;
    Ok(summarize("apply", hosts))
}

/// Whether `host` accepts a fresh login (a new master connection, in `dir`) as its
/// inventory user, with `sudo -n true` when that user is not root.
async fn login_with_sudo(host: &Host, ssh: &crate::inventory::SshSettings, dir: &Path) -> anyhow::Result<()> {
    let conn = Connection::connect(host, ssh, dir, false).await?;
    let out = conn.run_script(&crate::sh!("exit 0\n"), Duration::from_secs(30)).await;
    conn.close().await;
    match out? {
        o if o.status == Some(0) => Ok(()),
        o => Err(anyhow::anyhow!("`sudo -n true` as {} failed: {}", host.user, o.stderr.trim())),
    }
}

async fn bootstrap_host(host: Host, mut phases: Vec<HostResources>, ssh: &crate::inventory::SshSettings, dir: &Path, who: &str, reporter: &Reporter, initial_user: &str) -> HostReport {
    let hardening = phases.pop().unwrap_or_default();
    let users = phases.pop().unwrap_or_default();
    let admin_dir = dir.join("admin");
    let _ = std::fs::create_dir_all(&admin_dir);
    // Already bootstrapped: the admin gets in, so go on as the admin (root may be refused by now).
    let already = login_with_sudo(&host, ssh, &admin_dir).await.is_ok();
    let first = if already {
        reporter.note(&host.name, "already bootstrapped: connecting as the admin");
        converge_host_with(host.clone(), users, ssh, &dir.join("p1"), false, who, reporter, false).await
    } else {
        let mut initial = host.clone();
        initial.user = initial_user.to_string();
        reporter.note(&host.name, &format!("connecting as the initial user {initial_user}; a new host key is recorded"));
        converge_host_with(initial, users, ssh, &dir.join("p1"), false, who, reporter, true).await
    };
    if first.status == HostStatus::Failed {
        return first;
    }
    // The canary: a fresh login as the admin, with sudo, before root login is switched off.
    if let Err(e) = login_with_sudo(&host, ssh, &dir.join("canary")).await {
        let mut r = first;
        r.status = HostStatus::Failed;
        r.error = Some(format!("a fresh login as the admin `{}` with `sudo -n true` failed, so root and password login were left as they are: {e:#}", host.user));
        return r;
    }
    let second = converge_host(host.clone(), hardening, ssh, &dir.join("p2"), false, who, reporter).await;
    merge_reports(first, second)
}

fn merge_reports(mut a: HostReport, b: HostReport) -> HostReport {
    a.changes.extend(b.changes);
    a.unchanged += b.unchanged;
    a.round_trips += b.round_trips;
    a.timings_ms.connect += b.timings_ms.connect;
    a.timings_ms.probe += b.timings_ms.probe;
    a.timings_ms.apply += b.timings_ms.apply;
    a.status = if b.status == HostStatus::Failed || a.status == HostStatus::Failed {
        HostStatus::Failed
    } else if a.changes.is_empty() {
        HostStatus::Ok
    } else {
        HostStatus::Changed
    };
    a.error = a.error.or(b.error);
    a
}

/// The run's report from its hosts' reports.
fn summarize(mode: &'static str, hosts: Vec<HostReport>) -> RunReport {
    let summary = Summary {
        hosts: hosts.len(),
        ok: hosts.iter().filter(|h| h.status == HostStatus::Ok).count(),
        changed: hosts.iter().filter(|h| h.status == HostStatus::Changed).count(),
        failed: hosts.iter().filter(|h| h.status == HostStatus::Failed).count(),
        changes: hosts.iter().map(|h| h.changes.iter().filter(|c| c.status != "not run").count()).sum(),
    };
    RunReport { mode, hosts, summary }
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname").map(|s| s.trim().to_string()).unwrap_or_else(|_| "controller".into())
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn failed_report(host: &Host, error: String, timings: Timings, round_trips: usize) -> HostReport {
    HostReport {
        host: host.name.clone(),
        address: host.address.clone(),
        status: HostStatus::Failed,
        changes: Vec::new(),
        unchanged: 0,
        error: Some(error),
        round_trips,
        timings_ms: timings,
    }
}

/// One host: connect, probe, plan, and apply unless checking. Never panics; every failure
/// becomes the host's error and the other hosts carry on.
async fn converge_host(host: Host, res: HostResources, ssh: &crate::inventory::SshSettings, control_dir: &Path, check: bool, who: &str, reporter: &Reporter) -> HostReport {
    converge_host_with(host, res, ssh, control_dir, check, who, reporter, false).await
}

/// [`converge_host`], optionally trusting a host key seen for the first time (bootstrap only).
#[allow(clippy::too_many_arguments)]
async fn converge_host_with(host: Host, res: HostResources, ssh: &crate::inventory::SshSettings, control_dir: &Path, check: bool, who: &str, reporter: &Reporter, accept_new_host_key: bool) -> HostReport {
    let mut timings = Timings::default();
    let secrets = res.secrets.clone();
    let t = Instant::now();
    let conn = match Connection::connect(&host, ssh, control_dir, accept_new_host_key).await {
        Ok(c) => c,
        Err(e) => return failed_report(&host, secrets.redact(&format!("{e:#}")), timings, 0),
    };
    timings.connect = t.elapsed().as_millis();
    reporter.note(&host.name, &format!("connected in {} ms", timings.connect));

    let mut request = crate::facts::FactRequest::default();
    for e in &res.entries {
        e.resource.probe(&mut request);
    }
    for h in &res.handlers {
        for r in &h.resources {
            r.probe(&mut request);
        }
    }
    let t = Instant::now();
    let probe_script = crate::probe::script(&request);
    let probed = conn.run_script(&probe_script, Duration::from_secs(300)).await;
    timings.probe = t.elapsed().as_millis();
    let output = match probed {
        Ok(o) if crate::probe::complete(&o.stdout) => o,
        Ok(o) => {
            let rt = conn.round_trips();
            conn.close().await;
            return failed_report(&host, secrets.redact(&format!("the probe did not complete (exit status {:?}): {}", o.status, o.stderr.trim())), timings, rt);
        }
        Err(e) => {
            let rt = conn.round_trips();
            conn.close().await;
            return failed_report(&host, secrets.redact(&format!("{e:#}")), timings, rt);
        }
    };
    let facts = crate::probe::parse(&output.stdout);
    reporter.note(&host.name, &format!("probed {} paths, {} packages, {} units in {} ms", request.paths.len(), request.packages_present.len() + request.packages_absent.len(), request.units.len(), timings.probe));

    let plan = match plan_host(&res, &facts) {
        Ok(p) => p,
        Err(errors) => {
            let rt = conn.round_trips();
            conn.close().await;
            let text = errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n");
            return failed_report(&host, secrets.redact(&format!("nothing was changed on this host:\n{text}")), timings, rt);
        }
    };
    let mut report = HostReport {
        host: host.name.clone(),
        address: host.address.clone(),
        status: if plan.changes.is_empty() { HostStatus::Ok } else { HostStatus::Changed },
        changes: Vec::new(),
        unchanged: plan.unchanged,
        error: None,
        round_trips: 0,
        timings_ms: Timings::default(),
    };
    let redact_change = |c: &crate::plan::Change| {
        let mut c = c.clone();
        c.diff = c.diff.map(|d| secrets.redact(&d));
        c.details = c.details.iter().map(|d| secrets.redact(d)).collect();
        c.target = secrets.redact(&c.target);
        c
    };
    if check || plan.changes.is_empty() {
        if let Some(holder) = &facts.lock_holder {
            reporter.note(&host.name, &format!("note: another run holds the lock: {holder}"));
        }
        reporter.planned(&plan, &secrets);
        report.changes = plan.changes.iter().map(|c| ChangeResult { change: redact_change(c), status: "planned".into(), error: None }).collect();
    } else {
        let t = Instant::now();
        let script = apply::script(&plan.changes, who);
        let mut parser = EventParser::default();
        let mut results: Vec<Option<ChangeResult>> = vec![None; plan.changes.len()];
        let mut locked = None;
        let mut canary_armed = None;
        let mut canary_result = None;
        let canary_why = Arc::new(std::sync::Mutex::new(None));
        let answer: Option<std::pin::Pin<Box<dyn std::future::Future<Output = String> + Send + '_>>> =
            if plan.changes.iter().any(|c| c.login_file.is_some()) {
                let why = canary_why.clone();
                let host = &host;
                Some(Box::pin(async move {
                    let (line, failure) = lockout_canary(host, ssh, control_dir).await;
                    if let Ok(mut w) = why.lock() {
                        *w = failure;
                    }
                    line
                }))
            } else {
                None
            };
        let outcome = conn
            .run_script_conversation(&script, DEFAULT_COMMAND_TIMEOUT, |line| match parser.line(line) {
                Some(Event::Finished { index, outcome }) if index < results.len() => {
                    let c = &plan.changes[index];
                    let (status, error) = match outcome {
                        Outcome::Done => ("done", None),
                        Outcome::Failed { output, status } => ("failed", Some(format!("exit status {status}: {}", output.trim_end()))),
                    };
                    reporter.applied(&host.name, c, &secrets, error.as_deref());
                    results[index] = Some(ChangeResult { change: redact_change(c), status: status.into(), error: error.map(|e| secrets.redact_error(&e)) });
                }
                Some(Event::Locked { holder }) => locked = Some(holder),
                Some(Event::CanaryArmed { timer }) => canary_armed = Some(timer),
                Some(e @ (Event::CanaryConfirmed | Event::CanaryReverted)) => canary_result = Some(e),
                _ => {}
            }, answer, "@@PV canary wait")
            .await;
        let why = canary_why.lock().ok().and_then(|w| w.clone());
        let canary_error = match (canary_armed, canary_result, why) {
            (None, _, _) | (Some(_), Some(Event::CanaryConfirmed), None) => None,
            (Some(_), Some(Event::CanaryReverted), why) => Some(format!(
                "lockout canary: after the change a fresh login as {} with `sudo -n true` failed ({}); the changed login files (sudoers, authorized_keys) were put back as they were",
                host.user,
                why.unwrap_or_else(|| "no answer".into())
            )),
            (Some(true), _, _) => Some(format!(
                "lockout canary: the host did not confirm the login check; its {} timer puts the previous login files back within {} s",
                apply::CANARY_UNIT,
                apply::CANARY_SECONDS
            )),
            // Say only what is true: without the timer nothing reverts by itself.
            (Some(false), _, _) => Some(format!(
                "lockout canary: the host did not confirm the login check, and systemd could not start the {} timer there, so nothing reverts the login files by itself: log in and check them (the previous versions are in {}/saved)",
                apply::CANARY_UNIT,
                apply::CANARY_DIR
            )),
        };
        timings.apply = t.elapsed().as_millis();
        let any_failed = results.iter().flatten().any(|r| r.status == "failed");
        report.changes = plan
            .changes
            .iter()
            .zip(results)
            .map(|(c, r)| r.unwrap_or_else(|| ChangeResult { change: redact_change(c), status: "not run".into(), error: None }))
            .collect();
        let error = match (outcome, locked, any_failed) {
            _ if canary_error.is_some() => canary_error,
            (_, Some(holder), _) => Some(format!("another provision run holds the lock on this host: {holder}; nothing was changed. Wait for it to finish (a lock left by a dead run is taken over automatically)")),
            (Err(e), _, _) => Some(format!("{e:#}")),
            (Ok(_), _, true) => Some("a change failed; the changes after it were not made".to_string()),
            (Ok((Some(0), _)), _, false) => None,
            (Ok((status, stderr)), _, false) => Some(format!("the apply script ended with status {status:?}: {}", stderr.trim())),
        };
        if let Some(e) = error {
            report.status = HostStatus::Failed;
            report.error = Some(secrets.redact_error(&e));
        }
    }
    report.round_trips = conn.round_trips();
    report.timings_ms = timings;
    conn.close().await;
    report
}
