//! One rule shrinks the released stage-1 schedule (`training::lr_schedule::compress`), and every
//! manifest that shrinks it follows the rule: the quick start at full scale and every table's
//! smoke scale. A cell whose stage 1 runs the step schedule with fewer epochs than the released
//! 200 must have the rule's warm-up and milestones, so no row gets a gentler schedule than another.
use gcl_repro::manifest;
use gcl_repro::training::lr_schedule::{compress, RELEASED_EPOCHS};
use gcl_repro::training::spec::LrSchedule;
use gcl_repro::training::spec::Scale;
use std::path::Path;

fn checked_cells(file: &str, scale: Scale) -> usize {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments").join(file);
    let m = manifest::load(&path).unwrap();
    let cells = manifest::expand(&m, scale, Path::new("/nonexistent-data-root")).unwrap();
    let mut checked = 0;
    for cell in &cells {
        for run in &cell.runs {
            let s1 = &run.spec.stage1;
            if s1.optim.schedule != LrSchedule::WarmupStep || s1.optim.epochs >= RELEASED_EPOCHS {
                continue;
            }
            let rule = compress(s1.optim.epochs);
            assert_eq!(
                (s1.optim.warmup_epochs, &s1.optim.milestones),
                (rule.warmup_epochs, &rule.milestones),
                "{file} at {scale:?} scale, cell {}: {} epochs shrink to warm-up {} and milestones {:?}",
                cell.id(),
                s1.optim.epochs,
                rule.warmup_epochs,
                rule.milestones
            );
            checked += 1;
        }
    }
    checked
}

#[test]
fn the_quick_start_follows_the_rule() {
    assert!(checked_cells("quickstart.toml", Scale::Full) >= 12, "every quick-start run is a shrunk schedule");
}

#[test]
fn every_smoke_scale_follows_the_rule() {
    let mut checked = 0;
    for file in
        ["table1.toml", "table2.toml", "table3.toml", "table4.toml", "table5.toml", "figures.toml", "quickstart.toml"]
    {
        checked += checked_cells(file, Scale::Smoke);
    }
    assert!(checked > 30, "only {checked} smoke runs checked");
}
