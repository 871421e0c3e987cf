//! The release's remote scripts, pure: settings in, [`Script`] out. Every value enters
//! through [`sh!`](crate::sh), quoted.

use crate::sh;
use crate::shell::{heredoc_base64, Script, Words};

/// One host's release settings, from its variables.
#[derive(Debug, Clone)]
pub struct HostCfg {
    pub deploy_to: String,
    pub deploy_user: String,
    pub keep_releases: usize,
    pub linked_files: Vec<String>,
    pub linked_dirs: Vec<String>,
    /// `release_migrate`: unset runs `bin/rails db:migrate` when the release has it.
    pub migrate: StepCmd,
    /// `release_bundle`: unset runs `bundle install --local` when the release has a Gemfile.lock.
    pub bundle: StepCmd,
    /// `release_assets` (`auto`, `off` or a command run on the controller); None: auto.
    pub assets: Option<String>,
    /// `rails_env`: RAILS_ENV of the assets built on the controller.
    pub rails_env: Option<String>,
    pub env_file: Option<String>,
    pub puma: Vec<String>,
    pub sidekiq: Vec<String>,
    pub faye: Vec<String>,
    pub health_url: Option<String>,
    pub health_retries: u32,
    pub health_interval: u32,
    pub health_timeout: u32,
    pub restart_timeout: u32,
    pub lock_ttl: u64,
    /// The health gate of a puma host (None elsewhere).
    pub gate: Option<GateCfg>,
}

/// Where and how the new release's puma is checked before it takes traffic.
#[derive(Debug, Clone)]
pub struct GateCfg {
    pub puma_bin: String,
    /// A loopback port nothing else uses (`release_gate_port`, default puma_port + 10000).
    pub port: u16,
    pub path: String,
    /// Tries while nothing answers (the app booting).
    pub retries: u32,
    /// Tries that got an answer other than 2xx (a booted app that is unhealthy).
    pub answered_retries: u32,
    pub interval: u32,
    pub timeout: u32,
}

/// A release command variable (`release_bundle`, `release_migrate`): unset gives the
/// default, an empty value turns the step off, anything else is the user's sh command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepCmd {
    Default,
    Off,
    Command(String),
}

impl StepCmd {
    /// From the variable's raw value (None: not set).
    pub fn from_var(v: Option<String>) -> StepCmd {
        match v {
            None => StepCmd::Default,
            Some(s) if s.trim().is_empty() => StepCmd::Off,
            Some(s) => StepCmd::Command(s),
        }
    }
}

/// A packed artifact in memory.
pub struct Artifact {
    pub bytes: Vec<u8>,
    pub sha256: String,
    pub revision: String,
}


/// Variables every release script starts with: `D` (deploy_to), `U` (deploy user), `OWN`.
pub fn header(cfg: &HostCfg) -> Script {
    sh!(
        "set -u\numask 022\nD={}\nU={}\nif id -u -- \"$U\" >/dev/null 2>&1; then OWN=\"$U:$U\"; else OWN=root:root; fi\n",
        cfg.deploy_to,
        cfg.deploy_user
    )
}

