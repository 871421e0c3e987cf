//! `provision report merge [--inventory INV] A.json B.json ...`: the JSON reports of the
//! shards of one run (`--shard K/N --format json`, one per controller) as the one report an
//! unsharded run would have printed: the hosts of all shards (in the inventory's order when
//! it is given), the summary counted again. Reports of different modes or format versions,
//! or a host in two shards, are refused: they are not one run.

use crate::report::JSON_FORMAT_VERSION;
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::path::PathBuf;

pub struct MergeOptions {
    pub files: Vec<PathBuf>,
    /// Orders the hosts as this inventory lists them.
    pub inventory: Option<PathBuf>,
}

/// The merged report, and the exit status the unsharded run would have had.
pub struct Merged {
    pub report: Value,
    pub failed: bool,
    pub pending: bool,
}

pub fn merge(opts: &MergeOptions) -> Result<Merged> {
    if opts.files.is_empty() {
        bail!("no reports to merge: give the JSON files the shards wrote (`provision INV --shard K/N --format json > shard-K.json`)");
    }
    let mut mode: Option<String> = None;
    let mut hosts: Vec<Value> = Vec::new();
    for f in &opts.files {
        let text = std::fs::read_to_string(f).with_context(|| format!("cannot read `{}`", f.display()))?;
        let doc: Value = serde_json::from_str(&text).with_context(|| format!("`{}` is not a JSON report of provision (`--format json`)", f.display()))?;
        if doc["format_version"] != json!(JSON_FORMAT_VERSION) {
            bail!("`{}` has format_version {}, this provision reads {JSON_FORMAT_VERSION}: merge reports of one version", f.display(), doc["format_version"]);
        }
        let Some(m) = doc["mode"].as_str() else { bail!("`{}` has no `mode`: it is not a converge report", f.display()) };
        match &mode {
            Some(seen) if seen != m => bail!("`{}` is a `{m}` report and an earlier one a `{seen}` one: merge the shards of one run", f.display()),
            _ => mode = Some(m.to_string()),
        }
        let Some(list) = doc["hosts"].as_array() else { bail!("`{}` has no `hosts` list", f.display()) };
        for h in list {
            let name = h["host"].as_str().unwrap_or_default();
            if hosts.iter().any(|seen| seen["host"].as_str() == Some(name)) {
                bail!("host `{name}` is in two reports (again in `{}`): they are not shards of one run", f.display());
            }
            hosts.push(h.clone());
        }
    }
    if let Some(inv) = &opts.inventory {
        let project = crate::project::Project::load(&crate::project::Selection { inventory: inv.clone(), ..Default::default() })?;
        let position = |h: &Value| project.inventory.hosts.iter().position(|x| Some(x.name.as_str()) == h["host"].as_str()).unwrap_or(usize::MAX);
        hosts.sort_by_key(position);
    }
    let status = |s: &str| hosts.iter().filter(|h| h["status"] == s).count();
    let changes: usize = hosts.iter().map(|h| h["changes"].as_array().map_or(0, |c| c.iter().filter(|c| c["status"] != "not run").count())).sum();
    let (ok, changed, failed) = (status("ok"), status("changed"), status("failed"));
    let mode = mode.unwrap_or_default();
    let pending = mode == "check" && changes > 0;
    let report = json!({
        "format_version": JSON_FORMAT_VERSION,
        "mode": mode,
        "summary": {"hosts": hosts.len(), "ok": ok, "changed": changed, "failed": failed, "changes": changes},
        "hosts": hosts,
    });
    Ok(Merged { report, failed: failed > 0, pending })
}
