"""Writes the Parseq fixtures of tests/parseq.rs and their reference series.

Manifests are written in Parseq's documented export format (sd-parseq 0.1.9x, MIT): `meta`,
`prompts`, `options`, `managedFields`, `displayedFields`, `keyframes`, `rendered_frames` (per frame:
`frame`, `<field>`, `<field>_delta`, `<field>_pc`, `deforum_prompt`), `rendered_frames_meta`.
Parseq's own formulas give the companions: `<field>_delta` is the value at frame 0 and
`v[f] - v[f-1]` after, except zoom, whose delta is `1 + (z[f] - z[f-1])`; `<field>_pc` is
`v / max|v| * 100`; when `seed` is managed, `subseed = ceil(seed)` and `subseed_strength =
seed % 1` (JavaScript's remainder: negative for a negative seed).

expected.json holds the series Deforum's Parseq adapter builds from them (the specification,
read, not copied): a series of `max_frames` values, each rendered frame's value at its index, the
last rendered frame's value held from its index to the end; motion fields read `<field>_delta`
with `parseq_use_deltas` and `<field>` without.

Run with any Python 3 (standard library only): `python3 tests/data/parseq/make_parseq.py`.
"""

import json
import math
import os

HERE = os.path.dirname(os.path.abspath(__file__))

FRAMES = 10


def lerp_keys(keys, f):
    """Linear interpolation between (frame, value) keyframes, held outside them."""
    keys = sorted(keys)
    if f <= keys[0][0]:
        return keys[0][1]
    for (f0, v0), (f1, v1) in zip(keys, keys[1:]):
        if f0 <= f <= f1:
            return v0 + (v1 - v0) * (f - f0) / (f1 - f0)
    return keys[-1][1]


def js_mod(a, b):
    """JavaScript's `%`: the sign follows the dividend."""
    return math.fmod(a, b)


# (field, keyframes) of the motion manifest; values are Parseq's absolute values
FIELDS = {
    "angle": [(0, 0.0), (9, 45.0)],
    "zoom": [(0, 1.0), (4, 1.2), (9, 1.05)],
    "translation_x": [(0, 0.0), (5, 10.0), (9, -2.0)],
    "translation_z": [(0, 0.0), (9, 18.0)],
    "rotation_3d_y": [(0, 0.0), (3, 1.5), (9, 1.5)],
    "perspective_flip_fv": [(0, 53.0), (9, 60.0)],
    "fov": [(0, 70.0), (9, 40.0)],
    "strength": [(0, 0.65), (5, 0.45), (9, 0.6)],
    "scale": [(0, 7.0), (9, 9.25)],
    "noise": [(0, 0.04), (9, 0.02)],
    "contrast": [(0, 1.0), (9, 0.95)],
    "steps_schedule": [(0, 20.0), (9, 29.0)],
    "antiblur_amount": [(0, 0.1), (9, 0.3)],
    "cn_1_weight": [(0, 1.0), (9, 0.5)],
    "seed": [(0, 55.1), (9, 64.1)],
    "loopback_frames": [(0, 2.0), (9, 2.0)],
}

PROMPTS = [
    (0, "a misty forest, (sunrise:1.2) --neg blurry"),
    (4, "a misty forest: 0.5 AND a city at night: 0.5 --neg blurry: 0.5 AND people: 0.5"),
    (7, "a city at night --neg people"),
]


def prompt_at(f):
    return [p for k, p in PROMPTS if k <= f][-1]


def rendered(fields, frames, prompts=True):
    values = {name: [lerp_keys(keys, f) for f in range(frames)] for name, keys in fields.items()}
    if "seed" in values:
        values["subseed"] = [math.ceil(s) for s in values["seed"]]
        values["subseed_strength"] = [js_mod(s, 1) for s in values["seed"]]
    out = []
    for f in range(frames):
        row = {"frame": f}
        for name, v in values.items():
            row[name] = v[f]
            if f == 0:
                d = v[0]
            elif name == "zoom":
                d = 1 + (v[f] - v[f - 1])
            else:
                d = v[f] - v[f - 1]
            row[name + "_delta"] = d
            top = max(abs(x) for x in v)
            row[name + "_pc"] = 0 if top == 0 else v[f] / top * 100
        if prompts:
            row["deforum_prompt"] = prompt_at(f)
        out.append(row)
    meta = {
        name: {
            "max": max(abs(x) for x in v),
            "min": min(v),
            "isFlat": all(x == v[0] for x in v),
        }
        for name, v in values.items()
    }
    return out, meta


