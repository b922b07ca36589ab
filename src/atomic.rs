//! Files written so that a reader, a resumed run or a crash sees the old file or the new one,
//! never a torn one: the bytes go to a temporary name beside the target, are fsync'd, and the
//! temporary file is renamed over the target (a rename within a directory is atomic on POSIX).
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// The temporary name beside `path` (hidden, and unique to this process).
fn temporary(path: &Path) -> Result<PathBuf> {
    let dir = path.parent().with_context(|| format!("{} has no directory", path.display()))?;
    let name = path.file_name().with_context(|| format!("{} has no file name", path.display()))?;
    Ok(dir.join(format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id())))
}

/// Write `bytes` to `path` atomically (creating its directory).
pub fn write(path: &Path, bytes: impl AsRef<[u8]>) -> Result<()> {
    write_with(path, |tmp| std::fs::write(tmp, bytes.as_ref()).with_context(|| format!("writing {}", tmp.display())))
}

/// Let `fill` write the file at the temporary path it is given (for writers that take a path,
/// such as safetensors), then make it `path` atomically. On error the temporary file is removed.
pub fn write_with(path: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = temporary(path)?;
    let done = fill(&tmp).and_then(|()| {
        // fsync before the rename so a power cut cannot leave a renamed but empty file.
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
    });
    if done.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_files_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/report.md");
        write(&p, "first").unwrap();
        write(&p, "second, longer").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "second, longer");
        let names: Vec<_> =
            std::fs::read_dir(dir.path().join("sub")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["report.md"]);
    }

    #[test]
    fn a_failed_fill_keeps_the_old_file_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.bin");
        write(&p, "old").unwrap();
        let err = write_with(&p, |tmp| {
            std::fs::write(tmp, "half")?;
            anyhow::bail!("writer failed")
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "writer failed");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
