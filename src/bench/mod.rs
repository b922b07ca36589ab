//! Benchmarks (`gcl-repro bench ...`), each timing the code path users run beside a reference
//! measured in the same call, on the machine it names:
//! - `step`: one training step of ours against PyTorch's (`scripts/bench_step.py`);
//! - `images`: the JPEG loader against torchvision's `DataLoader`;
//! - `tsne`: our t-SNE against scikit-learn's;
//! - `fidelity`: end-to-end training against an independent PyTorch run of the released recipe
//!   (accuracy, not speed; `dynamics` adds each epoch's loss and the stem's scale);
//! - `init`: our initialisation against PyTorch's, at step 0 and over the first epochs.
mod dynamics;
pub mod fidelity;
pub mod images;
pub mod init;
pub mod step;
pub mod train;
pub mod tsne;

pub use step::{find_python, step_report, StepBench};
