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
        let dest = r.string("dest", "`template`")?;
        check_path(&dest, args, "dest")?;
        let mut spec = FileSpec::new(&dest, FileState::Absent);
        read_common(&mut spec, &mut r, args)?;
        r.finish("`template` arguments")?;
        spec.state = render(&src, cx)?;
        Ok(vec![Box::new(FileResource(spec))])
    }
}

/// Renders `templates/SRC` for the host, marking it secret if a secret ended up in it.
pub fn render(src: &str, cx: &LowerCx) -> Result<FileState, Diagnostic> {
    let text = cx.templates.render_file(src, cx.vars)?;
    let secret = cx.secrets.touches(&text);
    Ok(FileState::Present { content: text.into_bytes(), secret })
}
