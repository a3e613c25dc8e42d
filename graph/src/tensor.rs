//! Constant tensors: described in the file's header, their bytes in its body.

use serde::{Deserialize, Serialize};
use tract_core::internal::*;

use crate::Weights;
use crate::error::{Error, Result};

/// Where a constant's values are and how they are stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TensorInfo {
    /// tract's datum type name (`F32`, `I64`, ...).
    pub dt: String,
    pub shape: Vec<usize>,
    pub encoding: Encoding,
    /// Byte range in the file's body.
    pub offset: usize,
    pub len: usize,
}

/// How a constant's values are stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Encoding {
    /// Little-endian values of the datum type.
    Raw,
    /// An f32 tensor as small integers times one scale per index along `axis` (f32 multiply, as
    /// ONNX's `Cast` + `Mul` dequantisation computes it). The bytes hold the scales (f32,
    /// little-endian; binary, since as JSON text they gzipped to 6.5 KB more), then the values:
    /// with `bits` 8 one int8 a byte; with `bits` 4 (values in -8..=7) two a byte, each plus 8,
    /// the first in the low nibble. Packed, a 4-bit tensor gzips 12% smaller: deflate's string
    /// matches on bytes of 16 values cost more than they save (`bench/ANALYSIS.md`).
    Quantised { axis: usize, bits: u8 },
}

/// One datum type the file stores raw: its name and little-endian (de)coding.
macro_rules! raw_types {
    ($($t:ty => $dt:ident),*) => {
        fn write_raw(t: &Tensor, out: &mut Vec<u8>) -> Result<bool> {
            let view = t.try_as_plain_ram().map_err(Error::tract)?;
            match t.datum_type() {
                $(DatumType::$dt => {
                    for v in view.as_slice::<$t>().map_err(Error::tract)? {
                        out.extend_from_slice(&v.to_le_bytes());
                    }
                    Ok(true)
                })*
                _ => Ok(false),
            }
        }

        fn read_raw(dt: DatumType, shape: &[usize], bytes: &[u8]) -> Result<Tensor> {
            match dt {
                $(DatumType::$dt => {
                    const N: usize = std::mem::size_of::<$t>();
                    if !bytes.len().is_multiple_of(N) {
                        return Err(Error::format(format!("{} bytes of {dt:?}", bytes.len())));
                    }
                    let values: Vec<$t> = bytes
                        .chunks_exact(N)
                        .map(|c| {
                            let mut b = [0u8; N];
                            b.copy_from_slice(c);
                            <$t>::from_le_bytes(b)
                        })
                        .collect();
                    Tensor::from_shape(shape, &values).map_err(Error::tract)
                })*
                _ => Err(Error::format(format!("datum type {dt:?} is not stored"))),
            }
        }
    };
}

raw_types!(f32 => F32, f64 => F64, i64 => I64, i32 => I32, i16 => I16, i8 => I8, u8 => U8);

/// Appends `t` to `body` and describes it.
pub(crate) fn write(t: &Tensor, weights: Weights, body: &mut Vec<u8>) -> Result<TensorInfo> {
    let shape = t.shape().to_vec();
    let offset = body.len();
    let encoding = match int8_of(t, weights)? {
        Some((axis, scales, values)) => {
            for s in &scales {
                body.extend_from_slice(&s.to_le_bytes());
            }
            let bits = if values.iter().all(|q| (-8..=7).contains(q)) {
                for pair in values.chunks(2) {
                    let nibble = |q: i8| (q + 8) as u8;
                    body.push(nibble(pair[0]) | nibble(pair.get(1).copied().unwrap_or(0)) << 4);
                }
                4
            } else {
                body.extend(values.iter().map(|&q| q as u8));
                8
            };
            Encoding::Quantised { axis, bits }
        }
        None if write_raw(t, body)? => Encoding::Raw,
        None => {
            return Err(Error::format(format!(
                "constants of type {:?} are not stored",
                t.datum_type()
            )));
        }
    };
    Ok(TensorInfo {
        dt: format!("{:?}", t.datum_type()),
        shape,
        encoding,
        offset,
        len: body.len() - offset,
    })
}

