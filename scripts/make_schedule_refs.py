#!/usr/bin/env python3
"""Generate reference values for Deforum keyframe schedules, computed by Deforum's own code.

What it does
------------
Deforum (``deforum-art/sd-webui-deforum``) turns every schedule string such as
``0: (1.0025+0.002*sin(1.25*3.14*t/30))`` into one value per frame with
``FrameInterpolater`` in ``scripts/deforum_helpers/animation_key_frames.py``.
``DeformAnimKeys`` builds it as::

    fi = FrameInterpolater(anim_args.max_frames, seed)
    series = fi.parse_inbetweens(value, name)                          # numeric schedules
    series = fi.parse_inbetweens(value, name, is_single_string=True)   # sampler/checkpoint/mask schedules

and ``parse_inbetweens`` is exactly ``get_inbetweens(parse_key_frames(value))``.
This script does the same calls, one per case in ``CASES`` below, and writes
the results to ``<out>/deforum_cases.json``. anim's parity tests compare its
own schedule parser against that file.

Deforum is AGPL-3.0, so none of its code is in this repository. The script
loads Deforum's unmodified files at run time from the folder given by
``--deforum``. That folder must hold ``animation_key_frames.py`` and
``prompt.py``, which provides ``check_is_number``; in a clone this is
``sd-webui-deforum/scripts/deforum_helpers``. ``animation_key_frames.py``
starts with ``from .prompt import check_is_number`` and
``from modules import scripts, shared``, where ``modules`` is the
AUTOMATIC1111 webui. ``FrameInterpolater`` uses neither ``scripts`` nor
``shared``, so the script does two things before importing the file:

* It puts empty stand-in modules ``modules``, ``modules.scripts`` and
  ``modules.shared`` (with ``shared.opts.data = {}``) into ``sys.modules``.
* It registers a synthetic package ``deforum_helpers`` whose ``__path__`` is
  the ``--deforum`` folder, so the relative import ``.prompt`` resolves to
  Deforum's own ``prompt.py``.

Deforum's files are never edited. ``numexpr.evaluate`` reads ``t``, ``max_f``
and ``s`` from the local variables of Deforum's own functions, so those
functions must run unchanged. That is why the script calls them and does not
re-implement them.

Output format (``deforum_cases.json``)
--------------------------------------
::

    {"versions": {"python", "numpy", "numexpr", "pandas", "deforum_commit",
                  "deforum_files_sha256": {file: sha256}},
     "cases": [
        {"name", "schedule", "max_frames", "seed", "kind": "numeric"|"string",
         "note": what the case covers,
         "values": [one per frame], "dtype": pandas dtype of Deforum's Series}
      or, when Deforum raises:
        {"name", "schedule", "max_frames", "seed", "kind", "note",
         "error": "ExceptionType: message"}
     ]}

How values are written:

* Numeric schedules: Deforum returns a float64 pandas Series. Each element is
  written as a Python float, and ``json`` writes floats with ``repr``, so they
  parse back bit-exactly. NaN and +/-infinity are not valid JSON, so they are
  written as the strings ``"nan"``, ``"inf"`` and ``"-inf"``.
* String schedules (``kind == "string"``): Deforum returns an object Series of
  ``str``, and it is written as a list of strings.
* ``seed`` is the value Deforum's ``FrameInterpolater(max_frames, seed)``
  receives, which an expression sees as ``s``. ``-1`` is the default
  ``FrameInterpolater`` uses (ControlNet keys, Interpolation mode, Parseq
  fallback).

Error messages are those of the Python, numexpr and pandas versions used.
The exception type is the stable part. For a ``SyntaxError`` the message
contains Deforum's ``filename`` argument: this script passes the case name,
while Deforum passes the schedule name, e.g. ``zoom@frame#0``.

Usage
-----
::

    python3 -m venv /work/venv-deforum
    /work/venv-deforum/bin/pip install numpy==1.26.4 numexpr==2.14.2 pandas==1.5.3
    git clone https://github.com/deforum-art/sd-webui-deforum /work/sd-webui-deforum
    git -C /work/sd-webui-deforum checkout 322426851408ebca2cd49492bfeb1ec86e1dc869
    /work/venv-deforum/bin/python scripts/make_schedule_refs.py \\
        --deforum /work/sd-webui-deforum/scripts/deforum_helpers

``--out`` defaults to ``tests/data/schedules`` in the repository that holds
this script. The Deforum commit is found with ``git -C <deforum> rev-parse
HEAD``, or read from a ``COMMIT`` file in the ``--deforum`` folder, or given
with ``--commit``. See ``tests/data/schedules/README.md`` for details.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import math
import os
import platform
import subprocess
import sys
import types
import warnings
from pathlib import Path

# numexpr only ever sees 0-d arrays here; one thread avoids its startup notice
# and keeps CPU use low. It does not change any result.
os.environ.setdefault("NUMEXPR_MAX_THREADS", "1")
os.environ.setdefault("NUMEXPR_NUM_THREADS", "1")

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFORUM_FILES = ("animation_key_frames.py", "prompt.py")
DEFORUM_REFERENCE_COMMIT = "322426851408ebca2cd49492bfeb1ec86e1dc869"


# --------------------------------------------------------------------------
# Loading Deforum's module without the A1111 webui
# --------------------------------------------------------------------------

def load_deforum(deforum_dir: str | os.PathLike) -> types.ModuleType:
    """Import Deforum's ``animation_key_frames`` from ``deforum_dir`` unchanged.

    Stand-ins replace the webui modules it imports but never uses in
    ``FrameInterpolater``, and ``deforum_dir`` becomes the package
    ``deforum_helpers`` so that ``from .prompt import check_is_number`` loads
    Deforum's ``prompt.py``.
    """
    d = Path(deforum_dir).resolve()
    for f in DEFORUM_FILES:
        if not (d / f).is_file():
            sys.exit(f"error: {d / f} not found (--deforum must point at Deforum's "
                     f"scripts/deforum_helpers folder)")
    if "modules" not in sys.modules:
        modules = types.ModuleType("modules")
        scripts = types.ModuleType("modules.scripts")
        shared = types.ModuleType("modules.shared")
        shared.opts = types.SimpleNamespace(data={})
        modules.scripts = scripts
        modules.shared = shared
        sys.modules.update({"modules": modules, "modules.scripts": scripts,
                            "modules.shared": shared})
    pkg = types.ModuleType("deforum_helpers")
    pkg.__path__ = [str(d)]
    sys.modules["deforum_helpers"] = pkg
    return importlib.import_module("deforum_helpers.animation_key_frames")


def deforum_commit(deforum_dir: Path, override: str | None) -> str:
    if override:
        return override
    try:
        out = subprocess.run(["git", "-C", str(deforum_dir), "rev-parse", "HEAD"],
                             capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    f = deforum_dir / "COMMIT"
    if f.is_file():
        return f.read_text().strip()
    return "unknown"


def versions(deforum_dir: Path, commit: str) -> dict:
    import numexpr
    import numpy
    import pandas
    return {
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "numexpr": numexpr.__version__,
        "pandas": pandas.__version__,
        "deforum_commit": commit,
        "deforum_files_sha256": {
            f: hashlib.sha256((deforum_dir / f).read_bytes()).hexdigest() for f in DEFORUM_FILES
        },
    }


# --------------------------------------------------------------------------
# Cases: (name, schedule, max_frames, seed, kind, note)
# --------------------------------------------------------------------------

N, S = "numeric", "string"

CASES: list[tuple[str, str, int, int, str, str]] = [
    # --- plain numeric keys, linear interpolation, holding -------------------
    ("linear_two_keys", "0:(1), 9:(3)", 10, -1, N,
     "two numeric keys, linear ramp between them"),
    ("linear_three_keys", "0: (0), 10: (5), 29: (-2.5)", 30, -1, N,
     "piecewise linear through three numeric keys"),
    ("hold_after_last_key", "0:(0), 5:(10)", 10, -1, N,
     "frames after the last key hold its value"),
    ("single_constant_key", "0: (0.5)", 10, -1, N, "one key, held everywhere"),
    ("numeric_signs_and_leading_dot", "0:(+.5), 4:(-1.25), 8:(2)", 10, -1, N,
     "'+.5' and '-1.25' are numeric literals (regex ^[+-]?[0-9]*(\\.[0-9]+)?$)"),
    ("key_beyond_max_frames_ignored", "0:(1), 20:(5)", 10, -1, N,
     "key >= max_frames is stored but never visited: no ramp towards it"),
    ("key_equal_max_frames_ignored", "0:(1), 10:(5)", 10, -1, N,
     "key == max_frames is out of range too"),
    ("negative_key_ignored", "0:(1), -1:(5), 4:(3)", 10, -1, N,
     "a negative key is stored but never visited"),
    ("duplicate_keys_last_wins", "0:(0), 5:(10), 5:(20)", 10, -1, N,
     "duplicate key: the last one wins (dict overwrite)"),
    ("duplicate_key_zero_last_wins", "0:(1), 0:(3), 9:(0)", 10, -1, N,
     "duplicate frame-0 key: the last one wins"),
    ("key_order_irrelevant", "9:(3), 0:(1), 4:(2)", 10, -1, N,
     "keys in any order"),
    ("whitespace_newlines_between_pieces", "\n0: (1),\n\t5: (2) ,\r\n9:(0)\n", 10, -1, N,
     "whitespace and newlines around keys and values are stripped"),
    ("spaces_around_colon_and_inside_parens",
     " \n 0 : ( 1 ) ,\n 9 : ( 2 ) ", 10, -1, N,
     "'( 1 )' sanitizes to ' 1 ', which is not a number, so it is an expression held until frame 9"),
    ("inner_space_makes_expression", "0:( 1.0 ), 9:(2)", 10, -1, N,
     "'( 1.0 )' counts as an expression: held 1.0, not ramped to 2"),
    ("values_without_parentheses", "0:1, 9:3", 10, -1, N,
     "parentheses are optional for numeric values"),
    ("unbalanced_paren_numeric_accepted", "0:(1, 9:3)", 10, -1, N,
     "sanitize_value removes all parentheses, so an unbalanced numeric value still parses"),
    ("double_parens_numeric", "0:((2)), 9:((4))", 10, -1, N,
     "'((2))' sanitizes to '2', a numeric literal, so it is ramped"),
    ("quoted_numeric_keys", "\"0\":(1), '9':(3)", 10, -1, N,
     "quoted plain-number keys"),
    ("plus_sign_key", "+5:(1), 0:(0)", 10, -1, N, "'+5' is the key 5"),

    # --- expressions -----------------------------------------------------------
    ("expr_t", "0:(t)", 10, -1, N, "t = frame index"),
    ("expr_max_f", "0:(max_f - t)", 10, -1, N, "max_f = max_frames - 1"),
    ("expr_s_seed_42", "0:(s)", 10, 42, N, "s = seed given to FrameInterpolater"),
    ("expr_s_big_seed", "0:(s*2 + t)", 10, 1234567890, N,
     "s times 2 goes past int32; numexpr computes it in int64"),
    ("expr_s_default_minus1", "0:(s + t/10)", 10, -1, N,
     "FrameInterpolater's default seed is -1"),
    ("expr_held_not_ramped", "0:(1), 4:(1+0), 9:(3)", 10, -1, N,
     "an expression key is re-evaluated every frame until the next key, never ramped from"),
    ("expr_then_numeric", "0:(t), 5:(0)", 10, -1, N,
     "expression frames 0..4, then numeric 0 held"),
    ("mixed_numeric_expr_numeric", "0:(1), 4:(t), 6:(0), 9:(3)", 10, -1, N,
     "numeric 1 ramps to t's value at frame 4; t held to frame 5; then 0 ramps to 3"),
    ("numeric_ramps_to_expression_value", "0:(1.0), 30:(1.5*sin(2*3.14*t/30))", 60, -1, N,
     "frames 1..29 ramp from 1.0 to the expression's value at frame 30"),
    ("value_1dot_is_expression", "0:(1.), 9:(3)", 10, -1, N,
     "'1.' fails the number regex, so it is an expression held until frame 9"),
    ("value_1e-3_is_expression", "0:(0), 5:(1e-3), 9:(1)", 10, -1, N,
     "'1e-3' is an expression: 0 ramps to 0.001 at frame 5, held to 8, then 1"),
    ("unary_minus", "0:(--1), 5:(-t)", 10, -1, N, "'--1' and '-t'"),
    ("unary_minus_precedence_pow", "0:(-t**2)", 10, -1, N, "-t**2 == -(t**2)"),
    ("pow_int_and_float", "0:(t**2 + 2**0.5*t)", 10, -1, N, "** with int and float"),
    ("pow_fractional", "0:(t**0.5)", 10, -1, N, "fractional power"),
    ("mod_positive", "0:(t%3)", 10, -1, N, "integer %"),
    ("mod_negative_left_int", "0:((t-7)%3)", 10, -1, N,
     "integer % with a negative left operand: result has the divisor's sign (Python rule)"),
    ("mod_negative_right_int", "0:((t-7)%-3)", 10, -1, N,
     "integer % with a negative divisor: result has the divisor's sign"),
    ("mod_negative_float", "0:((t-7.5)%2 + (t*0.5-2)%-1.5)", 10, -1, N,
     "float % with negative operands: floor-mod, like Python, not C fmod"),
    ("mod_constant_folded", "0:(-7%3 + 7%-3)", 10, -1, N,
     "constant operands: numexpr folds them (2 + -2 = 0)"),
    ("true_division_ints", "0:(t/4 + 7/2)", 10, -1, N,
     "int / int is true division"),
    ("division_by_zero_inf", "0:(1/(t-3))", 10, -1, N,
     "1/0 on ints gives inf (written as \"inf\")"),
    ("comparison_times_float", "0:((t>10)*1.0)", 30, -1, N, "(t>10)*1.0 step"),
    ("comparison_bare_bool", "0:(t==3)", 10, -1, N, "a bare bool result becomes 0.0/1.0"),
    ("comparisons_all", "0:((t>=3)*2 + (t<=5) + (t!=4)*4 + (t<2)*8)", 10, -1, N,
     ">= <= != <"),
    ("bitwise_and", "0:((t>3)&(t<7))", 10, -1, N, "& on booleans"),
    ("bitwise_or", "0:((t<2)|(t>7))", 10, -1, N, "| on booleans"),
    ("bitwise_not", "0:(~(t>3))", 10, -1, N, "~ on booleans"),
    ("fn_sin", "0:(sin(t/5))", 30, -1, N, "sin"),
    ("fn_cos", "0:(cos(t/5))", 30, -1, N, "cos"),
    ("fn_tan", "0:(tan(t/10))", 30, -1, N, "tan"),
    ("fn_arcsin", "0:(arcsin(t/29))", 30, -1, N, "arcsin in its domain"),
    ("fn_arccos", "0:(arccos(t/29))", 30, -1, N, "arccos in its domain"),
    ("fn_arctan", "0:(arctan(t-15))", 30, -1, N, "arctan"),
    ("fn_sinh", "0:(sinh(t/10-1.5))", 30, -1, N, "sinh"),
    ("fn_cosh", "0:(cosh(t/10-1.5))", 30, -1, N, "cosh"),
    ("fn_tanh", "0:(tanh(t/5-3))", 30, -1, N, "tanh"),
    ("fn_abs", "0:(abs(t-15.5))", 30, -1, N, "abs"),
    ("fn_sqrt", "0:(sqrt(t))", 30, -1, N, "sqrt"),
    ("fn_exp", "0:(exp(t/10))", 30, -1, N, "exp"),
    ("fn_expm1", "0:(expm1(t/1000))", 30, -1, N, "expm1"),
    ("fn_log", "0:(log(t+1))", 30, -1, N, "log"),
    ("fn_log10", "0:(log10(t+1))", 30, -1, N, "log10"),
    ("fn_log1p", "0:(log1p(t/1000))", 30, -1, N, "log1p"),
    ("fn_floor", "0:(floor(t/3) + floor(-t/4))", 30, -1, N, "floor, incl. negative"),
    ("fn_ceil", "0:(ceil(t/3) + ceil(-t/4))", 30, -1, N, "ceil, incl. negative"),
    ("fn_nested", "0:(abs(sin(t/7))*sqrt(t+1) - floor(log10(t+1)*3)/cos(0.5))", 30, 7, N,
     "nested calls, no commas"),
    ("fn_log_of_zero_neg_inf", "0:(log(t))", 10, -1, N,
     "log(0) = -inf at frame 0 (written as \"-inf\")"),
    ("nan_frames_are_interpolated", "0:(1), 5:(sqrt(t-7))", 10, -1, N,
     "NaN results (frames 5,6) count as missing and are filled by the linear ramp from 1 to sqrt(0)=0"),
    ("nan_before_first_valid_backfilled", "0:(sqrt(t-5))", 10, -1, N,
     "frames 0..4 are NaN; frame 0 gets the first valid value (0.0), and 1..4 are interpolated"),
    ("nan_tail_held", "0:(arcsin(t))", 10, -1, N,
     "arcsin(t) is NaN from t=2; the last valid value (frame 1) is held"),
    ("nan_after_numeric_hold", "0:(1), 5:(arcsin(t/4))", 10, -1, N,
     "all expression frames NaN, so frame 0's 1.0 is held to the end"),
    ("inf_anchor_ramp", "0:(0), 5:(1/(t-5))", 10, -1, N,
     "numeric 0 ramps to +inf at frame 5: in-between frames become inf"),
    ("neg_inf_gap_fill", "0:(log(t-3))", 10, -1, N,
     "NaN frames between two -inf anchors are filled with -inf"),
    ("interp_inf_to_neg_inf_is_nan",
     "0:(sqrt((t-1.5)*(t-3.5))/((t-1)*(t-4))*(1-2*(t>3)))", 8, -1, N,
     "NaN at frames 2,3 between +inf (1) and -inf (4): np.interp gives NaN (\"nan\")"),
    ("int_pow_negative_exponent", "0:(2**-t)", 10, -1, N,
     "numexpr integer power with a negative exponent computes 1/base in integer arithmetic: 2**-t is 0 for t>=1"),
    ("floor_division", "0:(t//4 + (t-9)//4)", 10, -1, N, "// on ints (floor division)"),

    # --- frame-key expressions -------------------------------------------------
    ("key_quoted_max_f_minus_1", "0:(0), \"max_f-1\":(10)", 30, -1, N,
     "\"max_f-1\" = 28: ramp to frame 28, held at 29"),
    ("key_quoted_max_f", "0:(0), 'max_f':(10)", 30, -1, N, "'max_f' in single quotes"),
    ("key_bare_max_f_half", "0:(0), max_f/2:(10)", 30, -1, N,
     "max_f/2 = 14.5, int() truncates to 14"),
    ("key_paren_max_f_half", "0:(0), (max_f/2):(10)", 30, -1, N,
     "(max_f/2) = 14.5 -> 14"),
    ("key_max_f_fraction", "0:(1), max_f*0.3:(5)", 10, -1, N, "9*0.3 = 2.7 -> 2"),
    ("key_uses_seed", "0:(0), \"s%20\":(20)", 30, 1234567890, N,
     "key expression with s: 1234567890 % 20 = 10"),
    ("key_expression_negative_ignored", "0:(1), \"max_f-20\":(5)", 10, -1, N,
     "max_f-20 = -11: never visited"),

    # --- Deforum defaults ----------------------------------------------------------
    ("default_zoom", "0: (1.0025+0.002*sin(1.25*3.14*t/30))", 120, -1, N, "default zoom"),
    ("default_zoom_1_frame", "0: (1.0025+0.002*sin(1.25*3.14*t/30))", 1, -1, N,
     "default zoom, max_frames 1"),
    ("default_noise", "0: (0.065)", 120, -1, N, "default noise_schedule"),
    ("default_strength", "0: (0.65)", 120, -1, N, "default strength_schedule"),
    ("default_contrast", "0: (1.0)", 30, -1, N, "default contrast_schedule"),
    ("default_cfg_scale", "0: (7)", 30, -1, N, "default cfg_scale_schedule"),
    ("default_translation_z", "0: (1.75)", 30, -1, N, "default translation_z"),
    ("default_perspective_flip_fv", "0: (53)", 30, -1, N, "default perspective_flip_fv"),
    ("default_noise_multiplier", "0: (1.05)", 30, -1, N, "default noise_multiplier_schedule"),
    ("default_pix2pix_cfg", "0:(1.5)", 30, -1, N, "default pix2pix_img_cfg_scale_schedule"),
    ("default_cn_guidance_start", "0:(0.0)", 30, -1, N, "default cn_N_guidance_start"),
    ("default_seed_schedule", "0:(s), 1:(-1), \"max_f-2\":(-1), \"max_f-1\":(s)", 120, 42, N,
     "default seed_schedule"),
    ("default_seed_schedule_big_seed", "0:(s), 1:(-1), \"max_f-2\":(-1), \"max_f-1\":(s)", 10,
     4294967295, N, "default seed_schedule with seed 2**32-1"),
    ("default_seed_schedule_1_frame", "0:(s), 1:(-1), \"max_f-2\":(-1), \"max_f-1\":(s)", 1,
     42, N, "max_frames 1: keys 1, -2, -1 ignored"),
    ("default_seed_schedule_2_frames", "0:(s), 1:(-1), \"max_f-2\":(-1), \"max_f-1\":(s)", 2,
     42, N, "max_frames 2: max_f-1 = 0 overwrites key 0 with (s)"),
    ("default_seed_schedule_3_frames", "0:(s), 1:(-1), \"max_f-2\":(-1), \"max_f-1\":(s)", 3,
     42, N, "max_frames 3: max_f-2 = 0 overwrites key 0 with -1, max_f-1 = 1 overwrites key 1 with s"),
    ("default_seed_schedule_no_seed", "0:(s), 1:(-1), \"max_f-2\":(-1), \"max_f-1\":(s)", 10,
     -1, N, "FrameInterpolater without seed: s = -1"),

    # --- small max_frames ------------------------------------------------------------
    ("one_frame_two_keys", "0:(1), 1:(5)", 1, -1, N, "max_frames 1: key 1 ignored"),
    ("two_frames_two_keys", "0:(1), 1:(5)", 2, -1, N, "max_frames 2"),
    ("two_frames_one_key", "0:(2.5)", 2, -1, N, "max_frames 2, one key"),
    ("one_frame_expression", "0:(max_f + t + 3)", 1, 0, N, "max_f = 0 with max_frames 1"),

    # --- long ------------------------------------------------------------------------
    ("long_500_frames",
     "0:(1.0), 50:(1.2), 120:(0.9+0.1*sin(t/10)), 200:(1), 350:(cos(t/25)*0.5), "
     "420:(0.75), \"max_f-50\":(2), 499:(1.5), 600:(9)", 500, 1234567890, N,
     "500 frames, numeric/expression mix, key at max_f-50 = 449, key 600 ignored"),
    ("long_500_seed_expr", "0:(s%1000 + t*0.25), 250:(s/1e9), 400:(-3.5)", 500, 4294967295, N,
     "500 frames, seed in expressions"),

    # --- errors ----------------------------------------------------------------------
    ("err_no_frame_zero", "5:(1)", 10, -1, N,
     "no frame-0 key: Deforum reads value_is_number before assigning it"),
    ("err_no_frame_zero_two_keys", "3:(1), 8:(2)", 10, -1, N, "no frame-0 key"),
    ("err_empty_string", "", 10, -1, N, "empty schedule"),
    ("err_key_without_value", "0:", 10, -1, N, "'0:' has an empty value"),
    ("err_empty_parens", "0:()", 10, -1, N, "'()' is an empty tuple for numexpr"),
    ("err_lone_minus", "0:(-)", 10, -1, N,
     "'-' passes the number regex but float('-') fails"),
    ("err_unbalanced_paren_expression", "0:(sin(t)", 10, -1, N,
     "an unclosed '(' in an expression is a SyntaxError"),
    ("err_unbalanced_paren_later_key", "0:(1), 5:(sin(t)", 10, -1, N,
     "an unclosed '(' in a later key"),
    ("err_unknown_function", "0:(foo(t))", 10, -1, N, "unknown function"),
    ("err_unknown_variable", "0:(foo + 1)", 10, -1, N, "unknown variable"),
    ("err_pi_undefined", "0:(sin(pi*t))", 10, -1, N, "there is no pi"),
    ("err_t_in_key", "0:(1), t:(5)", 10, -1, N, "t is not defined when keys are parsed"),
    ("err_non_integer_key", "0:(1), 4.5:(2)", 10, -1, N, "int('4.5') fails"),
    ("err_where_with_commas", "0:(where(t>3,1,0))", 10, -1, N,
     "split on every comma: 'where(...)' is unusable"),
    ("err_arctan2_with_comma", "0:(arctan2(t,2))", 10, -1, N,
     "split on every comma: 'arctan2(a,b)' is unusable"),
    ("err_fmod_with_comma", "0:(fmod(t,3))", 10, -1, N,
     "split on every comma: 'fmod(a,b)' is unusable"),
    ("err_fmod_single_argument", "0:(fmod(t))", 10, -1, N, "fmod needs two arguments"),
    ("err_tuple_value", "0:(1,2)", 10, -1, N, "a comma inside a value"),
    ("err_trailing_comma", "0:(1),", 10, -1, N, "empty piece after a trailing comma"),
    ("err_double_comma", "0:(1),, 5:(2)", 10, -1, N, "empty piece between two commas"),
    ("err_missing_comma", "0:(0) 5:(1)", 10, -1, N, "pieces must be separated by commas"),
    ("err_python_and", "0:((t>3) and (t<7))", 10, -1, N, "Python 'and' is rejected"),
    ("err_semicolon", "0:(1);", 10, -1, N, "';' is a forbidden character in numexpr >= 2.8.5"),
    ("err_all_nan", "0:(sqrt(-1-t))", 10, -1, N,
     "every frame NaN: first_valid_index() is None"),
    ("err_int_pow_negative_literal_exponent", "0:(t**-1)", 10, -1, N,
     "int variable ** negative int literal is rejected by numexpr (while 2**-t is accepted)"),

    # --- string schedules (is_single_string=True) -------------------------------------------
    ("string_sampler_default", "0: (\"Euler a\")", 10, -1, S, "default sampler_schedule"),
    ("string_sampler_two_keys", "0: (\"Euler a\"), 10: (\"DDIM\")", 20, -1, S,
     "string switches at frame 10, no interpolation"),
    ("string_sampler_three_keys_unordered", "12:(\"DPM++ 2M Karras\"), 0:(\"Euler a\"), 5:('LMS')",
     15, -1, S, "keys in any order, single and double quotes"),
    ("string_checkpoint_default", "0: (\"model1.ckpt\"), 100: (\"model2.safetensors\")", 120, -1,
     S, "default checkpoint_schedule"),
    ("string_checkpoint_key_beyond", "0: (\"model1.ckpt\"), 100: (\"model2.safetensors\")", 30,
     -1, S, "key 100 >= max_frames is ignored"),
    ("string_numeric_value_copies_previous", "0:(\"Euler a\"), 3:(5), 6:(\"DDIM\")", 10, -1, S,
     "a numeric value in a string schedule is replaced by the previous frame's string"),
    ("string_unquoted", "0:(Euler a), 4:(DDIM)", 8, -1, S, "quotes are optional"),
    ("string_mask_nested_parens", "0: (\"{video_mask} & (!{everywhere})\")", 5, -1, S,
     "sanitize_value removes all parentheses, including inner ones"),
    ("string_expression_text_kept", "0:(\"t*2\"), 2:(sin(t))", 4, -1, S,
     "string schedules never evaluate: 't*2' and 'sint' are kept as text"),
    ("string_one_frame", "0:(\"Euler a\"), 1:(\"DDIM\")", 1, -1, S, "max_frames 1"),
    ("err_string_numeric_at_frame_zero", "0:(5)", 10, -1, S,
     "numeric first value in a string schedule: Deforum reads series[-1]"),
    ("err_string_no_frame_zero", "3:(\"DDIM\")", 10, -1, S, "no frame-0 key"),
]


# --------------------------------------------------------------------------

def encode_value(v, kind: str):
    if kind == S and isinstance(v, str):
        return v
    f = float(v)
    if math.isnan(f):
        return "nan"
    if math.isinf(f):
        return "inf" if f > 0 else "-inf"
    return f


def run_case(akf, name, schedule, max_frames, seed, kind):
    fi = akf.FrameInterpolater(max_frames, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numexpr's RuntimeWarning for sqrt(-1) etc.
        try:
            series = fi.parse_inbetweens(schedule, name, is_single_string=(kind == S))
        except Exception as e:  # noqa: BLE001 - every Deforum failure is a result
            return {"error": f"{type(e).__name__}: {e}"}
    values = [encode_value(v, kind) for v in series.tolist()]
    assert len(values) == max_frames, (name, len(values))
    return {"values": values, "dtype": str(series.dtype)}


def dump(doc: dict) -> str:
    """JSON with one case per line (diff-friendly); floats use repr, so they round-trip."""
    head = json.dumps(doc["versions"], indent=2, allow_nan=False)
    lines = [json.dumps(c, allow_nan=False, ensure_ascii=False) for c in doc["cases"]]
    return ('{\n"versions": ' + head + ',\n"cases": [\n' + ",\n".join(lines) + "\n]\n}\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--deforum", required=True,
                    help="folder with Deforum's animation_key_frames.py and prompt.py "
                         "(sd-webui-deforum/scripts/deforum_helpers)")
    ap.add_argument("--out", default=str(REPO_ROOT / "tests" / "data" / "schedules"),
                    help="output folder (default: <repo>/tests/data/schedules)")
    ap.add_argument("--commit", default=None,
                    help="Deforum commit to record (default: git rev-parse in --deforum, "
                         "or its COMMIT file)")
    args = ap.parse_args()

    deforum_dir = Path(args.deforum).resolve()
    akf = load_deforum(deforum_dir)
    commit = deforum_commit(deforum_dir, args.commit)
    if commit != DEFORUM_REFERENCE_COMMIT:
        print(f"note: Deforum commit {commit} differs from the reference commit "
              f"{DEFORUM_REFERENCE_COMMIT}", file=sys.stderr)

    names = [c[0] for c in CASES]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        sys.exit(f"duplicate case names: {sorted(dupes)}")

    cases = []
    for name, schedule, max_frames, seed, kind, note in CASES:
        res = run_case(akf, name, schedule, max_frames, seed, kind)
        cases.append({"name": name, "schedule": schedule, "max_frames": max_frames,
                      "seed": seed, "kind": kind, "note": note, **res})

    doc = {"versions": versions(deforum_dir, commit), "cases": cases}
    text = dump(doc)
    json.loads(text)  # sanity: valid JSON
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "deforum_cases.json"
    path.write_text(text, encoding="utf-8")

    n_err = sum("error" in c for c in cases)
    print(f"wrote {path}: {len(cases)} cases ({n_err} error cases, "
          f"{sum(c['kind'] == S for c in cases)} string cases)")
    for c in cases:
        if "error" in c:
            print(f"  {c['name']}: {c['error']}")


if __name__ == "__main__":
    main()
