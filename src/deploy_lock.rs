//! The deploy lock (`DEPLOY_TO/.deploy-lock/`) on every release host, taken before a
//! release or a rollback changes anything, and what its probe tells: the releases there,
//! the current one, locks left by runs that are gone.

use crate::release_scripts::{header, lock_script, unlock_lines, HostCfg};
use crate::report::Reporter;
use crate::runner::{phase, Out, Target};
use crate::shell::{sha256_hex, Script};
use anyhow::{bail, Context, Result};
use std::sync::Arc;
use std::time::Duration;

/// A release host with its settings and its connection.
pub type ReleaseTarget = Target<HostCfg>;

pub fn controller_name() -> String {
    std::fs::read_to_string("/etc/hostname").map(|s| s.trim().to_string()).ok().filter(|s| !s.is_empty()).unwrap_or_else(|| "controller".into())
}

pub fn utc_stamp() -> Result<String> {
    let o = std::process::Command::new("date").args(["-u", "+%Y%m%d%H%M%S"]).output().context("cannot run date")?;
    let s = String::from_utf8_lossy(&o.stdout).trim().to_string();
    if s.len() != 14 || !s.chars().all(|c| c.is_ascii_digit()) {
        bail!("`date -u +%Y%m%d%H%M%S` gave `{s}`");
    }
    Ok(s)
}

pub fn iso_now() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

pub fn random_token() -> String {
    let mut seed = format!("{:?}{}{:?}", std::time::SystemTime::now(), std::process::id(), std::thread::current().id());
    if let Ok(b) = std::fs::read("/proc/sys/kernel/random/uuid") {
        seed.push_str(&String::from_utf8_lossy(&b));
    }
    sha256_hex(seed.as_bytes())[..16].to_string()
}

/// Whether a lock holder's info names a provision process on this controller that is gone.
pub fn holder_is_dead_here(info: &str, controller: &str) -> Option<String> {
    let get = |k: &str| info.split_whitespace().find_map(|w| w.strip_prefix(&format!("{k}=")).map(String::from));
    let (c, pid, tok) = (get("controller")?, get("pid")?, get("token")?);
    if c != controller {
        return None;
    }
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if comm.trim() == "provision" {
        None
    } else {
        Some(tok)
    }
}

