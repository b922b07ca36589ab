//! Validation errors: one line per problem, `FILE:LINE:COL: message`, in file order, naming the
//! key, its table and the allowed keys or values. Paths are relative to the crate root (cargo
//! runs integration tests from there), so the expected lines are exactly what a user sees.
use gcl_repro::manifest;
use std::path::Path;

fn errors(name: &str) -> Vec<String> {
    let path = format!("tests/fixtures/manifests/{name}");
    let err = manifest::load(Path::new(&path)).expect_err("the fixture is invalid");
    format!("{err:#}").lines().map(str::to_string).collect()
}

#[test]
fn unknown_keys_and_bad_values_name_line_key_and_allowed() {
    let expected = [
        "tests/fixtures/manifests/bad_keys.toml:4:1: `shots` in [manifest] must be true or false, not a string",
        "tests/fixtures/manifests/bad_keys.toml:7:12: invalid value \"ten\" for `epochs` in [defaults.stage1]; expected a non-negative integer, found string \"ten\"",
        "tests/fixtures/manifests/bad_keys.toml:8:1: `scale` in [defaults] is not a manifest setting: choose it with `--scale smoke|full` (smoke settings go in [manifest.smoke])",
        "tests/fixtures/manifests/bad_keys.toml:11:13: invalid value \"cifar11\" for `name` in [columns.c10.dataset]; expected one of cifar10, cifar100, synthetic, imagenet_lt, places_lt, inat2018",
        "tests/fixtures/manifests/bad_keys.toml:15:1: unknown key `sampeler` in [rows.gcl.stage2]; did you mean `sampler`? (allowed: rebalance, epochs, batch_size, lr, momentum, weight_decay, schedule, warmup_epochs, milestones, lr_decay, warmup_start, nesterov, loss, sampler, mixup, mixup_alpha, shift_bn, from_checkpoint)",
        "tests/fixtures/manifests/bad_keys.toml:17:1: invalid value \"cbenn\" for `kind` in [rows.gcl.stage2.sampler]; expected one of ib, cb, en, cben, class_aware, reversed",
        "tests/fixtures/manifests/bad_keys.toml:20:1: unknown key `labl` in [rows.ce]; did you mean `label`? (allowed: dataset, model, stage1, stage2, seed, cpu, data_parallel, label, quoted, published, published_row, columns, recipe)",
        "tests/fixtures/manifests/bad_keys.toml:21:1: `stage2` in [rows.ce] must be a table or `false` (no stage 2), not a boolean; allowed keys: rebalance, epochs, batch_size, lr, momentum, weight_decay, schedule, warmup_epochs, milestones, lr_decay, warmup_start, nesterov, loss, sampler, mixup, mixup_alpha, shift_bn, from_checkpoint",
        "tests/fixtures/manifests/bad_keys.toml:22:7: invalid value \"cosine\" for `head` in [rows.ce.model]; expected one of linear, normed",
    ];
    assert_eq!(errors("bad_keys.toml"), expected);
}

#[test]
fn dangling_references_and_inconsistent_rows() {
    let expected = [
        "tests/fixtures/manifests/bad_refs.toml:3:43: no table `tinny` in tests/fixtures/manifests/paper-tables.toml; did you mean `tiny`? (known: tiny)",
        "tests/fixtures/manifests/bad_refs.toml:9:1: `seed` conflicts with the list `seeds` in [manifest], which sets the seed of every run; remove one of them, or make `seeds` a count (`seeds = 3` runs `seed`, `seed` + 1, `seed` + 2)",
        "tests/fixtures/manifests/bad_refs.toml:10:15: no column `c11`; did you mean `c10`? (known: c10)",
        "tests/fixtures/manifests/bad_refs.toml:12:7: quoted row `tde` has no published values; add `published = { column = value }` or a published table",
        "tests/fixtures/manifests/bad_refs.toml:14:1: row `tde` is quoted (published values only, no training) but sets `stage1`; remove the settings or set `quoted = false`",
        "tests/fixtures/manifests/bad_refs.toml:16:7: row `only_c100` is not quoted but has no cell to train (all its cells are skipped or outside its `columns`)",
        "tests/fixtures/manifests/bad_refs.toml:17:12: no column `c100`; did you mean `c10`? (known: c10)",
        "tests/fixtures/manifests/bad_refs.toml:22:8: no row `gcl` (known: ce, tde, only_c100)",
        "tests/fixtures/manifests/bad_refs.toml:26:10: figure `tsne` shows stage 2 of cell `ce.c10`, which has no stage 2",
        "tests/fixtures/manifests/bad_refs.toml:26:20: figure `tsne` shows cell `tde.c10`, which has no runs (quoted or skipped)",
        "tests/fixtures/manifests/bad_refs.toml:26:31: no cell `ce.c1O`; did you mean `ce.c10`? (known: ce.c10, tde.c10, only_c100.c10)",
        "tests/fixtures/manifests/bad_refs.toml:27:20: invalid value \"val\" for `splits` in [figures.tsne]; expected one of train, test",
        "tests/fixtures/manifests/bad_refs.toml:33:1: `splits` applies to t-SNE figures only (kind = \"tsne\")",
    ];
    assert_eq!(errors("bad_refs.toml"), expected);
}