/// Lock (or report the holder) and probe: current, releases, whether the artifact is there.
pub fn lock_script(cfg: &HostCfg, token: &str, who: &str, controller: &str, pid: u32, break_token: &str, sha: Option<&str>) -> Script {
    let mut s = header(cfg);
    s.push(sh!(
        "L=\"$D/.deploy-lock\"\nnow=$(date +%s)\nmkdir -p \"$D/releases\" \"$D/shared\" \"$D/.artifacts\" || exit 3\nchown \"$OWN\" \"$D\" \"$D/releases\" \"$D/shared\" 2>/dev/null\n\
take() {{ mkdir \"$L\" 2>/dev/null || return 1; printf '%s\\n' token={} who={} controller={} pid={} started=$now expires=$((now + {})) > \"$L/info\"; }}\n\
holder() {{ tr '\\n' ' ' < \"$L/info\" 2>/dev/null; }}\n\
if take; then echo '@@PV lock taken'\n\
else\n\
  exp=$(sed -n 's/^expires=//p' \"$L/info\" 2>/dev/null)\n\
  tok=$(sed -n 's/^token=//p' \"$L/info\" 2>/dev/null)\n\
  age=$(( now - $(stat -c %Y \"$L\" 2>/dev/null || echo $now) ))\n\
  stale=no\n\
  if [ -z \"$exp\" ]; then [ \"$age\" -gt 60 ] && stale=yes; elif [ \"$now\" -gt \"$exp\" ]; then stale=yes; fi\n\
  if [ -n {} ] && [ \"$tok\" = {} ]; then stale=yes; fi\n\
  if [ $stale = yes ]; then old=$(holder); rm -rf \"$L\"; if take; then echo \"@@PV lock recovered $old\"; else echo \"@@PV lock held $(holder)\"; exit 0; fi\n\
  else echo \"@@PV lock held $(holder)\"; exit 0; fi\n\
fi\n\
cur=$(readlink \"$D/current\" 2>/dev/null || true)\n\
if [ -f \"$D/.pv-pending\" ]; then p=$(head -c 14 \"$D/.pv-pending\"); case \"$p\" in *[!0-9]*|'') ;; *) if [ \"${{cur##*/}}\" != \"$p\" ]; then rm -rf \"$D/releases/$p\" \"$D/releases/$p.part\"; echo \"@@PV orphan $p\"; fi;; esac; rm -f \"$D/.pv-pending\"; fi\n\
echo \"@@PV current ${{cur##*/}}\"\n\
for r in $(ls -1 \"$D/releases\" | grep -v '\\.part$' | sort); do echo \"@@PV release $r $(head -c 200 \"$D/releases/$r/REVISION\" 2>/dev/null | head -n 1 | tr -d '\\000-\\037')\"; done\n",
        token,
        who.replace('\n', " "),
        controller.replace('\n', " "),
        pid,
        cfg.lock_ttl,
        break_token,
        break_token,
    ));
    if let Some(sha) = sha {
        s.push(sh!(
            "A=\"$D/.artifacts/\"{}.tar.gz\nif [ -f \"$A\" ] && printf '%s  %s\\n' {} \"$A\" | sha256sum -c --status; then echo '@@PV have-artifact'; fi\n",
            sha,
            sha
        ));
    }
    s.push(sh!("echo '@@PV probed'\n"));
    s
}

/// Removes the lock if (and only if) it is ours.
pub fn unlock_lines(token: &str) -> Script {
    sh!(
        "L=\"$D/.deploy-lock\"\nif [ \"$(sed -n 's/^token=//p' \"$L/info\" 2>/dev/null)\" = {} ]; then rm -f \"$D/.pv-pending\"; rm -rf \"$L\"; echo '@@PV unlocked'; fi\n",
        token
    )
}

/// Upload (when asked), unpack to releases/TS, REVISION, shared links.
pub fn prepare_script(cfg: &HostCfg, ts: &str, art: &Artifact, upload: bool) -> Script {
    let payload = upload.then(|| upload_payload(&art.bytes));
    prepare_script_with(cfg, ts, &art.sha256, &art.revision, payload.as_ref())
}

/// The artifact as a here-document of base64 (made once, shared by the hosts).
pub fn upload_payload(bytes: &[u8]) -> Script {
    heredoc_base64(bytes)
}

