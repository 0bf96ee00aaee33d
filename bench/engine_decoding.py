"""Does a learned inference engine decode better than fixed settings? Reward on held-out generation prompts.

    python -m bench.engine_decoding --device cpu --threads 1   # small size: minutes on one CPU thread
    python -m bench.engine_decoding --device cuda --d-model 256 --layers 4 --sup-steps 3000 --rl-steps 300
    python -m bench.engine_decoding --device cuda --seeds 0 1 2   # mean ± standard error over seeds

1. Train a small backbone supervised on the generation task's sampler (or ``--checkpoint`` to load one;
   a missing checkpoint file is written after training).
2. Score decodings on held-out ``test``-split prompts with the env's default reward (fluency, word order,
   diversity, repetition, length), the same prompts and sampling seed for every row:
   (a) default decoding: temperature 1, top-p 0.9 (exact nucleus), no repetition penalty;
   (b) the best fixed (temperature, top-p, penalty) of a grid, chosen on ``validation``-split prompts;
   (c) the learned engine: REINFORCE on ``train``-split prompts, starting from (a)'s setting;
   (d) the conditioned engine: per-step temperature and top-p offsets from the hidden state and the text
       family's features (``--features``: the latest set, v2, adds the running seq-rep, distinct-n, a
       looping flag and the judge's bits; ``none`` reads the hidden state alone, as before v2) on top of
       learned global knobs, trained the same way, starting from (b)'s setting.
Each engine starts from the fixed decoding it is compared with (penalty at least 1.05, last layer 0.97),
so the question is whether learning from reward improves on it.
``--group-size K`` gives each RL prompt to K sub-envs in a row and compares each return with the other
K-1 samples of the same prompt (the per-prompt baseline of RLOO / GRPO) instead of with every other
sub-env, whose prompts differ. ``--fluency-floor`` trains (d) to raise the reward subject to its rollouts'
mean fluency staying at or above (b)'s on train prompts (a Lagrange multiplier, ``RLConfig.floor_key``).
``--select-every K`` is model selection on a validation split (early stopping): at RL step 0, every K steps
and at the last, (d) and (b) are scored on the same ``--select-prompts`` ``validation`` prompts, and the
snapshot of (d) whose weaker paired t-statistic over prompts, min(t reward, t fluency), is largest is
restored before (d) is scored on the test prompts (:class:`ValidationSelector` says why this criterion).
Every rollout streams the backbone (the prompt once, then one byte a step), and each engine's random
initial weights come from a seed of their own, so a row does not depend on what ran before it.
Each seed trains its own backbone and engines and draws its own prompts (``--eval-envs`` test prompts,
512 by default: at 128 the sampling alone gave one seed's (d) - (b) in fluency a standard error of
about 0.0075, at 512 about 0.004); the table gives, per decoding,
the mean ± standard error over ``--seeds`` of the reward and of each of its components (fluency, word
order, diversity and repetition band distances, length penalty, batch diversity when weighted) and raw
metrics (bits per byte, distinct-2, seq-rep-4, success). Targets (issue #7): (c) >= (a) and (d) >= (b);
(issue #23): (d) beats (b) on the reward and on fluency alone by more than two standard errors of the
paired difference; each target line also prints the per-seed differences.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import math
import statistics
import time
from pathlib import Path

import torch
from torch import nn
from torch.distributions import Categorical

from agents.backbones import BackboneConfig, build_backbone
from agents.dual import DualAgent, RLConfig, SupervisedConfig
from agents.engine import InferenceEngine, context_presence, decode_logits
from agents.engine_features import TEXT_FEATURES, EngineFeatures, for_family
from agents.rollout import BackbonePolicy, rollout
from bench.harness import Benchmark
from envs.generation.task import TextLevel
from envs.generation.vector import TextQualityVectorEnv
from foundation.device import resolve_device
from foundation.seeding import derive_seed, make_generator, seed_everything

GRID = {"temperature": (0.5, 0.7, 0.85, 1.0), "top_p": (0.8, 0.9, 1.0), "penalty": (1.0, 1.2, 1.5)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="one full run per seed")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 on a shared machine)")
    parser.add_argument("--prompt-length", type=int, default=48)
    parser.add_argument("--continuation-length", type=int, default=32)
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--sup-steps", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rl-steps", type=int, default=40)
    parser.add_argument("--rl-lr", type=float, default=0.05)
    parser.add_argument("--envs", type=int, default=32, help="sub-envs in RL rollouts")
    parser.add_argument("--eval-envs", type=int, default=512, help="held-out test prompts per evaluation")
    parser.add_argument(
        "--condition-lr-scale",
        type=float,
        default=RLConfig.condition_lr_scale,
        help="the conditioned head's learning rate / --rl-lr (RLConfig.condition_lr_scale)",
    )
    parser.add_argument(
        "--feature-offsets",
        action="store_true",
        help="(d) also maps its features linearly to its offsets, learned at --rl-lr (EngineConfig)",
    )
    parser.add_argument(
        "--rl-gamma",
        type=float,
        default=RLConfig.gamma,
        help="discount of the engines' reward-to-go (RLConfig.gamma)",
    )
    parser.add_argument(
        "--group-size",
        type=int,
        default=RLConfig.group_size,
        help="RL sub-envs per prompt: each engine's REINFORCE baseline is the mean return of the other "
        "samples of the same prompt (RLConfig.group_size; 1: of all other sub-envs); must divide --envs",
    )
    parser.add_argument(
        "--fluency-floor",
        action="store_true",
        help="train (d) to raise the reward subject to its mean fluency staying >= (b)'s on train prompts "
        "(a Lagrange multiplier, RLConfig.floor_key='fluency')",
    )
    parser.add_argument(
        "--floor-lr",
        type=float,
        default=RLConfig.floor_lr,
        help="the fluency floor's multiplier step per unit of shortfall per RL step (RLConfig.floor_lr)",
    )
    parser.add_argument("--grid-prompts", type=int, default=32, help="validation prompts per grid setting")
    parser.add_argument(
        "--select-every",
        type=int,
        default=0,
        help="model selection for (d): score it on validation prompts at RL step 0, every K steps and the "
        "last, and keep the snapshot best by min(t reward, t fluency) against (b) (0: off, the last step)",
    )
    parser.add_argument(
        "--select-prompts", type=int, default=512, help="validation prompts per selection check"
    )
    parser.add_argument(
        "--features",
        default=f"v{max(TEXT_FEATURES)}",
        choices=["none", *(f"v{v}" for v in sorted(TEXT_FEATURES))],
        help="the text features the conditioned engine (d) reads beside the hidden state (none: hidden only)",
    )
    parser.add_argument("--checkpoint", type=Path, default=None, help="backbone checkpoint to load or write")
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to docs/")
    args = parser.parse_args(argv)
    if args.feature_offsets and args.features == "none":
        parser.error("--feature-offsets maps (d)'s features to its offsets: drop --features none.")
    if args.group_size < 1 or args.envs % args.group_size:
        parser.error(f"--group-size {args.group_size} must be >= 1 and divide --envs {args.envs}.")
    if args.select_every < 0:
        parser.error(f"--select-every {args.select_every} must be >= 0 (0: no selection, the last step).")
    if args.select_every and args.select_prompts < 2:
        parser.error(f"--select-prompts {args.select_prompts} must be >= 2: the criterion needs a spread.")
    return args


def make_env(
    args: argparse.Namespace,
    split: str,
    num_envs: int,
    device: torch.device,
    dense: bool,
    group_size: int = 1,
) -> TextQualityVectorEnv:
    """The bench's text env on ``split`` prompts; ``group_size`` sub-envs in a row share each prompt."""
    level = TextLevel("bench", args.prompt_length, args.continuation_length)
    return TextQualityVectorEnv(
        num_envs,
        device=device,
        levels=[level],
        window=args.prompt_length + args.continuation_length,
        prompt_split=split,
        dense=dense,
        seed=args.seed,
        prompt_group_size=group_size,
    )


