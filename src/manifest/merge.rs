//! Resolution of a cell's settings by deep merge of RunSpec fragments.
//!
//! Order: `RunSpec::default()` <- `[defaults]` <- column <- row <- cell <- `[manifest.smoke]`
//! (smoke scale only) <- seed. Tables merge key by key; any other value replaces. Every
//! fragment merges onto the *resolved* settings so far, which start as the full default run
//! spelled out, so a partial table never falls back to another type's defaults:
//! - `stage2 = false` removes stage 2; a `stage2 = { ... }` over a removed or absent stage 2
//!   first brings back `Stage2Spec::default()` (the released stage 2: GCL s = 20, m = 0.1,
//!   focal 1, CBEN), then merges onto it. So `stage2 = { loss = { noise_mul = 1.0 } }` changes
//!   only `c` of the released stage-2 loss.
//! - A `loss` table that names a different `kind` than the loss it merges onto starts from that
//!   kind's own defaults (`LossSpec::default()` with the new kind), never keeping another kind's
//!   settings (stage 2's margin and focal gamma do not leak into a stage-2 `kind = "ce"`).
//! - The cloud-size schedule is one function of the method, as in the released code, where one
//!   `GCLLoss` cloud list serves both stages: unless some fragment sets `stage2.loss.cloud`,
//!   stage 2 uses stage 1's `loss.cloud`. (CBEN's sampler keeps its own log-count delta, as the
//!   released `sampler.py`.)
use crate::config::{LossSpec, RunSpec, Scale, Stage2Spec};
use anyhow::{Context, Result};
use serde::Serialize;
use toml::{Table, Value};

/// Merges `over` into `base` in place (plain deep merge: tables key by key, values replace).
pub fn merge(base: &mut Table, over: &Table) {
    for (key, value) in over {
        match (base.get_mut(key), value) {
            (Some(Value::Table(b)), Value::Table(o)) => merge(b, o),
            _ => {
                base.insert(key.clone(), value.clone());
            }
        }
    }
}

/// Whether a merged table has a stage 2 (present and not `false`).
pub fn has_stage2(t: &Table) -> bool {
    matches!(t.get("stage2"), Some(Value::Table(_)))
}

/// A settings struct spelled out as a TOML table (every field, defaults included).
fn spelled_out<T: Serialize>(value: &T) -> Table {
    match Value::try_from(value) {
        Ok(Value::Table(t)) => t,
        other => panic!("settings structs serialise to TOML tables, got {other:?}"),
    }
}

/// Merges one fragment onto resolved settings (the module docs' rules for `stage2` and `loss`).
fn merge_resolved(base: &mut Table, over: &Table) {
    if matches!(over.get("stage2"), Some(Value::Table(_))) && !has_stage2(base) {
        base.insert("stage2".into(), Value::Table(spelled_out(&Stage2Spec::default())));
    }
    for stage in ["stage1", "stage2"] {
        let new_kind = over.get(stage).and_then(|s| s.get("loss")).and_then(|l| l.get("kind"));
        let Some(Value::Table(base_stage)) = base.get_mut(stage) else { continue };
        let old_kind = base_stage.get("loss").and_then(|l| l.get("kind"));
        if let Some(kind) = new_kind.filter(|k| Some(*k) != old_kind) {
            let mut fresh = spelled_out(&LossSpec::default());
            fresh.insert("kind".into(), kind.clone());
            base_stage.insert("loss".into(), Value::Table(fresh));
        }
    }
    merge(base, over);
}

fn sets_stage2_cloud(t: &Table) -> bool {
    t.get("stage2").and_then(|s| s.get("loss")).and_then(|l| l.get("cloud")).is_some()
}

