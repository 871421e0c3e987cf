//! `file`: a file's content, a directory, a symlink, or absence; with owner, group and mode.
//!
//! Writes are atomic: a temp file in the same directory gets its owner and mode, is
//! validated (`validate`), fsynced and renamed over the old one. `verify` runs after the
//! rename and puts the old file back if it fails (for checks such as `nginx -t`, which need
//! the file in place). Other modules that write files (template, unit, sudoers) use
//! [`FileSpec`] too.

use super::{check_path, fmt_mode, read_mode, text_diff, Args, LowerCx, Module, Resource};
use crate::error::Diagnostic;
use crate::facts::{FactRequest, Facts, PathKind, Validation};
use crate::plan::{Action, Change, PlanContext, Provides};
use crate::shell::{heredoc_base64, quote, sha256_hex};
use crate::vars::REDACTED;

pub struct FileModule;

/// What a path should be.
#[derive(Debug, Clone)]
pub enum FileState {
    Present { content: Vec<u8>, secret: bool },
    Directory,
    Link { target: String },
    Absent,
}

/// A managed path, as the file-writing modules share it.
#[derive(Debug, Clone)]
pub struct FileSpec {
    pub path: String,
    pub state: FileState,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub mode: Option<u32>,
    /// A command run on the temp file before it lands (`%s` is the temp file); also run
    /// during the probe, so `--check` reports a rejected file.
    pub validate: Option<String>,
    /// A command run after the file lands; on failure the old file is restored.
    pub verify: Option<String>,
    /// Whether a failed `validate` may be caused by earlier changes of the same run not
    /// having happened yet (a unit's ExecStart binary comes with a package): then, when
    /// earlier changes exist, the failure is reported as an assumption, and the apply
    /// validates again before the file lands.
    pub validate_soft: bool,
    /// Extra sh run after a successful write (the unit module flags a daemon-reload).
    pub after_write: Option<String>,
}

impl FileSpec {
    pub fn new(path: impl Into<String>, state: FileState) -> FileSpec {
        FileSpec { path: path.into(), state, owner: None, group: None, mode: None, validate: None, verify: None, validate_soft: false, after_write: None }
    }

    fn validation_id(&self) -> String {
        format!("file:{}", self.path)
    }

    /// Asks for the facts [`FileSpec::plan`] reads.
    pub fn probe(&self, req: &mut FactRequest) {
        req.path(&self.path);
        if let FileState::Present { content, secret } = &self.state {
            req.hash(&self.path, &sha256_hex(content), !secret);
            if let Some(cmd) = &self.validate {
                req.validations.push(Validation {
                    id: self.validation_id(),
                    command: cmd.clone(),
                    content: content.clone(),
                    unless_current: Some((self.path.clone(), sha256_hex(content))),
                });
            }
        }
        if let Some(o) = &self.owner {
            req.user(o);
        }
        if let Some(g) = &self.group {
            req.group(g);
        }
    }

