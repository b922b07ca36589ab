//! Damaged or mismatched files on disk are one error naming the file and the way out, never a
//! panic: a run's checkpoint (wrong shape, truncated, garbage, an optimiser state missing a
//! buffer or holding a wrong one) and a stage-1 run's weights under stage 2.
use gcl_repro::config::{Arch, DatasetName, DatasetSpec, Head, LossSpec, RunSpec, Stage2Spec};
use gcl_repro::losses::Ce;
use gcl_repro::training::{self, RunEnv, Silent};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::OnceLock;
use tch::{Device, Tensor};

/// A shared, fixed place for what the tests below train once (cargo's scratch for tests).
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("corrupt_files").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// ---- checkpoints (library calls) ------------------------------------------------------------

fn spec(epochs: usize) -> RunSpec {
    let mut s = RunSpec::default();
    s.dataset = DatasetSpec { name: DatasetName::Synthetic, classes: 4, max_per_class: 32, imbalance: 4.0, test_per_class: 8, ..DatasetSpec::default() };
    s.model.arch = Arch::ResnetSmall;
    s.model.head = Head::Linear;
    s.stage1.loss = LossSpec::Ce(Ce::default());
    s.stage1.epochs = epochs;
    s.stage1.batch_size = 32;
    s.stage1.warmup_epochs = 0;
    s.stage1.milestones = vec![];
    s.cpu.threads = Some(1);
    s
}

fn data() -> gcl_repro::data::Data {
    gcl_repro::data::load(&spec(1).dataset, Path::new("/nonexistent")).unwrap().into()
}

/// A stage-1 run trained for one epoch: its directory holds `checkpoint.safetensors` (with
/// momentum buffers) and `model.safetensors`.
fn stage1_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = scratch("stage1");
        let stop = AtomicBool::new(false);
        training::run_stage1(&spec(1), &data(), "s1", &RunEnv { device: Device::Cpu, dir: dir.clone(), stop: &stop, observer: &Silent }).unwrap();
        dir
    })
}

/// A run directory holding the trained checkpoint after `damage`; the error of resuming it.
fn resume_after(damage: impl FnOnce(&Path)) -> (PathBuf, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join(training::CHECKPOINT);
    std::fs::copy(stage1_dir().join(training::CHECKPOINT), &ck).unwrap();
    damage(&ck);
    let stop = AtomicBool::new(false);
    let env = RunEnv { device: Device::Cpu, dir: dir.path().to_path_buf(), stop: &stop, observer: &Silent };
    let err = training::run_stage1(&spec(2), &data(), "s1", &env).expect_err("a damaged checkpoint must not resume");
    (ck, format!("{err:#}"), dir)
}

/// Rewrite the safetensors file `path` with `edit` applied to its tensors.
fn edit_tensors(path: &Path, edit: impl FnOnce(&mut Vec<(String, Tensor)>)) {
    let mut named = Tensor::read_safetensors(path).unwrap();
    edit(&mut named);
    Tensor::write_safetensors(&named, path).unwrap();
}

/// Give tensor `name` of the file at `path` another shape (one more row); what loading it
/// should then say.
fn reshape(path: &Path, name: &str) -> String {
    let mut said = String::new();
    edit_tensors(path, |named| {
        let slot = named.iter_mut().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no tensor {name}"));
        let old = slot.1.size();
        let mut new = old.clone();
        new[0] += 1;
        slot.1 = Tensor::zeros(new.as_slice(), (slot.1.kind(), Device::Cpu));
        said = format!("tensor `{name}` has shape {new:?}, the model expects {old:?}");
    });
    said
}

fn assert_names_checkpoint(ck: &Path, err: &str, problem: &str) {
    assert!(err.contains(&ck.display().to_string()), "the error does not name the file: {err}");
    assert!(err.contains(problem), "the error does not say `{problem}`: {err}");
    let fix = format!("delete the run's partial directory {} to restart it", ck.parent().unwrap().display());
    assert!(err.contains(&fix), "the error does not say how to start over: {err}");
}

#[test]
fn a_checkpoint_tensor_of_another_shape_is_an_error() {
    let mut problem = String::new();
    let (ck, err, _dir) = resume_after(|ck| problem = reshape(ck, "head.linear.weight"));
    assert_names_checkpoint(&ck, &err, &problem);
}

#[test]
fn a_truncated_or_garbage_checkpoint_is_an_error() {
    let (ck, err, _dir) = resume_after(|ck| {
        let bytes = std::fs::read(ck).unwrap();
        std::fs::write(ck, &bytes[..bytes.len() / 2]).unwrap();
    });
    assert_names_checkpoint(&ck, &err, "is not a readable safetensors file");
    let (ck, err, _dir) = resume_after(|ck| std::fs::write(ck, b"not a checkpoint at all").unwrap());
    assert_names_checkpoint(&ck, &err, "is not a readable safetensors file");
    let (ck, err, _dir) = resume_after(|ck| edit_tensors(ck, |named| named.retain(|(n, _)| n != "__state_json__")));
    assert_names_checkpoint(&ck, &err, "has no `__state_json__` record");
}

/// Every parameter has a momentum buffer after one epoch; `momentum.0` is the first's.
#[test]
fn an_optimiser_state_with_a_missing_or_wrong_buffer_is_an_error() {
    let (ck, err, _dir) = resume_after(|ck| edit_tensors(ck, |named| named.retain(|(n, _)| n != "momentum.0")));
    assert_names_checkpoint(&ck, &err, "it has no tensor `momentum.0`");
    let mut problem = String::new();
    let (ck, err, _dir) = resume_after(|ck| problem = reshape(ck, "momentum.0"));
    assert_names_checkpoint(&ck, &err, &problem);
    let (ck, err, _dir) = resume_after(|ck| {
        edit_tensors(ck, |named| {
            let m0 = named.iter().find(|(n, _)| n == "momentum.0").unwrap().1.copy();
            named.push(("momentum.9999".into(), m0));
        })
    });
    assert_names_checkpoint(&ck, &err, "tensor `momentum.9999` is not a momentum buffer its optimiser state lists");
}

/// Stage 2 loads its stage-1 run's `model.safetensors` from the cache: damaged or written for
/// another network, it is one error naming it and how to re-train that run.
#[test]
fn stage2_on_stage1_weights_that_do_not_fit_is_an_error() {
    let mut s2 = spec(1);
    s2.stage2 = Some(Stage2Spec { epochs: 1, batch_size: 32, ..Stage2Spec::default() });
    // Each damages the weights and returns what the error should say.
    let damages: [fn(&Path) -> String; 2] = [
        |p| reshape(p, "head.linear.bias"),
        |p| {
            std::fs::write(p, b"{}").unwrap();
            "is not a readable safetensors file".into()
        },
    ];
    for damage in damages {
        let parent = tempfile::tempdir().unwrap();
        let weights = parent.path().join(training::FINAL_MODEL);
        std::fs::copy(stage1_dir().join(training::FINAL_MODEL), &weights).unwrap();
        let problem = damage(&weights);
        let (dir, stop) = (tempfile::tempdir().unwrap(), AtomicBool::new(false));
        let env = RunEnv { device: Device::Cpu, dir: dir.path().to_path_buf(), stop: &stop, observer: &Silent };
        let err = format!("{:#}", training::run_stage2(&s2, &data(), "s2", "parentkey", parent.path(), &env).unwrap_err());
        assert!(err.contains(&weights.display().to_string()) && err.contains(&problem), "{err}");
        assert!(err.contains("--force --only parentkey"), "{err}");
    }
}
