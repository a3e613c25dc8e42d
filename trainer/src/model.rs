//! The multi-task CNN: a shared convolutional trunk, an age head (a distribution over ages
//! 0..=100) and a gender head (one logit). Kept to ops tract runs well once exported:
//! Conv (+ folded batch norm), Relu, GlobalAveragePool, Gemm. Also: widening a trained net,
//! and running one in inference mode over host crops.

use agegender::estimate::AGE_BINS;
use agegender::preprocess::{self, INPUT_SIZE};
use burn::module::{Module, RunningState};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d,
};
use burn::tensor::activation::relu;
use burn::tensor::module::{conv2d, linear};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

/// One convolution of the trunk.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct LayerSpec {
    pub cin: usize,
    pub cout: usize,
    pub kernel: usize,
    pub stride: usize,
    /// `cin` for a depthwise convolution, 1 for a full one.
    pub groups: usize,
}

impl LayerSpec {
    /// The convolution weight's shape, `[cout, cin / groups, kernel, kernel]`, as burn and
    /// ONNX both store it.
    pub fn weight_shape(&self) -> [usize; 4] {
        [
            self.cout,
            self.cin / self.groups.max(1),
            self.kernel,
            self.kernel,
        ]
    }
}

/// The architecture, saved next to every checkpoint and model so they can be rebuilt.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct NetConfig {
    pub input_size: u32,
    pub layers: Vec<LayerSpec>,
    pub dropout: f64,
    pub age_bins: usize,
}

impl NetConfig {
    /// The shipped architecture: ~310k parameters, ~37M multiply-adds per 64x64 face. v1 (218k)
    /// under-fitted (train MAE above validation MAE), so v2 adds depthwise-separable blocks
    /// at 8x8, where parameters are cheap in compute, and halves the dropout.
    pub fn standard() -> Self {
        Self::with_widths([32, 64, 128, 192, 256], 0.1)
    }

    /// A narrow variant for smoke runs and tests: v2's layer pattern without the last
    /// depthwise-separable block (v1's shape), 8 channels throughout and 16 at the end.
    pub fn tiny() -> Self {
        let mut net = Self::with_widths([8, 8, 8, 8, 16], 0.2);
        net.layers.truncate(net.layers.len() - 2);
        net
    }

    /// The standard layer pattern with other channel counts (`train --widths`).
    pub fn standard_with_widths(w: [usize; 5]) -> Self {
        Self::with_widths(w, Self::standard().dropout)
    }

    /// The five channel counts of the standard pattern, if this net follows it.
    pub fn widths(&self) -> Option<[usize; 5]> {
        let l = &self.layers;
        (l.len() == 11).then(|| [l[0].cout, l[2].cout, l[4].cout, l[6].cout, l[8].cout])
    }

    /// Whether `self` has `other`'s layers (kinds, kernels, strides) with at least as many
    /// channels in each, so `other`'s weights can be embedded ([`AgeGenderNet::widen_from`]).
    pub fn can_widen(&self, other: &NetConfig) -> bool {
        self.layers.len() == other.layers.len()
            && self.age_bins == other.age_bins
            && self.layers.iter().zip(&other.layers).all(|(a, b)| {
                a.kernel == b.kernel
                    && a.stride == b.stride
                    && (a.groups == 1) == (b.groups == 1)
                    && a.cin >= b.cin
                    && a.cout >= b.cout
            })
    }

    fn with_widths(w: [usize; 5], dropout: f64) -> Self {
        let full = |cin, cout, stride| LayerSpec {
            cin,
            cout,
            kernel: 3,
            stride,
            groups: 1,
        };
        let dw = |c| LayerSpec {
            cin: c,
            cout: c,
            kernel: 3,
            stride: 1,
            groups: c,
        };
        let pw = |cin, cout| LayerSpec {
            cin,
            cout,
            kernel: 1,
            stride: 1,
            groups: 1,
        };
        Self {
            input_size: INPUT_SIZE,
            layers: vec![
                full(3, w[0], 2), // 32x32
                full(w[0], w[0], 1),
                full(w[0], w[1], 2), // 16x16
                full(w[1], w[1], 1),
                full(w[1], w[2], 2), // 8x8
                dw(w[2]),
                pw(w[2], w[3]),
                dw(w[3]),
                pw(w[3], w[4]),
                dw(w[4]),
                pw(w[4], w[4]),
            ],
            dropout,
            age_bins: AGE_BINS,
        }
    }

