//! Generators for the bad inputs of issue #6, shared by the native tests (`tests/bad_input.rs`)
//! and the browser tests (`tests/web_bad_input.rs`). Everything is made here from code: no data.

#![allow(dead_code)] // each test binary uses a different part

use std::io::Cursor;

use image::codecs::gif::GifEncoder;
use image::codecs::jpeg::JpegEncoder;
use image::{
    Delay, DynamicImage, ExtendedColorType, Frame, ImageEncoder, ImageFormat, Rgb, RgbImage, Rgba,
    RgbaImage,
};

/// A plain text file, as if renamed `.jpg`.
pub const TEXT: &[u8] = b"Dear diary, today I renamed this file to photo.jpg.\n";
/// The start of a PDF file.
pub const PDF: &[u8] =
    b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n";
/// A small SVG drawing of a face (the formats we read are raster only).
pub const SVG: &[u8] = br##"<?xml version="1.0"?>
<svg xmlns="http://www.w3.org/2000/svg" width="200" height="200">
  <circle cx="100" cy="100" r="80" fill="#e0b090"/>
  <circle cx="70" cy="80" r="10"/><circle cx="130" cy="80" r="10"/>
  <path d="M60 130 Q100 160 140 130" stroke="black" fill="none"/>
</svg>"##;

pub fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), format)
        .expect("encoding a generated image");
    out
}

pub fn jpeg(img: &RgbImage) -> Vec<u8> {
    jpeg_with_exif(img, None)
}

pub fn png(img: impl Into<DynamicImage>) -> Vec<u8> {
    encode(&img.into(), ImageFormat::Png)
}

/// A JPEG with an APP1 Exif segment holding only the Orientation tag (`orientation` 1-8).
pub fn jpeg_with_exif(img: &RgbImage, orientation: Option<u8>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = JpegEncoder::new_with_quality(&mut out, 92);
    if let Some(o) = orientation {
        // Big-endian TIFF header, one IFD entry: Orientation (0x0112), SHORT, count 1, value o.
        let exif = vec![
            b'M', b'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, o, 0, 0, 0, 0, 0,
            0,
        ];
        enc.set_exif_metadata(exif).expect("exif accepted");
    }
    enc.write_image(
        img.as_raw(),
        img.width(),
        img.height(),
        ExtendedColorType::Rgb8,
    )
    .expect("encoding a generated image");
    out
}

/// The pixels a camera stores for a photo that should be displayed as `shown` under EXIF
/// `orientation` (TIFF 6.0: where the stored row 0 and column 0 lie in the displayed picture).
/// Written from the specification, independently of the decoder's own implementation.
pub fn stored_for_orientation(shown: &RgbImage, orientation: u8) -> RgbImage {
    let (w, h) = shown.dimensions();
    let px = |x: u32, y: u32| *shown.get_pixel(x, y);
    match orientation {
        1 => shown.clone(),
        2 => RgbImage::from_fn(w, h, |x, y| px(w - 1 - x, y)),
        3 => RgbImage::from_fn(w, h, |x, y| px(w - 1 - x, h - 1 - y)),
        4 => RgbImage::from_fn(w, h, |x, y| px(x, h - 1 - y)),
        // Transposed layouts: stored column c, row r.
        5 => RgbImage::from_fn(h, w, |c, r| px(r, c)),
        6 => RgbImage::from_fn(h, w, |c, r| px(w - 1 - r, c)),
        7 => RgbImage::from_fn(h, w, |c, r| px(w - 1 - r, h - 1 - c)),
        8 => RgbImage::from_fn(h, w, |c, r| px(r, h - 1 - c)),
        _ => panic!("EXIF orientation is 1-8, not {orientation}"),
    }
}

/// Four flat quadrants (red, green / blue, white): any wrong turn or flip shows.
pub fn quadrants(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| match (x < w / 2, y < h / 2) {
        (true, true) => Rgb([255, 0, 0]),
        (false, true) => Rgb([0, 255, 0]),
        (true, false) => Rgb([0, 0, 255]),
        (false, false) => Rgb([255, 255, 255]),
    })
}

/// The first `keep` of `bytes`.
pub fn truncated(bytes: &[u8], keep: f32) -> Vec<u8> {
    bytes[..(bytes.len() as f32 * keep) as usize].to_vec()
}

/// `bytes` with one byte in 50 inverted from a tenth of the way in (headers intact, data not).
pub fn corrupted(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for b in out.iter_mut().skip(bytes.len() / 10).step_by(50) {
        *b = !*b;
    }
    out
}

