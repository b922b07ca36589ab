//! `[sweep]` grids and `--set KEY=VALUE` overrides: the rows and settings they make, the keys
//! they share with existing rows, and their errors (file:line for the manifest, the flag for
//! the command line).
mod common;
use gcl_repro::losses::LossSpec;
use gcl_repro::manifest::{self, Manifest, Overrides, Setting, TableCell};
use gcl_repro::training::spec::Scale;
use std::path::{Path, PathBuf};

/// Two columns; `ce` and `gcl` rows; `gcl` has a cell setting in c100 and a recipe-free
/// stage 2 in `gcl_crt`. `extra` follows.
const BASE: &str = r#"
[manifest]
seeds = 1
[manifest.smoke]
stage1 = { epochs = 2 }
[defaults]
dataset = { name = "synthetic", imbalance = 10, classes = 4, max_per_class = 40, test_per_class = 10 }
stage1 = { epochs = 10 }
[columns.c10]
[columns.c100]
dataset = { imbalance = 100 }
[rows.ce]
label = "CE"
stage1 = { loss = { kind = "ce" } }
[rows.gcl]
label = "GCL"
columns = ["c10", "c100"]
stage1 = { loss = { kind = "gcl", noise_mul = 0.5 } }
[cells."gcl.c100"]
stage1 = { epochs = 20 }
[rows.gcl_crt]
stage1 = { loss = { kind = "gcl" } }
stage2 = { epochs = 3 }
"#;

fn write(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("m.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn load(dir: &Path, extra: &str) -> Manifest {
    let p = write(dir, &format!("{BASE}{extra}"));
    manifest::load(&p).unwrap_or_else(|e| panic!("{e:#}"))
}

fn load_err(dir: &Path, extra: &str) -> String {
    let p = write(dir, &format!("{BASE}{extra}"));
    format!("{:#}", manifest::load(&p).expect_err("accepted"))
}

fn cells(m: &Manifest, scale: Scale) -> Vec<TableCell> {
    manifest::expand(m, scale, Path::new("/nonexistent")).unwrap()
}

fn cell<'a>(cells: &'a [TableCell], id: &str) -> &'a TableCell {
    cells.iter().find(|c| c.id() == id).unwrap_or_else(|| panic!("no cell {id}"))
}

fn noise_mul(c: &TableCell) -> f64 {
    match &c.runs[0].spec.stage1.loss {
        LossSpec::Gcl(g) => g.noise_mul,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_sweep_over_a_row_adds_its_points_after_it_with_the_rows_settings() {
    let dir = tempfile::tempdir().unwrap();
    let m = load(dir.path(), "[sweep]\nrow = \"gcl\"\nstage1.loss.noise_mul = [0.25, 0.5, 1.0]\n");
    let rows: Vec<(&str, &str)> = m.rows.iter().map(|r| (r.id.as_str(), r.label.as_str())).collect();
    assert_eq!(
        rows,
        [
            ("ce", "CE"),
            ("gcl", "GCL"),
            ("gcl-noise_mul-0_25", "GCL (noise_mul = 0.25)"),
            ("gcl-noise_mul-0_5", "GCL (noise_mul = 0.5)"),
            ("gcl-noise_mul-1_0", "GCL (noise_mul = 1.0)"),
            ("gcl_crt", "gcl_crt")
        ]
    );
    let cs = cells(&m, Scale::Full);
    assert_eq!(noise_mul(cell(&cs, "gcl-noise_mul-0_25.c10")), 0.25);
    assert_eq!(noise_mul(cell(&cs, "gcl-noise_mul-1_0.c100")), 1.0);
    // The base row's cell settings come with the point: 20 epochs in c100, 10 in c10.
    assert_eq!(cell(&cs, "gcl-noise_mul-0_25.c100").runs[0].spec.stage1.optim.epochs, 20);
    assert_eq!(cell(&cs, "gcl-noise_mul-0_25.c10").runs[0].spec.stage1.optim.epochs, 10);
    // Keys are content hashes: the point equal to the base row is the base row's run.
    let key = |id: &str| cell(&cs, id).runs[0].keys.clone();
    let summary = manifest::summary(&m).unwrap();
    assert_eq!(summary.0, 6 * 2, "six rows, two columns");
    for c in ["c10", "c100"] {
        assert_eq!(key(&format!("gcl-noise_mul-0_5.{c}")), key(&format!("gcl.{c}")));
        assert_ne!(key(&format!("gcl-noise_mul-0_25.{c}")), key(&format!("gcl.{c}")));
    }
    assert_eq!(m.sweep_point("gcl-noise_mul-1_0").unwrap().describe, "noise_mul = 1.0");
    assert!(m.sweep_point("gcl").is_none());
}

#[test]
fn several_settings_give_their_product_and_a_sweep_without_a_row_starts_from_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let m = load(
        dir.path(),
        "[sweep]\nstage1.lr = [0.1, 0.2]\nstage1.loss = [{ kind = \"ce\" }, { kind = \"gcl\", cloud = \"cos\" }]\n",
    );
    let ids: Vec<&str> = m.rows.iter().map(|r| r.id.as_str()).skip(3).collect();
    assert_eq!(ids, ["lr-0_1-loss-v1", "lr-0_1-loss-v2", "lr-0_2-loss-v1", "lr-0_2-loss-v2"]);
    assert_eq!(m.rows[6].label, "lr = 0.2, loss = { kind = \"gcl\", cloud = \"cos\" }");
    let cs = cells(&m, Scale::Full);
    let spec = &cell(&cs, "lr-0_2-loss-v2.c100").runs[0].spec;
    assert_eq!((spec.stage1.optim.lr, spec.stage1.optim.epochs, spec.dataset.imbalance), (0.2, 10, 100.0));
    assert!(matches!(spec.stage1.loss, LossSpec::Gcl(_)));
    // Smoke scale still applies to sweep rows.
    assert_eq!(cell(&cells(&m, Scale::Smoke), "lr-0_1-loss-v1.c10").runs[0].spec.stage1.optim.epochs, 2);
}

#[test]
fn several_grids_and_figures_of_sweep_cells() {
    let dir = tempfile::tempdir().unwrap();
    let extra = "[[sweep]]\nrow = \"gcl\"\nstage1.lr = [0.3]\n[[sweep]]\nrow = \"ce\"\nstage1.lr = [0.3]\n\
                 [figures.c]\nkind = \"curves\"\ncells = [\"gcl-lr-0_3.c10\", \"ce-lr-0_3.c10\"]\n";
    let m = load(dir.path(), extra);
    let ids: Vec<&str> = m.rows.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["ce", "ce-lr-0_3", "gcl", "gcl-lr-0_3", "gcl_crt"]);
    assert_eq!(m.figures[0].cells.len(), 2);
}

