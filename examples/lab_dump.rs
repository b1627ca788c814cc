//! Writes `rgb_to_lab` of all 2^24 RGB colours and `lab_to_rgb` of all 2^24 LAB triples as raw
//! bytes (3 per entry, input order `(c0 << 16) | (c1 << 8) | c2`), for `scripts/check_lab_exact.py`.
//!
//! Usage: `cargo run --release --example lab_dump -- /tmp/rgb2lab.bin /tmp/lab2rgb.bin`

use anim::effects::color::{lab_to_rgb, rgb_to_lab};
use std::io::Write;

fn dump(path: &str, f: fn([u8; 3]) -> [u8; 3]) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(3 << 24);
    for i in 0u32..1 << 24 {
        out.extend_from_slice(&f([(i >> 16) as u8, (i >> 8) as u8, i as u8]));
    }
    std::fs::File::create(path)?.write_all(&out)
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let rgb2lab = args.get(1).map_or("/tmp/rgb2lab.bin", String::as_str);
    let lab2rgb = args.get(2).map_or("/tmp/lab2rgb.bin", String::as_str);
    dump(rgb2lab, rgb_to_lab)?;
    dump(lab2rgb, lab_to_rgb)?;
    eprintln!("wrote {rgb2lab} and {lab2rgb}");
    Ok(())
}
