"""The `normalize` stage: Unicode NFC, control characters out, whitespace tidied.

The stage function and its options; the helpers beside them serve this stage only.
"""

from curation.stages.normalize.stage import NormalizeConfig, normalize

__all__ = ["NormalizeConfig", "normalize"]