def mean_se(values: list[float]) -> tuple[float, float]:
    """Mean and standard error of the mean over seeds (0 for one seed)."""
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0)


def _fmt(values: list[float]) -> str:
    mean, se = mean_se(values)
    return f"{mean:.4g} ± {se:.2g}" if len(values) > 1 else f"{mean:.4g}"


def train_backbone(args: argparse.Namespace, env: TextQualityVectorEnv, device: torch.device):
    """A small transformer trained on the task's sampler, or loaded from ``--checkpoint``."""
    config = BackboneConfig(
        vocab_size=env.task.vocab_size,
        d_model=args.d_model,
        n_layers=args.layers,
        n_heads=args.heads,
        max_seq_len=env.window,
    )
    backbone = build_backbone(config)
    engine = InferenceEngine.for_backbone(backbone, env.task.action_token_ids)
    sup = SupervisedConfig(
        lr=3e-3,
        warmup_steps=min(50, args.sup_steps // 10),
        total_steps=args.sup_steps + 1,
        batch_size=args.batch_size,
    )
    agent = DualAgent(backbone, engine, env.task, supervised=sup, seed=args.seed, device=device)
    if args.checkpoint is not None and args.checkpoint.is_file():
        agent.load(args.checkpoint)
        return agent.backbone, "loaded"
    loss = float("nan")
    for _ in range(args.sup_steps):
        loss = agent.supervised_step()["supervised/loss"]
    if args.checkpoint is not None:
        agent.save(args.checkpoint)
    return agent.backbone, f"{float(loss) / math.log(2):.2f} bits/byte train loss"


class FixedDecoding(nn.Module):
    """Fixed decodings of the backbone's own logits, exact nucleus cut-off, one (temperature, top-p, penalty)
    per group of rows: a whole grid runs in one batched rollout."""

    def __init__(self, settings: list[tuple[float, float, float]], rows_per_setting: int, env, device):
        super().__init__()
        knobs = torch.tensor(settings, device=device).repeat_interleave(rows_per_setting, dim=0)
        self.temperature, self.top_p, self.penalty = knobs.unbind(dim=1)
        self.register_buffer("action_token_ids", torch.as_tensor(env.task.action_token_ids, device=device))
        self.vocab_size = env.task.vocab_size

    def read(self, backbone, tokens: torch.Tensor, state=None):
        """The backbone's output (the engine interface the rollout's policy calls)."""
        return backbone(tokens, state)

    def distribution(self, output, tokens: torch.Tensor, length: torch.Tensor, output_logits, positions=None):
        """Each row's decoding of the backbone's logits at ``positions`` (default ``length - 1``)."""
        last = length.view(-1) - 1 if positions is None else positions
        logits = output.logits[torch.arange(tokens.shape[0], device=tokens.device), last]
        present = context_presence(tokens, length, self.vocab_size)[:, self.action_token_ids]
        logits = logits.float()[:, self.action_token_ids]
        decoded = decode_logits(logits, present, self.temperature, self.top_p, self.penalty, None)
        return Categorical(logits=decoded)


def grid_search(args, backbone, device) -> tuple[tuple[float, float, float], float]:
    """The grid setting with the best mean reward on validation prompts (all settings in one rollout)."""
    settings = list(itertools.product(*GRID.values()))
    env = make_env(args, "validation", len(settings) * args.grid_prompts, device, dense=False)
    decoding = FixedDecoding(settings, args.grid_prompts, env, device)
    generator = make_generator(args.seed, "bench/grid", device)
    policy = BackbonePolicy(backbone, decoding, generator=generator, stream=True)
    final = rollout(env, policy, seed=args.seed + 3).final["score"]  # the first episode of each row
    rewards = final.view(len(settings), args.grid_prompts).mean(dim=1)
    best = int(rewards.argmax())
    return settings[best], float(rewards[best])


def conditioned_features(args: argparse.Namespace) -> EngineFeatures | None:
    """The features ``--features`` names for the conditioned engine (None: it reads the hidden state only)."""
    return None if args.features == "none" else for_family("text", version=int(args.features[1:]))


def episode_values(
    backbone, engine, env, seed: int, features: EngineFeatures | None = None
) -> tuple[dict[str, torch.Tensor], int]:
    """Final reward components of one episode per sub-env (row i: prompt i) and the number of episodes;
    the same prompts and sampling seed each call, so two decodings' rows pair by prompt."""
    generator = make_generator(seed, "bench/sampling", env.device)
    policy = BackbonePolicy(backbone, engine, generator=generator, features=features, stream=True)
    out = rollout(env, policy, seed=seed)
    return {k: v.float() for k, v in out.final.items()}, int(out.finished.sum())


def score(backbone, engine, env, seed: int, features: EngineFeatures | None = None) -> dict[str, float]:
    """Mean final reward components over one episode per sub-env, same prompts and sampling seed each call."""
    values, episodes = episode_values(backbone, engine, env, seed, features)
    return {"episodes": float(episodes), **{k: float(v.mean()) for k, v in values.items()}}


def paired_t(diffs: torch.Tensor) -> tuple[float, float]:
    """Mean of per-prompt paired differences and its t-statistic (mean / standard error); a zero spread
    gives t = 0 for a zero mean and +-inf otherwise."""
    mean = float(diffs.mean())
    se = float(diffs.std()) / math.sqrt(diffs.numel())
    if se > 0:
        return mean, mean / se
    return mean, 0.0 if mean == 0 else math.copysign(math.inf, mean)


class ValidationSelector:
    """Model selection (early stopping) for (d) on validation prompts: score each candidate and keep the
    best snapshot of the engine's state.

    Criterion: each candidate and (b) are scored on the same ``validation`` prompts with the same sampling
    seed; per prompt the differences (d) - (b) in reward and in fluency give two paired t-statistics, and
    the candidate with the largest min(t reward, t fluency) is kept (ties: the earlier step). Why: the
    target is a conjunction, (d) beats (b) on the reward AND on fluency, so a candidate is only as good as
    its weaker side. The t-statistic puts the two on one scale (an episode's reward spreads about five
    times as widely as its fluency) and is the unit the target counts in. The alternatives fit the target
    less well: the reward alone picks the repetition-cutting basin that loses fluency (the last step of
    long runs), and "most fluency subject to reward >= (b)'s" accepts a reward gain of zero, which cannot
    clear the reward side. Only ``validation`` prompts are accepted, so the test prompts never select."""

    def __init__(self, backbone, env, reference, seed: int, features: EngineFeatures | None = None):
        split = env.task.prompt_split
        if split != "validation":
            raise ValueError(
                f"Model selection scores on {split!r} prompts; build its env with split 'validation' "
                "(the test prompts must stay untouched by every selection)."
            )
        self.backbone, self.env, self.seed, self.features = backbone, env, seed, features
        base, _ = episode_values(backbone, reference, env, seed)  # (b) on the same prompts and seed
        self.reference = {key: base[key] for key in ("score", "fluency")}
        self.history: list[dict[str, float]] = []
        self.best: dict[str, float] | None = None
        self.best_state: dict[str, torch.Tensor] | None = None

    def consider(self, step: int, engine: nn.Module) -> dict[str, float]:
        """Score ``engine`` (RL step ``step``) on the validation prompts; keep a copy of its state if best."""
        values, _ = episode_values(self.backbone, engine, self.env, self.seed, self.features)
        reward, t_reward = paired_t(values["score"] - self.reference["score"])
        fluency, t_fluency = paired_t(values["fluency"] - self.reference["fluency"])
        row = {
            "step": step,
            "reward": reward,
            "t_reward": t_reward,
            "fluency": fluency,
            "t_fluency": t_fluency,
            "criterion": min(t_reward, t_fluency),
        }
        self.history.append(row)
        if self.best is None or row["criterion"] > self.best["criterion"]:
            self.best = row
            self.best_state = copy.deepcopy(engine.state_dict())
        return row

    def restore(self, engine: nn.Module) -> dict[str, float]:
        """Load the kept snapshot into ``engine``; the selected candidate's row."""
        if self.best is None or self.best_state is None:
            raise RuntimeError("No candidate was scored: call consider() at least once before restore().")
        engine.load_state_dict(self.best_state)
        return self.best


def train_engine(
    args,
    backbone,
    env,
    device,
    conditioned: bool,
    start: tuple[float, float, float],
    features=None,
    fluency_floor: float | None = None,
    selector: ValidationSelector | None = None,
):
    """REINFORCE on the engine alone (backbone frozen), starting from the fixed setting ``start``; a
    conditioned engine reads ``features`` (an :class:`EngineFeatures`, or None) beside the hidden state.

    The engine's random initial weights come from a generator of its own (the seed and which engine), so
    (d) starts the same whether or not (c) was trained first. ``fluency_floor``: raise the reward subject
    to the rollouts' mean fluency staying at or above it (:class:`RLConfig`'s ``floor_key``). ``selector``:
    the engine is scored on its validation prompts at step 0, every ``--select-every`` steps and the last
    (streams of their own: training takes the same path as without it), and the best snapshot is restored
    at the end."""
    temperature, top_p, penalty = start
    kind = "conditioned" if conditioned else "learned"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(args.seed, f"bench/engine/{kind}"))
        engine = InferenceEngine.for_backbone(
            backbone,
            env.task.action_token_ids,
            n_features=features.size if features is not None else 0,
            conditioned=conditioned,
            temperature=temperature,
            top_p=min(top_p, 0.99),
            repetition_penalty=penalty,
            last_layer_weight=0.97,
            feature_offsets=conditioned and args.feature_offsets,
        )
    floor = {} if fluency_floor is None else {"floor_key": "fluency", "floor": fluency_floor}
    rl = RLConfig(
        lr=args.rl_lr,
        rollout_steps=env.task.level.continuation_length + 1,
        entropy_coef=0.0,
        condition_lr_scale=args.condition_lr_scale,
        gamma=args.rl_gamma,
        group_size=args.group_size,
        floor_lr=args.floor_lr,
        **floor,
    )
    agent = DualAgent(
        backbone, engine, env.task, rl=rl, seed=args.seed + 1, device=device, features=features, stream=True
    )
    if selector is not None:
        selector.consider(0, agent.engine)
    for step in range(1, args.rl_steps + 1):
        agent.rl_step(env)
        if selector is not None and (step % args.select_every == 0 or step == args.rl_steps):
            selector.consider(step, agent.engine)
    if selector is not None:
        selector.restore(agent.engine)
    return agent.engine


