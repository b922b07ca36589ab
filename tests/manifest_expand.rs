//! Manifest expansion: resolution order, published values, quoted rows, keys, seeds.
use gcl_repro::data::samplers::SamplerSpec;
use gcl_repro::manifest::{self, FigureKind, TableCell};
use gcl_repro::training::spec::{Scale, Stage2Spec};
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/manifests").join(name)
}

fn cell<'a>(cells: &'a [TableCell], id: &str) -> &'a TableCell {
    cells.iter().find(|c| c.id() == id).unwrap_or_else(|| panic!("no cell {id}"))
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn good_manifest_loads_with_file_order_and_labels() {
    let m = manifest::load(&fixture("good.toml")).unwrap();
    assert_eq!(m.name, "tiny");
    let rows: Vec<(&str, &str, bool)> = m.rows.iter().map(|r| (r.id.as_str(), r.label.as_str(), r.quoted)).collect();
    assert_eq!(
        rows,
        vec![
            ("ce", "CE loss", false),
            ("tde", "tde", true),
            ("gcl", "gcl", false),
            ("gcl_crt", "gcl_crt", false),
            ("gcl_cb", "gcl_cb", false)
        ],
        "file order; label defaults to the id; quoted comes from the published file"
    );
    let cols: Vec<(&str, &str)> = m.columns.iter().map(|c| (c.id.as_str(), c.label.as_str())).collect();
    assert_eq!(cols, vec![("c10", "γ=10"), ("c100", "c100")]);
    assert_eq!(m.figures.len(), 1);
    assert_eq!(m.figures[0].kind, FigureKind::Tsne);
    assert_eq!(m.figures[0].splits, vec!["train", "test"]);
    // Per seed, stage 1: ce x2 columns, gcl.c10 (shared by gcl_crt.c10 and gcl_cb.c10),
    // gcl.c100 (300 epochs), gcl_crt.c100; stage 2: gcl_crt x2, gcl_cb.c10.
    assert_eq!(manifest::summary(&m).unwrap(), (9, 2 * (5 + 3)));
}

#[test]
fn resolution_order_and_published_values() {
    let m = manifest::load(&fixture("good.toml")).unwrap();
    let cells = manifest::expand(&m, Scale::Full, Path::new("/nonexistent")).unwrap();
    // gcl_cb is restricted to c10 and has no published value for c100: no cell there.
    assert_eq!(cells.len(), 9);
    let ce = cell(&cells, "ce.c10");
    assert_eq!(ce.published, Some(70.70));
    assert_eq!(ce.runs.len(), 2, "one run per seed");
    assert_eq!(ce.runs.iter().map(|r| r.seed).collect::<Vec<_>>(), vec![1, 2]);
    let s = &ce.runs[0].spec;
    assert_eq!(s.dataset.imbalance, 10.0, "column over defaults");
    assert_eq!(s.dataset.classes, 4, "defaults kept where the column is silent");
    assert!(s.stage1.mixup.on);
    assert_eq!(s.stage1.optim.epochs, 200, "RunSpec default");
    assert_eq!(s.stage2, None);

    let tde = cell(&cells, "tde.c10");
    assert!(tde.quoted && tde.runs.is_empty());
    assert_eq!(tde.published, Some(80.60));
    assert_eq!(cell(&cells, "tde.c100").published, None);

    // Inline published values override the file; the cell fragment overrides the row.
    let gcl100 = cell(&cells, "gcl.c100");
    assert_eq!(gcl100.published, Some(50.0));
    assert_eq!(gcl100.runs[0].spec.stage1.optim.epochs, 300);
    assert_eq!(gcl100.runs[0].spec.stage1.loss.kind(), "gcl");
    // published_row borrows another row's numbers.
    assert_eq!(cell(&cells, "gcl_crt.c10").published, Some(82.68));
    assert_eq!(cell(&cells, "gcl_crt.c10").runs[0].spec.stage2, Some(Stage2Spec::default()));
    assert_eq!(
        cell(&cells, "gcl_cb.c10").runs[0].spec.stage2.as_ref().unwrap().sampler,
        SamplerSpec::Cb(gcl_repro::data::samplers::Cb {})
    );
}

#[test]
fn stage2_variants_share_stage1_and_dotted_keys_equal_inline_tables() {
    let m = manifest::load(&fixture("good.toml")).unwrap();
    let cells = manifest::expand(&m, Scale::Full, Path::new("/x")).unwrap();
    let gcl = &cell(&cells, "gcl.c10").runs[0];
    let crt = &cell(&cells, "gcl_crt.c10").runs[0];
    let cb = &cell(&cells, "gcl_cb.c10").runs[0];
    // gcl_crt writes `stage1.loss.kind = "gcl"`, gcl writes an inline table: same stage 1.
    assert_eq!(gcl.keys.as_ref().unwrap().stage1, crt.keys.as_ref().unwrap().stage1);
    assert_eq!(crt.keys.as_ref().unwrap().stage1, cb.keys.as_ref().unwrap().stage1);
    assert_eq!(gcl.keys.as_ref().unwrap().stage2, None);
    assert_eq!(gcl.key(), Some(gcl.keys.as_ref().unwrap().stage1.as_str()));
    assert_ne!(crt.keys.as_ref().unwrap().stage2, cb.keys.as_ref().unwrap().stage2);
    assert_eq!(crt.key(), crt.keys.as_ref().unwrap().stage2.as_deref());
    // Different seeds, different runs.
    assert_ne!(cell(&cells, "gcl.c10").runs[1].keys.as_ref().unwrap().stage1, gcl.keys.as_ref().unwrap().stage1);
}

