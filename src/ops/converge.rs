//! Converge (`provision INVENTORY [--check]`) and `provision validate`: probe every
//! selected host in one round trip, plan, and (unless checking) apply, hosts in parallel.

use crate::apply::{self, Event, EventParser, Outcome};
use crate::error::{Diagnostic, Diagnostics};
use crate::inventory::{Host, SshSettings};
use crate::planner::plan_host;
use crate::project::{Project, Selection};
use crate::report::{ChangeResult, HostReport, HostStatus, Reporter, RunReport, Timings};
use crate::resources::HostResources;
use crate::runner::in_parallel;
use crate::transport::{Connection, DEFAULT_COMMAND_TIMEOUT};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `provision validate`: loads everything and renders every template for every host.
pub fn validate(inventory: &Path) -> Result<usize, Diagnostics> {
    let project = Arc::new(Project::load(&Selection { inventory: inventory.to_path_buf(), ..Default::default() })?);
    Ok(project.lower()?.len())
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
    let project = Arc::new(Project::load(&opts.selection)?);
    let hosts = project.lower_known()?;
    project.inventory.preflight(hosts.iter().map(|(h, _)| h), hosts.iter().flat_map(|(_, r)| &r.secrets.missing_env))?;
    let control_dir = tempfile::Builder::new()
        .prefix(".pv-ssh-")
        .tempdir_in("/tmp")
        .map_err(|e| Diagnostic::new(format!("cannot create a directory for SSH control sockets in /tmp: {e}")))?;
    let ssh = Arc::new(project.inventory.ssh.clone());
    let who = format!("provision on {} at {}", super::hostname(), super::unix_now());
    let check = opts.check;
    let dir = control_dir.path().to_path_buf();
    let hosts = in_parallel(hosts, opts.forks, move |(host, res)| {
        let (ssh, reporter, dir, who) = (ssh.clone(), reporter.clone(), dir.clone(), who.clone());
        async move { converge_host(host, res, &ssh, &dir, check, &who, &reporter).await }
    })
    .await
    .map_err(|e| Diagnostic::new(format!("{e:#}")))?;
    Ok(super::summarize(if check { "check" } else { "apply" }, hosts))
}


/// Whether `host` accepts a fresh login (a new master connection, in `dir`, never a
/// persistent one) as its inventory user, with `sudo -n true` when that user is not root.
pub(super) async fn login_with_sudo(host: &Host, ssh: &SshSettings, dir: &Path) -> anyhow::Result<()> {
    let conn = Connection::connect_fresh(host, ssh, dir, false, crate::transport::RUN_MASTER_SECS).await?;
    let out = conn.run_script(&crate::sh!("exit 0\n"), Duration::from_secs(30)).await;
    conn.close().await;
    match out? {
        o if o.status == Some(0) => Ok(()),
        o => Err(anyhow::anyhow!("`sudo -n true` as {} failed: {}", host.user, o.stderr.trim())),
    }
}

/// After login files changed: a FRESH connection (not the multiplexed one, which stays
/// authenticated whatever the files say) must log in and pass `sudo -n true`. Returns the
/// line to send to the waiting apply script, and why the login failed, if it did.
async fn lockout_canary(host: &Host, ssh: &SshSettings, control_dir: &Path) -> (String, Option<String>) {
    match login_with_sudo(host, ssh, &control_dir.join(format!("canary-{}", host.name))).await {
        Ok(()) => (apply::CANARY_CONFIRM.to_string(), None),
        Err(why) => (apply::CANARY_REVERT.to_string(), Some(format!("{why:#}"))),
    }
}


/// What the probe must read for `res`.
fn fact_request(res: &HostResources) -> crate::facts::FactRequest {
    let mut request = crate::facts::FactRequest::default();
    for e in &res.entries {
        e.resource.probe(&mut request);
    }
    for h in &res.handlers {
        for r in &h.resources {
            r.probe(&mut request);
        }
    }
    request.host_facts = res.relower.is_some();
    request
}

/// One probe round trip: the facts of `request`, or why they could not be read.
async fn probe(conn: &Connection, request: &crate::facts::FactRequest) -> Result<crate::facts::Facts, String> {
    match conn.run_script(&crate::probe::script(request), Duration::from_secs(300)).await {
        Ok(o) if crate::probe::complete(&o.stdout) => Ok(crate::probe::parse(&o.stdout)),
        Ok(o) => Err(format!("the probe did not complete (exit status {:?}): {}", o.status, o.stderr.trim())),
        Err(e) => Err(format!("{e:#}")),
    }
}

