"""RESIRE tomography (thesis chapter 3): projectors, RESIRE, SIRT / FBP baselines, metrics."""
