"""sidreasoner: generative recommendation that reasons over semantic IDs (SIDReasoner)."""
__version__ = "0.1.0"