#[test]
fn sweep_errors_name_the_line_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let line = |extra: &str| BASE.lines().count() + extra.lines().position(|l| l.contains('!')).unwrap() + 1;
    let cases: [(&str, &str); 7] = [
        ("[sweep]\nrow = \"gcl\"\nstage1.lr = 0.1 #!\n", "must list the values to try, e.g. [0.1, ...], not one float"),
        (
            "[sweep]\nstage1.epochs = [\n  5,\n  \"ten\", #!\n]\n",
            "invalid value \"ten\" for `epochs` in [sweep.stage1]; expected a non-negative integer",
        ),
        ("[sweep]\nstage1.lrr = [0.1] #!\n", "unknown key `lrr` in [sweep.stage1]; did you mean `lr`?"),
        ("[sweep]\nseed = [1, 2] #!\n", "a sweep does not vary `seed`"),
        ("[sweep]\nrow = \"gcll\" #!\nstage1.lr = [0.1]\n", "no row `gcll`; did you mean `gcl`?"),
        ("[sweep]\nstage1.lr = [] #!\n", "`lr` in [sweep.stage1] lists no values to try"),
        ("[sweep] #!\nrow = \"gcl\"\n", "[sweep] sets no setting to vary"),
    ];
    for (extra, want) in cases {
        let err = load_err(dir.path(), extra);
        assert!(err.contains(want), "{extra}\n{err}");
        assert!(err.contains(&format!("m.toml:{}:", line(extra))), "{extra}: wrong line\n{err}");
    }
    // A generated id that an existing row already has.
    let err =
        load_err(dir.path(), "[rows.gcl-lr-0_1]\nstage1 = { lr = 0.1 }\n[sweep]\nrow = \"gcl\"\nstage1.lr = [0.1]\n");
    assert!(err.contains("would be the row `gcl-lr-0_1`, which already exists"), "{err}");
    // A point whose settings do not resolve (a CE loss with GCL's noise) is reported too.
    let err = load_err(dir.path(), "[sweep]\nrow = \"ce\"\nstage1.loss.noise_mul = [0.1]\n");
    assert!(err.contains("`stage1.loss.noise_mul` is not a setting of kind = \"ce\""), "{err}");
}

