//! CLIP text encoders: one ONNX text encoder with its tokenizer, the layer a pipeline reads from it
//! (last layer, clip skip through the final layer norm, or SDXL's raw penultimate layer) and the
//! pooled output SDXL needs. Knows the optimum output names (`last_hidden_state`,
//! `hidden_states.N`, `text_embeds`); knows nothing of prompts' syntax or of the UNet.

use std::path::Path;

use anyhow::{Context as _, Result, anyhow, bail};
use ort::session::SessionInputValue;
use ort::value::{Tensor, TensorElementType};

use super::session::{Model, SessionOptions};
use super::tokenizer::ClipTokenizer;

/// Which hidden states a text encoder run returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layer {
    /// `last_hidden_state` (SD 1.x/2.x, clip skip 1).
    Last,
    /// A1111's clip skip k > 1 on SD 1.x/2.x: `hidden_states[-k]` through the final layer norm.
    Normed(usize),
    /// SDXL with clip skip k >= 1: `hidden_states[-(k + 1)]` as it is, without the final layer
    /// norm (k = 1 is SDXL's penultimate layer; k = c + 1 is diffusers' `clip_skip = c`).
    Raw(usize),
}

/// One text encoder run: hidden states `[batch, seq, dim]` (flat) and, when asked for and the
/// model has one, the pooled output `[batch, pooled_dim]` (flat).
pub(crate) struct Encoded {
    pub(crate) shape: Vec<usize>,
    pub(crate) hidden: Vec<f32>,
    pub(crate) pooled: Option<Vec<f32>>,
}

/// A CLIP text encoder (`text_encoder/` or `text_encoder_2/`) with its tokenizer.
pub(crate) struct TextEncoder {
    pub(crate) tokenizer: ClipTokenizer,
    pub(crate) model: Model,
    ids_int64: bool,
    batch_dynamic: bool,
    /// Outputs `hidden_states.0..=N` exist, N = layers.
    hidden_layers: Option<usize>,
    /// The final layer norm (weight, bias) recovered from the encoder's outputs, once needed.
    final_norm: Option<(Vec<f64>, Vec<f64>)>,
    layer_norm_eps: f64,
    /// `text_embeds` (the projected pooled output of `CLIPTextModelWithProjection`), if present.
    pooled_output: Option<&'static str>,
}

impl TextEncoder {
    /// Loads `folder/model_dir/model.onnx` with the tokenizer in `folder/tokenizer_dir`.
    ///
    /// # Errors
    /// Missing files, a tokenizer that cannot be built, `input_ids` of another type than int32
    /// or int64.
    pub(crate) fn load(
        folder: &Path,
        model_dir: &str,
        tokenizer_dir: &str,
        opts: &SessionOptions,
        notes: &mut Vec<String>,
    ) -> Result<TextEncoder> {
        let tokenizer = ClipTokenizer::load(&folder.join(tokenizer_dir))?;
        let model = Model::load(folder, model_dir, opts, notes)?;
        let (ids_ty, _, batch_dynamic) = model.input("input_ids")?;
        let ids_int64 = match ids_ty {
            TensorElementType::Int64 => true,
            TensorElementType::Int32 => false,
            t => bail!(
                "{}: input_ids is {t:?}; expected int32 or int64",
                model.path.display()
            ),
        };
        let hidden_layers = (1..256)
            .take_while(|i| model.has_output(&format!("hidden_states.{i}")))
            .last();
        let layer_norm_eps = std::fs::read_to_string(folder.join(model_dir).join("config.json"))
            .ok()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
            .and_then(|v| v["layer_norm_eps"].as_f64())
            .unwrap_or(1e-5);
        let pooled_output = model.has_output("text_embeds").then_some("text_embeds");
        Ok(TextEncoder {
            tokenizer,
            model,
            ids_int64,
            batch_dynamic,
            hidden_layers,
            final_norm: None,
            layer_norm_eps,
            pooled_output,
        })
    }

    /// Transformer layers, when the `hidden_states.*` outputs are exported.
    pub(crate) fn hidden_layers(&self) -> Option<usize> {
        self.hidden_layers
    }

