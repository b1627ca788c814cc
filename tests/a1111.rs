//! A1111 behaviour against AUTOMATIC1111's own code: emphasis parsing, 75-token chunks, the
//! weighted embeddings, clip skip and variation seeds (references in tests/data/sd-ref-a1111 from
//! models/make_a1111_refs.py, made on the tiny model's torch text encoder).

use std::path::{Path, PathBuf};

use anim::diffusion::prompt::{self, CHUNK_LENGTH};
use anim::diffusion::{ClipTokenizer, Pipeline, PromptSyntax, TorchRng, variation};
use ndarray::ArrayD;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn cases() -> Vec<serde_json::Value> {
    let text =
        std::fs::read_to_string(root().join("tests/data/sd-ref-a1111/prompts.json")).unwrap();
    serde_json::from_str::<serde_json::Value>(&text)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
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
        let same = got.len() == want.len()
            && got
                .iter()
                .zip(&want)
                .all(|(g, w)| g.0 == w.0 && (g.1 - w.1).abs() <= 4.0 * f64::EPSILON * w.1.abs());
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
            let ids: Vec<u32> = w["tokens"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect();
            let weights: Vec<f32> = w["multipliers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
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
        let dir = root().join("tests/data/sd-ref-a1111");
        // "No norm": values. "Original": shapes only here (the tiny encoder's zero-mean vectors
        // make A1111's re-normalisation ill-conditioned; see the references' README); its values
        // are checked on models/tiny-text-ln by original_emphasis_values_match_a1111
        let want: ArrayD<f32> =
            ndarray_npy::read_npy(dir.join(case["embed_nonorm"].as_str().unwrap())).unwrap();
        let (shape, got) = p.encode(text, PromptSyntax::A1111NoNorm).unwrap();
        assert_eq!(shape, want.shape(), "{text:?}: shape");
        let want = want.as_slice().unwrap();
        let scale = want.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        let d = got
            .iter()
            .zip(want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max)
            / scale;
        assert!(d < 1e-5, "{text:?}: relative difference {d}");
        worst = worst.max(d);
        let original: ArrayD<f32> =
            ndarray_npy::read_npy(dir.join(case["embed"].as_str().unwrap())).unwrap();
        let (shape, got) = p.encode(text, PromptSyntax::A1111).unwrap();
        assert_eq!(
            shape,
            original.shape(),
            "{text:?}: shape (Original emphasis)"
        );
        assert!(
            got.iter().all(|x| x.is_finite()),
            "{text:?}: non-finite values"
        );
    }
    eprintln!("A1111 embeddings (No norm): worst relative difference {worst:.2e}");
}

#[test]
fn plain_prompts_are_the_same_in_both_syntaxes() {
    // without emphasis and within 75 tokens the A1111 path gives diffusers' embedding exactly
    let mut p = Pipeline::load(&root().join("models/tiny-sd")).unwrap();
    for text in ["a photo of a cat", "", "hello, world"] {
        assert_eq!(
            p.encode(text, PromptSyntax::A1111).unwrap(),
            p.encode(text, PromptSyntax::Plain).unwrap(),
            "{text:?}"
        );
    }
}

fn rel_diff(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    got.iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max)
        / scale
}

#[test]
fn clip_skip_matches_a1111() {
    let mut p = Pipeline::load(&root().join("models/tiny-sd")).unwrap();
    let mut worst = 0.0f32;
    for case in cases() {
        let text = case["text"].as_str().unwrap();
        let want: ArrayD<f32> = ndarray_npy::read_npy(
            root()
                .join("tests/data/sd-ref-a1111")
                .join(case["embed_nonorm_skip2"].as_str().unwrap()),
        )
        .unwrap();
        let (shape, got) = p.encode_skip(text, PromptSyntax::A1111NoNorm, 2).unwrap();
        assert_eq!(shape, want.shape(), "{text:?}");
        let d = rel_diff(&got, want.as_slice().unwrap());
        assert!(d < 1e-5, "{text:?}: clip skip 2 relative difference {d}");
        worst = worst.max(d);
    }
    eprintln!("clip skip 2: worst relative difference {worst:.2e}");
    // skip 1 is the last layer; more skips than layers is a clear error
    assert_eq!(
        p.encode_skip("a cat", PromptSyntax::Plain, 1).unwrap(),
        p.encode("a cat", PromptSyntax::Plain).unwrap()
    );
    let err = p
        .encode_skip("a cat", PromptSyntax::Plain, 3)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("has only 2 layers") && err.contains("text_encoder"),
        "{err}"
    );
}

