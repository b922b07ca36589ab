//! The dynamics beside `bench fidelity`'s final top-1: the training loss of every epoch of both
//! engines, and the stem's scale at the end of stage 1, read back from the runs' own files
//! (ours: each run's `log.jsonl` and `model.safetensors`; PyTorch: the script's result JSON and
//! stage-1 weights). A difference in how the engines train shows here even where top-1 does not.
use crate::cache::files::{FINAL_MODEL, LOG};
use crate::stats::{mean_pm_std, paired_t};
use anyhow::{Context as _, Result};
use serde_json::json;
use std::fmt::Write as _;
use std::path::Path;

/// Where each row's losses come from: a label, our run directory (under `ours/seedN`) or the
/// script's result (`torch/seedN/<file>`, its `stage`).
enum Source {
    Ours(&'static str),
    Torch(&'static str, &'static str),
}

/// The table's rows, in order. "PyTorch's init" and "PyTorch's stage 1" are the paired runs.
const ROWS: [(&str, Source); 8] = [
    ("GCL stage 1, ours (own init)", Source::Ours("gcl_stage1")),
    ("GCL stage 1, ours (PyTorch's init)", Source::Ours("paired_stage1")),
    ("GCL stage 1, PyTorch", Source::Torch("gcl_result.json", "stage1")),
    ("GCL + CBEN cRT, ours (own stage 1)", Source::Ours("gcl_crt")),
    ("GCL + CBEN cRT, ours (PyTorch's stage 1)", Source::Ours("paired_crt")),
    ("GCL + CBEN cRT, PyTorch", Source::Torch("gcl_result.json", "stage2")),
    ("CE, ours", Source::Ours("ce")),
    ("CE, PyTorch", Source::Torch("ce_result.json", "stage1")),
];

/// The paired comparisons of per-epoch losses: (label, row of ours, row of PyTorch).
const PAIRS: [(&str, usize, usize); 2] =
    [("GCL stage 1 from the same initial weights", 1, 2), ("GCL + CBEN cRT from the same stage-1 weights", 4, 5)];

/// The training loss of every epoch of one run.
fn losses(out: &Path, seed: u64, source: &Source) -> Result<Vec<f64>> {
    match source {
        Source::Ours(run) => {
            let path = out.join(format!("ours/seed{seed}/{run}")).join(LOG);
            let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
            text.lines()
                .map(|l| {
                    let v: serde_json::Value = serde_json::from_str(l)?;
                    v["train_loss"].as_f64().with_context(|| format!("{}: a record without train_loss", path.display()))
                })
                .collect()
        }
        Source::Torch(file, stage) => {
            let path = out.join(format!("torch/seed{seed}/{file}"));
            let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
            let v: serde_json::Value = serde_json::from_str(&text)?;
            let epochs = v[stage]["per_epoch"]
                .as_array()
                .with_context(|| format!("{}: no {stage}.per_epoch", path.display()))?;
            epochs
                .iter()
                .map(|e| {
                    e["train_loss"].as_f64().with_context(|| format!("{}: an epoch without train_loss", path.display()))
                })
                .collect()
        }
    }
}

/// The stem's scale in a weights file: the L2 norm of the stem convolution's weight and the mean
/// running variance of its BatchNorm (`prefix` is `backbone.` for ours, empty for PyTorch's).
pub(crate) fn stem(path: &Path, prefix: &str) -> Result<(f64, f64)> {
    let tensors = tch::Tensor::read_safetensors(path).with_context(|| format!("cannot read {}", path.display()))?;
    stem_of(&tensors, prefix).with_context(|| format!("in {}", path.display()))
}

/// The stem's scale among named tensors (a weights file's, or a network's `named_variables`).
pub(crate) fn stem_of(named: &[(String, tch::Tensor)], prefix: &str) -> Result<(f64, f64)> {
    let find = |name: &str| {
        named
            .iter()
            .find(|(n, _)| n == &format!("{prefix}{name}"))
            .map(|(_, t)| t.to_kind(tch::Kind::Double))
            .with_context(|| format!("no {prefix}{name}"))
    };
    Ok((find("conv1.weight")?.norm().double_value(&[]), find("bn1.running_var")?.mean(None).double_value(&[])))
}

/// The Markdown section and its JSON: per-epoch losses (mean ± std over the seeds, then the
/// paired differences) and the stem at the end of stage 1 (PyTorch's stage-1 weights are the file
/// `torch_stage1` in each seed's directory).
pub fn section(out: &Path, seeds: &[u64], torch_stage1: &str) -> Result<(String, serde_json::Value)> {
    // rows x seeds x epochs
    let all: Vec<Vec<Vec<f64>>> = ROWS
        .iter()
        .map(|(_, source)| seeds.iter().map(|&s| losses(out, s, source)).collect::<Result<Vec<_>>>())
        .collect::<Result<_>>()?;
    let mut md = String::from("\n## Training loss of every epoch\n\nMean ± std over the seeds of each epoch's training loss (mixup's weighted loss where the recipe mixes).\n\n");
    let epochs = all.iter().map(|r| r.iter().map(Vec::len).max().unwrap_or(0)).max().unwrap_or(0);
    let _ = writeln!(
        md,
        "| run |{}\n|---|{}",
        (1..=epochs).map(|e| format!(" epoch {e} |")).collect::<String>(),
        "---|".repeat(epochs)
    );
    let column = |row: usize, e: usize| -> Vec<f64> { all[row].iter().filter_map(|l| l.get(e).copied()).collect() };
    for (i, (label, _)) in ROWS.iter().enumerate() {
        let cells: String = (0..all[i][0].len()).map(|e| format!(" {} |", mean_pm_std(&column(i, e), 3))).collect();
        let _ = writeln!(md, "| {label} |{cells}");
    }
    let _ = writeln!(md, "\nPaired: ours − PyTorch per epoch (mean ± std of the per-seed differences, paired t p).\n");
    let _ = writeln!(
        md,
        "| pair |{}\n|---|{}",
        (1..=epochs).map(|e| format!(" epoch {e} |")).collect::<String>(),
        "---|".repeat(epochs)
    );
    for (label, a, b) in PAIRS {
        let cells: String = (0..all[a][0].len())
            .map(|e| {
                let (d, sd, p) = paired_t(&column(a, e), &column(b, e));
                format!(" {d:+.3} ± {sd:.3} (p {}) |", if p.is_nan() { "n/a".into() } else { format!("{p:.2}") })
            })
            .collect();
        let _ = writeln!(md, "| {label} |{cells}");
    }
    let stems = stem_rows(out, seeds, torch_stage1)?;
    md.push_str(&stem_table(&stems, seeds));
    let json = json!({
        "losses": ROWS.iter().zip(&all).map(|((label, _), l)| json!({ "run": label, "per_seed": l })).collect::<Vec<_>>(),
        "stem": stems.iter().map(|s| json!({
            "ours_own_init": s[0], "ours_torch_init": s[1], "torch": s[2],
        })).collect::<Vec<_>>(),
    });
    Ok((md, json))
}

/// Per seed, the stem (conv norm, BN running var mean) of our stage 1 from our init, ours from
/// PyTorch's init, and PyTorch's.
fn stem_rows(out: &Path, seeds: &[u64], torch_stage1: &str) -> Result<Vec<[(f64, f64); 3]>> {
    seeds
        .iter()
        .map(|s| {
            Ok([
                stem(&out.join(format!("ours/seed{s}/gcl_stage1")).join(FINAL_MODEL), "backbone.")?,
                stem(&out.join(format!("ours/seed{s}/paired_stage1")).join(FINAL_MODEL), "backbone.")?,
                stem(&out.join(format!("torch/seed{s}/{torch_stage1}")), "")?,
            ])
        })
        .collect()
}

fn stem_table(stems: &[[(f64, f64); 3]], seeds: &[u64]) -> String {
    let mut md = String::from(
        "\n## The stem after stage 1\n\nThe stem convolution's weight norm and its BatchNorm's mean running variance at the end of \
         GCL's stage 1. The paired columns start from the same (PyTorch's) initial weights; the stem's scale is free under \
         the BatchNorm that follows it, so only weight decay and the gradients set it.\n\n\
         | seed | conv norm: ours (own init) | ours (PyTorch's init) | PyTorch | paired ratio | BN running var: ours (own init) | ours (PyTorch's init) | PyTorch | paired ratio |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for (s, [own, paired, torch]) in seeds.iter().zip(stems) {
        let _ = writeln!(
            md,
            "| {s} | {:.3} | {:.3} | {:.3} | {:.3} | {:.4} | {:.4} | {:.4} | {:.3} |",
            own.0,
            paired.0,
            torch.0,
            paired.0 / torch.0,
            own.1,
            paired.1,
            torch.1,
            paired.1 / torch.1
        );
    }
    let ratios = |f: fn(&(f64, f64)) -> f64| -> Vec<f64> { stems.iter().map(|r| f(&r[1]) / f(&r[2])).collect() };
    let _ = writeln!(
        md,
        "\nPaired ratio ours / PyTorch over the seeds: conv norm {}, BN running var {}.",
        mean_pm_std(&ratios(|x| x.0), 3),
        mean_pm_std(&ratios(|x| x.1), 3)
    );
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Tensor;

    const STAGE1: &str = "gcl_stage1.safetensors";

    /// A fidelity output directory with known losses and stems for two seeds.
    fn fixture(dir: &Path, seeds: &[u64]) {
        for (i, &seed) in seeds.iter().enumerate() {
            let shift = i as f64;
            for (r, run) in ["gcl_stage1", "paired_stage1", "gcl_crt", "paired_crt", "ce"].iter().enumerate() {
                let d = dir.join(format!("ours/seed{seed}/{run}"));
                std::fs::create_dir_all(&d).unwrap();
                let log: String = (1..=2)
                    .map(|e| format!("{{\"epoch\":{e},\"train_loss\":{}}}\n", r as f64 + e as f64 + shift))
                    .collect();
                std::fs::write(d.join("log.jsonl"), log).unwrap();
                let conv = Tensor::full([16, 3, 3, 3], 0.1 * (1.0 + shift), (tch::Kind::Float, tch::Device::Cpu));
                let var = Tensor::full([16], 2.0 + shift, (tch::Kind::Float, tch::Device::Cpu));
                Tensor::write_safetensors(
                    &[("backbone.conv1.weight", conv), ("backbone.bn1.running_var", var)],
                    d.join("model.safetensors"),
                )
                .unwrap();
            }
            let t = dir.join(format!("torch/seed{seed}"));
            std::fs::create_dir_all(&t).unwrap();
            let per_epoch =
                |base: f64| json!([{ "train_loss": base + 0.5 + shift }, { "train_loss": base + 1.5 + shift }]);
            let gcl = json!({ "stage1": { "per_epoch": per_epoch(1.0) }, "stage2": { "per_epoch": per_epoch(4.0) } });
            std::fs::write(t.join("gcl_result.json"), gcl.to_string()).unwrap();
            std::fs::write(t.join("ce_result.json"), json!({ "stage1": { "per_epoch": per_epoch(6.0) } }).to_string())
                .unwrap();
            let conv = Tensor::full([16, 3, 3, 3], 0.1, (tch::Kind::Float, tch::Device::Cpu));
            let var = Tensor::full([16], 1.0, (tch::Kind::Float, tch::Device::Cpu));
            Tensor::write_safetensors(&[("conv1.weight", conv), ("bn1.running_var", var)], t.join(STAGE1)).unwrap();
        }
    }

    #[test]
    fn losses_and_stems_are_read_from_both_engines_files() {
        let dir = tempfile::tempdir().unwrap();
        fixture(dir.path(), &[123, 124]);
        let (md, json) = section(dir.path(), &[123, 124], STAGE1).unwrap();
        // Ours from PyTorch's init (row index 1): epoch 1 is 1 + 1 + seed shift (0, 1): 2.5 ± 0.707.
        assert!(md.contains("| GCL stage 1, ours (PyTorch's init) | 2.500 ± 0.707 | 3.500 ± 0.707 |"), "{md}");
        // PyTorch's stage 1: 1.5 + shift, 2.5 + shift.
        assert!(md.contains("| GCL stage 1, PyTorch | 2.000 ± 0.707 | 3.000 ± 0.707 |"), "{md}");
        // Paired: ours (2 + s, 3 + s) minus PyTorch's (1.5 + s, 2.5 + s) is +0.5 in both seeds.
        assert!(md.contains("| GCL stage 1 from the same initial weights | +0.500 ± 0.000"), "{md}");
        // cRT paired: ours paired_crt (r = 3) 4 + s against PyTorch's 4.5 + s: -0.5.
        assert!(md.contains("| GCL + CBEN cRT from the same stage-1 weights | -0.500 ± 0.000"), "{md}");
        // Stems: conv norm 0.1 * (1 + s) * sqrt(432) against 0.1 * sqrt(432); running var (2 + s) / 1.
        assert!(md.contains("conv norm 1.500 ± 0.707, BN running var 2.500 ± 0.707"), "{md}");
        assert_eq!(json["losses"][2]["per_seed"][1], json!([2.5, 3.5]));
    }

    #[test]
    fn a_missing_run_is_named() {
        let dir = tempfile::tempdir().unwrap();
        fixture(dir.path(), &[123]);
        std::fs::remove_file(dir.path().join("ours/seed123/gcl_crt/log.jsonl")).unwrap();
        let err = format!("{:#}", section(dir.path(), &[123], STAGE1).unwrap_err());
        assert!(err.contains("ours/seed123/gcl_crt/log.jsonl"), "{err}");
    }
}
