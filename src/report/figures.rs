//! The figures a manifest declares (`[figures.ID]`), drawn from stored runs:
//! - `tsne`: stage-1 features (the classifier's input) of each cell, per split, as 2-d t-SNE
//!   maps in a methods x splits grid (paper Fig. 1 / Fig. 3). A stage-2 cell shows its stage-1
//!   parent, whose backbone it shares. The maps are cached under `<cache>/derived/` because
//!   t-SNE is the only slow step of a report;
//! - `curves`: loss, accuracy and learning rate per epoch (stage 2 continues stage 1 when the
//!   figure's `stage` is 2);
//! - `per_class`: final-epoch test accuracy per class against its training images.
//!
//! A figure whose runs are not all stored yet is not drawn; [`make_figure`] says what it waits for.
use super::gather::{stored, GatheredManifest};
use super::FigureRef;
use crate::cache::files::EMBEDDINGS;
use crate::cache::{key, Cache};
use crate::data::spec::DatasetName;
use crate::manifest::{Figure, FigureKind, PlannedRun, RunKeys};
use crate::metrics::RunResult;
use crate::report::plot::{self, CurveRun, PerClassSeries, PlotFiles, TsneFigure, TsnePanel};
use crate::report::tsne::{tsne, TsneInit, TsneOptions};
use anyhow::{bail, Context, Result};
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::{Path, PathBuf};

/// What became of one declared figure.
pub enum FigureOutcome {
    Made {
        reference: FigureRef,
        files: PlotFiles,
    },
    /// Not drawn: the line to show in REPORT.md instead.
    Waiting(String),
}

/// Seed of the t-SNE subsample. Fixed, so every method's panel of a split shows the same images.
const SUBSAMPLE_SEED: u64 = 0;
/// Bump when the way a map is computed changes, so old cached maps are not reused.
const TSNE_CACHE_VERSION: u32 = 1;

/// Draw `fig` of manifest `g` into `figures_dir/<manifest>-<id>.{png,svg}`.
pub fn make_figure(g: &GatheredManifest, fig: &Figure, cache: &Cache, figures_dir: &Path) -> Result<FigureOutcome> {
    let stem_name = format!("{}-{}", g.manifest.name, fig.id);
    let stem = figures_dir.join(&stem_name);
    let figures_rel = figures_dir.file_name().map(|f| f.to_string_lossy().to_string()).unwrap_or_default();
    let (runs, missing) = figure_runs(g, fig, cache)?;
    if !missing.is_empty() {
        return Ok(FigureOutcome::Waiting(format!(
            "figure `{}` ({}): waiting for runs of {}: `{}`",
            fig.id,
            fig.title,
            missing.join(", "),
            g.run_command()
        )));
    }
    let with_column = {
        let mut columns: Vec<&str> = runs.iter().map(|(id, _)| id.split_once('.').map_or(*id, |(_, c)| c)).collect();
        columns.dedup();
        columns.len() > 1
    };
    let labelled: Vec<(String, &PlannedRun)> = runs.iter().map(|(id, r)| (g.label(id, with_column), *r)).collect();
    let seed_note = format!("seed {}", runs[0].1.seed);
    let panel = Panel { fig, labelled: &labelled, cache, stem: &stem, seed_note: &seed_note };
    let (files, caption) = match fig.kind {
        FigureKind::Tsne => match tsne_panel(&panel)? {
            Some(drawn) => drawn,
            None => {
                return Ok(FigureOutcome::Waiting(format!(
                    "figure `{}` ({}): a stage-1 run has no {EMBEDDINGS} (made by an older engine?); re-run it with `gcl-repro run --force`",
                    fig.id, fig.title
                )))
            }
        },
        FigureKind::Curves => curves_panel(&panel)?,
        FigureKind::PerClass => per_class_panel(&panel)?,
    };
    let rel = |ext: &str| format!("{figures_rel}/{stem_name}.{ext}");
    let reference =
        FigureRef { title: fig.title.clone(), path: rel("png"), caption: format!("{caption} [SVG]({})", rel("svg")) };
    Ok(FigureOutcome::Made { reference, files })
}