COLUMNS = (
    "score",
    "fluency",
    "word_order",
    "diversity",
    "repetition",
    "length",
    "batch_diversity",
    "bits_per_byte",
    "distinct_2",
    "seq_rep_4",
    "success",
)


def run_seed(args: argparse.Namespace, device: torch.device) -> dict[str, tuple[str, dict[str, float]]]:
    """One seed's four decodings: {name: (setting, mean final values on the test prompts)}."""
    seed_everything(args.seed)
    train_env = make_env(args, "train", args.envs, device, dense=True, group_size=args.group_size)
    test_env = make_env(args, "test", args.eval_envs, device, dense=False)
    start = time.perf_counter()
    backbone, note = train_backbone(args, train_env, device)
    backbone.eval()
    print(f"seed {args.seed} backbone: {note} ({time.perf_counter() - start:.0f}s)")

    def fixed(setting: tuple[float, float, float]) -> FixedDecoding:
        return FixedDecoding([setting], test_env.num_envs, test_env, device)

    rows = {
        "(a) default": ("T=1, top-p=0.9", score(backbone, fixed((1.0, 0.9, 1.0)), test_env, args.seed + 7))
    }
    start = time.perf_counter()
    (t, p, r), valid_reward = grid_search(args, backbone, device)
    print(
        f"seed {args.seed} grid search: best T={t}, top-p={p}, penalty={r}: {valid_reward:.3f} on validation "
        f"({time.perf_counter() - start:.0f}s)"
    )
    grid_setting = f"T={t}, top-p={p}, penalty={r}"
    rows["(b) best fixed (grid)"] = (grid_setting, score(backbone, fixed((t, p, r)), test_env, args.seed + 7))
    floor = None
    if args.fluency_floor:  # (b)'s fluency on train prompts (the engines' own split), never on test prompts
        floor_env = make_env(args, "train", args.eval_envs, device, dense=False)
        floor_decoding = FixedDecoding([(t, p, r)], floor_env.num_envs, floor_env, device)
        floor = score(backbone, floor_decoding, floor_env, args.seed + 11)["fluency"]
        print(f"seed {args.seed} fluency floor for (d): {floor:.4f}, (b)'s on {args.eval_envs} train prompts")
    runs = (
        ("(c) learned engine", False, (1.0, 0.9, 1.0), "(a)", None),
        ("(d) conditioned engine", True, (t, p, r), "(b)", floor),
    )
    for name, conditioned, init, init_name, fluency_floor in runs:
        start = time.perf_counter()
        features = conditioned_features(args) if conditioned else None
        selector = None
        if conditioned and args.select_every:  # validation prompts only, never the test prompts
            select_env = make_env(args, "validation", args.select_prompts, device, dense=False)
            reference = FixedDecoding([(t, p, r)], select_env.num_envs, select_env, device)
            selector = ValidationSelector(backbone, select_env, reference, args.seed + 13, features)
        engine = train_engine(
            args, backbone, train_env, device, conditioned, init, features, fluency_floor, selector
        )
        selected = ""
        if selector is not None:
            for row in selector.history:
                print(
                    f"seed {args.seed} (d) selection, step {row['step']}: validation (d)-(b) reward "
                    f"{row['reward']:+.4f} (t {row['t_reward']:+.1f}), fluency {row['fluency']:+.4f} "
                    f"(t {row['t_fluency']:+.1f})"
                )
            best = selector.best
            selected = f", selected step {best['step']} of {args.rl_steps}"
            print(
                f"seed {args.seed} (d) selected step {best['step']} of {args.rl_steps} "
                f"(min t {best['criterion']:+.1f} on {args.select_prompts} validation prompts)"
            )
        values = engine.metrics()
        setting = (
            f"from {init_name}: T={values['engine/temperature']:.2f}, top-p={values['engine/top_p']:.3f}, "
            f"penalty={values['engine/repetition_penalty']:.2f}, "
            f"last-layer w={values['engine/last_layer_weight']:.2f}"
            + (f", features {args.features}" if conditioned else "")
            + (" + linear offsets" if engine.feature_offsets is not None else "")
            + (f", fluency floor {fluency_floor:.3f}" if fluency_floor is not None else "")
            + selected
        )
        rows[name] = (setting, score(backbone, engine, test_env, args.seed + 7, features))
        if selector is not None:
            rows[name][1]["selected_step"] = float(selector.best["step"])
        print(f"seed {args.seed} {name}: {args.rl_steps} RL steps ({time.perf_counter() - start:.0f}s)")
    return rows


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    checkpoint = args.checkpoint
    per_seed = []
    for seed in args.seeds:
        args.seed = seed
        if checkpoint is not None and len(args.seeds) > 1:
            args.checkpoint = checkpoint.with_name(f"{checkpoint.stem}-seed{seed}{checkpoint.suffix}")
        per_seed.append(run_seed(args, device))

    title = "engine decoding: reward on held-out generation prompts"
    if len(args.seeds) > 1:
        title += f" (mean ± standard error over seeds {' '.join(map(str, args.seeds))})"
    bench = Benchmark(title, device)
    for name in per_seed[0]:
        settings = [run[name][0] for run in per_seed]
        row = {"decoding": name, "setting": settings[0] if len(set(settings)) == 1 else " / ".join(settings)}
        for key in COLUMNS:
            values = [run[name][1][key] for run in per_seed if key in run[name][1]]
            if values:
                row["reward" if key == "score" else key] = _fmt(values)
        row["episodes"] = int(per_seed[0][name][1]["episodes"])
        bench.add(**row)
    bench.report(record=not args.no_record)

    def paired(a: str, b: str, key: str) -> tuple[float, float, list[float]]:
        diffs = [run[a][1][key] - run[b][1][key] for run in per_seed]
        return (*mean_se(diffs), diffs)

    checks = (
        ("(c) >= (a) on reward", "(c) learned engine", "(a) default", "score", 0.0),
        ("(d) >= (b) on reward", "(d) conditioned engine", "(b) best fixed (grid)", "score", 0.0),
        ("(d) > (b) on reward by > 2 s.e.", "(d) conditioned engine", "(b) best fixed (grid)", "score", 2.0),
        (
            "(d) > (b) on fluency by > 2 s.e.",
            "(d) conditioned engine",
            "(b) best fixed (grid)",
            "fluency",
            2.0,
        ),
    )
    steps = [run["(d) conditioned engine"][1].get("selected_step") for run in per_seed]
    if None not in steps:
        print(
            f"(d) selected on validation prompts at RL step (per seed {' '.join(map(str, args.seeds))}): "
            + " / ".join(str(int(step)) for step in steps)
            + f" of {args.rl_steps}, checked every {args.select_every}"
        )
    for label, a, b, key, margin in checks:
        diff, se, diffs = paired(a, b, key)
        met = diff > margin * se if margin else diff >= 0
        seeds = " / ".join(f"{d:+.4f}" for d in diffs)
        verdict = "met" if met else "MISSED"
        print(f"target {label}: difference {diff:+.4f} ± {se:.4f} (per seed {seeds}): {verdict}")


if __name__ == "__main__":
    main()