/// [`prepare_script`] with the upload's here-document given (None: no upload).
pub fn prepare_script_with(cfg: &HostCfg, ts: &str, sha: &str, revision: &str, upload: Option<&Script>) -> Script {
    let mut s = header(cfg);
    s.push(sh!("R=\"$D/releases/\"{}\nA=\"$D/.artifacts/\"{}.tar.gz\n", ts, sha));
    // A run killed before it finishes leaves this: the next run removes that release unless it went live.
    s.push(sh!("echo {} > \"$D/.pv-pending\"\n", ts));
    if let Some(heredoc) = upload {
        s.push(sh!(
            "base64 -d > \"$A.part\" {}if ! printf '%s  %s\\n' {} \"$A.part\" | sha256sum -c --status; then echo 'the uploaded artifact does not match its sha256' >&2; rm -f \"$A.part\"; exit 3; fi\nmv -f \"$A.part\" \"$A\" && echo '@@PV uploaded'\n",
            heredoc,
            sha
        ));
    }
    s.push(sh!(
        "if [ -e \"$R\" ]; then echo \"release $R exists already\" >&2; exit 3; fi\nrm -rf \"$R.part\"\nmkdir \"$R.part\" || exit 3\n\
tar -xzf \"$A\" -C \"$R.part\" --no-same-owner --no-same-permissions 2>\"$R.part.err\" || {{ cat \"$R.part.err\" >&2; rm -rf \"$R.part\" \"$R.part.err\"; exit 3; }}\nrm -f \"$R.part.err\"\n"
    ));
    s.push(sh!("printf '%s\\n' {} > \"$R.part/REVISION\"\nprintf '%s\\n' {} > \"$R.part/.pv-artifact\"\n", revision, sha));
    // The previous release's own fingerprinted assets are carried into the new one (once,
    // not from release to release), so that pages served by old workers during the phased
    // restart still find their assets on the web hosts.
    s.push(sh!(
        "P=$(readlink \"$D/current\" 2>/dev/null || true)\n\
if [ -n \"$P\" ] && [ -d \"$P/public/assets\" ] && [ -d \"$R.part/public/assets\" ]; then\n\
  (cd \"$P/public/assets\" && find . -type f) | while IFS= read -r f; do\n\
    grep -qxF -- \"$f\" \"$P/.pv-carried-assets\" 2>/dev/null && continue\n\
    [ -e \"$R.part/public/assets/$f\" ] && continue\n\
    mkdir -p \"$(dirname \"$R.part/public/assets/$f\")\" && cp -p \"$P/public/assets/$f\" \"$R.part/public/assets/$f\" && printf '%s\\n' \"$f\" >> \"$R.part/.pv-carried-assets\"\n\
  done\n\
fi\n"
    ));
    for d in &cfg.linked_dirs {
        s.push(sh!(
            "mkdir -p \"$D/shared/\"{} && chown \"$OWN\" \"$D/shared/\"{}\nrm -rf \"$R.part/\"{}\nmkdir -p \"$(dirname \"$R.part/\"{})\"\nln -s \"$D/shared/\"{} \"$R.part/\"{} || exit 3\n",
            d, d, d, d, d, d
        ));
    }
    for f in &cfg.linked_files {
        s.push(sh!(
            "[ -e \"$D/shared/\"{} ] || echo {}\nrm -rf \"$R.part/\"{}\nmkdir -p \"$(dirname \"$R.part/\"{})\"\nln -s \"$D/shared/\"{} \"$R.part/\"{} || exit 3\n",
            f,
            format!("@@PV note shared/{f} does not exist yet (linked anyway)"),
            f,
            f,
            f,
            f
        ));
    }
    s.push(sh!("chown -R \"$OWN\" \"$R.part\" && chmod 0755 \"$R.part\" && mv \"$R.part\" \"$R\" || exit 3\necho '@@PV prepared'\n"));
    s
}

/// The migration, as the deploy user in the new release, with the app's environment file.
/// `command` is the role's code (`release_migrate`) or the default of [`crate::release_rails`].
pub fn migrate_script(cfg: &HostCfg, ts: &str, command: &Script) -> Script {
    let mut s = header(cfg);
    s.push(as_deploy_user(cfg, ts, command));
    s
}

/// `inner_code` (sh) run as the deploy user in releases/`ts`, with the app's environment
/// file loaded, HOME set to the deploy user's and stdin from /dev/null (a command that
/// reads stdin must not eat the rest of this script); its stderr goes to stdout. After
/// [`header`].
pub fn as_deploy_user(cfg: &HostCfg, ts: &str, inner_code: &Script) -> Script {
    let mut inner = sh!("set -e\n");
    if let Some(env) = &cfg.env_file {
        inner.push(sh!("if [ -r {} ]; then set -a; . {}; set +a; fi\n", env, env));
    }
    inner.push(sh!(
        "h=$(getent passwd \"$(id -un)\" | cut -d: -f6); if [ -n \"$h\" ]; then HOME=$h; export HOME; fi\ncd -- {}\n{}\n",
        format!("{}/releases/{ts}", cfg.deploy_to),
        inner_code
    ));
    sh!(
        "PV_TMP=$(mktemp -d /tmp/.pv-step.XXXXXX) || exit 3\nchmod 0755 \"$PV_TMP\"\ntrap 'rm -rf \"$PV_TMP\"' EXIT\n\
base64 -d > \"$PV_TMP/m\" {}chmod 0644 \"$PV_TMP/m\"\ncd /\n\
if [ \"$OWN\" = root:root ]; then sh \"$PV_TMP/m\" </dev/null 2>&1; else runuser -u \"$U\" -- sh \"$PV_TMP/m\" </dev/null 2>&1; fi\n",
        heredoc_base64(inner.as_str().as_bytes())
    )
}

