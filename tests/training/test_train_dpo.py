"""Our DPO log-probs and loss against TRL's DPOTrainer on the same tiny model and batch (1e-4)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.training.tiny import pair_rows
from training.data import collate_pairs, pair
from training.dpo import dpo_loss, reference_logps, sequence_logps
from training.models import add_lora, load_model

BETA = 0.3


def _perturbed(model: Any, seed: int) -> Any:
    """A copy of ``model`` whose weights moved a little: a policy that differs from the reference."""
    out = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in out.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return out


def _batches(tokenizer: Any) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The same pairs collated by us and by TRL's DataCollatorForPreference."""
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    rows = pair_rows(8)[:4]
    pairs = [
        pair(tokenizer, r["prompt"], r["chosen"] + " it is." * i, r["rejected"], 64)[0] for i, r in enumerate(rows)
    ]  # uneven lengths: padding
    theirs = DataCollatorForPreference(pad_token_id=tokenizer.pad_token_id)(
        [{"prompt_ids": p.prompt, "chosen_ids": p.chosen, "rejected_ids": p.rejected} for p in pairs]
    )
    return collate_pairs(pairs, tokenizer.pad_token_id), theirs


def _trainer(model: Any, tokenizer: Any, tmp_path: Path, *, peft_config: Any = None, **args: Any) -> Any:
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    data = Dataset.from_list([{"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]} for r in pair_rows(8)])
    config = DPOConfig(output_dir=str(tmp_path / "trl"), beta=BETA, report_to="none", use_cpu=True, bf16=False, save_strategy="no", **args)
    return DPOTrainer(model=model, args=config, train_dataset=data, processing_class=tokenizer, peft_config=peft_config)


@pytest.mark.slow
def test_logps_and_loss_match_trl_with_precomputed_reference(lm_dir: Path, tokenizer: Any, tmp_path: Path) -> None:
    """Full fine-tuning: the reference log-probs are precomputed; the policy has moved."""
    from trl.trainer.utils import add_fused_lm_head

    reference = load_model(str(lm_dir), "dpo", labels=[], pad_id=tokenizer.pad_token_id).eval()
    policy = _perturbed(reference, seed=1)
    ours, theirs = _batches(tokenizer)
    with torch.no_grad():
        our_policy, our_ref = sequence_logps(policy, ours), sequence_logps(reference, ours)
        our_loss, chosen_rewards, rejected_rewards = dpo_loss(our_policy, our_ref, BETA)

    trainer = _trainer(copy.deepcopy(policy), tokenizer, tmp_path, precompute_ref_log_probs=True)
    trl_reference = copy.deepcopy(reference)
    add_fused_lm_head(trl_reference)
    with torch.no_grad():
        trl_policy = torch.cat(trainer.compute_ref_log_probs(trainer.model, theirs))  # log-probs of whatever model it is given
        trl_ref_chosen, trl_ref_rejected = trainer.compute_ref_log_probs(trl_reference, theirs)
        trl_loss = trainer._compute_loss(
            trainer.model.eval(), {**theirs, "ref_chosen_logps": trl_ref_chosen, "ref_rejected_logps": trl_ref_rejected}, False
        )

    torch.testing.assert_close(our_policy, trl_policy, rtol=0, atol=1e-4)
    torch.testing.assert_close(our_ref, torch.cat([trl_ref_chosen, trl_ref_rejected]), rtol=0, atol=1e-4)
    assert float(our_loss.mean()) == pytest.approx(float(trl_loss), abs=1e-4)
    assert float((chosen_rewards - rejected_rewards).mean()) == pytest.approx(trainer._metrics["eval"]["rewards/margins"][-1], abs=1e-4)
    assert float(our_loss.mean()) != pytest.approx(0.6931, abs=1e-3)  # the policy really differs from the reference


@pytest.mark.slow
def test_loss_matches_trl_with_lora_reference_as_disabled_adapters(lm_dir: Path, tokenizer: Any, tmp_path: Path) -> None:
    """LoRA: the reference is the same model with its adapters disabled, in both implementations."""
    from peft import LoraConfig

    base = load_model(str(lm_dir), "dpo", labels=[], pad_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    policy = add_lora(copy.deepcopy(base), "dpo", r=4, alpha=8).eval()
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))  # a trained adapter, not the zero init
    ours, theirs = _batches(tokenizer)
    with torch.no_grad():
        our_loss, _, _ = dpo_loss(sequence_logps(policy, ours), reference_logps(policy, ours, lora=True), BETA)

    peft_config = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
    trainer = _trainer(copy.deepcopy(base), tokenizer, tmp_path, peft_config=peft_config)
    adapter = dict(policy.named_parameters())
    with torch.no_grad():
        for name, p in trainer.model.named_parameters():
            if "lora_" in name:
                p.copy_(adapter[name])
        trl_loss = trainer._compute_loss(trainer.model.eval(), theirs, False)
    assert float(our_loss.mean()) == pytest.approx(float(trl_loss), abs=1e-4)
    assert float(our_loss.mean()) != pytest.approx(0.6931, abs=1e-3)
