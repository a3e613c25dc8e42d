//! The trained network as plain numbers (batch norms folded into the convolutions),
//! independent of burn: what the ONNX writer writes and the ONNX reader reads back.

use crate::model::{AgeGenderNet, LayerSpec, NetConfig, values};

/// A convolution with its batch norm folded in: weight `[cout, cin/groups, k, k]`, bias `[cout]`.
#[derive(Clone, Debug)]
pub struct FoldedConv {
    pub spec: LayerSpec,
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

/// A dense layer: weight `[inputs, outputs]` (burn's layout), bias `[outputs]`.
#[derive(Clone, Debug)]
pub struct Dense {
    pub inputs: usize,
    pub outputs: usize,
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

/// The trained network as plain numbers, independent of the training framework.
#[derive(Clone, Debug)]
pub struct Portable {
    pub input_size: u32,
    pub convs: Vec<FoldedConv>,
    pub age: Dense,
    pub gender: Dense,
}

impl Portable {
    /// Folds `logit' = scale * logit + bias` into the gender head.
    pub fn calibrate_gender(&mut self, scale: f32, bias: f32) {
        self.gender.weight.iter_mut().for_each(|w| *w *= scale);
        self.gender
            .bias
            .iter_mut()
            .for_each(|b| *b = scale * *b + bias);
    }

    /// How many weights and biases the network has.
    pub fn parameters(&self) -> usize {
        self.convs
            .iter()
            .map(|c| c.weight.len() + c.bias.len())
            .sum::<usize>()
            + self.age.weight.len()
            + self.age.bias.len()
            + self.gender.weight.len()
            + self.gender.bias.len()
    }
}

/// Extracts the weights and folds each batch norm into its convolution:
/// `w' = w * g / sqrt(var + eps)`, `b' = beta - mean * g / sqrt(var + eps)`.
pub fn fold(model: &AgeGenderNet, net: &NetConfig) -> Portable {
    let convs = model
        .trunk
        .iter()
        .zip(&net.layers)
        .map(|(layer, spec)| {
            let w = values(layer.conv.weight.val());
            let gamma = values(layer.bn.gamma.val());
            let beta = values(layer.bn.beta.val());
            let mean = values(layer.bn.running_mean.value());
            let var = values(layer.bn.running_var.value());
            let eps = layer.bn.epsilon as f32;
            let per_out = w.len() / spec.cout.max(1);
            let mut weight = w;
            let mut bias = vec![0.0; spec.cout];
            for c in 0..spec.cout {
                let k = gamma[c] / (var[c] + eps).sqrt();
                weight[c * per_out..(c + 1) * per_out]
                    .iter_mut()
                    .for_each(|v| *v *= k);
                bias[c] = beta[c] - mean[c] * k;
            }
            FoldedConv {
                spec: *spec,
                weight,
                bias,
            }
        })
        .collect();
    let dense = |l: &burn::nn::Linear, outputs: usize| Dense {
        inputs: net.features(),
        outputs,
        weight: values(l.weight.val()),
        bias: l
            .bias
            .as_ref()
            .map(|b| values(b.val()))
            .unwrap_or_else(|| vec![0.0; outputs]),
    };
    Portable {
        input_size: net.input_size,
        convs,
        age: dense(&model.age, net.age_bins),
        gender: dense(&model.gender, 1),
    }
}
