//! Resolution of a cell's settings by deep merge of RunSpec fragments.
//!
//! Order: `RunSpec::default()` <- `[defaults]` <- column <- row <- cell <- `[manifest.smoke]`
//! (smoke scale only) <- seed. Tables merge key by key; any other value replaces. `stage2 =
//! false` removes stage 2; a later `stage2 = { ... }` over a removed or absent stage 2 starts
//! from `Stage2Spec::default()` (serde fills the unspecified fields from the defaults).
use crate::config::{RunSpec, Scale};
use anyhow::{Context, Result};
use toml::{Table, Value};

/// Merges `over` into `base` in place.
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

/// Merges the fragments in order, applies the smoke fragment at smoke scale (its `stage2` part
/// only shrinks an existing stage 2, it never adds one), and deserialises the result.
pub fn resolve(fragments: &[&Table], smoke: &Table, scale: Scale, seed: Option<u64>) -> Result<RunSpec> {
    let mut merged = Table::new();
    for f in fragments {
        merge(&mut merged, f);
    }
    if scale == Scale::Smoke {
        let mut smoke = smoke.clone();
        if !has_stage2(&merged) {
            smoke.remove("stage2");
        }
        merge(&mut merged, &smoke);
        merged.insert("scale".into(), Value::String("smoke".into()));
    }
    if !has_stage2(&merged) {
        merged.remove("stage2");
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
    use crate::config::{Stage2Spec, SamplerKind};

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
}
