"""Moved: the SID builder is ``sidreasoner.build_sids`` (it reads data, so it sits above ``sid``). This alias stays
only until ``scripts/make_demo_data.py`` imports the new name; tests/test_layers.py lists it as the one known leak."""
from ..build_sids import SIDBuildConfig, SIDBuildResult, assign_sids, format_report  # noqa: F401
