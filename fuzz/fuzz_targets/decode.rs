//! Any bytes through the file decoder (`predict`'s and the trainer's entry): an image or a typed
//! error, never a panic, and within the size limits.
#![no_main]

use agegender::decode::{MAX_PIXELS, MAX_SIDE, decode_bytes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(img) = decode_bytes(data) {
        let (w, h) = img.dimensions();
        assert!(w > 0 && h > 0 && w <= MAX_SIDE && h <= MAX_SIDE);
        assert!(w as u64 * h as u64 <= MAX_PIXELS);
    }
});
