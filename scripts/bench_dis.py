"""Times OpenCV's DIS Medium at 512x512 as benches/flow_dis.rs times anim's: the `shift` pair
of tests/data/flow/pairs/ upscaled bilinearly to 512x512, grey, one thread and default threads.

    python -m venv venv && venv/bin/pip install opencv-python-headless==5.1.0 numpy
    venv/bin/python scripts/bench_dis.py
"""

import time
from pathlib import Path

import cv2

PAIRS = Path(__file__).resolve().parent.parent / "tests" / "data" / "flow" / "pairs"


def frame(side):
    img = cv2.imread(str(PAIRS / f"shift_{side}.png"), cv2.IMREAD_COLOR)
    img = cv2.resize(img, (512, 512), interpolation=cv2.INTER_LINEAR)
    return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)


def main():
    a, b = frame("a"), frame("b")
    default = cv2.getNumThreads()
    for threads, label in ((1, "1 thread"), (default, f"default ({default} threads)")):
        cv2.setNumThreads(threads)
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        for _ in range(3):
            dis.calc(a, b, None)
        times = []
        for _ in range(20):
            t = time.perf_counter()
            dis.calc(a, b, None)
            times.append(time.perf_counter() - t)
        times.sort()
        print(f"cv2 {cv2.__version__} DIS Medium 512x512, {label}: median {1e3 * times[len(times) // 2]:.2f} ms")


if __name__ == "__main__":
    main()
