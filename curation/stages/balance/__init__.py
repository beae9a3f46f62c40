"""The `balance` stage: is the data balanced, diverse, and like the inputs the model will see?

The stage function and its options; the helpers beside them serve this stage only.
"""

from curation.stages.balance.stage import BalanceConfig, balance

__all__ = ["BalanceConfig", "balance"]
