//! `gcl-repro bench ...`: timings beside a reference measured in the same call, and the
//! fidelity checks against independent PyTorch runs.
use anyhow::Result;
use clap::Subcommand;
use gcl_repro::bench::fidelity::FidelityOptions;
use gcl_repro::models::Arch;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum Command {
    /// Images/s of the JPEG loader against torchvision's DataLoader on the same files.
    Loader(BenchLoaderArgs),
    /// ms/step of the stage-1 training step (ResNet-32 + GCL, batch 64) beside PyTorch eager.
    Step(BenchStepArgs),
    /// images/s of `run`'s training loop (released GCL stage 1 on CIFAR-10-LT: data,
    /// augmentation, mixup, loss, backward, SGD, one evaluation) beside two PyTorch eager
    /// references in alternating rounds: the released DataLoader pipeline and a tensor pipeline.
    Train(BenchTrainArgs),
    /// The eager and the static step (a CUDA graph on CUDA) trained from the same weights:
    /// how far the weights end apart (exit status 1 beyond the tolerance).
    Parity(BenchParityArgs),
    /// Train our engine and an independent PyTorch script (scripts/fidelity_torch.py) on the real
    /// CIFAR-10-LT γ=100 with the released schedule compressed to E epochs, K seeds each, and
    /// compare final top-1 of GCL stage 1, GCL + CBEN cRT and CE (mean ± std, Welch p).
    Fidelity(BenchFidelityArgs),
    /// Our initialisation against the PyTorch script's on CIFAR-10-LT γ=100: step-0 statistics
    /// over many seeds of each, then the first epoch(s) of GCL stage 1 from each init (ours on
    /// one stream, so the pair differs by the init alone) and PyTorch's from its own.
    Init(BenchInitArgs),
    /// Our Barnes-Hut t-SNE against scikit-learn's TSNE on the same synthetic data.
    Tsne {
        /// Number of points (10 Gaussian clusters).
        #[arg(long, default_value_t = 10_000)]
        points: usize,
        /// Dimension of the points.
        #[arg(long, default_value_t = 64)]
        dim: usize,
        /// Threads for both implementations (0 = all cores).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Python with scikit-learn (default: $VIRTUAL_ENV/bin/python, else ./.venv/bin/python, else python3).
        #[arg(long)]
        python: Option<PathBuf>,
        /// The scikit-learn side of the benchmark.
        #[arg(long, default_value = "scripts/bench_tsne_sklearn.py")]
        script: PathBuf,
    },
}