    pub fn features(&self) -> usize {
        self.layers.last().map(|l| l.cout).unwrap_or(3)
    }

    pub fn init(&self, device: &Device) -> AgeGenderNet {
        let trunk = self
            .layers
            .iter()
            .map(|l| ConvBn {
                conv: Conv2dConfig::new([l.cin, l.cout], [l.kernel, l.kernel])
                    .with_stride([l.stride, l.stride])
                    .with_padding(PaddingConfig2d::Explicit(
                        l.kernel / 2,
                        l.kernel / 2,
                        l.kernel / 2,
                        l.kernel / 2,
                    ))
                    .with_groups(l.groups)
                    .with_bias(false)
                    .init(device),
                bn: BatchNormConfig::new(l.cout).init(device),
            })
            .collect();
        AgeGenderNet {
            trunk,
            dropout: DropoutConfig::new(self.dropout).init(),
            age: LinearConfig::new(self.features(), self.age_bins).init(device),
            gender: LinearConfig::new(self.features(), 1).init(device),
            qat_bits: 0,
        }
    }
}

/// Convolution, batch norm, ReLU.
#[derive(Module, Debug)]
pub struct ConvBn {
    pub conv: Conv2d,
    pub bn: BatchNorm,
}

#[derive(Module, Debug)]
pub struct AgeGenderNet {
    pub trunk: Vec<ConvBn>,
    pub dropout: Dropout,
    pub age: Linear,
    pub gender: Linear,
    /// Quantisation-aware training: when 2..=8, the forward pass sees every weight on the grid
    /// `export --weight-bits` will put it on (symmetric, per output channel, the channel's
    /// largest magnitude at the top level), and gradients pass straight through the rounding.
    /// Per-channel grids commute with folding batch norm's per-channel scale into the
    /// convolution, so the unfolded weights' grid is the exported one. 0: off.
    #[module(skip)]
    pub qat_bits: u32,
}

/// `w` rounded to the `bits`-bit symmetric grid of each slice along `out_dim` (straight-through:
/// the forward value is the rounded one, the gradient that of the identity).
fn fake_quant<const D: usize>(w: Tensor<D>, bits: u32, out_dim: usize) -> Tensor<D> {
    let levels = crate::onnx::write::grid_levels(bits);
    let mut max = w.clone().abs().detach();
    for d in 0..D {
        if d != out_dim {
            max = max.max_dim(d);
        }
    }
    let scale = max.clamp_min(1e-12) / levels;
    let q = (w.clone() / scale.clone()).round().clamp(-levels, levels) * scale;
    w.clone() + (q - w).detach()
}

impl AgeGenderNet {
    /// `x`: `[N, 3, 64, 64]` from `preprocess::to_nchw`. Returns (age logits `[N, 101]`,
    /// gender logit `[N, 1]`).
    pub fn forward(&self, x: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
        let mut x = x;
        let bits = self.qat_bits;
        let qat = (2..=8).contains(&bits);
        for layer in &self.trunk {
            let y = if qat {
                let c = &layer.conv;
                // `NetConfig::init`'s padding: half the kernel on every side.
                let pad = [c.kernel_size[0] / 2, c.kernel_size[1] / 2];
                let options = ConvOptions::new(c.stride, pad, c.dilation, c.groups);
                let weight = fake_quant(c.weight.val(), bits, 0);
                conv2d(x, weight, c.bias.as_ref().map(|b| b.val()), options)
            } else {
                layer.conv.forward(x)
            };
            x = relu(layer.bn.forward(y));
        }
        let pooled: Tensor<2> = x.mean_dim(3).mean_dim(2).flatten(1, 3);
        let pooled = self.dropout.forward(pooled);
        let head = |l: &Linear, x: Tensor<2>| {
            if qat {
                // burn stores a linear weight as [inputs, outputs].
                let weight = fake_quant(l.weight.val(), bits, 1);
                linear(x, weight, l.bias.as_ref().map(|b| b.val()))
            } else {
                l.forward(x)
            }
        };
        (head(&self.age, pooled.clone()), head(&self.gender, pooled))
    }
}

