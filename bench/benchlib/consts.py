"""Settings shared by the benchmarks: image, seeds, targets."""
import os

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
IMAGE_SIZE = "256M"
IMAGE_BYTES = 256 << 20
IMAGE_SEED = 1
TOUCH_SEED = 3
FA_SWEEP = [0, 4, 8, 16, 32, 64]
WS_PERCENT = 25  # random working set: 25% of 256 MiB = 64 MiB
WS_SEED = 7
HUGE_SPARE = 8  # bounce pages for concurrent hugetlb copies
HUGE_NEED = IMAGE_BYTES // (2 << 20) + HUGE_SPARE
CLK_TCK = os.sysconf("SC_CLK_TCK")
SIM_TIMEOUT_S = 60
CPU_TARGET = 1.30  # daemon CPU per restore / ref-handler's (issue 17)
