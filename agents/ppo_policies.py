"""Actor-critic networks for ``runners.ppo``, one per kind of observation, behind one interface.

Every policy maps ``(obs, state, starts)`` to ``(logits, value, state)``:

- ``obs``: one batch of observations as the vector env returns them (uint8 images, int64 tokens);
- ``state``: the recurrent state, (B, hidden) with a GRU and an empty (B, 0) tensor for the feed-forward
  policies (``initial_state`` gives either);
- ``starts``: (B,) bool, True where the observation is the first of an episode; a recurrent policy zeroes
  its state there before reading the observation, so an episode never sees its predecessor's memory.

Which encoder fits which env (:func:`make_policy`; :class:`ActorCritic` adds the optional GRU and the
heads): a maze's full-grid image goes to :class:`MazeGridCells` (``maze_cnn``: a convolution that reads
each cell with its four walls, then a weight-shared convolution repeated ``iterations`` times so
information travels ``iterations`` cells, read out at the agent's cell) or :class:`MazeGraphCells`
(``maze_graph``: the same reach by message passing along the maze's open passages only); other images
and vectors (egocentric views) to :class:`FlatEncoder`, an MLP; and a stream of tokens (recall
``stream`` mode), which needs memory, to :class:`TokenEncoder` under a GRU. ``recurrent=True`` puts a GRU
on any of the encoders.
"""

from __future__ import annotations

import math

import gymnasium as gym
import torch
from torch import nn
from torch.nn import functional as F


def layer_init(layer: nn.Module, std: float = math.sqrt(2), bias: float = 0.0) -> nn.Module:
    """Orthogonal weights and constant bias, as CleanRL's PPO initialises its layers."""
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias)
    return layer


def heads(width: int, actions: int) -> tuple[nn.Module, nn.Module]:
    """The actor (small initial logits: a near-uniform first policy) and critic heads."""
    return layer_init(nn.Linear(width, actions), std=0.01), layer_init(nn.Linear(width, 1), std=1.0)


