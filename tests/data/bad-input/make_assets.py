"""Makes the binary files of the bad-input corpus (tests/data/bad-input/assets/ and the ONNX
files of tests/data/bad-input/models/): broken pictures, videos, audio and ONNX models.

Every file is small and deterministic. The text files of the corpus (scenes, Deforum settings,
motion scripts) are written by hand; tests/bad_input.rs runs all of them.

Needs onnx and the ffmpeg command line:

    python3 -m venv venv && venv/bin/pip install onnx
    venv/bin/python tests/data/bad-input/make_assets.py
"""

import pathlib
import struct
import subprocess
import tempfile
import zlib

import onnx
from onnx import TensorProto, helper

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[2]
ASSETS = HERE / "assets"
MODELS = HERE / "models"


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(width: int, height: int, rows: bytes) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(rows, 9))
        + png_chunk(b"IEND", b"")
    )


def pictures() -> None:
    # a valid 16x16 gradient, cut in the middle of its pixel data
    rows = b"".join(
        b"\x00" + bytes(v for x in range(16) for v in (x * 16, y * 16, 128)) for y in range(16)
    )
    good = png(16, 16, rows)
    (ASSETS / "truncated.png").write_bytes(good[: len(good) // 2])
    (ASSETS / "empty.png").write_bytes(b"")
    (ASSETS / "text.png").write_bytes(b"this is a text file named .png, not a picture\n")
    # a header that claims 100000 x 100000 pixels (30 GB of RGB) over a few bytes of data
    (ASSETS / "huge.png").write_bytes(png(100000, 100000, b"\x00" * 64))
    # a JPEG cut after its headers
    with tempfile.TemporaryDirectory() as d:
        jpg = pathlib.Path(d) / "a.jpg"
        subprocess.run(
            ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=64x64", "-frames:v", "1",
             "-bitexact", str(jpg)],
            check=True,
        )
        data = jpg.read_bytes()
        (ASSETS / "truncated.jpg").write_bytes(data[: len(data) // 3])


def videos() -> None:
    with tempfile.TemporaryDirectory() as d:
        mp4 = pathlib.Path(d) / "a.mp4"
        # moov at the end (no faststart): the cut file has no index at all
        subprocess.run(
            ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=64x64:rate=8",
             "-frames:v", "16", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-bitexact",
             "-fflags", "+bitexact", "-flags", "+bitexact", str(mp4)],
            check=True,
        )
        data = mp4.read_bytes()
        (ASSETS / "truncated.mp4").write_bytes(data[: len(data) // 2])
        # moov first (faststart): the index promises 16 frames, the data stops half-way
        fast = pathlib.Path(d) / "b.mp4"
        subprocess.run(
            ["ffmpeg", "-v", "error", "-i", str(mp4), "-c", "copy", "-movflags", "+faststart",
             "-fflags", "+bitexact", str(fast)],
            check=True,
        )
        data = fast.read_bytes()
        (ASSETS / "cut-after-index.mp4").write_bytes(data[: len(data) * 2 // 3])
    (ASSETS / "empty.mp4").write_bytes(b"")
    (ASSETS / "text.mp4").write_bytes(b"not a video\n" * 8)
    (ASSETS / "not-audio.mp3").write_bytes(b"ID3 but not really an mp3\n")


def identity_model(inputs: list[str], output: str) -> onnx.ModelProto:
    """One Identity node from the first input; other inputs are unused."""
    vis = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4, 8, 8]) for n in inputs]
    out = helper.make_tensor_value_info(output, TensorProto.FLOAT, [1, 4, 8, 8])
    graph = helper.make_graph([helper.make_node("Identity", [inputs[0]], [output])], "bad", vis, [out])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="anim bad-input")
    m.ir_version = 8
    return m


def models() -> None:
    (ASSETS / "garbage.onnx").write_bytes(b"this is not an ONNX protobuf\n")
    depth = (ROOT / "models/tiny-depth/model.onnx").read_bytes()
    (ASSETS / "truncated.onnx").write_bytes(depth[: len(depth) // 3])
    unet = (ROOT / "models/tiny-sd/unet/model.onnx").read_bytes()
    (MODELS / "truncated-unet/unet/model.onnx").write_bytes(unet[:4096])
    (MODELS / "garbage-text-encoder/text_encoder/model.onnx").write_bytes(b"\x00\x01garbage" * 64)
    onnx.save(identity_model(["latent", "t", "context"], "out"), MODELS / "wrong-unet-inputs/unet/model.onnx")
    onnx.save(identity_model(["tokens"], "last_hidden_state"), MODELS / "wrong-text-encoder-inputs/text_encoder/model.onnx")


if __name__ == "__main__":
    pictures()
    videos()
    models()
