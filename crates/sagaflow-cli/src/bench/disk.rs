//! The disk under the journal, timed before a run: what one `fdatasync` of a 4 KiB write costs
//! there. Every step waits for at least one, so it bounds what the coordinator can do (at
//! `-c 1`, a `saga-3` waits for four), and it moves between machines and over time: a run's
//! figures read best beside it.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

/// Writes timed: enough for a stable median in ~50–100 ms on a disk like the benchmark's.
const SAMPLES: usize = 200;
const BLOCK_BYTES: usize = 4096;
/// The file's size: the writes cycle over it, so they overwrite as the WAL does.
const FILE_BYTES: usize = 1 << 20;

/// `(p50, p99)` of one 4 KiB write and `fdatasync` in `dir`, in milliseconds.
pub fn fsync_ms(dir: &Path) -> std::io::Result<(f64, f64)> {
    let path = dir.join("sagaflow-bench-fsync.tmp");
    let result = time_syncs(&path);
    let _ = std::fs::remove_file(&path);
    result
}

fn time_syncs(path: &Path) -> std::io::Result<(f64, f64)> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(path)?;
    file.write_all_at(&vec![0u8; FILE_BYTES], 0)?;
    file.sync_all()?;
    let block = [0x5au8; BLOCK_BYTES];
    let mut ms = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES {
        file.write_all_at(&block, ((i * BLOCK_BYTES) % FILE_BYTES) as u64)?;
        let started = Instant::now();
        file.sync_data()?;
        ms.push(started.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    Ok((at(0.5), at(0.99)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    #[test]
    fn the_timing_is_of_real_syncs_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let (p50, p99) = super::fsync_ms(dir.path()).unwrap();
        assert!(p50 > 0.0 && p99 >= p50, "p50 {p50} p99 {p99}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
