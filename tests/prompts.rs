//! A1111 prompt syntax against AUTOMATIC1111's own code: emphasis parsing, 75-token chunks and the
//! weighted, re-normalised embeddings (references in tests/data/sd-ref-prompts from
//! models/make_prompt_refs.py, made on the tiny model's torch text encoder).

use std::path::{Path, PathBuf};

use anim::diffusion::prompt::{self, CHUNK_LENGTH};
use anim::diffusion::{ClipTokenizer, Pipeline, PromptSyntax};
use ndarray::ArrayD;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn cases() -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(root().join("tests/data/sd-ref-prompts/prompts.json")).unwrap();
    serde_json::from_str::<serde_json::Value>(&text).unwrap().as_array().unwrap().clone()
}

#[test]
fn parsing_matches_a1111() {
    for case in cases() {
        let text = case["text"].as_str().unwrap();
        let want: Vec<(String, f64)> = case["parsed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_str().unwrap().to_string(), p[1].as_f64().unwrap()))
            .collect();
        let got = prompt::parse_attention(text);
        // serde_json reads floats to within an ulp, not always exactly
        let same = got.len() == want.len() && got.iter().zip(&want).all(|(g, w)| g.0 == w.0 && (g.1 - w.1).abs() <= 4.0 * f64::EPSILON * w.1.abs());
        assert!(same, "{text:?}: got {got:?}, want {want:?}");
    }
}

#[test]
fn chunks_match_a1111() {
    let tok = ClipTokenizer::load(&root().join("models/tiny-sd/tokenizer")).unwrap();
    let mut multi = 0;
    for case in cases() {
        let text = case["text"].as_str().unwrap();
        let got = prompt::chunks(&tok, text).unwrap();
        let want = case["chunks"].as_array().unwrap();
        assert_eq!(got.len(), want.len(), "{text:?}: chunk count");
        for (g, w) in got.iter().zip(want) {
            let ids: Vec<u32> = w["tokens"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
            let weights: Vec<f32> = w["multipliers"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
            assert_eq!(g.ids, ids, "{text:?}: ids");
            assert_eq!(g.weights, weights, "{text:?}: weights");
            assert_eq!(g.ids.len(), CHUNK_LENGTH + 2);
        }
        multi += usize::from(got.len() > 1);
    }
    assert!(multi >= 4, "only {multi} multi-chunk prompts");
}

#[test]
fn weighted_chunked_embeddings_match_a1111() {
    let mut p = Pipeline::load(&root().join("models/tiny-sd")).unwrap();
    let mut worst = 0.0f32;
    for case in cases() {
        let text = case["text"].as_str().unwrap();
        let dir = root().join("tests/data/sd-ref-prompts");
        // "No norm": values. "Original": shapes only (the tiny encoder's zero-mean vectors make
        // A1111's re-normalisation ill-conditioned; see the references' README)
        let want: ArrayD<f32> = ndarray_npy::read_npy(dir.join(case["embed_nonorm"].as_str().unwrap())).unwrap();
        let (shape, got) = p.encode(text, PromptSyntax::A1111NoNorm).unwrap();
        assert_eq!(shape, want.shape(), "{text:?}: shape");
        let want = want.as_slice().unwrap();
        let scale = want.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        let d = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max) / scale;
        assert!(d < 1e-5, "{text:?}: relative difference {d}");
        worst = worst.max(d);
        let original: ArrayD<f32> = ndarray_npy::read_npy(dir.join(case["embed"].as_str().unwrap())).unwrap();
        let (shape, got) = p.encode(text, PromptSyntax::A1111).unwrap();
        assert_eq!(shape, original.shape(), "{text:?}: shape (Original emphasis)");
        assert!(got.iter().all(|x| x.is_finite()), "{text:?}: non-finite values");
    }
    eprintln!("A1111 embeddings (No norm): worst relative difference {worst:.2e}");
}

#[test]
fn plain_prompts_are_the_same_in_both_syntaxes() {
    // without emphasis and within 75 tokens the A1111 path gives diffusers' embedding exactly
    let mut p = Pipeline::load(&root().join("models/tiny-sd")).unwrap();
    for text in ["a photo of a cat", "", "hello, world"] {
        assert_eq!(p.encode(text, PromptSyntax::A1111).unwrap(), p.encode(text, PromptSyntax::Plain).unwrap(), "{text:?}");
    }
}
