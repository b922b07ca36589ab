//! A method's settings reach the cache key only through its own variant: adding a field to one
//! loss (or one stage-2 method, or one sampler) changes the keys of that loss's runs and of no
//! other.
//!
//! The key material of a run holds `stage1.loss` as the chosen variant serialised alone
//! (`cache::key::stage1_material`). Each variant's material is pinned here by its SHA-256: a
//! change to one loss's settings changes exactly one line below, and a field added outside the
//! variants (shared by every loss) changes them all, which is what this test exists to refuse.
//!
//! Samplers: both stages' keys hold the chosen sampler alone, as serialised (`SAMPLER_MATERIAL`):
//! a sampler's own parameters reach the key of either stage, another sampler's never do.
use gcl_repro::cache::key::{canonical, hash, stage1_material, stage2_material};
use gcl_repro::data::samplers::SamplerSpec;
use gcl_repro::data::samplers::{Cben, En};
use gcl_repro::losses::LossSpec;
use gcl_repro::training::rebalance::Rebalance;
use gcl_repro::training::spec::{RunSpec, Stage2Spec};
use serde_json::Value;

/// SHA-256 of the canonical JSON of each loss's default settings, as they appear in a key.
const LOSS_MATERIAL: [(&str, &str); 8] = [
    // One line per loss: a change to a loss's settings changes its line only.
    ("ce", "68b906a24e495d64b3ad6c7b69de4da650a8f0e8fe2aa7f62feb95e8a1f21165"),
    ("focal", "c229603afa61e673615c4f5fc259330ecac5b357e1d1d7559b99c23ae588c3a7"),
    ("ldam", "74f219f4fe2e4f5e2d20e509fc78a279822867de4e3b24c4f3d0d7064b9e0362"),
    ("logit_adjusted", "e26ac8a4456736879a50fbe8b5485753a2e2af78e4206d53157fa3fbb515f5b9"),
    ("balanced_softmax", "e0f09e362e8e7fc0f99336ca3d3cce2e5ab65ba260c030ccfed7a5cb3133d0fa"),
    ("label_aware_smoothing", "1779ef6d017e1aee1925e569790f72bc4a86dc86c0dd05a6b72869f7554f6f3d"),
    ("gcl", "5a01b6a9094226d80f2cad91e7e4eb6079bc56cbc8f5a3bb96899930243e4d02"),
    ("class_balanced", "ff75187a6316168d32e21569dd11436376411a164cd467456221470a37cd8e8d"),
];

const REBALANCE_MATERIAL: [(&str, &str); 4] = [
    ("crt", "8a2d3b1b48c2457ec9bbc943509b5ec0e7efd02fcd631383135e594a91becb81"),
    ("lws", "c7dced2fc0e51664d5e77bf47d8039235446251dbcafab2918e5562e8fd42f4c"),
    ("tau_norm", "b9fc770439cd403edc019cb782bdfaebbabeb8e1abcc595c047ebcff61f510e4"),
    ("crt_lws", "7fb3f57797bc66ca46969e963ebd1fbf39f4f64702f1f1f1dca3735b666a5b76"),
];

/// SHA-256 of each sampler's default settings as stage 2's key holds them (its own only).
const SAMPLER_MATERIAL: [(&str, &str); 6] = [
    ("ib", "9f73ea6a21c562d98dfea9f39c6933656d65053d48ab65bbc072e8d56f3e1180"),
    ("cb", "c882e93dba478fde7c7e064083a7e50426eb1d3008d8677987577ca88c78d38f"),
    ("en", "ba0097f0721999aad27aebaf1e9b62e236217b43abea6f3baf1886d41b584335"),
    ("cben", "a2987243ea68031058092b411915ef97cbfd2878db650560d190d8b611d1de33"),
    ("class_aware", "13237324255a3ba61a766b1267a6e24c64ac764057546ccd33014a9ea99ea0f8"),
    ("reversed", "72d0df88216cce0664c8ffec7d0eb3f9767624c01ec25e80417b63f5579bf6e9"),
];

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

#[test]
fn each_loss_enters_the_key_with_its_own_settings_only() {
    let all = LossSpec::all_defaults();
    assert_eq!(all.len(), LOSS_MATERIAL.len(), "a loss was registered: pin its material here");
    let mut seen = Vec::new();
    for (loss, (kind, pinned)) in all.iter().zip(LOSS_MATERIAL) {
        assert_eq!(loss.kind(), kind);
        let mut run = RunSpec::default();
        run.stage1.loss = loss.clone();
        let material = stage1_material(&run, "data");
        let in_key = &material["stage1"]["loss"];
        // Exactly the variant's own fields and its tag.
        let own = serde_json::to_value(loss).unwrap();
        assert_eq!(keys(in_key), keys(&own), "{kind}");
        assert_eq!(in_key["kind"], kind);
        seen.push(format!("(\"{kind}\", \"{}\")", hash(in_key)));
        assert!(!pinned.is_empty());
    }
    let want: Vec<String> = LOSS_MATERIAL.iter().map(|(k, h)| format!("(\"{k}\", \"{h}\")")).collect();
    assert_eq!(
        seen,
        want,
        "the key material of these losses changed; canonical forms: {:?}",
        all.iter().map(|l| canonical(&serde_json::to_value(l).unwrap())).collect::<Vec<_>>()
    );
}