#[derive(clap::Args)]
pub struct BenchLoaderArgs {
    /// Image root (list paths are relative to it).
    #[arg(long)]
    root: PathBuf,
    /// List file (`path label` per line); default with --generate: ROOT/bench_list.txt.
    #[arg(long)]
    list: Option<PathBuf>,
    /// First write N random ~500x375 JPEGs and their list file into ROOT.
    #[arg(long, value_name = "N")]
    generate: Option<usize>,
    /// Timed batches (after one untimed warm-up batch).
    #[arg(long, default_value_t = 20)]
    batches: usize,
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Decoding threads (ours) and DataLoader workers (torchvision); default: all cores.
    #[arg(long)]
    workers: Option<usize>,
    /// Time the evaluation transforms instead of the training ones.
    #[arg(long)]
    eval: bool,
    /// Alternating rounds (ours, torchvision); the median ratio is reported.
    #[arg(long, default_value_t = 1)]
    repeats: usize,
    /// Python with torchvision for the reference (default $VIRTUAL_ENV/bin/python, else ./.venv/bin/python, else python3).
    #[arg(long)]
    python: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct BenchFidelityArgs {
    /// Stage-1 epochs (every 200-epoch milestone is scaled by E / 200).
    #[arg(long, default_value_t = 6)]
    epochs: usize,
    /// Seeds per engine (123, 124, ...).
    #[arg(long, default_value_t = 3)]
    seeds: usize,
    /// Where the runs, fidelity.json and fidelity.md go; a rerun resumes finished seeds.
    #[arg(long, default_value = "results/fidelity")]
    out: PathBuf,
    #[command(flatten)]
    torch: TorchSideArgs,
}

/// The PyTorch side of the fidelity checks, and the threads of both engines.
#[derive(clap::Args)]
pub struct TorchSideArgs {
    /// Threads of both engines (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Python with torch 2.11 (default $VIRTUAL_ENV/bin/python, else ./.venv/bin/python, else python3).
    #[arg(long)]
    python: Option<PathBuf>,
    #[arg(long, default_value = "scripts/fidelity_torch.py")]
    script: PathBuf,
}

impl TorchSideArgs {
    /// The options of a check of `epochs` (the compressed schedule) and `seeds`, written to `out`.
    fn options(self, epochs: usize, seeds: usize, out: PathBuf, ctx: &super::Context) -> Result<FidelityOptions> {
        Ok(FidelityOptions {
            epochs,
            seeds,
            data_root: ctx.data_root.clone(),
            device: ctx.device.resolve()?,
            threads: self.threads.unwrap_or_else(all_cores),
            python: gcl_repro::bench::find_python(self.python),
            script: self.script,
            out,
        })
    }
}

#[derive(clap::Args)]
pub struct BenchInitArgs {
    /// The compressed schedule's length (as `bench fidelity --epochs`).
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    /// Epochs of that schedule each run trains.
    #[arg(long, default_value_t = 1)]
    train_epochs: usize,
    /// Seeds of the trained runs (from --first-seed).
    #[arg(long, default_value_t = 6)]
    seeds: usize,
    /// Seeds of each init measured at step 0 (from --first-seed).
    #[arg(long, default_value_t = 20)]
    stat_seeds: usize,
    /// The first seed (126: after `bench fidelity`'s 123-125).
    #[arg(long, default_value_t = 126)]
    first_seed: u64,
    /// Where the runs, init.json and init.md go; a rerun resumes finished runs.
    #[arg(long, default_value = "results/init")]
    out: PathBuf,
    #[command(flatten)]
    torch: TorchSideArgs,
}

#[derive(clap::Args)]
pub struct BenchTrainArgs {
    /// The step: `graph` (the static step; replayed as a CUDA graph on CUDA) or `eager`.
    #[arg(long, value_enum, default_value = "graph")]
    mode: gcl_repro::training::static_step::StepMode,
    /// Timed training steps per side and round (after --warmup untimed ones).
    #[arg(long, default_value_t = 120)]
    steps: usize,
    #[arg(long, default_value_t = 5)]
    warmup: usize,
    /// Alternating rounds (ours, PyTorch released, PyTorch tensor); medians are compared.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Time our loop only.
    #[arg(long)]
    no_torch: bool,
    /// `bf16`: also time our loop with bf16 autocast (`model.precision`), beside fp32 in each round.
    #[arg(long, value_enum, default_value = "fp32")]
    precision: gcl_repro::models::Precision,
    /// Also write bench-train.md and bench-train.json into this directory.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Python with torch 2.11 (and torchvision for the released pipeline).
    #[arg(long)]
    python: Option<PathBuf>,
    #[arg(long, default_value = "scripts/bench_train_torch.py")]
    script: PathBuf,
}

#[derive(clap::Args)]
pub struct BenchParityArgs {
    /// Training steps of each path.
    #[arg(long, default_value_t = 50)]
    steps: usize,
    /// On CUDA: the largest allowed |difference| as a fraction of the largest |weight| (CPU: 0).
    #[arg(long, default_value_t = 1e-3)]
    tolerance: f64,
}

#[derive(clap::Args)]
pub struct BenchStepArgs {
    /// `resnet32` (32 x 32 images, beside the released CIFAR net) or `resnet50` (224 x 224,
    /// beside torchvision's ResNet-50 with the same cosine head).
    #[arg(long, default_value = "resnet32", value_parser = ["resnet32", "resnet50"])]
    arch: String,
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Timed steps (after --warmup untimed ones).
    #[arg(long, default_value_t = 30)]
    steps: usize,
    #[arg(long, default_value_t = 5)]
    warmup: usize,
    /// Alternating rounds (ours, PyTorch); the median ratio is reported.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Python with torch 2.11 for the reference (default $VIRTUAL_ENV/bin/python, else ./.venv/bin/python, else python3).
    #[arg(long)]
    python: Option<PathBuf>,
    /// The PyTorch reference script.
    #[arg(long, default_value = "scripts/torch_step_reference.py")]
    script: PathBuf,
}

pub fn exec(cmd: Command, ctx: &super::Context) -> Result<()> {
    let (device, data_root) = (ctx.device, ctx.data_root.as_path());
    match cmd {
        Command::Fidelity(a) => {
            let opts = a.torch.options(a.epochs, a.seeds, a.out, ctx)?;
            print!("{}", gcl_repro::bench::fidelity::run(&opts)?);
            Ok(())
        }
        Command::Init(a) => {
            let opts = gcl_repro::bench::init::InitOptions {
                fidelity: a.torch.options(a.epochs, a.seeds, a.out, ctx)?,
                train_epochs: a.train_epochs,
                first_seed: a.first_seed,
                stat_seeds: a.stat_seeds,
            };
            print!("{}", gcl_repro::bench::init::run(&opts)?);
            Ok(())
        }
        Command::Loader(a) => loader(a),
        Command::Tsne { points, dim, threads, python, script } => {
            let python = gcl_repro::bench::find_python(python);
            println!("{}", gcl_repro::bench::tsne::bench_against_sklearn(points, dim, threads, &python, &script)?);
            Ok(())
        }
        Command::Train(a) => {
            let b = gcl_repro::bench::train::TrainBench {
                device: device.resolve()?,
                mode: a.mode,
                steps: a.steps,
                warmup: a.warmup,
                rounds: a.rounds,
                data_root: data_root.to_path_buf(),
                python: gcl_repro::bench::find_python(a.python),
                script: a.script,
                no_torch: a.no_torch,
                out: a.out,
                precision: a.precision,
            };
            print!("{}", gcl_repro::bench::train::run(&b)?);
            Ok(())
        }
        Command::Parity(a) => {
            let (report, pass) = gcl_repro::bench::train::parity(device.resolve()?, a.steps, a.tolerance)?;
            print!("{report}");
            if !pass {
                anyhow::bail!("the eager and the static step disagree beyond the tolerance");
            }
            Ok(())
        }
        Command::Step(a) => {
            let device = device.resolve()?;
            let python = gcl_repro::bench::find_python(a.python);
            let arch = if a.arch == "resnet50" { Arch::Resnet50 } else { Arch::Resnet32 };
            let b = gcl_repro::bench::StepBench {
                arch,
                batch: a.batch_size,
                steps: a.steps,
                warmup: a.warmup,
                repeats: a.repeats,
            };
            print!("{}", gcl_repro::bench::step_report(device, &b, &python, &a.script)?);
            Ok(())
        }
    }
}

/// `bench loader`: on the listed images, or on N written first (`--generate N`).
fn loader(a: BenchLoaderArgs) -> Result<()> {
    use gcl_repro::bench::images;
    let list = match (a.generate, a.list) {
        (Some(n), list) => {
            let written = images::generate_images(&a.root, n, 0)?;
            list.unwrap_or(written)
        }
        (None, Some(list)) => list,
        (None, None) => anyhow::bail!("bench loader needs --list FILE, or --generate N to write a benchmark set"),
    };
    let workers = a.workers.unwrap_or_else(all_cores);
    let spec = images::LoaderBench {
        root: a.root,
        list,
        batches: a.batches,
        batch_size: a.batch_size,
        workers,
        train: !a.eval,
        repeats: a.repeats,
        python: a.python,
        script: None,
    };
    print!("{}", images::run(&spec)?);
    Ok(())
}

/// The default of every `--threads`/`--workers`: all cores.
fn all_cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}
