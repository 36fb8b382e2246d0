"""A tiny judge model that answers " safe" whatever it is asked (real weights vLLM loads).

Random tiny models answer noise, which no verdict rule can read. This one is
a tiny Llama whose last MLP has a bias so large that the final hidden state
always points one way, and whose output head maps that direction to the
token " safe" only: greedy decoding then says " safe safe ..." to any prompt.
"""

from __future__ import annotations

from pathlib import Path

from sabha.workers.tiny_models import make_tiny_model

VERDICT = " safe"


def make_constant_judge(destination: Path, texts: list[str]) -> Path:
    """Write the model to ``destination``; the verdict is one token of its tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    base = make_tiny_model(
        destination.with_name(destination.name + "-base"), [*texts, VERDICT * 50]
    )
    tokenizer = AutoTokenizer.from_pretrained(base)
    (token,) = tokenizer.encode(VERDICT, add_special_tokens=False)
    config = LlamaConfig.from_pretrained(base)
    config.mlp_bias = True
    torch.manual_seed(1)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        direction = torch.randn(config.hidden_size)
        direction /= direction.norm()
        last = model.model.layers[-1].mlp.down_proj
        last.weight.zero_()
        last.bias.copy_(direction * 1e4)
        for layer in model.model.layers[:-1]:
            layer.mlp.down_proj.bias.zero_()
        for layer in model.model.layers:
            for proj in (layer.mlp.gate_proj, layer.mlp.up_proj):
                proj.bias.zero_()
        model.lm_head.weight.zero_()
        model.lm_head.weight[token] = direction
    model.save_pretrained(destination, safe_serialization=True)
    tokenizer.save_pretrained(destination)
    (destination / "sabha_tiny.json").write_text('{"smoke_test": true}\n', encoding="utf-8")
    return destination
