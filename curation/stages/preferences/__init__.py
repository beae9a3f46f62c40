"""The `preferences` stage: human feedback (`ratings`) in, audited preference pairs out.

The stage function and its options; the helpers beside them serve this stage only.
"""

from curation.stages.preferences.stage import PreferencesConfig, preferences

__all__ = ["PreferencesConfig", "preferences"]
