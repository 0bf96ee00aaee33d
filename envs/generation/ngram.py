"""The reference scorer: an interpolated modified Kneser-Ney byte n-gram model, independent of any agent.

Every n-gram of up to 7 bytes packs exactly into an int64 (oldest byte most significant), so each order's
table is a sorted key tensor and lookups are ``torch.searchsorted`` — no hashing, no collisions, any
device. The model is stored as, per order n >= 2,

    alpha_n(h, w) = max(c(h, w) - D_n(c), 0) / c(h)         for every seen n-gram (h, w)
    gamma_n(h)    = (D1 N1(h) + D2 N2(h) + D3 N3+(h)) / c(h)   for every seen context h

so that ``P_n(w | h) = alpha_n(h, w) + gamma_n(h) * P_{n-1}(w | h')`` with alpha = 0 for an unseen n-gram
and gamma = 1 for an unseen context. The highest order uses raw counts, lower orders continuation counts
(Chen & Goodman 1998); order 1 interpolates with the uniform distribution over 256 bytes, so every byte
has non-zero probability.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from envs.generation.tokens import NUM_BYTES, PAD_ID

MAX_ORDER = 7
MIN_ORDER = 2


class NGramScorer:
    """A fitted byte n-gram model: bits of any byte sequence, next-byte distributions, all in torch."""

    def __init__(
        self,
        order: int,
        unigram: torch.Tensor,
        ngram_keys: list[torch.Tensor],
        ngram_alpha: list[torch.Tensor],
        context_keys: list[torch.Tensor],
        context_gamma: list[torch.Tensor],
    ):
        _check_order(order)
        if not len(ngram_keys) == len(ngram_alpha) == len(context_keys) == len(context_gamma) == order - 1:
            raise ValueError(
                f"An order-{order} scorer needs {order - 1} tables per kind (orders 2..{order})."
            )
        self.order = order
        self.unigram = unigram
        self.ngram_keys, self.ngram_alpha = ngram_keys, ngram_alpha
        self.context_keys, self.context_gamma = context_keys, context_gamma

    # ----------------------------------------------------------------- fitting and state
    @classmethod
    def fit(cls, data: str | bytes | torch.Tensor, order: int = 6) -> NGramScorer:
        """Fit on ``data`` (text, bytes or a 1-D byte tensor); a text too small for ``order`` raises."""
        _check_order(order)
        x = _as_byte_tensor(data)
        if x.numel() < 10 * order:
            raise ValueError(
                f"The training text has {x.numel()} bytes, too few for an order-{order} n-gram model; "
                "use a larger corpus or a lower order."
            )
        keys = [x]
        for n in range(2, order + 1):
            keys.append(keys[-1][:-1] * NUM_BYTES + x[n - 1 :])
        # Highest order: raw counts; lower orders: number of distinct left extensions (continuation counts).
        uniq, counts = torch.unique(keys[order - 1], return_counts=True)
        tables: list[tuple[torch.Tensor, torch.Tensor]] = [(uniq, counts)]
        for n in range(order - 1, 0, -1):
            suffix = tables[-1][0] % (NUM_BYTES**n)
            tables.append(torch.unique(suffix, return_counts=True))
        tables.reverse()  # tables[n - 1] holds order n
        unigram_keys, unigram_counts = tables[0]
        discount = _discounts(unigram_counts, order=1, max_order=order)[unigram_counts.clamp(max=3)]
        total = unigram_counts.sum().double()
        unigram = torch.full((NUM_BYTES,), float(discount.sum() / total) / NUM_BYTES, dtype=torch.float64)
        unigram[unigram_keys] += (unigram_counts.double() - discount) / total
        ngram_keys, ngram_alpha, context_keys, context_gamma = [], [], [], []
        for n in range(2, order + 1):
            grams, counts = tables[n - 1]
            d = _discounts(counts, order=n, max_order=order)
            contexts, inverse = torch.unique_consecutive(grams // NUM_BYTES, return_inverse=True)
            cls_index = counts.clamp(max=3)
            total = torch.zeros(len(contexts), dtype=torch.float64).index_add_(0, inverse, counts.double())
            mass = torch.zeros(len(contexts), dtype=torch.float64).index_add_(0, inverse, d[cls_index])
            ngram_keys.append(grams)
            ngram_alpha.append(((counts.double() - d[cls_index]) / total[inverse]).float())
            context_keys.append(contexts)
            context_gamma.append((mass / total).float())
        return cls(order, unigram.float(), ngram_keys, ngram_alpha, context_keys, context_gamma)

    def state_dict(self) -> dict:
        """Plain tensors and ints, loadable with ``torch.load(weights_only=True)``."""
        return {
            "order": self.order,
            "unigram": self.unigram.cpu(),
            "ngram_keys": [t.cpu() for t in self.ngram_keys],
            "ngram_alpha": [t.cpu() for t in self.ngram_alpha],
            "context_keys": [t.cpu() for t in self.context_keys],
            "context_gamma": [t.cpu() for t in self.context_gamma],
        }

    @classmethod
    def from_state_dict(cls, state: dict) -> NGramScorer:
        return cls(
            int(state["order"]),
            state["unigram"],
            list(state["ngram_keys"]),
            list(state["ngram_alpha"]),
            list(state["context_keys"]),
            list(state["context_gamma"]),
        )

    def to(self, device: str | torch.device) -> NGramScorer:
        """A copy whose tables live on ``device`` (this one is returned if they already do)."""
        device = torch.device(device)
        if self.unigram.device == device:
            return self
        move = lambda ts: [t.to(device) for t in ts]  # noqa: E731
        return NGramScorer(
            self.order,
            self.unigram.to(device),
            move(self.ngram_keys),
            move(self.ngram_alpha),
            move(self.context_keys),
            move(self.context_gamma),
        )

    @property
    def device(self) -> torch.device:
        return self.unigram.device

    @property
    def num_ngrams(self) -> int:
        return sum(len(k) for k in self.ngram_keys) + NUM_BYTES

    # ----------------------------------------------------------------- scoring
    def token_bits(
        self, tokens: torch.Tensor, start: torch.Tensor | int = 0, last_only: bool = False
    ) -> torch.Tensor:
        """Bits ``-log2 P(x_t | x_<t)`` for each position of ``tokens`` (B, T), float32, shape (B, T).

        Context only reaches back to ``start`` (an int or per-row (B,) tensor) and never across an id that
        is not a byte (pad); positions before ``start`` or holding a non-byte id get 0 bits.
        ``last_only=True`` scores only the last column and returns (B,).
        """
        if tokens.dim() != 2:
            raise ValueError(f"tokens must have shape (B, T), got {tuple(tokens.shape)}.")
        tokens = tokens.to(self.device, torch.long)
        length = tokens.shape[1]
        positions = torch.arange(length, device=self.device)
        start = torch.as_tensor(start, device=self.device).reshape(-1, 1)
        valid = (tokens >= 0) & (tokens < NUM_BYTES) & (positions >= start)
        # run[t] = number of consecutive valid positions ending at t (how far back context may reach).
        last_invalid = torch.where(valid, -1, positions).cummax(dim=1).values
        run = positions - last_invalid
        x = tokens.clamp(0, NUM_BYTES - 1)
        keys = x
        pick = (lambda t: t[:, -1]) if last_only else (lambda t: t)
        prob = self.unigram[pick(x)]
        for n in range(2, self.order + 1):
            context = F.pad(keys[:, :-1], (1, 0))  # the (n-1)-gram ending at t-1
            keys = context * NUM_BYTES + x
            alpha = _lookup(self.ngram_keys[n - 2], self.ngram_alpha[n - 2], pick(keys), 0.0)
            gamma = _lookup(self.context_keys[n - 2], self.context_gamma[n - 2], pick(context), 1.0)
            prob = torch.where(pick(run) >= n, alpha + gamma * prob, prob)
        bits = -torch.log2(prob)
        return torch.where(pick(valid), bits, torch.zeros((), device=self.device))

    def bits_per_byte(self, texts: str | bytes | list[str | bytes] | torch.Tensor) -> torch.Tensor:
        """Mean bits per byte of a text (0-d), a list of texts or a right-padded (B, T) batch ((B,))."""
        if isinstance(texts, str | bytes):
            return self.bits_per_byte([texts])[0]
        if isinstance(texts, torch.Tensor):
            if texts.dim() != 2:
                raise ValueError(f"A token batch must have shape (B, T), got {tuple(texts.shape)}.")
            batch = texts.to(self.device, torch.long)
        else:
            rows = [_as_byte_tensor(t) for t in texts]
            batch = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True, padding_value=PAD_ID)
        batch = batch.to(self.device, torch.long)
        counts = ((batch >= 0) & (batch < NUM_BYTES)).sum(dim=1).clamp(min=1)
        return self.token_bits(batch).sum(dim=1) / counts

    def next_byte_probs(self, context: str | bytes | torch.Tensor) -> torch.Tensor:
        """P(next byte | context) over the 256 bytes: (256,) for one context, (B, 256) for a (B, T) batch."""
        ctx = context if isinstance(context, torch.Tensor) else _as_byte_tensor(context)
        single = ctx.dim() == 1
        ctx = ctx.reshape(1, -1) if single else ctx
        ctx = ctx[:, -(self.order - 1) :].to(self.device, torch.long)
        batch = ctx.shape[0]
        candidates = torch.arange(NUM_BYTES, device=self.device).repeat(batch)
        rows = torch.cat([ctx.repeat_interleave(NUM_BYTES, dim=0), candidates[:, None]], dim=1)
        probs = torch.exp2(-self.token_bits(rows, last_only=True)).reshape(batch, NUM_BYTES)
        return probs[0] if single else probs


def _lookup(keys: torch.Tensor, values: torch.Tensor, query: torch.Tensor, default: float) -> torch.Tensor:
    """values[i] where keys[i] == query, else ``default`` (keys sorted ascending)."""
    query = query.contiguous()
    index = torch.searchsorted(keys, query).clamp(max=len(keys) - 1)
    return torch.where(keys[index] == query, values[index], torch.full((), default, device=values.device))


def _discounts(counts: torch.Tensor, order: int, max_order: int) -> torch.Tensor:
    """Modified Kneser-Ney discounts [0, D1, D2, D3+] from an order's count-of-counts."""
    n = [int((counts == k).sum()) for k in (1, 2, 3, 4)]
    if min(n) == 0:
        raise ValueError(
            f"The training text is too small or too repetitive for an order-{max_order} n-gram model: order "
            f"{order} has count-of-counts n1..n4 = {n}, and Kneser-Ney discounts need all four > 0. "
            "Use a larger corpus or a lower order."
        )
    y = n[0] / (n[0] + 2 * n[1])
    d = [1 - 2 * y * n[1] / n[0], 2 - 3 * y * n[2] / n[1], 3 - 4 * y * n[3] / n[2]]
    d = [min(max(di, 0.05), float(i + 1) - 0.05) for i, di in enumerate(d)]
    return torch.tensor([0.0, *d], dtype=torch.float64)


def _as_byte_tensor(data: str | bytes | torch.Tensor) -> torch.Tensor:
    if isinstance(data, torch.Tensor):
        if data.dim() != 1:
            raise ValueError(f"Expected a 1-D byte tensor, got shape {tuple(data.shape)}.")
        return data.long()
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    return (
        torch.frombuffer(bytearray(raw), dtype=torch.uint8).long()
        if raw
        else torch.zeros(0, dtype=torch.long)
    )


def _check_order(order: int) -> None:
    if not isinstance(order, int) or not MIN_ORDER <= order <= MAX_ORDER:
        raise ValueError(
            f"n-gram order must be an int in [{MIN_ORDER}, {MAX_ORDER}] (keys pack into int64), "
            f"got {order!r}."
        )
