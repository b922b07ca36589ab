//! Content keys of runs: SHA-256 of a canonical form of everything that determines a result.
//!
//! Canonical form: the fully resolved settings serialised to JSON with object keys sorted at every
//! level ([`canonical`] sorts them itself), so key order in a manifest and spelled-out defaults do
//! not change the key. A stage-2 key contains its stage-1 key, so stage-2 variants share stage 1.
use crate::models::spec::ModelSpec;
use crate::training::spec::RunSpec;
use crate::ENGINE_VERSION;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// What a key is computed from; stored beside each result as `key.json` for transparency.
pub fn stage1_material(spec: &RunSpec, data_identity: &str) -> Value {
    with_data_parallel(
        spec,
        json!({
            "engine": ENGINE_VERSION,
            "stage": 1,
            "dataset": spec.dataset,
            "data_identity": data_identity,
            "model": model_material(&spec.model),
            "stage1": spec.stage1,
            "seed": spec.seed,
            "scale": spec.scale,
            "cpu": spec.cpu,
        }),
    )
}

/// `material` with the run's `data_parallel` settings when it has several ranks; a
/// single-process run's material is what it was before data parallelism existed.
fn with_data_parallel(spec: &RunSpec, mut material: Value) -> Value {
    if !spec.data_parallel.is_single() {
        material["data_parallel"] = json!(spec.data_parallel);
    }
    material
}

/// The model's settings as hashed: a starting-weights file enters by its content
/// (`init_sha256`), not by where it lies (`init_from`), so moving the file keeps the key.
fn model_material(model: &ModelSpec) -> Value {
    let mut v = json!(model);
    if let Some(map) = v.as_object_mut() {
        map.remove("init_from");
    }
    v
}

pub fn stage2_material(spec: &RunSpec, stage1_key: &str) -> Option<Value> {
    spec.stage2.as_ref().map(|s2| {
        with_data_parallel(
            spec,
            json!({
                "engine": ENGINE_VERSION,
                "stage": 2,
                "parent": stage1_key,
                "stage2": s2,
                "seed": spec.seed,
                "cpu": spec.cpu,
            }),
        )
    })
}

/// Canonical JSON text: object keys sorted at every level, no whitespace. Sorted explicitly
/// (not by relying on serde_json's map type, which a dependency's `preserve_order` could change).
pub fn canonical(v: &Value) -> String {
    fn write(v: &Value, out: &mut String) {
        match v {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    write(&map[k], out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(item, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(v, &mut out);
    out
}

pub fn hash(v: &Value) -> String {
    hex::encode(Sha256::digest(canonical(v).as_bytes()))
}

/// The keys of a run: (stage-1 key, stage-2 key if the run has a stage 2).
pub fn run_keys(spec: &RunSpec, data_identity: &str) -> (String, Option<String>) {
    let k1 = hash(&stage1_material(spec, data_identity));
    let k2 = stage2_material(spec, &k1).map(|m| hash(&m));
    (k1, k2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::training::spec::Stage2Spec;

    #[test]
    fn equal_settings_written_differently_give_one_key() {
        let a: RunSpec = toml::from_str("seed = 123\n[stage1]\nlr = 0.1\nepochs = 200\n").unwrap();
        let b: RunSpec = toml::from_str("[stage1]\nepochs = 200\n").unwrap();
        assert_eq!(run_keys(&a, "d"), run_keys(&b, "d"));
    }

    #[test]
    fn anything_that_matters_changes_the_key() {
        let base = RunSpec::default();
        let (k, _) = run_keys(&base, "d");
        let mut other = base.clone();
        other.seed = 1;
        assert_ne!(run_keys(&other, "d").0, k);
        assert_ne!(run_keys(&base, "other-data").0, k);
        assert_eq!(k.len(), 64);
    }

    #[test]
    fn starting_weights_enter_by_content_not_path() {
        let base = RunSpec::default();
        let with = |path: &str, sha: &str| {
            let mut s = base.clone();
            s.model.init_from = Some(path.into());
            s.model.init_sha256 = Some(sha.into());
            run_keys(&s, "d").0
        };
        assert_eq!(with("/a/w.safetensors", "aa"), with("/b/moved.safetensors", "aa"));
        assert_ne!(with("/a/w.safetensors", "aa"), with("/a/w.safetensors", "bb"));
        assert_ne!(with("/a/w.safetensors", "aa"), run_keys(&base, "d").0);
    }

    #[test]
    fn canonical_form_sorts_keys() {
        let v = json!({"b": 1, "a": {"d": [1, {"z": 0, "y": 1}], "c": 2}});
        assert_eq!(canonical(&v), r#"{"a":{"c":2,"d":[1,{"y":1,"z":0}]},"b":1}"#);
    }

    #[test]
    fn stage2_variants_share_stage1() {
        let a = RunSpec { stage2: Some(Stage2Spec::default()), ..RunSpec::default() };
        let mut b = a.clone();
        b.stage2.as_mut().unwrap().sampler = crate::data::samplers::SamplerSpec::default_of("cb").unwrap();
        let (a1, a2) = run_keys(&a, "d");
        let (b1, b2) = run_keys(&b, "d");
        assert_eq!(a1, b1);
        assert_eq!(a1, run_keys(&RunSpec::default(), "d").0);
        assert_ne!(a2, b2);
    }
}
