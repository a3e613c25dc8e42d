//! Getting untrusted input into an `RgbImage`: the page's RGBA buffers and (natively) encoded
//! image files, with size limits so a hostile or huge input cannot exhaust memory.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageReader, Limits, RgbImage, imageops};

use crate::error::{Error, Result};

/// Largest accepted width or height.
pub const MAX_SIDE: u32 = 16_384;
/// Largest accepted pixel count (about a 64 MP photo).
pub const MAX_PIXELS: u64 = 64 * 1024 * 1024;
/// Longest side the detector works on; larger images are downscaled first (faces stay large
/// enough, and tiling cost stays bounded).
pub const WORK_SIDE: u32 = 4096;

fn check_size(width: u32, height: u32) -> Result<()> {
    if width == 0 || height == 0 {
        return Err(Error::EmptyImage { width, height });
    }
    if width > MAX_SIDE || height > MAX_SIDE || width as u64 * height as u64 > MAX_PIXELS {
        return Err(Error::ImageTooLarge {
            width,
            height,
            max_side: MAX_SIDE,
        });
    }
    Ok(())
}

/// Converts a row-major RGBA buffer (as from a canvas' `getImageData`) to RGB. Alpha is dropped:
/// the page draws photos opaque.
pub fn rgba_to_rgb(data: &[u8], width: u32, height: u32) -> Result<RgbImage> {
    check_size(width, height)?;
    // check_size bounds the product well inside usize, even on wasm32.
    let expected = width as usize * height as usize * 4;
    if data.len() != expected {
        return Err(Error::BufferLength {
            width,
            height,
            expected,
            got: data.len(),
        });
    }
    let rgb: Vec<u8> = data
        .chunks_exact(4)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect();
    RgbImage::from_raw(width, height, rgb).ok_or(Error::BufferLength {
        width,
        height,
        expected,
        got: data.len(),
    })
}

/// Decodes an encoded image (JPEG, PNG, GIF, WebP, BMP) with allocation limits, applying the
/// EXIF orientation so that faces are upright as the camera intended. The format is guessed from
/// the bytes, never from a file name. Animated images give their first frame; transparent pixels
/// are composited over white, as the page draws them.
pub fn decode_bytes(bytes: &[u8]) -> Result<RgbImage> {
    if bytes.is_empty() {
        return Err(Error::EmptyFile);
    }
    let mut reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format()?;
    if reader.format().is_none() {
        return Err(Error::UnknownFormat);
    }
    // No width/height limit here: `check_size` below rejects those with the image's size, before
    // anything is allocated. max_alloc still bounds every decoder allocation; RGBA16 is the
    // widest layout our formats decode to.
    let mut limits = Limits::no_limits();
    limits.max_alloc = Some(MAX_PIXELS * 8);
    reader.limits(limits);
    let mut decoder = reader.into_decoder()?;
    let (width, height) = decoder.dimensions();
    check_size(width, height)?;
    // A missing or unreadable EXIF block is not worth rejecting the photo for.
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder)?;
    img.apply_orientation(orientation);
    // `into_rgb8` reuses the buffer of an RGB8 image (most photos): a 50 MP photo is held once.
    Ok(if img.color().has_alpha() {
        over_white(&img.into_rgba8())
    } else {
        img.into_rgb8()
    })
}

/// Composites `img` over a white background.
fn over_white(img: &image::RgbaImage) -> RgbImage {
    RgbImage::from_fn(img.width(), img.height(), |x, y| {
        let [r, g, b, a] = img.get_pixel(x, y).0;
        let a = a as u32;
        image::Rgb([r, g, b].map(|c| ((c as u32 * a + 255 * (255 - a) + 127) / 255) as u8))
    })
}

/// Reads and decodes an image file (see [`decode_bytes`]).
#[cfg(not(target_arch = "wasm32"))]
pub fn open(path: impl AsRef<std::path::Path>) -> Result<RgbImage> {
    decode_bytes(&std::fs::read(path)?)
}