#[test]
fn equal_settings_written_differently_give_the_same_keys() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.toml", "[columns.c]\ndataset = { name = 'synthetic', imbalance = 10 }\n[rows.r]\nstage1 = { lr = 0.1, epochs = 200 }\n");
    let b = write(
        dir.path(),
        "b.toml",
        "[defaults]\ndataset.imbalance = 10.0\n[columns.c]\n[columns.c.dataset]\nname = \"synthetic\"\n[rows.r]\nseed = 123\n",
    );
    let ka = &manifest::expand(&manifest::load(&a).unwrap(), Scale::Full, Path::new("/d")).unwrap()[0].runs[0];
    let kb = &manifest::expand(&manifest::load(&b).unwrap(), Scale::Full, Path::new("/d")).unwrap()[0].runs[0];
    assert_eq!(ka.spec, kb.spec);
    assert_eq!(ka.keys.as_ref().unwrap().stage1, kb.keys.as_ref().unwrap().stage1);
}

#[test]
fn smoke_scale_applies_last_and_changes_keys() {
    let m = manifest::load(&fixture("good.toml")).unwrap();
    let full = manifest::expand(&m, Scale::Full, Path::new("/x")).unwrap();
    let smoke = manifest::expand(&m, Scale::Smoke, Path::new("/x")).unwrap();
    let f = &cell(&full, "gcl.c100").runs[0];
    let s = &cell(&smoke, "gcl.c100").runs[0];
    assert_eq!(s.spec.stage1.optim.epochs, 2, "smoke overrides even the cell's 300 epochs");
    assert_eq!(s.spec.scale, Scale::Smoke);
    assert_eq!(s.spec.stage2, None, "smoke never adds a stage 2");
    assert_ne!(f.keys.as_ref().unwrap().stage1, s.keys.as_ref().unwrap().stage1);
    assert_eq!(cell(&smoke, "gcl_crt.c10").runs[0].spec.stage2.as_ref().unwrap().optim.epochs, 1);
}

#[test]
fn quickstart_and_every_experiment_manifest_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
    // experiments/ is part of the repository: its absence is a failure, not a reason to skip.
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut n = 0;
    for e in entries {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            let m = manifest::load(&p).unwrap_or_else(|e| panic!("{}:\n{e:#}", p.display()));
            let (cells, runs) = manifest::summary(&m).unwrap();
            assert!(cells > 0 && runs > 0, "{}", p.display());
            manifest::expand(&m, Scale::Smoke, Path::new("/x")).unwrap();
            n += 1;
        }
    }
    assert!(n > 0, "no manifest (*.toml) in {}", dir.display());
    eprintln!("validated {n} manifest(s) in experiments/");
}

