//! Resolution of a cell's settings by deep merge of RunSpec fragments.
//!
//! Order: `RunSpec::default()` <- the cell's fragments (`manifest::cell_fragments`, the one
//! place their order is written: `[defaults]` <- column <- recipe <- row <- cell <- the sweep
//! point a generated row came from) <- `[manifest.smoke]` (smoke scale only) <- the command
//! line's `--set KEY=VALUE` overrides (those that apply to the cell) <- seed. The fragments merge as TOML tables (the one
//! layer where a partial fragment exists) and the result is deserialised once into `RunSpec`. Tables merge key by key; any other value replaces. Every
//! fragment merges onto the *resolved* settings so far, which start as the full default run
//! spelled out, so a partial table never falls back to another type's defaults:
//! - `stage2 = false` removes stage 2; a `stage2 = { ... }` over a removed or absent stage 2
//!   first brings back `Stage2Spec::default()` (the released stage 2: GCL s = 20, m = 0.1,
//!   focal 1, CBEN), then merges onto it. So `stage2 = { loss = { noise_mul = 1.0 } }` changes
//!   only `c` of the released stage-2 loss.
//! - A method table (`loss` and `sampler` tagged by `kind`, `stage2.rebalance` tagged by
//!   `method`) that names another variant than the one it merges onto starts from that
//!   variant's own defaults, never keeping another variant's settings (stage 2's margin and focal gamma do not leak into a
//!   stage-2 `kind = "ce"`). A setting the resolved variant does not have is an error naming it.
//! - The cloud-size schedule is one function of the method, as in the released code, where one
//!   `GCLLoss` cloud list serves both stages: unless some fragment sets `stage2.loss.cloud`, a
//!   GCL stage 2 uses stage 1's GCL `loss.cloud`. (CBEN's sampler keeps its own log-count delta,
//!   as the released `sampler.py`.)
use crate::data::samplers::SamplerSpec;
use crate::losses::LossSpec;
use crate::training::rebalance::Rebalance;
use crate::training::spec::{RunSpec, Scale, Stage2Spec};
use anyhow::{bail, Context, Result};
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

/// The tables whose variants own their settings: (table, tag key).
const METHOD_TABLES: [(&str, &str); 3] = [("loss", "kind"), ("rebalance", "method"), ("sampler", "kind")];

/// The tag key of a method table (`loss` -> `kind`, `rebalance` -> `method`, `sampler` ->
/// `kind`), `None` for any other table.
pub fn method_tag(table: &str) -> Option<&'static str> {
    METHOD_TABLES.iter().find(|(t, _)| *t == table).map(|(_, tag)| *tag)
}

/// Every registered variant of a method table with its default settings, spelled out (its tag
/// included), in registration order; none for any other table.
fn variants(table: &str) -> Vec<Table> {
    match table {
        "loss" => LossSpec::all_defaults().iter().map(spelled_out).collect(),
        "rebalance" => Rebalance::all_defaults().iter().map(spelled_out).collect(),
        "sampler" => SamplerSpec::all_defaults().iter().map(spelled_out).collect(),
        _ => vec![],
    }
}

/// The name of a spelled-out variant of `table` (its tag's value).
fn variant_name<'a>(table: &str, variant: &'a Table) -> &'a str {
    variant.get(method_tag(table).unwrap_or("kind")).and_then(Value::as_str).unwrap_or_default()
}

/// The default settings, spelled out, of the variant `name` of a method table (`None` for an
/// unknown name, which deserialisation then reports with the list of names).
fn variant_defaults(table: &str, name: &str) -> Option<Table> {
    variants(table).into_iter().find(|v| variant_name(table, v) == name)
}

/// Every setting name of every variant of a method table, for the manifest schema.
pub fn variant_keys(table: &str) -> Vec<(String, Vec<String>)> {
    variants(table).iter().map(|v| (variant_name(table, v).to_string(), v.keys().cloned().collect())).collect()
}

/// Merges one fragment onto resolved settings (the module docs' rules for `stage2` and the
/// method tables).
fn merge_resolved(base: &mut Table, over: &Table) {
    if matches!(over.get("stage2"), Some(Value::Table(_))) && !has_stage2(base) {
        base.insert("stage2".into(), Value::Table(spelled_out(&Stage2Spec::default())));
    }
    for stage in ["stage1", "stage2"] {
        let Some(Value::Table(base_stage)) = base.get_mut(stage) else { continue };
        for (table, tag) in METHOD_TABLES {
            let new_name = over.get(stage).and_then(|s| s.get(table)).and_then(|l| l.get(tag));
            let old_name = base_stage.get(table).and_then(|l| l.get(tag));
            if let Some(name) = new_name.filter(|k| Some(*k) != old_name) {
                let fresh = name.as_str().and_then(|n| variant_defaults(table, n)).unwrap_or_else(|| {
                    let mut t = Table::new();
                    t.insert(tag.into(), name.clone());
                    t
                });
                base_stage.insert(table.into(), Value::Table(fresh));
            }
        }
    }
    merge(base, over);
}