/// Quiet sidekiq, switch `current` to releases/`to`, restart in role order, and check health.
pub fn switch_script(cfg: &HostCfg, to: &str, health: bool) -> Script {
    let mut s = header(cfg);
    s.push(sh!("fail() {{ echo \"@@PV failed $*\"; exit 4; }}\n"));
    if !cfg.sidekiq.is_empty() {
        s.push(sh!(
            "for u in {}; do if systemctl is-active --quiet -- \"$u\"; then systemctl kill --kill-who=main -s TSTP -- \"$u\" && echo \"@@PV step $u quieted (TSTP)\"; fi; done\n",
            Words(&cfg.sidekiq)
        ));
    }
    s.push(sh!(
        "[ -d \"$D/releases/\"{} ] || fail {}\n\
ln -sfn \"$D/releases/\"{} \"$D/.current.tmp\" && mv -T \"$D/.current.tmp\" \"$D/current\" || fail 'cannot switch current'\n\
chown -h \"$OWN\" \"$D/current\" 2>/dev/null\necho {}\n",
        to,
        format!("release {to} is not on this host"),
        to,
        format!("@@PV step current -> releases/{to}")
    ));
    // puma: phased restart (reload), or a start when it is not running.
    for p in &cfg.puma {
        s.push(sh!(
            "if systemctl is-active --quiet -- {}; then\n\
  pid=$(systemctl show -p MainPID --value -- {}); oldpids=\" $(pgrep -P \"$pid\" | tr '\\n' ' ') \"; before=$(pgrep -P \"$pid\" | wc -l); t0=$(date +%s)\n\
  systemctl reload -- {} || fail {}\n\
  n=0; while :; do\n\
    pid=$(systemctl show -p MainPID --value -- {}); cnt=0; old=0\n\
    for c in $(pgrep -P \"$pid\"); do cnt=$((cnt+1)); case \"$oldpids\" in *\" $c \"*) old=$((old+1));; esac; done\n\
    [ \"$cnt\" -ge \"$before\" ] && [ \"$old\" -eq 0 ] && break\n\
    n=$((n+1)); [ $n -gt {} ] && fail {}\n\
    sleep 1\n\
  done\n\
  echo {}\"($cnt workers replaced in $(( $(date +%s) - t0 )) s)\"\n\
else\n\
  systemctl start -- {} || fail {}\n\
  echo {}\n\
fi\n",
            p,
            p,
            p,
            format!("{p}: systemctl reload failed"),
            p,
            cfg.restart_timeout,
            format!("{p}: the phased restart did not replace every worker within {} s", cfg.restart_timeout),
            format!("@@PV step {p} phased restart "),
            p,
            format!("{p}: systemctl start failed"),
            format!("@@PV step {p} started (it was not running)")
        ));
    }
    // After puma (whose gate already passed): sidekiq and faye, each back and running within
    // release_restart_timeout, or the release fails and is rolled back like a puma failure.
    // (sidekiq's unit is Type=notify: `restart` returns once it is ready, or fails.)
    for u in cfg.sidekiq.iter().chain(&cfg.faye) {
        s.push(sh!(
            "systemctl restart -- {} || fail {}\nn=0; while :; do\n  if systemctl is-active --quiet -- {}; then break; elif [ \"$(systemctl is-failed -- {} 2>/dev/null)\" = failed ] || [ $n -ge {} ]; then fail {}; fi\n  sleep 1; n=$((n+1))\ndone\necho {}\n",
            u,
            format!("{u}: restart failed"),
            u,
            u,
            cfg.restart_timeout,
            format!("{u}: not running {} s after its restart", cfg.restart_timeout),
            format!("@@PV step {u} restarted and running")
        ));
    }
    if let (true, Some(url)) = (health, &cfg.health_url) {
        s.push(health_lines(url, cfg.health_retries, cfg.health_interval, cfg.health_timeout));
    }
    s.push(sh!("echo '@@PV switched'\n"));
    s
}