/// A copy of the tiny pipeline (symbolic links) whose text encoder is models/tiny-text-ln: the tiny
/// encoder with a final layer norm that is not the identity (models/make_a1111_ln_refs.py).
fn ln_pipeline(dir: &Path) -> PathBuf {
    let folder = dir.join("tiny-sd-ln");
    std::fs::create_dir(&folder).unwrap();
    for entry in std::fs::read_dir(root().join("models/tiny-sd")).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != "text_encoder" {
            std::os::unix::fs::symlink(entry.path(), folder.join(entry.file_name())).unwrap();
        }
    }
    std::os::unix::fs::symlink(
        root().join("models/tiny-text-ln"),
        folder.join("text_encoder"),
    )
    .unwrap();
    folder
}

/// "Original" emphasis (A1111's default, what every render with emphasis uses): weights, then the
/// chunk rescaled to its unweighted mean, against A1111's own code on an encoder whose token
/// vectors have a mean well away from 0 (tests/data/sd-ref-a1111-ln); also at clip skip 2, where
/// anim re-applies the final layer norm it recovers from the outputs.
#[test]
fn original_emphasis_values_match_a1111() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Pipeline::load(&ln_pipeline(dir.path())).unwrap();
    let refs = root().join("tests/data/sd-ref-a1111-ln");
    let cases: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(refs.join("prompts.json")).unwrap()).unwrap();
    let (mut worst, mut worst_skip, mut skips) = (0.0f32, 0.0f32, 0);
    for case in &cases {
        let text = case["text"].as_str().unwrap();
        let want: ArrayD<f32> =
            ndarray_npy::read_npy(refs.join(case["embed"].as_str().unwrap())).unwrap();
        let (shape, got) = p.encode(text, PromptSyntax::A1111).unwrap();
        assert_eq!(shape, want.shape(), "{text:?}: shape");
        let d = rel_diff(&got, want.as_slice().unwrap());
        assert!(d < 1e-6, "{text:?}: relative difference {d}");
        worst = worst.max(d);
        if let Some(f) = case["embed_skip2"].as_str() {
            let want: ArrayD<f32> = ndarray_npy::read_npy(refs.join(f)).unwrap();
            let (shape, got) = p.encode_skip(text, PromptSyntax::A1111, 2).unwrap();
            assert_eq!(shape, want.shape(), "{text:?}: shape (clip skip 2)");
            let d = rel_diff(&got, want.as_slice().unwrap());
            assert!(d < 1e-6, "{text:?}: clip skip 2 relative difference {d}");
            worst_skip = worst_skip.max(d);
            skips += 1;
        }
    }
    assert_eq!((cases.len(), skips), (15, 5));
    eprintln!(
        "A1111 Original emphasis: worst relative difference {worst:.2e}, clip skip 2 {worst_skip:.2e}"
    );
}

#[test]
fn variation_seeds_match_a1111() {
    let text =
        std::fs::read_to_string(root().join("tests/data/sd-ref-a1111/variation.json")).unwrap();
    let cases: serde_json::Value = serde_json::from_str(&text).unwrap();
    for case in cases.as_array().unwrap() {
        let shape: Vec<usize> = case["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        let n: usize = shape.iter().product();
        let strength = case["strength"].as_f64().unwrap() as f32;
        let low = TorchRng::new(case["seed"].as_u64().unwrap()).randn(n);
        let high = TorchRng::new(case["subseed"].as_u64().unwrap()).randn(n);
        let got = variation::slerp(strength, &low, &high, [shape[0], shape[1], shape[2]]);
        let want: ArrayD<f32> = ndarray_npy::read_npy(
            root()
                .join("tests/data/sd-ref-a1111")
                .join(case["file"].as_str().unwrap()),
        )
        .unwrap();
        // torch's randn differs from TorchRng by up to 1e-5 (AVX2 log/sincos)
        let d = got
            .iter()
            .zip(want.as_slice().unwrap())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(d < 1e-4, "{case}: max abs difference {d}");
    }
}
