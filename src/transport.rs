//! Transport: one multiplexed SSH connection per host (the `openssh` crate, native mux),
//! with strict host-key checking against the project's known_hosts. Remote work is a sh
//! script fed on stdin, run as root (through `sudo -n` when the login user is not root),
//! so nothing we send shows up in a process list. Every script run counts as one round trip.

use crate::inventory::{Host, SshSettings};
use crate::shell::Script;
use anyhow::{anyhow, Context, Result};
use openssh::{ControlPersist, KnownHosts, Session, SessionBuilder, Stdio};
use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// How long one remote script may run before it is killed, on the host and here.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(1800);

/// How long a run's own master may sit idle: longer than the longest wait for another host
/// (a release's migration or health gate); one left behind by a killed run ends after that.
pub const RUN_MASTER_SECS: u64 = 3600;

/// How long a reused master may take to open a session: on a live connection, milliseconds.
const REUSED_OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// An open connection to one host.
pub struct Connection {
    session: Session,
    /// The master outlives this run (see [`crate::ssh_persist`]): closing detaches from it.
    persistent: bool,
    /// The master was already there: no handshake was made.
    pub reused: bool,
    /// How long opening a session may take (a reused master whose connection hangs).
    open_timeout: Option<Duration>,
    /// Something to tell about how this connection was made.
    pub note: Option<String>,
    become_root: bool,
    round_trips: AtomicUsize,
    pub host: String,
}

/// What a remote script produced.
#[derive(Debug, Clone)]
pub struct ScriptOutput {
    pub stdout: String,
    pub stderr: String,
    pub status: Option<i32>,
}

impl Connection {
    /// Connects to `host` with a master of this run's own. Host keys are checked strictly:
    /// an unknown or changed key stops this host with the reason. `accept_new_host_key` is
    /// for bootstrap only.
    pub async fn connect(host: &Host, ssh: &SshSettings, control_dir: &Path, accept_new_host_key: bool) -> Result<Connection> {
        Self::connect_fresh(host, ssh, control_dir, accept_new_host_key, RUN_MASTER_SECS).await
    }

    /// For converge, which uses a connection without idle gaps (probe, plan, apply): with
    /// `ssh.persist_secs`, the host's persistent master is used, or made (see
    /// [`crate::ssh_persist`]). The verbs that leave a host idle while others work (release,
    /// rollback, db-copy) use [`Connection::connect`]: a short window would end their master
    /// mid-run. When the masters' directory is refused, this run connects as usual and says
    /// why in `note`.
    pub async fn connect_reusable(host: &Host, ssh: &SshSettings, control_dir: &Path) -> Result<Connection> {
        if ssh.persist_secs == 0 {
            return Self::connect(host, ssh, control_dir, false).await;
        }
        match crate::ssh_persist::directory() {
            Ok(dir) => Self::connect_persistent(host, ssh, &dir, true).await,
            Err(e) => {
                let mut conn = Self::connect(host, ssh, control_dir, false).await?;
                conn.note = Some(format!("the connection is not kept after this run: {e:#}"));
                Ok(conn)
            }
        }
    }

    /// `host`'s persistent master in `dir`: the recorded one when `reuse` and it answers, else
    /// a new one that lives `ssh.persist_secs` after its last use.
    async fn connect_persistent(host: &Host, ssh: &SshSettings, dir: &Path, reuse: bool) -> Result<Connection> {
        use crate::ssh_persist;
        // A master being launched has a directory and no socket yet, for at most the connect
        // timeout: only older ones are swept.
        ssh_persist::sweep(dir, Duration::from_secs(ssh.connect_timeout_secs + 10));
        let name = ssh_persist::master_name(host, ssh);
        if let Some(socket) = ssh_persist::recorded_socket(dir, &name).filter(|_| reuse) {
            let session = Session::resume_mux(socket.into_boxed_path(), None);
            if let Ok(Ok(())) = tokio::time::timeout(Duration::from_secs(5), session.check()).await {
                // `-O check` is answered by the local master alone: a master whose network
                // connection hangs passes it. The first session it opens is timed instead
                // (see `open_timeout`), and converge reconnects when it does not open.
                return Ok(Connection {
                    session,
                    persistent: true,
                    reused: true,
                    open_timeout: Some(REUSED_OPEN_TIMEOUT),
                    note: None,
                    become_root: host.user != "root",
                    round_trips: AtomicUsize::new(0),
                    host: host.name.clone(),
                });
            }
            let _ = session.close().await;
        }
        ssh_persist::forget(dir, &name);
        let mut conn = Self::connect_fresh(host, ssh, dir, false, ssh.persist_secs).await?;
        ssh_persist::record(dir, &name, conn.session.control_socket())?;
        conn.persistent = true;
        Ok(conn)
    }

