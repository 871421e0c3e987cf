//! Host facts for templates: `facts.os_id`, `facts.os_version_id`, `facts.os_codename`,
//! `facts.memory_mb`, `facts.cpus`, `facts.arch`. They are read by the probe, in its one
//! round trip, and only for a host whose templates use them.
//!
//! How that stays one round trip: a host is lowered before it is connected to (every
//! error is found before any connection, and the probe needs the paths and packages to
//! read) with stand-in facts, through a view that records whether any template read it.
//! When one did, the probe also reads the facts, the host is lowered again with the real
//! ones, and only when the second lowering asks the probe for something new (a fact in a
//! path, a package name, a guard or a validated file) is the host probed a second time.
//! A fact in a file's content never costs one: the probe reads every file's hash anyway.
//! And instead of the stand-ins, a converge lowers with the facts the host had at its last
//! probe, kept on the controller (`$XDG_CACHE_HOME/provision/facts/`): when the host still
//! has them, nothing is lowered twice and nothing is probed twice; a fact in a guard (the
//! mysql role's restart check) costs a second probe only the first time, or when the host
//! changed.

use crate::shell::{mark, Script};
use minijinja::value::{Enumerator, Object, Value as JValue};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What a template can know about the host it is rendered for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostFacts {
    /// `ID` of /etc/os-release: `debian`, `ubuntu`.
    pub os_id: String,
    /// `VERSION_ID`: `12`, `24.04`.
    pub os_version_id: String,
    /// `VERSION_CODENAME`: `bookworm`.
    pub os_codename: String,
    /// MemTotal of /proc/meminfo, in MiB.
    pub memory_mb: u64,
    /// Online CPUs (`nproc`).
    pub cpus: u64,
    /// `uname -m`: `x86_64`, `aarch64`.
    pub arch: String,
    /// `systemd-detect-virt --container`: `none` on a machine or a VM, else the container
    /// kind (`systemd-nspawn`, `lxc`, `docker`): a container shares the machine's clock.
    #[serde(default = "no_container")]
    pub container: String,
}

fn no_container() -> String {
    "none".into()
}

/// The names templates see, in the order `{{ facts }}` lists them.
const NAMES: [&str; 7] = ["os_id", "os_version_id", "os_codename", "memory_mb", "cpus", "arch", "container"];

impl HostFacts {
    /// What a host is assumed to look like before it is probed (and in `validate`, which
    /// never connects): a small Debian 12 server. Only the lowering that finds out which
    /// facts are used, and the checks of `validate`, see these values.
    pub fn stand_in() -> HostFacts {
        HostFacts { os_id: "debian".into(), os_version_id: "12".into(), os_codename: "bookworm".into(), memory_mb: 2048, cpus: 2, arch: "x86_64".into(), container: no_container() }
    }

    /// A host unlike the stand-in in every fact (another OS, size, architecture; in a
    /// container). An error found with both is not the facts' doing: it is reported before
    /// connecting, as an error that reads no fact is.
    pub fn contrast() -> HostFacts {
        HostFacts { os_id: "ubuntu".into(), os_version_id: "24.04".into(), os_codename: "noble".into(), memory_mb: 65536, cpus: 64, arch: "aarch64".into(), container: "lxc".into() }
    }

    /// The probe's section that reads the facts: one `nproc` and one `uname`; the files are
    /// read by sh itself. Values reach the controller as data on their own lines.
    pub fn probe_section() -> Script {
        crate::sh!(
            "{}while IFS='=' read -r pv_k pv_v || [ -n \"$pv_k\" ]; do case \"$pv_k\" in ID|VERSION_ID|VERSION_CODENAME) printf '%s=%s\\n' \"$pv_k\" \"$pv_v\";; esac; done < /etc/os-release\nwhile read -r pv_k pv_v pv_u; do [ \"$pv_k\" = MemTotal: ] && printf 'MemTotal=%s\\n' \"$pv_v\" && break; done < /proc/meminfo\nprintf 'cpus=%s\\narch=%s\\ncontainer=%s\\n' \"$(nproc)\" \"$(uname -m)\" \"$(systemd-detect-virt --container 2>/dev/null || true)\"\n",
            mark("facts")
        )
    }