/// The tensor `info` describes, from the file's `body`.
pub(crate) fn read(info: &TensorInfo, body: &[u8]) -> Result<Tensor> {
    let bytes = info
        .offset
        .checked_add(info.len)
        .and_then(|end| body.get(info.offset..end))
        .ok_or_else(|| {
            Error::format(format!(
                "tensor bytes {}+{} out of range",
                info.offset, info.len
            ))
        })?;
    let dt: DatumType = info.dt.parse().map_err(Error::tract)?;
    match info.encoding {
        Encoding::Raw => read_raw(dt, &info.shape, bytes),
        Encoding::Quantised { axis, bits } => {
            let (outer, n, inner) = split(&info.shape, axis)
                .ok_or_else(|| Error::format(format!("axis {axis} of {:?}", info.shape)))?;
            let len = outer * n * inner;
            let packed = match bits {
                8 => len,
                4 => len.div_ceil(2),
                _ => return Err(Error::format(format!("{bits}-bit values are not stored"))),
            };
            if dt != DatumType::F32 || bytes.len() != 4 * n + packed {
                return Err(Error::format("quantised tensor does not match its shape"));
            }
            let (scales, values) = bytes.split_at(4 * n);
            let scales: Vec<f32> = scales
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            let value = |i: usize| -> i8 {
                if bits == 8 {
                    values[i] as i8
                } else {
                    ((values[i / 2] >> (4 * (i % 2))) & 15) as i8 - 8
                }
            };
            let values: Vec<f32> = (0..len)
                .map(|i| f32::from(value(i)) * scales[(i / inner) % n])
                .collect();
            Tensor::from_shape(&info.shape, &values).map_err(Error::tract)
        }
    }
}

/// Sizes before, along and after `axis`.
fn split(shape: &[usize], axis: usize) -> Option<(usize, usize, usize)> {
    let n = *shape.get(axis)?;
    Some((
        shape[..axis].iter().product(),
        n,
        shape[axis + 1..].iter().product(),
    ))
}

/// The axis of the scales, the scales and the int8 values.
type OnGrid = (usize, Vec<f32>, Vec<i8>);

/// Int8 values and scales for an f32 weight tensor: those that reproduce it exactly along its
/// first or last axis, or with [`Weights::Int8`] the nearest along its first.
fn int8_of(t: &Tensor, weights: Weights) -> Result<Option<OnGrid>> {
    if t.datum_type() != DatumType::F32 || t.rank() < 2 || t.len() < 16 {
        return Ok(None);
    }
    let view = t.try_as_plain_ram().map_err(Error::tract)?;
    let w = view.as_slice::<f32>().map_err(Error::tract)?;
    let shape = t.shape();
    let mut axes = vec![0, t.rank() - 1];
    axes.dedup();
    for &axis in &axes {
        if let Some((scales, q)) = exact_grid(w, shape, axis) {
            return Ok(Some((axis, scales, q)));
        }
    }
    let levels = match weights {
        Weights::Int8 => 127.0,
        Weights::Bits(bits) => crate::grid_levels(bits),
        Weights::Exact => return Ok(None),
    };
    Ok(quantise_on(w, shape, 0, levels, false).map(|(s, q)| (0, s, q)))
}

/// The largest integer an exporter's channel may use: int8's 127, or a coarser grid (the
/// classifier's 6-bit weights use +-31) whose int8 values gzip packs into fewer bits.
const LEVELS: [f32; 5] = [127.0, 63.0, 31.0, 15.0, 7.0];

