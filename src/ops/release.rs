//! `provision release`: the new release on every host that runs or serves the app, behind
//! a deploy lock, health-checked beside the running one before it takes any traffic, then
//! switched (all at once or in `--batch`es), restarted and checked again; on a failure
//! every switched host goes back. The steps are described in docs/release.md; the scripts
//! are [`crate::release_scripts`], the hosts' settings [`crate::release_hosts`].

use crate::artifact::{artifact, dir_revision, Source};
use crate::assets::Assets;
use crate::deploy_lock::{controller_name, is_stamp, iso_now, lock_all, random_token, releases_of, utc_stamp, ReleaseTarget};
use crate::project::Selection;
use crate::release_hosts::{migration_host, release_hosts, switch_groups, Batch};
use crate::release_rails::{bundle_cmd_id, bundle_script, migrate_code};
use crate::release_scripts::{abort_script, finish_script, gate_script, header, migrate_script, prepare_script_with, switch_script, upload_payload, Artifact, StepCmd};
use crate::report::{Reporter, VerbReport};
use crate::runner::{close_all, connect_all, control_dir, phase, phase_lazy, run, LazyScript, Out};
use crate::shell::Script;
use anyhow::{anyhow, Result};
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to release, where.
#[derive(Debug, Clone)]
pub struct ReleaseOptions {
    pub selection: Selection,
    pub source: Source,
    /// `--revision`: recorded in REVISION and revisions.log.
    pub revision: Option<String>,
    pub forks: usize,
    /// `--batch`: switch the puma hosts this many (or this share) at a time.
    pub batch: Option<Batch>,
}

/// Outcome of `provision release`.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseReport {
    /// The release's name (its directory under `releases/`).
    pub release: String,
    pub revision: String,
    pub ok: bool,
    pub rolled_back: bool,
    pub hosts: Vec<String>,
    pub seconds: f64,
}

impl VerbReport for ReleaseReport {
    fn ok(&self) -> bool {
        self.ok
    }
    fn closing(&self) -> Vec<(bool, String)> {
        if self.ok {
            return vec![(false, format!("released in {:.1} s", self.seconds))];
        }
        vec![
            (false, format!("release failed in {:.1} s", self.seconds)),
            (true, format!("error: release {} failed{}", self.release, if self.rolled_back { "; rolled back to the previous release" } else { "" })),
        ]
    }
}