/// Seeds per cell: a count from the cell's `seed` (default 3 at full scale, 1 at smoke scale), a
/// list as given, `smoke_seeds`, and `--seeds N` (`override_seed_count`) at both scales.
#[test]
fn seed_counts_lists_and_the_command_line_override() {
    let dir = tempfile::tempdir().unwrap();
    let table = "[columns.c]\ndataset = { name = 'synthetic' }\n[rows.r]\n[rows.s]\nseed = 7\n";
    let seeds_of = |head: &str, scale: Scale, flag: Option<usize>| -> Result<Vec<Vec<u64>>, String> {
        let mut m = manifest::load(&write(dir.path(), "m.toml", &format!("[manifest]\n{head}\n{table}"))).unwrap();
        if let Some(n) = flag {
            m.override_seed_count(n).map_err(|e| format!("{e:#}"))?;
        }
        let cells = manifest::expand(&m, scale, Path::new("/x")).unwrap();
        Ok(cells.iter().map(|c| c.runs.iter().map(|r| r.seed).collect()).collect())
    };
    // No key: 3 seeds from 123 (a row's `seed` moves the start) at full scale, 1 at smoke scale.
    assert_eq!(seeds_of("", Scale::Full, None).unwrap(), [vec![123, 124, 125], vec![7, 8, 9]]);
    assert_eq!(seeds_of("", Scale::Smoke, None).unwrap(), [vec![123], vec![7]]);
    assert_eq!(seeds_of("seeds = 2\nsmoke_seeds = 2", Scale::Smoke, None).unwrap(), [vec![123, 124], vec![7, 8]]);
    // --seeds replaces the count at both scales.
    assert_eq!(seeds_of("seeds = 5", Scale::Full, Some(2)).unwrap(), [vec![123, 124], vec![7, 8]]);
    assert_eq!(seeds_of("", Scale::Smoke, Some(2)).unwrap(), [vec![123, 124], vec![7, 8]]);

    // A list: exactly these seeds, at smoke scale too unless `smoke_seeds` says how many; `seed`
    // may not be set beside it.
    let list_table = "[columns.c]\ndataset = { name = 'synthetic' }\n[rows.r]\n";
    let list = |head: &str, scale: Scale, flag: Option<usize>| {
        let mut m = manifest::load(&write(dir.path(), "l.toml", &format!("[manifest]\n{head}\n{list_table}"))).unwrap();
        if let Some(n) = flag {
            m.override_seed_count(n).map_err(|e| format!("{e:#}"))?;
        }
        Ok::<Vec<u64>, String>(
            manifest::expand(&m, scale, Path::new("/x")).unwrap()[0].runs.iter().map(|r| r.seed).collect(),
        )
    };
    assert_eq!(list("seeds = [9, 4, 6]", Scale::Smoke, None).unwrap(), [9, 4, 6]);
    assert_eq!(list("seeds = [9, 4, 6]\nsmoke_seeds = 1", Scale::Smoke, None).unwrap(), [9]);
    assert_eq!(list("seeds = [9, 4, 6]\nsmoke_seeds = 1", Scale::Full, None).unwrap(), [9, 4, 6]);
    assert_eq!(list("seeds = [9, 4, 6]", Scale::Full, Some(2)).unwrap(), [9, 4]);
    let err = list("seeds = [9, 4]", Scale::Full, Some(3)).unwrap_err();
    assert!(
        err.ends_with(
            "l.toml lists only 2 seed(s) in `seeds` ([9, 4]); pass --seeds 2 or fewer, or list more seeds there"
        ),
        "{err}"
    );
    assert!(err.starts_with("--seeds 3: "), "{err}");
}

/// Seed 123 of a count is the run a one-seed table made: same settings, same keys.
#[test]
fn the_first_seed_of_a_count_keeps_the_keys_of_a_single_seed_table() {
    let dir = tempfile::tempdir().unwrap();
    let body = "[columns.c]\ndataset = { name = 'synthetic' }\n[rows.r]\nstage2 = {}\n";
    let first = |head: &str| {
        let m = manifest::load(&write(dir.path(), "k.toml", &format!("[manifest]\n{head}\n{body}"))).unwrap();
        manifest::expand(&m, Scale::Full, Path::new("/d")).unwrap()[0].runs[0].clone()
    };
    let (single, counted) = (first("seeds = [123]"), first(""));
    assert_eq!(single.spec, counted.spec);
    assert_eq!(single.keys, counted.keys);
}

/// Each seed's stage-2 runs are built on that seed's stage-1 run, which the stage-1-only row of
/// the same settings shares: one stage-1 node per seed in the run graph.
#[test]
fn each_seed_of_a_stage2_row_reuses_that_seeds_stage1() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "t.toml",
        "[manifest]\nseeds = 3\n[defaults]\ndataset = { name = 'synthetic' }\nstage1 = { loss = { kind = 'gcl' } }\n\
         [columns.c]\n[rows.gcl]\n[rows.crt]\nstage2 = {}\n[rows.lws]\nstage2 = { rebalance = { method = 'lws' } }\n",
    );
    let graph =
        gcl_repro::pipeline::RunGraph::build(&[path], Scale::Full, &Default::default(), Path::new("/d")).unwrap();
    let cells = &graph.manifests[0].cells;
    for i in 0..3 {
        let keys = |row: &str| cell(cells, &format!("{row}.c")).runs[i].keys.clone().unwrap();
        let (gcl, crt, lws) = (keys("gcl"), keys("crt"), keys("lws"));
        assert_eq!((&crt.stage1, &lws.stage1), (&gcl.stage1, &gcl.stage1), "seed {i}: stage 2 on this seed's stage 1");
        let parent = |k: &str| graph.node(k).unwrap().parent().unwrap().to_string();
        assert_eq!(
            (parent(crt.stage2.as_ref().unwrap()), parent(lws.stage2.as_ref().unwrap())),
            (gcl.stage1.clone(), gcl.stage1.clone())
        );
    }
    // 3 seeds: 3 stage-1 runs, each with its cRT and LWS stage 2.
    let stage1: Vec<_> = graph.nodes.iter().filter(|n| n.parent().is_none()).collect();
    assert_eq!((stage1.len(), graph.nodes.len()), (3, 9));
    assert_eq!(stage1.iter().map(|n| n.spec.seed).collect::<Vec<_>>(), [123, 124, 125]);
}
