//! Any bytes through decode and the whole pipeline (detector and embedded classifier). Decoded
//! images are first shrunk to a small side so that each run stays fast; results must be finite.
#![no_main]

use std::sync::OnceLock;

use agegender::decode::{decode_bytes, fit_within};
use agegender::{Options, Pipeline, embedded};
use libfuzzer_sys::fuzz_target;

/// Longest side analysed (the detector's first window is 256 px).
const FUZZ_SIDE: u32 = 384;

fn pipeline() -> &'static Pipeline {
    static PIPELINE: OnceLock<Pipeline> = OnceLock::new();
    PIPELINE.get_or_init(|| embedded::pipeline().expect("embedded models load"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(img) = decode_bytes(data) else { return };
    let (small, _) = fit_within(&img, FUZZ_SIDE);
    let opts = Options {
        detect: agegender::DetectOptions {
            working_size: 256,
            ..Default::default()
        },
        ..Default::default()
    };
    let analysis = pipeline()
        .analyze(&small, &opts)
        .expect("a decoded image analyses");
    for face in &analysis.faces {
        assert!(face.score.is_finite());
        assert!(
            face.box_px
                .iter()
                .chain(&face.box_norm)
                .all(|v| v.is_finite())
        );
        if let Some(e) = &face.estimate {
            assert!(e.age.is_finite() && e.p_female.is_finite(), "{e:?}");
        }
    }
});
