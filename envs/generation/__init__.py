"""Generation-quality task family: corpus, byte tokens, reference n-gram scorer, reward, envs.

    import envs, gymnasium
    env = gymnasium.make("mindgym/TextQuality-v0", dense=True)

Importing this package loads no corpus and fits no scorer; that happens when a task or env is built.
"""

from envs.generation.calibration import Calibration
from envs.generation.corpus import Corpus, corpus_from_hf, default_corpus, load_corpus
from envs.generation.metrics import bits_per_char, distinct_n
from envs.generation.ngram import NGramScorer
from envs.generation.reward import COMPONENTS, DEFAULT_WEIGHTS, RewardConfig, score_continuations
from envs.generation.scorer import reference_bits_per_byte, reference_scorer
from envs.generation.task import DEFAULT_LEVELS, TextLevel, TextQualityTask
from envs.generation.tokens import PAD_ID, VOCAB_SIZE, decode, encode

__all__ = [
    "COMPONENTS",
    "DEFAULT_LEVELS",
    "DEFAULT_WEIGHTS",
    "PAD_ID",
    "VOCAB_SIZE",
    "Calibration",
    "Corpus",
    "NGramScorer",
    "RewardConfig",
    "TextLevel",
    "TextQualityTask",
    "bits_per_char",
    "corpus_from_hf",
    "decode",
    "default_corpus",
    "distinct_n",
    "encode",
    "load_corpus",
    "reference_bits_per_byte",
    "reference_scorer",
    "score_continuations",
]
