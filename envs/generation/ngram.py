"""The reference scorer: an interpolated modified Kneser-Ney byte n-gram model, independent of any agent.

Every n-gram of up to 7 bytes packs exactly into an int64 (oldest byte most significant), so each order's
table is a sorted key tensor and lookups are ``torch.searchsorted`` — no hashing, no collisions, any
device. With counts c (raw at the highest order, continuation counts below; Chen & Goodman 1998),

    alpha_n(h, w) = max(c(h, w) - D_n(c), 0) / c(h)         for every seen n-gram (h, w)
    gamma_n(h)    = (D1 N1(h) + D2 N2(h) + D3 N3+(h)) / c(h)   for every seen context h

and ``P_n(w | h) = alpha_n(h, w) + gamma_n(h) * P_{n-1}(w | h')``, with alpha = 0 for an unseen n-gram and
gamma = 1 for an unseen context. Order 1 interpolates with the uniform distribution over 256 bytes, so
every byte has non-zero probability. A context of order n+1 is an n-gram, so the table of order n stores
both alpha_n of each n-gram and gamma_{n+1} of the n-gram as a context: one search per order and position.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from envs.generation.tokens import NUM_BYTES, PAD_ID

MAX_ORDER = 7
MIN_ORDER = 2
_STATE_KEYS = ("order", "unigram", "byte_gamma", "keys", "alpha", "gamma_next")


class NGramScorer:
    """A fitted byte n-gram model: bits of any byte sequence, next-byte distributions, all in torch.

    ``unigram`` (256,) and ``byte_gamma`` (256,) (gamma_2 of each single-byte context) are dense; for
    each order n = 2..order, ``keys[n-2]`` (sorted int64 n-grams) carry ``alpha[n-2]`` and
    ``gamma_next[n-2]`` (gamma_{n+1} of the n-gram as a context; 1 where it never is one).
    """

    def __init__(
        self,
        order: int,
        unigram: torch.Tensor,
        byte_gamma: torch.Tensor,
        keys: list[torch.Tensor],
        alpha: list[torch.Tensor],
        gamma_next: list[torch.Tensor],
    ):
        _check_order(order)
        if not len(keys) == len(alpha) == len(gamma_next) == order - 1:
            raise ValueError(f"An order-{order} scorer needs {order - 1} tables (orders 2..{order}).")
        self.order = order
        self.unigram, self.byte_gamma = unigram, byte_gamma
        self.keys, self.alpha, self.gamma_next = keys, alpha, gamma_next

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
        grams = x
        for n in range(2, order + 1):
            grams = grams[:-1] * NUM_BYTES + x[n - 1 :]
        # Highest order: raw counts; lower orders: number of distinct left extensions (continuation counts).
        tables: list[tuple[torch.Tensor, torch.Tensor]] = [torch.unique(grams, return_counts=True)]
        for n in range(order - 1, 0, -1):
            tables.append(torch.unique(tables[-1][0] % (NUM_BYTES**n), return_counts=True))
        tables.reverse()  # tables[n - 1] holds order n
        byte_keys, byte_counts = tables[0]
        discount = _discounts(byte_counts, order=1, max_order=order)[byte_counts.clamp(max=3)]
        total = byte_counts.sum().double()
        unigram = torch.full((NUM_BYTES,), float(discount.sum() / total) / NUM_BYTES, dtype=torch.float64)
        unigram[byte_keys] += (byte_counts.double() - discount) / total
        alphas, contexts = [], []  # per order n >= 2: (n-grams, alpha), (contexts, gamma)
        for n in range(2, order + 1):
            ngrams, counts = tables[n - 1]
            d = _discounts(counts, order=n, max_order=order)[counts.clamp(max=3)]
            context, inverse = torch.unique_consecutive(ngrams // NUM_BYTES, return_inverse=True)
            total = torch.zeros(len(context), dtype=torch.float64).index_add_(0, inverse, counts.double())
            mass = torch.zeros(len(context), dtype=torch.float64).index_add_(0, inverse, d)
            alphas.append((ngrams, ((counts.double() - d) / total[inverse]).float()))
            contexts.append((context, (mass / total).float()))
        byte_gamma = torch.ones(NUM_BYTES)
        byte_gamma[contexts[0][0]] = contexts[0][1]
        keys, alpha, gamma_next = [], [], []
        for i, (ngrams, values) in enumerate(alphas):
            next_context, next_gamma = contexts[i + 1] if i + 1 < len(contexts) else (ngrams[:0], values[:0])
            merged = torch.unique(torch.cat([ngrams, next_context]))
            keys.append(merged)
            alpha.append(torch.zeros(len(merged)).index_put_((torch.searchsorted(merged, ngrams),), values))
            gamma_next.append(
                torch.ones(len(merged)).index_put_((torch.searchsorted(merged, next_context),), next_gamma)
            )
        return cls(order, unigram.float(), byte_gamma, keys, alpha, gamma_next)

    def state_dict(self) -> dict:
        """Plain tensors and ints, loadable with ``torch.load(weights_only=True)``."""
        state = {"order": self.order, "unigram": self.unigram.cpu(), "byte_gamma": self.byte_gamma.cpu()}
        state.update(
            {name: [t.cpu() for t in getattr(self, name)] for name in ("keys", "alpha", "gamma_next")}
        )
        return state

    @classmethod
    def from_state_dict(cls, state: dict) -> NGramScorer:
        missing = [key for key in _STATE_KEYS if key not in state]
        if missing:
            raise ValueError(f"Not an NGramScorer state: missing {missing}.")
        lists = (list(state[name]) for name in ("keys", "alpha", "gamma_next"))
        return cls(int(state["order"]), state["unigram"], state["byte_gamma"], *lists)

    def to(self, device: str | torch.device) -> NGramScorer:
        """A copy whose tables live on ``device`` (this one is returned if they already do)."""
        device = torch.device(device)
        if self.unigram.device == device:
            return self
        lists = ([t.to(device) for t in getattr(self, name)] for name in ("keys", "alpha", "gamma_next"))
        return NGramScorer(self.order, self.unigram.to(device), self.byte_gamma.to(device), *lists)

    @property
    def device(self) -> torch.device:
        return self.unigram.device

    @property
    def num_ngrams(self) -> int:
        return sum(len(k) for k in self.keys) + NUM_BYTES

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
        positions = torch.arange(tokens.shape[1], device=self.device)
        start = torch.as_tensor(start, device=self.device).reshape(-1, 1)
        valid = (tokens >= 0) & (tokens < NUM_BYTES) & (positions >= start)
        # run[t] = number of consecutive valid positions ending at t (how far back context may reach).
        run = positions - torch.where(valid, -1, positions).cummax(dim=1).values
        x = tokens.clamp(0, NUM_BYTES - 1)
        # last_only: the last position and the one before it (whose n-grams are the last one's contexts)
        cols = slice(-2, None) if last_only else slice(None)
        run, x_cols = run[:, cols], x[:, cols]
        prob, gamma_next = self.unigram[x_cols], self.byte_gamma[x_cols]
        grams = x
        for n in range(2, self.order + 1):
            grams = F.pad(grams[:, :-1], (1, 0)) * NUM_BYTES + x  # the n-gram ending at each position
            query = grams[:, cols].contiguous()
            index = torch.searchsorted(self.keys[n - 2], query).clamp(max=len(self.keys[n - 2]) - 1)
            found = self.keys[n - 2][index] == query
            alpha = torch.where(found, self.alpha[n - 2][index], 0.0)
            gamma = F.pad(gamma_next[:, :-1], (1, 0), value=1.0)  # the context ends one position earlier
            prob = torch.where(run >= n, alpha + gamma * prob, prob)
            gamma_next = torch.where(found, self.gamma_next[n - 2][index], 1.0)
        bits = torch.where(valid[:, cols], -torch.log2(prob), 0.0)
        return bits[:, -1] if last_only else bits

    def context_gammas(self, recent: torch.Tensor, available: torch.Tensor) -> torch.Tensor:
        """The judge's state at the end of a context: (B, order) back-off weights, column n holding gamma
        of the n-gram that ends at the context's last byte (1 where the context has fewer than n bytes,
        ``available``, or the n-gram was never a context). ``recent`` packs the context's last bytes,
        newest lowest."""
        recent = recent.to(self.device, torch.long)
        available = torch.as_tensor(available, device=self.device)
        columns = [torch.ones_like(recent, dtype=torch.float32)]
        columns.append(torch.where(available >= 1, self.byte_gamma[recent % NUM_BYTES], 1.0))
        for n in range(2, self.order):
            _, gamma_next, found = self._lookup(n, recent % (NUM_BYTES**n))
            columns.append(torch.where(found & (available >= n), gamma_next, 1.0))
        return torch.stack(columns, dim=1)

    def step_bits(
        self, recent: torch.Tensor, available: torch.Tensor, gammas: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Bits of one new byte per row with the judge's state carried across steps: one search per order.

        ``recent`` packs the last ``order`` bytes, the new one lowest; ``available`` counts the valid bytes
        ending at the new one; ``gammas`` is the state after the previous byte (``context_gammas`` or the
        last call's). Returns the bits (B,) and the state after the new byte (B, order). Equal to
        ``token_bits`` of the whole text at its last position.
        """
        x = recent % NUM_BYTES
        prob = self.unigram[x]
        columns = [torch.ones_like(prob), self.byte_gamma[x]]
        for n in range(2, self.order + 1):
            alpha, gamma_next, found = self._lookup(n, recent % (NUM_BYTES**n))
            prob = torch.where(available >= n, torch.where(found, alpha, 0.0) + gammas[:, n - 1] * prob, prob)
            if n < self.order:
                columns.append(torch.where(found, gamma_next, 1.0))
        return -torch.log2(prob), torch.stack(columns, dim=1)

    def _lookup(self, n: int, key: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """alpha, gamma_next and whether the order-n key is in the table (values meaningless if not)."""
        keys = self.keys[n - 2]
        index = torch.searchsorted(keys, key).clamp(max=len(keys) - 1)
        return self.alpha[n - 2][index], self.gamma_next[n - 2][index], keys[index] == key

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


def _discounts(counts: torch.Tensor, order: int, max_order: int) -> torch.Tensor:
    """Modified Kneser-Ney discounts [0, D1, D2, D3+] from an order's count-of-counts.

    A lower order has few types (order 1: at most 256 bytes), so gaps in its count-of-counts are normal and
    depend on the corpus (the embedded corpus differs between Python versions): there, undefined estimates
    fall back to plain absolute discounts. Only a highest order with no singletons or doubletons — a text
    so repetitive that nothing is ever unseen — is refused.
    """
    n = [int((counts == k).sum()) for k in (1, 2, 3, 4)]
    if n[0] == 0 or n[1] == 0:
        if order == max_order:
            raise ValueError(
                f"The training text is too small or too repetitive for an order-{max_order} n-gram model: "
                f"order {order} has count-of-counts n1..n4 = {n}, and Kneser-Ney discounts need n1, n2 > 0. "
                "Use a larger, more varied corpus or a lower order."
            )
        return torch.tensor([0.0, 0.5, 1.0, 1.5], dtype=torch.float64)
    y = n[0] / (n[0] + 2 * n[1])
    d1 = 1 - 2 * y * n[1] / n[0]
    d2 = 2 - 3 * y * n[2] / n[1]
    d3 = 3 - 4 * y * n[3] / n[2] if n[2] > 0 else d2
    d = [min(max(di, 0.05), float(i + 1) - 0.05) for i, di in enumerate((d1, d2, d3))]
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