/// Merges the fragments in order, applies the smoke fragment at smoke scale (its `stage2` part
/// only shrinks an existing stage 2, it never adds one), and deserialises the result.
pub fn resolve(fragments: &[&Table], smoke: &Table, scale: Scale, seed: Option<u64>) -> Result<RunSpec> {
    let mut merged = spelled_out(&RunSpec::default());
    for f in fragments {
        merge_resolved(&mut merged, f);
    }
    if scale == Scale::Smoke {
        let mut smoke = smoke.clone();
        if !has_stage2(&merged) {
            smoke.remove("stage2");
        }
        merge_resolved(&mut merged, &smoke);
        merged.insert("scale".into(), Value::String("smoke".into()));
    }
    if !has_stage2(&merged) {
        merged.remove("stage2");
    } else if !fragments.iter().any(|f| sets_stage2_cloud(f)) && !(scale == Scale::Smoke && sets_stage2_cloud(smoke)) {
        let cloud = merged.get("stage1").and_then(|s| s.get("loss")).and_then(|l| l.get("cloud")).cloned();
        if let (Some(cloud), Some(Value::Table(s2))) = (cloud, merged.get_mut("stage2")) {
            if let Some(Value::Table(loss)) = s2.get_mut("loss") {
                loss.insert("cloud".into(), cloud);
            }
        }
    }
    if let Some(seed) = seed {
        merged.insert("seed".into(), Value::Integer(seed as i64));
    }
    let text = toml::to_string(&merged).context("cannot write the merged settings")?;
    toml::from_str::<RunSpec>(&text).with_context(|| format!("the merged settings are not a valid run:\n{text}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CloudSchedule, LossKind, SamplerKind};

    fn t(s: &str) -> Table {
        toml::from_str(s).unwrap()
    }

    #[test]
    fn later_fragments_win_and_tables_merge() {
        let d = t("stage1 = { epochs = 10, lr = 0.5 }");
        let r = t("stage1 = { epochs = 20 }");
        let spec = resolve(&[&d, &r], &Table::new(), Scale::Full, None).unwrap();
        assert_eq!(spec.stage1.epochs, 20);
        assert_eq!(spec.stage1.lr, 0.5);
    }

    #[test]
    fn stage2_false_removes_and_a_later_table_restarts_from_default() {
        let d = t("stage2 = { epochs = 7 }");
        let off = t("stage2 = false");
        let spec = resolve(&[&d, &off], &Table::new(), Scale::Full, None).unwrap();
        assert_eq!(spec.stage2, None);
        let on = t("stage2 = { sampler = { kind = 'cb' } }");
        let spec = resolve(&[&d, &off, &on], &Table::new(), Scale::Full, None).unwrap();
        let s2 = spec.stage2.unwrap();
        assert_eq!(s2.epochs, Stage2Spec::default().epochs, "restarted from the default, not from epochs = 7");
        assert_eq!(s2.sampler.kind, SamplerKind::Cb);
        let empty = t("stage2 = {}");
        assert_eq!(resolve(&[&empty], &Table::new(), Scale::Full, None).unwrap().stage2, Some(Stage2Spec::default()));
    }

    #[test]
    fn smoke_shrinks_but_never_adds_stage2() {
        let smoke = t("stage1 = { epochs = 2 }\nstage2 = { epochs = 1 }");
        let none = t("");
        let spec = resolve(&[&none], &smoke, Scale::Smoke, Some(5)).unwrap();
        assert_eq!((spec.stage1.epochs, spec.stage2.is_none(), spec.scale, spec.seed), (2, true, Scale::Smoke, 5));
        let with = t("stage2 = {}");
        let spec = resolve(&[&with], &smoke, Scale::Smoke, None).unwrap();
        assert_eq!(spec.stage2.unwrap().epochs, 1);
        let spec = resolve(&[&with], &smoke, Scale::Full, None).unwrap();
        assert_eq!((spec.stage2.unwrap().epochs, spec.stage1.epochs, spec.scale), (30, 200, Scale::Full));
    }

    #[test]
    fn partial_stage2_loss_keeps_the_stage2_defaults() {
        // Table 3's `log_paper_noise` row: only c changes; the loss stays GCL s = 20, m = 0.1, focal 1.
        let row = t("stage2 = { loss = { noise_mul = 1.0 } }");
        let s2 = resolve(&[&row], &Table::new(), Scale::Full, None).unwrap().stage2.unwrap();
        assert_eq!(s2.loss.kind, LossKind::Gcl);
        assert_eq!((s2.loss.scale, s2.loss.margin, s2.loss.focal_gamma, s2.loss.noise_mul), (20.0, 0.1, 1.0, 1.0));
        // The same over an existing stage 2 from an earlier fragment.
        let d = t("stage2 = {}");
        let s2 = resolve(&[&d, &row], &Table::new(), Scale::Full, None).unwrap().stage2.unwrap();
        assert_eq!((s2.loss.kind, s2.loss.scale, s2.loss.noise_mul), (LossKind::Gcl, 20.0, 1.0));
    }

    #[test]
    fn a_new_loss_kind_starts_from_its_own_defaults() {
        let row = t("stage2 = { loss = { kind = 'ce' } }");
        let s2 = resolve(&[&row], &Table::new(), Scale::Full, None).unwrap().stage2.unwrap();
        assert_eq!(s2.loss, LossSpec { kind: LossKind::Ce, ..LossSpec::default() }, "no focal gamma or margin from GCL's stage 2");
        // Naming the same kind keeps the stage's settings.
        let same = t("stage2 = { loss = { kind = 'gcl' } }");
        assert_eq!(resolve(&[&same], &Table::new(), Scale::Full, None).unwrap().stage2.unwrap(), Stage2Spec::default());
    }

    #[test]
    fn stage2_follows_stage1_cloud_schedule_unless_set() {
        let d = t("stage2 = {}");
        let row = t("stage1 = { loss = { kind = 'gcl', cloud = 'cos' } }");
        let spec = resolve(&[&d, &row], &Table::new(), Scale::Full, None).unwrap();
        assert_eq!((spec.stage1.loss.cloud, spec.stage2.unwrap().loss.cloud), (CloudSchedule::Cos, CloudSchedule::Cos));
        let own = t("stage2 = { loss = { cloud = 'pow_third' } }");
        let spec = resolve(&[&d, &row, &own], &Table::new(), Scale::Full, None).unwrap();
        assert_eq!(spec.stage2.unwrap().loss.cloud, CloudSchedule::PowThird);
    }
}