/// Runs `provision release`. Ok(report) when it ran to an end (with or without rollback);
/// Err for failures that changed nothing or could not be cleaned up.
pub async fn release(opts: &ReleaseOptions, reporter: &Reporter) -> Result<ReleaseReport> {
    let t_start = Instant::now();
    let (project, hosts, _) = crate::release_hosts::load(&opts.selection)?;
    let host_names: Vec<String> = hosts.iter().map(|(h, _, _)| h.name.clone()).collect();
    let limited = !opts.selection.limits.is_empty() || !opts.selection.roles.is_empty();
    // The migration host is chosen among all release hosts, so that --limit never moves
    // migrations to another host: a limit that leaves it out runs none.
    let migrate_name = if !limited {
        migration_host(&hosts).and_then(|i| hosts.get(i)).map(|(h, _, _)| h.name.clone())
    } else {
        let all = release_hosts(&project, &project.inventory.hosts)?;
        migration_host(&all).and_then(|i| all.get(i)).map(|(h, _, _)| h.name.clone())
    };
    // A --dir without bin/rails or Gemfile.lock: the defaults have nothing to do, and the
    // hosts are not asked (the check on the host is for --artifact).
    let (no_rails, no_lock) = match &opts.source {
        Source::Dir(d) => (!is_executable(&d.join("bin/rails")), !d.join("Gemfile.lock").is_file()),
        Source::Artifact(_) => (false, false),
    };
    let migrate_at = hosts.iter().position(|(h, c, _)| {
        Some(&h.name) == migrate_name.as_ref() && c.migrate != StepCmd::Off && !(c.migrate == StepCmd::Default && no_rails)
    });
    if migrate_at.is_none() && limited {
        if let Some(n) = migrate_name.as_ref().filter(|n| !hosts.iter().any(|(h, _, _)| &&h.name == n)) {
            reporter.event("info", None, &format!("note: migrations run on {n} only, which --limit leaves out: none will run"));
        }
    }
    // 0. assets, built here in a copy of --dir before any host is touched
    let built = build_assets(&opts.source, &hosts, &project.inventory.stage, reporter)?;
    let art = match (&built, &opts.source) {
        (Some(b), Source::Dir(d)) => {
            let rev = opts.revision.clone().or_else(|| dir_revision(d));
            artifact(&Source::Dir(b.dir.clone()), rev.as_deref())?
        }
        _ => artifact(&opts.source, opts.revision.as_deref())?,
    };
    drop(built);
    reporter.event("info", None, &format!("release of revision {} (artifact sha256 {}, {} KiB) to {} hosts: {}",
        art.revision,
        &art.sha256[..12],
        art.bytes.len().div_ceil(1024),
        hosts.len(),
        host_names.join(" ")));
    let dir = control_dir()?;
    let forks = opts.forks;
    let targets = Arc::new(connect_all(&project.inventory.ssh, hosts, dir.path(), forks).await?);
    let token = random_token();
    let who = format!("{}@{}", std::env::var("USER").unwrap_or_else(|_| "root".into()), controller_name());
    let steps = Steps { targets: &targets, token: &token, who: &who, forks, reporter, no_lock };
    let result = steps.release(&art, migrate_at, opts.batch).await;
    if reporter.verbose > 0 {
        for t in targets.iter() {
            reporter.event("host", Some(t.host.name.as_str()), &format!("  {}: {} round trips", t.host.name, t.conn.round_trips()));
        }
    }
    close_all(targets).await;
    let (release, ok, rolled_back) = result?;
    Ok(ReleaseReport { release, revision: art.revision, ok, rolled_back, hosts: host_names, seconds: t_start.elapsed().as_secs_f64() })
}

/// One release's connected hosts and what every step needs.
struct Steps<'a> {
    targets: &'a Arc<Vec<ReleaseTarget>>,
    token: &'a str,
    who: &'a str,
    forks: usize,
    reporter: &'a Reporter,
    /// The --dir has no Gemfile.lock: the default bundle step has nothing to do.
    no_lock: bool,
}

