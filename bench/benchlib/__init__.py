"""The parts of bench/run that bench/scale, bench/http and the other
benchmarks share (loaded through bench/run)."""
