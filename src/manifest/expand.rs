//! Expansion of a validated manifest into its cells and their planned runs (one per seed of
//! [`Manifest::seeds_at`] the scale), each with its resolved settings, its data identity and,
//! where the data is here, its cache keys.
use super::{cell_id, merge, Manifest, PlannedRun, RunKeys, TableCell};
use crate::cache::key::run_keys;
use crate::data::DataIdentity;
use crate::training::spec::{RunSpec, Scale};
use anyhow::{Context, Result};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// The cells of the table in row-major order (rows and columns in file order), with their runs
/// at `scale`, the data identity of each run and, where the data is here, its cache keys.
pub fn expand(m: &Manifest, scale: Scale, data_root: &Path) -> Result<Vec<TableCell>> {
    let mut identities: HashMap<String, DataIdentity> = HashMap::new();
    expand_with(m, scale, &mut |spec: &RunSpec| {
        let k = serde_json::to_string(&spec.dataset)?;
        Ok(identities.entry(k).or_insert_with(|| DataIdentity::of(&spec.dataset, data_root)).clone())
    })
}

/// Number of cells of the table and of distinct trainings (stage-1 and stage-2 runs) at full
/// scale. Needs no data: distinct settings give distinct runs whatever the data identity.
pub fn summary(m: &Manifest) -> Result<(usize, usize)> {
    let cells = expand_with(m, Scale::Full, &mut |_| Ok(DataIdentity::Known(String::new())))?;
    let mut runs = HashSet::new();
    for keys in cells.iter().flat_map(|c| &c.runs).filter_map(|r| r.keys.as_ref()) {
        runs.insert(keys.stage1.clone());
        if let Some(k) = &keys.stage2 {
            runs.insert(k.clone());
        }
    }
    Ok((cells.len(), runs.len()))
}

pub(super) fn expand_with(
    m: &Manifest,
    scale: Scale,
    identity: &mut dyn FnMut(&RunSpec) -> Result<DataIdentity>,
) -> Result<Vec<TableCell>> {
    let mut cells = Vec::new();
    let mut pinned: HashMap<PathBuf, String> = HashMap::new();
    let seeds = m.seeds_at(scale);
    for (ri, row) in m.rows.iter().enumerate() {
        for (ci, col) in m.columns.iter().enumerate() {
            let id = cell_id(&row.id, &col.id);
            let published = m.published.get(&id).copied();
            let excluded = m.excluded.contains(&id);
            if excluded && published.is_none() && !row.quoted {
                // Outside the row's columns and no published number: not part of the table.
                continue;
            }
            let mut runs = Vec::new();
            if !row.quoted && !excluded {
                let fragments = m.fragments_of(ri, ci);
                let place = || format!("{}: cell {id}{}", m.path.display(), m.flags_note());
                let mut base =
                    merge::resolve_over(&fragments, &m.smoke, &m.overrides, scale, None).with_context(place)?;
                pin_init_from(&mut base, &m.path, &mut pinned).with_context(place)?;
                // The runs of one cell differ only in `seed` (a list of seeds excludes `seed`
                // in the fragments; a count starts at the resolved one).
                for seed in seeds.for_cell(base.seed) {
                    let spec = RunSpec { seed, ..base.clone() };
                    let data = identity(&spec).with_context(|| format!("cell {id}: data identity"))?;
                    let keys = data.known().map(|d| {
                        let (stage1, stage2) = run_keys(&spec, d);
                        RunKeys { stage1, stage2 }
                    });
                    runs.push(PlannedRun { seed: spec.seed, spec, data, keys });
                }
            }
            cells.push(TableCell { row: row.id.clone(), column: col.id.clone(), published, quoted: row.quoted, runs });
        }
    }
    Ok(cells)
}

/// `model.init_from` relative to the manifest's folder, made absolute, with its content's
/// SHA-256 recorded (each file read once per expansion).
fn pin_init_from(spec: &mut RunSpec, manifest: &Path, pinned: &mut HashMap<PathBuf, String>) -> Result<()> {
    let Some(rel) = spec.model.init_from.clone() else { return Ok(()) };
    let path = manifest.parent().unwrap_or(Path::new(".")).join(&rel);
    let path = std::path::absolute(&path).unwrap_or(path);
    let digest = match pinned.get(&path) {
        Some(d) => d.clone(),
        None => {
            let d = crate::models::import::sha256_file(&path)
                .context("model.init_from (a path relative to the manifest's folder)")?;
            pinned.insert(path.clone(), d.clone());
            d
        }
    };
    spec.model.pin_init_from_digest(&path, digest)?;
    Ok(())
}