impl Steps<'_> {
    /// Every step after connecting: (the release's name, whether it went live, whether a
    /// failure was rolled back). Err for failures that changed nothing or could not be cleaned up.
    async fn release(&self, art: &Artifact, migrate_at: Option<usize>, batch: Option<Batch>) -> Result<(String, bool, bool)> {
        // 1. lock + probe
        let probes = lock_all(self.targets, self.token, self.who, Some(&art.sha256), self.forks, self.reporter).await?;
        self.reporter.event("phase", None, &format!("[1/8] deploy lock taken on {} hosts", self.targets.len()));
        let ts = release_name(&probes)?;
        let previous: Vec<String> = probes.iter().map(|o| releases_of(o).1).collect();
        // 2-3. upload, unpack, shared links
        if let Err(why) = self.prepare(art, &probes, &ts).await {
            return Err(self.abort(why, Some(&ts)).await);
        }
        // 3½. the gems of the new release, on every host that runs app code
        if let Err(why) = self.bundle(&ts).await {
            return Err(self.abort(why, Some(&ts)).await);
        }
        // 4. migrations on the one primary
        if let Err(why) = self.migrate(migrate_at, &ts).await {
            return Err(self.abort(why, Some(&ts)).await);
        }
        // 5. the health gate, before anything takes traffic
        if let Err(why) = self.gate(&ts).await {
            return Err(self.abort(why, Some(&ts)).await);
        }
        // 6-7. switch, restart, health
        let (switched, failures) = self.switch(&ts, batch).await;
        if !failures.is_empty() {
            let rolled_back = self.roll_back(art, &ts, &previous, &switched, &failures, batch).await;
            return Ok((ts, false, rolled_back));
        }
        // 8. revisions log, cleanup, unlock
        self.finish(art, &ts).await;
        Ok((ts, true, false))
    }

    /// A failure before any switch: the new release is removed and the locks released. The
    /// error says only what is true: a host that could not be cleaned keeps the lock until it expires.
    async fn abort(&self, why: String, ts: Option<&str>) -> anyhow::Error {
        let targets = self.targets;
        let scripts = targets.iter().map(|t| Some(abort_script(&t.cfg, self.token, ts))).collect();
        let cleaned = phase(targets, scripts, Duration::from_secs(120), self.forks).await;
        let left: Vec<String> = cleaned
            .iter()
            .enumerate()
            .filter_map(|(i, r)| match r {
                Some(Ok(o)) if o.mark("unlocked").is_some() => None,
                Some(Ok(o)) => Some(format!("{}: {}", targets[i].host.name, o.why())),
                Some(Err(e)) => Some(format!("{}: {e:#}", targets[i].host.name)),
                None => None,
            })
            .collect();
        if left.is_empty() {
            anyhow!("{why}\nthe release was removed again and the lock released; `current` was not changed on any host")
        } else {
            anyhow!(
                "{why}\n`current` was not changed on any host; the release could not be removed and the lock not released on:\n  {}\n(the lock expires after deploy_lock_ttl)",
                left.join("\n  ")
            )
        }
    }

    /// Uploads the artifact where it is missing, unpacks it to releases/TS and links the
    /// shared files. Err: why, for the abort.
    async fn prepare(&self, art: &Artifact, probes: &[Out], ts: &str) -> std::result::Result<(), String> {
        let (targets, reporter) = (self.targets, self.reporter);
        let t = Instant::now();
        let uploaded: Vec<String> = targets.iter().zip(probes).filter(|(_, p)| p.mark("have-artifact").is_none()).map(|(t, _)| t.host.name.clone()).collect();
        let payload = Arc::new(if uploaded.is_empty() { Script::new() } else { upload_payload(&art.bytes) });
        let scripts: Vec<Option<LazyScript>> = targets
            .iter()
            .zip(probes)
            .map(|(tg, p)| {
                let (cfg, ts, sha, rev, payload) = (tg.cfg.clone(), ts.to_string(), art.sha256.clone(), art.revision.clone(), payload.clone());
                let upload = p.mark("have-artifact").is_none();
                Some(Box::new(move || prepare_script_with(&cfg, &ts, &sha, &rev, upload.then_some(&*payload))) as LazyScript)
            })
            .collect();
        // At most 4 uploads at once: each holds its own copy of the script in memory.
        let prepared = phase_lazy(targets, scripts, Duration::from_secs(1800), self.forks.min(4)).await;
        let mut failures = Vec::new();
        for (i, r) in prepared.iter().enumerate() {
            let name = &targets[i].host.name;
            match r {
                Some(Ok(o)) if o.mark("prepared").is_some() => {
                    for n in o.marks_of("note") {
                        reporter.event("host", Some(name.as_str()), &format!("  {name}: note: {n}"));
                    }
                }
                Some(Ok(o)) => failures.push(format!("{name}: {}", o.why())),
                Some(Err(e)) => failures.push(format!("{name}: {e:#}")),
                None => failures.push(format!("{name}: not run")),
            }
        }
        reporter.event("phase", None, &format!("[2/8] artifact uploaded to {} ({} already had it); unpacked to releases/{ts} in {} ms",
            if uploaded.is_empty() { "no host".to_string() } else { uploaded.join(" ") },
            targets.len() - uploaded.len(),
            t.elapsed().as_millis()));
        if !failures.is_empty() {
            return Err(format!("preparing the release failed:\n  {}", failures.join("\n  ")));
        }
        let cfg0 = &targets[0].cfg;
        reporter.event("phase", None, &format!("[3/8] shared links: {}", cfg0.linked_files.iter().chain(&cfg0.linked_dirs).cloned().collect::<Vec<_>>().join(" ")));
        Ok(())
    }

    /// Checks or installs the new release's gems (`release_bundle`) on every puma and sidekiq
    /// host, skipped where Gemfile.lock did not change since the current release's bundle
    /// step succeeded. Err: why, with the command's last lines, for the abort.
    async fn bundle(&self, ts: &str) -> std::result::Result<(), String> {
        let (targets, reporter) = (self.targets, self.reporter);
        let t = Instant::now();
        // `release_bundle` is the role's or the inventory's code: it runs as written.
        let scripts = targets
            .iter()
            .map(|tg| {
                let runs_app = !tg.cfg.puma.is_empty() || !tg.cfg.sidekiq.is_empty();
                match &tg.cfg.bundle {
                    _ if !runs_app => None,
                    StepCmd::Off => None,
                    StepCmd::Default if self.no_lock => None,
                    StepCmd::Default => Some(bundle_script(&tg.cfg, ts, None, &bundle_cmd_id(&StepCmd::Default))),
                    c @ StepCmd::Command(code) => Some(bundle_script(&tg.cfg, ts, Some(Script::user_code(code.clone())), &bundle_cmd_id(c))),
                }
            })
            .collect::<Vec<_>>();
        if scripts.iter().all(Option::is_none) {
            return Ok(());
        }
        let done = phase(targets, scripts, Duration::from_secs(1800), self.forks).await;
        let (mut failures, mut counts) = (Vec::new(), [0usize; 3]);
        for (i, r) in done.iter().enumerate() {
            let (name, secrets) = (&targets[i].host.name, &targets[i].secrets);
            let line = |text: String| reporter.event("host", Some(name.as_str()), &format!("  {name}: bundle: {text}"));
            match r {
                None => {}
                Some(Ok(o)) if o.mark("bundle-skipped").is_some() => {
                    counts[1] += 1;
                    line(format!("Gemfile.lock unchanged, skipped (bundled in release {})", o.mark("bundle-skipped").unwrap_or_default()));
                }
                Some(Ok(o)) if o.mark("bundled").is_some() => {
                    counts[0] += 1;
                    line(format!("{} ran ({} output lines)", targets[i].secrets.redact(&bundle_shown(&targets[i].cfg.bundle)), o.other.len()));
                }
                Some(Ok(o)) if o.mark("bundle-none").is_some() => {
                    counts[2] += 1;
                    line(format!("none: {}", o.mark("bundle-none").unwrap_or_default()));
                }
                Some(Ok(o)) => {
                    let shown = secrets.redact(&bundle_shown(&targets[i].cfg.bundle));
                    let mut f = format!("{name}: {}", o.mark("bundle-failed").map(|m| format!("{shown} failed: {m}")).unwrap_or_else(|| o.why()));
                    for l in o.other.iter().rev().take(15).collect::<Vec<_>>().into_iter().rev() {
                        f.push_str(&format!("\n    | {}", crate::terminal::printable(&secrets.redact_error(l))));
                    }
                    failures.push(f);
                }
                Some(Err(e)) => failures.push(format!("{name}: {e:#}")),
            }
        }
        reporter.event("phase", None, &format!("[3½/8] bundle: ran on {}, skipped on {} (Gemfile.lock unchanged), none on {}{} ({} ms)",
            counts[0], counts[1], counts[2], if failures.is_empty() { String::new() } else { format!(", FAILED on {}", failures.len()) }, t.elapsed().as_millis()));
        if failures.is_empty() {
            Ok(())
        } else {
            Err(format!("the bundle step failed, so nothing was switched:\n  {}", failures.join("\n  ")))
        }
    }

    /// Runs the migrations on the one migration host, if any. Err: why, for the abort.
    async fn migrate(&self, migrate_at: Option<usize>, ts: &str) -> std::result::Result<(), String> {
        let reporter = self.reporter;
        let Some(t) = migrate_at.and_then(|i| self.targets.get(i)) else {
            reporter.event("phase", None, "[4/8] migrations: none (`release_migrate` is off, or unset and --dir has no bin/rails, or --limit leaves the primary host out)");
            return Ok(());
        };
        let (code, shown) = match &t.cfg.migrate {
            // `release_migrate` is the role's code (a variable of its defaults, or the
            // inventory's on purpose): it runs as written.
            StepCmd::Command(c) => (migrate_code(Some(Script::user_code(c.clone()))), t.secrets.redact(c)),
            _ => (migrate_code(None), format!("{} (the default, when the release has an executable bin/rails)", crate::release_rails::DEFAULT_MIGRATE)),
        };
        let why = if t.host.primary { "the primary" } else { "the first puma host: no release host is flagged primary" };
        reporter.event("phase", None, &format!("[4/8] migrations on {} ({why}): {shown}", t.host.name));
        match run(t, &migrate_script(&t.cfg, ts, &code), Duration::from_secs(3600), Some(reporter)).await {
            Ok(o) if o.status == Some(0) => {
                if let Some(none) = o.mark("migrate-none") {
                    reporter.event("host", Some(t.host.name.as_str()), &format!("  {}: migrations: none, {none}", t.host.name));
                }
                Ok(())
            }
            Ok(o) => Err(format!("the migration failed on {}: {}", t.host.name, o.why())),
            Err(e) => Err(format!("the migration failed on {}: {e:#}", t.host.name)),
        }
    }

    /// On every puma host the new release runs beside the old one, on a loopback port, and
    /// must answer the health check before anything is switched anywhere. Err: why, with the
    /// failing candidates' last log lines, for the abort.
    async fn gate(&self, ts: &str) -> std::result::Result<(), String> {
        let (targets, reporter) = (self.targets, self.reporter);
        let t = Instant::now();
        let scripts = targets.iter().map(|tg| tg.cfg.gate.as_ref().map(|_| gate_script(&tg.cfg, ts))).collect();
        let gated = phase(targets, scripts, Duration::from_secs(900), self.forks).await;
        let mut failures = Vec::new();
        let mut passed = 0;
        for (i, r) in gated.iter().enumerate() {
            let (name, secrets) = (&targets[i].host.name, &targets[i].secrets);
            match r {
                None => {}
                Some(Ok(o)) if o.mark("healthy").is_some() => {
                    passed += 1;
                    if reporter.verbose > 0 {
                        reporter.event("host", Some(name.as_str()), &format!("  {name}: {}", o.mark("healthy").unwrap_or_default()));
                    }
                }
                Some(Ok(o)) => {
                    let mut f = format!("{name}: {}", o.mark("gate-failed").map(str::to_string).unwrap_or_else(|| o.why()));
                    f.push_str("\n    the candidate's last log lines:");
                    for l in o.marks_of("gate-log") {
                        f.push_str(&format!("\n    | {}", crate::terminal::printable(&secrets.redact_error(l))));
                    }
                    failures.push(f);
                }
                Some(Err(e)) => failures.push(format!("{name}: {e:#}")),
            }
        }
        if passed > 0 || !failures.is_empty() {
            reporter.event("phase", None, &format!("[5/8] health gate: the new release answered on {passed} puma hosts before taking traffic ({} ms)", t.elapsed().as_millis()));
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(format!("the new release failed its health gate, so it took no traffic:\n  {}", failures.join("\n  ")))
        }
    }

    /// Switches `current`, restarts and health-checks: puma hosts batch by batch (all at once
    /// by default), the others (sidekiq, faye) after every puma batch is healthy. Stops at the
    /// first failing batch. (the hosts switched, the failures).
    async fn switch(&self, ts: &str, batch: Option<Batch>) -> (Vec<usize>, Vec<String>) {
        let (targets, reporter) = (self.targets, self.reporter);
        let t = Instant::now();
        let is_puma: Vec<bool> = targets.iter().map(|tg| !tg.cfg.puma.is_empty()).collect();
        let groups = switch_groups(&is_puma, batch);
        let mut switched: Vec<usize> = Vec::new();
        let mut failures = Vec::new();
        for (g, group) in groups.iter().enumerate() {
            let scripts = targets.iter().enumerate().map(|(i, tg)| group.contains(&i).then(|| switch_script(&tg.cfg, ts, true))).collect();
            let results = phase(targets, scripts, Duration::from_secs(900), self.forks).await;
            switched.extend(group);
            for &i in group {
                let name = &targets[i].host.name;
                match &results[i] {
                    Some(Ok(o)) => {
                        for s in o.marks_of("step") {
                            if reporter.verbose > 0 || !s.starts_with("current") {
                                reporter.event("host", Some(name.as_str()), &format!("  {name}: {s}"));
                            }
                        }
                        if let Some(h) = o.mark("healthy") {
                            reporter.event("host", Some(name.as_str()), &format!("  {name}: healthy: {h}"));
                        }
                        if o.mark("switched").is_none() {
                            failures.push(format!("{name}: {}", o.why()));
                        }
                    }
                    Some(Err(e)) => failures.push(format!("{name}: {e:#}")),
                    None => failures.push(format!("{name}: not run")),
                }
            }
            if groups.len() > 1 {
                let names: Vec<&str> = group.iter().map(|&i| targets[i].host.name.as_str()).collect();
                reporter.event("info", None, &format!("  batch {}/{}: {} {}", g + 1, groups.len(), names.join(" "), if failures.is_empty() { "switched and healthy" } else { "FAILED" }));
            }
            if !failures.is_empty() {
                break;
            }
        }
        reporter.event("phase", None, &format!("[6-7/8] current -> releases/{ts} on {} of {} hosts, restarted, health checked in {} ms", switched.len(), targets.len(), t.elapsed().as_millis()));
        (switched, failures)
    }

    /// A failure after a switch: every switched host goes back to its previous release, the
    /// new release is removed everywhere, the locks released. Whether every host is back.
    /// Hosts go back in the release's own batches, one batch at a time: never more puma
    /// hosts restarting at once than the release itself restarted (with `--batch 1`, two hosts
    /// restarting together left nginx no upstream for a moment, seen once in CI).
    async fn roll_back(&self, art: &Artifact, ts: &str, previous: &[String], switched: &[usize], failures: &[String], batch: Option<Batch>) -> bool {
        let (targets, reporter) = (self.targets, self.reporter);
        reporter.event("info", None, &format!("release {ts} FAILED:\n  {}", failures.join("\n  ")));
        reporter.event("info", None, "rolling back every switched host to its previous release");
        let scripts = targets
            .iter()
            .zip(previous)
            .enumerate()
            .map(|(i, (tg, prev))| {
                let mut s = header(&tg.cfg);
                if !switched.contains(&i) {
                    // Never switched: only the new release goes.
                    s.push(crate::sh!("rm -rf \"$D/releases/\"{}\necho '@@PV switched'\n", ts));
                    return Some(s);
                }
                if prev.is_empty() {
                    s.push(crate::sh!("echo '@@PV failed no previous release to return to'\n"));
                    return Some(s);
                }
                let mut s = switch_script(&tg.cfg, prev, true);
                s.push(crate::sh!("rm -rf \"$D/releases/\"{}\n", ts));
                Some(s)
            })
            .collect();
        let mut scripts: Vec<Option<crate::shell::Script>> = scripts;
        let is_puma: Vec<bool> = targets.iter().map(|tg| !tg.cfg.puma.is_empty()).collect();
        let mut groups = switch_groups(&is_puma, batch);
        groups.push((0..targets.len()).collect()); // any host no group named: last, all at once
        let mut back: Vec<Option<Result<Out>>> = (0..targets.len()).map(|_| None).collect();
        for group in &groups {
            let now: Vec<Option<crate::shell::Script>> = scripts.iter_mut().enumerate().map(|(i, s)| if group.contains(&i) { s.take() } else { None }).collect();
            if now.iter().all(Option::is_none) {
                continue;
            }
            for (i, r) in phase(targets, now, Duration::from_secs(900), self.forks).await.into_iter().enumerate() {
                if r.is_some() {
                    back[i] = r;
                }
            }
        }
        let mut rb_fail = Vec::new();
        for (i, r) in back.iter().enumerate() {
            let name = &targets[i].host.name;
            match r {
                Some(Ok(o)) if o.mark("switched").is_some() && switched.contains(&i) => reporter.event("host", Some(name.as_str()), &format!("  {name}: back on releases/{}", previous[i])),
                Some(Ok(o)) if o.mark("switched").is_some() => {}
                Some(Ok(o)) => rb_fail.push(format!("{name}: {}", o.why())),
                Some(Err(e)) => rb_fail.push(format!("{name}: {e:#}")),
                None => {}
            }
        }
        let line = format!("{} release {ts} (revision {}) failed its health check by {}; rolled back", iso_now(), art.revision, self.who);
        let scripts = targets.iter().map(|tg| Some(finish_script(&tg.cfg, self.token, &line, false))).collect();
        phase(targets, scripts, Duration::from_secs(120), self.forks).await;
        if rb_fail.is_empty() {
            reporter.event("info", None, "rolled back: every host is on its previous release again");
        } else {
            reporter.event("info", None, &format!("ROLLBACK FAILED on:\n  {}", rb_fail.join("\n  ")));
        }
        rb_fail.is_empty()
    }

    /// The release is live: revisions.log, old releases removed, locks released.
    async fn finish(&self, art: &Artifact, ts: &str) {
        let (targets, reporter) = (self.targets, self.reporter);
        let line = format!("{} release {ts} (revision {}, sha256 {}) deployed by {}", iso_now(), art.revision, art.sha256, self.who);
        let scripts = targets.iter().map(|tg| Some(finish_script(&tg.cfg, self.token, &line, true))).collect();
        let finished = phase(targets, scripts, Duration::from_secs(300), self.forks).await;
        let mut removed = 0;
        for (i, r) in finished.iter().enumerate() {
            match r {
                Some(Ok(o)) => removed += o.marks_of("removed").count(),
                Some(Err(e)) => reporter.event("host", Some(targets[i].host.name.as_str()), &format!("  {}: finishing failed: {e:#}", targets[i].host.name)),
                None => {}
            }
        }
        reporter.event("phase", None, &format!("[8/8] revisions.log appended; {removed} old release dir(s) removed (keep_releases {})", targets[0].cfg.keep_releases));
    }
}