/// Symmetric int8 per index along `axis` that gives back every value bit for bit as `q *
/// scale`, on one of the grids of [`LEVELS`] (trying the few floats next to `max / L`, since the
/// exporter's scale times `L` was rounded).
fn exact_grid(w: &[f32], shape: &[usize], axis: usize) -> Option<(Vec<f32>, Vec<i8>)> {
    LEVELS
        .iter()
        .find_map(|&levels| quantise_on(w, shape, axis, levels, true))
}

/// Symmetric int8 per index along `axis` on the grid whose largest value is `levels`; with
/// `exact`, only if it gives back every value bit for bit ([`exact_grid`]).
fn quantise_on(
    w: &[f32],
    shape: &[usize],
    axis: usize,
    levels: f32,
    exact: bool,
) -> Option<(Vec<f32>, Vec<i8>)> {
    let (outer, n, inner) = split(shape, axis)?;
    let index = |o: usize, c: usize, i: usize| (o * n + c) * inner + i;
    let mut scales = vec![0f32; n];
    let mut q = vec![0i8; w.len()];
    for (c, scale) in scales.iter_mut().enumerate() {
        let channel = || (0..outer).flat_map(move |o| (0..inner).map(move |i| index(o, c, i)));
        let max = channel().map(|k| w[k].abs()).fold(0f32, f32::max);
        if !max.is_finite() {
            return None;
        }
        let base = max / levels;
        let candidates = [
            base,
            base.next_up(),
            base.next_down(),
            base.next_up().next_up(),
            base.next_down().next_down(),
        ];
        let fits = |s: f32| {
            channel().all(|k| {
                let v = if s > 0.0 { (w[k] / s).round() } else { 0.0 };
                // Compared as it will be read back (int8, so a -0.0 comes back as 0.0).
                (-127.0..=127.0).contains(&v)
                    && (!exact || (f32::from(v as i8) * s).to_bits() == w[k].to_bits())
            })
        };
        let s = if exact {
            candidates.into_iter().find(|&s| fits(s))?
        } else {
            base
        };
        for k in channel() {
            q[k] = if s > 0.0 { (w[k] / s).round() as i8 } else { 0 };
        }
        *scale = s;
    }
    Some((scales, q))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tensor read back holds exactly these floats.
    fn assert_same_bits(back: &Tensor, values: &[f32]) {
        let a = back.try_as_plain_ram().unwrap();
        let a = a.as_slice::<f32>().unwrap();
        assert!(
            a.iter()
                .zip(values)
                .all(|(x, y)| x.to_bits() == y.to_bits())
        );
    }

    fn roundtrip(t: &Tensor, weights: Weights) -> (TensorInfo, Tensor) {
        let mut body = vec![];
        let info = write(t, weights, &mut body).unwrap();
        let back = read(&info, &body).unwrap();
        (info, back)
    }

    #[test]
    fn raw_tensors_come_back_equal() {
        let f = Tensor::from_shape(&[2, 3], &[1.5f32, -2.0, 0.0, 3.25, 1e-7, -0.0]).unwrap();
        let i = Tensor::from_shape(&[3], &[1i64, -7, 1 << 40]).unwrap();
        for t in [f, i] {
            let (info, back) = roundtrip(&t, Weights::Exact);
            assert_eq!(info.encoding, Encoding::Raw);
            assert_eq!(back, t);
        }
    }

    #[test]
    fn int8_times_scale_is_stored_as_int8_and_comes_back_bit_for_bit() {
        // Four output channels of 3x3x2, as the exporter writes them: q * scale in f32.
        let scales = [0.013_7f32, 0.002_1, 0.0, 1.3];
        let values: Vec<f32> = (0..72)
            .map(|k| {
                let q = ((k * 37) % 255) as i32 - 127;
                let q = if k % 18 == 0 { 127 } else { q };
                // `+ 0.0`: the all-zero channel holds 0.0, not -0.0 (which int8 cannot give back).
                q as f32 * scales[k / 18] + 0.0
            })
            .collect();
        let t = Tensor::from_shape(&[4, 2, 3, 3], &values).unwrap();
        let (info, back) = roundtrip(&t, Weights::Exact);
        assert!(
            matches!(info.encoding, Encoding::Quantised { axis: 0, bits: 8 }),
            "{info:?}"
        );
        // Four scales, then a byte a value.
        assert_eq!(info.len, 4 * 4 + 72);
        assert_same_bits(&back, &values);
    }

    #[test]
    fn a_coarser_grid_is_stored_as_its_small_int8_values_bit_for_bit() {
        // 6-bit weights (the classifier's export): q in -31..=31, each channel reaching 31.
        let scales = [0.041f32, 0.0077, 2.9];
        let values: Vec<f32> = (0..48)
            .map(|k| {
                let q = if k % 16 == 3 {
                    -31
                } else {
                    ((k * 13) % 63) as i32 - 31
                };
                q as f32 * scales[k / 16] + 0.0
            })
            .collect();
        let t = Tensor::from_shape(&[3, 16], &values).unwrap();
        let mut body = vec![];
        let info = write(&t, Weights::Exact, &mut body).unwrap();
        assert!(
            matches!(info.encoding, Encoding::Quantised { axis: 0, bits: 8 }),
            "{info:?}"
        );
        assert!(body[12..].iter().all(|&b| (-31..=31).contains(&(b as i8))));
        let back = read(&info, &body).unwrap();
        assert_same_bits(&back, &values);
    }

    #[test]
    fn a_4_bit_grid_is_packed_two_values_a_byte_and_comes_back_bit_for_bit() {
        // 4-bit weights (the shipped classifier's export): q in -7..=7, each channel reaching 7;
        // an odd count, so the last byte's high nibble is padding.
        let scales = [0.21f32, 0.0033, 1.7];
        let values: Vec<f32> = (0..21)
            .map(|k| {
                let q = if k % 7 == 0 {
                    7
                } else {
                    (k * 3 % 15) as i32 - 7
                };
                q as f32 * scales[k / 7] + 0.0
            })
            .collect();
        let t = Tensor::from_shape(&[3, 7], &values).unwrap();
        let mut body = vec![];
        let info = write(&t, Weights::Exact, &mut body).unwrap();
        assert_eq!(info.encoding, Encoding::Quantised { axis: 0, bits: 4 });
        assert_eq!(info.len, 3 * 4 + 11);
        // The first value (7) in the first byte's low nibble, plus 8.
        assert_eq!(body[12] & 15, 15);
        assert_same_bits(&read(&info, &body).unwrap(), &values);
        // A byte short is refused, not read past.
        let short = TensorInfo {
            len: info.len - 1,
            ..info
        };
        assert!(matches!(read(&short, &body), Err(Error::Format(_))));
    }

    #[test]
    fn other_floats_stay_raw_unless_quantised_on_request() {
        let values: Vec<f32> = (0..64).map(|k| (k as f32 * 0.37).sin()).collect();
        let t = Tensor::from_shape(&[8, 8], &values).unwrap();
        assert_eq!(roundtrip(&t, Weights::Exact).0.encoding, Encoding::Raw);
        let (info, back) = roundtrip(&t, Weights::Int8);
        assert!(matches!(
            info.encoding,
            Encoding::Quantised { axis: 0, bits: 8 }
        ));
        let a = back.try_as_plain_ram().unwrap();
        let a = a.as_slice::<f32>().unwrap();
        // Within half a step of the row's scale (max / 127).
        assert!(
            a.iter()
                .zip(&values)
                .all(|(x, y)| (x - y).abs() <= 0.5 / 127.0 + 1e-6)
        );
    }

    #[test]
    fn a_range_outside_the_body_is_an_error() {
        let info = TensorInfo {
            dt: "F32".into(),
            shape: vec![4],
            encoding: Encoding::Raw,
            offset: 8,
            len: 16,
        };
        assert!(matches!(read(&info, &[0; 12]), Err(Error::Format(_))));
    }
}
