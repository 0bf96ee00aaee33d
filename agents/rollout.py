"""The one rollout function: run a policy in a native vector env and collect what happened.

Every episode loop of the project is this function: evaluation (each sub-env plays one episode, the
values at its end are kept), RL collection (a fixed number of steps with autoreset, every transition
kept), the runners and the benchmarks.

    policy = BackbonePolicy(backbone, engine, greedy=True)
    out = rollout(env, policy, seed=0)                           # one episode per sub-env
    out.final["success"].float().mean()
    out = rollout(env, policy, seed=1, steps=32, keep_transitions=True)   # for an RL update

A :class:`BackbonePolicy` acts from sequence observations (``tokens`` (B, T) and ``length`` (B, 1)). When
the env appends the chosen action's token to the observation (maze token mode, text generation), it
streams: the backbone reads the prefix once and then one token a step, continuing its state (KV cache
and memory), which gives the same logits as re-reading the sequence. Nothing inside the loop copies to
the host except the completion check every ``check_every`` steps, and, when a streaming policy collects
a fixed number of steps (RL), one check a step of whether a sub-env started a new episode (its prompt
is then read afresh).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from gymnasium.vector import AutoresetMode

from agents.backbones.base import Backbone, BackboneOutput
from agents.engine import InferenceEngine, sample_actions


class Policy(Protocol):
    """What :func:`rollout` drives: ``begin`` at the first observation, then ``act`` / ``observe``."""

    uses_action_mask: bool

    def begin(self, obs: Mapping[str, torch.Tensor]) -> None: ...

    def act(
        self, obs: Mapping[str, torch.Tensor], mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(actions (B,), log-probabilities (B,)) for the observation. A policy with a ``features``
        function is called with its output as a third argument."""

    def observe(self, actions: torch.Tensor, obs: Mapping[str, torch.Tensor], keep_stream: bool) -> None:
        """The env answered ``actions`` with ``obs``; ``keep_stream`` is False once any sub-env may have
        started a new episode whose rows a streamed state would not match.

        A policy may also define ``focus(live, count)``: from now on only the ``count`` sub-envs where
        ``live`` (B,) is True need their actions (the others finished their first episode); the others'
        actions are then arbitrary, so it may stop computing them."""


@dataclass
class Transitions:
    """``steps`` transitions of ``num_envs`` sub-envs, stacked as (S, B, ...).

    tokens/length: the sequence observation each action was taken in.
    valid:         False for a step whose action the env ignored (the step right after an episode ended,
                   under next-step autoreset).
    done:          the step ended its episode (terminated or truncated); success: it ended in success.
    mask:          the legal actions (S, B, A) when the policy masks them, else None.
    features:      the per-step engine features (S, B, F) when the policy reads any, else None.
    """

    tokens: torch.Tensor
    length: torch.Tensor
    actions: torch.Tensor
    log_probs: torch.Tensor
    rewards: torch.Tensor
    done: torch.Tensor
    valid: torch.Tensor
    success: torch.Tensor
    mask: torch.Tensor | None = None
    features: torch.Tensor | None = None

    def flat(self, name: str) -> torch.Tensor | None:
        """Field ``name`` with its (S, B) dims merged into one batch dim (None for an absent field)."""
        value = getattr(self, name)
        return None if value is None else value.flatten(0, 1)


@dataclass
class Rollout:
    """What one call of :func:`rollout` collected.

    final:      per sub-env, every (B,)-shaped info value at the end of its first episode (``success``,
                ``score``, ``solved_optimally``, reward components, ...).
    final_obs:  per sub-env, the observation at the end of its first episode (for drawing it).
    finished:   which sub-envs finished their first episode.
    transitions: every step, when asked for (RL).
    """

    final: dict[str, torch.Tensor]
    final_obs: dict[str, torch.Tensor]
    finished: torch.Tensor
    env_steps: int
    transitions: Transitions | None = None
    first_obs: dict[str, torch.Tensor] = field(default_factory=dict)