    /// Ends a reused master that did not answer and makes a new one in its place.
    pub async fn reconnect(self, host: &Host, ssh: &SshSettings) -> Result<Connection> {
        let dir = crate::ssh_persist::directory()?;
        let _ = self.session.close().await;
        Self::connect_persistent(host, ssh, &dir, false).await
    }

    /// A new master, in `control_dir`, that ends `persist_secs` after its last use if this
    /// process does not close it first.
    pub async fn connect_fresh(host: &Host, ssh: &SshSettings, control_dir: &Path, accept_new_host_key: bool, persist_secs: u64) -> Result<Connection> {
        // Every verb connects here, so no verb can reach a placeholder address (the verbs
        // also refuse them earlier, with the inventory's line).
        if crate::inventory::is_documentation_address(&host.address) {
            return Err(anyhow!("host `{}` has the placeholder address {}; provision does not connect to documentation ranges", host.name, host.address));
        }
        std::fs::create_dir_all(control_dir).with_context(|| format!("cannot create the SSH control directory {}", control_dir.display()))?;
        let mut b = SessionBuilder::default();
        b.user(host.user.clone())
            .port(host.port)
            .known_hosts_check(if accept_new_host_key { KnownHosts::Add } else { KnownHosts::Strict })
            .user_known_hosts_file(&ssh.known_hosts)
            .connect_timeout(Duration::from_secs(ssh.connect_timeout_secs))
            .server_alive_interval(Duration::from_secs(10))
            .control_directory(control_dir)
            // See RUN_MASTER_SECS; a persistent master lives as long as asked.
            .control_persist(ControlPersist::IdleFor(NonZeroUsize::new(usize::try_from(persist_secs).unwrap_or(usize::MAX)).unwrap_or(NonZeroUsize::MIN)));
        if let Some(key) = &ssh.identity_file {
            b.keyfile(key);
        }
        let session = tokio::time::timeout(Duration::from_secs(ssh.connect_timeout_secs + 5), b.connect_mux(&host.address))
            .await
            .map_err(|_| anyhow!("connecting to {}:{} timed out after {} s", host.address, host.port, ssh.connect_timeout_secs + 5))?
            .map_err(|e| anyhow!("cannot connect to {}@{}:{}: {}", host.user, host.address, host.port, explain(&e)))?;
        Ok(Connection { session, persistent: false, reused: false, open_timeout: None, note: None, become_root: host.user != "root", round_trips: AtomicUsize::new(0), host: host.name.clone() })
    }

    /// The number of scripts run so far.
    pub fn round_trips(&self) -> usize {
        self.round_trips.load(Ordering::Relaxed)
    }

    fn shell_command(&self, timeout: Duration) -> String {
        let secs = timeout.as_secs().max(1);
        let sh = format!("timeout --kill-after=10 {secs} sh -s");
        if self.become_root { format!("sudo -n {sh}") } else { sh }
    }

    /// Runs `script` and collects its output.
    pub async fn run_script(&self, script: &Script, timeout: Duration) -> Result<ScriptOutput> {
        let mut lines = Vec::new();
        let (status, stderr) = self.run_script_streaming(script, timeout, |l| lines.push(l.to_string())).await?;
        let mut stdout = lines.join("\n");
        stdout.push('\n');
        Ok(ScriptOutput { stdout, stderr, status })
    }

    /// Runs `script`, handing each line of its stdout to `on_line` as it arrives.
    pub async fn run_script_streaming(&self, script: &Script, timeout: Duration, on_line: impl FnMut(&str)) -> Result<(Option<i32>, String)> {
        self.run_script_conversation(script, timeout, on_line, None, "").await
    }

