//! `template`: a file rendered on the controller from the role's `templates/`, then managed
//! like any `file` (atomic write, validate, verify). A file whose rendered content holds a
//! secret is diffed as `(secret)`.

use super::file::{read_common, FileResource, FileSpec, FileState};
use super::{check_path, Args, LowerCx, Module, Resource};
use crate::error::Diagnostic;

pub struct TemplateModule;

impl Module for TemplateModule {
    fn name(&self) -> &'static str {
        "template"
    }

    fn lower(&self, args: &Args, cx: &LowerCx) -> Result<Vec<Box<dyn Resource>>, Diagnostic> {
        let mut r = args.reader("template")?;
        let src = r.string("src", "`template`")?;
        super::check_role_relative(&src, args, "src", "templates", cx)?;
        let dest = r.string("dest", "`template`")?;
        check_path(&dest, args, "dest")?;
        let mut spec = FileSpec::new(&dest, FileState::Absent);
        read_common(&mut spec, &mut r, args)?;
        let mode_path = r.path_of("mode");
        r.finish("`template` arguments")?;
        spec.state = render(&src, cx)?;
        super::file::protect_secret(&mut spec, args, &mode_path)?;
        Ok(vec![Box::new(FileResource(spec))])
    }
}

/// Renders `templates/SRC` for the host, marking it secret if a secret ended up in it.
pub fn render(src: &str, cx: &LowerCx) -> Result<FileState, Diagnostic> {
    let text = cx.templates.render_file(src, cx.vars)?;
    // A secret may reach the text transformed (`| replace`, `| b64encode`): a template that
    // refers to a secret variable is secret, whatever its text looks like.
    let secret = cx.secrets.touches(&text)
        || cx.templates.file_references(src).iter().any(|name| {
            cx.vars.get_attr(name).ok().is_some_and(|v| cx.secrets.touches(&serde_json::to_string(&v).unwrap_or_default()))
        });
    Ok(FileState::Present { content: text.into_bytes(), secret })
}