/// GET `url` on the host until 2xx, at most `retries` tries. curl if present, else bash's
/// /dev/tcp (the URL is always http://IP:PORT/PATH, the host's private address, an IPv6 one
/// in brackets, checked when it was read).
pub fn health_lines(url: &str, retries: u32, interval: u32, timeout: u32) -> Script {
    let rest = url.trim_start_matches("http://");
    let (hostport, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((rest, "/".into()));
    let (h, port) = hostport.rsplit_once(':').filter(|(_, p)| !p.contains(']')).unwrap_or((hostport, "80"));
    let h = h.trim_start_matches('[').trim_end_matches(']');
    // The inner bash gets host, port and path as its own arguments, never as code.
    let bash_get = sh!(
        "timeout {} bash -c 'exec 3<>\"/dev/tcp/$1/$2\" && printf \"GET %s HTTP/1.0\\r\\nHost: %s\\r\\n\\r\\n\" \"$3\" \"$1\" >&3 && head -n 1 <&3' pv-health {} {} {} 2>/dev/null | grep -q \"^HTTP/1\\.[01] 2\"",
        timeout,
        h,
        port,
        path
    );
    sh!(
        "i=0; t0=$(date +%s)\nwhile :; do\n\
  i=$((i+1))\n\
  if command -v curl >/dev/null 2>&1; then code=$(curl -s -o /dev/null -w '%{{http_code}}' -m {} -- {} || true); case \"$code\" in 2??) ok=yes;; *) ok=no;; esac\n\
  else code=tcp; if {}; then ok=yes; else ok=no; fi; fi\n\
  if [ $ok = yes ]; then echo {}\"$code (try $i, $(( $(date +%s) - t0 )) s)\"; break; fi\n\
  if [ $i -ge {} ]; then echo {}\"${{code:-nothing}} after $i tries\"; exit 5; fi\n\
  sleep {}\n\
done\n",
        timeout,
        url,
        bash_get,
        format!("@@PV healthy GET {url} answered "),
        retries.max(1),
        format!("@@PV unhealthy GET {url} answered "),
        interval
    )
}

/// Revisions log, cleanup of old releases and artifacts, unlock.
pub fn finish_script(cfg: &HostCfg, token: &str, log_line: &str, cleanup: bool) -> Script {
    let mut s = header(cfg);
    s.push(sh!("printf '%s\\n' {} >> \"$D/revisions.log\"\nchown \"$OWN\" \"$D/revisions.log\" 2>/dev/null\n", log_line));
    if cleanup {
        s.push(sh!(
            "cur=$(readlink \"$D/current\" 2>/dev/null || true); cur=${{cur##*/}}\nn=0\n\
for r in $(ls -1 \"$D/releases\" | grep -E '^[0-9]{{14}}$' | sort -r); do n=$((n+1)); if [ $n -gt {} ] && [ \"$r\" != \"$cur\" ]; then rm -rf \"$D/releases/$r\" && echo \"@@PV removed $r\"; fi; done\n\
for a in \"$D\"/.artifacts/*.tar.gz; do [ -e \"$a\" ] || continue; s=$(basename \"$a\" .tar.gz); cat \"$D\"/releases/*/.pv-artifact 2>/dev/null | grep -qx \"$s\" || rm -f \"$a\"; done\n",
            cfg.keep_releases
        ));
    }
    s.push(unlock_lines(token));
    s
}

/// After a failure before the switch: remove the half-made release, unlock.
pub fn abort_script(cfg: &HostCfg, token: &str, ts: Option<&str>) -> Script {
    let mut s = header(cfg);
    if let Some(ts) = ts {
        s.push(sh!(
            "cur=$(readlink \"$D/current\" 2>/dev/null || true)\nif [ \"${{cur##*/}}\" != {} ]; then rm -rf \"$D/releases/\"{} \"$D/releases/\"{}.part; fi\n",
            ts,
            ts,
            ts
        ));
    }
    s.push(unlock_lines(token));
    s
}

/// Lists releases and the current one.
pub fn list_script(cfg: &HostCfg) -> Script {
    let mut s = header(cfg);
    s.push(sh!(
        "cur=$(readlink \"$D/current\" 2>/dev/null || true)\necho \"@@PV current ${{cur##*/}}\"\n\
[ -d \"$D/releases\" ] && for r in $(ls -1 \"$D/releases\" | grep -v '\\.part$' | sort); do echo \"@@PV release $r $(head -c 200 \"$D/releases/$r/REVISION\" 2>/dev/null | head -n 1 | tr -d '\\000-\\037')\"; done\n\
[ -f \"$D/.deploy-lock/info\" ] && echo \"@@PV locked $(tr '\\n' ' ' < \"$D/.deploy-lock/info\" | tr -d '\\000-\\037')\"\necho '@@PV probed'\n"
    ));
    s
}

/// The health gate: the new release's puma started beside the running one (a transient
/// systemd unit on a spare loopback port, as the deploy user, with the app's environment),
/// asked for the health path until it answers 2xx, then stopped. Only this check reaches it:
/// nothing is switched and no user request is served by the new code until every puma host
/// passed. A candidate that exits or never answers fails the gate with its last log lines.
pub fn gate_script(cfg: &HostCfg, ts: &str) -> Script {
    let Some(gate) = &cfg.gate else { return sh!("echo '@@PV healthy (no puma here)'\n") };
    let unit = format!("pv-candidate-{ts}.service");
    let url = format!("http://127.0.0.1:{}{}", gate.port, gate.path);
    let mut s = header(cfg);
    let env = match &cfg.env_file {
        Some(e) => sh!("-p EnvironmentFile=-{} ", e),
        None => Script::new(),
    };
    s.push(sh!(
        "R=\"$D/releases/\"{}\nunit={}\nsystemctl stop -- \"$unit\" >/dev/null 2>&1; systemctl reset-failed -- \"$unit\" >/dev/null 2>&1\n\
if command -v ss >/dev/null 2>&1 && ss -Hltn \"sport = :{}\" | grep -q .; then echo {}; exit 6; fi\n\
systemd-run --quiet --collect --unit=\"$unit\" --uid=\"$U\" --gid=\"$U\" -p WorkingDirectory=\"$R\" {}-p RuntimeMaxSec={} --setenv=RAILS_MAX_THREADS=2 -- {} -C - -w 0 -t 1:2 -b {} \"$R/config.ru\" || {{ echo '@@PV gate-failed systemd-run could not start the candidate'; exit 6; }}\n\
logs() {{ journalctl -u \"$unit\" -n 20 --no-pager -o cat 2>/dev/null | tr -d '\\000-\\010\\013-\\037' | sed 's/^/@@PV gate-log /'; }}\n\
i=0; a=0; t0=$(date +%s)\nwhile :; do\n\
  i=$((i+1))\n\
  if ! systemctl is-active --quiet -- \"$unit\"; then echo \"@@PV gate-failed the new release exited before it answered (try $i)\"; logs; systemctl stop -- \"$unit\" >/dev/null 2>&1; exit 6; fi\n\
  code=$(curl -s -o /dev/null -w '%{{http_code}}' -m {} -- {} || true)\n\
  case \"$code\" in 2??) echo {}\"$code (try $i, $(( $(date +%s) - t0 )) s)\"; break;; 000|'') ;; *) a=$((a+1));; esac\n\
  if [ $i -ge {} ] || [ $a -ge {} ]; then echo {}\"${{code:-nothing}} after $i tries\"; logs; systemctl stop -- \"$unit\" >/dev/null 2>&1; exit 6; fi\n\
  sleep {}\n\
done\n\
systemctl stop -- \"$unit\" >/dev/null 2>&1\n",
        ts,
        unit,
        gate.port,
        format!("@@PV gate-failed port {} is taken on this host; set release_gate_port to a free one", gate.port),
        env,
        gate.retries * gate.interval.max(1) + 120,
        gate.puma_bin,
        format!("tcp://127.0.0.1:{}", gate.port),
        gate.timeout,
        url,
        format!("@@PV healthy gate GET {url} answered "),
        gate.retries.max(1),
        gate.answered_retries.max(1),
        format!("@@PV gate-failed GET {url} answered "),
        gate.interval
    ));
    s
}