fn set(s: &str) -> Setting {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn overridden(dir: &Path, sets: &[&str]) -> Result<Manifest, String> {
    let mut m = load(dir, "");
    let o = Overrides { seeds: None, set: sets.iter().map(|s| set(s)).collect() };
    o.apply(&mut m).map_err(|e| format!("{e:#}"))?;
    Ok(m)
}

#[test]
fn set_wins_over_every_fragment_and_smoke_and_changes_only_cells_that_have_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let plain = cells(&load(dir.path(), ""), Scale::Full);
    let m = overridden(dir.path(), &["stage1.epochs=7", "stage1.loss.noise_mul=2", "stage2.epochs=1"]).unwrap();
    assert_eq!(m.flags, ["--set stage1.epochs=7", "--set stage1.loss.noise_mul=2", "--set stage2.epochs=1"]);
    for scale in [Scale::Full, Scale::Smoke] {
        let cs = cells(&m, scale);
        assert_eq!(cell(&cs, "gcl.c100").runs[0].spec.stage1.optim.epochs, 7, "over the cell's 20 and smoke's 2");
        assert_eq!(noise_mul(cell(&cs, "gcl.c10")), 2.0);
        assert_eq!(
            cell(&cs, "ce.c10").runs[0].spec.stage1.loss,
            cell(&plain, "ce.c10").runs[0].spec.stage1.loss,
            "CE has no noise"
        );
        assert_eq!(cell(&cs, "gcl_crt.c10").runs[0].spec.stage2.as_ref().unwrap().optim.epochs, 1);
        assert!(cell(&cs, "gcl.c10").runs[0].spec.stage2.is_none(), "a stage-2 setting adds no stage 2");
    }
    // A value equal to the manifest's keeps the keys (the run is reused).
    let same = overridden(dir.path(), &["stage1.loss.noise_mul=0.5"]).unwrap();
    assert_eq!(cell(&cells(&same, Scale::Full), "gcl.c10").runs[0].keys, cell(&plain, "gcl.c10").runs[0].keys);
    // Naming the method applies everywhere: every cell becomes CE.
    let ce = overridden(dir.path(), &["stage1.loss={ kind = \"ce\" }"]).unwrap();
    assert!(cells(&ce, Scale::Full).iter().all(|c| matches!(c.runs[0].spec.stage1.loss, LossSpec::Ce(_))));
    // `stage2 = false` removes every stage 2.
    let s1 = overridden(dir.path(), &["stage2=false"]).unwrap();
    assert!(cells(&s1, Scale::Full).iter().all(|c| c.runs[0].spec.stage2.is_none()));
}

#[test]
fn set_errors_name_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let err = overridden(dir.path(), &["stage2.rebalance.tau=2"]).unwrap_err();
    assert!(
        err.starts_with("--set stage2.rebalance.tau=2: no cell of ") && err.contains("has `stage2.rebalance.tau`"),
        "{err}"
    );
    let p = write(dir.path(), &BASE.replace("seeds = 1", "seeds = [5, 6]"));
    let mut m = manifest::load(&p).unwrap();
    let err = format!("{:#}", Overrides { seeds: None, set: vec![set("seed=3")] }.apply(&mut m).unwrap_err());
    assert!(err.contains("--set seed=3:") && err.contains("pass --seeds N"), "{err}");
    // The command line: clap names the flag and the message says what is allowed.
    let out = common::gcl(dir.path())
        .args(["plan"])
        .arg(dir.path().join("m.toml"))
        .args(["--set", "stage1.epoch=3"])
        .output()
        .unwrap();
    let text = common::text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("invalid value 'stage1.epoch=3' for '--set <KEY=VALUE>': unknown key `epoch` in [stage1]; did you mean `epochs`?"), "{text}");
}

#[test]
fn explain_and_plan_show_sweeps_and_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), &format!("{BASE}[sweep]\nrow = \"gcl\"\nstage1.loss.noise_mul = [0.25]\n"));
    let out = common::ok(
        common::gcl(dir.path())
            .arg("explain")
            .arg(&p)
            .arg("gcl-noise_mul-0_25.c10")
            .args(["--set", "stage1.lr=0.3"])
            .output()
            .unwrap(),
    );
    assert!(out.contains("sweep point: noise_mul = 0.25 over row `gcl`"), "{out}");
    assert!(out.contains("changed on the command line: --set stage1.lr=0.3"), "{out}");
    assert!(out.contains("stage1.lr = 0.3") && out.contains("stage1.loss.noise_mul = 0.25"), "{out}");
    let plan =
        common::ok(common::gcl(dir.path()).arg("plan").arg(&p).args(["--set", "stage1.epochs=1"]).output().unwrap());
    assert!(plan.contains("gcl-noise_mul-0_25.c10"), "{plan}");
}
