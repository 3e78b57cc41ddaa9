"""SASRec-style next-item Transformer with time-of-day and device context.

A plain ``torch.nn.Module`` (no Lightning), small enough to read in one go:

    input x_t = item_emb[items_t] + pos_emb[t] + tod_emb[time_of_day_t] + dev_emb[device_t]
    h = LayerNorm(Blocks(dropout(x)))        # pre-LN blocks, causal self-attention
    logits_t = h_t @ item_emb[1:].T (+ b)    # tied output over the whole catalogue

With ``item_bias`` each movie also has an output bias b, which training starts at its log
training popularity (training/sequential.py): the model then ranks by popularity from the
first step, and its embeddings learn what popularity does not explain.

Conventions (those of ``training.data.SequenceDataModule``):

- ``items`` hold item_idx + 1, 0 = padding; sequences are right-aligned (padding on the left).
- The context at position t (``time_of_day[:, t]``, ``device[:, t]``) is the context of the
  interaction being PREDICTED from position t, i.e. of the next one. At serving time the last
  position carries the request's context. Index ``UNKNOWN`` (= 4) of either means "unknown".
- Positions are right-aligned too: the last position always gets position embedding
  ``max_len - 1``, so a short un-padded history is embedded exactly like a padded window.

Attention never looks ahead nor at padding; a padding position attends to itself only (it
has nothing else to look at, and its output is never used), which keeps every softmax finite.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from contextflix.data.context import DEVICES, TIMES_OF_DAY, UNKNOWN
from contextflix.models.exact import MIN_ROWS, columns_of, in_fours

N_TIMES_OF_DAY = len(TIMES_OF_DAY)
N_DEVICES = len(DEVICES)


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float, attention_dropout: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.attention_dropout = attention_dropout
        self.resid_drop = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        allowed: torch.Tensor,
        queries: int | None = None,
        weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x [B, L, D], allowed [B, 1, L, L] bool. With ``queries``, only the last ones are used.

        Returns the output [B, Lq, D] and, when ``weights``, the last query's head-mean
        attention [B, L]. The output always comes from the same fused kernel, so asking for
        the weights (an explanation) never changes a score's bits: they are computed beside.
        """
        b, _, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=2)
        if queries is not None:
            q, allowed = q[:, -queries:], allowed[:, :, -queries:]
        q, k, v = (t.view(b, -1, self.heads, d // self.heads).transpose(1, 2) for t in (q, k, v))
        drop = self.attention_dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=drop)
        out = out.transpose(1, 2).reshape(b, q.shape[2], d)
        attention = None
        if weights:
            # an elementwise product summed, not a batched matmul: its bits do not depend on B
            scores = (q[:, :, -1:] * k).sum(-1) / math.sqrt(d // self.heads)  # [B, heads, L]
            attention = scores.masked_fill(~allowed[:, :, -1], float("-inf")).softmax(-1).mean(1)
        return self.resid_drop(self.proj(out)), attention


class Block(nn.Module):
    """Pre-LN Transformer block: x + attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, heads: int, dropout: float, attention_dropout: float) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads, dropout, attention_dropout)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim), nn.Dropout(dropout)
        )

    def forward(
        self,
        x: torch.Tensor,
        allowed: torch.Tensor,
        queries: int | None = None,
        weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        a, attention = self.attn(self.ln1(x), allowed, queries, weights)
        x = (x if queries is None else x[:, -queries:]) + a
        return x + self.mlp(self.ln2(x)), attention


class SequentialRecommender(nn.Module):
    """Causal Transformer over item histories; logits over the ``n_items`` catalogue items."""

    def __init__(
        self,
        n_items: int,
        dim: int = 64,
        heads: int = 4,
        layers: int = 2,
        max_len: int = 50,
        dropout: float = 0.2,
        item_bias: bool = False,
        attention_dropout: float | None = None,
    ) -> None:
        super().__init__()
        attention_dropout = dropout if attention_dropout is None else attention_dropout
        if n_items < 1 or max_len < 1 or layers < 1:
            raise ValueError("n_items, max_len and layers must be positive")
        self.config = {
            "n_items": n_items,
            "dim": dim,
            "heads": heads,
            "layers": layers,
            "max_len": max_len,
            "dropout": dropout,
            "item_bias": item_bias,
            "attention_dropout": attention_dropout,
        }
        self.n_items, self.max_len = n_items, max_len
        self.item_emb = nn.Embedding(n_items + 1, dim, padding_idx=0)
        self.pos_emb = nn.Embedding(max_len, dim)
        self.tod_emb = nn.Embedding(N_TIMES_OF_DAY + 1, dim)
        self.dev_emb = nn.Embedding(N_DEVICES + 1, dim)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            Block(dim, heads, dropout, attention_dropout) for _ in range(layers)
        )
        self.ln_f = nn.LayerNorm(dim)
        self.item_bias = nn.Parameter(torch.zeros(n_items)) if item_bias else None
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()

    def hidden(
        self,
        items: torch.Tensor,
        time_of_day: torch.Tensor,
        device: torch.Tensor,
        queries: int | None = None,
        weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Final hidden states [B, L, D] (or [B, queries, D]: the last layer computes only the
        last ``queries`` positions) and, with ``weights``, the last layer's attention of the
        last position [B, L]."""
        n = items.shape[1]
        if n > self.max_len:
            raise ValueError(f"sequence length {n} exceeds max_len {self.max_len}")
        positions = torch.arange(self.max_len - n, self.max_len, device=items.device)
        x = self.item_emb(items) + self.pos_emb(positions) + self.tod_emb(time_of_day)
        x = self.drop(x + self.dev_emb(device))
        present = items > 0
        causal = torch.ones(n, n, dtype=torch.bool, device=items.device).tril()
        diagonal = torch.eye(n, dtype=torch.bool, device=items.device)
        allowed = (causal & present[:, None, :]) | diagonal  # [B, L(query), L(key)]
        allowed = allowed[:, None]  # broadcast over heads
        attention = None
        for i, block in enumerate(self.blocks):
            last = i == len(self.blocks) - 1
            x, attention = block(x, allowed, queries if last else None, weights and last)
        return self.ln_f(x), attention

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Scores of every catalogue item (item_idx order, no padding column) for [..., D]."""
        logits = hidden @ self.item_table.T
        return logits if self.item_bias is None else logits + self.item_bias

    def forward(
        self, items: torch.Tensor, time_of_day: torch.Tensor, device: torch.Tensor
    ) -> torch.Tensor:
        """Next-item logits at every position: [B, L, n_items]."""
        return self.logits(self.hidden(items, time_of_day, device)[0])

    @property
    def item_table(self) -> torch.Tensor:
        """[n_items, D] the output embeddings of the catalogue (item_idx order)."""
        return self.item_emb.weight[1:]

    def last_hidden(
        self,
        items: torch.Tensor,
        time_of_day: torch.Tensor,
        device: torch.Tensor,
        return_attention: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The hidden state [B, D] the item after the last position is scored from, and with
        ``return_attention`` the last layer's attention of the last position over the (kept)
        positions [B, L], averaged over heads; each row sums to 1 and is 0 on padding.
        Position j's weight is on the item ``items[:, j]`` ("because you watched").

        Histories longer than ``max_len`` keep their last ``max_len`` positions. Every
        product of the layers has at least MIN_ROWS rows (sequences at least MIN_ROWS long;
        the last layer computes the last MIN_ROWS positions), so a row's bits are the same
        alone or in any batch (models/exact.py).
        """
        items, time_of_day, device = (t[:, -self.max_len :] for t in (items, time_of_day, device))
        queries = min(MIN_ROWS, items.shape[1])
        h, attention = self.hidden(items, time_of_day, device, queries, return_attention)
        return h[:, -1], attention

    def scores_of(self, last: torch.Tensor, columns: torch.Tensor | None = None) -> torch.Tensor:
        """Scores [B, n_items] of the catalogue from last hidden states [B, D], four rows a
        product: a row's bits do not depend on its batch (models/exact.py). ``columns``: the
        item table as ``columns_of`` lays it out, where a caller keeps it (a copy otherwise)."""
        scores = in_fours(last, columns_of(self.item_table) if columns is None else columns)
        return scores if self.item_bias is None else scores + self.item_bias

    def score_last(
        self,
        items: torch.Tensor,
        time_of_day: torch.Tensor,
        device: torch.Tensor,
        return_attention: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Scores [B, n_items] for the item after the last position (serving), and with
        ``return_attention`` the attention of :meth:`last_hidden`."""
        last, attention = self.last_hidden(items, time_of_day, device, return_attention)
        scores = self.scores_of(last)
        if return_attention:
            return scores, attention
        return scores


def unknown_context(items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Time of day and device tensors meaning "unknown" for every position of ``items``."""
    unknown = torch.full_like(items, UNKNOWN)
    return unknown, unknown.clone()
