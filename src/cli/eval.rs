//! `gcl-repro eval MANIFEST CELL --weights FILE`: our metrics of any checkpoint in a cell's
//! network, on its test split; nothing is trained.
use super::{Context, ScaleArgs};
use anyhow::{Context as _, Result};
use gcl_repro::manifest::Overrides;
use gcl_repro::pipeline::RunGraph;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    manifest: PathBuf,
    /// The cell whose network and data the weights are evaluated with (`row.column`).
    cell: String,
    /// A PyTorch state_dict as safetensors (convert a .pth with scripts/torch_to_safetensors.py)
    /// or a run's model.safetensors.
    #[arg(long)]
    weights: PathBuf,
    /// Also write the evaluation (per class, confusion) as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    #[command(flatten)]
    scale: ScaleArgs,
}

pub fn exec(args: Args, ctx: &Context) -> Result<()> {
    let device = ctx.device.resolve()?;
    let manifests = std::slice::from_ref(&args.manifest);
    let graph = RunGraph::build(manifests, args.scale.scale, &Overrides::default(), &ctx.data_root)?;
    let em = &graph.manifests[0];
    let cell = gcl_repro::explain::find_cell(&em.manifest, &em.cells, &args.cell)?;
    let run =
        cell.runs.first().with_context(|| format!("cell {} runs nothing (a quoted or excluded cell)", cell.id()))?;
    let data = gcl_repro::data::load_any(&run.spec.dataset, &ctx.data_root)?;
    let eval = gcl_repro::training::evaluate_weights(&run.spec, &data, &args.weights, device)?;
    let digest = gcl_repro::models::import::sha256_file(&args.weights)?;
    print!("{}", gcl_repro::metrics::describe_evaluation(&eval, data.class_counts()));
    println!(
        "weights {} (sha256 {}), cell {} of {}",
        args.weights.display(),
        &digest[..16],
        cell.id(),
        args.manifest.display()
    );
    if let Some(path) = &args.json {
        let value =
            serde_json::json!({ "weights": args.weights, "sha256": digest, "cell": cell.id(), "evaluation": eval });
        gcl_repro::atomic::write(path, serde_json::to_string_pretty(&value)?)?;
    }
    Ok(())
}
