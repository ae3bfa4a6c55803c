"""
Care Connect's benchmarks: `python -m bench` (quick set, a few minutes) or
`python -m bench --full`. Every figure is printed next to its target.
docs/benchmarks.md records the figures and how they were taken.
"""
