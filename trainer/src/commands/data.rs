//! Data options shared by `train`, `eval` and `export`: FairFace beside `--data`.

use std::path::{Path, PathBuf};

use crate::dataset::{LoadReport, Sample};
use crate::defaults;
use crate::error::Result;
use crate::fairface;

/// The FairFace folder, next to `--data`.
#[derive(clap::Args, Clone, Debug, Default, PartialEq)]
pub struct FairFaceArgs {
    /// FairFace folder (`labels.csv` and the images it lists): faces found and aligned by the
    /// page's detector, ages as bins.
    #[arg(long)]
    pub fairface: Option<PathBuf>,
    /// The detections of the FairFace faces, reused while the detector is unchanged
    /// (default: `fairface_faces.json` in the run directory).
    #[arg(long)]
    pub align_cache: Option<PathBuf>,
    /// Detect FairFace faces on a canvas of this side instead of the page's (512): FairFace's
    /// 96x96 crops are never enlarged, so they meet the detector at the same scale on a
    /// smaller, faster canvas. Part of the cache key.
    #[arg(long)]
    pub align_working_size: Option<u32>,
}

impl FairFaceArgs {
    /// Loads FairFace when asked, with its cache in `--align-cache` or else in `run_dir`.
    pub fn load(
        &self,
        run_dir: &Path,
        limit: Option<usize>,
    ) -> Result<Option<(Vec<Sample>, LoadReport)>> {
        let Some(dir) = &self.fairface else {
            return Ok(None);
        };
        let cache = self
            .align_cache
            .clone()
            .unwrap_or_else(|| run_dir.join(defaults::ALIGN_CACHE));
        let (samples, report) = fairface::load(dir, &cache, limit, self.align_working_size)?;
        eprintln!("FairFace: {}", report.summary());
        Ok(Some((samples, report)))
    }
}