/// Downscales `img` so that its longest side is at most `max_side`. Returns the image to work on
/// and the factor from its coordinates back to the input's (1.0 when untouched).
pub fn fit_within(img: &RgbImage, max_side: u32) -> (std::borrow::Cow<'_, RgbImage>, f32) {
    let (w, h) = img.dimensions();
    let longest = w.max(h);
    if longest <= max_side || max_side == 0 {
        return (std::borrow::Cow::Borrowed(img), 1.0);
    }
    let k = max_side as f32 / longest as f32;
    let (nw, nh) = (
        ((w as f32 * k).round() as u32).clamp(1, max_side),
        ((h as f32 * k).round() as u32).clamp(1, max_side),
    );
    // Area averaging in integers: `imageops::resize` would hold an f32 copy of the image's full
    // width (284 MB for a 50 MP photo, measured in tests/bad_input.rs); this holds only the output.
    let small = imageops::thumbnail(img, nw, nh);
    (std::borrow::Cow::Owned(small), w as f32 / nw as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rgba_buffer_is_validated() {
        assert!(matches!(
            rgba_to_rgb(&[0; 16], 2, 3),
            Err(Error::BufferLength { expected: 24, .. })
        ));
        assert!(matches!(
            rgba_to_rgb(&[], 0, 5),
            Err(Error::EmptyImage { .. })
        ));
        assert!(matches!(
            rgba_to_rgb(&[], 100_000, 1),
            Err(Error::ImageTooLarge { .. })
        ));
        assert!(matches!(
            rgba_to_rgb(&[], 16_000, 16_000),
            Err(Error::ImageTooLarge { .. })
        ));
        let img = rgba_to_rgb(&[1, 2, 3, 255, 4, 5, 6, 0], 2, 1).unwrap();
        assert_eq!(img.as_raw(), &[1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn garbage_bytes_are_an_error_not_a_panic() {
        assert!(decode_bytes(&[]).is_err());
        assert!(decode_bytes(b"not an image at all").is_err());
        // A PNG signature followed by junk.
        assert!(decode_bytes(&[0x89, b'P', b'N', b'G', 13, 10, 26, 10, 0, 0, 0, 1]).is_err());
    }

    #[test]
    fn exif_orientation_is_applied() {
        use image::ImageEncoder;
        // 40x20: left half red, right half blue, stored with EXIF orientation 6 ("rotate 90
        // clockwise to display"), as phones write portrait photos.
        let img = RgbImage::from_fn(40, 20, |x, _| {
            if x < 20 {
                image::Rgb([255, 0, 0])
            } else {
                image::Rgb([0, 0, 255])
            }
        });
        // Big-endian TIFF header, one IFD entry: Orientation (0x0112), SHORT, 1, value 6.
        let exif = vec![
            b'M', b'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0,
            0,
        ];
        let mut jpeg = Vec::new();
        let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95);
        enc.set_exif_metadata(exif).unwrap();
        enc.write_image(img.as_raw(), 40, 20, image::ExtendedColorType::Rgb8)
            .unwrap();
        let out = decode_bytes(&jpeg).unwrap();
        assert_eq!(out.dimensions(), (20, 40));
        // The left (red) half is now on top.
        let (top, bottom) = (out.get_pixel(10, 5).0, out.get_pixel(10, 35).0);
        assert!(top[0] > 200 && top[2] < 60, "{top:?}");
        assert!(bottom[2] > 200 && bottom[0] < 60, "{bottom:?}");
    }

    #[test]
    fn png_round_trip_and_downscale() {
        let img = RgbImage::from_fn(300, 120, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let mut png = Vec::new();
        DynamicImage::ImageRgb8(img.clone())
            .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        assert_eq!(decode_bytes(&png).unwrap(), img);
        let (small, k) = fit_within(&img, 150);
        assert_eq!(small.dimensions(), (150, 60));
        assert!((k - 2.0).abs() < 1e-6);
        assert!(matches!(
            fit_within(&img, 300).0,
            std::borrow::Cow::Borrowed(_)
        ));
    }
}