    /// Reads the lines of the probe's facts section. None when a fact is missing: the host is
    /// then reported as failed rather than templated with a guess.
    pub fn parse(lines: &[&str]) -> Option<HostFacts> {
        let mut f = HostFacts { os_id: String::new(), os_version_id: String::new(), os_codename: String::new(), memory_mb: 0, cpus: 0, arch: String::new(), container: no_container() };
        let (mut memory, mut cpus) = (None, None);
        for line in lines {
            let Some((k, v)) = line.split_once('=') else { continue };
            // os-release values may be quoted: ID="debian".
            let v = v.trim().trim_matches(|c| c == '"' || c == '\'').to_string();
            match k {
                "ID" => f.os_id = v,
                "VERSION_ID" => f.os_version_id = v,
                "VERSION_CODENAME" => f.os_codename = v,
                "MemTotal" => memory = v.parse::<u64>().ok().map(|kb| kb / 1024),
                "cpus" => cpus = v.parse::<u64>().ok(),
                "arch" => f.arch = v,
                // Empty without systemd-detect-virt (no systemd): taken as no container.
                "container" if !v.is_empty() => f.container = v,
                _ => {}
            }
        }
        f.memory_mb = memory?;
        f.cpus = cpus?;
        (!f.os_id.is_empty() && !f.arch.is_empty()).then_some(f)
    }

    /// The value templates see as `facts`, recording any read into `used`.
    pub fn template_value(&self, used: &FactsUsed) -> JValue {
        JValue::from_object(FactsView { facts: self.clone(), used: used.0.clone() })
    }
}

/// Where the facts a host had at its last probe are kept: one file per login (`user@address:port`).
fn cache_file(login: &str) -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME")?).join(".cache"),
    };
    let digest = <sha2::Sha256 as sha2::Digest>::digest(login.as_bytes());
    let name: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    Some(base.join("provision").join("facts").join(format!("{name}.json")))
}

/// The facts `login` had at its last probe, if they were kept.
pub fn last_known(login: &str) -> Option<HostFacts> {
    serde_json::from_slice(&std::fs::read(cache_file(login)?).ok()?).ok()
}

/// Keeps `facts` as `login`'s last known ones (best effort: a cache, never needed).
pub fn remember(login: &str, facts: &HostFacts) {
    let Some(path) = cache_file(login) else { return };
    let Some(dir) = path.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    if let (Ok(mut tmp), Ok(json)) = (tempfile::NamedTempFile::new_in(dir), serde_json::to_vec(facts)) {
        if std::io::Write::write_all(&mut tmp, &json).is_ok() {
            let _ = tmp.persist(&path);
        }
    }
}

/// Whether a lowering read any fact. Shared by the views handed to every template of a host.
#[derive(Debug, Clone, Default)]
pub struct FactsUsed(Arc<AtomicBool>);

impl FactsUsed {
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// `facts` in a template: a map that notes being read.
#[derive(Debug)]
struct FactsView {
    facts: HostFacts,
    used: Arc<AtomicBool>,
}

impl Object for FactsView {
    fn get_value(self: &Arc<Self>, key: &JValue) -> Option<JValue> {
        self.used.store(true, Ordering::Relaxed);
        let f = &self.facts;
        Some(match key.as_str()? {
            "os_id" => JValue::from(f.os_id.clone()),
            "os_version_id" => JValue::from(f.os_version_id.clone()),
            "os_codename" => JValue::from(f.os_codename.clone()),
            "memory_mb" => JValue::from(f.memory_mb),
            "cpus" => JValue::from(f.cpus),
            "arch" => JValue::from(f.arch.clone()),
            "container" => JValue::from(f.container.clone()),
            _ => return None,
        })
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        self.used.store(true, Ordering::Relaxed);
        Enumerator::Str(&NAMES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(src: &str, facts: &HostFacts, used: &FactsUsed) -> String {
        let ctx = minijinja::context! { facts => facts.template_value(used), x => 1 };
        minijinja::Environment::new().render_str(src, ctx).expect("renders")
    }

    #[test]
    fn a_read_is_recorded_and_a_template_without_facts_is_not() {
        let f = HostFacts::stand_in();
        let used = FactsUsed::default();
        assert_eq!(render("{{ x }}", &f, &used), "1");
        assert!(!used.get());
        assert_eq!(render("{{ (facts.memory_mb * 0.5) | int }} {{ facts.os_codename }}", &f, &used), "1024 bookworm");
        assert!(used.get());
        let used = FactsUsed::default();
        assert_eq!(render("{% if facts %}{{ facts | length }}{% endif %}", &f, &used), "7");
        assert!(used.get());
    }

    #[test]
    fn parses_the_probe_section_and_refuses_a_partial_one() {
        let lines = ["ID=debian", "VERSION_ID=\"13\"", "VERSION_CODENAME=trixie", "MemTotal=4030312", "cpus=4", "arch=aarch64", "container=lxc"];
        let f = HostFacts::parse(&lines).expect("complete");
        assert_eq!((f.os_id.as_str(), f.os_version_id.as_str(), f.os_codename.as_str(), f.memory_mb, f.cpus, f.arch.as_str(), f.container.as_str()), ("debian", "13", "trixie", 3935, 4, "aarch64", "lxc"));
        assert_eq!(HostFacts::parse(&lines[..4]), None);
        assert_eq!(HostFacts::parse(&["ID=debian", "MemTotal=x", "cpus=1", "arch=x86_64"]), None);
    }
}
