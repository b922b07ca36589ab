//! `gcl-repro validate MANIFESTS`: unknown keys, bad values and dangling references, each with
//! its file:line:col.
use anyhow::Result;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[arg(required = true)]
    manifests: Vec<PathBuf>,
}

pub fn exec(args: Args) -> Result<()> {
    let (text, ok) = gcl_repro::manifest::validate_files(&args.manifests);
    print!("{text}");
    if !ok {
        anyhow::bail!("invalid manifest(s), see above");
    }
    Ok(())
}