/// A setting the resolved variant of a method table does not have: one error that names it,
/// the variant's own settings and the fix.
fn check_variant_settings(merged: &Table) -> Result<()> {
    for stage in ["stage1", "stage2"] {
        for (table, tag) in METHOD_TABLES {
            let Some(Value::Table(t)) = merged.get(stage).and_then(|s| s.get(table)) else { continue };
            let Some(name) = t.get(tag).and_then(Value::as_str) else { continue };
            let Some(own) = variant_defaults(table, name) else { continue };
            if let Some(extra) = t.keys().find(|k| !own.contains_key(*k)) {
                let owners: Vec<String> = variant_keys(table)
                    .into_iter()
                    .filter(|(_, keys)| keys.contains(extra))
                    .map(|(n, _)| format!("\"{n}\""))
                    .collect();
                let own_keys: Vec<&str> = own.keys().map(String::as_str).collect();
                bail!(
                    "`{stage}.{table}.{extra}` is not a setting of {tag} = \"{name}\" (its settings: {}); remove it{}",
                    own_keys.join(", "),
                    if owners.is_empty() {
                        String::new()
                    } else {
                        format!(", or choose a {tag} that has it ({})", owners.join(", "))
                    }
                );
            }
        }
    }
    Ok(())
}

fn sets_stage2_cloud(t: &Table) -> bool {
    t.get("stage2").and_then(|s| s.get("loss")).and_then(|l| l.get("cloud")).is_some()
}

/// Merges the fragments in order, applies the smoke fragment at smoke scale (its `stage2` part
/// only shrinks an existing stage 2, it never adds one), and deserialises the result.
pub fn resolve(fragments: &[&Table], smoke: &Table, scale: Scale, seed: Option<u64>) -> Result<RunSpec> {
    resolve_over(fragments, smoke, &Table::new(), scale, seed)
}

/// [`resolve`], then the command line's `--set` settings (`overrides`) over the result. An
/// override changes what a cell has: its `stage2` part only an existing stage 2 (as smoke;
/// `stage2 = false` removes it), and a setting of a method table only a variant that has it
/// (`stage1.loss.noise_mul` changes the GCL cells, not the CE ones), unless it names the
/// variant itself.
pub fn resolve_over(
    fragments: &[&Table],
    smoke: &Table,
    overrides: &Table,
    scale: Scale,
    seed: Option<u64>,
) -> Result<RunSpec> {
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
    let over = applicable(overrides, &merged);
    if !over.is_empty() {
        merge_resolved(&mut merged, &over);
    }
    if !has_stage2(&merged) {
        merged.remove("stage2");
    }
    let own_stage2_cloud = fragments.iter().any(|f| sets_stage2_cloud(f))
        || (scale == Scale::Smoke && sets_stage2_cloud(smoke))
        || sets_stage2_cloud(&over);
    if let Some(seed) = seed {
        merged.insert("seed".into(), Value::Integer(seed as i64));
    }
    check_variant_settings(&merged)?;
    let text = toml::to_string(&merged).context("cannot write the merged settings")?;
    let mut spec = toml::from_str::<RunSpec>(&text)
        .with_context(|| format!("the merged settings are not a valid run:\n{text}"))?;
    if !own_stage2_cloud {
        stage2_follows_stage1_cloud(&mut spec);
    }
    crate::models::parts::check(&spec.model)?;
    Ok(spec)
}

/// The part of `overrides` that applies to the resolved settings `merged`: no `stage2` table
/// over an absent stage 2, and in a method table that does not name its variant only the
/// settings the resolved variant has.
fn applicable(overrides: &Table, merged: &Table) -> Table {
    let mut over = overrides.clone();
    if !has_stage2(merged) && matches!(over.get("stage2"), Some(Value::Table(_))) {
        over.remove("stage2");
    }
    for stage in ["stage1", "stage2"] {
        let Some(Value::Table(over_stage)) = over.get_mut(stage) else { continue };
        for (table, tag) in METHOD_TABLES {
            let Some(Value::Table(o)) = over_stage.get_mut(table) else { continue };
            if o.contains_key(tag) {
                continue;
            }
            let own = merged.get(stage).and_then(|s| s.get(table)).and_then(Value::as_table);
            o.retain(|k, _| own.is_some_and(|t| t.contains_key(k)));
            if o.is_empty() {
                over_stage.remove(table);
            }
        }
    }
    over
}

