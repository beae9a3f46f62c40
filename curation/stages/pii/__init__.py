"""The `pii` stage: find personal data with Presidio and scrub it, without leaking it.

The stage function and its options; the helpers beside them serve this stage only.
"""

from curation.stages.pii.stage import PiiConfig, pii

__all__ = ["PiiConfig", "pii"]
