//! The report's files: per-manifest tables and the run files, each written atomically.
use super::{paper_tables, runs_frame, CellInput, PaperTable};
use anyhow::{Context, Result};
use polars::prelude::*;
use std::path::{Path, PathBuf};

/// The files one manifest's table was written to.
#[derive(Clone, Debug)]
pub struct ManifestTableFiles {
    pub manifest: String,
    pub markdown: PathBuf,
    pub latex: PathBuf,
    pub csv: PathBuf,
}

#[derive(Clone, Debug)]
pub struct TableFiles {
    pub tables: Vec<ManifestTableFiles>,
    pub runs_parquet: PathBuf,
    pub runs_csv: PathBuf,
}

/// Write `<manifest>.md/.tex/.csv` per manifest, and `runs.parquet` + `runs.csv`, into `out_dir`.
/// `shots` adds a many / medium / few column to every column group.
pub fn write_tables(cells: &[CellInput], out_dir: &Path, shots: bool) -> Result<TableFiles> {
    let mut tables = Vec::new();
    for table in paper_tables(cells)? {
        tables.push(write_table_files(&table, out_dir, shots)?);
    }
    let (runs_parquet, runs_csv) = write_runs(cells, out_dir)?;
    Ok(TableFiles { tables, runs_parquet, runs_csv })
}

/// One table as `<dir>/<manifest>.md`, `.tex` and `.csv`.
pub fn write_table_files(table: &PaperTable, dir: &Path, shots: bool) -> Result<ManifestTableFiles> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let stem = dir.join(&table.manifest);
    let files = ManifestTableFiles {
        manifest: table.manifest.clone(),
        markdown: stem.with_extension("md"),
        latex: stem.with_extension("tex"),
        csv: stem.with_extension("csv"),
    };
    write_file(&files.markdown, &format!("## {}\n\n{}", table.title, table.markdown(shots)))?;
    write_file(&files.latex, &table.latex(shots))?;
    write_csv(&mut table.frame(shots)?, &files.csv)?;
    Ok(files)
}

/// Every stored run of `cells` as `<dir>/runs.parquet` and `<dir>/runs.csv` (one row per run).
pub fn write_runs(cells: &[CellInput], dir: &Path) -> Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut runs = runs_frame(cells)?;
    let runs_parquet = dir.join("runs.parquet");
    let runs_csv = dir.join("runs.csv");
    let file = std::fs::File::create(&runs_parquet).with_context(|| format!("creating {}", runs_parquet.display()))?;
    ParquetWriter::new(file)
        .finish(&mut runs)
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", runs_parquet.display()))?;
    write_csv(&mut runs, &runs_csv)?;
    Ok((runs_parquet, runs_csv))
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    crate::atomic::write(path, text)
}

fn write_csv(df: &mut DataFrame, path: &Path) -> Result<()> {
    let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    CsvWriter::new(file).include_header(true).finish(df).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))
}