    /// The change that brings the path to the wanted state, if any.
    pub fn plan(&self, kind: &str, facts: &Facts, cx: &PlanContext) -> Result<Option<Change>, String> {
        let current = facts.paths.get(&self.path);
        let mut assumptions = Vec::new();
        // Packages installed earlier in this plan may bring users (redis) and files
        // (nginx's default site) that the probe could not see yet.
        let packages = cx.installed_packages();
        if let Some(o) = &self.owner {
            if !facts.user_exists(o) {
                match (cx.creates_user(o), packages.is_empty()) {
                    (Some(c), _) => assumptions.push(format!("user `{o}` is created by {}", c.id())),
                    (None, false) => assumptions.push(format!("user `{o}` comes with package {}", packages.join(", "))),
                    (None, true) => return Err(format!("owner `{o}` of {} does not exist on the host; create it with the `user` module first", self.path)),
                }
            }
        }
        if let Some(g) = &self.group {
            if !facts.group_exists(g) {
                match (cx.creates_group(g), packages.is_empty()) {
                    (Some(c), _) => assumptions.push(format!("group `{g}` is created by {}", c.id())),
                    (None, false) => assumptions.push(format!("group `{g}` comes with package {}", packages.join(", "))),
                    (None, true) => return Err(format!("group `{g}` of {} does not exist on the host; create it with the `group` module first", self.path)),
                }
            }
        }

        let mut change = match &self.state {
            FileState::Absent => match current {
                None if packages.is_empty() => return Ok(None),
                None => {
                    assumptions.push(format!("package {} may create it", packages.join(", ")));
                    Change::new(kind, &self.path, Action::Delete)
                        .detail("remove if present after the packages are installed")
                        .shell(format!("rm -rf -- {}", quote(&self.path)))
                }
                Some(f) => Change::new(kind, &self.path, Action::Delete)
                    .detail(format!("remove {}", f.kind.name()))
                    .shell(format!("rm -rf -- {}", quote(&self.path))),
            },
            FileState::Directory => match current {
                Some(f) if f.kind != PathKind::Directory => {
                    return Err(format!("{} is a {}, not a directory; remove it first", self.path, f.kind.name()))
                }
                Some(f) => match self.attr_changes(f.mode, &f.owner, &f.group) {
                    (d, _) if d.is_empty() => return Ok(None),
                    (d, script) => {
                        let mut c = Change::new(kind, &self.path, Action::Update).shell(script);
                        c.details = d;
                        c
                    }
                },
                None => {
                    let mut c = Change::new(kind, &self.path, Action::Create)
                        .detail("create directory")
                        .shell(format!("mkdir -p -- {p}", p = quote(&self.path)));
                    let (_, script) = self.attr_changes(u32::MAX, "", "");
                    c = c.shell(script);
                    c.details.extend(self.new_attrs(0o755));
                    c
                }
            },
            FileState::Link { target } => match current {
                Some(f) if f.kind == PathKind::Link && &f.link_target == target => return Ok(None),
                Some(f) if f.kind == PathKind::Directory => {
                    return Err(format!("{} is a directory, not a link; remove it first", self.path))
                }
                other => {
                    let action = if other.is_some() { Action::Update } else { Action::Create };
                    let before = other.map(|f| if f.kind == PathKind::Link { f.link_target.clone() } else { f.kind.name().to_string() });
                    let detail = match before {
                        Some(b) => format!("link {b} → {target}"),
                        None => format!("link → {target}"),
                    };
                    // A temp link renamed over the old one: readers never see the path missing.
                    Change::new(kind, &self.path, action).detail(detail).shell(format!(
                        "t=$(dirname -- {p})/.pv-link-$$ && ln -sfn -- {t} \"$t\" && mv -Tf -- \"$t\" {p}",
                        p = quote(&self.path),
                        t = quote(target)
                    ))
                }
            },
            FileState::Present { content, secret } => {
                let want_hash = sha256_hex(content);
                if let Some(v) = facts.validations.get(&self.validation_id()) {
                    if v.status != 0 && self.validate_soft && !cx.earlier.is_empty() {
                        assumptions.push(format!(
                            "`{}` passes once the earlier changes are made (now it says: {})",
                            self.validate.as_deref().unwrap_or_default(),
                            v.output.lines().next().unwrap_or_default().trim()
                        ));
                    } else if v.status != 0 {
                        return Err(format!(
                            "`{}` rejects the new content of {}:\n{}",
                            self.validate.as_deref().unwrap_or_default(),
                            self.path,
                            v.output.trim_end()
                        ));
                    }
                }
                match current {
                    Some(f) if f.kind == PathKind::Directory => {
                        return Err(format!("{} is a directory, not a file; remove it first", self.path))
                    }
                    Some(f) if f.kind == PathKind::File => {
                        let content_same = facts.hashes.get(&self.path) == Some(&want_hash);
                        let (mut details, _) = self.attr_changes(f.mode, &f.owner, &f.group);
                        if content_same && details.is_empty() {
                            return Ok(None);
                        }
                        let mut c = Change::new(kind, &self.path, Action::Update);
                        if !content_same {
                            details.insert(0, "content".to_string());
                            c.diff = Some(if *secret {
                                REDACTED.to_string()
                            } else {
                                match facts.contents.get(&self.path) {
                                    Some(before) => text_diff(&self.path, before, content),
                                    None => format!("(content differs; {} bytes now, too large to show)\n", f.size),
                                }
                            });
                        }
                        c.details = details;
                        c.steps.push(crate::plan::Step::Shell(self.write_script(content, true)));
                        c
                    }
                    other => {
                        let mut c = Change::new(kind, &self.path, Action::Create);
                        if let Some(f) = other {
                            c.details.push(format!("replace {}", f.kind.name()));
                        }
                        c.details.extend(self.new_attrs(0o644));
                        c.diff = Some(if *secret { REDACTED.to_string() } else { text_diff(&self.path, b"", content) });
                        c.steps.push(crate::plan::Step::Shell(self.write_script(content, false)));
                        c
                    }
                }
            }
        };
        change = change.provides(Provides::Path(self.path.clone()));
        if !assumptions.is_empty() {
            change.assumption = Some(assumptions.join("; "));
        }
        Ok(Some(change))
    }

