//! The wasm API's input: an RGBA buffer with a claimed width and height, any of them wrong.
//! A typed error or an analysis, never a panic.
#![no_main]

use std::sync::OnceLock;

use agegender::{Options, Pipeline, embedded};
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    width: u32,
    height: u32,
    /// Repeated to fill the claimed size when `fill` is set (so valid sizes are reachable).
    fill: bool,
    pixels: Vec<u8>,
}

fn pipeline() -> &'static Pipeline {
    static PIPELINE: OnceLock<Pipeline> = OnceLock::new();
    PIPELINE.get_or_init(|| embedded::pipeline().expect("embedded models load"))
}

fuzz_target!(|input: Input| {
    let (w, h) = (input.width, input.height);
    let mut data = input.pixels;
    // Small claimed sizes only get a filled buffer: big ones would just be slow, not different.
    if input.fill && !data.is_empty() && w as u64 * h as u64 <= 512 * 512 {
        let len = w as usize * h as usize * 4;
        data = data.iter().copied().cycle().take(len).collect();
    }
    let opts = Options {
        detect: agegender::DetectOptions {
            working_size: 256,
            ..Default::default()
        },
        ..Default::default()
    };
    if let Ok(a) = pipeline().analyze_rgba(&data, w, h, &opts) {
        assert_eq!((a.width, a.height), (w, h));
    }
});