    /// Like [`Connection::run_script_streaming`], but when the script prints `ask` (a whole
    /// line), the `answer` future runs and its result is written to the script's stdin.
    /// The script keeps its privileges while it waits.
    pub async fn run_script_conversation(
        &self,
        script: &Script,
        timeout: Duration,
        mut on_line: impl FnMut(&str),
        answer: Option<std::pin::Pin<Box<dyn std::future::Future<Output = String> + Send + '_>>>,
        ask: &str,
    ) -> Result<(Option<i32>, String)> {
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        let work = async {
            let mut command = self.session.raw_command(self.shell_command(timeout));
            command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
            let spawn = command.spawn();
            let spawned = match self.open_timeout {
                Some(limit) => tokio::time::timeout(limit, spawn).await.map_err(|_| anyhow!("the kept connection did not open a session within {} s", limit.as_secs()))?,
                None => spawn.await,
            };
            let mut child = spawned.context("cannot start a remote shell")?;
            let mut stdin = child.stdin().take().ok_or_else(|| anyhow!("no stdin for the remote shell"))?;
            let stdout = child.stdout().take().ok_or_else(|| anyhow!("no stdout from the remote shell"))?;
            let mut stderr = child.stderr().take().ok_or_else(|| anyhow!("no stderr from the remote shell"))?;
            let script = script.as_str().to_string();
            let (asked_tx, asked_rx) = tokio::sync::oneshot::channel::<()>();
            let mut asked_tx = Some(asked_tx);
            // Write and read concurrently: a large script must not deadlock on a full pipe.
            let writer = async move {
                stdin.write_all(script.as_bytes()).await?;
                if let Some(answer) = answer {
                    // Dropped without a question (the script ended early): just close.
                    if asked_rx.await.is_ok() {
                        let line = answer.await;
                        stdin.write_all(line.as_bytes()).await?;
                    }
                }
                stdin.shutdown().await?;
                drop(stdin);
                Ok::<_, std::io::Error>(())
            };
            let err_reader = async move {
                let mut buf = Vec::new();
                stderr.read_to_end(&mut buf).await.map(|_| buf)
            };
            let out_reader = async {
                let mut reader = BufReader::new(stdout).lines();
                while let Some(line) = reader.next_line().await? {
                    if !ask.is_empty() && line == ask {
                        if let Some(tx) = asked_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    on_line(&line);
                }
                drop(asked_tx);
                Ok::<_, std::io::Error>(())
            };
            let (w, e, o) = tokio::join!(writer, err_reader, out_reader);
            o.context("reading the remote output")?;
            let err = e.unwrap_or_default();
            // A write error means the shell ended early; its status and stderr tell why.
            let _ = w;
            let status = child.wait().await.context("waiting for the remote shell")?;
            Ok::<_, anyhow::Error>((status.code(), String::from_utf8_lossy(&err).into_owned()))
        };
        tokio::time::timeout(timeout + Duration::from_secs(15), work)
            .await
            .map_err(|_| anyhow!("the remote script did not finish within {} s", timeout.as_secs()))?
    }

    /// Wraps a shell command so it runs as root (through `sudo -n` for a non-root login).
    fn privileged(&self, command: &Script) -> String {
        let wrapped = if self.become_root { crate::sh!("sudo -n sh -c {}", command.as_str()) } else { crate::sh!("sh -c {}", command.as_str()) };
        wrapped.as_str().to_string()
    }

    /// Streams the stdout of `command` on `self` into the stdin of `sink` on `to`, through
    /// this process's memory only (nothing is written to the controller's disk). Both run
    /// as root. Returns the bytes copied.
    pub async fn stream_to(&self, command: &Script, to: &Connection, sink: &Script) -> Result<u64> {
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        to.round_trips.fetch_add(1, Ordering::Relaxed);
        let mut source = self
            .session
            .raw_command(self.privileged(command))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .await
            .context("cannot start the source command")?;
        let mut target = to
            .session
            .raw_command(to.privileged(sink))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .await
            .context("cannot start the target command")?;
        let mut out = source.stdout().take().ok_or_else(|| anyhow!("no stdout from the source"))?;
        let mut input = target.stdin().take().ok_or_else(|| anyhow!("no stdin for the target"))?;
        let source_err = source.stderr().take().ok_or_else(|| anyhow!("no stderr from the source"))?;
        let target_err = target.stderr().take().ok_or_else(|| anyhow!("no stderr from the target"))?;
        let copy = async {
            let n = tokio::io::copy(&mut out, &mut input).await?;
            input.shutdown().await?;
            drop(input);
            Ok::<_, std::io::Error>(n)
        };
        let read_err = |mut e: openssh::ChildStderr| async move {
            let mut buf = Vec::new();
            let _ = e.read_to_end(&mut buf).await;
            String::from_utf8_lossy(&buf).into_owned()
        };
        let (copied, serr, terr) = tokio::join!(copy, read_err(source_err), read_err(target_err));
        let s_status = source.wait().await.context("waiting for the source command")?;
        let t_status = target.wait().await.context("waiting for the target command")?;
        if !s_status.success() {
            return Err(anyhow!("on {}: `{}` failed: {}", self.host, command.as_str(), serr.trim()));
        }
        if !t_status.success() {
            return Err(anyhow!("on {}: `{}` failed: {}", to.host, sink.as_str(), terr.trim()));
        }
        copied.context("copying between the hosts")
    }

    /// Closes the connection and its master process; a persistent master is left running
    /// (it ends by itself after its window).
    pub async fn close(self) {
        if self.persistent {
            let _ = self.session.detach();
        } else {
            let _ = self.session.close().await;
        }
    }
}

/// The useful part of an openssh error: its source says what ssh said.
fn explain(e: &openssh::Error) -> String {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    if msg.contains("Host key verification failed") || msg.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") {
        msg.push_str(" (the host key is unknown or has changed; if the host was rebuilt on purpose, remove its old key from the known_hosts file; `provision bootstrap` records keys of new hosts)");
    }
    msg
}