    /// Whether the model has the projected pooled output `text_embeds`.
    pub(crate) fn has_pooled(&self) -> bool {
        self.pooled_output.is_some()
    }

    /// Runs `batch` id sequences of equal length (one call when the model's batch axis is
    /// dynamic, else one per sequence) and returns the hidden states of `layer`, and the pooled
    /// output when `pooled` is set.
    ///
    /// # Errors
    /// A layer the export lacks (no `hidden_states.*` outputs, or fewer layers), a missing
    /// `text_embeds` output when `pooled` is set, ONNX Runtime failures.
    pub(crate) fn run(
        &mut self,
        ids: &[u32],
        batch: usize,
        layer: Layer,
        pooled: bool,
    ) -> Result<Encoded> {
        let seq = ids.len() / batch;
        let mut shape = vec![batch, seq, 0];
        let mut names: Vec<String> = match layer {
            Layer::Last => vec!["last_hidden_state".into()],
            Layer::Normed(k) => {
                let layers = self.layers_for(k)?;
                vec![
                    "last_hidden_state".into(),
                    format!("hidden_states.{layers}"),
                    format!("hidden_states.{}", layers + 1 - k),
                ]
            }
            Layer::Raw(k) => {
                let layers = self.layers_for(k)?;
                vec![format!("hidden_states.{}", layers - k)]
            }
        };
        if pooled {
            let name = self.pooled_output.ok_or_else(|| {
                anyhow!(
                    "{}: expected an output `text_embeds` (the pooled, projected embedding)",
                    self.model.path.display()
                )
            })?;
            names.push(name.into());
        }
        let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let per_call = if self.batch_dynamic { batch } else { 1 };
        let mut hidden = Vec::new();
        let mut pooled_out = Vec::new();
        for part in ids.chunks(seq * per_call) {
            let dims = vec![(part.len() / seq) as i64, seq as i64];
            let input: SessionInputValue<'static> = if self.ids_int64 {
                Tensor::from_array((dims, part.iter().map(|&i| i as i64).collect::<Vec<_>>()))
                    .map_err(|e| anyhow!("{e}"))?
                    .into()
            } else {
                Tensor::from_array((dims, part.iter().map(|&i| i as i32).collect::<Vec<_>>()))
                    .map_err(|e| anyhow!("{e}"))?
                    .into()
            };
            let mut res = self
                .model
                .run(vec![("input_ids".into(), input)], &name_refs)?;
            if pooled {
                pooled_out.extend(res.pop().map(|r| r.1).unwrap_or_default());
            }
            let dim =
                feature_dim(&res[0].0).with_context(|| self.model.path.display().to_string())?;
            shape[2] = dim;
            match layer {
                Layer::Last | Layer::Raw(_) => hidden.extend(res.swap_remove(0).1),
                Layer::Normed(_) => {
                    if self.final_norm.is_none() {
                        self.final_norm = Some(fit_layer_norm(
                            &res[1].1,
                            &res[0].1,
                            dim,
                            self.layer_norm_eps,
                        )?);
                    }
                    let (w, b) = self
                        .final_norm
                        .as_ref()
                        .ok_or_else(|| anyhow!("final layer norm missing"))?;
                    hidden.extend(layer_norm(&res[2].1, dim, self.layer_norm_eps, w, b));
                }
            }
        }
        Ok(Encoded {
            shape,
            hidden,
            pooled: pooled.then_some(pooled_out),
        })
    }

    /// Whether `layer` can be read from this export (without running it).
    pub(crate) fn check_layer(&self, layer: Layer) -> Result<()> {
        match layer {
            Layer::Last => Ok(()),
            Layer::Normed(k) | Layer::Raw(k) => self.layers_for(k).map(|_| ()),
        }
    }

    /// The number of layers, checking that clip skip `k` (1..=layers) can be read.
    fn layers_for(&self, k: usize) -> Result<usize> {
        let layers = self.hidden_layers.ok_or_else(|| {
            anyhow!(
                "clip skip {k} needs the text encoder's hidden states, but {} has no `hidden_states.*` outputs; \
                 export it with them (optimum: --model-kwargs '{{\"output_hidden_states\": true}}') or set clipskip to 1",
                self.model.path.display()
            )
        })?;
        if k == 0 || k > layers {
            bail!(
                "clip skip {k}: {} has only {layers} layers",
                self.model.path.display()
            );
        }
        Ok(layers)
    }
}