class MazeGridCells(nn.Module):
    """Encoder of a maze's grid image (3, 2H+1, 2W+1): one feature vector at the agent's cell.

    The grid image has a pixel per cell and per wall; a 3x3 convolution of stride 2 reads each cell with
    its four walls (cell (i, j) sits at pixel (2i+1, 2j+1)). A weight-shared 3x3 convolution applied
    ``iterations`` times (a gated update, re-reading the cell features each time) moves information one
    cell per iteration, so the cells around the agent can learn which way leads to the goal; the output is
    the feature vectors at the agent's cell and at its four neighbours in action order (the agent plane,
    at cell resolution and shifted, selects them) beside a global max-pool.
    """

    def __init__(self, channels: int, iterations: int):
        super().__init__()
        self.iterations = iterations
        self.stem = nn.Sequential(nn.Conv2d(3, channels, 3, stride=2), nn.ReLU())
        self.step = nn.Conv2d(2 * channels, 2 * channels, 3, padding=1)  # candidate and gate
        self.width = 6 * channels

    def iterate(self, hidden: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
        """One gated update of the cell features from their 3x3 neighbourhood and the stem's features."""
        candidate, gate = self.step(torch.cat([hidden, cells], dim=1)).chunk(2, dim=1)
        gate = torch.sigmoid(gate)
        return (1 - gate) * hidden + gate * torch.tanh(candidate)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        image = obs.float() / 255.0
        cells = self.stem(image)
        hidden = cells
        for _ in range(self.iterations):  # a gated update keeps many iterations stable
            hidden = self.iterate(hidden, cells)
        agent = image[:, 1:2, 1::2, 1::2]  # (B, 1, H, W): 1 at the agent's cell
        # the agent's cell and its neighbours in action order (up, right, down, left): row i of ``up``
        # holds the agent mask of row i + 1, so it marks the cell above the agent
        up = F.pad(agent[:, :, 1:], (0, 0, 0, 1))
        right = F.pad(agent[:, :, :, :-1], (1, 0, 0, 0))
        down = F.pad(agent[:, :, :-1], (0, 0, 1, 0))
        left = F.pad(agent[:, :, :, 1:], (0, 1, 0, 0))
        read = [(hidden * mask).sum((2, 3)) for mask in (agent, up, right, down, left)]
        return torch.cat([*read, hidden.amax((2, 3))], dim=1)


class MazeGraphCells(nn.Module):
    """Encoder of a maze's grid image (3, 2H+1, 2W+1) as message passing on the maze's graph.

    Each cell reads its own features (agent, goal, inside the maze, its four passages) and, ``iterations``
    times, the sum of the hidden states of the neighbours it has an open passage to (the passages come
    from the observation's wall pixels), through one weight-shared gated update. So a wall stops
    information by construction, where :class:`MazeGridCells`' 3x3 convolution has to learn to read the
    wall pixel between two cells; what to send and how to combine it is learned. An iteration is a
    (2 x channels -> 2 x channels) linear map per cell and a few element-wise passes: 4C² multiply-adds
    a cell where :class:`MazeGridCells`' 3x3 convolution at the same channels does 36C², so more
    iterations (reach) fit the same work. The output has :class:`MazeGridCells`' layout: the agent's cell,
    its four neighbours in action order, a global max-pool. States are channels-last (B, H, W, C).
    """

    def __init__(self, channels: int, iterations: int):
        super().__init__()
        self.iterations, self.channels = iterations, channels
        self.embed = nn.Linear(7, 3 * channels)  # initial state (C) and the update's per-cell input (2C)
        self.update = nn.Linear(2 * channels, 2 * channels, bias=False)  # [state, messages] -> cand., gate
        self.width = 6 * channels

    @staticmethod
    def cell_inputs(obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(features (B, H, W, 7): agent, goal, inside, open up/right/down/left; passages (B, H, W, 4)),
        both float, read from the grid image: cell (i, j) is pixel (2i+1, 2j+1), its walls around it."""
        free = obs[:, 0] == 0  # wall plane: 255 on walls and outside the maze, 0 on cells and passages
        passages = torch.stack(
            [free[:, 0:-1:2, 1::2], free[:, 1::2, 2::2], free[:, 2::2, 1::2], free[:, 1::2, 0:-1:2]], dim=-1
        ).float()  # (B, H, W, 4) in action order: up, right, down, left
        marks = torch.stack([obs[:, 1, 1::2, 1::2] > 0, obs[:, 2, 1::2, 1::2] > 0, free[:, 1::2, 1::2]], -1)
        return torch.cat([marks.float(), passages], dim=-1), passages

    @staticmethod
    def neighbours(hidden: torch.Tensor) -> list[torch.Tensor]:
        """Each cell's up, right, down and left neighbour's state (B, H, W, C), zeros off the grid."""
        padded = F.pad(hidden, (0, 0, 1, 1, 1, 1))
        return [padded[:, :-2, 1:-1], padded[:, 1:-1, 2:], padded[:, 2:, 1:-1], padded[:, 1:-1, :-2]]

    def iterate(
        self, hidden: torch.Tensor, drive: torch.Tensor, passages: tuple[torch.Tensor, ...]
    ) -> torch.Tensor:
        """One gated update from the neighbours behind open ``passages`` (four (B, H, W, 1) tensors, in
        action order); ``drive`` (B, H, W, 2C) is the cell's own input. Written in few operations (the
        rollout's forward is launch-bound on a GPU): one product per neighbour, one matrix product."""
        up, right, down, left = self.neighbours(hidden)
        messages = torch.addcmul(torch.addcmul(up * passages[0], right, passages[1]), down, passages[2])
        messages = torch.addcmul(messages, left, passages[3])
        both = torch.cat([hidden, messages], dim=-1)
        mixed = torch.addmm(drive.flatten(0, 2), both.flatten(0, 2), self.update.weight.t())
        candidate, gate = mixed.view_as(drive).chunk(2, dim=-1)
        return torch.lerp(hidden, torch.tanh(candidate), torch.sigmoid(gate))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        inputs, passages = self.cell_inputs(obs)
        start, drive = self.embed(inputs).split([self.channels, 2 * self.channels], dim=-1)
        hidden = torch.tanh(start)
        drive = drive.contiguous()
        open_ = tuple(passages.to(hidden.dtype).split(1, dim=-1))
        for _ in range(self.iterations):
            hidden = self.iterate(hidden, drive, open_)
        agent = inputs[..., 0:1].to(hidden.dtype)  # (B, H, W, 1): 1 at the agent's cell
        read = [(cells * agent).sum((1, 2)) for cells in (hidden, *self.neighbours(hidden))]
        return torch.cat([*read, hidden.amax((1, 2))], dim=1)


class FlatEncoder(nn.Module):
    """An MLP over a flattened image or vector (egocentric views, small observations)."""

    def __init__(self, space: gym.Space, hidden: int):
        super().__init__()
        size = int(math.prod(space.shape))
        self.scale = 255.0 if space.dtype == torch.uint8 or str(space.dtype) == "uint8" else 1.0
        self.net = nn.Sequential(
            layer_init(nn.Linear(size, hidden)), nn.Tanh(), layer_init(nn.Linear(hidden, hidden)), nn.Tanh()
        )
        self.width = hidden

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs.flatten(1).float() / self.scale)


class TokenEncoder(nn.Module):
    """An embedding of one token a step (recall ``stream`` mode: ``Discrete(vocab)`` observations)."""

    def __init__(self, space: gym.spaces.Discrete, hidden: int):
        super().__init__()
        self.embed = nn.Embedding(int(space.n), hidden)
        nn.init.normal_(
            self.embed.weight, std=hidden**-0.5
        )  # unit-norm inputs: the GRU's gates start unsaturated
        self.width = hidden

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.embed(obs.long())


class ActorCritic(nn.Module):
    """An encoder, an optional GRU, and the actor and critic heads; see the module docstring."""

    def __init__(self, encoder: nn.Module, actions: int, hidden: int, recurrent: bool, bf16: bool = False):
        super().__init__()
        self.encoder = encoder
        self.bf16 = bf16  # the encoder (the costly part) under bf16 autocast on CUDA; the rest in float32
        self.recurrent = recurrent
        self.gru = nn.GRUCell(encoder.width, hidden) if recurrent else None
        self.state_size = hidden if recurrent else 0
        width = hidden if recurrent else encoder.width
        self.torso = nn.Sequential(layer_init(nn.Linear(width, hidden)), nn.ReLU())
        self.actor, self.critic = heads(hidden, actions)

    def initial_state(self, batch: int, device: torch.device | str) -> torch.Tensor:
        """The state at the start of an episode: zeros (B, hidden), or (B, 0) without recurrence."""
        return torch.zeros(batch, self.state_size, device=device)

    def forward(
        self, obs: torch.Tensor, state: torch.Tensor, starts: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logits (B, A), value (B,), next state) for one step; see the module docstring."""
        with torch.autocast("cuda", torch.bfloat16, enabled=self.bf16 and obs.is_cuda):
            features = self.encoder(obs)
        features = features.float()
        if self.gru is not None:
            state = self.gru(features, state * (~starts).unsqueeze(1).to(state.dtype))
            features = state
        out = self.torso(features)
        return self.actor(out), self.critic(out).squeeze(1), state


def compile_encoder_step(net: ActorCritic) -> bool:
    """Compile the repeated update of a maze encoder (``encoder.iterate``) with ``torch.compile``, so each of
    its ``iterations`` runs as a few fused kernels instead of a dozen launches; the weights and the
    state dict are unchanged. The compiled function is small (one iteration), so it compiles in seconds
    where the whole unrolled encoder takes far longer (maze_graph c16 x48, the first no-grad forward of 64
    8x8 mazes on one CPU thread, 2026-12-03: 1.9 s against 35 s, per shape and grad mode). Returns False
    where there is nothing to compile."""
    iterate = getattr(net.encoder, "iterate", None)
    if iterate is None:
        return False
    config = torch._dynamo.config  # a compile per (batch size, grad mode): rollout, minibatch, evaluation
    config.recompile_limit = max(getattr(config, "recompile_limit", 8), 32)
    net.encoder.iterate = torch.compile(iterate, dynamic=False)
    return True


POLICY_KINDS = ("auto", "maze_cnn", "maze_graph", "mlp", "gru")


def make_policy(
    observation_space: gym.Space,
    actions: int,
    kind: str = "auto",
    hidden: int = 128,
    channels: int = 32,
    iterations: int = 8,
    recurrent: bool | None = None,
    bf16: bool = False,
) -> ActorCritic:
    """The actor-critic for one sub-env's ``observation_space`` and ``actions`` moves.

    ``kind="auto"`` picks by the observation: a maze grid image (3, 2H+1, 2W+1) -> ``maze_cnn``, a token
    stream (``Discrete``) -> ``gru``, anything else -> ``mlp``. ``recurrent`` adds a GRU (default: only
    for ``gru``). ``bf16`` runs the encoder under bf16 autocast on CUDA.
    """
    if kind not in POLICY_KINDS:
        raise ValueError(f"policy.kind={kind!r} is unknown; use one of {POLICY_KINDS}, e.g. policy.kind=auto")
    space = observation_space
    if kind == "auto":
        if isinstance(space, gym.spaces.Discrete):
            kind = "gru"
        elif isinstance(space, gym.spaces.Box) and len(space.shape) == 3 and space.shape[0] == 3:
            kind = "maze_cnn"
        else:
            kind = "mlp"
    if isinstance(space, gym.spaces.Discrete):
        if kind in ("maze_cnn", "maze_graph"):
            raise ValueError(
                f"policy.kind={kind} reads maze grid images; a token stream needs policy.kind=gru"
            )
        encoder: nn.Module = TokenEncoder(space, hidden)
    elif kind in ("maze_cnn", "maze_graph"):
        shape = tuple(space.shape)
        if len(shape) != 3 or shape[0] != 3 or shape[1] % 2 == 0 or shape[2] % 2 == 0:
            raise ValueError(
                f"policy.kind={kind} reads maze grid images (3, 2H+1, 2W+1) at grid_scale 1, got shape "
                f"{shape}; use env.obs_mode=grid, or policy.kind=mlp for other observations."
            )
        cells = MazeGridCells if kind == "maze_cnn" else MazeGraphCells
        encoder = cells(channels, iterations)
    elif isinstance(space, gym.spaces.Box):
        encoder = FlatEncoder(space, hidden)
    else:
        raise ValueError(
            f"no policy reads {type(space).__name__} observations (a Box image/vector or a Discrete token "
            "stream); for maze token observations use runners.maze, which trains a backbone."
        )
    recurrent = kind == "gru" if recurrent is None else recurrent
    return ActorCritic(encoder, actions, hidden, recurrent, bf16)
