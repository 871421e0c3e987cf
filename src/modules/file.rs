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
use crate::sh;
use crate::shell::{heredoc_base64, sha256_hex, Script};
use crate::template::CodeKind;
use crate::secrets::REDACTED;

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
    pub validate: Option<Script>,
    /// A command run after the file lands; on failure the old file is restored.
    pub verify: Option<Script>,
    /// Whether a failed `validate` may be caused by earlier changes of the same run not
    /// having happened yet (a unit's ExecStart binary comes with a package): then, when
    /// earlier changes exist, the failure is reported as an assumption, and the apply
    /// validates again before the file lands.
    pub validate_soft: bool,
    /// Extra sh run after a successful write (the unit module flags a daemon-reload).
    pub after_write: Option<Script>,
    /// A command that puts the file in force at once (`nft -f /etc/nftables.conf`). A file
    /// with one can lock us out: the lockout canary guards it like sudoers, and puts the
    /// old file back and runs this again when a fresh login fails. If the command itself
    /// fails, the old file is put back and activated at once.
    pub activate: Option<Script>,
}

impl FileSpec {
    pub fn new(path: impl Into<String>, state: FileState) -> FileSpec {
        FileSpec { path: path.into(), state, owner: None, group: None, mode: None, validate: None, verify: None, validate_soft: false, after_write: None, activate: None }
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
                        .shell(sh!("rm -rf -- {}", self.path))
                }
                Some(f) => Change::new(kind, &self.path, Action::Delete)
                    .detail(format!("remove {}", f.kind.name()))
                    .shell(sh!("rm -rf -- {}", self.path)),
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
                        .shell(sh!("{}mkdir -p -- {}", no_linked_parent(&self.path), self.path));
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
                    Change::new(kind, &self.path, action).detail(detail).shell(sh!(
                        "{}t=$(dirname -- {})/.pv-link-$$ && ln -sfn -- {} \"$t\" && mv -Tf -- \"$t\" {}",
                        no_linked_parent(&self.path),
                        self.path,
                        target,
                        self.path
                    ))
                }
            },
            FileState::Present { content, secret } => {
                let want_hash = sha256_hex(content);
                if let Some(v) = facts.validations.get(&self.validation_id()) {
                    // 127: the validator is not installed yet (it comes with a package of an
                    // earlier change, as nft does with nftables).
                    if v.status != 0 && (self.validate_soft || v.status == 127) && !cx.earlier.is_empty() {
                        assumptions.push(format!(
                            "`{}` passes once the earlier changes are made (now it says: {})",
                            self.validate.as_ref().map(Script::as_str).unwrap_or_default(),
                            v.output.lines().next().unwrap_or_default().trim()
                        ));
                    } else if v.status != 0 {
                        return Err(format!(
                            "`{}` rejects the new content of {}:\n{}",
                            self.validate.as_ref().map(Script::as_str).unwrap_or_default(),
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
                                    None => format!("(content differs; {} bytes now, not shown: too large, or readable by root only)\n", f.size),
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
        if let (Some(a), FileState::Present { .. }) = (&self.activate, &self.state) {
            change.login_file = Some(self.path.clone());
            change.login_reload = Some(a.clone());
        }
        if !assumptions.is_empty() {
            change.assumption = Some(assumptions.join("; "));
        }
        Ok(Some(change))
    }

    /// The owner/group/mode differences, as details and as a script that fixes them.
    fn attr_changes(&self, mode: u32, owner: &str, group: &str) -> (Vec<String>, Script) {
        let mut details = Vec::new();
        // chmod follows links and has no -h on Linux: the path must still be the directory
        // or file the probe saw, checked under the run lock right before.
        let p = &self.path;
        let mut script = sh!(
            "if [ -L {} ]; then echo {} >&2; exit 1; fi\n",
            p,
            format!("{p} is now a symbolic link; not changing its owner or mode through it")
        );
        if let Some(o) = self.owner.as_ref().filter(|o| *o != owner) {
            if !owner.is_empty() {
                details.push(format!("owner {owner} → {o}"));
            }
            script.line(sh!("chown -h -- {} {}", o, p));
        }
        if let Some(g) = self.group.as_ref().filter(|g| *g != group) {
            if !group.is_empty() {
                details.push(format!("group {group} → {g}"));
            }
            script.line(sh!("chgrp -h -- {} {}", g, p));
        }
        if let Some(m) = self.mode.filter(|m| *m != mode) {
            if mode != u32::MAX {
                details.push(format!("mode {} → {}", fmt_mode(mode), fmt_mode(m)));
            }
            script.line(sh!("chmod {} -- {}", format!("{m:o}"), p));
        }
        (details, script)
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
    fn write_script(&self, content: &[u8], exists: bool) -> Script {
        let p = &self.path;
        let mut s = no_linked_parent(p);
        s.line(sh!("d=$(dirname -- {}); mkdir -p -- \"$d\"; t=$(mktemp \"$d/.pv-XXXXXX\"); trap 'rm -f \"$t\"' EXIT", p));
        s.push(sh!("base64 -d > \"$t\" {}", heredoc_base64(content)));
        if exists {
            s.line(sh!("chown --reference={} \"$t\"; chmod --reference={} \"$t\"", p, p));
        } else {
            s.line(sh!("chmod {} \"$t\"", format!("{:o}", self.mode.unwrap_or(0o644))));
        }
        if let Some(o) = &self.owner {
            s.line(sh!("chown -- {} \"$t\"", o));
        }
        if let Some(g) = &self.group {
            s.line(sh!("chgrp -- {} \"$t\"", g));
        }
        if let Some(m) = self.mode {
            s.line(sh!("chmod {} \"$t\"", format!("{m:o}")));
        }
        if let Some(v) = &self.validate {
            s.line(v.with_file_placeholder(sh!("\"$t\"")));
        }
        s.line(sh!("sync -- \"$t\""));
        match (&self.verify, &self.activate) {
            (None, Some(a)) => {
                // As `verify`, and the old file is activated again after it is put back.
                s.line(sh!(
                    "b=; if [ -e {} ]; then b=\"$d/.pv-old-$$\"; ln -f -- {} \"$b\"; fi\nmv -f -- \"$t\" {}\nif ! ( {}\n) >\"$PV_RUN/verify.log\" 2>&1; then if [ -n \"$b\" ]; then mv -f -- \"$b\" {}; ( {}\n) >/dev/null 2>&1; else rm -f -- {}; fi; echo {}; cat \"$PV_RUN/verify.log\"; exit 1; fi\n[ -z \"$b\" ] || rm -f -- \"$b\"",
                    p, p, p, a, p, a, p,
                    format!("activation failed: {}; the previous file was restored and activated", a.as_str())
                ));
            }
            (None, None) => {
                s.line(sh!("mv -f -- \"$t\" {}", p));
            }
            (Some(v), _) => {
                // Keep the old file as a hard link: restoring it is one rename.
                s.line(sh!(
                    "b=; if [ -e {} ]; then b=\"$d/.pv-old-$$\"; ln -f -- {} \"$b\"; fi\nmv -f -- \"$t\" {}\nif ! ( {}\n) >\"$PV_RUN/verify.log\" 2>&1; then if [ -n \"$b\" ]; then mv -f -- \"$b\" {}; else rm -f -- {}; fi; echo {}; cat \"$PV_RUN/verify.log\"; exit 1; fi\n[ -z \"$b\" ] || rm -f -- \"$b\"",
                    p, p, p, v, p, p,
                    format!("verification failed: {}; the previous file was restored", v.as_str())
                ));
            }
        }
        s.line(sh!("sync -- \"$d\" 2>/dev/null || true"));
        if let Some(a) = &self.after_write {
            s.line(a.clone());
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
    for (key, v) in [("owner", &spec.owner), ("group", &spec.group)] {
        if let Some(v) = v.as_ref().filter(|v| !super::user::valid_account_name(v) && (v.is_empty() || !v.chars().all(|c| c.is_ascii_digit()))) {
            return Err(args
                .doc
                .value_error(&r.path_of(key), format!("`{key}: {}` is not a user or group name", crate::terminal::printable(v)))
                .help("use lowercase letters, digits, `_` and `-` (starting with a letter or `_`), or a numeric id"));
        }
    }
    spec.mode = read_mode(r, args)?;
    let validate = r.opt_string("validate")?;
    if let Some(v) = &validate {
        if !v.contains("%s") {
            return Err(args
                .doc
                .value_error(&r.path_of("validate"), format!("`validate: {v}` has no `%s`"))
                .help("write `%s` where the temp file goes, such as `validate: visudo -cf %s`"));
        }
    }
    // The role's own code, rendered with its values quoted (see `code_args`).
    spec.validate = validate.map(Script::user_code);
    spec.verify = r.opt_string("verify")?.map(Script::user_code);
    spec.activate = r.opt_string("activate")?.map(Script::user_code);
    if spec.verify.is_some() && spec.activate.is_some() {
        return Err(args.doc.error(&r.path_of("activate"), "`activate` and `verify` together: `activate` already puts the old file back when it fails").help("keep `activate`, and make it fail when the file is not right"));
    }
    Ok(())
}

/// The arguments of the file-writing modules that are code.
pub const FILE_CODE_ARGS: &[(&str, CodeKind)] = &[("validate", CodeKind::Shell), ("verify", CodeKind::Shell), ("activate", CodeKind::Shell)];

/// A file that holds a secret is written 0600 unless its `mode` says otherwise; a `mode` that
/// lets every user read it is refused.
pub fn protect_secret(spec: &mut FileSpec, args: &Args, mode_path: &crate::yaml::YPath) -> Result<(), Diagnostic> {
    if !matches!(spec.state, FileState::Present { secret: true, .. }) {
        return Ok(());
    }
    match spec.mode {
        None => spec.mode = Some(0o600),
        Some(m) if m & 0o004 != 0 => {
            return Err(args
                .doc
                .value_error(mode_path, format!("{} holds a secret, but `mode: {}` lets every user of the host read it", spec.path, fmt_mode(m)))
                .help("use `mode: \"0600\"`, or `\"0640\"` with the `group` that needs it"))
        }
        Some(_) => {}
    }
    Ok(())
}

/// Sh that refuses to go on when a parent directory of `path` is a symbolic link: a write,
/// a mkdir or a link would land wherever the link points.
pub fn no_linked_parent(path: &str) -> Script {
    let parent = match path.rfind('/') {
        Some(0) | None => "/".to_string(),
        Some(i) => path[..i].to_string(),
    };
    sh!(
        "if [ -e {} ] && [ \"$(realpath -e -- {})\" != {} ]; then echo {} >&2; exit 1; fi\n",
        parent,
        parent,
        parent,
        format!("{parent} (a parent of {path}) goes through a symbolic link; provision does not write through links")
    )
}

impl Module for FileModule {
    fn name(&self) -> &'static str {
        "file"
    }
    fn code_args(&self) -> &'static [(&'static str, CodeKind)] {
        FILE_CODE_ARGS
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
                        super::check_role_relative(&s, args, "src", "files", cx)?;
                        let file = cx.role_dir.join("files").join(&s);
                        std::fs::read(&file).map_err(|e| {
                            args.value_error("src", format!("cannot read `{}`: {e}", file.display()))
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
            "link" => {
                let target = target.ok_or_else(|| args.error("`state: link` needs `target`").help("add `target: /path/it/points/to`"))?;
                if target.is_empty() || target.chars().any(|c| c.is_control()) {
                    return Err(args
                        .doc
                        .value_error(&r.path_of("target"), format!("link target `{}` is empty or has a control character (newline, tab, escape)", crate::terminal::printable(&target)))
                        .help("name the target with printable characters only"));
                }
                FileState::Link { target }
            }
            "absent" => FileState::Absent,
            other => {
                return Err(args
                    .doc
                    .value_error(&r.path_of("state"), format!("unknown state `{other}`"))
                    .did_you_mean(other, ["present", "directory", "link", "absent"])
                    .help("use present, directory, link or absent"))
            }
        };
        let mode_path = r.path_of("mode");
        r.finish("`file` arguments")?;
        protect_secret(&mut spec, args, &mode_path)?;
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
