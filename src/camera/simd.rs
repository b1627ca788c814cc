//! AVX2 building blocks shared by the resampling kernels of [`super::warp3d`] and
//! [`super::warp2d`]: pixel gathers with zero outside the frame, channel unpacking, RGB stores.
//! Pixels travel as one `0x00BBGGRR` i32 per lane. Callers enable AVX2 and check for it at run
//! time.

use std::arch::x86_64::*;

/// Whether a frame of `len` bytes can be addressed by i32 byte offsets (with room for the
/// offset arithmetic) and holds the 4 bytes one gather reads.
pub(crate) fn fits(len: usize) -> bool {
    (4..i32::MAX as usize / 2).contains(&len)
}

/// All bits set where `0 <= i < n`.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn within(i: __m256i, n: usize) -> __m256i {
    _mm256_andnot_si256(
        _mm256_cmpgt_epi32(_mm256_setzero_si256(), i),
        _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), i),
    )
}

/// Byte offset `(y * w + x) * 3` of pixel (x, y) in a frame `w` pixels wide, in i32 (lanes
/// outside the frame may wrap; they are masked out of the gathers).
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn offset(w: usize, x: __m256i, y: __m256i) -> __m256i {
    let p = _mm256_add_epi32(_mm256_mullo_epi32(y, _mm256_set1_epi32(w as i32)), x);
    _mm256_add_epi32(p, _mm256_add_epi32(p, p))
}

/// The pixel at byte offset `o` of `src` in each lane of `mask` as `0x??BBGGRR` (the top byte
/// is the next value in memory: [`channel`] ignores it), zero in the other lanes. A pixel in
/// the last 4 bytes of the frame is read one byte early and shifted down, so no read passes the
/// end.
///
/// # Safety
/// Every lane in `mask` is the offset of a pixel of `src`, and [`fits`]`(src.len())`.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn pixels(src: &[u8], o: __m256i, mask: __m256i) -> __m256i {
    let start = _mm256_min_epi32(o, _mm256_set1_epi32(src.len() as i32 - 4));
    let shift = _mm256_slli_epi32::<3>(_mm256_sub_epi32(o, start));
    // SAFETY: lanes in `mask` read 4 bytes from 0 <= start <= len - 4 (caller's contract)
    let v = unsafe {
        _mm256_mask_i32gather_epi32::<1>(_mm256_setzero_si256(), src.as_ptr().cast(), start, mask)
    };
    _mm256_srlv_epi32(v, shift)
}

/// [`pixels`] for lanes that all read inside `src`: one plain gather.
///
/// # Safety
/// `0 <= o` and `o + 4 <= src.len()` in every lane.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn pixels_inside(src: &[u8], o: __m256i) -> __m256i {
    // SAFETY: every lane reads 4 bytes of src (caller's contract)
    unsafe { _mm256_i32gather_epi32::<1>(src.as_ptr().cast(), o) }
}

/// Channel `C` (0 red, 1 green, 2 blue) of pixels from [`pixels`], as i32.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn channel<const C: i32>(v: __m256i) -> __m256i {
    let v = match C {
        0 => v,
        1 => _mm256_srli_epi32::<8>(v),
        _ => _mm256_srli_epi32::<16>(v),
    };
    _mm256_and_si256(v, _mm256_set1_epi32(0xff))
}

/// The three channels of pixels from [`pixels`] as float32.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn channels_f32(v: __m256i) -> [__m256; 3] {
    [
        _mm256_cvtepi32_ps(channel::<0>(v)),
        _mm256_cvtepi32_ps(channel::<1>(v)),
        _mm256_cvtepi32_ps(channel::<2>(v)),
    ]
}

/// Packs channel values already in 0..=255 as `0x00BBGGRR`.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn pack_rgb(c: [__m256i; 3]) -> __m256i {
    _mm256_or_si256(
        _mm256_or_si256(c[0], _mm256_slli_epi32::<8>(c[1])),
        _mm256_slli_epi32::<16>(c[2]),
    )
}

/// Stores the low three bytes of each lane as eight RGB pixels, `out[..24]`.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn store_rgb(out: &mut [u8], v: __m256i) {
    assert!(out.len() >= 24);
    let keep = _mm256_setr_epi8(
        0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1, //
        0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1,
    );
    let packed = _mm256_shuffle_epi8(v, keep);
    let (lo, hi) = (
        _mm256_castsi256_si128(packed),
        _mm256_extracti128_si256::<1>(packed),
    );
    // SAFETY: out holds 24 bytes; the first store's last 4 bytes are rewritten by the second
    unsafe {
        _mm_storeu_si128(out.as_mut_ptr().cast(), lo);
        _mm_storel_epi64(out.as_mut_ptr().add(12).cast(), hi);
        let tail = _mm_extract_epi32::<2>(hi) as u32;
        out.as_mut_ptr().add(20).cast::<u32>().write_unaligned(tail);
    }
}
