//! A lone `images.yaml` (a bare list of images, as in a thin tree or a
//! snapshot), for reading snapshots back: `promoter diff` compares a saved
//! snapshot with a registry.

use std::path::Path;
use std::sync::Arc;

use super::{decode, push_yaml_errors, read, yaml, Image};
use crate::diag::{self, Diagnostic};

/// Load and validate one images file. Errors carry `file:line:col`.
pub fn load(path: &Path) -> Result<Vec<Image>, Vec<Diagnostic>> {
    let display: Arc<Path> = Arc::from(path);
    let text = read::read_text(path, &display, false).map_err(|d| vec![d])?;
    let parsed = yaml::parse(&text);
    let mut diagnostics = Vec::new();
    push_yaml_errors(&display, parsed.errors, &mut diagnostics);
    let mut ctx = decode::Ctx {
        file: display.clone(),
        thin: true,
        diagnostics: &mut diagnostics,
    };
    let images = decode::thin_images(parsed.root.as_ref(), &mut ctx);
    if diagnostics.iter().any(Diagnostic::is_error) {
        diag::sort(&mut diagnostics);
        return Err(diagnostics);
    }
    Ok(images)
}
