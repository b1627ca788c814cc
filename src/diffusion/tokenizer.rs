//! CLIP tokenizer, identical to diffusers' `CLIPTokenizer`, built with the `tokenizers` crate from
//! the model's `tokenizer/` folder (`tokenizer.json`, or `vocab.json` + `merges.txt` converted the
//! way transformers' CLIPConverter does).

use std::path::Path;

use anyhow::{Context as _, Result, anyhow};
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::replace::ReplacePattern;
use tokenizers::normalizers::{Lowercase, NFC, Replace, Sequence};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence as PreSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::processors::roberta::RobertaProcessing;
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

/// A CLIP tokenizer producing fixed-length id sequences.
pub struct ClipTokenizer {
    inner: Tokenizer,
    /// Sequence length (77 for SD).
    pub max_length: usize,
    /// Padding id (`<|endoftext|>` for SD 1.x, `!` for SD 2.x).
    pub pad_id: u32,
    bos_id: u32,
    eos_id: u32,
}

const CLIP_SPLIT: &str = r"'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+";

impl ClipTokenizer {
    /// Loads from a `tokenizer/` folder.
    pub fn load(dir: &Path) -> Result<ClipTokenizer> {
        let json = dir.join("tokenizer.json");
        let mut inner = if json.is_file() {
            Tokenizer::from_file(&json).map_err(|e| anyhow!("{}: {e}", json.display()))?
        } else {
            let (vocab, merges) = (dir.join("vocab.json"), dir.join("merges.txt"));
            for f in [&vocab, &merges] {
                if !f.is_file() {
                    anyhow::bail!(
                        "tokenizer file {} is missing (a tokenizer folder needs tokenizer.json, or vocab.json and merges.txt)",
                        f.display()
                    );
                }
            }
            Self::from_vocab_merges(&vocab, &merges)?
        };
        let config: serde_json::Value = std::fs::read_to_string(dir.join("tokenizer_config.json"))
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or(serde_json::Value::Null);
        let token_name = |v: &serde_json::Value| -> Option<String> {
            v.as_str()
                .map(String::from)
                .or_else(|| v.get("content").and_then(|c| c.as_str()).map(String::from))
        };
        let pad_name = token_name(&config["pad_token"]).unwrap_or_else(|| "<|endoftext|>".into());
        // transformers makes every special token of the config an added token, matched in the text
        // before BPE: with SDXL's tokenizer_2 (and SD 2.x's) a "!" in a prompt is the pad token
        if inner.token_to_id(&pad_name).is_some()
            && pad_name != "<|endoftext|>"
            && pad_name != "<|startoftext|>"
        {
            let _added = inner.add_special_tokens(vec![AddedToken::from(pad_name.clone(), true)]);
        }
        let id = |name: &str| {
            inner.token_to_id(name).ok_or_else(|| {
                anyhow!("{}: token `{name}` is not in the vocabulary", dir.display())
            })
        };
        let max_length = config["model_max_length"]
            .as_u64()
            .filter(|&n| n > 2 && n <= 4096)
            .unwrap_or(77) as usize;
        Ok(ClipTokenizer {
            pad_id: id(&pad_name)?,
            bos_id: id("<|startoftext|>")?,
            eos_id: id("<|endoftext|>")?,
            max_length,
            inner,
        })
    }

    fn from_vocab_merges(vocab: &Path, merges: &Path) -> Result<Tokenizer> {
        let err = |e: tokenizers::Error| {
            anyhow!(
                "cannot build the CLIP tokenizer from {}: {e}",
                vocab.display()
            )
        };
        let bpe = BPE::from_file(&vocab.to_string_lossy(), &merges.to_string_lossy())
            .unk_token("<|endoftext|>".into())
            .end_of_word_suffix("</w>".into())
            .continuing_subword_prefix(String::new())
            .build()
            .map_err(err)?;
        let mut tok = Tokenizer::new(bpe);
        let normalizer = Sequence::new(vec![
            NFC.into(),
            Replace::new(ReplacePattern::Regex(r"\s+".into()), " ")
                .map_err(err)?
                .into(),
            Lowercase.into(),
        ]);
        tok.with_normalizer(Some(normalizer)).map_err(err)?;
        let split = Split::new(
            SplitPattern::Regex(CLIP_SPLIT.into()),
            SplitDelimiterBehavior::Removed,
            true,
        )
        .map_err(err)?;
        tok.with_pre_tokenizer(Some(PreSequence::new(vec![
            split.into(),
            ByteLevel::new(false, true, false).into(),
        ])));
        // the special tokens' ids come from the vocabulary (49406/49407 in CLIP's, others in cut-down ones)
        let special = |name: &str| {
            tok.token_to_id(name).ok_or_else(|| {
                anyhow!(
                    "{}: token `{name}` is not in the vocabulary",
                    vocab.display()
                )
            })
        };
        let (bos, eos) = (special("<|startoftext|>")?, special("<|endoftext|>")?);
        tok.with_post_processor(Some(
            RobertaProcessing::new(
                ("<|endoftext|>".into(), eos),
                ("<|startoftext|>".into(), bos),
            )
            .trim_offsets(false)
            .add_prefix_space(false),
        ));
        tok.with_decoder(Some(ByteLevelDecoder::default()));
        let _added = tok.add_special_tokens(vec![
            AddedToken::from("<|startoftext|>", true),
            AddedToken::from("<|endoftext|>", true),
        ]);
        Ok(tok)
    }

    /// The id of a vocabulary entry (`",</w>"`), if present.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The start-of-text id.
    pub fn bos_id(&self) -> u32 {
        self.bos_id
    }

    /// The end-of-text id.
    pub fn eos_id(&self) -> u32 {
        self.eos_id
    }

    /// Content token ids of `text`, without start/end tokens or padding.
    pub fn content_ids(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, true)
            .map_err(|e| anyhow!("cannot tokenize {text:?}: {e}"))?;
        let ids = enc.get_ids();
        // strip the post-processor's bos/eos
        let start = usize::from(ids.first() == Some(&self.bos_id));
        let end = ids.len() - usize::from(ids.len() > start && ids.last() == Some(&self.eos_id));
        Ok(ids[start..end].to_vec())
    }

    /// `tokenizer(text, padding="max_length", truncation=True)`: bos, up to `max_length - 2`
    /// content tokens, eos, then padding.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let content = self.content_ids(text).context("tokenizing a prompt")?;
        let mut ids = Vec::with_capacity(self.max_length);
        ids.push(self.bos_id);
        ids.extend(content.iter().take(self.max_length - 2));
        ids.push(self.eos_id);
        ids.resize(self.max_length, self.pad_id);
        Ok(ids)
    }
}