class BackbonePolicy:
    """Acts from sequence observations with a backbone, optionally through the inference engine.

    ``engine=None``: the backbone's own logits over the action tokens (``action_token_ids``). ``greedy``:
    the arg-max, else a sample drawn from ``generator``. ``mask_invalid``: actions the env's
    ``action_masks()`` rules out get no probability. ``stream``: the env appends the action's token to
    the observation, so the backbone may read one token a step after the prefix. ``features``: a function
    ``(env.unwrapped, obs, mask) -> (B, F)`` whose output a conditioned engine built with ``n_features=F``
    reads each step (:mod:`agents.engine_features`); :func:`rollout` calls it and keeps its output.
    ``reserve_kv``: a streamed state gets room for the observation's width (``Backbone.reserve_state``),
    so each step writes its token in place; False concatenates the cache every step (the same logits). A
    stream appends at most as many tokens as the observation had free columns when it was read (after that
    a window may slide), then the observation is read afresh.
    :meth:`focus`: a greedy policy without an engine keeps streaming only the
    sub-envs still playing their first episode once at most half of the streamed ones are
    (``select_state_rows`` of the backbone), and answers the others with action 0: an evaluation's results
    are unchanged, and finished sub-envs stay in the computed batch only while they are under half of it
    (as of the last completion check).
    """

    def __init__(
        self,
        backbone: Backbone,
        engine: InferenceEngine | None = None,
        *,
        action_token_ids: torch.Tensor | None = None,
        greedy: bool = False,
        generator: torch.Generator | None = None,
        mask_invalid: bool = False,
        stream: bool = False,
        features: Callable[..., torch.Tensor] | None = None,
        reserve_kv: bool = True,
    ):
        if engine is None and action_token_ids is None:
            raise ValueError(
                "BackbonePolicy without an engine needs action_token_ids (pass task.action_token_ids)."
            )
        self.backbone, self.engine = backbone, engine
        ids = engine.action_token_ids if engine is not None else torch.as_tensor(action_token_ids)
        self.action_ids = ids.to(next(backbone.parameters()).device, torch.long)
        self.greedy, self.generator = greedy, generator
        self.uses_action_mask, self.stream, self.reserve_kv = mask_invalid, stream, reserve_kv
        self.features = features if engine is not None and getattr(engine, "n_features", 0) else None
        self._output: Any = None
        self._streamable = False
        self._room = 0  # tokens the stream may still append before the observation's window is full
        self._rows: torch.Tensor | None = None  # the env rows a focused stream covers (None: all)

    def begin(self, obs: Mapping[str, torch.Tensor]) -> None:
        self._output, self._rows = None, None

    def focus(self, live: torch.Tensor, count: int) -> None:
        """Stream only the ``count`` rows where ``live``, once they are at most half of those streamed (a
        gather of the state each time the live rows halve: a bounded cost)."""
        select = getattr(self.backbone, "select_state_rows", None)
        streaming = self._output is not None and self._streamable and self._output.state is not None
        streamed = live.shape[0] if self._rows is None else self._rows.shape[0]
        if (
            select is None
            or self.engine is not None
            or not self.greedy
            or not streaming
            or count > streamed // 2
        ):
            return
        rows = torch.argsort((~live).int(), stable=True)[:count]  # the live env rows, ascending
        inner = rows if self._rows is None else torch.searchsorted(self._rows, rows)  # among the streamed
        out = self._output
        self._output = BackboneOutput(out.logits[inner], out.hidden[inner], state=select(out.state, inner))
        self._rows = rows

    def act(
        self,
        obs: Mapping[str, torch.Tensor],
        mask: torch.Tensor | None,
        features: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        tokens, length = sequence(obs, self.action_ids.device)
        if self._output is None:  # read the whole observation (a fresh rollout or no streaming)
            self._rows = None
            width = int(length.max()) if self.stream else tokens.shape[1]
            # streaming appends after the longest prefix: only exact when every row has that length
            self._streamable = self.stream and bool((length == width).all())
            self._room = tokens.shape[1] - width
            self._output = self._forward(tokens[:, :width], None)
            if self._streamable and self.reserve_kv:  # room for the longest episode: writes in place
                reserve = getattr(self.backbone, "reserve_state", None)
                if reserve is not None:
                    self._output.state = reserve(self._output.state, tokens.shape[1])
            positions = length.reshape(-1) - 1
        else:
            positions = torch.zeros(self._output.logits.shape[0], dtype=torch.long, device=length.device)
        logits = self._logits(self._output, tokens, length, positions, features)
        if mask is not None:
            mask = mask.to(logits.device)
            logits = logits.masked_fill(~(mask if self._rows is None else mask[self._rows]), float("-inf"))
        log_probs = logits.log_softmax(-1)
        if self.greedy:
            actions = logits.argmax(-1)
        else:
            actions = sample_actions(torch.distributions.Categorical(logits=logits), self.generator)
        log_probs = log_probs.gather(1, actions[:, None])[:, 0]
        if self._rows is not None:  # a focused stream: the finished rows get action 0, log-probability 0
            spread = torch.zeros(length.shape[0], dtype=torch.long, device=actions.device)
            actions = spread.index_copy(0, self._rows, actions)
            log_probs = spread.to(log_probs.dtype).index_copy(0, self._rows, log_probs)
        return actions, log_probs

    def observe(self, actions: torch.Tensor, obs: Mapping[str, torch.Tensor], keep_stream: bool) -> None:
        if not (self._streamable and keep_stream and self._room > 0) or self._output.state is None:
            self._output, self._rows = None, None
            return
        streamed = actions if self._rows is None else actions[self._rows]
        self._output = self._forward(self.action_ids[streamed][:, None], self._output.state)
        self._room -= 1

    def _forward(self, tokens: torch.Tensor, state: Any) -> Any:
        if self.engine is None:
            return self.backbone(tokens, state)
        return self.engine.read(self.backbone, tokens, state)

    def _logits(
        self,
        output: Any,
        tokens: torch.Tensor,
        length: torch.Tensor,
        positions: torch.Tensor,
        features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if self.engine is None:
            rows = torch.arange(positions.shape[0], device=positions.device)
            return output.logits[rows, positions][:, self.action_ids].float()
        extra = {"features": features} if features is not None else {}
        output_logits = self.backbone.output_logits
        dist = self.engine.distribution(output, tokens, length, output_logits, positions, **extra)
        return dist.logits


def sequence(obs: Mapping[str, Any], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``tokens`` (B, T) and ``length`` (B, 1) of a sequence observation, as long tensors on ``device``."""
    if not isinstance(obs, Mapping) or "tokens" not in obs or "length" not in obs:
        raise ValueError(
            "The policy acts on sequence observations: a dict with 'tokens' (B, T) and 'length' (B, 1); "
            "make the env with its sequence observation mode."
        )
    tokens = torch.as_tensor(obs["tokens"]).to(device, torch.long)
    return tokens, torch.as_tensor(obs["length"]).to(device, torch.long).reshape(-1, 1)


def episode_end_info(info: Mapping[str, Any], autoreset_mode: AutoresetMode) -> Mapping[str, Any]:
    """The info entries that describe an episode's end: ``info`` itself, or ``final_info`` under same-step
    autoreset (where ``info`` already describes the new episode)."""
    return info.get("final_info", {}) if autoreset_mode is AutoresetMode.SAME_STEP else info


@torch.no_grad()
def rollout(
    env: Any,
    policy: Policy,
    *,
    seed: int | None = None,
    steps: int | None = None,
    keep_transitions: bool = False,
    check_every: int = 8,
    max_steps: int = 100_000,
) -> Rollout:
    """Run ``policy`` in the native vector ``env`` from ``reset(seed=seed)``.

    ``steps=None``: until every sub-env has finished its first episode (checked every ``check_every``
    steps, the only host sync; a sub-env's later episodes are ignored). ``steps=n``: exactly ``n`` steps,
    sub-envs resetting as they finish; a streaming policy (``policy.stream``) keeps its stream until a
    sub-env starts a new episode (one host check a step), then reads every observation afresh.
    ``keep_transitions`` stacks every step for an RL update.
    """
    base = env.unwrapped
    device = base.device
    mode = base.autoreset_mode
    obs, _ = env.reset(seed=seed)
    first_obs = {k: v.clone() for k, v in obs.items()} if isinstance(obs, Mapping) else {}
    policy.begin(obs)
    num = env.num_envs
    finished = torch.zeros(num, dtype=torch.bool, device=device)
    ignored = torch.zeros_like(finished)  # the env ignores this step's action (next-step autoreset)
    final: dict[str, torch.Tensor] = {}
    final_obs: dict[str, torch.Tensor] = {}
    kept: list[dict[str, torch.Tensor]] = []
    focus = None if keep_transitions else getattr(policy, "focus", None)  # transitions keep every row's play
    # a fixed-length rollout streams only while every sub-env is in the episode its stream began with
    check_restarts = steps is not None and bool(getattr(policy, "stream", False))
    step = 0
    while step < (steps if steps is not None else max_steps):
        if steps is None and step % check_every == 0:
            done_count = int(finished.sum())  # the loop's one host sync
            if done_count == num:
                break
            if focus is not None and done_count:
                focus(~finished, num - done_count)
        mask = base.action_masks() if policy.uses_action_mask else None
        feature_fn = getattr(policy, "features", None)
        features = feature_fn(base, obs, mask) if feature_fn is not None else None
        if features is None:
            actions, log_probs = policy.act(obs, mask)
        else:
            actions, log_probs = policy.act(obs, mask, features)
        previous = obs
        obs, reward, terminated, truncated, info = env.step(actions)
        done = torch.as_tensor(terminated, device=device) | torch.as_tensor(truncated, device=device)
        ended = episode_end_info(info, mode)
        first_end = done & ~finished & ~ignored
        _keep_first(final, ended, first_end, num)
        ended_obs = info.get("final_obs", obs) if mode is AutoresetMode.SAME_STEP else obs
        _keep_first(final_obs, ended_obs, first_end, num)
        if keep_transitions:
            tokens, length = sequence(previous, device)
            success = torch.as_tensor(ended.get("success", torch.zeros_like(done)), device=device)
            kept.append(
                {
                    "tokens": tokens,
                    "length": length,
                    "actions": actions,
                    "log_probs": log_probs,
                    "rewards": torch.as_tensor(reward, device=device, dtype=torch.float32),
                    "done": done & ~ignored,
                    "valid": ~ignored,
                    "success": success.bool() & done & ~ignored,
                    **({"mask": torch.as_tensor(mask, device=device).bool()} if mask is not None else {}),
                    **({"features": features.float()} if features is not None else {}),
                }
            )
        finished |= first_end
        # this observation starts a new episode: same-step autoreset at the end, next-step one step later
        restarted = done if mode is AutoresetMode.SAME_STEP else ignored
        ignored = done & ~ignored if mode is AutoresetMode.NEXT_STEP else torch.zeros_like(done)
        step += 1
        keep_stream = steps is None or (check_restarts and not bool(restarted.any()))
        policy.observe(actions, obs, keep_stream=keep_stream)
    else:
        if steps is None and not bool(finished.all()):
            raise RuntimeError(
                f"{int((~finished).sum())} sub-envs did not finish an episode within max_steps={max_steps}; "
                "give the env a step limit or raise max_steps."
            )
    transitions = None
    if keep_transitions:
        names = [f.name for f in dataclasses.fields(Transitions) if kept and f.name in kept[0]]
        transitions = Transitions(**{name: torch.stack([s[name] for s in kept]) for name in names})
    return Rollout(final, final_obs, finished, step * num, transitions, first_obs)


def _keep_first(
    store: dict[str, torch.Tensor], values: Mapping[str, Any], where: torch.Tensor, num: int
) -> None:
    """Write the (B,)-or-(B, ...)-shaped entries of ``values`` into ``store`` at the rows ``where``."""
    for key, value in values.items():
        if key.startswith("_") or not isinstance(value, torch.Tensor) or value.shape[:1] != (num,):
            continue
        rows = where.reshape(-1, *([1] * (value.dim() - 1)))
        current = store.get(key)
        store[key] = torch.where(rows, value, value.new_zeros(()) if current is None else current)