/// Concatenates rows of `a` (`dim_a` wide) and `b` (`dim_b` wide) on the feature axis, as
/// `torch.concat([a, b], dim=-1)`.
pub(crate) fn concat_features(a: &[f32], dim_a: usize, b: &[f32], dim_b: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    for (ra, rb) in a.chunks(dim_a).zip(b.chunks(dim_b)) {
        out.extend_from_slice(ra);
        out.extend_from_slice(rb);
    }
    out
}

/// The feature width of hidden states shaped `[batch, tokens, features]`.
fn feature_dim(shape: &[usize]) -> Result<usize> {
    match shape {
        [_, _, d] if *d > 0 => Ok(*d),
        other => bail!(
            "the text encoder's hidden states have shape {other:?}; expected [batch, tokens, \
             features] with features > 0 (is this a CLIP text encoder export?)"
        ),
    }
}

/// `(x - mean) / sqrt(var + eps)` of each `dim`-vector, in float64.
fn normalize_rows(x: &[f32], dim: usize, eps: f64) -> Vec<f64> {
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks(dim) {
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / dim as f64;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / dim as f64;
        let inv = 1.0 / (var + eps).sqrt();
        out.extend(row.iter().map(|&v| (v as f64 - mean) * inv));
    }
    out
}

/// The text encoder's final layer norm `(weight, bias)`, recovered from one run's
/// `last_hidden_state = LayerNorm(hidden_states[-1])` by a least-squares fit per channel (exact up
/// to float32 rounding: the outputs are an affine function of the normalised inputs).
fn fit_layer_norm(
    hidden: &[f32],
    last: &[f32],
    dim: usize,
    eps: f64,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let x = normalize_rows(hidden, dim, eps);
    let rows = x.len() / dim;
    let mut w = vec![0.0; dim];
    let mut b = vec![0.0; dim];
    for d in 0..dim {
        let xs: Vec<f64> = (0..rows).map(|r| x[r * dim + d]).collect();
        let ys: Vec<f64> = (0..rows).map(|r| last[r * dim + d] as f64).collect();
        let (mx, my) = (
            xs.iter().sum::<f64>() / rows as f64,
            ys.iter().sum::<f64>() / rows as f64,
        );
        let sxx: f64 = xs.iter().map(|v| (v - mx).powi(2)).sum();
        let sxy: f64 = xs.iter().zip(&ys).map(|(a, c)| (a - mx) * (c - my)).sum();
        if sxx <= 0.0 {
            bail!("cannot recover the text encoder's final layer norm (channel {d} is constant)");
        }
        w[d] = sxy / sxx;
        b[d] = my - w[d] * mx;
    }
    Ok((w, b))
}

/// LayerNorm with the recovered weight and bias, back to float32.
fn layer_norm(x: &[f32], dim: usize, eps: f64, w: &[f64], b: &[f64]) -> Vec<f32> {
    normalize_rows(x, dim, eps)
        .iter()
        .enumerate()
        .map(|(i, v)| (v * w[i % dim] + b[i % dim]) as f32)
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn hidden_states_of_another_rank_are_an_error_not_a_division_by_zero() {
        assert_eq!(super::feature_dim(&[2, 77, 768]).unwrap(), 768);
        for bad in [&[2, 768][..], &[2, 77, 0], &[], &[1, 2, 77, 768]] {
            let e = super::feature_dim(bad).unwrap_err().to_string();
            assert!(e.contains("[batch, tokens, features]"), "{bad:?}: {e}");
        }
    }

    use super::*;

    #[test]
    fn concat_is_per_row() {
        let a = [1.0, 2.0, 3.0, 4.0];
        let b = [9.0, 8.0, 7.0, 6.0, 5.0, 4.0];
        assert_eq!(
            concat_features(&a, 2, &b, 3),
            vec![1.0, 2.0, 9.0, 8.0, 7.0, 3.0, 4.0, 6.0, 5.0, 4.0]
        );
    }
}
