//! `gcl-repro cache ls | show | verify | export | import | gc`: look after the run cache.
use super::{experiment_manifests, Context, OverrideArgs, ScaleArgs};
use anyhow::{bail, Result};
use gcl_repro::cache::store::short_key;
use gcl_repro::cache::{commands, Cache};
use gcl_repro::manifest::Overrides;
use gcl_repro::pipeline::RunGraph;
use gcl_repro::training::spec::Scale;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

#[derive(clap::Subcommand)]
pub enum Command {
    /// List cached runs with their settings and headline metrics.
    Ls,
    /// Show one run: metrics, provenance, resolved settings.
    Show { key: String },
    /// Check every stored file against its recorded SHA-256.
    Verify,
    /// Write finished runs into one compressed archive (for another machine's cache):
    /// the runs of manifests (at --scale) and/or runs named by key (prefix). With --partial,
    /// runs in progress too (at their last complete epoch), to resume elsewhere.
    Export {
        /// Manifests (`*.toml`) and/or run keys or unique key prefixes.
        #[arg(required = true)]
        items: Vec<String>,
        #[arg(long)]
        out: PathBuf,
        /// Leave out weights and embeddings (cached t-SNE maps are kept, so reports rebuild).
        #[arg(long)]
        without_weights: bool,
        /// Leave out embeddings and cached t-SNE maps, keep the weights (what a later stage and a
        /// table need; t-SNE figures of these runs then need the runs re-trained).
        #[arg(long, conflicts_with = "without_weights")]
        without_embeddings: bool,
        /// Also export the manifests' runs in progress (`partial/`: checkpoint, momentum, records,
        /// settings); `cache import` places them, and `run` resumes them from there.
        #[arg(long)]
        partial: bool,
        #[command(flatten)]
        scale: ScaleArgs,
        #[command(flatten)]
        overrides: OverrideArgs,
    },
    /// Add the runs of an archive written by `cache export`, verified file by file; refuses
    /// (importing nothing) if a run differs from one cached under the same key.
    Import { archive: PathBuf },
    /// Remove runs that no manifest refers to (at full or smoke scale).
    Gc {
        /// Manifests whose runs are kept (default: experiments/*.toml).
        manifests: Vec<PathBuf>,
        /// Only say what would be removed.
        #[arg(long)]
        dry_run: bool,
        /// Also keep the runs of the first N seeds of every cell (runs trained with `--seeds N`
        /// beyond a manifest's own seeds are otherwise removed).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
        seeds: Option<u16>,
    },
}

/// The finished and (with `partial`) partial runs that `cache export ITEMS` names: every run of
/// each manifest, or one key (prefix).
fn export_keys(
    cache: &Cache,
    items: &[String],
    partial: bool,
    scale: Scale,
    overrides: &OverrideArgs,
    data_root: &Path,
) -> Result<(Vec<String>, Vec<String>)> {
    let (mut keys, mut partial_keys) = (Vec::new(), Vec::new());
    for item in items {
        if item.ends_with(".toml") || Path::new(item).is_file() {
            let graph = RunGraph::build(&[PathBuf::from(item)], scale, &overrides.get(), data_root)?;
            let mut missing = graph.unavailable.len();
            for node in &graph.nodes {
                match cache.state(&node.key) {
                    gcl_repro::cache::RunState::Cached => keys.push(node.key.clone()),
                    gcl_repro::cache::RunState::Partial if partial => partial_keys.push(node.key.clone()),
                    _ => missing += 1,
                }
            }
            if missing > 0 {
                let what = if partial { "neither finished nor partial" } else { "not finished" };
                eprintln!("note: {missing} run(s) of {item} are {what} in this cache and are not exported");
            }
        } else if partial && cache.partial_keys()?.iter().any(|k| k.starts_with(item.as_str())) {
            let hits: Vec<String> =
                cache.partial_keys()?.into_iter().filter(|k| k.starts_with(item.as_str())).collect();
            match hits.as_slice() {
                [one] => partial_keys.push(one.clone()),
                _ => bail!("{} partial runs have keys starting with `{item}`; give more characters", hits.len()),
            }
        } else {
            keys.push(cache.resolve_prefix(item)?);
        }
    }
    for v in [&mut keys, &mut partial_keys] {
        v.sort();
        v.dedup();
    }
    if keys.is_empty() && partial_keys.is_empty() {
        bail!(
            "nothing to export: no {}run matches {}",
            if partial { "finished or partial " } else { "finished " },
            items.join(" ")
        );
    }
    Ok((keys, partial_keys))
}

pub fn exec(cmd: Command, ctx: &Context) -> Result<()> {
    let cache = Cache::open(&ctx.cache_dir)?;
    match cmd {
        Command::Ls => print!("{}", commands::ls(&cache)?),
        Command::Show { key } => print!("{}", commands::show(&cache, &key)?),
        Command::Verify => {
            let (text, ok) = commands::verify(&cache)?;
            print!("{text}");
            if !ok {
                bail!("the cache has corrupted runs (listed above)");
            }
        }
        Command::Export { items, out, without_weights, without_embeddings, partial, scale, overrides } => {
            let (keys, partial_keys) = export_keys(&cache, &items, partial, scale.scale, &overrides, &ctx.data_root)?;
            let leave = gcl_repro::cache::transfer::Leave { weights: without_weights, embeddings: without_embeddings };
            println!("{}", gcl_repro::cache::transfer::export(&cache, &keys, &partial_keys, &out, leave)?);
        }
        Command::Import { archive } => {
            let r = gcl_repro::cache::transfer::import(&cache, &archive)?;
            print!("imported {} run(s), {} already present with identical files", r.added.len(), r.present.len());
            if !r.partial_added.is_empty() || !r.partial_present.is_empty() {
                let at: Vec<String> =
                    r.partial_added.iter().map(|(k, e)| format!("{} at epoch {e}", short_key(k))).collect();
                let at = if at.is_empty() { String::new() } else { format!(" ({})", at.join(", ")) };
                print!(
                    "; partial runs: {} placed{at}, {} already here",
                    r.partial_added.len(),
                    r.partial_present.len()
                );
            }
            println!();
        }
        Command::Gc { manifests, dry_run, seeds } => {
            let manifests = if manifests.is_empty() { experiment_manifests()? } else { manifests };
            let mut keep = HashSet::new();
            let counts = std::iter::once(None).chain(seeds.map(|n| Some(usize::from(n))));
            for (scale, count) in counts.flat_map(|c| [(Scale::Full, c), (Scale::Smoke, c)]) {
                let graph = RunGraph::build(
                    &manifests,
                    scale,
                    &count.map(Overrides::seeds).unwrap_or_default(),
                    &ctx.data_root,
                )?;
                // Without a cell's data its key is unknown, so its cached runs cannot be told
                // apart from garbage: refuse rather than delete them.
                if let Some(u) = graph.unavailable.first() {
                    bail!("cannot tell which runs {} refers to ({}); pass the --data-root that holds its data, or name only the manifests to keep", u.label, u.reason);
                }
                keep.extend(graph.keys());
            }
            print!("{}", commands::gc(&cache, &keep, dry_run)?);
        }
    }
    Ok(())
}