#[test]
fn missing_published_row_has_a_did_you_mean() {
    assert_eq!(
        errors("bad_published.toml"),
        ["tests/fixtures/manifests/bad_published.toml:7:1: no row `gcll` in the published table; did you mean `gcl`? (known: ce, tde, gcl)"]
    );
}

#[test]
fn toml_syntax_errors_and_duplicate_ids_have_a_position() {
    assert_eq!(
        errors("bad_syntax.toml"),
        ["tests/fixtures/manifests/bad_syntax.toml:4:1: invalid table header: duplicate key `ce` in table `rows`"]
    );
}

#[test]
fn inline_manifest_edge_cases() {
    let dir = tempfile::tempdir().unwrap();
    let check = |text: &str, want: &str| {
        let p = dir.path().join("m.toml");
        std::fs::write(&p, text).unwrap();
        let err = format!("{:#}", manifest::load(&p).expect_err(text));
        let want = format!("{}:{want}", p.display());
        assert!(err.lines().any(|l| l == want), "want {want}\ngot:\n{err}");
    };
    check("[rows.ce]\n", "1:1: the manifest has no columns: add at least one [columns.ID] table");
    check("[columns.c]\n[rows]\n", "2:2: [rows] is empty: add at least one [rows.ID] table");
    check("[columns.c]\n[rows.r]\n[figure.f]\n", "3:2: unknown key `figure` in the top level; did you mean `figures`? (allowed: manifest, defaults, recipes, columns, rows, cells, sweep, figures)");
    // Recipes: a source is required, names are checked per cell (with `{column}` filled in).
    check("[recipes.x]\nstage1 = { epochs = 3 }\n[columns.c]\n[rows.r]\n", "1:10: recipe `x` has no `source`: name the released file(s) it follows, e.g. source = \"owner/repo path/to/script.py\"");
    check(
        "[recipes.gcl_c]\nsource = \"s\"\n[columns.c]\n[columns.d]\n[rows.r]\nrecipe = \"gcl_{column}\"\n",
        "6:1: no recipe (cell r.d) `gcl_d`; did you mean `gcl_c`? (known: gcl_c)",
    );
    check(
        "[recipes.x]\nsource = \"s\"\n[columns.c]\n[rows.r]\nquoted = true\npublished = { c = 1.0 }\nrecipe = \"x\"\n",
        "7:1: row `r` is quoted (nothing is trained) but names a `recipe`; remove it",
    );
    // A model setting that cannot be built is one error naming the cell and the setting.
    let p = dir.path().join("freeze.toml");
    std::fs::write(&p, "[recipes.x]\nsource = \"s\"\nmodel = { arch = \"resnet152\", freeze = [\"layer9\"] }\n[columns.c]\n[rows.r]\nrecipe = \"x\"\n").unwrap();
    let err = format!("{:#}", manifest::load(&p).unwrap_err());
    assert!(err.contains("cell r.c: model.freeze: `layer9` is not a part of this Resnet152 backbone (after drop_blocks = 0); name one of conv1, bn1, layer1, layer2, layer3, layer4; or a block such as `layer1.0`"), "{err}");
    check(
        "[columns.\"a.b\"]\n[rows.r]\n",
        "1:10: column id `a.b` may only use letters, digits, `_` and `-` (cells are named row.column)",
    );
    check(
        "[manifest]\nseeds = []\n[columns.c]\n[rows.r]\n",
        "2:1: `seeds` in [manifest] is empty; list at least one seed or remove the key (default: 3 seeds)",
    );
    check("[manifest.smoke]\nseed = 3\n[columns.c]\n[rows.r]\n", "2:1: `seed` in [manifest.smoke] would make smoke runs use other seeds than the table; set `seeds` in [manifest]");
    check(
        "[columns.c]\n[rows.r]\n[cells.\"r.c\"]\nskip = true\n",
        "2:7: row `r` is not quoted but has no cell to train (all its cells are skipped or outside its `columns`)",
    );
    check("[columns.c]\n[rows.r]\nstage1 = { loss = { kind = \"gcl\", nois_mul = 1 } }\n", "3:35: unknown key `nois_mul` in [rows.r.stage1.loss]; did you mean `noise_mul`? (the settings of kind = \"gcl\": kind, scale, noise_mul, noise_std, margin, cloud, focal_gamma)");
    // A setting of another loss, in a table that names its kind: the kind's own settings.
    check(
        "[columns.c]\n[rows.r]\nstage1 = { loss = { kind = \"ce\", noise_mul = 1 } }\n",
        "3:34: unknown key `noise_mul` in [rows.r.stage1.loss] (the settings of kind = \"ce\": kind, scale)",
    );
    // Without a kind in the table, any loss's setting passes this check (the kind may come from
    // another fragment); a lone value is still checked against a loss that has it.
    check(
        "[columns.c]\n[rows.r]\nstage1 = { loss = { noise_mul = \"x\" } }\n",
        "3:21: invalid value \"x\" for `noise_mul` in [rows.r.stage1.loss]; expected a number, found string \"x\"",
    );
    check("[columns.c]\n[rows.r]\nstage2 = { rebalance = { method = \"tau_nrom\" } }\n", "3:26: invalid value \"tau_nrom\" for `method` in [rows.r.stage2.rebalance]; expected one of crt, lws, tau_norm, crt_lws");
}

