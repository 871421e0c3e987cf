//! `provision rollback [--to RELEASE]`: every release host back to an earlier release,
//! behind the deploy lock, restarted and health-checked.

use crate::deploy_lock::{controller_name, iso_now, lock_all, random_token, releases_of};
use crate::project::Selection;
use crate::release_scripts::{abort_script, finish_script, switch_script};
use crate::report::{Reporter, VerbReport};
use crate::runner::{close_all, connect_all, control_dir, phase};
use anyhow::{bail, Result};
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Outcome of `provision rollback`.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackReport {
    pub ok: bool,
    /// Each host and the release it was switched to.
    pub hosts: Vec<(String, String)>,
    pub seconds: f64,
}

impl VerbReport for RollbackReport {
    fn ok(&self) -> bool {
        self.ok
    }
    fn closing(&self) -> Vec<(bool, String)> {
        vec![(false, format!("{} in {:.1} s", if self.ok { "rolled back" } else { "rollback failed" }, self.seconds))]
    }
}

/// `provision rollback [--to RELEASE]`: every host back to RELEASE (default: the release
/// before its current one), restarted and health-checked. Returns whether all went well.
pub async fn rollback(selection: &Selection, to: Option<&str>, forks: usize, reporter: &Reporter) -> Result<RollbackReport> {
    let t_start = Instant::now();
    let (project, hosts, _) = crate::release_hosts::load(selection)?;
    if let Some(t) = to {
        if t.is_empty() || t.contains('/') || t.starts_with('.') {
            bail!("--to {t}: give a release name as `provision releases` lists it");
        }
    }
    let dir = control_dir()?;
    let targets = Arc::new(connect_all(&project.inventory.ssh, hosts, dir.path(), forks).await?);
    let token = random_token();
    let who = format!("{}@{}", std::env::var("USER").unwrap_or_else(|_| "root".into()), controller_name());
    let res = async {
        let probes = lock_all(&targets, &token, &who, None, forks, reporter).await?;
        let mut dest = Vec::new();
        let mut problems = Vec::new();
        for (t, p) in targets.iter().zip(&probes) {
            let (list, cur) = releases_of(p);
            let names: Vec<&str> = list.iter().map(|(n, _)| n.as_str()).collect();
            let d = match to {
                Some(t) if names.contains(&t) => Some(t.to_string()),
                Some(want) => {
                    problems.push(format!("{}: has no release {want} (it has: {})", t.host.name, names.join(" ")));
                    None
                }
                None => match names.iter().position(|n| *n == cur) {
                    Some(i) if i > 0 => Some(names[i - 1].to_string()),
                    _ => {
                        problems.push(format!("{}: no release before the current one ({})", t.host.name, if cur.is_empty() { "none" } else { &cur }));
                        None
                    }
                },
            };
            dest.push(d.unwrap_or_default());
        }
        if !problems.is_empty() {
            let scripts = targets.iter().map(|t| Some(abort_script(&t.cfg, &token, None))).collect();
            phase(&targets, scripts, Duration::from_secs(60), forks).await;
            bail!("cannot roll back, nothing was changed:\n  {}", problems.join("\n  "));
        }
        let scripts = targets.iter().zip(&dest).map(|(t, d)| Some(switch_script(&t.cfg, d, true))).collect();
        let out = phase(&targets, scripts, Duration::from_secs(900), forks).await;
        let mut ok = true;
        for (i, r) in out.iter().enumerate() {
            let name = &targets[i].host.name;
            match r {
                Some(Ok(o)) if o.mark("switched").is_some() => {
                    reporter.event("host", Some(name.as_str()), &format!("{name}: current -> releases/{}", dest[i]));
                    for s in o.marks_of("step").filter(|s| !s.starts_with("current")) {
                        reporter.event("host", Some(name.as_str()), &format!("  {name}: {s}"));
                    }
                    if let Some(h) = o.mark("healthy") {
                        reporter.event("host", Some(name.as_str()), &format!("  {name}: healthy: {h}"));
                    }
                }
                Some(Ok(o)) => {
                    ok = false;
                    reporter.event("host", Some(name.as_str()), &format!("{name}: FAILED: {}", o.why()));
                }
                Some(Err(e)) => {
                    ok = false;
                    reporter.event("host", Some(name.as_str()), &format!("{name}: FAILED: {e:#}"));
                }
                None => {}
            }
        }
        let scripts = targets
            .iter()
            .zip(&dest)
            .map(|(t, d)| Some(finish_script(&t.cfg, &token, &format!("{} rolled back to release {d} by {who}{}", iso_now(), if ok { "" } else { " (with failures)" }), false)))
            .collect();
        phase(&targets, scripts, Duration::from_secs(120), forks).await;
        Ok::<_, anyhow::Error>((ok, targets.iter().map(|t| t.host.name.clone()).zip(dest).collect::<Vec<_>>()))
    }
    .await;
    close_all(targets).await;
    let (ok, hosts) = res?;
    Ok(RollbackReport { ok, hosts, seconds: t_start.elapsed().as_secs_f64() })
}

