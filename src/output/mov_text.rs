//! Subtitle streams in mp4 files: an `.srt` file embedded as a mov_text stream (Deforum's
//! `deforum_embed_srt`, which runs `ffmpeg -i video.mp4 -i video.srt -c copy -c:s mov_text
//! -metadata:s:s:0 title="Deforum Data"`), and the cues of such a stream read back.
//!
//! The cue text goes through FFmpeg's own SubRip decoder and mov_text encoder, as with Deforum's
//! command; ffmpeg-next wraps neither the encoder's output size nor the subtitle's release, so
//! those two calls are made on `ffmpeg::ffi` directly.

use std::path::Path;

use anyhow::{Context as _, Result, anyhow, bail};
use ffmpeg_next as ffmpeg;

use ffmpeg::codec::Id;
use ffmpeg::ffi;
use ffmpeg::media::Type;

/// The largest encoded cue (mov_text stores the text's length in 16 bits; styles come after).
const MAX_CUE_BYTES: usize = 1 << 18;

/// One subtitle cue: shown from `start_ms` to `end_ms` (milliseconds), saying `text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cue {
    /// When the cue appears, in milliseconds.
    pub start_ms: i64,
    /// When it goes, in milliseconds.
    pub end_ms: i64,
    /// Its text (lines joined by `\n`).
    pub text: String,
}

/// Rewrites the mp4 `video` in place with the cues of the SubRip file `srt` as a mov_text
/// subtitle stream whose `title` metadata is set as Deforum's command sets it (FFmpeg 5.1's mp4
/// muxer does not store a track title, with Deforum's command neither). Every other stream of `video` is
/// stream-copied; a subtitle stream it already has is replaced, so embedding twice gives the
/// same file as once. The file is written without version strings (`+bitexact`), so the same
/// inputs always give the same bytes.
///
/// # Errors
/// A video or SRT file FFmpeg cannot read (naming it), an SRT file without cues, a cue too long
/// for mov_text, or a write error.
pub fn embed_srt(video: &Path, srt: &Path, title: &str) -> Result<()> {
    super::init_ffmpeg()?;
    let mut vin = ffmpeg::format::input(super::ffmpeg_path(video)?)
        .with_context(|| format!("cannot open {}", video.display()))?;
    let mut sin = ffmpeg::format::input(super::ffmpeg_path(srt)?)
        .with_context(|| format!("cannot read {} as SubRip subtitles", srt.display()))?;
    let sstream = sin
        .streams()
        .best(Type::Subtitle)
        .filter(|s| s.parameters().id() == Id::SUBRIP)
        .ok_or_else(|| anyhow!("{} is not a SubRip (.srt) file", srt.display()))?;
    let (sidx, stb) = (sstream.index(), sstream.time_base());
    let mut dec = ffmpeg::codec::context::Context::from_parameters(sstream.parameters())?
        .decoder()
        .subtitle()
        .context("cannot open FFmpeg's SubRip decoder")?;
    let codec = ffmpeg::encoder::find(Id::MOV_TEXT)
        .ok_or_else(|| anyhow!("this FFmpeg has no mov_text encoder"))?;
    let mut ectx = ffmpeg::codec::context::Context::new_with_codec(codec)
        .encoder()
        .subtitle()?;
    ectx.set_time_base((1, 1000));
    // the encoder's default style comes from the decoder's ASS header, as ffmpeg's CLI hands it on
    // SAFETY: both contexts are open/allocated; the copy is a fresh av_malloc'd buffer that the
    // encoder context owns and frees (avcodec_free_context)
    unsafe {
        let d = dec.as_ptr();
        let e = ectx.as_mut_ptr();
        let n = (*d).subtitle_header_size;
        if n > 0 && !(*d).subtitle_header.is_null() {
            let buf = ffi::av_mallocz(n as usize + 1) as *mut u8;
            if buf.is_null() {
                bail!("out of memory copying the subtitle header");
            }
            std::ptr::copy_nonoverlapping((*d).subtitle_header, buf, n as usize);
            (*e).subtitle_header = buf;
            (*e).subtitle_header_size = n;
        }
    }
    let mut enc = ectx
        .open_as(codec)
        .context("cannot open FFmpeg's mov_text encoder")?;

    let tmp = video.with_extension("srt.tmp");
    let mut out = ffmpeg::format::output_as(super::ffmpeg_path(&tmp)?, "mp4")
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    // every stream of the video but its subtitles, in order
    let mut map: Vec<Option<usize>> = Vec::new();
    let mut in_tbs = Vec::new();
    for s in vin.streams() {
        in_tbs.push(s.time_base());
        if s.parameters().medium() == Type::Subtitle {
            map.push(None);
            continue;
        }
        let mut o = out.add_stream(ffmpeg::encoder::find(Id::None))?;
        o.set_parameters(s.parameters());
        o.set_time_base(s.time_base());
        // SAFETY: a plain field write on parameters the muxer owns; 0 lets mp4 pick its tag
        unsafe {
            (*o.parameters().as_mut_ptr()).codec_tag = 0;
        }
        map.push(Some(o.index()));
    }
    let sub_index = {
        let mut o = out.add_stream(codec)?;
        o.set_parameters(&enc);
        o.set_time_base((1, 1000));
        let mut meta = ffmpeg::Dictionary::new();
        meta.set("title", title);
        o.set_metadata(meta);
        o.index()
    };
    let mut opts = ffmpeg::Dictionary::new();
    opts.set("fflags", "+bitexact");
    opts.set("movflags", "+faststart");
    out.write_header_with(opts)
        .with_context(|| format!("cannot write the header of {}", tmp.display()))?;
    let out_tbs: Vec<_> = out.streams().map(|s| s.time_base()).collect();

    for (s, mut pkt) in vin.packets() {
        let Some(Some(o)) = map.get(s.index()).copied() else {
            continue;
        };
        pkt.set_stream(o);
        pkt.rescale_ts(in_tbs[s.index()], out_tbs[o]);
        pkt.set_position(-1);
        pkt.write_interleaved(&mut out)?;
    }
    let mut buf = vec![0u8; MAX_CUE_BYTES];
    let mut cues = 0usize;
    for (s, pkt) in sin.packets() {
        if s.index() != sidx {
            continue;
        }
        let mut sub = ffmpeg::Subtitle::new();
        let got = dec.decode(&pkt, &mut sub);
        // SAFETY: `sub` was filled by the decoder (or left zeroed); the encoder reads its rects
        // and av_subtitle_free releases them (ffmpeg-next's Subtitle has no Drop)
        let size = unsafe {
            let size = match got {
                Ok(true) => ffi::avcodec_encode_subtitle(
                    enc.as_mut_ptr(),
                    buf.as_mut_ptr(),
                    buf.len() as i32,
                    sub.as_ptr(),
                ),
                _ => -1,
            };
            ffi::avsubtitle_free(sub.as_mut_ptr());
            size
        };
        let at = pkt.pts().unwrap_or(0) as f64 * f64::from(stb);
        match got {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => bail!("{}: the cue at {at:.3} s: {e}", srt.display()),
        }
        if size < 0 {
            bail!(
                "{}: the cue at {at:.3} s cannot be encoded as mov_text (longer than {} bytes?)",
                srt.display(),
                MAX_CUE_BYTES
            );
        }
        let mut opkt = ffmpeg::Packet::copy(&buf[..size as usize]);
        opkt.set_pts(pkt.pts());
        opkt.set_dts(pkt.pts());
        opkt.set_duration(pkt.duration());
        opkt.set_stream(sub_index);
        opkt.rescale_ts(stb, out_tbs[sub_index]);
        opkt.write_interleaved(&mut out)?;
        cues += 1;
    }
    if cues == 0 {
        drop(out);
        let _ = std::fs::remove_file(&tmp);
        bail!("{} has no cues", srt.display());
    }
    out.write_trailer()?;
    drop(out);
    std::fs::rename(&tmp, video)
        .with_context(|| format!("cannot move {} into place", tmp.display()))?;
    Ok(())
}

