//! The multi-task CNN: a shared convolutional trunk, an age head (a distribution over ages
//! 0..=100) and a gender head (one logit). Kept to ops tract runs well once exported:
//! Conv (+ folded batch norm), Relu, GlobalAveragePool, Gemm.

use agegender::estimate::AGE_BINS;
use agegender::preprocess::INPUT_SIZE;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d,
};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
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
}

impl AgeGenderNet {
    /// `x`: `[N, 3, 64, 64]` from `preprocess::to_nchw`. Returns (age logits `[N, 101]`,
    /// gender logit `[N, 1]`).
    pub fn forward(&self, x: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
        let mut x = x;
        for layer in &self.trunk {
            x = relu(layer.bn.forward(layer.conv.forward(x)));
        }
        let pooled: Tensor<2> = x.mean_dim(3).mean_dim(2).flatten(1, 3);
        let pooled = self.dropout.forward(pooled);
        (
            self.age.forward(pooled.clone()),
            self.gender.forward(pooled),
        )
    }
}