    /// The owner/group/mode differences, as details and as a script that fixes them.
    fn attr_changes(&self, mode: u32, owner: &str, group: &str) -> (Vec<String>, String) {
        let mut details = Vec::new();
        let mut script = Vec::new();
        let p = quote(&self.path);
        if let Some(o) = self.owner.as_ref().filter(|o| *o != owner) {
            if !owner.is_empty() {
                details.push(format!("owner {owner} → {o}"));
            }
            script.push(format!("chown -h -- {} {p}", quote(o)));
        }
        if let Some(g) = self.group.as_ref().filter(|g| *g != group) {
            if !group.is_empty() {
                details.push(format!("group {group} → {g}"));
            }
            script.push(format!("chgrp -h -- {} {p}", quote(g)));
        }
        if let Some(m) = self.mode.filter(|m| *m != mode) {
            if mode != u32::MAX {
                details.push(format!("mode {} → {}", fmt_mode(mode), fmt_mode(m)));
            }
            script.push(format!("chmod {:o} {p}", m));
        }
        (details, if script.is_empty() { "true".into() } else { script.join(" && ") })
    }

    fn new_attrs(&self, default_mode: u32) -> Vec<String> {
        let mut d = vec![format!("mode {}", fmt_mode(self.mode.unwrap_or(default_mode)))];
        d.push(format!(
            "owner {}:{}",
            self.owner.as_deref().unwrap_or("root"),
            self.group.as_deref().or(self.owner.as_deref()).unwrap_or("root")
        ));
        d
    }

    /// The sh that writes `content` atomically. When the file exists, unspecified
    /// attributes are kept from it.
    fn write_script(&self, content: &[u8], exists: bool) -> String {
        let p = quote(&self.path);
        let mut s = String::new();
        s.push_str(&format!("d=$(dirname -- {p}); mkdir -p -- \"$d\"; t=$(mktemp \"$d/.pv-XXXXXX\"); trap 'rm -f \"$t\"' EXIT\n"));
        s.push_str(&format!("base64 -d > \"$t\" {}", heredoc_base64(content)));
        if exists {
            s.push_str(&format!("chown --reference={p} \"$t\"; chmod --reference={p} \"$t\"\n"));
        } else {
            s.push_str(&format!("chmod {:o} \"$t\"\n", self.mode.unwrap_or(0o644)));
        }
        if let Some(o) = &self.owner {
            s.push_str(&format!("chown {} \"$t\"\n", quote(o)));
        }
        if let Some(g) = &self.group {
            s.push_str(&format!("chgrp {} \"$t\"\n", quote(g)));
        }
        if let Some(m) = self.mode {
            s.push_str(&format!("chmod {m:o} \"$t\"\n"));
        }
        if let Some(v) = &self.validate {
            s.push_str(&format!("{}\n", v.replace("%s", "\"$t\"")));
        }
        s.push_str("sync -- \"$t\"\n");
        match &self.verify {
            None => s.push_str(&format!("mv -f -- \"$t\" {p}\n")),
            Some(v) => {
                // Keep the old file as a hard link: restoring it is one rename.
                s.push_str(&format!(
                    "b=; if [ -e {p} ]; then b=\"$d/.pv-old-$$\"; ln -f -- {p} \"$b\"; fi\nmv -f -- \"$t\" {p}\nif ! ( {v}\n) >\"$PV_RUN/verify.log\" 2>&1; then if [ -n \"$b\" ]; then mv -f -- \"$b\" {p}; else rm -f -- {p}; fi; echo \"verification failed: {vq}; the previous file was restored\"; cat \"$PV_RUN/verify.log\"; exit 1; fi\n[ -z \"$b\" ] || rm -f -- \"$b\"\n",
                    vq = v.replace('"', "'").replace('$', "")
                ));
            }
        }
        s.push_str("sync -- \"$d\" 2>/dev/null || true\n");
        if let Some(a) = &self.after_write {
            s.push_str(a);
            s.push('\n');
        }
        s
    }
}

#[derive(Debug)]
pub struct FileResource(pub FileSpec);

impl Resource for FileResource {
    fn kind(&self) -> &'static str {
        "file"
    }
    fn target(&self) -> String {
        self.0.path.clone()
    }
    fn probe(&self, req: &mut FactRequest) {
        self.0.probe(req)
    }
    fn plan(&self, facts: &Facts, cx: &PlanContext) -> Result<Option<Change>, String> {
        self.0.plan("file", facts, cx)
    }
}

/// Reads the attributes every file-writing module shares.
pub fn read_common(spec: &mut FileSpec, r: &mut crate::yaml::MapReader, args: &Args) -> Result<(), Diagnostic> {
    spec.owner = r.opt_string("owner")?;
    spec.group = r.opt_string("group")?;
    spec.mode = read_mode(r, args)?;
    spec.validate = r.opt_string("validate")?;
    if let Some(v) = &spec.validate {
        if !v.contains("%s") {
            return Err(args
                .doc
                .error(&r.path_of("validate"), format!("`validate: {v}` has no `%s`"))
                .help("write `%s` where the temp file goes, such as `validate: visudo -cf %s`"));
        }
    }
    spec.verify = r.opt_string("verify")?;
    Ok(())
}