/// The cues of the first subtitle stream of `video` (mov_text: each sample a 16-bit big-endian
/// length, then that many bytes of UTF-8 text, then style boxes, which are skipped), with the
/// stream's title where the container kept one. Empty samples (the gaps mp4 fills between cues) are left out.
///
/// # Errors
/// A file FFmpeg cannot read, one without a subtitle stream, a sample shorter than its length.
pub fn read_cues(video: &Path) -> Result<(Option<String>, Vec<Cue>)> {
    super::init_ffmpeg()?;
    let mut input = ffmpeg::format::input(super::ffmpeg_path(video)?)
        .with_context(|| format!("cannot open {}", video.display()))?;
    let s = input
        .streams()
        .find(|s| s.parameters().medium() == Type::Subtitle)
        .ok_or_else(|| anyhow!("{} has no subtitle stream", video.display()))?;
    let (idx, tb) = (s.index(), s.time_base());
    let title = s.metadata().get("title").map(str::to_string);
    let ms = |t: i64| {
        // t · tb in milliseconds, exact for the 1/1000 time base the muxer keeps
        (i128::from(t) * 1000 * i128::from(tb.numerator()) / i128::from(tb.denominator().max(1)))
            as i64
    };
    let mut cues = Vec::new();
    for (s, pkt) in input.packets() {
        if s.index() != idx {
            continue;
        }
        let data = pkt.data().unwrap_or(&[]);
        if data.len() < 2 {
            continue;
        }
        let n = usize::from(u16::from_be_bytes([data[0], data[1]]));
        if n == 0 {
            continue;
        }
        let text = data.get(2..2 + n).ok_or_else(|| {
            anyhow!(
                "{}: a subtitle sample shorter than its text",
                video.display()
            )
        })?;
        let start = pkt.pts().unwrap_or(0);
        cues.push(Cue {
            start_ms: ms(start),
            end_ms: ms(start + pkt.duration()),
            text: String::from_utf8_lossy(text).into_owned(),
        });
    }
    Ok((title, cues))
}