def manifest(fields, frames, options, prompts=True):
    rows, meta = rendered(fields, frames, prompts)
    keyframes = []
    for f in sorted({k for keys in fields.values() for k, _ in keys}):
        kf = {"frame": f}
        for name, keys in fields.items():
            for k, v in keys:
                if k == f:
                    kf[name] = v
                    kf[name + "_i"] = "L"
        keyframes.append(kf)
    return {
        "meta": {
            "generated_by": "sd_parseq",
            "version": "0.1.94",
            "generated_at": "Mon, 07 Dec 2026 00:00:00 GMT",
            "doc_id": "doc-anim-test",
            "version_id": "version-anim-test",
        },
        "prompts": {
            "format": "v2",
            "enabled": prompts,
            "commonPrompt": {"positive": "", "negative": ""},
            "commonPromptPos": "append",
            "promptList": [
                {
                    "name": f"Prompt {i + 1}",
                    "positive": p.split(" --neg ")[0],
                    "negative": p.split(" --neg ")[1],
                    "allFrames": False,
                    "from": k,
                    "to": (PROMPTS[i + 1][0] - 1) if i + 1 < len(PROMPTS) else frames - 1,
                    "overlap": {"inFrames": 0, "outFrames": 0, "type": "none", "custom": "prompt"},
                }
                for i, (k, p) in enumerate(PROMPTS)
            ],
        },
        "options": options,
        "managedFields": list(fields.keys()),
        "displayedFields": list(fields.keys()),
        "keyframes": keyframes,
        "timeSeries": [],
        "keyframeLock": "frames",
        "reverseRender": False,
        "rendered_frames": rows,
        "rendered_frames_meta": meta,
    }


def deforum_series(m, field, max_frames):
    """Deforum's parseq_to_series: None where no rendered frame writes (NaN in Deforum)."""
    frames = m["rendered_frames"]
    if field not in frames[0]:
        return None
    out = [None] * max_frames
    for row in frames:
        if row["frame"] < max_frames:
            out[row["frame"]] = row[field]
    last = frames[-1]
    for i in range(last["frame"], max_frames):
        out[i] = last[field]
    return out


# anim schedule -> Parseq field (Deforum's adapter); motion fields take `_delta` with deltas on
DELTA = ["angle", "zoom", "translation_x", "translation_y", "translation_z", "rotation_3d_x",
         "rotation_3d_y", "rotation_3d_z", "perspective_flip_theta", "perspective_flip_phi",
         "perspective_flip_gamma"]
OTHER = {
    "perspective_flip_fv": "perspective_flip_fv", "fov": "fov", "strength": "strength",
    "cfg_scale": "scale", "noise": "noise", "contrast": "contrast", "steps": "steps_schedule",
    "amount": "antiblur_amount", "cn_1_weight": "cn_1_weight", "seed": "seed",
    "subseed": "subseed", "subseed_strength": "subseed_strength",
}


def expected(m, max_frames, use_deltas):
    out = {}
    for name in DELTA:
        s = deforum_series(m, name + ("_delta" if use_deltas else ""), max_frames)
        if s is not None:
            out[name] = s
    for name, field in OTHER.items():
        s = deforum_series(m, field, max_frames)
        if s is not None:
            out[name] = s
    prompts = deforum_series(m, "deforum_prompt", max_frames)
    return {"schedules": out, "prompts": prompts}


def write(name, obj):
    with open(os.path.join(HERE, name), "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")


def main():
    motion = manifest(FIELDS, FRAMES, {"input_fps": 24, "bpm": 120, "output_fps": 24,
                                       "cadence": 2})
    write("motion.json", motion)
    # a manifest shorter than the scene: 6 rendered frames, no prompts, no overrides in options
    short_fields = {k: FIELDS[k] for k in ["zoom", "translation_x", "strength"]}
    short = manifest({k: [(min(f, 5), v) for f, v in keys] for k, keys in short_fields.items()},
                     6, {"input_fps": 24, "bpm": 120, "output_fps": 0, "cadence": 0},
                     prompts=False)
    write("short.json", short)
    write("expected.json", {
        "motion_deltas": expected(motion, FRAMES, True),
        "motion_absolute": expected(motion, FRAMES, False),
        "motion_16_frames": expected(motion, 16, True),
        "short_12_frames": expected(short, 12, True),
    })
    # bad manifests: each breaks one rule
    bad = json.loads(json.dumps(short))
    del bad["rendered_frames"][2:4]
    write("bad/missing-frames.json", bad)
    bad = json.loads(json.dumps(short))
    bad["rendered_frames"][3]["strength"] = "high"
    write("bad/non-numeric.json", bad)
    bad = json.loads(json.dumps(short))
    del bad["rendered_frames"][4]["zoom_delta"]
    write("bad/missing-field.json", bad)
    bad = json.loads(json.dumps(short))
    del bad["rendered_frames"]
    write("bad/no-rendered-frames.json", bad)
    with open(os.path.join(HERE, "bad/not-json.json"), "w") as f:
        f.write(json.dumps(short, indent=1)[:300])


if __name__ == "__main__":
    main()
