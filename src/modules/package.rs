//! `package`: Debian packages present or absent. The missing packages of a host are
//! installed by as few `apt-get install`s as the roles' order allows (see apply::apt_runs), and `apt-get update` runs
//! only when the lists are older than a day or apt does not know a wanted package.

use super::{Args, LowerCx, Module, Resource};
use crate::error::Diagnostic;
use crate::facts::{FactRequest, Facts};
use crate::plan::{Action, Change, PlanContext, Provides, Step};
use crate::yaml::YPath;
use serde_yaml::Value;

pub struct PackageModule;

#[derive(Debug)]
pub struct Package {
    pub name: String,
    pub present: bool,
}

impl Resource for Package {
    fn kind(&self) -> &'static str {
        "package"
    }
    fn target(&self) -> String {
        self.name.clone()
    }
    fn probe(&self, req: &mut FactRequest) {
        if self.present {
            req.packages_present.insert(self.name.clone());
        } else {
            req.packages_absent.insert(self.name.clone());
        }
    }
    fn plan(&self, facts: &Facts, _cx: &PlanContext) -> Result<Option<Change>, String> {
        let installed = facts.package_installed(&self.name);
        Ok(match (self.present, installed) {
            (true, false) => {
                let update = !facts.apt.lists_fresh || !facts.apt.known.contains(&self.name);
                Some(
                    Change::new("package", &self.name, Action::Create)
                        .step(Step::AptInstall { packages: vec![self.name.clone()], update })
                        .provides(Provides::Package(self.name.clone())),
                )
            }
            (false, true) => {
                let version = facts.packages.get(&self.name).map(|p| p.version.clone()).unwrap_or_default();
                Some(
                    Change::new("package", &self.name, Action::Delete)
                        .detail(format!("remove {version}"))
                        .step(Step::AptRemove(vec![self.name.clone()])),
                )
            }
            _ => None,
        })
    }
}

fn valid_name(n: &str) -> bool {
    // Debian policy 5.6.1: lowercase letters, digits, `+ - .`, starting with a letter or digit;
    // `:arch` may follow.
    let (pkg, arch) = n.split_once(':').unwrap_or((n, "amd64"));
    pkg.len() >= 2
        && pkg.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && pkg.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c))
        && !arch.is_empty()
        && arch.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

impl Module for PackageModule {
    fn name(&self) -> &'static str {
        "package"
    }

    fn lower(&self, args: &Args, _cx: &LowerCx) -> Result<Vec<Box<dyn Resource>>, Diagnostic> {
        // Each name with where it is written, for an error about it.
        let (names, present): (Vec<(String, YPath)>, bool) = match &args.value {
            Value::Mapping(m) => {
                let mut r = args.reader("package")?;
                let mut names = Vec::new();
                for k in ["name", "names"] {
                    let path = r.path_of(k);
                    let listed = r.opt_strings(k)?.unwrap_or_default();
                    names.extend(listed.into_iter().enumerate().map(|(i, n)| (n, item_path(m.get(k), path.clone(), i))));
                }
                let state = r.opt_string("state")?.unwrap_or_else(|| "present".into());
                let present = match state.as_str() {
                    "present" | "installed" => true,
                    "absent" | "removed" => false,
                    other => {
                        return Err(args
                            .doc
                            .value_error(&r.path_of("state"), format!("unknown package state `{other}`"))
                            .help("use present or absent"))
                    }
                };
                r.finish("`package` arguments")?;
                (names, present)
            }
            other => (
                crate::yaml::string_list(other)
                    .ok_or_else(|| args.error("`package` takes a list of names, or `name:` and `state:`"))?
                    .into_iter()
                    .enumerate()
                    .map(|(i, n)| (n, item_path(Some(other), args.path.clone(), i)))
                    .collect(),
                true,
            ),
        };
        if names.is_empty() {
            return Err(args.error("`package` names no package"));
        }
        let mut out: Vec<Box<dyn Resource>> = Vec::new();
        for (name, at) in names {
            if !valid_name(&name) {
                return Err(args
                    .doc
                    .value_error(&at, format!("`{}` is not a valid Debian package name", crate::terminal::printable(&name)))
                    .help("a package name has lowercase letters, digits, `+`, `-` and `.`, and starts with a letter or digit"));
            }
            out.push(Box::new(Package { name, present }));
        }
        Ok(out)
    }
}

/// Where the `i`th name of the value `v` at `path` is written: its item in a list, else the
/// value itself.
fn item_path(v: Option<&Value>, path: YPath, i: usize) -> YPath {
    match v {
        Some(Value::Sequence(_)) => crate::yaml::index(&path, i),
        _ => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::PackageFact;

    #[test]
    fn installs_only_missing_and_updates_only_when_needed() {
        let mut f = Facts::default();
        f.packages.insert("nginx".into(), PackageFact { installed: true, version: "1".into() });
        let p = Package { name: "nginx".into(), present: true };
        assert!(p.plan(&f, &PlanContext::default()).unwrap().is_none());
        let p = Package { name: "curl".into(), present: true };
        f.apt.lists_fresh = true;
        f.apt.known.insert("curl".into());
        let c = p.plan(&f, &PlanContext::default()).unwrap().unwrap();
        assert_eq!(c.steps, vec![Step::AptInstall { packages: vec!["curl".into()], update: false }]);
        f.apt.known.clear();
        let c = p.plan(&f, &PlanContext::default()).unwrap().unwrap();
        assert_eq!(c.steps, vec![Step::AptInstall { packages: vec!["curl".into()], update: true }]);
    }
}