/// The new release's name: now as a UTC stamp, or one past the hosts' newest release when
/// that is not older (two releases in one second, or a clock behind the hosts').
fn release_name(probes: &[Out]) -> Result<String> {
    let ts = utc_stamp()?;
    let newest = probes.iter().flat_map(|o| releases_of(o).0.into_iter().map(|(n, _)| n)).filter(|n| is_stamp(n)).max();
    Ok(match newest {
        Some(n) if n >= ts => (n.parse::<u64>().unwrap_or(0) + 1).to_string(),
        _ => ts,
    })
}

/// How the bundle command is shown.
fn bundle_shown(c: &StepCmd) -> String {
    match c {
        StepCmd::Command(c) => format!("`{c}`"),
        _ => format!("`{}`", crate::release_rails::DEFAULT_BUNDLE),
    }
}

/// Step 0: the assets of a `--dir` release built on the controller (`release_assets`), in a
/// copy of the directory. The release hosts must agree on `release_assets` and `rails_env`.
fn build_assets(source: &Source, hosts: &[crate::release_hosts::ReleaseHost], stage: &str, reporter: &Reporter) -> Result<Option<crate::assets::Built>> {
    let Source::Dir(dir) = source else { return Ok(None) };
    let agreed = |what: &str, values: Vec<Option<String>>| -> Result<Option<String>> {
        let mut v = values;
        v.sort();
        v.dedup();
        match v.len() {
            0 | 1 => Ok(v.into_iter().flatten().next()),
            _ => Err(anyhow!("the release hosts disagree on `{what}` ({}): the assets are built once, on the controller", v.iter().map(|x| x.clone().unwrap_or_default()).collect::<Vec<_>>().join(", "))),
        }
    };
    let mode = agreed("release_assets", hosts.iter().map(|(_, c, _)| c.assets.clone()).collect())?;
    let rails_env = agreed("rails_env", hosts.iter().filter_map(|(_, c, _)| c.rails_env.clone()).map(Some).collect())?.unwrap_or_else(|| stage.to_string());
    let Some(built) = crate::assets::build(dir, &Assets::from_var(mode.as_deref()), &rails_env)? else {
        return Ok(None);
    };
    reporter.event("phase", None, &format!("[0/8] assets built on the controller: `{}` with RAILS_ENV={rails_env} in a copy of {}: {} files in public/assets, {:.1} s",
        built.what, dir.display(), built.files, built.seconds));
    Ok(Some(built))
}

fn is_executable(p: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
