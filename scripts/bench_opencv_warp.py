#!/usr/bin/env python3
"""Time cv2.warpPerspective (INTER_LINEAR, BORDER_REPLICATE) on the image and matrix of benches/warp.rs.

usage: python scripts/bench_opencv_warp.py   (needs numpy and opencv-python-headless)
"""
import cv2, numpy as np, time, sys
for threads in (1, 0):
    cv2.setNumThreads(threads if threads else cv2.getNumberOfCPUs())
    for size in (512, 1024):
        x = np.arange(size)
        img = np.dstack([(x[None,:] % 251 + 0*x[:,None]).astype(np.uint8), (x[:,None] % 241 + 0*x[None,:]).astype(np.uint8), ((x[None,:] ^ x[:,None]) % 256).astype(np.uint8)])
        rot = cv2.getRotationMatrix2D((size*0.5, size*0.5), 3.0, 1.04)
        M = np.vstack([rot,[0,0,1]]) @ np.array([[1,0,2.5],[0,1,-1.5],[0,0,1]])
        ts=[]
        for _ in range(50):
            t=time.perf_counter(); cv2.warpPerspective(img, M, (size,size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE); ts.append(time.perf_counter()-t)
        print(f"opencv threads={cv2.getNumThreads()} {size}: median {np.median(ts)*1000:.3f} ms (min {np.min(ts)*1000:.3f})")
