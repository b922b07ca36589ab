//! Data-parallel training over two Gloo ranks on this machine (`data_parallel.ranks = 2`,
//! `distributed`, `training::ranks`), trained through `gcl-repro run` as a user would:
//! - with synchronised BatchNorm the two ranks follow the single-process run at the same global
//!   batch: same per-epoch losses, and final weights as close as float order allows, over 24
//!   steps;
//! - with per-rank BatchNorm each rank normalises with its own half-batch: after one step the
//!   running statistics are those of a single-process forward pass on rank 0's half;
//! - a rank killed mid-run fails the run with one clear error, and the run resumes from its last
//!   epoch.
//!
//! The steps compared are deterministic apart from floating-point order: no augmentation, no
//! mixup, cross-entropy (a rank's random draws would differ from the single process's).
mod common;
use gcl_repro::data::samplers::epoch_indices;
use gcl_repro::models::Network;
use gcl_repro::training::spec::RunSpec;
use gcl_repro::training::{derive_seed, Stream};
use std::path::{Path, PathBuf};
use tch::{Device, Tensor};

/// A synthetic manifest with one row and the given columns (`[columns.NAME]` bodies).
fn manifest(dir: &Path, stage1: &str, (max_per_class, imbalance): (usize, f64), columns: &[(&str, &str)]) -> PathBuf {
    let mut text = format!(
        "[manifest]\ntitle = \"dp\"\nseeds = [3]\n[defaults]\n\
         dataset = {{ name = \"synthetic\", classes = 4, max_per_class = {max_per_class}, imbalance = {imbalance}, test_per_class = 8 }}\n\
         model = {{ arch = \"resnet_small\", head = \"linear\" }}\n\
         stage1 = {{ augment = false, warmup_epochs = 0, milestones = [], {stage1} }}\n\
         cpu = {{ threads = 1 }}\n"
    );
    for (name, body) in columns {
        text.push_str(&format!("[columns.{name}]\nlabel = \"{name}\"\n{body}\n"));
    }
    text.push_str("[rows.ce]\nlabel = \"ce\"\n");
    let path = dir.join("dp.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A finished run: its spec, final tensors by name and per-epoch training losses.
type Finished = (RunSpec, Vec<(String, Tensor)>, Vec<f64>);

/// Every finished run of the cache.
fn runs(cache: &Path) -> Vec<Finished> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(cache.join("runs")).unwrap() {
        let dir = entry.unwrap().path();
        let spec: RunSpec = toml::from_str(&std::fs::read_to_string(dir.join("spec.toml")).unwrap()).unwrap();
        let mut tensors = Tensor::read_safetensors(dir.join("model.safetensors")).unwrap();
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        let losses = std::fs::read_to_string(dir.join("log.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["train_loss"].as_f64().unwrap())
            .collect();
        out.push((spec, tensors, losses));
    }
    out
}

/// The largest difference between two sets of tensors, relative to each tensor's largest
/// magnitude (at least 1e-3, so that tensors near zero do not dominate).
fn gap(a: &[(String, Tensor)], b: &[(String, Tensor)]) -> f64 {
    assert_eq!(a.len(), b.len());
    let mut worst: f64 = 0.0;
    for ((na, ta), (nb, tb)) in a.iter().zip(b) {
        assert_eq!(na, nb);
        let scale = ta.abs().max().double_value(&[]).max(1e-3);
        worst = worst.max((ta - tb).abs().max().double_value(&[]) / scale);
    }
    worst
}

#[test]
fn two_ranks_with_synchronised_batchnorm_follow_the_single_process_run() {
    let dir = tempfile::tempdir().unwrap();
    // 96 + 48 + 24 + 12 = 180 images: 12 steps of 16 per epoch (the last of 4: 2 per rank),
    // 24 steps in all.
    let path = manifest(
        dir.path(),
        "epochs = 2, lr = 0.01, batch_size = 16",
        (96, 8.0),
        &[
            ("one", ""),
            ("one_two_threads", "cpu = { threads = 2 }"),
            ("sync", "data_parallel = { ranks = 2, batchnorm = \"sync\" }"),
            ("per_rank", "data_parallel = { ranks = 2 }"),
        ],
    );
    let cache = dir.path().join("cache");
    common::ok(common::gcl(&cache).arg("run").arg(&path).output().unwrap());
    let runs = runs(&cache);
    assert_eq!(runs.len(), 4);
    let find = |ranks: usize, sync: bool, threads: usize| {
        runs.iter()
            .find(|(s, _, _)| {
                s.data_parallel.ranks == ranks
                    && (s.data_parallel.batchnorm == gcl_repro::distributed::BatchNormSync::Sync) == sync
                    && s.cpu.threads == Some(threads)
            })
            .unwrap()
    };
    let (one, one_t2, sync, per_rank) = (find(1, false, 1), find(1, false, 2), find(2, true, 1), find(2, false, 1));
    // How far float order alone moves this training: the same run with its reductions split
    // over 2 threads instead of 1. Small batches with BatchNorm amplify last-bit differences
    // step by step (about 1e-2 of the weights' scale after 24 steps here), so the ranks, which
    // add the batch's halves and BatchNorm's moments in another order, can be held to that and
    // no tighter. A wrong gradient scale or batch statistic is far outside it: per-rank
    // BatchNorm, which normalises each half alone, ends tens of times farther.
    let floor = gap(&one.1, &one_t2.1).max(1e-6);
    let sync_gap = gap(&one.1, &sync.1);
    assert!(sync_gap < 3.0 * floor, "sync BatchNorm ranks end {sync_gap:e} from one process (float order: {floor:e})");
    let per_rank_gap = gap(&one.1, &per_rank.1);
    assert!(
        per_rank_gap > 10.0 * sync_gap,
        "per-rank BatchNorm ({per_rank_gap:e}) is not told apart from sync ({sync_gap:e})"
    );
    assert_eq!(one.2.len(), 2);
    for (a, b) in one.2.iter().zip(&sync.2) {
        assert!((a - b).abs() < 1e-4 * a.abs(), "epoch losses differ: {:?} vs {:?}", one.2, sync.2);
    }
}

#[test]
fn per_rank_batchnorm_normalises_with_each_ranks_half_batch() {
    let dir = tempfile::tempdir().unwrap();
    // 4 classes of 2 images: one epoch is one step of 8, 4 per rank.
    let columns = [
        ("per_rank", "data_parallel = { ranks = 2 }"),
        ("sync", "data_parallel = { ranks = 2, batchnorm = \"sync\" }"),
    ];
    let path = manifest(dir.path(), "epochs = 1, batch_size = 8, lr = 0.05", (2, 1.0), &columns);
    let cache = dir.path().join("cache");
    common::ok(common::gcl(&cache).arg("run").arg(&path).output().unwrap());
    let runs = runs(&cache);
    let spec = runs[0].0.clone();
    let data: gcl_repro::data::Data = gcl_repro::data::load(&spec.dataset, Path::new("/nonexistent")).unwrap().into();
    assert_eq!(data.train_labels().len(), 8);
    let order = epoch_indices(
        &spec.stage1.sampler,
        &data.train_labels(),
        data.class_counts(),
        Stream::Sampler.seed(derive_seed(spec.seed, 1, 1)),
    );
    let (train, _) = gcl_repro::training::batches::sources(&data, Device::Cpu, false);
    // The running statistics one forward pass in training mode leaves, from the run's initial
    // weights (stage 1 seeds libtorch with the run seed, then builds the network), on `images`.
    let statistics_after = |images: Vec<usize>| {
        let n = images.len();
        let (x, _) = train.batches(images, n, false, 0).next().unwrap().unwrap();
        tch::manual_seed(spec.seed as i64);
        let net = Network::new(&spec.model, data.num_classes() as i64, Device::Cpu);
        let _ = net.features(&x, true);
        running(&net.named_variables())
    };
    // Rank 0 keeps its own statistics (rank 1's are overwritten by rank 0's before each step).
    let rank0_half: Vec<usize> = order.iter().step_by(2).copied().collect();
    let (per_rank, sync) = if runs[0].0.data_parallel.batchnorm == gcl_repro::distributed::BatchNormSync::Sync {
        (&runs[1].1, &runs[0].1)
    } else {
        (&runs[0].1, &runs[1].1)
    };
    let half_gap = gap(&running(per_rank), &statistics_after(rank0_half));
    // One forward pass: only float order differs (the conv's threads, BatchNorm's moments).
    assert!(half_gap < 1e-4, "per-rank statistics are not rank 0's half-batch's: {half_gap:e}");
    // Synchronised: the statistics of the whole batch.
    let whole_gap = gap(&running(sync), &statistics_after(order.clone()));
    assert!(whole_gap < 1e-4, "synchronised statistics are not the whole batch's: {whole_gap:e}");
    assert!(gap(&running(per_rank), &running(sync)) > 1e-3, "the two modes gave the same statistics");
}

/// The BatchNorm running statistics among `named` tensors.
fn running(named: &[(String, Tensor)]) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> =
        named.iter().filter(|(n, _)| n.contains("running_")).map(|(n, t)| (n.clone(), t.shallow_clone())).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// The pid of the rank-`rank` worker training in `cache` (its environment names its rank).
fn rank_pid(cache: &Path, rank: usize) -> Option<i32> {
    let want = format!("RANK={rank}");
    for entry in std::fs::read_dir("/proc").ok()? {
        let path = entry.ok()?.path();
        let Ok(pid) = path.file_name()?.to_string_lossy().parse::<i32>() else { continue };
        let cmdline = std::fs::read(path.join("cmdline")).unwrap_or_default();
        let environ = std::fs::read(path.join("environ")).unwrap_or_default();
        let has = |bytes: &[u8], s: &str| bytes.split(|b| *b == 0).any(|part| part == s.as_bytes());
        if has(&cmdline, "worker") && has(&cmdline, &cache.to_string_lossy()) && has(&environ, &want) {
            return Some(pid);
        }
    }
    None
}

#[test]
fn a_killed_rank_fails_the_run_clearly_and_it_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let path = manifest(
        dir.path(),
        "epochs = 4, batch_size = 8, lr = 0.05",
        (400, 8.0),
        &[("two", "data_parallel = { ranks = 2 }")],
    );
    let cache = dir.path().join("cache");
    let child = common::gcl(&cache).arg("run").arg(&path).stderr(std::process::Stdio::piped()).spawn().unwrap();
    // Wait for the first epoch's checkpoint, then kill rank 1 in the middle of the second.
    let started = std::time::Instant::now();
    let checkpoint = loop {
        let found = std::fs::read_dir(cache.join("partial")).ok().and_then(|mut d| d.next()).map(|e| e.unwrap().path());
        if let Some(p) = found.map(|d| d.join(gcl_repro::training::CHECKPOINT)).filter(|p| p.exists()) {
            break p;
        }
        assert!(started.elapsed().as_secs() < 300, "no checkpoint after 5 minutes");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    let pid = rank_pid(&cache, 1).expect("rank 1 is running");
    // SAFETY: a plain kill of a process this test started (through the runner).
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let out = child.wait_with_output().unwrap();
    let text = common::text(&out);
    assert!(!out.status.success(), "the run went on without rank 1: {text}");
    assert!(text.contains("data-parallel") && text.contains("failed"), "{text}");
    assert!(text.contains("1 failed"), "{text}");
    assert!(checkpoint.exists(), "the last epoch's checkpoint stays for the resume");
    let log = checkpoint.with_file_name(gcl_repro::training::LOG);
    let before: Vec<String> = std::fs::read_to_string(&log).unwrap().lines().map(str::to_string).collect();
    assert!(!before.is_empty() && before.len() < 4, "killed after epoch {} of 4", before.len());
    common::ok(common::gcl(&cache).arg("run").arg(&path).output().unwrap());
    let (_, _, losses) = runs(&cache).pop().unwrap();
    assert_eq!(losses.len(), 4, "all four epochs are recorded once");
    // Resumed, not restarted: the epochs trained before the kill keep their records (their
    // wall-clock seconds included), read back from the checkpoint.
    let key_dir = cache.join("runs").join(checkpoint.parent().unwrap().file_name().unwrap());
    let after = std::fs::read_to_string(key_dir.join(gcl_repro::training::LOG)).unwrap();
    assert!(after.lines().zip(&before).all(|(a, b)| a == b), "the resumed run rewrote its first epochs");
}

#[test]
fn run_data_parallel_trains_every_run_over_the_named_devices() {
    let dir = tempfile::tempdir().unwrap();
    let path = manifest(dir.path(), "epochs = 1, batch_size = 8, lr = 0.05", (8, 2.0), &[("c", "")]);
    let cache = dir.path().join("cache");
    let one = common::text(&common::gcl(&cache).arg("run").arg(&path).arg("--data-parallel").output().unwrap());
    assert!(one.contains("--devices"), "{one}");
    let single = common::gcl(&cache).args(["run", "--devices", "cpu", "--data-parallel"]).arg(&path).output().unwrap();
    assert!(common::text(&single).contains("name two or more"), "{}", common::text(&single));
    common::ok(
        common::gcl(&cache).args(["run", "--devices", "cpu,cpu", "--data-parallel"]).arg(&path).output().unwrap(),
    );
    let runs = runs(&cache);
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].0.data_parallel.ranks, 2, "the run was keyed and trained as two ranks");
    // The same run as `--set data_parallel.ranks=2`: cached, nothing trained.
    let again =
        common::ok(common::gcl(&cache).args(["run", "--set", "data_parallel.ranks=2"]).arg(&path).output().unwrap());
    assert!(again.contains("0 trained, 1 cached"), "{again}");
}
