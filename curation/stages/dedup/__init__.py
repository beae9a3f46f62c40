"""The `dedup` stage: exact and MinHash near-duplicate removal that explains itself.

The stage function and its options; the helpers beside them serve this stage only.
"""

from curation.stages.dedup.stage import DedupConfig, dedup

__all__ = ["DedupConfig", "dedup"]