#[test]
fn seed_counts_and_tolerance_are_checked_with_their_position() {
    let dir = tempfile::tempdir().unwrap();
    let errors_of = |head: &str| {
        let p = dir.path().join("m.toml");
        std::fs::write(&p, format!("[manifest]\n{head}\n[columns.c]\n[rows.r]\n")).unwrap();
        let err = format!("{:#}", manifest::load(&p).expect_err(head));
        err.replace(&format!("{}:", p.display()), "")
    };
    assert_eq!(
        errors_of("tolerance = -0.5"),
        "2:1: `tolerance` in [manifest] must be a finite number >= 0 (points of top-1 accuracy), not -0.5"
    );
    assert_eq!(
        errors_of("tolerance = \"1\""),
        "2:1: `tolerance` in [manifest] must be a number of points (e.g. 1.0), not a string"
    );
    assert_eq!(
        errors_of("tolerance = nan"),
        "2:1: `tolerance` in [manifest] must be a finite number >= 0 (points of top-1 accuracy), not NaN"
    );
    assert_eq!(
        errors_of("seeds = 0"),
        "2:1: `seeds` in [manifest] must be a number of seeds (an integer >= 1, e.g. 3) or a list of seeds like [123, 124], not 0"
    );
    assert_eq!(
        errors_of("smoke_seeds = 0"),
        "2:1: `smoke_seeds` in [manifest] must be an integer >= 1 (how many seeds run at smoke scale), not 0"
    );
    assert_eq!(
        errors_of("seeds = [1, 2]\nsmoke_seeds = 3"),
        "3:1: `smoke_seeds = 3` asks for more seeds than `seeds` lists (2); smoke scale runs the first `smoke_seeds` of them"
    );
    // A count starts at the cell's `seed`, so the two go together.
    let p = dir.path().join("ok.toml");
    std::fs::write(&p, "[manifest]\nseeds = 2\nsmoke_seeds = 2\ntolerance = 0\n[columns.c]\n[rows.r]\nseed = 7\n")
        .unwrap();
    let m = manifest::load(&p).unwrap();
    assert_eq!((m.seeds.clone(), m.smoke_seeds, m.tolerance), (manifest::Seeds::Count(2), Some(2), 0.0));
}

#[test]
fn validate_command_prints_ok_or_errors_and_exit_status() {
    let bin = env!("CARGO_BIN_EXE_gcl-repro");
    let out = std::process::Command::new(bin)
        .args(["validate", "tests/fixtures/manifests/good.toml", "experiments/quickstart.toml"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert_eq!(
        text,
        "ok tests/fixtures/manifests/good.toml (9 cells, 16 runs)\nok experiments/quickstart.toml (4 cells, 12 runs)\n"
    );
    let out = std::process::Command::new(bin)
        .args([
            "validate",
            "tests/fixtures/manifests/good.toml",
            "tests/fixtures/manifests/bad_published.toml",
            "tests/fixtures/manifests/good.toml",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[1].starts_with("tests/fixtures/manifests/bad_published.toml:7:1: no row `gcll`"), "{text}");
    assert!(lines[2].contains("duplicate manifest name `tiny`"), "{text}");
}