fn epoch_utc(secs: &str) -> String {
    std::process::Command::new("date")
        .args(["-u", "-d", &format!("@{}", secs.trim()), "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| secs.to_string())
}

/// A lock's info (`key=value ...`) for people: who, which process where, since when.
pub fn describe_holder(info: &str) -> String {
    let get = |k: &str| info.split_whitespace().find_map(|w| w.strip_prefix(&format!("{k}=")).map(String::from));
    match (get("who"), get("pid"), get("controller"), get("started"), get("expires")) {
        (Some(who), Some(pid), Some(ctl), Some(started), Some(exp)) if started.chars().all(|c| c.is_ascii_digit()) => format!(
            "{who} (provision pid {pid} on {ctl}) since {}; stale after {} or once that process is gone",
            epoch_utc(&started),
            epoch_utc(&exp)
        ),
        _ => info.trim().to_string(),
    }
}

/// "a b c: what" lines, hosts grouped by what was said about them.
pub fn grouped(items: Vec<(String, String)>) -> Vec<String> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for (host, what) in items {
        match groups.iter_mut().find(|(w, _)| *w == what) {
            Some((_, hosts)) => hosts.push(host),
            None => groups.push((what, vec![host])),
        }
    }
    groups.into_iter().map(|(what, hosts)| format!("{}: {what}", hosts.join(" "))).collect()
}

/// Takes the lock on every target, recovering locks left by dead runs of this controller.
/// On a held lock, releases the ones taken and fails naming the holder.
pub async fn lock_all(targets: &Arc<Vec<ReleaseTarget>>, token: &str, who: &str, sha: Option<&str>, forks: usize, reporter: &Reporter) -> Result<Vec<Out>> {
    let controller = controller_name();
    let pid = std::process::id();
    let scripts = targets.iter().map(|t| Some(lock_script(&t.cfg, token, who, &controller, pid, "", sha))).collect();
    let mut results = phase(targets, scripts, Duration::from_secs(120), forks).await;
    // Locks of dead runs from this controller: break them by their token.
    let mut retry: Vec<Option<Script>> = vec![None; targets.len()];
    let mut notes = Vec::new();
    for (i, r) in results.iter().enumerate() {
        if let Some(Ok(o)) = r {
            if let Some(info) = o.mark("lock held") {
                if let (Some(tok), Some(t)) = (holder_is_dead_here(info, &controller), targets.get(i)) {
                    notes.push((t.host.name.clone(), format!("the deploy lock of a run that is gone ({}) is stale: taking it over", describe_holder(info))));
                    retry[i] = Some(lock_script(&t.cfg, token, who, &controller, pid, &tok, sha));
                }
            }
        }
    }
    for l in grouped(notes) {
        reporter.event("info", None, &format!("  {l}"));
    }
    let broken: Vec<bool> = retry.iter().map(Option::is_some).collect();
    if retry.iter().any(Option::is_some) {
        let again = phase(targets, retry, Duration::from_secs(120), forks).await;
        for (i, r) in again.into_iter().enumerate() {
            if r.is_some() {
                results[i] = r;
            }
        }
    }
    let mut outs = Vec::new();
    let mut problems = Vec::new();
    let mut recovered = Vec::new();
    let mut taken = vec![false; targets.len()];
    for (i, r) in results.into_iter().enumerate() {
        let name = targets.get(i).map(|t| t.host.name.clone()).unwrap_or_default();
        match r {
            Some(Ok(o)) if o.mark("probed").is_some() => {
                taken[i] = true;
                if let (Some(old), false) = (o.mark("lock recovered"), broken[i]) {
                    recovered.push((name.clone(), format!("recovered a stale deploy lock ({})", describe_holder(old))));
                }
                if let Some(orphan) = o.mark("orphan") {
                    recovered.push((name.clone(), format!("removed releases/{orphan}, left unfinished by a run that died")));
                }
                outs.push(o);
            }
            Some(Ok(o)) if o.mark("lock held").is_some() => {
                taken[i] = o.mark("lock taken").is_some() || o.mark("lock recovered").is_some();
                problems.push((name.clone(), format!("another release holds the deploy lock: {}", describe_holder(o.mark("lock held").unwrap_or_default()))));
                outs.push(o);
            }
            Some(Ok(o)) => {
                taken[i] = o.mark("lock taken").is_some() || o.mark("lock recovered").is_some();
                problems.push((name.clone(), o.why()));
                outs.push(o);
            }
            Some(Err(e)) => {
                problems.push((name.clone(), format!("{e:#}")));
                outs.push(Out::default());
            }
            None => outs.push(Out::default()),
        }
    }
    for l in grouped(recovered) {
        reporter.event("info", None, &format!("  {l}"));
    }
    if !problems.is_empty() {
        let scripts = targets.iter().enumerate().map(|(i, t)| taken[i].then(|| {
            let mut s = header(&t.cfg);
            s.push(unlock_lines(token));
            s
        })).collect();
        phase(targets, scripts, Duration::from_secs(60), forks).await;
        bail!("{}\nnothing was changed", grouped(problems).join("\n"));
    }
    Ok(outs)
}

pub fn is_stamp(n: &str) -> bool {
    n.len() == 14 && n.chars().all(|c| c.is_ascii_digit())
}

/// Releases of a host from its probe: (name, revision), oldest first, and the current one.
pub fn releases_of(o: &Out) -> (Vec<(String, String)>, String) {
    let mut list: Vec<(String, String)> = o
        .marks_of("release")
        .map(|r| {
            let (n, rev) = r.split_once(' ').unwrap_or((r, ""));
            (n.to_string(), rev.trim().to_string())
        })
        .collect();
    // Releases not named by a timestamp (made by hand or by another tool) count as oldest.
    list.sort_by_key(|(n, _)| (is_stamp(n), n.clone()));
    (list, o.mark("current").unwrap_or_default().trim().to_string())
}