/// A two-frame animated GIF: `first`, then black.
pub fn animated_gif(first: &RgbImage) -> Vec<u8> {
    let (w, h) = first.dimensions();
    let rgba = DynamicImage::ImageRgb8(first.clone()).into_rgba8();
    let delay = Delay::from_numer_denom_ms(500, 1);
    let frames = vec![
        Frame::from_parts(rgba, 0, 0, delay),
        Frame::from_parts(
            RgbaImage::from_pixel(w, h, Rgba([0, 0, 0, 255])),
            0,
            0,
            delay,
        ),
    ];
    let mut out = Vec::new();
    {
        let mut enc = GifEncoder::new(&mut out);
        enc.set_repeat(image::codecs::gif::Repeat::Infinite)
            .expect("repeat");
        enc.encode_frames(frames).expect("encoding a GIF");
    }
    out
}

/// `img` as a 16-bit-per-channel RGB PNG.
pub fn png16(img: &RgbImage) -> Vec<u8> {
    png(DynamicImage::ImageRgb8(img.clone()).into_rgb16())
}

/// `img` in the greyscale layouts PNG has: L8, L16, LA8 (opaque).
pub fn grey_pngs(img: &RgbImage) -> Vec<(&'static str, Vec<u8>)> {
    let d = DynamicImage::ImageRgb8(img.clone());
    vec![
        ("L8", png(d.to_luma8())),
        ("L16", png(d.to_luma16())),
        ("LA8", png(d.to_luma_alpha8())),
    ]
}

/// `img` as a CMYK JPEG (Adobe APP14, inverted, as Photoshop writes it).
pub fn cmyk_jpeg(img: &RgbImage) -> Vec<u8> {
    let cmyk: Vec<u8> = img
        .pixels()
        .flat_map(|p| {
            let [r, g, b] = p.0.map(|v| v as f32 / 255.0);
            let k = 1.0 - r.max(g).max(b);
            let ink = |v: f32| {
                if k >= 1.0 {
                    0
                } else {
                    ((1.0 - v - k) / (1.0 - k) * 255.0).round() as u8
                }
            };
            [ink(r), ink(g), ink(b), (k * 255.0).round() as u8]
        })
        .collect();
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 92)
        .encode(
            &cmyk,
            img.width() as u16,
            img.height() as u16,
            jpeg_encoder::ColorType::Cmyk,
        )
        .expect("encoding a CMYK JPEG");
    out
}

/// `img` with a transparent left half (its pixels black underneath) as RGBA PNG.
pub fn alpha_png(img: &RgbImage) -> Vec<u8> {
    let w = img.width();
    let rgba = RgbaImage::from_fn(w, img.height(), |x, y| {
        if x < w / 2 {
            Rgba([0, 0, 0, 0])
        } else {
            let [r, g, b] = img.get_pixel(x, y).0;
            Rgba([r, g, b, 255])
        }
    });
    png(rgba)
}

/// A `width` x `height` PNG of stripes (compresses well, so huge sizes stay small files).
pub fn stripes_png(width: u32, height: u32) -> Vec<u8> {
    png(RgbImage::from_fn(width, height, |x, _| {
        Rgb([(x % 256) as u8, 128, 64])
    }))
}

/// The 54-byte header of a 24-bit BMP of `width` x `height` with no pixel data: a tiny file that
/// claims a huge image.
pub fn bmp_header(width: u32, height: u32) -> Vec<u8> {
    let mut out = b"BM".to_vec();
    for v in [54u32, 0, 54, 40, width, height] {
        out.extend(v.to_le_bytes());
    }
    out.extend(1u16.to_le_bytes()); // planes
    out.extend(24u16.to_le_bytes()); // bits per pixel
    for v in [0u32, 0, 2835, 2835, 0, 0] {
        out.extend(v.to_le_bytes());
    }
    out
}

/// `n` copies of `tile` in rows of `per_row`.
pub fn tiled(tile: &RgbImage, n: u32, per_row: u32) -> RgbImage {
    let (tw, th) = tile.dimensions();
    let rows = n.div_ceil(per_row);
    let mut out = RgbImage::from_pixel(tw * per_row, th * rows, Rgb([128, 128, 128]));
    for i in 0..n {
        image::imageops::replace(
            &mut out,
            tile,
            ((i % per_row) * tw) as i64,
            ((i / per_row) * th) as i64,
        );
    }
    out
}
