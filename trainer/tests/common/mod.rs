//! Helpers shared by the trainer's integration tests.

use std::path::Path;

/// Writes `n` small UTKFace-style files whose pixels depend on age and gender, so a tiny net
/// has something to learn.
pub fn fake_utk(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        let (age, gender) = ((i * 7) % 90, i % 2);
        let img = image::RgbImage::from_fn(48, 48, |x, y| {
            let v = (age * 2 + (x as usize * 3 + y as usize) % 40) as u8;
            image::Rgb([v, v.wrapping_add(gender as u8 * 60), 255 - v])
        });
        img.save(dir.join(format!("{age}_{gender}_0_2017{i:09}.jpg.chip.jpg")))
            .unwrap();
    }
}
