//! The names of the files in a run directory (`<cache>/runs/<key>/`, `<cache>/partial/<key>/`),
//! owned by the cache: training writes them, the cache checks and moves them, the report reads
//! them.

/// The resolved settings of the run.
pub const SPEC: &str = "spec.toml";
/// The canonical material the run's key is the SHA-256 of.
pub const KEY_MATERIAL: &str = "key.json";
/// The run's result (`metrics::RunResult`).
pub const METRICS: &str = "metrics.json";
/// SHA-256 of every file of a finished run, for `cache verify`.
pub const HASHES: &str = "files.sha256";
/// A run in progress: its tensors, momentum buffers and records after the last complete epoch.
pub const CHECKPOINT: &str = "checkpoint.safetensors";
/// The final weights.
pub const FINAL_MODEL: &str = "model.safetensors";
/// The weights of the epoch with the best test top-1.
pub const BEST_MODEL: &str = "best.safetensors";
/// Stage 1: features of the train and test splits.
pub const EMBEDDINGS: &str = "embeddings.safetensors";
/// One record per epoch (JSON lines).
pub const LOG: &str = "log.jsonl";
/// The job file of a run planned by another process (`pipeline::worker`), in its partial
/// directory; removed when the run is committed, never exported (the importer plans anew).
pub const JOB_FILE: &str = "worker.json";
/// Written into a run imported from an archive exported `--without-embeddings` (never part of
/// `files.sha256`): its embeddings are not here.
pub const EMBEDDINGS_OMITTED: &str = "embeddings-omitted";
/// Written into a run imported without weights (`cache export --without-weights`; never part
/// of `files.sha256`).
pub const WEIGHTS_OMITTED: &str = "weights-omitted";
