"""The `label_audit` stage: wrong, inconsistent and low-quality labels, found before training.

The stage function and its options; the helpers beside them serve this stage only.
"""

from curation.stages.label_audit.stage import LabelAuditConfig, label_audit

__all__ = ["LabelAuditConfig", "label_audit"]
