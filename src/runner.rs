//! The per-host runner of every verb: work on many hosts at once (at most `--forks`), each
//! host's result in the hosts' order, a failing host a result like any other. Also the
//! connected targets of the verbs that run a script per step on every host (`release`,
//! `rollback`, `releases`), and what such a script printed.

use crate::inventory::{Host, SshSettings};
use crate::report::Reporter;
use crate::secrets::Secrets;
use crate::shell::Script;
use crate::transport::Connection;
use anyhow::{anyhow, bail, Result};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Runs `work` for every item, at most `forks` at a time, and returns the results in the
/// items' order. A failing host is a result like any other; only a panic is an error.
pub async fn in_parallel<T, F, Fut, R>(items: Vec<T>, forks: usize, work: F) -> Result<Vec<R>>
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
            Err(e) => bail!("internal error: a host task panicked: {e}"),
        }
    }
    results.sort_by_key(|(i, _)| *i);
    Ok(results.into_iter().map(|(_, r)| r).collect())
}

/// A private directory for the SSH control sockets of one run, removed when dropped.
pub fn control_dir() -> Result<tempfile::TempDir> {
    tempfile::Builder::new().prefix(".pv-ssh-").tempdir_in("/tmp").map_err(|e| anyhow!("cannot create a directory for SSH control sockets in /tmp: {e}"))
}

/// A host taking part, with its settings `C` and its open connection.
pub struct Target<C> {
    pub host: Host,
    pub cfg: C,
    pub secrets: Secrets,
    pub conn: Connection,
}

/// Connects to every host (at most `forks` at once). When any host can't be reached, the
/// others are closed again and nothing was changed anywhere.
pub async fn connect_all<C: Send + 'static>(ssh: &SshSettings, hosts: Vec<(Host, C, Secrets)>, dir: &Path, forks: usize) -> Result<Vec<Target<C>>> {
    let ssh = Arc::new(ssh.clone());
    let dir = dir.to_path_buf();
    let connected = in_parallel(hosts, forks, |(host, cfg, secrets)| {
        let (ssh, dir) = (ssh.clone(), dir.clone());
        async move {
            let c = Connection::connect(&host, &ssh, &dir, false).await;
            (host, cfg, secrets, c)
        }
    })
    .await?;
    let mut ok = Vec::new();
    let mut errors = Vec::new();
    for (host, cfg, secrets, c) in connected {
        match c {
            Ok(conn) => ok.push(Target { host, cfg, secrets, conn }),
            Err(e) => errors.push(format!("{}: {}", host.name, secrets.redact(&format!("{e:#}")))),
        }
    }
    if !errors.is_empty() {
        for t in ok {
            t.conn.close().await;
        }
        bail!("cannot connect, nothing was changed:\n  {}", errors.join("\n  "));
    }
    Ok(ok)
}

/// Closes every connection (once no step holds the targets any more).
pub async fn close_all<C>(targets: Arc<Vec<Target<C>>>) {
    if let Ok(ts) = Arc::try_unwrap(targets) {
        for t in ts {
            t.conn.close().await;
        }
    }
}

/// What one script printed, split into `@@PV` markers and other lines, redacted.
#[derive(Debug, Default, Clone)]
pub struct Out {
    pub status: Option<i32>,
    pub marks: Vec<String>,
    pub other: Vec<String>,
    pub stderr: String,
}

impl Out {
    /// The first marker `@@PV KEY rest`, as `rest`.
    pub fn mark(&self, key: &str) -> Option<&str> {
        self.marks.iter().find_map(|m| m.strip_prefix(key).map(|r| r.trim_start()))
    }
    pub fn marks_of<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.marks.iter().filter_map(move |m| m.strip_prefix(key).map(|r| r.trim_start()))
    }
    /// Why the script failed: its own `failed`/`unhealthy` marker, else the status and
    /// its last lines.
    pub fn why(&self) -> String {
        if let Some(f) = self.mark("failed").or_else(|| self.mark("unhealthy")) {
            return f.to_string();
        }
        let mut parts: Vec<String> = self.other.iter().rev().take(5).rev().cloned().collect();
        parts.extend(self.stderr.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().map(String::from));
        format!("exit status {}: {}", self.status.map(|s| s.to_string()).unwrap_or_else(|| "(killed)".into()), parts.join(" | "))
    }
}

/// Runs one script on one target; with `echo`, its other lines are shown as they come.
pub async fn run<C>(t: &Target<C>, script: &Script, timeout: Duration, echo: Option<&Reporter>) -> Result<Out> {
    let mut out = Out::default();
    let name = t.host.name.as_str();
    let secrets = &t.secrets;
    let (status, stderr) = t
        .conn
        .run_script_streaming(script, timeout, |line| {
            if let Some(m) = line.strip_prefix("@@PV ") {
                out.marks.push(secrets.redact(m));
            } else {
                if let Some(r) = echo {
                    r.event("host", Some(name), &format!("  {name}: {}", secrets.redact(line)));
                }
                out.other.push(secrets.redact(line));
            }
        })
        .await
        .map_err(|e| anyhow!("{}", secrets.redact(&format!("{e:#}"))))?;
    out.status = status;
    out.stderr = secrets.redact(&stderr);
    if let Some(r) = echo {
        for l in out.stderr.lines() {
            r.host_stderr(name, &format!("  {name}: {l}"));
        }
    }
    Ok(out)
}

/// A script made only when its host's turn comes, so that at most `forks` copies of a large
/// upload are in memory at once.
pub type LazyScript = Box<dyn FnOnce() -> Script + Send>;

/// Runs one script per target (None: skip that host) in parallel, at most `forks` at once.
pub async fn phase<C: Send + Sync + 'static>(targets: &Arc<Vec<Target<C>>>, scripts: Vec<Option<Script>>, timeout: Duration, forks: usize) -> Vec<Option<Result<Out>>> {
    let lazy = scripts.into_iter().map(|s| s.map(|s| Box::new(move || s) as LazyScript)).collect();
    phase_lazy(targets, lazy, timeout, forks).await
}

/// [`phase`] with scripts made when their host's turn comes.
pub async fn phase_lazy<C: Send + Sync + 'static>(targets: &Arc<Vec<Target<C>>>, scripts: Vec<Option<LazyScript>>, timeout: Duration, forks: usize) -> Vec<Option<Result<Out>>> {
    let jobs: Vec<(usize, Option<LazyScript>)> = scripts.into_iter().enumerate().collect();
    let done = in_parallel(jobs, forks, |(i, make)| {
        let targets = targets.clone();
        async move {
            let make = make?;
            let script = make();
            Some(match targets.get(i) {
                Some(t) => run(t, &script, timeout, None).await,
                None => Err(anyhow!("internal error: no target {i}")),
            })
        }
    })
    .await;
    match done {
        Ok(mut results) => {
            results.resize_with(targets.len(), || None);
            results
        }
        Err(e) => targets.iter().map(|_| Some(Err(anyhow!("{e:#}")))).collect(),
    }
}
