"""Training only: Q questions about one stream in one decoder pass, with the attention maps the
dense losses teach (``policies.qa.losses``).

``question_pass`` runs the prefix once per stream and each of its Q question rows on it (causally
on itself, never on the other rows): Q questions cost one prefix. It computes what
``NanoQA.forward`` computes (a test holds them together), block by block through the engine's
public ``Block`` parts, because it also returns what the plain forward hides: the attention
log-probabilities of chosen heads and the question rows' hidden states after each layer.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F

from agentrt.engine import rope_rotate
from agentrt.engine.decoder import Block
from policies.qa.model import NanoQA

__all__ = ["POINTER", "ROUTES", "question_pass"]

POINTER = (0, 0)  # (layer, head) taught to attend from a word to the object it names
# (layer, head)s taught to attend from the answer row of "is the A left or right of the B?" to the word
# naming A, and to the word naming B (which the pointer has read the position of) to compare them
ROUTES = ((1, 0), (1, 1))



def question_pass(model: NanoQA, prefix: torch.Tensor, questions: torch.Tensor,
                  heads: tuple[tuple[int, int], ...] = (POINTER, *ROUTES)
                  ) -> tuple[torch.Tensor, dict[tuple[int, int], torch.Tensor], list[torch.Tensor]]:
        """``NanoQA.forward`` (logits [B, Q, T, V]), the attention log-probabilities [B*Q, T, P + T] of the question rows in the
        given (layer, head)s, and the question rows' hidden states after each layer [B*Q, T, C].

        Training teaches ``POINTER`` to look from the question word that names an object ("cube" in
        "what colour is the cube?") at that object's full-resolution row, and ``ROUTES`` to look from
        a left/right answer row at the two words naming the objects (with the answers alone the model
        sat at its priors for hundreds of steps: finding things and reading them only pay off
        together)."""
        B, P, C = prefix.shape  # streams, prefix rows, width
        _, Qn, T = questions.shape  # streams, questions per stream, row length
        xp = prefix
        xq = model.decoder.embed(questions.reshape(B * Qn, T))  # [B*Q, T, C]
        pos_p = torch.arange(P, device=prefix.device)
        pos_q = torch.arange(P, P + T, device=prefix.device)
        mask = torch.ones(T, P + T, dtype=torch.bool, device=prefix.device).tril(diagonal=P)
        attention: dict[tuple[int, int], torch.Tensor] = {}
        hidden: list[torch.Tensor] = []
        for layer, block in enumerate(cast("list[Block]", list(model.decoder.blocks))):
            attn = block.attn
            H = attn.heads
            qp, kp, vp = _heads(attn.qkv(block.ln_1(xp)), H)  # [B, H, P, D] each
            qq, kq, vq = _heads(attn.qkv(block.ln_1(xq)), H)  # [B*Q, H, T, D]
            qp, kp = rope_rotate(qp, pos_p, attn.theta), rope_rotate(kp, pos_p, attn.theta)
            qq, kq = rope_rotate(qq, pos_q, attn.theta), rope_rotate(kq, pos_q, attn.theta)
            yp = F.scaled_dot_product_attention(qp, kp, vp, is_causal=True)
            k_all = torch.cat([kp.repeat_interleave(Qn, dim=0), kq], dim=2)  # [B*Q, H, P+T, D]
            v_all = torch.cat([vp.repeat_interleave(Qn, dim=0), vq], dim=2)
            yq = F.scaled_dot_product_attention(qq, k_all, v_all, attn_mask=mask)
            for head in (h for lyr, h in heads if lyr == layer):
                scores = qq[:, head] @ k_all[:, head].transpose(1, 2) * qq.shape[-1] ** -0.5  # [B*Q, T, P+T]
                attention[layer, head] = scores.masked_fill(~mask, float("-inf")).log_softmax(-1)
            xp = xp + attn.proj(yp.transpose(1, 2).reshape(B, P, C))
            xp = xp + block.mlp(block.ln_2(xp))
            xq = xq + attn.proj(yq.transpose(1, 2).reshape(B * Qn, T, C))
            xq = xq + block.mlp(block.ln_2(xq))
            hidden.append(xq)
        logits = model.decoder.lm_head(model.decoder.ln_f(xq))
        return logits.view(B, Qn, T, -1), attention, hidden


def _heads(qkv: torch.Tensor, heads: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """[N, T, 3C] -> q, k, v [N, H, T, D]."""
    N, T, C3 = qkv.shape  # sequences, tokens, 3 x width
    q, k, v = qkv.view(N, T, 3, heads, C3 // 3 // heads).permute(2, 0, 3, 1, 4)
    return q, k, v