fn facts_summary(f: &crate::host_facts::HostFacts) -> String {
    format!("{} {} {}, {} MB, {} CPUs, {}", f.os_id, f.os_version_id, f.os_codename, f.memory_mb, f.cpus, f.arch)
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
pub(super) async fn converge_host(host: Host, res: HostResources, ssh: &SshSettings, control_dir: &Path, check: bool, who: &str, reporter: &Reporter) -> HostReport {
    converge_host_with(host, res, ssh, control_dir, check, who, reporter, false).await
}

/// [`converge_host`], optionally trusting a host key seen for the first time (bootstrap only).
#[allow(clippy::too_many_arguments)]
pub(super) async fn converge_host_with(host: Host, res: HostResources, ssh: &SshSettings, control_dir: &Path, check: bool, who: &str, reporter: &Reporter, accept_new_host_key: bool) -> HostReport {
    let mut timings = Timings::default();
    let secrets = res.secrets.clone();
    let t = Instant::now();
    reporter.host_state(&host.name, "connecting");
    let connected = if accept_new_host_key { Connection::connect(&host, ssh, control_dir, true).await } else { Connection::connect_reusable(&host, ssh, control_dir).await };
    let mut conn = match connected {
        Ok(c) => c,
        Err(e) => return failed_report(&host, secrets.redact(&format!("{e:#}")), timings, 0),
    };
    timings.connect = t.elapsed().as_millis();
    reporter.note(&host.name, &format!("connected in {} ms{}", timings.connect, if conn.reused { " (reused a persistent connection)" } else { "" }));
    if let Some(note) = &conn.note {
        reporter.note(&host.name, &format!("note: {note}"));
    }

    let request = fact_request(&res);
    let t = Instant::now();
    reporter.host_state(&host.name, "probing");
    let mut probed = probe(&conn, &request).await;
    if probed.is_err() && conn.reused {
        // A kept master whose network connection died still answers locally: end it and
        // log in again (the probe only reads, so running it again is safe).
        reporter.note(&host.name, "the kept connection did not answer; connecting again");
        let earlier = conn.round_trips();
        conn = match conn.reconnect(&host, ssh).await {
            Ok(c) => c,
            Err(e) => return failed_report(&host, secrets.redact(&format!("{e:#}")), timings, earlier),
        };
        probed = probe(&conn, &request).await;
    }
    timings.probe = t.elapsed().as_millis();
    let mut facts = match probed {
        Ok(f) => f,
        Err(e) => {
            let rt = conn.round_trips();
            conn.close().await;
            return failed_report(&host, secrets.redact(&e), timings, rt);
        }
    };
    // A host whose templates read its facts: lowered again with the real ones (see
    // crate::host_facts), and probed again only if that asks the probe for more.
    let (res, secrets) = match res.relower.clone() {
        None => (res, secrets),
        // The host still has the facts it was lowered with: nothing to do again (or the
        // error found with them is the host's).
        Some(relower) if facts.host.as_ref() == Some(&relower.assumed) => match &res.deferred_error {
            None => (res, secrets),
            Some(e) => {
                let rt = conn.round_trips();
                conn.close().await;
                return failed_report(&host, secrets.redact(&format!("nothing was changed on this host:\n{e}")), timings, rt);
            }
        },
        Some(relower) => {
            let relowered = match facts.host.as_ref().ok_or_else(|| "the probe did not report the host's facts (/etc/os-release, /proc/meminfo, nproc, uname)".to_string()) {
                Ok(host_facts) => {
                    crate::host_facts::remember(&relower.login, host_facts);
                    (relower.lower)(host_facts).map_err(|e| format!("with the host's facts ({}):\n{e}", facts_summary(host_facts)))
                }
                Err(e) => Err(e),
            };
            let res = match relowered {
                Ok(r) => r,
                Err(e) => {
                    let rt = conn.round_trips();
                    conn.close().await;
                    return failed_report(&host, secrets.redact(&format!("nothing was changed on this host: {e}")), timings, rt);
                }
            };
            let again = fact_request(&res);
            // A file that already holds what the assumed facts rendered was not read, but
            // differs from what the host's facts render: its diff needs its content.
            let unread = again.hashes.iter().any(|(p, w)| {
                w.read_content && facts.hashes.get(p).is_some_and(|h| *h != w.sha256) && !facts.contents.contains_key(p) && facts.paths.get(p).is_some_and(crate::probe::content_readable)
            });
            if !request.reads_all_of(&again) || unread {
                reporter.note(&host.name, "the host's facts changed what to probe (a path, a package, a guard or a validated file): probing again");
                match probe(&conn, &again).await {
                    Ok(f) => facts = f,
                    Err(e) => {
                        let rt = conn.round_trips();
                        conn.close().await;
                        return failed_report(&host, res.secrets.redact(&e), timings, rt);
                    }
                }
            }
            let secrets = res.secrets.clone();
            (res, secrets)
        }
    };
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
        if !check && facts.stale_leftovers {
            // Nothing to change, but a killed run left its lock or temp directory: the apply
            // script with no changes takes the stale lock over, cleans, and releases it.
            let cleaned = conn.run_script(&apply::script(&[], who), DEFAULT_COMMAND_TIMEOUT).await;
            let note = match cleaned {
                Ok(o) if o.status == Some(0) => "removed what a killed run left behind (its lock, its temp directory)".to_string(),
                Ok(o) => format!("note: could not clean what a killed run left behind (exit status {:?})", o.status),
                Err(e) => format!("note: could not clean what a killed run left behind: {}", secrets.redact(&format!("{e:#}"))),
            };
            reporter.note(&host.name, &note);
        }
    } else {
        let t = Instant::now();
        let total = plan.changes.len();
        reporter.host_state(&host.name, &format!("applying 0/{total}"));
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
                    reporter.host_state(&host.name, &format!("applying {}/{total}", index + 1));
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
    let done = match (&report.status, check) {
        (HostStatus::Failed, _) => "FAILED".to_string(),
        (_, true) => format!("{} to change, {} ok", report.changes.len(), report.unchanged),
        (_, false) => format!("done: {} changed, {} ok", report.changes.len(), report.unchanged),
    };
    reporter.host_state(&host.name, &done);
    report
}