/// The run each cell of `fig` shows (its first seed's), and the cells whose runs are not all
/// in the cache yet (a run without its data here has no key: it waits like one not trained).
type CellRun<'g> = (&'g str, &'g PlannedRun);
fn figure_runs<'g>(
    g: &'g GatheredManifest,
    fig: &'g Figure,
    cache: &Cache,
) -> Result<(Vec<CellRun<'g>>, Vec<&'g str>)> {
    let mut runs = Vec::new();
    let mut missing = Vec::new();
    for id in &fig.cells {
        let Some(run) = g.figure_run(id) else {
            bail!("{}: figure `{}` names cell `{id}`, which has no runs", g.path.display(), fig.id)
        };
        let needed: Vec<&String> = match &run.keys {
            Some(keys) if fig.kind != FigureKind::Tsne && fig.stage == 2 => {
                std::iter::once(&keys.stage1).chain(&keys.stage2).collect()
            }
            Some(keys) => vec![&keys.stage1],
            None => vec![],
        };
        if run.keys.is_none() || needed.iter().any(|k| cache.result(k).ok().flatten().is_none()) {
            missing.push(id.as_str());
        }
        runs.push((id.as_str(), run));
    }
    Ok((runs, missing))
}

/// What a figure's drawing needs: the figure, its labelled runs, the cache, the file stem and
/// the seed it shows.
struct Panel<'a> {
    fig: &'a Figure,
    labelled: &'a [(String, &'a PlannedRun)],
    cache: &'a Cache,
    stem: &'a Path,
    seed_note: &'a str,
}

/// A t-SNE figure and its caption; `None` when a run has no stored embeddings.
fn tsne_panel(p: &Panel) -> Result<Option<(PlotFiles, String)>> {
    let Panel { fig, labelled, cache, stem, seed_note } = *p;
    let Some(figure) = tsne_figure(fig, labelled, cache)? else { return Ok(None) };
    let opts = tsne_options();
    let caption = format!(
        "Stage-1 features (the classifier's input), {seed_note}; at most {} points per split (a fixed-seed subsample{}); \
         t-SNE with perplexity {}, early exaggeration {}, {} iterations, PCA initialisation. Legend: classes from head to tail.",
        fig.max_points,
        fig.classes.as_ref().map(|c| format!(", classes {c:?}")).unwrap_or_default(),
        opts.perplexity,
        opts.early_exaggeration,
        opts.iterations,
    );
    Ok(Some((plot::plot_tsne(&figure, stem)?, caption)))
}

fn curves_panel(p: &Panel) -> Result<(PlotFiles, String)> {
    let Panel { fig, labelled, cache, stem, seed_note } = *p;
    let mut curves = Vec::new();
    for (label, run) in labelled {
        let keys = run_keys(run);
        let s1 = must(cache, &keys.stage1)?;
        curves.push(match (&keys.stage2, fig.stage) {
            (Some(k2), 2) => CurveRun::from_results(label, Some(&s1), &must(cache, k2)?),
            _ => CurveRun::from_results(label, None, &s1),
        });
    }
    let caption = format!("Stage {} training of each method, {seed_note}: training loss, test (solid) and train (dashed) top-1, learning rate.", fig.stage);
    Ok((plot::plot_training_curves(&fig.title, &curves, stem)?, caption))
}

fn per_class_panel(p: &Panel) -> Result<(PlotFiles, String)> {
    let Panel { fig, labelled, cache, stem, seed_note } = *p;
    let mut series = Vec::new();
    for (label, run) in labelled {
        let keys = run_keys(run);
        let key = if fig.stage == 2 { keys.result() } else { keys.stage1.as_str() };
        series.push(PerClassSeries::from_result(label, &must(cache, key)?));
    }
    let caption = format!(
        "Final-epoch test accuracy of each class after stage {}, {seed_note}, against its training images; lines: mean per class size.",
        fig.stage
    );
    Ok((plot::plot_per_class_accuracy(&fig.title, &series, stem)?, caption))
}

fn must(cache: &Cache, key: &str) -> Result<RunResult> {
    stored(cache, key)?.with_context(|| format!("run {key} disappeared from the cache while the report was made"))
}

/// The paper's t-SNE setting (scikit-learn's defaults with PCA initialisation).
pub fn tsne_options() -> TsneOptions {
    TsneOptions {
        perplexity: 50.0,
        early_exaggeration: 15.0,
        iterations: 1000,
        init: TsneInit::Pca,
        progress: true,
        ..TsneOptions::default()
    }
}