/// Embeds `old` (shape `old_shape`) into `new` (shape `new_shape`, each side at least as
/// large): old values go to the leading corner; weights from new inputs to old outputs
/// (`out_dim` indexes outputs) become 0, so old outputs are unchanged; weights into new
/// outputs keep `new`'s random initialisation.
fn embed(new: &mut [f32], new_shape: &[usize], old: &[f32], old_shape: &[usize], out_dim: usize) {
    let rank = new_shape.len();
    let mut idx = vec![0usize; rank];
    for v in new.iter_mut() {
        if idx.iter().zip(old_shape).all(|(i, o)| i < o) {
            let flat = idx.iter().zip(old_shape).fold(0, |acc, (i, o)| acc * o + i);
            *v = old[flat];
        } else if idx[out_dim] < old_shape[out_dim] {
            *v = 0.0;
        }
        // Row-major increment.
        for d in (0..rank).rev() {
            idx[d] += 1;
            if idx[d] < new_shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
}

fn widened<const D: usize>(new: Tensor<D>, old: Tensor<D>, out_dim: usize) -> Tensor<D> {
    let device = new.device();
    let (new_shape, old_shape) = (new.dims(), old.dims());
    let mut out = values(new);
    embed(&mut out, &new_shape, &values(old), &old_shape, out_dim);
    Tensor::from_data(TensorData::new(out, new_shape), &device)
}

impl AgeGenderNet {
    /// Net2Net-style widening: `self` (a freshly initialised wider net, see
    /// [`NetConfig::can_widen`]) takes `old`'s weights in its leading channels, and its new
    /// channels start with zero weights into the old ones, so it computes what `old` did
    /// (in both training and inference mode) while the new channels learn from there.
    pub fn widen_from(mut self, old: &AgeGenderNet) -> Self {
        for (n, o) in self.trunk.iter_mut().zip(&old.trunk) {
            let w = o.conv.weight.val();
            n.conv.weight = n.conv.weight.clone().map(|t| widened(t, w, 0));
            let bn = |new: Tensor<1>, old: Tensor<1>| widened(new, old, 0);
            n.bn.gamma = n.bn.gamma.clone().map(|t| bn(t, o.bn.gamma.val()));
            n.bn.beta = n.bn.beta.clone().map(|t| bn(t, o.bn.beta.val()));
            n.bn.running_mean =
                RunningState::new(bn(n.bn.running_mean.value(), o.bn.running_mean.value()));
            n.bn.running_var =
                RunningState::new(bn(n.bn.running_var.value(), o.bn.running_var.value()));
        }
        let head = |n: &mut Linear, o: &Linear| {
            // burn stores a linear weight as [inputs, outputs].
            n.weight = n.weight.clone().map(|t| widened(t, o.weight.val(), 1));
            if let (Some(nb), Some(ob)) = (n.bias.as_mut(), o.bias.as_ref()) {
                *nb = nb.clone().map(|t| widened(t, ob.val(), 0));
            }
        };
        head(&mut self.age, &old.age);
        head(&mut self.gender, &old.gender);
        self
    }
}

/// A tensor's values as f32.
pub fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec()
        .unwrap_or_default()
}

/// Runs the model (inference mode) over host images in batches: (age logits, gender logits).
pub fn predict_logits(
    model: &AgeGenderNet,
    crops: &[image::RgbImage],
    device: &Device,
) -> (Vec<Vec<f32>>, Vec<f32>) {
    let model = model.valid();
    let dev = device.clone().inner();
    let mut ages = Vec::with_capacity(crops.len());
    let mut genders = Vec::with_capacity(crops.len());
    for chunk in crops.chunks(128) {
        let s = chunk.first().map_or(0, |c| c.width() as usize);
        let x: Vec<f32> = chunk.iter().flat_map(preprocess::to_nchw).collect();
        let x = Tensor::<4>::from_data(TensorData::new(x, [chunk.len(), 3, s, s]), &dev);
        let (a, g) = model.forward(x);
        let a: Vec<f32> = a.into_data().try_to_vec().unwrap_or_default();
        let g: Vec<f32> = g.into_data().try_to_vec().unwrap_or_default();
        ages.extend(a.chunks(AGE_BINS).map(|c| c.to_vec()));
        genders.extend(g);
    }
    (ages, genders)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_widened_net_computes_what_the_narrow_one_did() {
        let dev = Device::flex();
        let narrow = NetConfig::standard_with_widths([4, 4, 8, 8, 8]);
        let wide = NetConfig::standard_with_widths([4, 6, 8, 12, 16]);
        assert!(wide.can_widen(&narrow) && !narrow.can_widen(&wide));
        assert!(!wide.can_widen(&NetConfig::tiny()));
        assert_eq!(wide.widths(), Some([4, 6, 8, 12, 16]));
        let old = narrow.init(&dev);
        let new = wide.init(&dev).widen_from(&old);
        let x: Vec<f32> = (0..2 * 3 * 32 * 32)
            .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
            .collect();
        let input = || Tensor::<4>::from_data(TensorData::new(x.clone(), [2, 3, 32, 32]), &dev);
        crate::fixtures::assert_same_outputs(&old, &new, input, 1e-4);
        // The new channels are live: their incoming weights are not all zero.
        let w = values(new.trunk[8].conv.weight.val());
        assert!(w[8 * 12..].iter().any(|v| *v != 0.0));
    }

    #[test]
    fn quantisation_aware_forward_sees_the_exported_grid() {
        let dev = Device::flex();
        let net = NetConfig::tiny();
        let bits = 3;
        let mut qat = net.init(&dev);
        qat.qat_bits = bits;
        // The same net with its weights snapped to the grid, run plainly.
        let mut snapped = net.init(&dev).load_record(qat.clone().into_record());
        assert_eq!(snapped.qat_bits, 0);
        for layer in &mut snapped.trunk {
            layer.conv.weight = layer.conv.weight.clone().map(|w| fake_quant(w, bits, 0));
            // At most 2 * 3 + 1 distinct values in each output channel.
            let w = values(layer.conv.weight.val());
            let per_out = w.len() / layer.conv.weight.dims()[0];
            for ch in w.chunks(per_out) {
                let max = ch.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                assert!(ch.iter().all(|v| {
                    let k = v / (max / 3.0);
                    (k - k.round()).abs() < 1e-3
                }));
            }
        }
        for l in [&mut snapped.age, &mut snapped.gender] {
            l.weight = l.weight.clone().map(|w| fake_quant(w, bits, 1));
        }
        let x: Vec<f32> = (0..2 * 3 * 32 * 32)
            .map(|i| ((i * 53 % 97) as f32 / 48.0) - 1.0)
            .collect();
        let input = || Tensor::<4>::from_data(TensorData::new(x.clone(), [2, 3, 32, 32]), &dev);
        // `valid()` (validation, `predict_logits`) keeps the setting.
        assert_eq!(qat.valid().qat_bits, bits);
        crate::fixtures::assert_same_outputs(&qat, &snapped, input, 1e-4);
        let plain = net.init(&dev).load_record(qat.clone().into_record());
        let (a, _) = plain.valid().forward(input());
        let (b, _) = qat.valid().forward(input());
        // (A fresh net's logits are mostly its biases: the grid moves them little.)
        assert!(
            values(a)
                .iter()
                .zip(values(b))
                .any(|(p, q)| (p - q).abs() > 1e-6)
        );
    }
}
