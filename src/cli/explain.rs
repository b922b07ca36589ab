//! `gcl-repro explain MANIFEST [CELL]`: a cell's resolved settings against its released recipe,
//! with its cache keys.
use super::{Context, OverrideArgs, ScaleArgs};
use anyhow::Result;
use gcl_repro::explain::{explain_cell, find_cell};
use gcl_repro::pipeline::RunGraph;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    manifest: PathBuf,
    /// A cell id, `row.column` (or just `row` in a one-column table); all cells when omitted.
    cell: Option<String>,
    #[command(flatten)]
    scale: ScaleArgs,
    #[command(flatten)]
    overrides: OverrideArgs,
}

pub fn exec(args: Args, ctx: &Context) -> Result<()> {
    let manifests = std::slice::from_ref(&args.manifest);
    let graph = RunGraph::build(manifests, args.scale.scale, &args.overrides.get(), &ctx.data_root)?;
    let em = &graph.manifests[0];
    match &args.cell {
        Some(id) => print!("{}", explain_cell(&em.manifest, find_cell(&em.manifest, &em.cells, id)?)),
        None => {
            let texts: Vec<String> = em.cells.iter().map(|c| explain_cell(&em.manifest, c)).collect();
            print!("{}", texts.join("\n"));
        }
    }
    Ok(())
}