pub fn class_names(dataset: DatasetName, classes: usize) -> Vec<String> {
    if dataset == DatasetName::Cifar10 && classes == crate::data::catalog::CIFAR10_CLASSES.len() {
        crate::data::catalog::CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect()
    } else {
        (0..classes).map(|i| format!("class {i}")).collect()
    }
}

/// The grid of maps, or `None` when a run has no stored embeddings.
fn tsne_figure(fig: &Figure, runs: &[(String, &PlannedRun)], cache: &Cache) -> Result<Option<TsneFigure>> {
    let first = must(cache, &run_keys(runs[0].1).stage1)?;
    let n_classes = first.train_class_counts.len();
    let all_names = class_names(runs[0].1.spec.dataset.name, n_classes);
    let shown: Vec<usize> = fig.classes.clone().unwrap_or_else(|| (0..n_classes).collect());
    if let Some(&bad) = shown.iter().find(|&&c| c >= n_classes) {
        bail!(
            "figure `{}`: `classes` lists class {bad}, but the data set has {n_classes} classes (0..{})",
            fig.id,
            n_classes - 1
        );
    }
    let mut panels = Vec::new();
    for (_, run) in runs {
        let stage1 = &run_keys(run).stage1;
        let embeddings = cache.run_dir(stage1).join(EMBEDDINGS);
        let mut row = Vec::new();
        for split in &fig.splits {
            let Some(map) = cached_map(cache, stage1, &embeddings, split, fig.classes.as_deref(), fig.max_points)?
            else {
                return Ok(None);
            };
            // Labels as positions in `shown`, the classes of the legend.
            let labels = map
                .labels
                .iter()
                .map(|l| shown.iter().position(|c| c == l).expect("map filtered to the shown classes"))
                .collect();
            row.push(TsnePanel { points: map.points, labels });
        }
        panels.push(row);
    }
    Ok(Some(TsneFigure {
        title: fig.title.clone(),
        class_names: shown.iter().map(|&c| all_names[c].clone()).collect(),
        class_sizes: shown.iter().map(|&c| first.train_class_counts[c]).collect(),
        methods: runs.iter().map(|(l, _)| l.clone()).collect(),
        splits: fig.splits.clone(),
        panels,
    }))
}

/// A stored 2-d map of one split of one run.
#[derive(Serialize, Deserialize)]
pub struct TsneMap {
    /// What the map was computed from (its SHA-256 names the file).
    pub material: serde_json::Value,
    /// Indices of the embedded points in the split, ascending.
    pub indices: Vec<usize>,
    /// Class of each point (dataset class indices).
    pub labels: Vec<usize>,
    pub points: Vec<[f32; 2]>,
}

/// What determines a map; its hash names the cached file.
pub fn tsne_material(
    run_key: &str,
    split: &str,
    classes: Option<&[usize]>,
    max_points: usize,
    opts: &TsneOptions,
) -> serde_json::Value {
    json!({
        "version": TSNE_CACHE_VERSION,
        "run": run_key,
        "split": split,
        "classes": classes,
        "max_points": max_points,
        "subsample_seed": SUBSAMPLE_SEED,
        "tsne": {
            "perplexity": opts.perplexity,
            "early_exaggeration": opts.early_exaggeration,
            "exaggeration_iters": opts.exaggeration_iters,
            "iterations": opts.iterations,
            "theta": opts.theta,
            "learning_rate": opts.learning_rate,
            "init": format!("{:?}", opts.init),
            "seed": opts.seed,
        },
    })
}

/// `<cache>/derived/tsne-<sha256 of the material>.json`.
pub fn tsne_cache_path(cache: &Cache, material: &serde_json::Value) -> PathBuf {
    cache.root.join("derived").join(format!("tsne-{}.json", key::hash(material)))
}

