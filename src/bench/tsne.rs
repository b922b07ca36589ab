//! Our t-SNE against scikit-learn's on the same synthetic clusters: time and 10-NN label
//! agreement of both embeddings (`gcl-repro bench tsne`).
use crate::report::tsne::{gaussian_clusters, knn_label_agreement, tsne, TsneOptions};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What `gcl-repro bench tsne` measured.
#[derive(Clone, Debug)]
pub struct TsneBenchmark {
    pub machine: String,
    pub threads: usize,
    pub points: usize,
    pub dim: usize,
    pub ours_seconds: f64,
    pub sklearn_seconds: f64,
    pub sklearn_version: String,
    pub ours_knn_agreement: f64,
    pub sklearn_knn_agreement: f64,
}

impl std::fmt::Display for TsneBenchmark {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "t-SNE benchmark: {} points x {} dims, 10 Gaussian clusters", self.points, self.dim)?;
        writeln!(f, "machine: {} ({} threads used by both)", self.machine, self.threads)?;
        writeln!(f, "settings: perplexity 50, early exaggeration 15, 1000 iterations, PCA init, Barnes-Hut angle 0.5")?;
        writeln!(
            f,
            "gcl-repro tsne:        {:8.2} s   10-NN label agreement {:.3}",
            self.ours_seconds, self.ours_knn_agreement
        )?;
        writeln!(
            f,
            "scikit-learn {:<9} {:8.2} s   10-NN label agreement {:.3}",
            self.sklearn_version, self.sklearn_seconds, self.sklearn_knn_agreement
        )?;
        write!(f, "ratio scikit-learn / ours: {:.2}x", self.sklearn_seconds / self.ours_seconds)
    }
}

/// Run our t-SNE and scikit-learn's (through `script`, with `python`) on the same synthetic data.
pub fn bench_against_sklearn(
    points: usize,
    dim: usize,
    threads: usize,
    python: &Path,
    script: &Path,
) -> Result<TsneBenchmark> {
    if !script.exists() {
        bail!("benchmark script {} not found (run from the crate root or pass --script)", script.display());
    }
    let threads =
        if threads == 0 { std::thread::available_parallelism().map(|c| c.get()).unwrap_or(1) } else { threads };
    let (data, labels) = gaussian_clusters(points, dim, 10, 3.0, 7);
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let input: PathBuf = dir.path().join("data.f32");
    let output: PathBuf = dir.path().join("sklearn.f32");
    let bytes: Vec<u8> = data.iter().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(&input, bytes).with_context(|| format!("writing {}", input.display()))?;

    let opts = TsneOptions { threads, progress: true, ..TsneOptions::default() };
    let t0 = Instant::now();
    let ours = tsne(&data, points, dim, &opts);
    let ours_seconds = t0.elapsed().as_secs_f64();

    eprintln!("running scikit-learn (no progress output)...");
    let result = std::process::Command::new(python)
        .arg(script)
        .args([
            input.to_str().unwrap(),
            output.to_str().unwrap(),
            &points.to_string(),
            &dim.to_string(),
            &threads.to_string(),
        ])
        .env("OMP_NUM_THREADS", threads.to_string())
        .output()
        .with_context(|| format!("running {} {}", python.display(), script.display()))?;
    if !result.status.success() {
        bail!(
            "{} failed ({}); is scikit-learn installed in that Python? (pip install scikit-learn)\n{}",
            script.display(),
            result.status,
            String::from_utf8_lossy(&result.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&result.stdout);
    let line = stdout.lines().last().unwrap_or("");
    let json: serde_json::Value =
        serde_json::from_str(line).with_context(|| format!("parsing the script's last output line {line:?}"))?;
    let sklearn_seconds = json["seconds"].as_f64().context("script output has no 'seconds'")?;
    let sklearn_version = json["sklearn_version"].as_str().unwrap_or("?").to_string();
    let raw = std::fs::read(&output).with_context(|| format!("reading {}", output.display()))?;
    if raw.len() != points * 2 * 4 {
        bail!("{} has {} bytes, expected {}", output.display(), raw.len(), points * 8);
    }
    let theirs: Vec<[f32; 2]> = raw
        .chunks_exact(8)
        .map(|c| [f32::from_le_bytes(c[0..4].try_into().unwrap()), f32::from_le_bytes(c[4..8].try_into().unwrap())])
        .collect();
    Ok(TsneBenchmark {
        machine: crate::device::cpu_name(),
        threads,
        points,
        dim,
        ours_seconds,
        sklearn_seconds,
        sklearn_version,
        ours_knn_agreement: knn_label_agreement(&ours, &labels, 10),
        sklearn_knn_agreement: knn_label_agreement(&theirs, &labels, 10),
    })
}