impl Module for FileModule {
    fn name(&self) -> &'static str {
        "file"
    }

    fn lower(&self, args: &Args, cx: &LowerCx) -> Result<Vec<Box<dyn Resource>>, Diagnostic> {
        let mut r = args.reader("file")?;
        let path = r.string("path", "`file`")?;
        check_path(&path, args, "path")?;
        let state = r.opt_string("state")?.unwrap_or_else(|| "present".into());
        let content = r.opt_string("content")?;
        let src = r.opt_string("src")?;
        let target = r.opt_string("target")?;
        let mut spec = FileSpec::new(&path, FileState::Absent);
        read_common(&mut spec, &mut r, args)?;
        spec.state = match state.as_str() {
            "present" | "file" => {
                let bytes = match (content, src) {
                    (Some(c), None) => c.into_bytes(),
                    (None, Some(s)) => {
                        let file = cx.role_dir.join("files").join(&s);
                        std::fs::read(&file).map_err(|e| {
                            args.error(format!("cannot read `{}`: {e}", file.display()))
                                .help(format!("put the file in roles/{}/files/ or fix `src`", cx.role))
                        })?
                    }
                    (Some(_), Some(_)) => return Err(args.error("`file` takes `content` or `src`, not both")),
                    (None, None) => {
                        return Err(args
                            .error(format!("`file` {path} with state present needs `content` or `src`"))
                            .help("for a directory write `state: directory`"))
                    }
                };
                let secret = cx.secrets.touches(&String::from_utf8_lossy(&bytes));
                FileState::Present { content: bytes, secret }
            }
            "directory" => FileState::Directory,
            "link" => FileState::Link {
                target: target.ok_or_else(|| args.error("`state: link` needs `target`").help("add `target: /path/it/points/to`"))?,
            },
            "absent" => FileState::Absent,
            other => {
                return Err(args
                    .doc
                    .error(&r.path_of("state"), format!("unknown state `{other}`"))
                    .did_you_mean(other, ["present", "directory", "link", "absent"])
                    .help("use present, directory, link or absent"))
            }
        };
        r.finish("`file` arguments")?;
        Ok(vec![Box::new(FileResource(spec))])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::PathFact;

    fn facts_with(path: &str, content: &[u8], mode: u32) -> Facts {
        let mut f = Facts::default();
        f.paths.insert(path.into(), PathFact { kind: PathKind::File, mode, owner: "root".into(), group: "root".into(), size: content.len() as u64, link_target: String::new() });
        f.hashes.insert(path.into(), sha256_hex(content));
        f.contents.insert(path.into(), content.to_vec());
        f
    }

    #[test]
    fn same_content_and_mode_is_no_change() {
        let mut s = FileSpec::new("/etc/x", FileState::Present { content: b"a\n".to_vec(), secret: false });
        s.mode = Some(0o644);
        assert!(s.plan("file", &facts_with("/etc/x", b"a\n", 0o644), &PlanContext::default()).unwrap().is_none());
    }

    #[test]
    fn mode_change_shows_even_with_content_change() {
        let mut s = FileSpec::new("/etc/x", FileState::Present { content: b"b\n".to_vec(), secret: false });
        s.mode = Some(0o644);
        let c = s.plan("file", &facts_with("/etc/x", b"a\n", 0o600), &PlanContext::default()).unwrap().unwrap();
        assert_eq!(c.details, vec!["content", "mode 0600 → 0644"]);
        assert!(c.diff.unwrap().contains("-a\n+b\n"));
    }

    #[test]
    fn secret_content_is_never_diffed() {
        let s = FileSpec::new("/etc/x", FileState::Present { content: b"pw=hunter2\n".to_vec(), secret: true });
        let c = s.plan("file", &facts_with("/etc/x", b"pw=old\n", 0o644), &PlanContext::default()).unwrap().unwrap();
        assert_eq!(c.diff.as_deref(), Some(REDACTED));
    }

    #[test]
    fn missing_owner_is_an_assumption_only_when_created_earlier() {
        let mut s = FileSpec::new("/srv/x", FileState::Directory);
        s.owner = Some("deploy".into());
        assert!(s.plan("file", &Facts::default(), &PlanContext::default()).is_err());
        let earlier = vec![Change::new("user", "deploy", Action::Create).provides(Provides::User("deploy".into()))];
        let c = s.plan("file", &Facts::default(), &PlanContext { earlier: &earlier }).unwrap().unwrap();
        assert!(c.assumption.unwrap().contains("user deploy"));
    }

    #[test]
    fn modes_are_read_the_way_people_write_them() {
        assert_eq!(super::super::parse_mode("0644"), Some(0o644));
        assert_eq!(super::super::parse_mode("644"), Some(0o644));
        assert_eq!(super::super::parse_mode("0o750"), Some(0o750));
        assert_eq!(super::super::parse_mode("0999"), None);
    }
}