/// The map of `split`, from `<cache>/derived/` when present, else computed and stored
/// atomically. `None` when the run has no embeddings file.
fn cached_map(
    cache: &Cache,
    run_key: &str,
    embeddings: &Path,
    split: &str,
    classes: Option<&[usize]>,
    max_points: usize,
) -> Result<Option<TsneMap>> {
    let opts = tsne_options();
    let material = tsne_material(run_key, split, classes, max_points, &opts);
    let path = tsne_cache_path(cache, &material);
    if let Ok(text) = std::fs::read_to_string(&path) {
        match serde_json::from_str::<TsneMap>(&text) {
            Ok(map) if map.material == material => return Ok(Some(map)),
            // A damaged or foreign file is recomputed and replaced.
            _ => tracing::warn!("ignoring unreadable t-SNE cache file {}", path.display()),
        }
    }
    if !embeddings.is_file() {
        return Ok(None);
    }
    let (features, labels, dim) = read_split(embeddings, split)?;
    let indices = subsample(&labels, classes, max_points);
    let data: Vec<f32> = indices.iter().flat_map(|&i| features[i * dim..(i + 1) * dim].iter().copied()).collect();
    tracing::info!("t-SNE of {} {split} points of run {} ({dim}-d)", indices.len(), &run_key[..12.min(run_key.len())]);
    let points = tsne(&data, indices.len(), dim, &opts);
    let map = TsneMap { material, labels: indices.iter().map(|&i| labels[i]).collect(), indices, points };
    crate::atomic::write(&path, serde_json::to_string(&map)?.as_bytes())?;
    Ok(Some(map))
}

/// Features `[N, D]` and labels of one split from a run's embeddings file.
fn read_split(path: &Path, split: &str) -> Result<(Vec<f32>, Vec<usize>, usize)> {
    let tensors =
        tch::Tensor::read_safetensors(path).with_context(|| format!("reading embeddings {}", path.display()))?;
    let get = |name: &str| {
        tensors
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t)
            .with_context(|| format!("{} has no tensor `{name}` (split `{split}`)", path.display()))
    };
    let (features, labels) = (get(&format!("{split}_features"))?, get(&format!("{split}_labels"))?);
    let size = features.size();
    if size.len() != 2 || labels.size() != [size[0]] {
        bail!(
            "{}: `{split}_features` has shape {size:?} and `{split}_labels` {:?}; expected [N, D] and [N]",
            path.display(),
            labels.size()
        );
    }
    let flat = features.to_kind(tch::Kind::Float).contiguous().view([-1]);
    let features = Vec::<f32>::try_from(&flat).context("embedding features as f32")?;
    let labels = Vec::<i64>::try_from(&labels.to_kind(tch::Kind::Int64)).context("embedding labels as i64")?;
    Ok((features, labels.into_iter().map(|l| l as usize).collect(), size[1] as usize))
}

/// Indices of at most `max_points` points (ascending) of the wanted classes: all of them when
/// they fit, else a uniform sample with a fixed seed, so class proportions are kept on average
/// and every run of the same data set gets the same images.
pub fn subsample(labels: &[usize], classes: Option<&[usize]>, max_points: usize) -> Vec<usize> {
    let candidates: Vec<usize> =
        (0..labels.len()).filter(|&i| classes.is_none_or(|c| c.contains(&labels[i]))).collect();
    if candidates.len() <= max_points {
        return candidates;
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(SUBSAMPLE_SEED);
    let mut picked: Vec<usize> =
        rand::seq::index::sample(&mut rng, candidates.len(), max_points).into_iter().map(|j| candidates[j]).collect();
    picked.sort_unstable();
    picked
}

/// The keys of a run a figure draws (its runs were checked to have keys and results).
fn run_keys(run: &PlannedRun) -> &RunKeys {
    run.keys.as_ref().expect("a figure is drawn only once all its runs have results")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subsample_is_deterministic_filtered_and_bounded() {
        let labels: Vec<usize> = (0..1000).map(|i| i % 4).collect();
        let a = subsample(&labels, None, 100);
        assert_eq!(a.len(), 100);
        assert_eq!(a, subsample(&labels, None, 100));
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        let b = subsample(&labels, Some(&[1, 3]), 10_000);
        assert_eq!(b.len(), 500);
        assert!(b.iter().all(|&i| labels[i] == 1 || labels[i] == 3));
    }

    #[test]
    fn the_material_changes_with_every_setting() {
        let o = tsne_options();
        let base = key::hash(&tsne_material("k", "train", None, 2000, &o));
        assert_ne!(base, key::hash(&tsne_material("k", "test", None, 2000, &o)));
        assert_ne!(base, key::hash(&tsne_material("k", "train", Some(&[1]), 2000, &o)));
        assert_ne!(base, key::hash(&tsne_material("k", "train", None, 1000, &o)));
        assert_ne!(base, key::hash(&tsne_material("k2", "train", None, 2000, &o)));
        let other = TsneOptions { perplexity: 30.0, ..o.clone() };
        assert_ne!(base, key::hash(&tsne_material("k", "train", None, 2000, &other)));
    }
}