#[test]
fn each_stage2_method_enters_the_key_with_its_own_settings_only() {
    let all = Rebalance::all_defaults();
    assert_eq!(all.len(), REBALANCE_MATERIAL.len(), "a method was registered: pin its material here");
    let mut seen = Vec::new();
    for (method, (name, _)) in all.iter().zip(REBALANCE_MATERIAL) {
        assert_eq!(method.name(), name);
        let run = RunSpec {
            stage2: Some(Stage2Spec { rebalance: method.clone(), ..Stage2Spec::default() }),
            ..RunSpec::default()
        };
        let material = stage2_material(&run, "parent").unwrap();
        let in_key = &material["stage2"]["rebalance"];
        assert_eq!(keys(in_key), keys(&serde_json::to_value(method).unwrap()), "{name}");
        seen.push(format!("(\"{name}\", \"{}\")", hash(in_key)));
    }
    let want: Vec<String> = REBALANCE_MATERIAL.iter().map(|(k, h)| format!("(\"{k}\", \"{h}\")")).collect();
    assert_eq!(seen, want);
}

fn stage2_with(sampler: SamplerSpec) -> RunSpec {
    RunSpec { stage2: Some(Stage2Spec { sampler, ..Stage2Spec::default() }), ..RunSpec::default() }
}

#[test]
fn each_sampler_enters_the_stage2_key_with_its_own_settings_only() {
    let all = SamplerSpec::all_defaults();
    assert_eq!(all.len(), SAMPLER_MATERIAL.len(), "a sampler was registered: pin its material here");
    let mut seen = Vec::new();
    for (sampler, (kind, _)) in all.iter().zip(SAMPLER_MATERIAL) {
        assert_eq!(sampler.kind(), kind);
        let material = stage2_material(&stage2_with(sampler.clone()), "parent").unwrap();
        let in_key = &material["stage2"]["sampler"];
        assert_eq!(keys(in_key), keys(&serde_json::to_value(sampler).unwrap()), "{kind}");
        seen.push(format!("(\"{kind}\", \"{}\")", hash(in_key)));
    }
    let want: Vec<String> = SAMPLER_MATERIAL.iter().map(|(k, h)| format!("(\"{k}\", \"{}\")", h)).collect();
    assert_eq!(seen, want);
}

#[test]
fn a_sampler_key_depends_only_on_its_own_parameters() {
    let key = |s: SamplerSpec| stage2_material(&stage2_with(s), "parent").unwrap();
    // Only EN has `beta`, only CBEN `a` and `b`: no other sampler's material holds them.
    for s in SamplerSpec::all_defaults() {
        let m = key(s.clone());
        let own: Vec<&str> = match &s {
            SamplerSpec::En(_) => vec!["beta", "kind"],
            SamplerSpec::Cben(_) => vec!["a", "b", "kind"],
            _ => vec!["kind"],
        };
        assert_eq!(keys(&m["stage2"]["sampler"]), own, "{}", s.kind());
    }
    // Their own parameters do move their keys.
    assert_ne!(hash(&key(SamplerSpec::En(En { beta: 0.999 }))), hash(&key(SamplerSpec::En(En::default()))));
    assert_ne!(
        hash(&key(SamplerSpec::Cben(Cben { a: 0.999, b: 0.0009 }))),
        hash(&key(SamplerSpec::Cben(Cben::default())))
    );
    // A `cb` table cannot carry `beta` at all, so no `beta` can reach a `cb` run's key.
    let err = toml::from_str::<SamplerSpec>("kind = 'cb'\nbeta = 0.9\n").unwrap_err().to_string();
    assert!(err.contains("beta"), "{err}");
}

#[test]
fn stage1_keys_hold_the_sampler_as_serialised() {
    // The same material as stage 2's: the variant alone, its own parameters only.
    for (sampler, (kind, pinned)) in SamplerSpec::all_defaults().iter().zip(SAMPLER_MATERIAL) {
        let mut run = RunSpec::default();
        run.stage1.sampler = sampler.clone();
        let in_key = &stage1_material(&run, "data")["stage1"]["sampler"];
        assert_eq!(in_key, &serde_json::to_value(sampler).unwrap(), "{kind}");
        assert_eq!(hash(in_key), pinned, "{kind}");
    }
    // A stage-1 sampler's own parameter moves the stage-1 key.
    let key_with = |s: SamplerSpec| {
        let mut run = RunSpec::default();
        run.stage1.sampler = s;
        hash(&stage1_material(&run, "data"))
    };
    assert_ne!(key_with(SamplerSpec::En(En { beta: 0.999 })), key_with(SamplerSpec::En(En::default())));
    assert_ne!(key_with(SamplerSpec::Cben(Cben { a: 0.999, b: 1e-5 })), key_with(SamplerSpec::Cben(Cben::default())));
}
