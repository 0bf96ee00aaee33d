"""Generation-quality task family: corpus, byte tokens, reference n-gram scorer, reward, envs."""

from envs.generation.corpus import Corpus, default_corpus, load_corpus

__all__ = ["Corpus", "default_corpus", "load_corpus"]
