"""Times cv2.calcOpticalFlowFarneback at 512x512 with Deforum's parameters, on one thread
(cv2.setNumThreads(1)) and on OpenCV's default threads, as benches/flow.rs times anim.

The frames are the shift pair of tests/data/flow/pairs/ resized to 512x512 (bilinear), grey
as Deforum makes them. Run with a venv holding numpy and opencv-python-headless
(`python3 -m venv v && v/bin/pip install numpy opencv-python-headless`):
`v/bin/python scripts/bench_flow.py`.
"""
import os
import time

import cv2

PAIRS = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "flow", "pairs")


def load(name):
    img = cv2.imread(os.path.join(PAIRS, name), cv2.IMREAD_COLOR)
    img = cv2.resize(img, (512, 512), interpolation=cv2.INTER_LINEAR)
    return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)


def main():
    a, b = load("shift_a.png"), load("shift_b.png")
    default = cv2.getNumThreads()
    for threads, label in [(1, "1 thread"), (default, f"default threads ({default})")]:
        cv2.setNumThreads(threads)
        for _ in range(3):
            cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 5, 21, 5, 7, 1.2, 0)
        times = []
        for _ in range(20):
            t = time.perf_counter()
            cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 5, 21, 5, 7, 1.2, 0)
            times.append(time.perf_counter() - t)
        times.sort()
        print(f"cv2 {cv2.__version__} farneback 512x512 deforum, {label}: "
              f"median {times[len(times) // 2] * 1e3:.2f} ms, min {times[0] * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
