"""sidreasoner: generative recommendation that reasons over semantic IDs (SIDReasoner)."""
__version__ = "0.1.0"


def __getattr__(name):  # `from sidreasoner import Recommender` without importing torch for the package
    if name in ("Recommender", "Recommendations"):
        from . import recommend
        return getattr(recommend, name)
    raise AttributeError(f"module 'sidreasoner' has no attribute {name!r}")