/// The one rule across the stages, on the typed settings: the cloud-size schedule is a function
/// of the method, as in the released code, where one `GCLLoss` cloud list serves both stages. A
/// GCL stage 2 takes stage 1's GCL cloud (applied unless some fragment sets `stage2.loss.cloud`).
fn stage2_follows_stage1_cloud(spec: &mut RunSpec) {
    let (LossSpec::Gcl(stage1), Some(stage2)) = (&spec.stage1.loss, spec.stage2.as_mut()) else { return };
    if let LossSpec::Gcl(g) = &mut stage2.loss {
        g.cloud = stage1.cloud;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::samplers::{Cb, Cben};
    use crate::losses::CloudSchedule;
    use crate::losses::{Ce, Gcl};
    use crate::training::rebalance::{Crt, TauNorm};

    fn t(s: &str) -> Table {
        toml::from_str(s).unwrap()
    }

    #[test]
    fn later_fragments_win_and_tables_merge() {
        let d = t("stage1 = { epochs = 10, lr = 0.5 }");
        let r = t("stage1 = { epochs = 20 }");
        let spec = resolve(&[&d, &r], &Table::new(), Scale::Full, None).unwrap();
        assert_eq!(spec.stage1.optim.epochs, 20);
        assert_eq!(spec.stage1.optim.lr, 0.5);
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
        assert_eq!(
            s2.optim.epochs,
            Stage2Spec::default().optim.epochs,
            "restarted from the default, not from epochs = 7"
        );
        assert_eq!(s2.sampler, SamplerSpec::Cb(Cb {}));
        let empty = t("stage2 = {}");
        assert_eq!(resolve(&[&empty], &Table::new(), Scale::Full, None).unwrap().stage2, Some(Stage2Spec::default()));
    }

    #[test]
    fn smoke_shrinks_but_never_adds_stage2() {
        let smoke = t("stage1 = { epochs = 2 }\nstage2 = { epochs = 1 }");
        let none = t("");
        let spec = resolve(&[&none], &smoke, Scale::Smoke, Some(5)).unwrap();
        assert_eq!(
            (spec.stage1.optim.epochs, spec.stage2.is_none(), spec.scale, spec.seed),
            (2, true, Scale::Smoke, 5)
        );
        let with = t("stage2 = {}");
        let spec = resolve(&[&with], &smoke, Scale::Smoke, None).unwrap();
        assert_eq!(spec.stage2.unwrap().optim.epochs, 1);
        let spec = resolve(&[&with], &smoke, Scale::Full, None).unwrap();
        assert_eq!((spec.stage2.unwrap().optim.epochs, spec.stage1.optim.epochs, spec.scale), (30, 200, Scale::Full));
    }

    #[test]
    fn partial_stage2_loss_keeps_the_stage2_defaults() {
        // Table 3's `log_paper_noise` row: only c changes; the loss stays GCL s = 20, m = 0.1, focal 1.
        let row = t("stage2 = { loss = { noise_mul = 1.0 } }");
        let s2 = resolve(&[&row], &Table::new(), Scale::Full, None).unwrap().stage2.unwrap();
        assert_eq!(
            s2.loss,
            LossSpec::Gcl(Gcl { scale: 20.0, margin: 0.1, focal_gamma: 1.0, noise_mul: 1.0, ..Gcl::default() })
        );
        // The same over an existing stage 2 from an earlier fragment.
        let d = t("stage2 = {}");
        let s2 = resolve(&[&d, &row], &Table::new(), Scale::Full, None).unwrap().stage2.unwrap();
        assert_eq!(
            s2.loss,
            LossSpec::Gcl(Gcl { scale: 20.0, margin: 0.1, focal_gamma: 1.0, noise_mul: 1.0, ..Gcl::default() })
        );
    }

    #[test]
    fn a_new_loss_kind_starts_from_its_own_defaults() {
        let row = t("stage2 = { loss = { kind = 'ce' } }");
        let s2 = resolve(&[&row], &Table::new(), Scale::Full, None).unwrap().stage2.unwrap();
        assert_eq!(s2.loss, LossSpec::Ce(Ce::default()), "no focal gamma or margin from GCL's stage 2");
        // Naming the same kind keeps the stage's settings.
        let same = t("stage2 = { loss = { kind = 'gcl' } }");
        assert_eq!(resolve(&[&same], &Table::new(), Scale::Full, None).unwrap().stage2.unwrap(), Stage2Spec::default());
    }

    #[test]
    fn stage2_follows_stage1_cloud_schedule_unless_set() {
        let d = t("stage2 = {}");
        let row = t("stage1 = { loss = { kind = 'gcl', cloud = 'cos' } }");
        let spec = resolve(&[&d, &row], &Table::new(), Scale::Full, None).unwrap();
        let cloud = |l: &LossSpec| match l {
            LossSpec::Gcl(g) => g.cloud,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            (cloud(&spec.stage1.loss), cloud(&spec.stage2.as_ref().unwrap().loss)),
            (CloudSchedule::Cos, CloudSchedule::Cos)
        );
        let own = t("stage2 = { loss = { cloud = 'pow_third' } }");
        let spec = resolve(&[&d, &row, &own], &Table::new(), Scale::Full, None).unwrap();
        assert_eq!(cloud(&spec.stage2.unwrap().loss), CloudSchedule::PowThird);
        // A CE stage 2 has no cloud to inherit.
        let ce2 = t("stage2 = { loss = { kind = 'ce' } }");
        let spec = resolve(&[&d, &row, &ce2], &Table::new(), Scale::Full, None).unwrap();
        assert_eq!(spec.stage2.unwrap().loss, LossSpec::Ce(Ce::default()));
    }

    #[test]
    fn a_rebalance_method_starts_from_its_own_defaults() {
        let d = t("stage2 = { rebalance = { method = 'crt', init = 'reinit', classifier_lr_factor = 0.5 } }");
        let row = t("stage2 = { rebalance = { method = 'tau_norm', tau = 1.5 } }");
        let s2 = resolve(&[&d, &row], &Table::new(), Scale::Full, None).unwrap().stage2.unwrap();
        assert_eq!(s2.rebalance, Rebalance::TauNorm(TauNorm { tau: 1.5 }));
        let partial = t("stage2 = { rebalance = { classifier_lr_factor = 0.2 } }");
        let s2 = resolve(&[&d, &partial], &Table::new(), Scale::Full, None).unwrap().stage2.unwrap();
        assert_eq!(
            s2.rebalance,
            Rebalance::Crt(Crt { init: crate::training::rebalance::ClassifierInit::Reinit, classifier_lr_factor: 0.2 })
        );
    }

    #[test]
    fn a_sampler_table_merges_like_the_other_method_tables() {
        // A partial table changes only the named parameter of the resolved sampler (stage 2: CBEN).
        let row = t("stage2 = { sampler = { a = 0.999 } }");
        let s2 = resolve(&[&row], &Table::new(), Scale::Full, None).unwrap().stage2.unwrap();
        assert_eq!(s2.sampler, SamplerSpec::Cben(Cben { a: 0.999, b: 1e-5 }));
        // Another kind starts from its own defaults: CBEN's a and b do not follow it.
        let d = t("stage2 = { sampler = { kind = 'cben', a = 0.999, b = 0.0009 } }");
        let row = t("stage2 = { sampler = { kind = 'cb' } }");
        let s2 = resolve(&[&d, &row], &Table::new(), Scale::Full, None).unwrap().stage2.unwrap();
        assert_eq!(s2.sampler, SamplerSpec::Cb(Cb {}));
        // A parameter of another sampler is one error naming the samplers that have it.
        let row = t("stage2 = { sampler = { kind = 'cb', beta = 0.99 } }");
        let err = resolve(&[&row], &Table::new(), Scale::Full, None).unwrap_err().to_string();
        assert_eq!(
            err,
            "`stage2.sampler.beta` is not a setting of kind = \"cb\" (its settings: kind); remove it, or choose a kind that has it (\"en\")"
        );
        let row = t("stage1 = { sampler = { kind = 'ib', a = 0.99 } }");
        let err = resolve(&[&row], &Table::new(), Scale::Full, None).unwrap_err().to_string();
        assert!(
            err.contains("`stage1.sampler.a` is not a setting of kind = \"ib\"") && err.contains("(\"cben\")"),
            "{err}"
        );
    }

    #[test]
    fn a_setting_of_another_variant_is_one_clear_error() {
        let d = t("stage1 = { loss = { kind = 'ce' } }");
        let row = t("stage1 = { loss = { noise_mul = 1.0 } }");
        let err = resolve(&[&d, &row], &Table::new(), Scale::Full, None).unwrap_err().to_string();
        assert_eq!(
            err,
            "`stage1.loss.noise_mul` is not a setting of kind = \"ce\" (its settings: kind, scale); remove it, or choose a kind that has it (\"gcl\")"
        );
        let row = t("stage2 = { rebalance = { method = 'lws', tau = 1.5 } }");
        let err = resolve(&[&row], &Table::new(), Scale::Full, None).unwrap_err().to_string();
        assert!(
            err.contains("`stage2.rebalance.tau` is not a setting of method = \"lws\"")
                && err.contains("(\"tau_norm\")"),
            "{err}"
        );
    }
}
